"""A catalog of real audio-classification datasets, and loaders for the layouts their archives extract to.

Each dataset has a :class:`DatasetCard` in :data:`CATALOG` (what it is, where the archive lives, license,
citation, official folds) and a loader in :data:`LOADERS` that parses the extracted folder. A loader returns

* ``decode=True``: a :class:`lib.data.dataset.AudioDataset`, every clip decoded in memory (fine for the small sets), or
* ``decode=False``: a :class:`DatasetIndex`, the list of clips with labels, groups and official folds, read
  from file names and metadata only. :func:`lib.data.cache.build_cache` decodes an index once into an on-disk
  int16 cache; that is the way to use the large sets (Speech Commands, UrbanSound8K, GTZAN).

A clip is a :class:`ClipRef`: a file, or a segment of a file (``start``/``duration``; Speech Commands'
``_silence_`` clips are cut from its background-noise recordings, GTZAN can be cut into crops).

Downloading and extracting is :mod:`lib.data.download`; ``python -m lib.data.download --list`` prints the catalog.

Example:
    >>> from lib.data.catalog import LOADERS
    >>> dataset = LOADERS["esc50"]("data/esc50/ESC-50-master")          # decoded in memory
    >>> index = LOADERS["speech_commands_v2"]("data/speech_commands_v2", decode=False)
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
import re
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from lib.dsp.audio import AudioDecodeError, load_audio
from lib.data.dataset import AudioDataset, DatasetError, ProgressCallback, class_counts
from lib.data.labels import SILENCE_LABEL, SPEECH_COMMANDS_KEYWORDS, UNKNOWN_LABEL

__all__ = ["DatasetCard", "CATALOG", "LOADERS", "ClipRef", "DatasetIndex", "get_card", "resolve_source",
           "check_layout", "find_root", "load_dataset", "load_speech_commands", "load_esc50", "load_urbansound8k",
           "load_gtzan", "load_yesno", "SPEECH_COMMANDS_KEYWORDS", "UNKNOWN_LABEL", "SILENCE_LABEL",
           "SPEECH_COMMANDS_FOLDS", "GTZAN_GENRES"]


BACKGROUND_FOLDER = "_background_noise_"
#: How Speech Commands' official split is encoded in ``folds``.
SPEECH_COMMANDS_FOLDS = {"train": 0, "validation": 1, "test": 2}
_SC_V1_WORDS = SPEECH_COMMANDS_KEYWORDS + ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                                           "nine", "bed", "bird", "cat", "dog", "happy", "house", "marvin",
                                           "sheila", "tree", "wow")
_SC_V2_WORDS = _SC_V1_WORDS + ("backward", "forward", "follow", "learn", "visual")
GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
_URBANSOUND_CLASSES = ("air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling", "engine_idling",
                       "gun_shot", "jackhammer", "siren", "street_music")
_ESC10_CLASSES = ("dog", "rooster", "rain", "sea_waves", "crackling_fire", "crying_baby", "sneezing", "clock_tick",
                  "helicopter", "chainsaw")
_GTZAN_NAME = re.compile(r"^([a-z]+)\.(\d{5})\.(wav|au)$", re.IGNORECASE)
_YESNO_NAME = re.compile(r"^[01](_[01]){7}\.wav$")


# --------------------------------------------------------------------------------------------------- cards
@dataclass(frozen=True)
class DatasetCard:
    """What a dataset is and where its archive comes from.

    Attributes:
        key: the catalog key (``"esc50"``); also names its folder under the data directory.
        name: a human name.
        task: what is classified.
        classes: the class names, or a description when there are many.
        n_clips: number of clips (files) in the official release.
        size_on_disk: extracted size, human readable and approximate ("3.3 GB").
        download_bytes: approximate size of the archive in bytes (None: unknown).
        license: the data license.
        citation: the paper to cite.
        url: the official archive URL (override: ``AUDIOWB_URL_<KEY>`` or ``url=`` arguments).
        sha256: the archive's SHA-256 when known for certain, else None (the downloader then records the one
            it computed); override with ``AUDIOWB_SHA256_<KEY>``.
        archive_format: ``"tar.gz"`` or ``"zip"``.
        folds: number of official folds (None: none); see ``notes`` for how they are encoded.
        notes: everything else worth knowing (layout, caveats, label choices).
        archive_key: for presets that reuse another card's archive (the yes/no subset of Speech Commands),
            that card's key; empty for a card with its own archive.
        archive_name: file name the archive is saved under.
        long_clips: how :mod:`lib.data.cache` stores clips longer than the clip length by default: ``"center"``
            (the centre crop) or ``"all"`` (every crop, all in the clip's group).
        official_split: ``(test_fold, validation_fold)`` of a fixed official split, when there is one.
        clip_seconds: the clip length, in seconds, that fits the recordings (the app caches the set at it); None:
            the feature settings' length.
    """

    key: str
    name: str
    task: str
    classes: tuple[str, ...] | str
    n_clips: int
    size_on_disk: str
    download_bytes: int | None
    license: str
    citation: str
    url: str
    sha256: str | None
    archive_format: str
    folds: int | None
    notes: str
    archive_key: str = ""
    archive_name: str = ""
    long_clips: str = "center"
    official_split: tuple[int, int] | None = None
    clip_seconds: float | None = None

    @property
    def source_key(self) -> str:
        """The key of the card whose archive this dataset comes from (itself unless a preset)."""
        return self.archive_key or self.key

    @property
    def n_classes(self) -> int | None:
        return len(self.classes) if isinstance(self.classes, tuple) else None


_SC_CITATION = ("Warden, P. (2018). Speech Commands: A Dataset for Limited-Vocabulary Speech Recognition. "
                "arXiv:1804.03209.")
_SC_NOTES = ("Layout (the archive extracts flat): <word>/<speaker>_nohash_<n>.wav (16 kHz mono, 1 s or less), "
             "validation_list.txt, testing_list.txt, _background_noise_/*.wav. The official split is encoded in "
             "folds as 0=train, 1=validation, 2=test (train with test_fold=2, validation_fold=1); groups are "
             "speaker ids (the file name before _nohash_), which the official lists never split. "
             "SHA-256 from torchaudio's SPEECHCOMMANDS. Mirror: https://storage.googleapis.com/download."
             "tensorflow.org/data/<archive>.")
_SC_12_NOTES = ("The standard 12-class task: the ten keywords, _unknown_ (every other word; keep a fraction with "
                "unknown_fraction) and _silence_ (1 s clips cut from _background_noise_/*.wav: the first 80 % of "
                "each recording for train, the next 10 % for validation, the last 10 % for test). ")


def _preset_card(parent: DatasetCard, **changes) -> DatasetCard:
    """A card for a subset or another task of ``parent``'s archive (same download, checksum and layout)."""
    return replace(parent, archive_key=parent.key, **changes)


_SC_V2 = DatasetCard(
    key="speech_commands_v2", name="Speech Commands v0.02", task="keyword spotting (35 words)",
    classes=tuple(sorted(_SC_V2_WORDS)), n_clips=105_829, size_on_disk="3.3 GB", download_bytes=2_430_000_000,
    license="CC BY 4.0", citation=_SC_CITATION,
    url="http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
    sha256="af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58", archive_format="tar.gz",
    folds=3, notes="2,618 speakers. " + _SC_NOTES, archive_name="speech_commands_v0.02.tar.gz",
    official_split=(2, 1))
_ESC50 = DatasetCard(
    key="esc50", name="ESC-50", task="environmental sound classification (50 classes)",
    classes="50 classes in 5 groups: animals, natural soundscapes and water, human non-speech, interior/"
            "domestic, exterior/urban noises", n_clips=2_000, size_on_disk="0.9 GB", download_bytes=650_000_000,
    license="CC BY-NC 3.0 (ESC-10 clips: CC BY)",
    citation="Piczak, K. J. (2015). ESC: Dataset for Environmental Sound Classification. Proceedings of the "
             "23rd ACM International Conference on Multimedia, 1015-1018.",
    url="https://github.com/karoldvl/ESC-50/archive/master.zip", sha256=None, archive_format="zip", folds=5,
    notes="5 s clips, 44.1 kHz mono, 40 per class. Layout: ESC-50-master/meta/esc50.csv (filename, fold, "
          "target, category, esc10, src_file, take) and ESC-50-master/audio/<fold>-<src>-<take>-<target>.wav. "
          "Official folds 1-5 (clips of one source recording share a fold; groups = src_file). No SHA-256: "
          "GitHub builds the zip of a moving branch, so its bytes are not stable.",
    archive_name="ESC-50-master.zip", clip_seconds=5.0)

CATALOG: dict[str, DatasetCard] = {card.key: card for card in (
    _SC_V2,
    _preset_card(_SC_V2, key="speech_commands_v2_12", name="Speech Commands v0.02, 12 classes",
                 task="keyword spotting (10 keywords + unknown + silence)",
                 classes=SPEECH_COMMANDS_KEYWORDS + (UNKNOWN_LABEL, SILENCE_LABEL),
                 notes=_SC_12_NOTES + "n_clips counts the word files; about 400 _silence_ clips come on top. "
                 + _SC_NOTES),
    DatasetCard(
        key="speech_commands_v1", name="Speech Commands v0.01", task="keyword spotting (30 words)",
        classes=tuple(sorted(_SC_V1_WORDS)), n_clips=64_727, size_on_disk="2.1 GB", download_bytes=1_490_000_000,
        license="CC BY 4.0", citation=_SC_CITATION,
        url="http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz",
        sha256="743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d", archive_format="tar.gz",
        folds=3, notes="1,881 speakers. The loader's task='12' option gives the 12-class task here too. "
        + _SC_NOTES, archive_name="speech_commands_v0.01.tar.gz", official_split=(2, 1)),
    _preset_card(_SC_V2, key="speech_commands_yes_no", name="Speech Commands v0.02, yes/no",
                 task="two keywords: yes or no", classes=("yes", "no"), n_clips=7_985,
                 size_on_disk="3.3 GB (the whole v0.02 set)",
                 notes="The two-class preset of the Microsoft Learn module 'Introduction to audio classification "
                       "with PyTorch': only the yes/ and no/ folders of v0.02 (the whole archive is downloaded). "
                       + _SC_NOTES),
    _ESC50,
    _preset_card(_ESC50, key="esc10", name="ESC-10", task="environmental sound classification (10 classes)",
                 classes=_ESC10_CLASSES, n_clips=400, size_on_disk="0.9 GB (the whole ESC-50 set)", license="CC BY",
                 notes="The ESC-10 subset of ESC-50 (rows with esc10=True in meta/esc50.csv); same folds 1-5."),
    DatasetCard(
        key="urbansound8k", name="UrbanSound8K", task="urban sound classification (10 classes)",
        classes=_URBANSOUND_CLASSES, n_clips=8_732, size_on_disk="6.6 GB", download_bytes=6_000_000_000,
        license="CC BY-NC 3.0",
        citation="Salamon, J., Jacoby, C., Bello, J. P. (2014). A Dataset and Taxonomy for Urban Sound Research. "
                 "Proceedings of the 22nd ACM International Conference on Multimedia, 1041-1044.",
        url="https://zenodo.org/record/1203745/files/UrbanSound8K.tar.gz", sha256=None, archive_format="tar.gz",
        folds=10,
        notes="Clips of 4 s or less with mixed sample rates, bit depths and channel counts. Layout: "
              "UrbanSound8K/metadata/UrbanSound8K.csv (slice_file_name, fsID, start, end, salience, fold, "
              "classID, class) and UrbanSound8K/audio/fold<k>/<slice>.wav. Use the official folds 1-10 and never "
              "mix them (slices of one recording share a fold; groups = fsID): report 10-fold cross-validation. "
              "No SHA-256 pinned (Zenodo publishes an MD5 only).",
        archive_name="UrbanSound8K.tar.gz", clip_seconds=4.0),
    DatasetCard(
        key="gtzan", name="GTZAN Genre Collection", task="music genre classification (10 genres)",
        classes=GTZAN_GENRES, n_clips=1_000, size_on_disk="1.3 GB", download_bytes=1_230_000_000,
        license="unspecified: research use; the recordings belong to their copyright holders",
        citation="Tzanetakis, G., Cook, P. (2002). Musical genre classification of audio signals. IEEE "
                 "Transactions on Speech and Audio Processing 10(5), 293-302.",
        url="http://opihi.cs.uvic.ca/sound/genres.tar.gz",
        sha256="24347e0223d2ba798e0a558c4c172d9d4a19c00bb7963fe055d183dadb4ef2c6", archive_format="tar.gz",
        folds=None,
        notes="100 tracks per genre, 30 s, 22,050 Hz mono. Layout: genres/<genre>/<genre>.000NN.wav (.au in some "
              "copies; the Kaggle copy's genres_original/ works too). One known corrupt file, jazz.00054.wav, is "
              "skipped and listed in failed. Train on crops: every crop of a track is in the track's group, so "
              "a track never spans two splits (the disk cache stores all crops by default). The original host "
              "is often down: download a copy by hand and pass it as local_archive, or point existing_root at "
              "an extracted copy. SHA-256 from torchaudio's GTZAN.",
        archive_name="genres.tar.gz", long_clips="all", clip_seconds=3.0),
    DatasetCard(
        key="yesno", name="YESNO", task="first word of a recording: yes or no (Hebrew)", classes=("no", "yes"),
        n_clips=60, size_on_disk="6 MB", download_bytes=4_700_000, license="CC BY 4.0 (OpenSLR SLR1)",
        citation="YESNO corpus, OpenSLR resource SLR1 (http://www.openslr.org/1/), from the Kaldi project.",
        url="http://www.openslr.org/resources/1/waves_yesno.tar.gz",
        sha256="c3f49e0cca421f96b75b41640749167b52118f232498667ca7a5f9416aef8e73", archive_format="tar.gz",
        folds=None,
        notes="60 recordings (8 kHz, about 6 s) of one man saying eight words, each yes or no in Hebrew; the "
              "file name spells them (waves_yesno/0_1_0_0_1_0_1_1.wav, 1 = yes). As a classification set each "
              "recording is labelled by its first word (label='first', two balanced classes), or by how many of "
              "its words are yes (label='count', nine classes). Use clip_seconds of about 6 so the model hears "
              "the whole recording. SHA-256 from torchaudio's YESNO.",
        archive_name="waves_yesno.tar.gz", clip_seconds=6.0),
)}


def get_card(key: str) -> DatasetCard:
    """The card of ``key``; raises :class:`lib.data.dataset.DatasetError` naming the known keys."""
    try:
        return CATALOG[key]
    except KeyError:
        raise DatasetError(f"unknown dataset {key!r}; the catalog has {', '.join(CATALOG)}") from None


def _env(prefix: str, card: DatasetCard) -> str | None:
    for key in dict.fromkeys((card.key, card.source_key)):
        value = os.environ.get(f"{prefix}{key.upper()}")
        if value is not None:
            return value.strip()
    return None


def resolve_source(key: str, url: str | None = None, sha256: str | None = None) -> tuple[str, str | None]:
    """The archive URL and expected SHA-256 of dataset ``key``.

    Precedence: the arguments, then ``AUDIOWB_URL_<KEY>`` / ``AUDIOWB_SHA256_<KEY>`` (for a preset, its own key
    first, then its archive's key), then the card. An empty string or ``"none"`` as checksum turns verification
    off (a mirror with other bytes); a URL override alone keeps the pinned checksum (a mirror of the same file).

    Returns:
        ``(url, sha256 or None)``.
    """
    card = get_card(key)
    source = get_card(card.source_key)
    url = url or _env("AUDIOWB_URL_", card) or source.url
    checksum = sha256 if sha256 is not None else _env("AUDIOWB_SHA256_", card)
    if checksum is None:
        checksum = source.sha256
    checksum = checksum.strip().lower() if checksum else None
    if checksum in ("", "none", "skip"):
        checksum = None
    if checksum is not None and not re.fullmatch(r"[0-9a-f]{64}", checksum):
        raise DatasetError(f"the SHA-256 for {key!r} must be 64 hex digits, got {checksum!r}")
    return url, checksum


# --------------------------------------------------------------------------------------------------- clips
@dataclass(frozen=True)
class ClipRef:
    """One clip of a dataset, before decoding.

    Attributes:
        path: the audio file.
        label: its class name.
        group: clips of one group (speaker, source recording, track) always land in the same split.
        fold: its official fold, or None.
        start: where the clip starts in the file, seconds.
        duration: its length in seconds; None: to the end of the file.
    """

    path: str
    label: str
    group: str
    fold: int | None = None
    start: float = 0.0
    duration: float | None = None

    @property
    def name(self) -> str:
        """The path, with a media fragment ``#t=start,end`` (seconds) for a segment of a file."""
        if self.start == 0 and self.duration is None:
            return self.path
        end = "" if self.duration is None else f"{self.start + self.duration:g}"
        return f"{self.path}#t={self.start:g},{end}"

    def frames(self, sample_rate: int, n_frames: int) -> tuple[int, int]:
        """``(first, last)`` frame of the clip in a file of ``n_frames`` at ``sample_rate``."""
        first = min(int(round(self.start * sample_rate)), n_frames)
        last = n_frames if self.duration is None else min(first + int(round(self.duration * sample_rate)), n_frames)
        return first, last


@dataclass
class DatasetIndex:
    """An index of a dataset's files: its clips with labels, groups and folds, without audio (``decode=False``
    loaders return it). Not a :class:`lib.data.dataset.ClipDataset`: :meth:`decode` makes one in memory and
    :func:`lib.data.cache.build_cache` one on disk.

    Attributes:
        key: the catalog key it was loaded as.
        name: a human name.
        source: how to load it again (``{"kind": "catalog", "key": ..., "root": ..., "options": {...}}``).
        class_names: class names in label order.
        clips: the clips.
        failed: ``(path, reason)`` for files left out while indexing (missing, unreadable header).
    """

    key: str
    name: str
    source: dict
    class_names: list[str]
    clips: list[ClipRef]
    failed: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def labels(self) -> np.ndarray:
        """``(n_clips,)`` int64 class indices."""
        index = {c: i for i, c in enumerate(self.class_names)}
        return np.array([index[c.label] for c in self.clips], dtype=np.int64)

    @property
    def folds(self) -> list[int] | None:
        return [c.fold for c in self.clips] if any(c.fold is not None for c in self.clips) else None

    def class_counts(self) -> dict[str, int]:
        """Clips per class, in class order (:func:`lib.data.dataset.class_counts`)."""
        return class_counts(self.labels, self.class_names)

    def fingerprint(self) -> str:
        """A hash of the class names and every clip: a cache built from this index is valid while it holds."""
        payload = json.dumps([self.class_names, [asdict(c) for c in self.clips]], separators=(",", ":"))
        return hashlib.sha1(payload.encode()).hexdigest()

    def decode(self, progress: ProgressCallback | None = None, workers: int = 4) -> AudioDataset:
        """Decode every clip into memory (each file once, in threads).

        Files that fail to decode are skipped and listed in ``failed``, with the indexing failures.

        Args:
            progress: called as ``progress(clips_done, n_clips)``.
            workers: decoding threads.

        Returns:
            An :class:`lib.data.dataset.AudioDataset` whose paths are the clips' :attr:`ClipRef.name`.
        """
        by_path: dict[str, list[int]] = defaultdict(list)
        for i, clip in enumerate(self.clips):
            by_path[clip.path].append(i)

        def read(path: str):
            try:
                return load_audio(path), None
            except AudioDecodeError as error:
                return None, str(error)

        decoded: dict[int, tuple] = {}
        failed = list(self.failed)
        done = 0
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for path, (result, error) in zip(by_path, pool.map(read, by_path)):
                members = by_path[path]
                if error is not None:
                    failed.append((path, error))
                else:
                    waveform, rate = result
                    for i in members:
                        first, last = self.clips[i].frames(rate, waveform.shape[-1])
                        if last > first:
                            decoded[i] = (waveform[:, first:last].clone(), rate)
                        else:
                            failed.append((self.clips[i].name, "the segment lies outside the recording"))
                done += len(members)
                if progress:
                    progress(done, len(self.clips))
        kept = sorted(decoded)
        if not kept:
            reasons = "; ".join(f"{Path(p).name}: {r}" for p, r in failed[:3])
            raise DatasetError(f"none of the {len(self.clips)} clips of {self.name!r} could be decoded ({reasons})")
        index = {c: i for i, c in enumerate(self.class_names)}
        clips = [self.clips[i] for i in kept]
        return AudioDataset(
            name=self.name, source=dict(self.source), class_names=list(self.class_names),
            paths=[c.name for c in clips], labels=np.array([index[c.label] for c in clips], dtype=np.int64),
            groups=[c.group for c in clips], waveforms=[decoded[i][0] for i in kept],
            sample_rates=[decoded[i][1] for i in kept],
            folds=[c.fold for c in clips] if any(c.fold is not None for c in clips) else None, failed=failed)


def _finish(index: DatasetIndex, decode: bool, progress: ProgressCallback | None) -> AudioDataset | DatasetIndex:
    if not index.clips:
        raise DatasetError(f"no clips found for {index.name!r} in {index.source.get('root')}")
    return index.decode(progress) if decode else index


def _source(key: str, root: Path, **options) -> dict:
    return {"kind": "catalog", "key": key, "root": str(root), "options": options}


def _info_frames(path: Path) -> tuple[int, int]:
    """``(frames, sample_rate)`` from the header; raises AudioDecodeError."""
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError, ValueError) as error:
        raise AudioDecodeError(f"not a readable audio file ({error})", str(path)) from error
    if info.frames <= 0:
        raise AudioDecodeError("the audio has no samples", str(path))
    return info.frames, info.samplerate


def _crops(path: Path, seconds: float) -> list[tuple[float, float]]:
    """Non-overlapping ``(start, duration)`` crops of ``seconds`` covering the middle of a file (at least one)."""
    frames, rate = _info_frames(path)
    total = frames / rate
    n = max(1, int(total // seconds))
    offset = max(0.0, (total - n * seconds) / 2)
    return [(round(offset + k * seconds, 6), seconds) for k in range(n)]


# --------------------------------------------------------------------------------------------------- layouts
def _is_speech_commands(path: Path) -> bool:
    return (path / "validation_list.txt").is_file() and (path / "testing_list.txt").is_file()


def _is_esc50(path: Path) -> bool:
    return (path / "meta" / "esc50.csv").is_file() and (path / "audio").is_dir()


def _is_urbansound8k(path: Path) -> bool:
    return (path / "metadata" / "UrbanSound8K.csv").is_file() and (path / "audio").is_dir()


def _is_gtzan(path: Path) -> bool:
    return any((path / g).is_dir() and any(_GTZAN_NAME.match(p.name) for p in (path / g).iterdir())
               for g in GTZAN_GENRES)


def _is_yesno(path: Path) -> bool:
    return path.is_dir() and any(_YESNO_NAME.match(p.name) for p in path.iterdir())


_LAYOUTS: dict[str, tuple[Callable[[Path], bool], str]] = {
    "speech_commands_v2": (_is_speech_commands, "validation_list.txt, testing_list.txt and one folder per word"),
    "speech_commands_v1": (_is_speech_commands, "validation_list.txt, testing_list.txt and one folder per word"),
    "esc50": (_is_esc50, "meta/esc50.csv and audio/ (the ESC-50-master folder)"),
    "urbansound8k": (_is_urbansound8k, "metadata/UrbanSound8K.csv and audio/fold1..fold10 (the UrbanSound8K "
                                       "folder)"),
    "gtzan": (_is_gtzan, "one folder per genre (blues/blues.00000.wav ...): the genres folder"),
    "yesno": (_is_yesno, "the recordings 0_1_0_0_1_0_1_1.wav ... (the waves_yesno folder)"),
}


def find_root(key: str, path: str | Path, depth: int = 2) -> Path | None:
    """The dataset root of ``key`` at ``path`` or in its sub-folders (up to ``depth`` levels), else None."""
    check, _ = _LAYOUTS[get_card(key).source_key]
    level = [Path(path).expanduser()]
    for _ in range(depth + 1):
        for folder in level:
            if folder.is_dir() and check(folder):
                return folder
        level = [c for f in level if f.is_dir() for c in sorted(f.iterdir())
                 if c.is_dir() and not c.name.startswith(".")]
    return None


def check_layout(key: str, path: str | Path) -> Path:
    """:func:`find_root`, raising :class:`lib.data.dataset.DatasetError` that says what the folder should hold."""
    root = find_root(key, path)
    if root is None:
        _, expected = _LAYOUTS[get_card(key).source_key]
        raise DatasetError(f"{path} does not hold {get_card(key).name}: expected a folder with {expected}")
    return root


# --------------------------------------------------------------------------------------------------- loaders
def _read_list(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {line.strip().replace("\\", "/") for line in path.read_text().splitlines() if line.strip()}


def _keep_fraction(name: str, fraction: float) -> bool:
    """A deterministic, file-name-seeded coin flip (the same files are kept on every machine)."""
    return fraction >= 1 or int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 2**32 < fraction


def _silence_clips(root: Path, seconds: float) -> tuple[list[ClipRef], list[tuple[str, str]]]:
    """``_silence_`` clips cut from the background-noise recordings: 80/10/10 % of each file's time for
    train/validation/test, non-overlapping crops of ``seconds``, grouped in blocks of ten."""
    clips, failed = [], []
    for path in sorted((root / BACKGROUND_FOLDER).glob("*.wav")):
        try:
            frames, rate = _info_frames(path)
        except AudioDecodeError as error:
            failed.append((str(path), str(error)))
            continue
        total = frames / rate
        for fold, (lo, hi) in enumerate(((0.0, 0.8), (0.8, 0.9), (0.9, 1.0))):
            begin, length = lo * total, (hi - lo) * total
            for k in range(int(length // seconds)):
                clips.append(ClipRef(str(path), SILENCE_LABEL, f"{BACKGROUND_FOLDER}/{path.stem}:{fold}:{k // 10}",
                                     fold, round(begin + k * seconds, 6), seconds))
    return clips, failed


def load_speech_commands(root: str | Path, task: str = "all", *, unknown_fraction: float = 1.0,
                         silence_seconds: float = 1.0, decode: bool = True,
                         progress: ProgressCallback | None = None) -> AudioDataset | DatasetIndex:
    """Speech Commands (v0.01 or v0.02) from its extracted folder.

    Labels come from the word folders; ``validation_list.txt`` / ``testing_list.txt`` give ``folds``
    (0=train, 1=validation, 2=test, see :data:`SPEECH_COMMANDS_FOLDS`); groups are speaker ids (the file name
    before ``_nohash_``).

    Args:
        root: the extracted folder (or a folder above it).
        task: ``"all"`` (every word, classes sorted), ``"12"`` (the ten keywords, ``_unknown_`` for the other
            words and ``_silence_`` cut from ``_background_noise_``) or ``"yes_no"`` (only yes and no).
        unknown_fraction: ``task="12"``: the fraction of other-word clips kept as ``_unknown_`` (chosen by a
            hash of the file name, so the same everywhere).
        silence_seconds: ``task="12"``: length of the ``_silence_`` clips.
        decode: decode into memory (True) or return the :class:`DatasetIndex`.
        progress: ``progress(done, total)`` while decoding.

    Returns:
        An :class:`lib.data.dataset.AudioDataset` or a :class:`DatasetIndex`.
    """
    if task not in ("all", "12", "yes_no"):
        raise ValueError(f"task must be 'all', '12' or 'yes_no', got {task!r}")
    if not 0 < unknown_fraction <= 1:
        raise ValueError(f"unknown_fraction must be in (0, 1], got {unknown_fraction}")
    root = check_layout("speech_commands_v2", root)
    validation, testing = _read_list(root / "validation_list.txt"), _read_list(root / "testing_list.txt")
    words = sorted(d.name for d in root.iterdir() if d.is_dir() and d.name[0] not in "._")
    if task == "12":
        class_names = list(SPEECH_COMMANDS_KEYWORDS) + [UNKNOWN_LABEL, SILENCE_LABEL]
    elif task == "yes_no":
        class_names, words = ["yes", "no"], [w for w in ("yes", "no") if w in words]
    else:
        class_names = words
    clips = []
    for word in words:
        label = word if task != "12" or word in SPEECH_COMMANDS_KEYWORDS else UNKNOWN_LABEL
        for path in sorted((root / word).glob("*.wav")):
            relative = f"{word}/{path.name}"
            if label == UNKNOWN_LABEL and not _keep_fraction(relative, unknown_fraction):
                continue
            fold = 1 if relative in validation else 2 if relative in testing else 0
            clips.append(ClipRef(str(path), label, path.name.split("_nohash_")[0], fold))
    failed = []
    if task == "12":
        silence, failed = _silence_clips(root, silence_seconds)
        clips += silence
    name = {"all": "Speech Commands", "12": "Speech Commands, 12 classes", "yes_no": "Speech Commands, yes/no"}[task]
    index = DatasetIndex("speech_commands", name, _source("speech_commands", root, task=task,
                                                          unknown_fraction=unknown_fraction,
                                                          silence_seconds=silence_seconds),
                         class_names, clips, failed)
    return _finish(index, decode, progress)


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def _class_names_by_id(rows: list[dict], id_column: str, name_column: str) -> dict[int, str]:
    names: dict[int, str] = {}
    for row in rows:
        names.setdefault(int(row[id_column]), row[name_column].strip())
    return dict(sorted(names.items()))


def load_esc50(root: str | Path, *, esc10: bool = False, decode: bool = True,
               progress: ProgressCallback | None = None) -> AudioDataset | DatasetIndex:
    """ESC-50 (or its ESC-10 subset) from ``ESC-50-master``.

    Classes are ordered by ``target``; ``folds`` are the official folds 1-5; groups are the source recordings
    (``src_file``). Files listed in ``meta/esc50.csv`` but missing are listed in ``failed``.

    Args:
        root: the ``ESC-50-master`` folder (or a folder above it).
        esc10: keep only the ESC-10 subset (rows with ``esc10`` True), relabelled 0-9.
        decode: decode into memory (True) or return the :class:`DatasetIndex`.
        progress: ``progress(done, total)`` while decoding.
    """
    root = check_layout("esc50", root)
    rows = _read_csv(root / "meta" / "esc50.csv")
    if esc10:
        rows = [r for r in rows if r.get("esc10", "").strip().lower() in ("true", "1")]
    names = _class_names_by_id(rows, "target", "category")
    clips, failed = [], []
    for row in rows:
        path = root / "audio" / row["filename"].strip()
        if not path.is_file():
            failed.append((str(path), "file not found"))
            continue
        group = (row.get("src_file") or "").strip() or path.stem
        clips.append(ClipRef(str(path), names[int(row["target"])], group, int(row["fold"])))
    index = DatasetIndex("esc10" if esc10 else "esc50", "ESC-10" if esc10 else "ESC-50",
                         _source("esc10" if esc10 else "esc50", root, esc10=esc10), list(names.values()), clips,
                         failed)
    return _finish(index, decode, progress)


def load_urbansound8k(root: str | Path, *, decode: bool = True,
                      progress: ProgressCallback | None = None) -> AudioDataset | DatasetIndex:
    """UrbanSound8K from its ``UrbanSound8K`` folder.

    Classes are ordered by ``classID``; ``folds`` are the official folds 1-10 (never mix them: train with
    ``test_fold``); groups are the Freesound recording ids (``fsID``).

    Args:
        root: the ``UrbanSound8K`` folder (or a folder above it).
        decode: decode into memory (True; about 6 GB of float32) or return the :class:`DatasetIndex`.
        progress: ``progress(done, total)`` while decoding.
    """
    root = check_layout("urbansound8k", root)
    rows = _read_csv(root / "metadata" / "UrbanSound8K.csv")
    names = _class_names_by_id(rows, "classID", "class")
    clips, failed = [], []
    for row in rows:
        fold = int(row["fold"])
        path = root / "audio" / f"fold{fold}" / row["slice_file_name"].strip()
        if not path.is_file():
            failed.append((str(path), "file not found"))
            continue
        clips.append(ClipRef(str(path), names[int(row["classID"])], f"fs{row['fsID'].strip()}", fold))
    index = DatasetIndex("urbansound8k", "UrbanSound8K", _source("urbansound8k", root), list(names.values()),
                         clips, failed)
    return _finish(index, decode, progress)


def load_gtzan(root: str | Path, *, crop_seconds: float | None = None, decode: bool = True,
               progress: ProgressCallback | None = None) -> AudioDataset | DatasetIndex:
    """The GTZAN genre collection from its ``genres`` folder.

    Labels are the genre folders; each track is its own group, so all its crops stay in one split. Files that
    cannot be decoded (the real set's ``jazz.00054.wav``) are skipped and listed in ``failed``.

    Args:
        root: the ``genres`` folder (or a folder above it).
        crop_seconds: cut each track into non-overlapping crops of this length (from the middle), one clip
            each; None: one clip per track (the disk cache can still store all crops, see
            :func:`lib.data.cache.build_cache`).
        decode: decode into memory (True; about 2.6 GB of float32 for the full set) or return the
            :class:`DatasetIndex`.
        progress: ``progress(done, total)`` while decoding.
    """
    if crop_seconds is not None and crop_seconds <= 0:
        raise ValueError(f"crop_seconds must be positive, got {crop_seconds}")
    root = check_layout("gtzan", root)
    genres = sorted(d.name for d in root.iterdir()
                    if d.is_dir() and any(_GTZAN_NAME.match(p.name) for p in d.iterdir()))
    clips, failed = [], []
    for genre in genres:
        for path in sorted(p for p in (root / genre).iterdir() if _GTZAN_NAME.match(p.name)):
            track = path.name.rsplit(".", 1)[0]
            if crop_seconds is None:
                clips.append(ClipRef(str(path), genre, track))
                continue
            try:
                crops = _crops(path, crop_seconds)
            except AudioDecodeError as error:
                failed.append((str(path), str(error)))
                continue
            clips += [ClipRef(str(path), genre, track, None, start, length) for start, length in crops]
    index = DatasetIndex("gtzan", "GTZAN", _source("gtzan", root, crop_seconds=crop_seconds), genres, clips, failed)
    return _finish(index, decode, progress)


def load_yesno(root: str | Path, *, label: str = "first", decode: bool = True,
               progress: ProgressCallback | None = None) -> AudioDataset | DatasetIndex:
    """YESNO from its ``waves_yesno`` folder: 60 recordings of eight Hebrew yes/no words.

    The file name spells the words (``1`` = yes). A recording gets one label:

    * ``label="first"`` (default): its first word, ``"no"`` or ``"yes"``: two balanced classes.
    * ``label="count"``: how many of its eight words are yes, ``"0 yes"`` ... ``"8 yes"``.

    Each recording is its own group; there are no folds.
    """
    if label not in ("first", "count"):
        raise ValueError(f"label must be 'first' or 'count', got {label!r}")
    root = check_layout("yesno", root)
    clips = []
    for path in sorted(p for p in root.iterdir() if _YESNO_NAME.match(p.name)):
        words = [int(w) for w in path.stem.split("_")]
        name = ("no", "yes")[words[0]] if label == "first" else f"{sum(words)} yes"
        clips.append(ClipRef(str(path), name, path.stem))
    class_names = ["no", "yes"] if label == "first" else [f"{k} yes" for k in range(9)]
    index = DatasetIndex("yesno", "YESNO", _source("yesno", root, label=label), class_names, clips)
    return _finish(index, decode, progress)


def _preset(key: str, loader: Callable, **fixed) -> Callable[..., AudioDataset | DatasetIndex]:
    """``loader`` with ``fixed`` options, naming its result after card ``key``."""
    @functools.wraps(loader)
    def load(root: str | Path, **options) -> AudioDataset | DatasetIndex:
        result = loader(root, **{**fixed, **options})
        result.name = CATALOG[key].name
        result.source = {**result.source, "key": key}
        if isinstance(result, DatasetIndex):
            result.key = key
        return result
    return load


#: Catalog key -> loader ``(root, *, decode=True, progress=None, **options)``.
LOADERS: dict[str, Callable[..., AudioDataset | DatasetIndex]] = {
    "speech_commands_v2": _preset("speech_commands_v2", load_speech_commands, task="all"),
    "speech_commands_v2_12": _preset("speech_commands_v2_12", load_speech_commands, task="12"),
    "speech_commands_v1": _preset("speech_commands_v1", load_speech_commands, task="all"),
    "speech_commands_yes_no": _preset("speech_commands_yes_no", load_speech_commands, task="yes_no"),
    "esc50": _preset("esc50", load_esc50),
    "esc10": _preset("esc10", load_esc50, esc10=True),
    "urbansound8k": _preset("urbansound8k", load_urbansound8k),
    "gtzan": _preset("gtzan", load_gtzan),
    "yesno": _preset("yesno", load_yesno),
}


def load_dataset(key: str, root: str | Path, **options) -> AudioDataset | DatasetIndex:
    """``LOADERS[key](root, **options)``, with an error naming the known keys for an unknown one."""
    get_card(key)
    return LOADERS[key](root, **options)

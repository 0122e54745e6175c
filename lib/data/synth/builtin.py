"""The built-in offline dataset, "Synthetic Speech Commands": keywords spoken by eSpeak NG on this machine.

Every clip is a word said by one synthetic *speaker* (an English accent + an eSpeak voice variant + that
speaker's own rate, pitch and pitch range), with per-clip jitter, an intonation (statement, question,
exclamation), a random place in the clip, a random level and background noise at a random SNR. Each clip's
``group`` is its speaker, so splits can keep voices apart.

Optionally some clips of every word are said by neural voices instead (:mod:`lib.data.synth.neural_voices`: Piper's
US English voice and Kokoro-82M's voices reading English phonemes), which sound like recorded people rather
than formant synthesis; their groups are named ``piper-...`` and ``kokoro-...``.

The set is written once to ``<cache_dir>/<key>/`` as 16 kHz mono WAV files plus ``manifest.csv``
(path, label, group) and ``spec.json``; a second request with the same :class:`BuiltinSpec` reuses it.
The folder is written under a temporary name and renamed when complete, so a crash never leaves half a set.
"""

from __future__ import annotations

import csv
import hashlib
import math
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from lib.data.synth import espeak, neural_voices
from lib.data.labels import SILENCE_LABEL, SPEECH_COMMANDS_KEYWORDS, UNKNOWN_LABEL
from lib.settings import settings

if TYPE_CHECKING:  # torch-free at run time: each generator worker is a fresh process importing this module
    from lib.data.dataset import ProgressCallback

__all__ = ["UNKNOWN_WORDS", "BuiltinSpec", "generate_builtin", "builtin_folder", "builtin_name"]

# The Speech Commands v2 auxiliary words: the `_unknown_` class says these.
UNKNOWN_WORDS = ("bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin", "nine", "one",
                 "seven", "sheila", "six", "three", "tree", "two", "wow", "zero", "backward", "forward", "follow",
                 "learn", "visual")
_INTONATION = ("", ".", "?", "!")  # eSpeak reads the punctuation as statement / question / exclamation


@dataclass(frozen=True)
class BuiltinSpec:
    """Everything that determines the built-in set; the same spec gives the same clips, bit for bit.

    Attributes:
        words: the keywords, one class each (any language ``voices`` speak).
        clips_per_word: clips for each word (and for `_unknown_` / `_silence_` when included).
        include_unknown: add an `_unknown_` class of other words (:data:`UNKNOWN_WORDS`).
        include_silence: add a `_silence_` class of background noise only.
        n_speakers: synthetic speakers (voice groups); each says every word several times.
        female_share: fraction of speakers drawn from eSpeak's female variants (:func:`lib.data.synth.espeak.female_variants`;
            about a sixth of all variants, so drawing uniformly would give mostly male voices); None draws
            every (accent, variant) identity alike.
        voices: eSpeak language voices (accents) speakers are drawn from.
        sample_rate: output sample rate in Hz.
        clip_seconds: clip length; words are placed at a random offset inside it.
        snr_db_range: background noise SNR range in dB, drawn uniformly per clip.
        noise_probability: fraction of clips that get background noise.
        seed: the random seed.
        piper_clips_per_word: extra clips of each word (and `_unknown_`) said by the Piper voice.
        kokoro_clips_per_word: extra clips of each word (and `_unknown_`) said by Kokoro voices.
    """

    words: tuple[str, ...] = SPEECH_COMMANDS_KEYWORDS
    clips_per_word: int = 300
    include_unknown: bool = False
    include_silence: bool = False
    n_speakers: int = 120
    female_share: float | None = 0.5
    voices: tuple[str, ...] = espeak.english_voices
    sample_rate: int = 16000
    clip_seconds: float = 1.0
    snr_db_range: tuple[float, float] = (10.0, 40.0)
    noise_probability: float = 0.8
    seed: int = 0
    piper_clips_per_word: int = 0
    kokoro_clips_per_word: int = 0
    version: int = field(default=1, repr=False)  # bump when the recipe changes, so old caches are not reused

    def __post_init__(self) -> None:
        words = tuple(w.strip() for w in self.words if w.strip())
        object.__setattr__(self, "words", words)
        object.__setattr__(self, "voices", tuple(self.voices))
        object.__setattr__(self, "snr_db_range", tuple(float(x) for x in self.snr_db_range))
        if not words:
            raise ValueError("words is empty: give at least one word to synthesize")
        if len(set(w.lower() for w in words)) != len(words):
            raise ValueError(f"words has duplicates: {list(words)}")
        if len(words) + self.include_unknown + self.include_silence < 2:
            raise ValueError("a classifier needs at least two classes: add a word or the _unknown_/_silence_ class")
        if self.clips_per_word < 1:
            raise ValueError(f"clips_per_word must be at least 1, got {self.clips_per_word}")
        if self.piper_clips_per_word < 0 or self.kokoro_clips_per_word < 0:
            raise ValueError("piper_clips_per_word and kokoro_clips_per_word cannot be negative")
        if self.n_speakers < 1:
            raise ValueError(f"n_speakers must be at least 1, got {self.n_speakers}")
        if self.clip_seconds <= 0.2:
            raise ValueError(f"clip_seconds must be more than 0.2 s, got {self.clip_seconds}")
        if self.female_share is not None and not 0 <= self.female_share <= 1:
            raise ValueError(f"female_share must be in [0, 1] or None, got {self.female_share}")
        if not self.voices:
            raise ValueError("voices is empty: give at least one eSpeak voice, e.g. 'en-us'")

    @property
    def class_names(self) -> list[str]:
        """Class names in label order: the words, then `_unknown_` and `_silence_` when included."""
        return list(self.words) + [UNKNOWN_LABEL] * self.include_unknown + [SILENCE_LABEL] * self.include_silence

    @property
    def neural_clips(self) -> dict[str, int]:
        """Extra clips per word of each neural engine, ``{"piper": n, "kokoro": m}`` (the order they render in)."""
        return {"piper": self.piper_clips_per_word, "kokoro": self.kokoro_clips_per_word}

    @property
    def neural_clips_per_word(self) -> int:
        return sum(self.neural_clips.values())

    @property
    def n_clips(self) -> int:
        spoken = len(self.words) + self.include_unknown
        return (spoken * (self.clips_per_word + self.neural_clips_per_word)
                + self.include_silence * self.clips_per_word)

    def key(self) -> str:
        """A short hash naming this spec's cache folder (eSpeak-only specs keep their pre-neural-voice keys)."""
        fields = asdict(self)
        for engine, count in self.neural_clips.items():
            if not count:
                del fields[f"{engine}_clips_per_word"]
        return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class _Speaker:
    voice: str
    variant: str
    rate: int
    pitch: int
    pitch_range: int

    @property
    def group(self) -> str:
        return f"{self.voice}+{self.variant}"


def _speakers(spec: BuiltinSpec, rng: np.random.Generator) -> list[_Speaker]:
    """Distinct (accent, variant) identities, each with its own speaking rate, pitch and range."""
    variants = espeak.list_variants()
    identities = [(v, x) for v in spec.voices for x in variants]
    n = min(spec.n_speakers, len(identities))
    female = np.array([x in espeak.female_variants() for _, x in identities])
    if spec.female_share is None or female.all() or not female.any():
        chosen = rng.choice(len(identities), size=n, replace=False)
    else:  # exactly round(share * n) female speakers, as far as there are enough identities of each kind
        n_female = min(int(female.sum()), max(n - int((~female).sum()), round(spec.female_share * n)))
        chosen = np.concatenate([rng.choice(np.flatnonzero(female), size=n_female, replace=False),
                                 rng.choice(np.flatnonzero(~female), size=n - n_female, replace=False)])
        chosen = chosen[rng.permutation(n)]
    return [_Speaker(*identities[i], rate=int(rng.integers(120, 230)), pitch=int(rng.integers(20, 80)),
                     pitch_range=int(rng.integers(20, 90))) for i in chosen]


def _trim_silence(waveform: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """Cut leading/trailing samples quieter than ``threshold`` of the peak. ``(time,)`` -> ``(time',)``."""
    loud = np.flatnonzero(np.abs(waveform) > threshold * max(np.abs(waveform).max(), 1e-8))
    return waveform[loud[0]:loud[-1] + 1] if loud.size else waveform


def _colored_noise(rng: np.random.Generator, n_samples: int) -> np.ndarray:
    """White, pink or brown noise with unit RMS, shaped in the frequency domain. ``(n_samples,)``."""
    exponent = rng.choice([0.0, 1.0, 2.0])  # power spectrum ~ 1/f^exponent
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    f = np.arange(spectrum.size, dtype=np.float64)
    f[0] = 1.0
    noise = np.fft.irfft(spectrum / f ** (exponent / 2), n=n_samples)
    return noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)


@dataclass(frozen=True)
class _NeuralSpeaker:
    """A neural-voice identity: a voice (Kokoro: a mix of voices) with its own tempo and pitch/formant shift."""

    engine: str                  # "piper" or "kokoro"
    name: str                    # the voice (Kokoro: the strongest in the mix) and a number
    weights: tuple[float, ...]   # Kokoro's style mix over neural_voices.KOKORO_VOICES; () for Piper
    accent: str                  # the eSpeak accent whose IPA Kokoro reads ("" for Piper)
    tempo: float                 # Piper: length scale (> 1 slower); Kokoro: speed (> 1 faster)
    shift: float                 # played back this much faster: pitch, formants and tempo rise together

    @property
    def group(self) -> str:
        return f"{self.engine}-{self.name}"


_PIPER_SPEAKERS = 12
_KOKORO_SPEAKERS = 30


def _neural_speakers(rng: np.random.Generator) -> dict[str, list[_NeuralSpeaker]]:
    """Speakers of both neural engines: Piper's one voice at several tempi and shifts; Kokoro's five voices
    (four female, one male) taken in turn as the main part of a random mix of all five."""
    piper = [_NeuralSpeaker("piper", f"{neural_voices.PIPER_VOICES[0]}-{i:02d}", (), "", tempo=float(rng.uniform(0.8, 1.25)),
                            shift=float(rng.uniform(0.85, 1.18))) for i in range(_PIPER_SPEAKERS)]
    kokoro = []
    for i in range(_KOKORO_SPEAKERS):
        main = i % len(neural_voices.KOKORO_VOICES)
        weights = 0.5 * rng.dirichlet(np.full(len(neural_voices.KOKORO_VOICES), 0.3))
        weights[main] += 0.5
        kokoro.append(_NeuralSpeaker(
            "kokoro", f"{neural_voices.KOKORO_VOICES[main]}-{i:02d}", tuple(float(w) for w in weights),
            accent=str(rng.choice(["en-us", "en-gb-x-rp"], p=[0.7, 0.3])), tempo=float(rng.uniform(0.8, 1.2)),
            shift=float(rng.uniform(0.92, 1.08))))
    return {"piper": piper, "kokoro": kokoro}


@dataclass(frozen=True)
class _ClipJob:
    """Everything needed to render one clip, drawn in the parent so workers only apply it."""

    path: str
    text: str | None          # None: silence (background noise only)
    speaker: _Speaker | _NeuralSpeaker | None
    seed: int

    @property
    def engine(self) -> str:
        return self.speaker.engine if isinstance(self.speaker, _NeuralSpeaker) else "espeak"


def _speak(text: str, speaker: _Speaker | _NeuralSpeaker, rng: np.random.Generator,
           seed: int) -> tuple[np.ndarray, int]:
    """``text`` said by ``speaker`` with per-clip jitter: ``((time,) float, sample_rate)``."""
    punctuation = _INTONATION[rng.integers(len(_INTONATION))]
    if isinstance(speaker, _Speaker):
        return espeak.synthesize(
            text + punctuation, voice=speaker.voice, variant=speaker.variant,
            rate=int(speaker.rate * rng.uniform(0.85, 1.15)),
            pitch=int(np.clip(speaker.pitch + rng.integers(-8, 9), 0, 99)),
            pitch_range=int(np.clip(speaker.pitch_range + rng.integers(-15, 16), 0, 100)), seed=seed % 2**31)
    tempo = speaker.tempo * rng.uniform(0.9, 1.1)
    if speaker.engine == "piper":
        speech, rate = neural_voices.piper_speak(text + punctuation, length_scale=tempo,
                                                 noise_scale=rng.uniform(0.3, 1.0),
                                                 noise_w_scale=rng.uniform(0.3, 1.2))
    else:
        phonemes = neural_voices.kokoro_phonemes(text, speaker.accent) + punctuation
        speech, rate = neural_voices.kokoro_speak(phonemes, speaker.weights, speed=tempo)
    # Declared at a higher rate, the clip plays faster and higher; rounded to 100 Hz to keep resampling cheap.
    return speech, int(round(rate * speaker.shift * rng.uniform(0.97, 1.03) / 100)) * 100


def _render_clip(spec: BuiltinSpec, job: _ClipJob) -> np.ndarray:
    """One clip ``(n_samples,)`` float32: ``job.text`` said by ``job.speaker``, placed at random and noised."""
    rng = np.random.default_rng(job.seed)
    n_samples = round(spec.sample_rate * spec.clip_seconds)
    clip = np.zeros(n_samples, dtype=np.float64)
    if job.text is not None and job.speaker is not None:
        speech, rate = _speak(job.text, job.speaker, rng, job.seed)
        speech = _trim_silence(speech)
        if rate != spec.sample_rate and speech.size:
            g = math.gcd(rate, spec.sample_rate)
            speech = resample_poly(speech, spec.sample_rate // g, rate // g)
        if speech.size > n_samples:  # too long for the clip: keep the middle
            start = (speech.size - n_samples) // 2
            speech = speech[start:start + n_samples]
        offset = int(rng.integers(0, n_samples - speech.size + 1))
        clip[offset:offset + speech.size] = speech / (np.abs(speech).max() + 1e-8) * rng.uniform(0.2, 0.95)
    signal_power = np.mean(clip ** 2)
    if job.text is None:  # silence: background noise only, at a random level
        clip += _colored_noise(rng, n_samples) * 10 ** (rng.uniform(-60, -20) / 20)
    elif rng.random() < spec.noise_probability:
        snr_db = rng.uniform(*spec.snr_db_range)
        clip += _colored_noise(rng, n_samples) * np.sqrt(signal_power / 10 ** (snr_db / 10))
    return np.clip(clip, -1.0, 1.0).astype(np.float32)


def _render_jobs(spec: BuiltinSpec, jobs: list[_ClipJob], folder: Path) -> None:
    """Render ``jobs`` into ``folder``. Meant for a fresh process (see :func:`generate_builtin`)."""
    if jobs and jobs[0].engine != "espeak":  # the neural graphs draw noise: seed this process's sequence
        neural_voices.seed(jobs[0].seed)
    for job in jobs:
        sf.write(folder / job.path, _render_clip(spec, job), spec.sample_rate, subtype="PCM_16")


def _job_file(spec: BuiltinSpec, jobs: list[_ClipJob], path: Path) -> Path:
    path.write_text(json.dumps({"spec": asdict(spec), "jobs": [asdict(j) for j in jobs]}))
    return path


def _speaker_from_dict(fields: dict | None) -> _Speaker | _NeuralSpeaker | None:
    if fields is None:
        return None
    if "engine" in fields:
        return _NeuralSpeaker(**{**fields, "weights": tuple(fields["weights"])})
    return _Speaker(**fields)


def _main(job_file: str, folder: str) -> None:
    """``python -m lib.data.synth.builtin JOBS.json FOLDER``: render one class's clips of one engine (the worker process)."""
    payload = json.loads(Path(job_file).read_text())
    spec = BuiltinSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in payload["spec"].items()})
    jobs = [_ClipJob(j["path"], j["text"], _speaker_from_dict(j["speaker"]), j["seed"]) for j in payload["jobs"]]
    _render_jobs(spec, jobs, Path(folder))


def _plan(spec: BuiltinSpec) -> dict[str, list[_ClipJob]]:
    """Draw every clip's word, speaker and seed, class by class (deterministic in ``spec.seed``).

    The neural-voice clips are drawn after all eSpeak clips from their own generator, so adding them leaves
    the eSpeak clips of a spec exactly as they were.
    """
    rng = np.random.default_rng(spec.seed)
    speakers = _speakers(spec, rng)

    def text_for(label: str, draw: np.random.Generator) -> str | None:
        if label == SILENCE_LABEL:
            return None
        return UNKNOWN_WORDS[int(draw.integers(len(UNKNOWN_WORDS)))] if label == UNKNOWN_LABEL else label

    plan = {}
    for label in spec.class_names:
        jobs = []
        for i in range(spec.clips_per_word):
            speaker = None if label == SILENCE_LABEL else speakers[int(rng.integers(len(speakers)))]
            text = text_for(label, rng)
            jobs.append(_ClipJob(f"{label}/{label}_{i:04d}.wav", text, speaker, int(rng.integers(2**62))))
        plan[label] = jobs
    if spec.neural_clips_per_word:
        neural_rng = np.random.default_rng([spec.seed, 1])
        neural = _neural_speakers(neural_rng)
        for label in spec.class_names:
            if label == SILENCE_LABEL:
                continue
            for engine, count in spec.neural_clips.items():
                for i in range(count):
                    speaker = neural[engine][int(neural_rng.integers(len(neural[engine])))]
                    plan[label].append(_ClipJob(f"{label}/{label}_{engine}_{i:04d}.wav", text_for(label, neural_rng),
                                                speaker, int(neural_rng.integers(2**62))))
    return plan


def _run_workers(spec: BuiltinSpec, plan: dict[str, list[_ClipJob]], staging: Path,
                 progress: ProgressCallback | None) -> None:
    """Render each class's clips of each engine in its own fresh worker process, as many at once as there are
    cores.

    eSpeak keeps hidden state between utterances, and the neural voices draw their noise from one seeded
    sequence per process, so the same call twice in one process can differ; a fresh process per (class,
    engine) makes the output depend only on the spec, whatever the number of cores.
    """
    batches = [[job for job in jobs if job.engine == engine] for jobs in plan.values()
               for engine in ("espeak", *spec.neural_clips)]
    pending = [_job_file(spec, jobs, staging / f".jobs-{i}.json") for i, jobs in enumerate(b for b in batches if b)]
    running: list[subprocess.Popen] = []
    root = str(Path(__file__).resolve().parents[3])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    try:
        while pending or running:
            while pending and len(running) < max(1, os.cpu_count() or 1):
                running.append(subprocess.Popen([sys.executable, "-m", "lib.data.synth.builtin", str(pending.pop(0)),
                                                 str(staging)], env=env, stderr=subprocess.PIPE))
            time.sleep(0.1)
            for process in [p for p in running if p.poll() is not None]:
                running.remove(process)
                if process.returncode != 0:
                    raise RuntimeError(f"built-in dataset worker failed: {process.stderr.read().decode()[-2000:]}")
            if progress:
                progress(sum(1 for _ in staging.glob("*/*.wav")), spec.n_clips)
    finally:
        for process in running:
            process.kill()
        for job_file in staging.glob(".jobs-*.json"):
            job_file.unlink()


def builtin_name(spec: BuiltinSpec) -> str:
    """What to call the set: "Synthetic Speech Commands" when its words are Speech Commands keywords, else
    "Synthetic keywords" with its words (a set of cat, dog and bird is not Speech Commands)."""
    if set(spec.words) <= set(SPEECH_COMMANDS_KEYWORDS):
        return "Synthetic Speech Commands"
    words = ", ".join(spec.words[:6]) + (", …" if len(spec.words) > 6 else "")
    return f"Synthetic keywords ({words})"


def builtin_folder(spec: BuiltinSpec, cache_dir: str | Path) -> Path:
    """The folder the set for ``spec`` lives in (it may not exist yet)."""
    return Path(cache_dir) / f"speech-commands-synth-{spec.key()}"


def generate_builtin(spec: BuiltinSpec = BuiltinSpec(), cache_dir: str | Path | None = None,
                     progress: ProgressCallback | None = None) -> Path:
    """Synthesize the set described by ``spec`` into ``cache_dir`` (or reuse it) and return its manifest path.

    Args:
        spec: what to generate.
        cache_dir: parent folder of the cached sets (default: the operator's, :func:`lib.settings.settings`).
        progress: called as ``progress(done, total)`` while clips are made.

    Returns:
        Path of ``manifest.csv`` (columns path, label, group; paths relative to its folder).
    """
    folder = builtin_folder(spec, cache_dir or settings().builtin_cache)
    manifest = folder / "manifest.csv"
    if manifest.is_file():
        if progress:
            progress(spec.n_clips, spec.n_clips)
        return manifest
    engines = [engine for engine, count in spec.neural_clips.items() if count]
    neural_voices.check_available(engines)  # a missing wheel fails here, with the pip command, not in a worker
    if "kokoro" in engines:
        neural_voices.prepare_kokoro()
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        plan = _plan(spec)
        for label in plan:
            (staging / label).mkdir()
        _run_workers(spec, plan, staging, progress)
        rows = [(job.path, label, job.speaker.group if job.speaker else f"noise{i % spec.n_speakers:03d}")
                for label, jobs in plan.items() for i, job in enumerate(jobs)]
        with open(staging / "manifest.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "label", "group"])
            writer.writerows(rows)
        (staging / "spec.json").write_text(json.dumps(asdict(spec), indent=2))
        try:
            os.replace(staging, folder)
        except OSError:  # another process finished the same set first: keep theirs
            if not manifest.is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


if __name__ == "__main__":
    _main(*sys.argv[1:3])

"""Test helpers: tiny copies of the catalog's datasets in their exact layouts, archives of them, unsafe archives,
and a loopback HTTP server that honours Range requests. Nothing here touches the network.

The fixture sets keep each real set's file names, metadata files, split lists and folder nesting, with short
tone-plus-noise WAVs (so they build in well under a second).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = ["write_tone", "make_speech_commands", "make_esc50", "make_urbansound8k", "make_gtzan", "make_yesno",
           "make_tar", "make_zip", "build_archives", "make_evil_archive", "EVIL_KINDS", "LoopbackServer",
           "closed_port_url", "sha256_of"]

SC_SPEAKERS = ("0a7c2a8d", "1b2c3d4e", "2c3d4e5f", "3d4e5f60")
SC_WORDS = ("yes", "no", "left", "bed", "cat")
ESC_CLASSES = {0: ("dog", True), 1: ("rooster", True), 2: ("pig", False), 10: ("rain", True)}
US8K_CLASSES = {0: "air_conditioner", 3: "dog_bark", 8: "siren"}
GTZAN_FIXTURE_GENRES = ("blues", "classical", "jazz")
YESNO_FILES = ("0_0_0_0_1_1_1_1", "0_0_1_0_0_0_1_0", "0_1_0_0_1_0_1_1", "0_0_1_1_1_0_0_0",
               "1_0_0_0_0_0_0_1", "1_1_0_1_1_1_1_0", "1_0_1_1_0_1_0_0", "1_1_1_1_1_1_1_1")
_GARBAGE = b"this is not audio, it is the corrupt jazz.00054.wav of the real GTZAN set" * 20


def write_tone(path: Path, seconds: float, sample_rate: int, freq: float = 440.0, channels: int = 1,
               seed: int = 0, subtype: str = "PCM_16") -> Path:
    """A tone plus a little noise, ``seconds`` long, as a WAV file (parent folders created)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    mono = 0.4 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)
    data = np.stack([mono * (1 - 0.2 * c) for c in range(channels)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data.astype(np.float32), sample_rate, subtype=subtype)
    return path


def make_speech_commands(root: Path, words=SC_WORDS, speakers=SC_SPEAKERS, takes: int = 2) -> Path:
    """Speech Commands' flat layout in ``root``: ``<word>/<speaker>_nohash_<n>.wav``, the split lists (speaker 0 in
    validation, speaker 1 in testing, as the official hash-by-speaker lists do), ``_background_noise_``."""
    validation, testing = [], []
    for w, word in enumerate(words):
        for s, speaker in enumerate(speakers):
            for n in range(takes):
                name = f"{word}/{speaker}_nohash_{n}.wav"
                seconds = 1.0 if n == 0 else 0.8  # some clips are shorter than 1 s, as in the real set
                write_tone(root / name, seconds, 16000, freq=300 + 150 * w, seed=w * 100 + s * 10 + n)
                (validation if s == 0 else testing if s == 1 else []).append(name)
    (root / "validation_list.txt").write_text("\n".join(validation) + "\n")
    (root / "testing_list.txt").write_text("\n".join(testing) + "\n")
    write_tone(root / "_background_noise_" / "white_noise.wav", 10.5, 16000, freq=50, seed=1)
    write_tone(root / "_background_noise_" / "running_tap.wav", 5.0, 16000, freq=60, seed=2)
    (root / "_background_noise_" / "README.md").write_text("background noise files\n")
    (root / "LICENSE").write_text("CC BY 4.0\n")
    (root / "README.md").write_text("Speech Commands fixture\n")
    return root


def make_esc50(parent: Path, seconds: float = 0.5) -> Path:
    """``ESC-50-master/meta/esc50.csv`` and ``ESC-50-master/audio/<fold>-<src>-<take>-<target>.wav``: every class
    in every fold, two takes (A, B) of one source recording each."""
    root = parent / "ESC-50-master"
    rows = []
    for fold in range(1, 6):
        for target, (category, esc10) in ESC_CLASSES.items():
            src = f"{100000 + fold * 1000 + target}"
            for take in "AB":
                name = f"{fold}-{src}-{take}-{target}.wav"
                write_tone(root / "audio" / name, seconds, 44100, freq=200 + 40 * target, seed=fold * 100 + target)
                rows.append((name, fold, target, category, str(esc10), src, take))
    (root / "meta").mkdir(parents=True, exist_ok=True)
    with open(root / "meta" / "esc50.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("filename", "fold", "target", "category", "esc10", "src_file", "take"))
        writer.writerows(rows)
    (root / "README.md").write_text("ESC-50 fixture\n")
    (root / "LICENSE").write_text("CC BY-NC 3.0\n")
    return root


def make_urbansound8k(parent: Path) -> Path:
    """``UrbanSound8K/metadata/UrbanSound8K.csv`` and ``UrbanSound8K/audio/fold<k>/<fsID>-<classID>-<occ>-<slice>.wav``
    for folds 1-10: mixed sample rates and channel counts, two slices of one recording per class and fold, and one
    row whose file is missing."""
    root = parent / "UrbanSound8K"
    rows = []
    rates = (44100, 48000, 22050, 16000)
    for fold in range(1, 11):
        for c, (class_id, name) in enumerate(US8K_CLASSES.items()):
            fs_id = 10000 + fold * 100 + class_id
            for slice_ in range(2):
                file_name = f"{fs_id}-{class_id}-0-{slice_}.wav"
                rate = rates[(fold + c) % len(rates)]
                write_tone(root / "audio" / f"fold{fold}" / file_name, 0.4 + 0.1 * slice_, rate,
                           freq=250 + 200 * c, channels=1 + (fold + slice_) % 2, seed=fold * 10 + c)
                rows.append((file_name, fs_id, slice_ * 0.5, slice_ * 0.5 + 0.4, 1, fold, class_id, name))
        (root / "audio" / f"fold{fold}" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    rows.append(("99999-3-0-0.wav", 99999, 0.0, 1.0, 1, 1, 3, "dog_bark"))  # listed, but no file
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    with open(root / "metadata" / "UrbanSound8K.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"))
        writer.writerows(rows)
    (root / "UrbanSound8K_README.txt").write_text("UrbanSound8K fixture\n")
    (root / "FREESOUNDCREDITS.txt").write_text("credits\n")
    return root


def make_gtzan(parent: Path, seconds: float = 3.2) -> Path:
    """``genres/<genre>/<genre>.000NN.wav`` (22,050 Hz), three tracks per genre, plus the corrupt
    ``jazz.00054.wav`` of the real set and a stray ``.mf`` file list."""
    root = parent / "genres"
    for g, genre in enumerate(GTZAN_FIXTURE_GENRES):
        for n in range(3):
            write_tone(root / genre / f"{genre}.{n:05d}.wav", seconds, 22050, freq=220 * (g + 1) + 30 * n,
                       seed=g * 10 + n)
    (root / "jazz" / "jazz.00054.wav").write_bytes(_GARBAGE)
    (root / "input.mf").write_text("blues/blues.00000.wav\tblues\n")
    return root


def make_yesno(parent: Path) -> Path:
    """``waves_yesno/<8 digits>.wav`` at 8 kHz (1 = yes) and the README."""
    root = parent / "waves_yesno"
    for i, stem in enumerate(YESNO_FILES):
        write_tone(root / f"{stem}.wav", 1.5, 8000, freq=180 + 20 * i, seed=i)
    (root / "README").write_text("YESNO fixture: 1 = yes, 0 = no\n")
    return root


def make_tar(source: Path, archive: Path, prefix: str | None = None) -> Path:
    """``source``'s content as a tar.gz; members under ``prefix/`` (default: ``source``'s name; ``"."``: flat,
    ``./word/file.wav`` like Speech Commands)."""
    prefix = source.name if prefix is None else prefix
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname=prefix)
    return archive


def make_zip(source: Path, archive: Path) -> Path:
    """``source`` as a zip with ``<name>/`` folder entries, like GitHub's branch archives."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted([source, *source.rglob("*")]):
            name = path.relative_to(source.parent).as_posix()
            if path.is_dir():
                zf.writestr(name + "/", b"")
            else:
                zf.write(path, name)
    return archive


def build_archives(work: Path, out: Path) -> dict[str, Path]:
    """Fixture archives named as the real ones, keyed by catalog archive key."""
    sc = make_speech_commands(work / "sc")
    return {
        "speech_commands_v2": make_tar(sc, out / "speech_commands_v0.02.tar.gz", prefix="."),
        "esc50": make_zip(make_esc50(work / "esc"), out / "ESC-50-master.zip"),
        "urbansound8k": make_tar(make_urbansound8k(work / "us8k"), out / "UrbanSound8K.tar.gz"),
        "gtzan": make_tar(make_gtzan(work / "gtzan"), out / "genres.tar.gz"),
        "yesno": make_tar(make_yesno(work / "yesno"), out / "waves_yesno.tar.gz"),
    }


EVIL_KINDS = ("tar-dotdot", "tar-absolute", "tar-symlink", "tar-hardlink", "zip-dotdot", "zip-absolute")


def _tar_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_evil_archive(path: Path, kind: str) -> Path:
    """An archive with one harmless member and one that tries to escape the extraction folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind.startswith("tar"):
        with tarfile.open(path, "w:gz") as tar:
            _tar_bytes(tar, "data/ok.txt", b"fine")
            if kind == "tar-dotdot":
                _tar_bytes(tar, "data/../../evil.txt", b"escaped")
            elif kind == "tar-absolute":
                _tar_bytes(tar, "/tmp/audiowb-evil-absolute.txt", b"escaped")
            elif kind == "tar-symlink":
                link = tarfile.TarInfo("data/link")
                link.type, link.linkname = tarfile.SYMTYPE, "../../"
                tar.addfile(link)
                _tar_bytes(tar, "data/link/evil.txt", b"escaped")
            elif kind == "tar-hardlink":
                link = tarfile.TarInfo("data/hard")
                link.type, link.linkname = tarfile.LNKTYPE, "../evil.txt"
                tar.addfile(link)
            else:
                raise ValueError(kind)
    else:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("data/ok.txt", b"fine")
            zf.writestr("../evil" if kind == "zip-dotdot" else "/tmp/audiowb-evil-absolute", b"escaped")
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------------ HTTP server
class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.directory``; honours ``Range: bytes=a-b`` unless ``server.ignore_range``; can drop the
    connection after ``server.drop_after`` bytes (first GET per path, or every GET with ``drop_always``)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        server = self.server
        name = self.path.split("?", 1)[0].lstrip("/")
        server.requests.append({"method": self.command, "path": name, "range": self.headers.get("Range")})
        path = Path(server.directory) / name
        if name in server.status_codes:
            self.send_error(server.status_codes[name])
            return
        if not name or not path.is_file():
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        size, start, end, status = len(data), 0, len(data) - 1, 200
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
        if match and not server.ignore_range:
            start = int(match.group(1))
            end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "none" if server.ignore_range else "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not body:
            return
        payload = data[start:end + 1]
        gets = sum(1 for r in server.requests if r["path"] == name and r["method"] == "GET")
        if server.drop_after is not None and (server.drop_always or gets == 1):
            self.wfile.write(payload[:server.drop_after])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(payload)


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 (a free port) serving ``directory``.

    Attributes:
        requests: every request as ``{"method", "path", "range"}``.
        drop_after: bytes sent before the connection is cut (None: never).
        drop_always: cut every GET, not only the first one per file.
        ignore_range: answer 200 with the whole file to Range requests.
        status_codes: ``{file name: HTTP status}`` to answer instead of the file.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.directory = str(self.directory)
        self._server.requests = []
        self._server.drop_after = None
        self._server.drop_always = False
        self._server.ignore_range = False
        self._server.status_codes = {}
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __getattr__(self, name):
        if name in ("requests", "drop_after", "drop_always", "ignore_range", "status_codes"):
            return getattr(self._server, name)
        raise AttributeError(name)

    def __setattr__(self, name, value) -> None:
        if name in ("drop_after", "drop_always", "ignore_range", "status_codes"):
            setattr(self._server, name, value)
        else:
            super().__setattr__(name, value)

    def url(self, name: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/{name}"

    def gets(self, name: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == name and r["method"] == "GET"]

    def __enter__(self) -> "LoopbackServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def closed_port_url(name: str = "archive.tar.gz") -> str:
    """A loopback URL on a port nobody listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"

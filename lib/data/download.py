"""Fetch the catalog's datasets: resumable downloads, SHA-256 checks and extraction that cannot escape its folder.

* :func:`download` fetches a URL to a file through ``<dest>.part`` (resumed with an HTTP ``Range`` request after
  an interruption, restarted cleanly when the server ignores it), verifies the SHA-256 when one is given and
  moves the file into place atomically. The SHA-256 it computed is written next to it (``<dest>.sha256``).
* :func:`extract` unpacks ``.tar.gz``/``.tgz``/``.tar``/``.zip`` into a temporary folder renamed when complete,
  refusing members that would land outside it (absolute paths, ``..``, links pointing out, device files).
* :func:`fetch_dataset` does both for a :data:`lib.data.catalog.CATALOG` key into the data folder
  (:func:`lib.settings.settings`: ``AUDIOWB_DATA_DIR`` or the repository's ``data/``): ``<data>/downloads/<archive>`` and ``<data>/<key>/``. It skips what is
  already there, accepts a manually downloaded archive (``local_archive``) or an already extracted copy
  (``existing_root``), and returns the dataset root for :data:`lib.data.catalog.LOADERS`.

Command line: ``python -m lib.data.download KEY [--data-dir D] [--url U] [--sha256 S] [--archive A]
[--existing-root R]``, or ``--list`` for the catalog.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable

from lib.data.catalog import CATALOG, check_layout, find_root, get_card, resolve_source
from lib.data.dataset import DatasetError
from lib.settings import settings

__all__ = ["DownloadError", "download", "extract", "fetch_dataset", "dataset_folder",
           "archive_path", "sha256_file", "main"]

log = logging.getLogger(__name__)

#: ``progress(bytes_done, bytes_total or None, rate_bytes_per_s, eta_s or None)``
DownloadProgress = Callable[[int, "int | None", float, "float | None"], None]
#: ``progress(done, total)`` in archive bytes read
ExtractProgress = Callable[[int, int], None]
_USER_AGENT = "audio-workbench/1.0 (+python urllib)"
_REPORT_EVERY_S = 0.1


class DownloadError(RuntimeError):
    """A download or an extraction failed; the message says what to do about it (on the command line).

    Attributes:
        problem: What went wrong, without the command-line advice (an app says what to do in its own words);
            the whole message when there is no separate advice.
        unreachable: True when the server could not be reached or answered with an error (offline, dead URL).
    """

    def __init__(self, message: str, problem: str | None = None, unreachable: bool = False) -> None:
        super().__init__(message)
        self.problem = problem or message
        self.unreachable = unreachable


def dataset_folder(key: str, data_dir: str | Path | None = None) -> Path:
    """Where dataset ``key``'s archive is extracted: ``<data_dir>/<archive key>``."""
    return Path(data_dir or settings().data_dir) / get_card(key).source_key


def archive_path(key: str, data_dir: str | Path | None = None) -> Path:
    """Where dataset ``key``'s archive is downloaded to (and where to put one downloaded by hand)."""
    return Path(data_dir or settings().data_dir) / "downloads" / get_card(key).archive_name


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _record_sha256(path: Path, digest: str) -> None:
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    log.info("SHA-256 of %s: %s", path, digest)


# ------------------------------------------------------------------------------------------------ download
class _Interrupted(Exception):
    """The body stopped before its end (connection dropped, timeout): resume from what arrived."""


class _Restart(Exception):
    """The partial file cannot be resumed (range not satisfiable, wrong range): start from zero."""


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """``bytes 100-999/1000`` -> ``(100, 1000)``; unknown parts are None."""
    match = re.match(r"bytes\s+(\d+)-\d+/(\d+|\*)", value or "")
    if not match:
        return None, None
    return int(match.group(1)), None if match.group(2) == "*" else int(match.group(2))


def _transfer(url: str, part: Path, progress: DownloadProgress | None, chunk_size: int, timeout: float) -> None:
    """One HTTP request appending to (or restarting) ``part``; returns when the body is complete."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            raise _Restart() from error
        raise
    with response:
        status = response.getcode() or 200
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if offset and status == 206:
            start, total = _parse_content_range(response.headers.get("Content-Range"))
            if start != offset:
                raise _Restart()
            total = total if total is not None else (offset + length if length is not None else None)
            mode = "ab"
        else:  # a fresh request, or the server ignored the Range header: start over
            offset, total, mode = 0, length, "wb"
        if total is not None:
            free = shutil.disk_usage(part.parent).free
            if total - offset > free:
                raise DownloadError(f"{url} is {total / 1e9:.2f} GB and {part.parent} has only {free / 1e9:.2f} GB "
                                    "free: free some space or choose another data folder")
        done, started, last_report = offset, time.monotonic(), 0.0

        def report(final: bool = False) -> None:
            nonlocal last_report
            now = time.monotonic()
            if progress is None or (not final and now - last_report < _REPORT_EVERY_S):
                return
            last_report = now
            rate = (done - offset) / max(now - started, 1e-6)
            eta = (total - done) / rate if total is not None and rate > 0 else None
            progress(done, total, rate, eta)

        report(final=True)
        with open(part, mode) as f:
            try:
                while chunk := response.read(chunk_size):
                    f.write(chunk)
                    done += len(chunk)
                    report()
            except (http.client.HTTPException, OSError) as error:  # reset, timeout, incomplete read
                raise _Interrupted(f"{type(error).__name__}: {error}") from error
        report(final=True)
        if total is not None and done < total:
            raise _Interrupted(f"the connection closed after {done:,} of {total:,} bytes")


def _manual_hint(url: str, dest: Path, hint: str | None) -> str:
    return (f"If the address is dead or moved, download the file by other means (a browser, a mirror) and save it "
            f"as {dest.resolve()}, then run again" + (f"; {hint}" if hint else "") + ".")


def download(url: str, dest: str | Path, sha256: str | None = None, progress: DownloadProgress | None = None,
             chunk_size: int = 1 << 20, timeout: float = 30, *, retries: int = 3, retry_wait: float = 1.0,
             hint: str | None = None) -> Path:
    """Download ``url`` to ``dest``, resuming a partial download, then verify and move it into place.

    Bytes go to ``dest + ".part"``; an existing ``.part`` is resumed with an HTTP ``Range`` request (a server
    answering 200 instead of 206 restarts it from zero). A transfer cut off mid-way is resumed up to ``retries``
    times. A file already at ``dest`` is returned as is (after checking ``sha256`` when given).

    Args:
        url: ``http(s)://`` (or ``file://``) address.
        dest: the final file path.
        sha256: expected SHA-256 (hex); None: not verified (the computed one is logged and written to
            ``dest + ".sha256"`` either way).
        progress: called as ``progress(bytes_done, bytes_total or None, rate_bytes_per_s, eta_s or None)``.
        chunk_size: bytes per read.
        timeout: seconds to wait for the server (connecting, and between reads).
        retries: resumptions after an interrupted transfer.
        retry_wait: seconds before the first resumption (doubling each time).
        hint: extra advice appended to the error for a dead URL (how else to get the file).

    Returns:
        ``dest``.

    Raises:
        DownloadError: HTTP error, unreachable server, transfer still incomplete after the retries, or checksum
            mismatch (the bad file is deleted). The message names the URL and where a manually downloaded copy
            should go.
    """
    dest = Path(dest)
    expected = sha256.strip().lower() if sha256 else None
    if dest.is_file():
        if expected is not None:
            actual = sha256_file(dest)
            if actual != expected:
                raise DownloadError(f"{dest} is already there but its SHA-256 is {actual}, expected {expected}: "
                                    "delete it to download again (or give the right checksum)")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        try:
            _transfer(url, part, progress, chunk_size, timeout)
            break
        except _Restart:
            part.unlink(missing_ok=True)
        except _Interrupted as error:
            attempt += 1
            if attempt > retries:
                raise DownloadError(f"downloading {url} failed after {retries} resumption(s) ({error}); the "
                                    f"{part.stat().st_size if part.exists() else 0:,} bytes received are kept in "
                                    f"{part} and the next attempt resumes from there. "
                                    + _manual_hint(url, dest, hint)) from error
            log.warning("download of %s interrupted (%s); resuming", url, error)
            time.sleep(min(retry_wait * 2 ** (attempt - 1), 30))
        except urllib.error.HTTPError as error:
            problem = f"could not download {url}: HTTP {error.code} {error.reason}"
            raise DownloadError(f"{problem}. " + _manual_hint(url, dest, hint), problem, unreachable=True) from error
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
            problem = f"could not reach {url} ({getattr(error, 'reason', None) or error})"
            raise DownloadError(f"{problem}. " + _manual_hint(url, dest, hint), problem, unreachable=True) from error
    actual = sha256_file(part)
    if expected is not None and actual != expected:
        part.unlink(missing_ok=True)
        raise DownloadError(f"the file downloaded from {url} is corrupt or not the expected one: its SHA-256 is "
                            f"{actual}, expected {expected}. It was deleted; run again to retry, or give the right "
                            "checksum if the file changed upstream.")
    os.replace(part, dest)
    _record_sha256(dest, actual)
    return dest


# ------------------------------------------------------------------------------------------------ extract
MAX_EXPANSION = 20                 # unpacked bytes per archive byte, at most (audio archives: 1-3)
EXPANSION_SLACK_BYTES = 64 * 2**20


def _safe_member(name: str, archive: Path) -> str:
    """The member's path relative to the extraction folder; raises DownloadError for one escaping it."""
    clean = name.replace("\\", "/")
    if clean.startswith("/") or re.match(r"^[A-Za-z]:", clean):
        raise DownloadError(f"{archive.name} is unsafe: member {name!r} has an absolute path; nothing extracted")
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DownloadError(f"{archive.name} is unsafe: member {name!r} points outside the extraction folder "
                            "('..'); nothing extracted")
    return "/".join(parts)


def _check_link(member: str, link: str, archive: Path, hard: bool) -> None:
    """A symlink (relative to its folder) or hardlink (relative to the archive root) must stay inside."""
    if link.startswith("/") or re.match(r"^[A-Za-z]:", link.replace("\\", "/")):
        raise DownloadError(f"{archive.name} is unsafe: link {member!r} points to the absolute path {link!r}; "
                            "nothing extracted")
    base = PurePosixPath() if hard else PurePosixPath(member).parent
    depth = 0
    for part in (base / link.replace("\\", "/")).parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            raise DownloadError(f"{archive.name} is unsafe: link {member!r} -> {link!r} points outside the "
                                "extraction folder; nothing extracted")


def _expansion_limit(archive: Path) -> int:
    """The most bytes ``archive`` may unpack to: :data:`MAX_EXPANSION` times its size plus
    :data:`EXPANSION_SLACK_BYTES` (audio compresses far less than that; a zip bomb far more)."""
    return MAX_EXPANSION * archive.stat().st_size + EXPANSION_SLACK_BYTES


def _check_expansion(total: int, archive: Path) -> None:
    if total > _expansion_limit(archive):
        raise DownloadError(f"{archive.name} unpacks to more than {_expansion_limit(archive) / 1e6:,.0f} MB from "
                            f"{archive.stat().st_size / 1e6:,.1f} MB (over {MAX_EXPANSION} times its size): it is "
                            "not an audio dataset (a zip bomb?); nothing extracted")


def _extract_tar(archive: Path, staging: Path, progress: ExtractProgress | None) -> None:
    size = archive.stat().st_size
    last, unpacked = 0.0, 0
    with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r:*") as tar:
        for member in tar:  # one streaming pass: each member is checked before it is written
            unpacked += member.size if member.isfile() else 0
            _check_expansion(unpacked, archive)
            name = _safe_member(member.name, archive)
            if member.issym() or member.islnk():
                _check_link(name, member.linkname, archive, hard=member.islnk())
            elif not (member.isfile() or member.isdir()):
                raise DownloadError(f"{archive.name} is unsafe: member {member.name!r} is a device or pipe; "
                                    "nothing extracted")
            if not name:
                continue
            member.name = name
            if hasattr(tarfile, "data_filter"):
                tar.extract(member, staging, filter="data")
            else:  # pragma: no cover - Python without extraction filters
                tar.extract(member, staging)
            if progress and time.monotonic() - last > _REPORT_EVERY_S:
                progress(min(raw.tell(), size), size)
                last = time.monotonic()
    if progress:
        progress(size, size)


def _extract_zip(archive: Path, staging: Path, progress: ExtractProgress | None) -> None:
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for info in members:  # check everything first: the central directory is cheap to read
            name = _safe_member(info.filename, archive)
            if stat.S_ISLNK(info.external_attr >> 16):
                _check_link(name, zf.read(info).decode("utf-8", "replace"), archive, hard=False)
        total, done, last = sum(i.file_size for i in members) or 1, 0, 0.0
        _check_expansion(total, archive)
        for info in members:
            info.filename = _safe_member(info.filename, archive) + ("/" if info.is_dir() else "")
            if info.filename.strip("/"):
                zf.extract(info, staging)
            done += info.file_size
            if progress and time.monotonic() - last > _REPORT_EVERY_S:
                progress(done, total)
                last = time.monotonic()
        if progress:
            progress(total, total)


def _archive_kind(archive: Path) -> str:
    name = archive.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")):
        return "tar"
    if zipfile.is_zipfile(archive):
        return "zip"
    if tarfile.is_tarfile(archive):
        return "tar"
    raise DownloadError(f"{archive} is not a .tar.gz, .tgz, .tar or .zip archive")


def extract(archive: str | Path, target_dir: str | Path, progress: ExtractProgress | None = None) -> Path:
    """Unpack ``archive`` into ``target_dir`` safely and atomically.

    Members are written into a temporary folder next to ``target_dir``, which is renamed to ``target_dir`` when
    everything is out; a failure leaves nothing behind. Members with absolute paths, ``..`` components, links
    pointing outside, or device files make the whole extraction fail.

    Args:
        archive: a ``.tar.gz``, ``.tgz``, ``.tar`` or ``.zip`` file.
        target_dir: the folder to create (it must not exist, or be empty).
        progress: called as ``progress(done, total)`` in archive bytes.

    Returns:
        ``target_dir``.

    Raises:
        DownloadError: unsafe member, damaged or unknown archive, or ``target_dir`` not empty.
    """
    archive, target = Path(archive), Path(target_dir)
    if not archive.is_file():
        raise DownloadError(f"archive not found: {archive}")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DownloadError(f"{target} already exists and is not empty: delete it to extract {archive.name} again")
    kind = _archive_kind(archive)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-extract-", dir=target.parent))
    try:
        (_extract_zip if kind == "zip" else _extract_tar)(archive, staging, progress)
        if target.exists():
            target.rmdir()
        os.replace(staging, target)
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise DownloadError(f"{archive} is damaged or truncated ({error}): delete it and download it again") \
            from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


# ------------------------------------------------------------------------------------------------ datasets
def _fetch_hint(key: str, archive: Path) -> str:
    env = get_card(key).source_key.upper()
    return (f"or pass local_archive=PATH (command line: --archive PATH) for an archive saved elsewhere, "
            f"existing_root=PATH (--existing-root PATH) for a copy already extracted, or set AUDIOWB_URL_{env} to "
            f"a mirror (and AUDIOWB_SHA256_{env}=none if its bytes differ)")


def _verify(path: Path, expected: str | None) -> str:
    actual = sha256_file(path)
    if expected is not None and actual != expected:
        raise DownloadError(f"{path} has SHA-256 {actual}, expected {expected}: it is not the official archive "
                            "(or it is incomplete). Replace it, or pass the checksum of the copy you trust.")
    return actual


def fetch_dataset(key: str, data_dir: str | Path | None = None, progress: DownloadProgress | None = None,
                  url: str | None = None, sha256: str | None = None, local_archive: str | Path | None = None,
                  existing_root: str | Path | None = None, extract_progress: ExtractProgress | None = None,
                  keep_archive: bool = True) -> Path:
    """Make dataset ``key`` available on disk and return its root (the folder its loader reads).

    In order: ``existing_root`` is checked and returned (nothing is copied); an already extracted
    ``<data_dir>/<key>/`` is returned; otherwise the archive (``local_archive``, or one already at
    :func:`archive_path`, or downloaded there from the URL) is verified and extracted.

    Args:
        key: a :data:`lib.data.catalog.CATALOG` key (a preset fetches its parent's archive).
        data_dir: the data folder (default :func:`lib.settings.settings`' ``data_dir``).
        progress: download progress, see :func:`download`.
        url: override the archive URL (else ``AUDIOWB_URL_<KEY>``, else the card's).
        sha256: override the checksum (``""``: no verification; else ``AUDIOWB_SHA256_<KEY>``, else the card's).
        local_archive: an archive downloaded by hand, anywhere on disk.
        existing_root: an extracted copy already on disk.
        extract_progress: extraction progress ``(done, total)``.
        keep_archive: keep the downloaded archive after extraction.

    Returns:
        The dataset root.

    Raises:
        DownloadError: with what to do (the URL, where to put a manual download, which option to use).
    """
    card = get_card(key)
    if existing_root is not None:
        try:
            return check_layout(key, existing_root)
        except DatasetError as error:
            raise DownloadError(str(error)) from error
    target = dataset_folder(key, data_dir)
    root = find_root(key, target) if target.is_dir() else None
    if root is not None:
        return root
    if target.exists() and any(target.iterdir()):
        raise DownloadError(f"{target} exists but does not hold {card.name}: delete it (or move it) and run again")
    archive = Path(local_archive).expanduser() if local_archive else archive_path(key, data_dir)
    resolved_url, checksum = resolve_source(key, url, sha256)
    if local_archive is not None and not archive.is_file():
        raise DownloadError(f"archive not found: {archive}")
    if archive.is_file():
        digest = _verify(archive, checksum)
    else:
        download(resolved_url, archive, checksum, progress, hint=_fetch_hint(key, archive))
        digest = (archive.with_name(archive.name + ".sha256").read_text().split() or [""])[0]
    if checksum is None:
        log.info("%s: no SHA-256 pinned for %s; its SHA-256 is %s", card.name, archive.name, digest)
    extract(archive, target, extract_progress)
    root = find_root(key, target)
    if root is None:
        shutil.rmtree(target, ignore_errors=True)
        raise DownloadError(f"{archive} does not contain {card.name} (the expected layout is missing): it is not the "
                            "right archive. Delete it and download again, or point at the right file.")
    (target / ".audiowb-source.json").write_text(json.dumps(
        {"key": card.source_key, "url": resolved_url, "archive": str(archive), "sha256": digest,
         "verified": checksum is not None, "fetched": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1))
    if not keep_archive and local_archive is None:
        archive.unlink(missing_ok=True)
    return root


# ------------------------------------------------------------------------------------------------ command line
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lib.data.download",
                                description="Download and extract a dataset of the catalog.")
    p.add_argument("key", nargs="?", help=f"one of: {', '.join(CATALOG)}")
    p.add_argument("--list", action="store_true", help="list the catalog and exit")
    p.add_argument("--data-dir", default=None,
                   help="data folder (default: $AUDIOWB_DATA_DIR or the repository's data/)")
    p.add_argument("--url", help="download from this URL instead")
    p.add_argument("--sha256", help="expected SHA-256 ('none' to skip the check)")
    p.add_argument("--archive", help="use this manually downloaded archive")
    p.add_argument("--existing-root", help="use this already extracted copy (only checked)")
    p.add_argument("--delete-archive", action="store_true", help="delete the downloaded archive after extraction")
    return p


def _print_catalog() -> None:
    for card in CATALOG.values():
        classes = f"{len(card.classes)} classes" if isinstance(card.classes, tuple) else card.classes.split(":")[0]
        print(f"{card.key:24} {card.name} - {card.task}; {card.n_clips:,} clips, {classes}; {card.size_on_disk} on "
              f"disk; {card.license}")


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    args = _parser().parse_args(argv)
    if args.list or not args.key:
        _print_catalog()
        return 0 if args.list else 2
    bars: dict[str, tqdm] = {}

    def on_download(done: int, total: int | None, rate: float, eta: float | None) -> None:
        bar = bars.get("download")
        if bar is None:
            bar = bars["download"] = tqdm(total=total, initial=done, unit="B", unit_scale=True, unit_divisor=1024,
                                          desc="download", dynamic_ncols=True)
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    def on_extract(done: int, total: int) -> None:
        bar = bars.get("extract")
        if bar is None:
            if "download" in bars:
                bars["download"].close()
            bar = bars["extract"] = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="extract",
                                         dynamic_ncols=True)
        bar.update(done - bar.n)

    try:
        root = fetch_dataset(args.key, args.data_dir, on_download, url=args.url, sha256=args.sha256,
                             local_archive=args.archive, existing_root=args.existing_root,
                             extract_progress=on_extract, keep_archive=not args.delete_archive)
    except (DownloadError, DatasetError) as error:
        for bar in bars.values():
            bar.close()
        print(f"error: {error}", file=sys.stderr)
        return 1
    for bar in bars.values():
        bar.close()
    record = root / ".audiowb-source.json"
    for candidate in (record, dataset_folder(args.key, args.data_dir) / ".audiowb-source.json"):
        if candidate.is_file():
            info = json.loads(candidate.read_text())
            state = "verified" if info.get("verified") else "not verified: no checksum pinned"
            print(f"archive SHA-256: {info.get('sha256')} ({state})")
            break
    print(f"{get_card(args.key).name} is ready in {root}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    sys.exit(main())

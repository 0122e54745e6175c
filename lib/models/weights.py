"""Pretrained weights: a cache in the data folder, downloads through :func:`lib.data.download.download`, and a user's files.

* :func:`weights_dir` is the cache, ``<data folder>/weights`` (:func:`lib.settings.settings`).
* :func:`fetch_weights` returns ``<cache>/<basename of url>`` when it is there (and its SHA-256 matches when one is
  given), else downloads it (resumed after an interruption, progress reported, SHA-256 checked). When the server
  cannot be reached or the file is not the expected one it raises :class:`WeightsUnavailable`, whose message says
  where to put the file by hand and that the model can be trained from scratch instead.
* :func:`mirror_url` sends every download to another server when ``AUDIOWB_WEIGHTS_MIRROR`` is set (the URL's
  scheme and host replaced, its path kept): a local mirror for machines without internet, and the tests' loopback
  server (nothing downloads from the internet at test time).
* :func:`load_state_file` reads a ``.pth``/``.pt`` state dict a user has (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from lib.data.download import DownloadError, DownloadProgress, download, sha256_file
from lib.settings import settings

if TYPE_CHECKING:
    import torch

__all__ = ["MIRROR_ENV", "WeightsUnavailable", "weights_dir", "mirror_url", "weights_path", "fetch_weights",
           "load_state_file"]

MIRROR_ENV = "AUDIOWB_WEIGHTS_MIRROR"
_SCRATCH_ADVICE = ("or train the model from scratch instead (pretrained=False on the command line or in code, "
                   "the Train page's \"pretrained weights\" box unticked)")


class WeightsUnavailable(DownloadError):
    """Pretrained weights could not be had (offline, dead URL, wrong file); the message says what to do."""


def weights_dir() -> Path:
    """The weights cache: ``<data folder>/weights``."""
    return settings().data_dir / "weights"


def mirror_url(url: str) -> str:
    """``url`` with its scheme and host replaced by ``$AUDIOWB_WEIGHTS_MIRROR`` (path kept) when that is set.

    With ``AUDIOWB_WEIGHTS_MIRROR=http://127.0.0.1:8765``, ``https://download.pytorch.org/models/x.pth`` becomes
    ``http://127.0.0.1:8765/models/x.pth``.
    """
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        return url
    base, parts = urlsplit(mirror), urlsplit(url)
    path = base.path.rstrip("/") + parts.path
    return urlunsplit((base.scheme, base.netloc, path, parts.query, ""))


def weights_path(url: str) -> Path:
    """Where :func:`fetch_weights` keeps ``url``'s file: ``weights_dir() / <basename of url>``."""
    name = PurePosixPath(urlsplit(url).path).name
    if not name:
        raise ValueError(f"{url!r} does not name a file: give the URL of the weights file itself")
    return weights_dir() / name


def fetch_weights(url: str, sha256: str | None = None, progress: DownloadProgress | None = None) -> Path:
    """The weights file at ``url``, from the cache or downloaded into it.

    Args:
        url: the file's address (its basename names the cached file); downloaded from :func:`mirror_url` of it.
        sha256: its expected SHA-256 (hex); None: not checked.
        progress: ``progress(bytes_done, bytes_total or None, rate_bytes_per_s, eta_s or None)`` while downloading.

    Returns:
        The cached file's path.

    Raises:
        WeightsUnavailable: the server could not be reached, answered with an error, the transfer did not complete,
            or the file (cached or downloaded) has another SHA-256. The message names the exact path where a
            manually downloaded copy should go, and offers training from scratch.
    """
    dest = weights_path(url)
    expected = sha256.strip().lower() if sha256 else None
    if dest.is_file():
        actual = sha256_file(dest) if expected else None
        if actual == expected:
            return dest
        raise WeightsUnavailable(
            f"{dest} is there but it is not the expected weights (its SHA-256 is {actual}, expected {expected}): "
            f"delete it and run again to download {url}, put the right file at {dest}, {_SCRATCH_ADVICE}.",
            f"{dest} has SHA-256 {actual}, expected {expected}")
    source = mirror_url(url)
    try:
        return download(source, dest, sha256=expected, progress=progress)
    except DownloadError as error:
        raise WeightsUnavailable(
            f"{error.problem}. Download {url} by other means and put it at {dest}, {_SCRATCH_ADVICE}.",
            error.problem, unreachable=error.unreachable) from error


def load_state_file(path: str | Path) -> "dict[str, torch.Tensor]":
    """Read a state dict from a ``.pth``/``.pt`` file (``torch.load(weights_only=True)``, onto the CPU).

    A checkpoint that wraps its state dict under ``"state_dict"`` or ``"model"`` is unwrapped.

    Raises:
        ValueError: the file is missing, not a PyTorch file, or does not hold a mapping of names to tensors.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no weights file at {path}: give the path of a .pth or .pt state dict")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip or torch errors: all mean "not a state dict we can read"
        raise ValueError(f"{path} is not a PyTorch state dict that can be read safely ({type(error).__name__}: "
                         f"{error}); save one with torch.save(model.state_dict(), path)") from error
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict (names to tensors): save one "
                         "with torch.save(model.state_dict(), path)")
    return state

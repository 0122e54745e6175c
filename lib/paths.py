"""Confined paths: every path a page accepts, or reads from a run file, must lie inside the allowed folders.

The allowed folders are the operator's (:attr:`lib.settings.Settings.allowed_roots`: the data folder, the runs
folder and the folders listed in ``AUDIOWB_ALLOWED_DIRS``). :func:`confine` resolves a path the way the operating
system will open it (``~``, ``..`` and symbolic links followed) and refuses it unless the result lies inside one
of them, so neither ``../../etc/passwd`` nor a link planted inside the data folder reaches other files.

The command line (``python -m lib.engine.train``) is the operator's own and is not confined; the pages are.

Example:
    >>> folder = confine(user_text)            # PathNotAllowed (a ValueError) names the allowed folders
    >>> confine(clip, roots=(run.path, *allowed_roots()))
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["PathNotAllowed", "allowed_roots", "confine", "is_inside"]

_MAX_SHOWN = 200  # characters of a refused path quoted back in a message


class PathNotAllowed(ValueError):
    """A path lies outside the allowed folders (or is not a usable path at all).

    Attributes:
        path: The path as given.
        roots: The allowed folders.
    """

    def __init__(self, path: object, roots: Iterable[Path], problem: str | None = None) -> None:
        self.path = str(path)
        self.roots = tuple(Path(r) for r in roots)
        shown = self.path if len(self.path) <= _MAX_SHOWN else self.path[:_MAX_SHOWN] + "..."
        folders = ", ".join(f"`{r}`" for r in self.roots) or "none"
        what = problem or "is outside the folders this app may read"
        super().__init__(f"{shown!r} {what}. Allowed folders: {folders}. Put the files inside one of them (the "
                         "server's operator can allow more folders with AUDIOWB_ALLOWED_DIRS)")


def allowed_roots() -> tuple[Path, ...]:
    """The folders pages may read: :attr:`lib.settings.Settings.allowed_roots` of this process."""
    from lib.settings import settings

    return settings().allowed_roots


def _resolve(path: str | os.PathLike, base: Path) -> Path:
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = base / candidate
    return candidate.resolve(strict=False)


def is_inside(path: str | os.PathLike, roots: Iterable[str | os.PathLike]) -> bool:
    """Whether ``path``, resolved (``..`` and links followed), is one of ``roots`` or lies inside one."""
    try:
        resolved = Path(path).resolve(strict=False)
        folders = [Path(r).resolve(strict=False) for r in roots]
    except (OSError, RuntimeError, ValueError):  # a link loop, a name too long, a NUL byte
        return False
    return any(resolved == folder or folder in resolved.parents for folder in folders)


def confine(path: str | os.PathLike, roots: Iterable[str | os.PathLike] | None = None) -> Path:
    """The resolved ``path`` when it lies inside one of ``roots``; else :class:`PathNotAllowed`.

    Args:
        path: A path typed on a page or read from a run file. ``~`` is expanded; a relative path is taken
            relative to the first root (the data folder by default).
        roots: The allowed folders (default :func:`allowed_roots`).

    Returns:
        The absolute path with ``..`` and symbolic links resolved (what to open from now on). It need not exist.

    Raises:
        PathNotAllowed: The path is empty, malformed (a NUL byte, a link loop) or resolves outside every root.
    """
    folders = tuple(Path(r) for r in (allowed_roots() if roots is None else roots))
    text = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    if not text.strip():
        raise PathNotAllowed(text, folders, "is empty: type a path")
    if "\0" in text:
        raise PathNotAllowed(text.replace("\0", "\\0"), folders, "is not a valid path")
    try:
        resolved = _resolve(text.strip(), folders[0].resolve() if folders else Path.cwd())
    except (OSError, RuntimeError, ValueError):
        raise PathNotAllowed(text, folders, "cannot be resolved (a link loop or a name too long)") from None
    if not folders or not is_inside(resolved, folders):
        raise PathNotAllowed(text, folders)
    return resolved

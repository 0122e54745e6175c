"""The operator's settings, read once, with one meaning for the app, the command line and ``lib``.

Where datasets and runs live and which other folders the app may read are the server's settings, not a page's:
they come from the environment (or a ``.env``-style shell wrapper), never from a browser session.

Environment:
    ``AUDIOWB_DATA_DIR``: datasets, downloads, the built-in set's cache and recordings (default: ``data/`` in the
        repository). A relative value is relative to the working directory.
    ``AUDIOWB_RUNS_DIR``: saved runs (default: ``models/`` in the repository).
    ``AUDIOWB_ALLOWED_DIRS``: more folders whose audio and CSV files pages may read (``os.pathsep``-separated;
        default none). Pages read only inside :attr:`Settings.allowed_roots`.
    ``AUDIOWB_BUILTIN_CLIPS``: clips per word of the built-in set the app opens on (default 300).
    ``AUDIOWB_TRAIN_THREADS``: torch threads of a training job (read by :func:`lib.device.train_threads`).

Tests and scripts that change the environment call :func:`reload_settings` afterwards.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ROOT", "Settings", "load_settings", "settings", "reload_settings", "positive_int"]

ROOT = Path(__file__).resolve().parents[1]
"""The repository: the default data and runs folders live in it, whatever the working directory."""


@dataclass(frozen=True)
class Settings:
    """The server's folders and sizes (all paths absolute)."""

    data_dir: Path
    runs_dir: Path
    extra_dirs: tuple[Path, ...] = ()
    builtin_clips: int = 300

    @property
    def builtin_cache(self) -> Path:
        """Where the built-in set's clips are cached."""
        return self.data_dir / "builtin"

    @property
    def recordings_dir(self) -> Path:
        """Where the Record page keeps takes."""
        return self.data_dir / "recordings"

    @property
    def allowed_roots(self) -> tuple[Path, ...]:
        """The folders a page may read from: the data folder, the runs folder and the operator's extra folders."""
        return (self.data_dir, self.runs_dir, *self.extra_dirs)


def _folder(value: str | None, default: Path) -> Path:
    return Path(value).expanduser().resolve() if value else default.resolve()


def positive_int(environ: Mapping[str, str], name: str) -> int | None:
    """The whole number ``environ[name]`` (at least 1), or None when it is unset or blank.

    Raises:
        ValueError: it is set to anything else; the message names the variable.
    """
    setting = environ.get(name, "").strip()
    if not setting:
        return None
    try:
        value = int(setting)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, not {setting!r}")
    return value


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from ``environ`` (default ``os.environ``).

    Raises:
        ValueError: ``AUDIOWB_BUILTIN_CLIPS`` is not a whole number of at least 1.
    """
    env = os.environ if environ is None else environ
    builtin_clips = positive_int(env, "AUDIOWB_BUILTIN_CLIPS") or 300
    extra = tuple(_folder(part, ROOT) for part in env.get("AUDIOWB_ALLOWED_DIRS", "").split(os.pathsep) if part)
    return Settings(data_dir=_folder(env.get("AUDIOWB_DATA_DIR"), ROOT / "data"),
                    runs_dir=_folder(env.get("AUDIOWB_RUNS_DIR"), ROOT / "models"),
                    extra_dirs=extra, builtin_clips=builtin_clips)


@functools.cache
def settings() -> Settings:
    """The settings of this process, read from the environment on first use."""
    return load_settings()


def reload_settings() -> Settings:
    """Read the environment again (after a test or script changed it) and return the new settings."""
    settings.cache_clear()
    return settings()

"""Shared fixtures: a tiny built-in dataset generated once per test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AUDIOWB_DATA_DIR", str(ROOT / "data"))  # overridden per test where it matters

from lib.builtin import BuiltinSpec  # noqa: E402

TINY_SPEC = BuiltinSpec(words=("yes", "no", "up"), clips_per_word=24, n_speakers=12, seed=7)


@pytest.fixture(scope="session")
def builtin_cache(tmp_path_factory) -> Path:
    """A cache folder holding the tiny built-in set (generated once)."""
    from lib.builtin import generate_builtin

    cache = tmp_path_factory.mktemp("builtin")
    generate_builtin(TINY_SPEC, cache)
    return cache


@pytest.fixture(scope="session")
def tiny_dataset(builtin_cache):
    """The tiny built-in set, decoded: 3 words x 24 clips, 12 voices."""
    from lib.data import load_builtin

    return load_builtin(TINY_SPEC, builtin_cache)

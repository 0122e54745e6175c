"""lib.settings: one reading of the operator's folders for the app, the CLI and lib."""

import os
from pathlib import Path

import pytest

from lib.settings import ROOT, load_settings


def test_defaults_are_the_repository_folders():
    s = load_settings({})
    assert s.data_dir == ROOT / "data" and s.runs_dir == ROOT / "models"
    assert s.builtin_cache == ROOT / "data" / "builtin" and s.recordings_dir == ROOT / "data" / "recordings"
    assert s.allowed_roots == (s.data_dir, s.runs_dir) and s.builtin_clips == 300


def test_environment_values_are_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings({"AUDIOWB_DATA_DIR": "d", "AUDIOWB_RUNS_DIR": str(tmp_path / "r"),
                       "AUDIOWB_ALLOWED_DIRS": os.pathsep.join(["/srv/audio", "", "~/clips"]),
                       "AUDIOWB_BUILTIN_CLIPS": "8"})
    assert s.data_dir == tmp_path / "d" and s.runs_dir == tmp_path / "r"
    assert s.extra_dirs == (Path("/srv/audio"), Path("~/clips").expanduser())
    assert s.allowed_roots[-1] == Path("~/clips").expanduser() and s.builtin_clips == 8


@pytest.mark.parametrize("clips", ["0", "-3", "many", "2.5"])
def test_bad_builtin_clips_is_refused(clips):
    with pytest.raises(ValueError, match="AUDIOWB_BUILTIN_CLIPS"):
        load_settings({"AUDIOWB_BUILTIN_CLIPS": clips})

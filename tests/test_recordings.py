"""lib.data.recordings: a folder of recorded takes, one sub-folder per class."""

from datetime import datetime

import torch

from lib.dsp.audio import load_audio, save_wav
from lib.data.recordings import (class_takes, is_valid_name, recording_sets, split_take, take_counts, take_problem,
                            take_stem, write_background_takes)


def test_names_listing_and_counts(tmp_path):
    assert is_valid_name("my words-1_a") and not is_valid_name("../x") and not is_valid_name("")
    assert class_takes(tmp_path / "missing") == {} and recording_sets(tmp_path / "missing") == []
    folder = tmp_path / "set"
    for path in ("Yes/b.wav", "Yes/a.wav", "yes2/.hidden.wav", "no/c.txt", ".hidden/d.wav"):
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(b"")
    assert class_takes(folder) == {"no": [], "Yes": [folder / "Yes/a.wav", folder / "Yes/b.wav"], "yes2": []}
    assert take_counts(folder) == {"no": 0, "Yes": 2, "yes2": 0}
    assert recording_sets(tmp_path) == ["set"]


def test_take_problem():
    assert take_problem(torch.full((1, 100), float("nan"))) == "nonfinite"
    assert take_problem(torch.zeros(1, 1600)) == "silent"
    assert take_problem(torch.zeros(1, 1600), quiet_ok=True) is None
    assert take_problem(0.5 * torch.sin(torch.arange(1600.0)).unsqueeze(0)) is None


def test_split_take_one_clip_per_sound(tmp_path):
    rate = 8000
    take = torch.zeros(1, 3 * rate)
    for start in (0.4, 1.9):  # two tones of 0.2 s in 3 s of silence
        take[0, int(start * rate):int((start + 0.2) * rate)] = 0.5 * torch.sin(torch.arange(int(0.2 * rate)) * 0.3)
    stem = take_stem(tmp_path, "yes", datetime(2026, 1, 2, 3, 4, 5, 6))
    assert stem == tmp_path / "yes" / "20260102-030405-000006"
    clips = split_take(take, rate, stem, clip_seconds=1.0)
    assert [path.name for path, _ in clips] == [f"{stem.name}-1.wav", f"{stem.name}-2.wav"]
    assert all(clip.shape == (1, rate) for _, clip in clips)
    whole = split_take(take, rate, stem, clip_seconds=1.0, whole=True)
    assert [(path.name, clip.shape[-1]) for path, clip in whole] == [(f"{stem.name}.wav", 3 * rate)]


def test_write_background_takes(tmp_path):
    paths = write_background_takes(tmp_path / "background", 3, 8000, seed=1)
    assert len(paths) == 3 and all(load_audio(p)[1] == 8000 for p in paths)
    save_wav(tmp_path / "background" / "x.wav", torch.zeros(1, 10), 8000)
    assert take_counts(tmp_path) == {"background": 4}

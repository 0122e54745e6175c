"""lib.engine.runs: atomic save, listing (malformed runs shown, not hidden), load, rename, delete, zip."""

from __future__ import annotations

import io
import json
import os
import re
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lib.engine import runs
from lib.dsp.features import FeatureConfig
from lib.engine.runs import (
    DatasetRecord, LoadedRun, RunError, RunRecord, delete_run, latest_run, list_runs, load_run, new_run_id,
    rename_run, run_zip_bytes, save_run, write_json_atomic,
)
from lib.engine.train_config import TrainConfig


def make_record(run_id: str = "r", created: str = "2026-11-21T07:15:00") -> RunRecord:
    return RunRecord(
        model="tutorial_cnn", class_names=["yes", "no"], feature_config=FeatureConfig(n_mels=40),
        train_config=TrainConfig(model="tutorial_cnn", epochs=1), run_id=run_id,
        dataset=DatasetRecord(name="builtin"), versions={"torch": torch.__version__}, device="cpu",
        created=created, duration_sec=1.5, status="finished", n_parameters=10,
    )


METRICS = {"validation": {"accuracy": 0.75}, "test": {"accuracy": 0.5, "macro": {"f1": 0.4}}}


def state() -> dict:
    torch.manual_seed(0)
    return nn.Linear(4, 2).state_dict()


def save(root: Path, run_id: str, created: str = "2026-11-21T07:15:00", **kw) -> Path:
    return save_run(root, run_id, state_dict=state(), record=make_record(run_id, created), metrics=METRICS, **kw)


def visible(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))


def test_round_trip(tmp_path):
    model = nn.Linear(4, 2)
    metrics = {**METRICS, "extra": {"path": Path("/x/y"), "np": np.float32(0.5), "arr": np.arange(3),
                                    "int": np.int64(7)}}
    path = save_run(tmp_path, "run-a", state_dict=model.state_dict(), record=make_record("run-a"), metrics=metrics)
    assert path == tmp_path / "run-a"
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "metrics.json", "model.pt"]
    assert json.loads((path / "metrics.json").read_text())["extra"] == {
        "path": "/x/y", "np": 0.5, "arr": [0, 1, 2], "int": 7}

    [info] = list_runs(tmp_path)
    assert info.error is None and info.run_id == "run-a" and info.path == path
    assert (info.model, info.created, info.status, info.n_parameters) == (
        "tutorial_cnn", "2026-11-21T07:15:00", "finished", 10)
    assert (info.val_accuracy, info.test_accuracy, info.macro_f1) == (0.75, 0.5, 0.4)

    run = load_run(path)
    assert isinstance(run, LoadedRun)
    assert run.run_id == "run-a" and run.record == make_record("run-a")
    assert run.metrics["test"] == METRICS["test"]
    assert run.state_dict.keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(run.state_dict[key], value)
    fresh = nn.Linear(4, 2)
    fresh.load_state_dict(run.state_dict)
    assert torch.equal(fresh.weight, model.weight)
    assert not list(tmp_path.glob(".*"))  # no temporary leftovers


def test_missing_metrics_properties_are_none(tmp_path):
    save_run(tmp_path, "r", state_dict=state(), record=make_record(), metrics={})
    [info] = list_runs(tmp_path)
    assert info.error is None
    assert (info.val_accuracy, info.test_accuracy, info.macro_f1) == (None, None, None)


def test_crash_during_save_leaves_no_run(tmp_path, monkeypatch):
    seen = []

    def boom(obj, f, *args, **kwargs):
        tmp_dir = Path(f).parent
        assert tmp_dir.is_dir() and tmp_dir.name.startswith(".tmp-crash-")
        seen.append(tmp_dir)
        Path(f).write_bytes(b"half")  # a partial file, as a real crash would leave
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(runs.torch, "save", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        save(tmp_path, "crash")
    assert seen
    assert list_runs(tmp_path) == []
    assert visible(tmp_path) == []
    assert not seen[0].exists()  # the temporary folder was cleaned up


def test_leftover_temp_folder_is_not_listed(tmp_path):
    save(tmp_path, "good")
    (tmp_path / ".tmp-bad-1234").mkdir()
    (tmp_path / ".tmp-bad-1234" / "config.json").write_text("{")
    (tmp_path / ".gitkeep").touch()
    assert [info.run_id for info in list_runs(tmp_path)] == ["good"]


def test_exists_and_overwrite(tmp_path):
    save(tmp_path, "r")
    with pytest.raises(FileExistsError):
        save(tmp_path, "r")
    other = {"w": torch.ones(3)}
    save_run(tmp_path, "r", state_dict=other, record=make_record("r"), metrics={"test": {"accuracy": 1.0}},
             overwrite=True)
    assert visible(tmp_path) == ["r"]
    assert not list(tmp_path.glob(".*"))  # old run and temp folder gone
    run = load_run(tmp_path / "r")
    assert torch.equal(run.state_dict["w"], torch.ones(3))
    assert run.metrics["test"]["accuracy"] == 1.0


def test_overwrite_crash_keeps_old_run(tmp_path, monkeypatch):
    save(tmp_path, "r")

    def boom(*args, **kwargs):
        raise RuntimeError("crash")

    monkeypatch.setattr(runs.torch, "save", boom)
    with pytest.raises(RuntimeError):
        save(tmp_path, "r", overwrite=True)
    monkeypatch.undo()
    [info] = list_runs(tmp_path)
    assert info.error is None
    assert load_run(info.path).metrics == METRICS


def test_save_sets_config_run_id_and_rejects_bad_ids(tmp_path):
    path = save_run(tmp_path, "real", state_dict=state(), record=make_record("stale"), metrics={})
    assert json.loads((path / "config.json").read_text())["run_id"] == "real"
    for bad in ("../x", ".hidden", "a/b", "", "sp ace"):
        with pytest.raises(ValueError):
            save(tmp_path, bad)


@pytest.mark.parametrize("breakage, file", [
    ("no_model", "model.pt"),
    ("corrupt_config", "config.json"),
    ("empty_metrics", "metrics.json"),
    ("config_lacks_keys", "config.json"),
    ("bad_feature_config", "config.json"),
    ("metrics_not_object", "metrics.json"),
])
def test_malformed_runs_are_listed_with_error_and_fail_to_load(tmp_path, breakage, file):
    path = save(tmp_path, "broken")
    save(tmp_path, "fine", created="2020-01-01T00:00:00")
    if breakage == "no_model":
        (path / "model.pt").unlink()
    elif breakage == "corrupt_config":
        (path / "config.json").write_text('{"model": "linear", ')
    elif breakage == "empty_metrics":
        (path / "metrics.json").write_text("")
    elif breakage == "config_lacks_keys":
        (path / "config.json").write_text(json.dumps({"model": "linear"}))
    elif breakage == "bad_feature_config":
        config = json.loads((path / "config.json").read_text())
        (path / "config.json").write_text(json.dumps({**config, "feature_config": {"n_mels": -3}}))
    elif breakage == "metrics_not_object":
        (path / "metrics.json").write_text("[1, 2]")

    infos = {info.run_id: info for info in list_runs(tmp_path)}
    assert set(infos) == {"broken", "fine"}
    assert infos["fine"].error is None
    error = infos["broken"].error
    assert error and "broken" in error and file in error and "Delete the run or retrain" in error
    with pytest.raises(RunError, match=re.escape(file)) as excinfo:
        load_run(path)
    assert excinfo.value.run_id == "broken" and excinfo.value.file == file
    assert "broken" in str(excinfo.value)
    assert latest_run(tmp_path).run_id == "fine"  # broken run is newer but skipped


def test_corrupt_weights_fail_to_load(tmp_path):
    path = save(tmp_path, "r")
    (path / "model.pt").write_bytes(b"not a torch file")
    assert list_runs(tmp_path)[0].error is None  # weights are only checked on load
    with pytest.raises(RunError, match="model.pt"):
        load_run(path)


def test_load_missing_folder(tmp_path):
    with pytest.raises(RunError, match="nope"):
        load_run(tmp_path / "nope")
    assert list_runs(tmp_path / "no-root") == []
    assert latest_run(tmp_path / "no-root") is None


def test_weights_only_load_refuses_arbitrary_objects(tmp_path):
    path = save(tmp_path, "r")
    torch.save({"w": torch.ones(1), "obj": Path("x")}, path / "model.pt")  # a pickled non-tensor class
    with pytest.raises(RunError, match="model.pt"):
        load_run(path)


def test_rename(tmp_path):
    save(tmp_path, "old")
    save(tmp_path, "taken")
    new = rename_run(tmp_path, "old", "new_name.v2")
    assert new == tmp_path / "new_name.v2"
    assert visible(tmp_path) == ["new_name.v2", "taken"]
    assert json.loads((new / "config.json").read_text())["run_id"] == "new_name.v2"
    assert load_run(new).record.run_id == "new_name.v2"
    assert not list(tmp_path.glob(".*")) and not list(new.glob(".*"))
    with pytest.raises(FileExistsError):
        rename_run(tmp_path, "new_name.v2", "taken")
    for bad in ("../escape", ".hidden", "a/b", "", "with space", "x" * 200, "tab\t"):
        with pytest.raises(ValueError):
            rename_run(tmp_path, "taken", bad)
    with pytest.raises(RunError):
        rename_run(tmp_path, "missing", "whatever")
    assert visible(tmp_path) == ["new_name.v2", "taken"]


def test_delete(tmp_path):
    save(tmp_path, "a")
    save(tmp_path, "b")
    delete_run(tmp_path, "a")
    assert visible(tmp_path) == ["b"]
    assert not list(tmp_path.glob(".*"))
    with pytest.raises(RunError):
        delete_run(tmp_path, "a")
    with pytest.raises(ValueError):
        delete_run(tmp_path, "..")


def test_zip(tmp_path):
    path = save(tmp_path, "z")
    data = run_zip_bytes(path)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == ["z/config.json", "z/metrics.json", "z/model.pt"]
        assert json.loads(archive.read("z/metrics.json")) == METRICS
        assert archive.read("z/model.pt") == (path / "model.pt").read_bytes()


def test_zip_never_follows_links(tmp_path):
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "passwords.txt").write_text("not for the class")
    path = save(tmp_path / "runs", "z")
    (path / "notes.txt").write_text("a note of the run's own")
    os.symlink(secret / "passwords.txt", path / "link.txt")
    os.symlink(secret, path / "linked-folder")
    with zipfile.ZipFile(io.BytesIO(run_zip_bytes(path))) as archive:
        assert sorted(archive.namelist()) == ["z/config.json", "z/metrics.json", "z/model.pt"]  # its known files


def test_deleting_a_linked_run_removes_the_link_only(tmp_path):
    elsewhere = save(tmp_path / "elsewhere", "kept")
    (tmp_path / "runs").mkdir()
    os.symlink(elsewhere, tmp_path / "runs" / "linked")
    assert visible(tmp_path / "runs") == ["linked"]
    delete_run(tmp_path / "runs", "linked")
    assert visible(tmp_path / "runs") == [] and not list((tmp_path / "runs").iterdir())
    assert (elsewhere / "model.pt").is_file()


def test_listing_survives_runs_deleted_meanwhile(tmp_path, monkeypatch):
    save(tmp_path, "a")
    save(tmp_path, "b")
    real = runs._run_info

    def delete_first(path):  # another session deletes "a" between the folder listing and the reading
        if path.name == "a" and path.exists():
            delete_run(tmp_path, "a")
        return real(path)

    monkeypatch.setattr(runs, "_run_info", delete_first)
    assert [info.run_id for info in list_runs(tmp_path)] == ["b"]
    assert list_runs(tmp_path / "missing") == []


def test_newest_first(tmp_path):
    save(tmp_path, "middle", created="2026-05-01T12:00:00")
    save(tmp_path, "oldest", created="2025-01-01T00:00:00")
    save(tmp_path, "newest", created="2026-11-21T07:15:00+00:00")
    # no usable "created": falls back to the folder's mtime (set far in the past here)
    undated = save(tmp_path, "undated", created="not a date")
    os.utime(undated, (0, 0))
    assert [info.run_id for info in list_runs(tmp_path)] == ["newest", "middle", "oldest", "undated"]
    assert latest_run(tmp_path).run_id == "newest"


def test_mtime_fallback_orders_recent_folders(tmp_path):
    a = save(tmp_path, "a", created=None)
    b = save(tmp_path, "b", created=None)
    now = time.time()
    os.utime(a, (now, now))
    os.utime(b, (now - 100, now - 100))
    assert [info.run_id for info in list_runs(tmp_path)] == ["a", "b"]


def test_new_run_id_format():
    run_id = new_run_id("BC-ResNet (v2)")
    assert re.fullmatch(r"\d{8}-\d{6}-bc-resnet-v2-[0-9a-f]{4}", run_id), run_id
    assert runs.is_valid_run_id(run_id)
    assert re.fullmatch(r"\d{8}-\d{6}-bcresnet-[0-9a-f]{4}", new_run_id("bcresnet"))
    assert re.fullmatch(r"\d{8}-\d{6}-model-[0-9a-f]{4}", new_run_id("///"))


def test_write_json_atomic(tmp_path):
    target = tmp_path / "a.json"
    write_json_atomic(target, {"x": np.float64(1.5), "p": Path("q"), "a": np.array([[1, 2]])})
    assert json.loads(target.read_text()) == {"x": 1.5, "p": "q", "a": [[1, 2]]}
    write_json_atomic(target, {"y": 1})
    assert json.loads(target.read_text()) == {"y": 1}
    with pytest.raises(TypeError):
        write_json_atomic(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"y": 1}  # untouched by the failed write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


OLD_SHAPE_CONFIG = {  # config.json as runs saved it before RunRecord: the model twice, an empty model_kwargs
    "run_id": "old", "model": "kws_resnet_x5", "model_kwargs": {}, "class_names": ["yes", "no"],
    "feature_config": {"sample_rate": 16000, "clip_seconds": 1.0, "kind": "mel", "n_fft": 512, "win_length": 400,
                       "hop_length": 160, "n_mels": 40, "f_min": 20.0, "f_max": None, "power": 2.0, "top_db": 80.0,
                       "n_mfcc": 40, "normalization": "per_clip", "lifter": 0},
    "train_config": {"model": "kws_resnet_x5", "epochs": 20, "batch_size": 64, "optimizer": "adamw",
                     "augment": {"time_shift_sec": 0.1, "noise_probability": 0.5}, "seed": 0, "max_batches": None},
    "dataset": {"name": "Synthetic Speech Commands", "source": {"kind": "builtin", "spec": {"words": ["yes", "no"]}},
                "n_clips": 6500, "split": {"train": 4475, "validation": 1005, "test": 1020}},
    "versions": {"python": "3.11.7", "torch": "2.11.0"}, "device": "CPU (2 threads)",
    "created": "2026-11-21T13:56:41+00:00", "duration_sec": 403.69, "status": "finished", "n_parameters": 192770,
    "best_epoch": 18,
}


def test_a_config_in_the_old_shape_loads_as_a_record(tmp_path):
    path = save(tmp_path, "old")
    (path / "config.json").write_text(json.dumps(OLD_SHAPE_CONFIG))
    [info] = list_runs(tmp_path)
    assert info.error is None
    record = load_run(path).record
    assert record.model == record.train_config.model == "kws_resnet_x5"
    assert record.train_config.epochs == 20 and record.train_config.augment.noise_probability == 0.5
    assert record.feature_config == FeatureConfig()
    assert record.dataset.split == {"train": 4475, "validation": 1005, "test": 1020}
    assert (record.best_epoch, record.n_parameters, record.duration_sec) == (18, 192770, 403.69)


def test_the_shipped_default_run_loads_as_a_record():
    run = load_run(Path(__file__).resolve().parents[1] / "models" / "default")
    assert run.record.model == "kws_resnet_x5" and run.record.train_config.model == "kws_resnet_x5"
    assert run.report("test").n == run.record.dataset.split["test"] == len(run.report("test").predictions)


def test_a_new_config_holds_the_model_once_and_no_model_kwargs(tmp_path):
    config = json.loads((save(tmp_path, "r") / "config.json").read_text())
    assert config["model"] == "tutorial_cnn" and "model" not in config["train_config"]
    assert "model_kwargs" not in config
    assert RunRecord.from_dict(config) == make_record("r")


def test_unreadable_training_settings_leave_a_usable_run(tmp_path):
    path = save(tmp_path, "r")
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "train_config": {"no_such_setting": 1}}))
    [info] = list_runs(tmp_path)
    assert info.error is None and info.record.train_config is None and info.model == "tutorial_cnn"


def test_reports_of_the_splits(tmp_path):
    metrics = {"validation": {}, "test": {"accuracy": 0.5}}
    save_run(tmp_path, "r", state_dict=state(), record=make_record(), metrics=metrics)
    run = load_run(tmp_path / "r")
    assert run.report("validation") is None  # an empty split
    with pytest.raises(ValueError, match="test results"):
        run.report("test")

"""Hostile inputs, runs that can be trusted: tampered run files are refused with a message before anything big is
allocated, a run's zip holds exactly its known files, deleting and listing survive links and concurrent deletes,
and training never saves a NaN, untrained or misplaced run. Through lib, the command line (lib.engine.train.main and
lib.serving.predict.main in-process) and the Evaluate page's loader.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
import zipfile
from pathlib import Path

import pytest
import torch

from lib.dsp.features import FeatureConfig
from lib.serving.infer import Classifier
from lib.engine.runs import RunError, delete_run, list_runs, run_zip_bytes
from lib.engine.cli import main
from lib.engine.train import TrainConfig, run_training
from tests.hostile_common import class_folder, plant_secret, save_untrained_run, snapshot, tone

ONE_STEP = dict(model="tutorial_cnn", epochs=1, batch_size=4, max_batches=1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A folder dataset of 2 classes x 6 quarter-second tones, decoded once."""
    from lib.data.sources import load_folder

    return load_folder(class_folder(tmp_path_factory.mktemp("tiny") / "set", per_class=6))


# ------------------------------------------------------------------------------------------- tampered run files
TAMPERED = {
    "clip-seconds-huge": ({"feature_config": {"clip_seconds": 1e9}}, "clip_seconds"),
    "sample-rate-huge": ({"feature_config": {"sample_rate": 10**9}}, "sample_rate"),
    "n-mels-huge": ({"feature_config": {"n_mels": 10**7}}, "feature_config"),
    "hop-length-zero": ({"feature_config": {"hop_length": 0}}, "hop_length"),
    "classes-huge": ({"class_names": [f"c{i}" for i in range(1_000_000)]}, "weights"),
    "model-swapped": ({"model": "kws_resnet"}, "does not fit"),
    "model-unknown": ({"model": "rm -rf /"}, "cannot be built"),
    "feature-kind-unknown": ({"feature_config": {"kind": "evil"}}, "kind"),
    "n-fft-huge": ({"feature_config": {"n_fft": 2**20}}, "n_fft"),
    "no-class-names": ({"class_names": []}, "class names"),
    "class-names-not-a-list": ({"class_names": "yes,no"}, "class names"),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_config_is_refused_before_allocating(tmp_path, case):
    changes, words = TAMPERED[case]
    path = save_untrained_run(tmp_path, "t")
    config = json.loads((path / "config.json").read_text())
    for key, value in changes.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) and key == "feature_config" else value
    (path / "config.json").write_text(json.dumps(config))
    started = time.perf_counter()
    with pytest.raises(RunError, match=words) as caught:
        Classifier.from_run(path)
    assert "Delete the run or retrain" in str(caught.value)
    assert time.perf_counter() - started < 20  # refused, not allocated and then failed


@pytest.mark.parametrize("file,content", [("model.pt", b"not a pickle"), ("config.json", b"{not json"),
                                          ("metrics.json", b"[1, 2]"), ("config.json", b'"a string"')])
def test_malformed_run_files_are_listed_with_an_error_and_refused(tmp_path, file, content):
    path = save_untrained_run(tmp_path, "t")
    (path / file).write_bytes(content)
    [info] = list_runs(tmp_path)
    assert file == "model.pt" or (info.error and file in info.error)  # listing does not unpickle weights
    with pytest.raises(RunError, match=file):
        Classifier.from_run(path)


def test_a_pickle_with_code_in_model_pt_is_never_run(tmp_path):
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = save_untrained_run(tmp_path, "t")
    (path / "model.pt").write_bytes(pickle.dumps(Evil(), protocol=2))
    with pytest.raises(RunError, match="model.pt"):
        Classifier.from_run(path)
    assert not marker.exists()


def test_evaluate_page_loader_shows_a_tampered_run_as_an_error(tmp_path):
    from streamlit.testing.v1 import AppTest

    from lib.settings import settings
    from tests.hostile_common import texts

    path = save_untrained_run(settings().runs_dir, "hostile-width",
                              config={"class_names": [f"c{i}" for i in range(1_000_000)]})
    try:
        at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app_pages" / "evaluate.py"),
                               default_timeout=60)
        at.session_state["run_id"] = "hostile-width"
        at.session_state["dataset_source"] = {"kind": "folder", "path": str(tmp_path)}
        at.run()
        at.radio(key="eval_cross_kind").set_value("active").run()
        at.button(key="eval_cross_go").click().run()
        assert not at.exception, at.exception
        assert any("weights" in e.value for e in at.error), texts(at)
    finally:
        import shutil

        shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------------------------------- zip, delete, list
def _names(path) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(run_zip_bytes(path))) as archive:
        return sorted(archive.namelist())


KNOWN = ["r/config.json", "r/metrics.json", "r/model.pt"]


@pytest.mark.parametrize("plant", ["extra-file", "link-to-file", "link-to-folder", "linked-mistakes-folder",
                                   "odd-mistake-name", "linked-model", "fifo"])
def test_zip_holds_exactly_the_runs_known_files(tmp_path, plant):
    secret = plant_secret(tmp_path / "outside")
    path = save_untrained_run(tmp_path / "runs", "r")
    (path / "mistakes").mkdir()
    tone(path / "mistakes" / "3.flac".replace(".flac", ".wav"))
    (path / "mistakes" / "3.wav").rename(path / "mistakes" / "3.flac")
    if plant == "extra-file":
        (path / "notes.txt").write_text("dropped in")
    elif plant == "link-to-file":
        os.symlink(secret / "secret.txt", path / "secret.txt")
    elif plant == "link-to-folder":
        os.symlink(secret, path / "linked")
    elif plant == "linked-mistakes-folder":
        os.symlink(secret, path / "mistakes" / "9.flac")
    elif plant == "odd-mistake-name":
        (path / "mistakes" / "..flac").write_text("x")
        (path / "mistakes" / "passwd").write_text("x")
    elif plant == "linked-model":
        (path / "model.pt").unlink()
        os.symlink(secret / "secret.txt", path / "model.pt")
    elif plant == "fifo":
        os.mkfifo(path / "test_embedding.npz")
    expected = sorted([*KNOWN, "r/mistakes/3.flac"])
    if plant == "linked-model":
        expected.remove("r/model.pt")
    assert _names(path) == expected


def test_zip_of_a_missing_run_is_an_error(tmp_path):
    with pytest.raises(RunError, match="does not exist"):
        run_zip_bytes(tmp_path / "gone")


def test_deleting_a_linked_run_removes_the_link_only(tmp_path):
    elsewhere = save_untrained_run(tmp_path / "elsewhere", "kept")
    (tmp_path / "runs").mkdir()
    os.symlink(elsewhere, tmp_path / "runs" / "linked")
    before = snapshot(tmp_path / "elsewhere")
    delete_run(tmp_path / "runs", "linked")
    assert list(os.scandir(tmp_path / "runs")) == [] and snapshot(tmp_path / "elsewhere") == before


@pytest.mark.parametrize("name", ["..", "../elsewhere", "/etc", "a/../../b", ""])
def test_deleting_by_a_hostile_name_is_refused(tmp_path, name):
    save_untrained_run(tmp_path / "elsewhere", "kept")
    (tmp_path / "runs").mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(ValueError):
        delete_run(tmp_path / "runs", name)
    assert snapshot(tmp_path) == before


def test_listing_survives_runs_deleted_meanwhile(tmp_path, monkeypatch):
    import lib.engine.runs as runs

    for name in ("a", "b", "c"):
        save_untrained_run(tmp_path, name)
    real = runs._run_info

    def deleted_meanwhile(path):
        if path.name == "b":
            import shutil

            shutil.rmtree(path)
        return real(path)

    monkeypatch.setattr(runs, "_run_info", deleted_meanwhile)
    assert sorted(r.run_id for r in list_runs(tmp_path)) == ["a", "c"]


# ------------------------------------------------------------------------------------------- training
@pytest.mark.parametrize("rate", ["inf", "nan", "-1", "0", "-inf"])
def test_command_line_refuses_learning_rates_that_are_no_positive_number(tiny, tmp_path, capsys, rate):
    code = main(["--dataset", tiny.source["path"], f"--learning-rate={rate}", "--out", str(tmp_path / "runs")])
    assert code == 2 and "positive finite number" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_huge_learning_rate_saves_no_nan_run(tiny, tmp_path):
    done = run_training(tiny, FeatureConfig(), TrainConfig(**{**ONE_STEP, "max_batches": 3, "epochs": 2},
                                                           learning_rate=1e9),
                        runs_root=tmp_path)
    assert done.status == "failed" and "learning rate" in done.message
    assert list_runs(tmp_path) == []


def test_non_finite_weights_are_never_saved(tiny, tmp_path, monkeypatch):
    import lib.engine.train as engine

    real = engine._evaluate

    def poison(model, features, labels):
        with torch.no_grad():
            next(model.parameters()).fill_(float("inf"))
        return real(model, features, labels)

    monkeypatch.setattr(engine, "_evaluate", poison)
    done = run_training(tiny, FeatureConfig(), TrainConfig(**ONE_STEP), runs_root=tmp_path)
    assert done.status == "failed" and "finite" in done.message and list_runs(tmp_path) == []


def test_a_stop_before_the_first_step_saves_nothing(tiny, tmp_path):
    stop = threading.Event()
    stop.set()
    done = run_training(tiny, FeatureConfig(), TrainConfig(**ONE_STEP), runs_root=tmp_path, stop=stop)
    assert done.status == "stopped" and done.run_id is None and list_runs(tmp_path) == []


@pytest.mark.parametrize("case", ["taken-id", "out-is-a-file", "id-escapes", "id-absolute", "id-empty-dots"])
def test_run_target_is_checked_before_training(tiny, tmp_path, capsys, case):
    runs = tmp_path / "runs"
    save_untrained_run(runs, "taken")
    (tmp_path / "a-file").write_text("not a folder")
    out, run_id = {"taken-id": (runs, "taken"), "out-is-a-file": (tmp_path / "a-file" / "runs", "new"),
                   "id-escapes": (runs, "../escape"), "id-absolute": (runs, "/tmp/evil"),
                   "id-empty-dots": (runs, "..")}[case]
    before = snapshot(tmp_path)
    started = time.perf_counter()
    code = main(["--dataset", tiny.source["path"], *ONE_STEP_ARGS, "--out", str(out), "--run-id", run_id])
    err = capsys.readouterr()
    assert code != 0, err
    assert any(word in err.out + err.err for word in ("already exists", "cannot save runs", "Invalid run name"))
    assert snapshot(tmp_path) == before  # nothing trained, written or overwritten
    assert time.perf_counter() - started < 30


ONE_STEP_ARGS = ["--model", "tutorial_cnn", "--epochs", "1", "--batch-size", "4", "--max-batches", "1"]


def test_conflicting_csv_labels_via_the_command_line_name_the_lines(tiny, tmp_path, capsys):
    clip = tiny.paths[0]
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,label\n{clip},low\n{tiny.paths[-1]},high\n{clip},high\n")
    code = main(["--dataset", str(manifest), "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "line 2" in err and "line 4" in err and not (tmp_path / "runs").exists()


def test_one_step_run_is_finished_and_loads(tiny, tmp_path, capsys):
    code = main(["--dataset", tiny.source["path"], *ONE_STEP_ARGS, "--out", str(tmp_path / "runs"), "--run-id",
                 "ok"])
    assert code == 0, capsys.readouterr().err
    classifier = Classifier.from_run(tmp_path / "runs" / "ok")
    assert all(torch.isfinite(p).all() for p in classifier.model.parameters())

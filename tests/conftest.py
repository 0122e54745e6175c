"""Shared fixtures: a tiny built-in dataset generated once per test session."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The app's folders, set before anything reads lib.settings: page tests never touch ./data or ./models. Test files
# that import ``tests.conftest`` run this file a second time: it keeps the folders of the first time.
APP_TMP = Path(os.environ.get("_AUDIOWB_TEST_TMP") or tempfile.mkdtemp(prefix="audiowb-test-"))
os.environ["_AUDIOWB_TEST_TMP"] = str(APP_TMP)
os.environ["AUDIOWB_DATA_DIR"] = str(APP_TMP / "data")
os.environ["AUDIOWB_RUNS_DIR"] = str(APP_TMP / "models")
os.environ["AUDIOWB_BUILTIN_CLIPS"] = "8"  # the app's default built-in set: 10 words x 8 clips

from lib.settings import reload_settings, settings  # noqa: E402

reload_settings()  # lib.settings reads the environment once: from here on it sees the folders above

from lib.data.synth.builtin import BuiltinSpec  # noqa: E402

TINY_SPEC = BuiltinSpec(words=("yes", "no", "up"), clips_per_word=24, n_speakers=12, seed=7)


def metric_value(at, label: str) -> str:
    """The value of the ``st.metric`` called ``label`` on an AppTest page."""
    return next(m.value for m in at.metric if m.label == label)


@pytest.fixture(scope="session")
def builtin_cache(tmp_path_factory) -> Path:
    """A cache folder holding the tiny built-in set (generated once)."""
    from lib.data.synth.builtin import generate_builtin

    cache = tmp_path_factory.mktemp("builtin")
    generate_builtin(TINY_SPEC, cache)
    return cache


@pytest.fixture(scope="session")
def tiny_dataset(builtin_cache):
    """The tiny built-in set, decoded: 3 words x 24 clips, 12 voices."""
    from lib.data.sources import load_builtin

    return load_builtin(TINY_SPEC, builtin_cache)


@pytest.fixture
def operator_folders(monkeypatch):
    """Point the operator's settings elsewhere for one test: ``operator_folders(runs_dir=path, data_dir=path)``
    sets ``AUDIOWB_RUNS_DIR`` / ``AUDIOWB_DATA_DIR`` and re-reads them; the test's end restores both."""
    def point(**folders: Path):
        for name, folder in folders.items():
            monkeypatch.setenv(f"AUDIOWB_{name.upper()}", str(folder))
        return reload_settings()

    yield point
    monkeypatch.undo()
    reload_settings()


@pytest.fixture(scope="session")
def app_env() -> dict:
    """The app's folders with the (tiny) default built-in set generated and one trained run, "default".

    Returns a dict with ``data_dir``, ``runs_dir`` and ``run_path``. Page tests (AppTest) and browser tests use it.
    """
    from lib.data.sources import load_builtin
    from lib.dsp.features import FeatureConfig
    from lib.engine.train import TrainConfig, run_training
    from ui.common import default_builtin_spec

    folders = settings()
    run_path = folders.runs_dir / "default"
    if not run_path.is_dir():
        dataset = load_builtin(default_builtin_spec(), folders.builtin_cache)
        done = run_training(dataset, FeatureConfig(), TrainConfig(model="tutorial_cnn", epochs=2, batch_size=16),
                            runs_root=folders.runs_dir, run_id="default")
        assert done.status == "finished", done.message
    return {"data_dir": folders.data_dir, "runs_dir": folders.runs_dir, "run_path": run_path}


@pytest.fixture(scope="session")
def shipped_classifier():
    """The shipped models/default as a :class:`lib.serving.infer.Classifier`."""
    from lib.serving.infer import Classifier

    return Classifier.from_run(Path(__file__).resolve().parents[1] / "models" / "default")


@pytest.fixture(scope="session")
def clear_clips(tiny_dataset, shipped_classifier) -> dict:
    """The tiny set's clips the shipped model knows well, per word (:func:`tests.keyword_streams.clear_word_clips`)."""
    from tests.keyword_streams import clear_word_clips

    return clear_word_clips(tiny_dataset, shipped_classifier)


@pytest.fixture
def server(tmp_path):
    """A loopback HTTP server (range requests, failures on demand) serving ``server.directory``: downloads are
    tested against files a test makes, never the internet."""
    from tests.fixtures_datasets import LoopbackServer

    with LoopbackServer(tmp_path / "www") as s:
        yield s


@pytest.fixture
def new_runs(app_env):
    """Removes the runs (and sweep databases) a test made in the app's runs folder, so that "default" stays the
    newest run for other tests."""
    runs_dir = settings().runs_dir
    before = {path.name for path in runs_dir.iterdir()}
    yield
    for path in runs_dir.iterdir():
        if path.name not in before:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()


@pytest.fixture
def shipped_default_run(app_env) -> Path:
    """The shipped models/default copied into the app's runs folder as run "shipped-default" (app_env's own
    "default" is a tiny model that knows little), removed afterwards."""
    copy = app_env["runs_dir"] / "shipped-default"
    shutil.copytree(Path(__file__).resolve().parents[1] / "models" / "default", copy, dirs_exist_ok=True)
    yield copy
    shutil.rmtree(copy, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_run(tiny_dataset, tmp_path_factory) -> Path:
    """A kws_resnet trained for 3 epochs on the tiny set, saved as run 'tiny-export' (export and serve tests)."""
    from lib.dsp.features import FeatureConfig
    from lib.engine.train import TrainConfig, run_training

    done = run_training(tiny_dataset, FeatureConfig(),
                        TrainConfig(model="kws_resnet", epochs=3, batch_size=16, device="cpu"),
                        runs_root=tmp_path_factory.mktemp("export-runs"), run_id="tiny-export")
    assert done.status == "finished", done.message
    return done.run_path


@pytest.fixture(scope="session")
def tiny_onnx_export(tiny_run, tmp_path_factory) -> Path:
    """``tiny_run`` exported to ONNX with its int8 model (lib.serving.export)."""
    from lib.serving.export import export_run

    return export_run(tiny_run, tmp_path_factory.mktemp("exports") / "onnx", format="onnx", int8=True)


@pytest.fixture
def allowed_tmp(tmp_path):
    """The test's ``tmp_path`` made one of the operator's allowed folders (``AUDIOWB_ALLOWED_DIRS``) for the test:
    pages read only inside the allowed folders (lib.paths)."""
    from lib.settings import reload_settings

    before = os.environ.get("AUDIOWB_ALLOWED_DIRS")
    os.environ["AUDIOWB_ALLOWED_DIRS"] = str(tmp_path)
    reload_settings()
    yield tmp_path
    if before is None:
        os.environ.pop("AUDIOWB_ALLOWED_DIRS", None)
    else:
        os.environ["AUDIOWB_ALLOWED_DIRS"] = before
    reload_settings()

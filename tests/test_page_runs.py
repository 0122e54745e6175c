"""Page test: Runs (AppTest). Works on copies of the "default" run, which other tests need unchanged."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lib.settings import settings

PAGE = str(Path(__file__).resolve().parents[1] / "app_pages" / "runs.py")


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def copied_run(app_env):
    """A copy of the default run under a fresh name; removed afterwards (under any name it got)."""

    run_id = f"runs-copy-{secrets.token_hex(3)}"
    shutil.copytree(app_env["run_path"], settings().runs_dir / run_id)
    made = [run_id]
    yield run_id, made
    for name in made:
        shutil.rmtree(settings().runs_dir / name, ignore_errors=True)


def _table(at: AppTest):
    return next(d.value for d in at.dataframe if "Run" in d.value.columns)


def test_runs_table_lists_runs(app_env, copied_run):
    run_id, _ = copied_run
    at = _page()
    table = _table(at)
    assert {"default", run_id} <= set(table["Run"])
    row = table[table["Run"] == "default"].iloc[0]
    assert row["Model"] == "tutorial_cnn" and row["Epochs"] == 2 and row["Batch"] == 16
    assert 0 <= row["Test accuracy"] <= 1 and row["Parameters"] > 0
    assert row["Augmentation"].startswith("shift ±0.1 s")
    for column in ("Learning rate", "Optimizer", "Mel bins", "Augmentation", "Device", "Duration (s)", "Status",
                   "Val accuracy", "Macro F1", "Created"):
        assert column in table.columns
    assert not at.warning  # no malformed run


def test_runs_rename(app_env, copied_run):
    from lib.runs import list_runs

    run_id, made = copied_run
    new_id = run_id + "-renamed"
    made.append(new_id)
    at = _page()
    at.selectbox(key="runs_selected").set_value(run_id).run()
    # an invalid name and a taken name are refused with an error
    at.text_input(key="runs_new_name").input("../escape").run()
    at.button(key="runs_rename").click().run()
    assert any("Invalid run name" in e.value for e in at.error), [e.value for e in at.error]
    at.text_input(key="runs_new_name").input("default").run()
    at.button(key="runs_rename").click().run()
    assert any("already exists" in e.value for e in at.error), [e.value for e in at.error]
    at.text_input(key="runs_new_name").input(new_id).run()
    at.button(key="runs_rename").click().run()
    assert not at.exception, at.exception
    assert any(new_id in s.value for s in at.success)
    ids = [r.run_id for r in list_runs(settings().runs_dir)]
    assert new_id in ids and run_id not in ids
    assert at.selectbox(key="runs_selected").value == new_id
    assert new_id in set(_table(at)["Run"])


def test_runs_delete_needs_confirmation(app_env, copied_run):

    run_id, _ = copied_run
    at = _page()
    at.selectbox(key="runs_selected").set_value(run_id).run()
    assert at.button(key="runs_delete").disabled
    at.checkbox(key="runs_confirm").check().run()
    assert not at.button(key="runs_delete").disabled
    at.button(key="runs_delete").click().run()
    assert not at.exception, at.exception
    assert any(f"Deleted run '{run_id}'" in s.value for s in at.success)
    assert not (settings().runs_dir / run_id).exists()
    assert run_id not in set(_table(at)["Run"])
    assert (settings().runs_dir / "default").is_dir()


def test_runs_download_and_make_active(app_env, copied_run):
    run_id, _ = copied_run
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["run_id"] = "default"
    at.run()
    assert at.selectbox(key="runs_selected").value == "default"  # the active run is preselected
    at.selectbox(key="runs_selected").set_value(run_id).run()
    buttons = at.get("download_button")
    assert len(buttons) == 1 and buttons[0].proto.label == "Download as zip"
    at.button(key="runs_activate").click().run()
    assert not at.exception, at.exception
    assert at.session_state["run_id"] == run_id
    assert at.button(key="runs_activate").disabled  # already active


def test_runs_malformed_run_is_listed_with_its_error(app_env, copied_run):

    run_id, _ = copied_run
    (settings().runs_dir / run_id / "metrics.json").write_text("[1, 2", encoding="utf-8")
    at = _page()
    assert run_id not in set(_table(at)["Run"])
    assert any(run_id in w.value and "metrics.json" in w.value for w in at.warning), [w.value for w in at.warning]
    # it can still be selected and deleted, but not made active
    at.selectbox(key="runs_selected").set_value(run_id).run()
    assert at.button(key="runs_activate").disabled
    at.checkbox(key="runs_confirm").check().run()
    at.button(key="runs_delete").click().run()
    assert not at.exception, at.exception
    assert not (settings().runs_dir / run_id).exists()


def test_runs_export_builds_a_zip_to_download(app_env, copied_run):
    import io
    import json
    import zipfile

    run_id, _ = copied_run
    at = _page()
    at.selectbox(key="runs_selected").set_value(run_id).run()
    assert at.checkbox(key="runs_export_int8").disabled is False  # ONNX is the default format
    at.radio(key="runs_export_format").set_value("torchscript").run()
    assert at.checkbox(key="runs_export_int8").disabled
    at.button(key="runs_export_build").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    (download,) = [b for b in at.get("download_button") if "TorchScript export" in b.proto.label]
    built_id, built_format, archive = at.session_state["runs_export"]
    assert (built_id, built_format) == (run_id, "torchscript")
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        names = set(zipped.namelist())
        labels = json.loads(zipped.read(f"{run_id}-torchscript/labels.json"))
    assert names == {f"{run_id}-torchscript/{f}" for f in ("model.torchscript.pt", "labels.json", "example.py")}
    assert labels["run_id"] == run_id and labels["check"]["max_abs_difference"] <= 1e-4
    at.selectbox(key="runs_selected").set_value("default").run()  # another run: its export is not offered
    assert not [b for b in at.get("download_button") if "export" in b.proto.label]


def test_runs_export_error_is_shown(app_env, copied_run):

    run_id, _ = copied_run
    (settings().runs_dir / run_id / "model.pt").write_bytes(b"not a checkpoint")
    at = _page()
    at.selectbox(key="runs_selected").set_value(run_id).run()
    at.button(key="runs_export_build").click().run()
    assert not at.exception, at.exception
    assert any(f"Cannot export '{run_id}'" in e.value and "model.pt" in e.value for e in at.error), \
        [e.value for e in at.error]
    assert "runs_export" not in at.session_state

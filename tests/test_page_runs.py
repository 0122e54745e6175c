"""Page test: Runs (AppTest). Works on copies of the "default" run, which other tests need unchanged."""

from __future__ import annotations

import json
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
    # name, dataset, model, scores, size, latency and date lead; the sweep and the other settings follow
    assert list(table.columns[:10]) == ["Run", "Dataset", "Model", "Val accuracy", "Test accuracy", "Macro F1",
                                        "Parameters", "Latency (ms)", "Created", "Sweep"]
    row = table[table["Run"] == "default"].iloc[0]
    assert row["Model"] == "tutorial_cnn" and row["Epochs"] == 2 and row["Batch"] == 16
    assert row["Dataset"] and 0 <= row["Test accuracy"] <= 1 and row["Parameters"] > 0
    assert row["Augmentation"].startswith("shift ±0.1 s")
    for column in ("Learning rate", "Optimizer", "Mel bins", "Augmentation", "Device", "Duration (s)", "Status"):
        assert column in table.columns
    assert not at.warning  # no malformed run
    assert any("Tick 2 to 8 runs" in c.value for c in at.caption)  # nothing ticked: no comparison yet


def _tweak(run_id: str, **train) -> None:
    """Change a copied run's recorded training settings (and tag it as trial 3 of sweep "lr")."""
    import json

    path = settings().runs_dir / run_id / "config.json"
    config = json.loads(path.read_text())
    config["train_config"].update(train)
    config["sweep"] = {"name": "lr", "trial": 3}
    path.write_text(json.dumps(config))


def test_runs_search_filters_and_keeps_ticked_runs(app_env, copied_run):
    run_id, _ = copied_run
    _tweak(run_id, learning_rate=0.5)
    at = _page()
    assert _table(at).set_index("Run").loc[run_id, "Sweep"] == "lr #3"
    at.text_input(key="runs_search").input("lr #3").run()  # every word, in the name, dataset, model or sweep
    assert list(_table(at)["Run"]) == [run_id]
    at.text_input(key="runs_search").input("no-such-run").run()
    assert not at.exception, at.exception
    assert any("No run matches" in i.value for i in at.info)
    at.text_input(key="runs_search").input("").run()
    at.pills(key="runs_status").set_value([]).run()  # no status chosen: nothing shown
    assert any("No run matches" in i.value for i in at.info)


def test_runs_ticked_in_the_table_are_compared(app_env, copied_run):
    run_id, _ = copied_run
    _tweak(run_id, learning_rate=0.5, epochs=3)
    at = _page()
    table = next(d for d in at.dataframe if "Run" in d.value.columns)
    rows = list(table.value["Run"])
    at.session_state[table.key] = {"selection": {"rows": [rows.index("default"), rows.index(run_id)],
                                                 "columns": [], "cells": []}}
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["runs_chosen"] == ["default", run_id]
    assert "Compare 2 runs" in [h.value for h in at.subheader]
    frames = [d.value for d in at.dataframe]
    metrics = next(f for f in frames if "Label" in f.columns)
    assert set(metrics["Run"]) == {"default", run_id} and metrics["Test accuracy"].between(0, 1).all()
    differ = next(f for f in frames if "Setting" in f.columns)
    assert set(differ["Setting"]) == {"train.learning_rate", "train.epochs"}  # only what differs
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    titles = {c["layout"]["title"]["text"]: c for c in charts}
    assert {"Validation accuracy", "Validation loss", "Test F1 per class"} <= set(titles)
    curves, f1 = titles["Validation accuracy"], titles["Test F1 per class"]
    assert len(curves["data"]) == 2 and len(f1["data"]) == 2
    # one colour per run in every chart; the legend sits below the plot
    assert [t["line"]["color"] for t in curves["data"]] == [t["marker"]["color"] for t in f1["data"]]
    assert curves["layout"]["legend"]["yanchor"] == "bottom" and curves["layout"]["legend"]["y"] == 0
    # a newly ticked run is the one managed below; the choice outlives a filter that hides it
    assert at.selectbox(key="runs_selected").value == run_id
    at.text_input(key="runs_search").input(run_id).run()
    assert "Compare 2 runs" in [h.value for h in at.subheader]
    assert any("1 hidden by the filter" in c.value for c in at.caption), [c.value for c in at.caption]
    at.button(key="runs_clear").click().run()
    assert at.session_state["runs_chosen"] == [] and "Compare 2 runs" not in [h.value for h in at.subheader]


def test_runs_comparison_of_too_many_runs_asks_to_untick(app_env, copied_run):
    run_id, made = copied_run
    for i in range(8):
        shutil.copytree(settings().runs_dir / run_id, settings().runs_dir / f"{run_id}-{i}")
        made.append(f"{run_id}-{i}")
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["runs_chosen"] = ["default", run_id, *made[1:]]  # 10 runs, remembered from before
    at.run()
    assert not at.exception, at.exception
    assert any("compare at most 8" in w.value for w in at.warning), [w.value for w in at.warning]


def test_runs_rename(app_env, copied_run):
    from lib.engine.runs import list_runs

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

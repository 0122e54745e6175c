"""Page test: Sweep (AppTest). A tiny sweep end to end: 3 trials in a background job, one pruned, then one trial's
run made the session's active run."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lib.settings import settings

PAGE = str(Path(__file__).resolve().parents[1] / "app_pages" / "sweep.py")


def _page(source: dict | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    if source is not None:
        at.session_state["dataset_source"] = source
    at.session_state["train_model"] = "tutorial_cnn"  # the Train page's settings: the base of every trial
    at.session_state["train_epochs"] = 2
    at.session_state["train_batch"] = 16
    at.run()
    assert not at.exception, at.exception
    return at


def test_sweep_page_offers_the_space_from_the_settings(app_env, new_runs):
    at = _page()
    assert at.title[0].value == "Sweep"
    assert at.multiselect(key="sweep_params").value == ["train.learning_rate", "train.weight_decay"]
    lr = at.select_slider(key="sweep_range_train.learning_rate")
    assert lr.value == (1e-4, 1e-1) and lr.options[:3] == ["1e-4", "3e-4", "1e-3"]  # a log range in powers of ten
    assert any("tutorial_cnn, 2 epochs" in c.value for c in at.caption)
    assert not at.button(key="sweep_start").disabled and at.button(key="sweep_stop").disabled
    at.text_input(key="sweep_name").set_value("bad name!").run()
    assert any("sweep name" in e.value and "letters, digits" in e.value for e in at.error), at.error
    assert at.button(key="sweep_start").disabled
    at.text_input(key="sweep_name").set_value("ok").run()
    at.number_input(key="sweep_trials").set_value(0)
    at.number_input(key="sweep_minutes").set_value(0.0).run()
    assert any("budget" in e.value for e in at.error), [e.value for e in at.error]


def _wait_for_sweep(at: AppTest, timeout: float = 150.0):
    """Wait for the session's sweep job to end, redrawing the page once while a trial runs (the live view) and once
    at the end."""
    from lib.engine.jobs import JOB_QUEUE

    job_id = at.session_state["sweep_job_ids"][-1]
    job = next(j for j in JOB_QUEUE.jobs if j.job_id == job_id)
    deadline = time.monotonic() + timeout
    while not job.trial_events() and not job.ended:
        assert time.monotonic() < deadline, f"sweep job {job_id} started no trial in {timeout} s"
        time.sleep(0.2)
    at.run()
    assert not at.exception, at.exception
    assert job.ended or any("trials ended" in p.proto.text for p in at.get("progress"))
    assert job.wait(max(1.0, deadline - time.monotonic())), f"sweep job {job_id} did not end in {timeout} s"
    at.run()
    assert not at.exception, at.exception
    return job


@pytest.fixture
def tiny_source(app_env, builtin_cache) -> dict:
    """The session source of the tiny built-in set (3 words), put where the app finds built-in sets."""
    from lib.data.synth.builtin import builtin_folder
    from tests.conftest import TINY_SPEC

    folder = builtin_folder(TINY_SPEC, settings().builtin_cache)
    if not folder.exists():
        if folder.is_symlink():  # left by an earlier test session whose folders are gone
            folder.unlink()
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.symlink_to(builtin_folder(TINY_SPEC, builtin_cache), target_is_directory=True)
    return {"kind": "builtin", "spec": asdict(TINY_SPEC)}


def test_a_tiny_sweep_end_to_end_and_use_a_trial(tiny_source, new_runs):
    """A grid over the learning rate (1e-2, 3e-2, 1e-1, in that order) with successive halving: after epoch 1 the
    third trial is behind the second (42% against 58% of the 12 validation clips) and is pruned."""
    from lib.sweep import default_storage, open_sweep

    at = _page(tiny_source)
    at.multiselect(key="sweep_params").set_value(["train.learning_rate"]).run()
    at.select_slider(key="sweep_range_train.learning_rate").set_value((1e-2, 1e-1))
    at.text_input(key="sweep_name").set_value("page-sweep")
    at.selectbox(key="sweep_sampler").set_value("grid")
    at.selectbox(key="sweep_pruner").set_value("halving")
    at.number_input(key="sweep_trials").set_value(3)
    at.run()
    assert not at.error, [e.value for e in at.error]
    at.button(key="sweep_start").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.session_state["sweep_view"] == "page-sweep"
    job = _wait_for_sweep(at)
    assert job.state == "finished", job.snapshot().done
    counts = open_sweep("page-sweep", default_storage()).counts()
    assert counts.get("complete") == 2 and counts.get("pruned") == 1, counts
    # the live view: progress, the trials' curves, the table, parallel coordinates, importance
    assert any("3 of 3 trials ended" in p.proto.text for p in at.get("progress")), "no progress line"
    assert len(at.get("plotly_chart")) >= 2
    table = at.dataframe[0].value
    assert len(table) == 3 and set(table["run id"]) == {f"page-sweep-t{n:03d}" for n in range(3)}
    # the best trial is offered first; using it makes its run the session's active run
    pick = at.selectbox(key="sweep_trial_pick")
    at.button(key="sweep_use").click().run()
    assert not at.exception, at.exception
    run_id = f"page-sweep-t{pick.value:03d}"
    assert at.session_state["run_id"] == run_id
    assert any(run_id in s.value for s in at.success), [s.value for s in at.success]
    # the same name with other settings is refused with what to do
    at.text_input(key="sweep_name").set_value("page-sweep")
    at.number_input(key="sweep_trials").set_value(4).run()
    at.button(key="sweep_start").click().run()
    assert any("other settings" in e.value for e in at.error), [e.value for e in at.error]

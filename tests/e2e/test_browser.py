"""End to end in a real headless Chromium: every page renders, training runs live, the microphone records."""

import re
import time

import pytest

from tests.e2e.conftest import assert_no_exception, screenshot, wait_for_app

pytestmark = pytest.mark.e2e

PAGES = [("", "home", "Audio classification workbench"), ("dataset", "dataset", "Dataset"),
         ("transforms", "transforms", "Transform"), ("train", "train", "Train"), ("evaluate", "evaluate", "Evaluate"),
         ("runs", "runs", "Runs"), ("inference", "inference", "Inference"), ("record", "record", "Record")]


@pytest.mark.parametrize("path,name,title", PAGES, ids=[p[1] for p in PAGES])
def test_every_page_renders_without_exceptions(page, app_url, path, name, title):
    page.goto(f"{app_url}/{path}")
    wait_for_app(page)
    assert title.lower() in page.locator("h1").first.inner_text().lower()
    assert_no_exception(page)
    screenshot(page, name)


@pytest.fixture
def forget_new_runs(app_env):
    """Delete the runs a test trains, so later tests still find the shipped "default" run the newest."""
    from lib.runs import delete_run, list_runs

    before = {run.run_id for run in list_runs(app_env["runs_dir"])}
    yield
    for run in list_runs(app_env["runs_dir"]):
        if run.run_id not in before:
            delete_run(app_env["runs_dir"], run.run_id)


def test_training_shows_live_progress_and_lists_the_run(page, app_url, forget_new_runs):
    page.goto(f"{app_url}/train")
    wait_for_app(page)
    epochs = page.get_by_label("Epochs")
    epochs.fill("40")
    epochs.press("Enter")
    wait_for_app(page)
    main = page.get_by_test_id("stMainBlockContainer")  # not the toolbar's own "Stop" button
    main.get_by_role("button", name=re.compile("^Start")).click()
    progress = page.locator('[data-testid="stProgress"]')
    progress.first.wait_for(timeout=60_000)
    texts = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(texts) < 3:
        texts.add(page.locator('[data-testid="stProgress"]').first.inner_text())
        time.sleep(0.7)
    assert len(texts) >= 2, f"the progress did not change: {texts}"  # live updates
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 1  # live charts
    screenshot(page, "train-running")
    main.get_by_role("button", name=re.compile("^Stop")).click()
    page.get_by_text(re.compile("Evaluate this run")).wait_for(timeout=90_000)
    assert_no_exception(page)
    screenshot(page, "train-done")


def test_record_from_the_fake_microphone_gives_a_prediction(page, app_url):
    page.goto(f"{app_url}/record")
    wait_for_app(page)
    recorder = page.locator('[data-testid="stAudioInput"]')
    recorder.get_by_role("button", name=re.compile("record", re.I)).first.click()
    time.sleep(2.5)  # the fake microphone plays the spoken keyword
    recorder.get_by_role("button", name=re.compile("stop", re.I)).first.click()
    # The "Heard" metric's label; anchored, so the word "heard" in the page's help text does not match.
    page.get_by_text(re.compile(r"^\s*Heard\s*$")).first.wait_for(timeout=60_000)
    wait_for_app(page)
    assert_no_exception(page)
    screenshot(page, "record-prediction")

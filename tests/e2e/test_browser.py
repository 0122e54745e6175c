"""End to end in a real headless Chromium: every page renders, training runs live, the shipped model evaluates.
(The microphone: test_record_flow.py and test_listen.py.)"""

import re
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import (assert_no_exception, assert_no_overlaps_or_cut_labels, open_with_run, screenshot,
                                wait_for_app)

pytestmark = pytest.mark.e2e

PAGES = [("", "home", "Audio classification workbench"), ("dataset", "dataset", "Dataset"),
         ("transforms", "transforms", "Transform"), ("train", "train", "Train"), ("sweep", "sweep", "Sweep"),
         ("evaluate", "evaluate", "Evaluate"),
         ("runs", "runs", "Runs"), ("inference", "inference", "Inference"), ("record", "record", "Record"),
         ("listen", "listen", "Listen")]


@pytest.mark.parametrize("path,name,title", PAGES, ids=[p[1] for p in PAGES])
def test_every_page_renders_without_exceptions(page, app_url, path, name, title):
    page.goto(f"{app_url}/{path}")
    wait_for_app(page)
    assert title.lower() in page.locator("h1").first.inner_text().lower()
    assert_no_exception(page)
    assert_no_overlaps_or_cut_labels(page)
    assert not page.get_by_text("Cannot play").count(), "a clip of the page cannot be played"
    screenshot(page, name)


def test_clicking_a_point_of_the_map_plays_its_clip(page, app_url):
    """The Dataset page's map: a click on a point (found through Plotly's own axes, SVG or WebGL) names its clip
    and plays it."""
    page.goto(f"{app_url}/dataset")
    wait_for_app(page)
    chart = page.locator('[data-testid="stPlotlyChart"]').filter(has=page.locator(".gtitle", has_text="click a point"))
    chart.scroll_into_view_if_needed()
    page.get_by_text("No clip selected.").wait_for()
    x, y, name = chart.evaluate("""el => {
        const gd = el.querySelector('.js-plotly-plot'), r = gd.getBoundingClientRect();
        const trace = gd._fullData[gd._fullData.length - 1];  // drawn last: on top of any point it overlaps
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        return [r.left + xa._offset + xa.l2p(trace.x[0]), r.top + ya._offset + ya.l2p(trace.y[0]), trace.name]; }""")
    page.mouse.click(x, y)
    page.get_by_text("No clip selected.").wait_for(state="detached", timeout=60_000)
    wait_for_app(page)
    assert_no_exception(page)
    clip = page.locator('[data-testid="stMarkdown"]', has_text=".wav").last
    assert clip.inner_text().startswith(f"{name}:"), clip.inner_text()  # the point's class, then its file
    expect(clip.locator("xpath=following::*[@data-testid='stAudio']")).to_have_count(1)  # and its player


def test_training_shows_live_progress_and_lists_the_run(page, app_url, new_runs):
    page.goto(f"{app_url}/train")
    wait_for_app(page)
    epochs = page.get_by_label("Epochs", exact=True)
    epochs.fill("500")  # long enough that Stop comes first, even on a fast machine (the test set has 1 step an epoch)
    epochs.press("Enter")
    wait_for_app(page)
    main = page.get_by_test_id("stMainBlockContainer")  # not the toolbar's own "Stop" button
    main.get_by_role("button", name=re.compile("^Start")).click()
    progress = page.locator('[data-testid="stProgress"]')
    progress.first.wait_for(timeout=60_000)
    # the progress is where the eyes are after pressing Start: inside the 1000 px high window, not below it
    deadline = time.monotonic() + 10  # the page lays out again as the settings fold away
    while True:
        box = progress.first.bounding_box()
        if (box is not None and 0 <= box["y"] and box["y"] + box["height"] <= 1000) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= 1000, box
    texts = set()
    deadline = time.monotonic() + 90  # the job's own process starts first (imports take seconds on a loaded machine)
    stepped = re.compile(r"step [1-9][\d,]* / ")
    while time.monotonic() < deadline and (len(texts) < 3 or not any(stepped.search(t) for t in texts)):
        texts.add(page.locator('[data-testid="stProgress"]').first.inner_text())
        time.sleep(0.7)
    assert len(texts) >= 2, f"the progress did not change: {texts}"  # live updates
    assert any(stepped.search(t) for t in texts), f"no training step shown: {texts}"  # (a stop before it saves nothing)
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 1  # live charts
    screenshot(page, "train-running")
    main.get_by_role("button", name=re.compile("^Stop")).click()
    page.get_by_text(re.compile("Evaluate this run")).first.wait_for(timeout=90_000)
    wait_for_app(page)
    assert_no_exception(page)
    assert page.get_by_text(re.compile(r"stopped after [\d,]+ of [\d,]+ steps")).count(), "the stop message"
    assert_no_overlaps_or_cut_labels(page)  # the live charts have titles and legends
    screenshot(page, "train-done")
    page.goto(f"{app_url}/evaluate")  # the new run, evaluated
    wait_for_app(page)
    assert_no_exception(page)
    assert_no_overlaps_or_cut_labels(page)
    screenshot(page, "evaluate-after-training")


def test_the_shipped_default_model_evaluates_fully(page, app_url, shipped_default_run):
    """The real models/default, trained on a set this machine has never generated: its mistakes play and its
    map draws, from what the run folder keeps."""
    open_with_run(page, f"{app_url}/evaluate", "Run to evaluate", "shipped-default")
    assert not page.get_by_text("Cannot play").count()
    expect(page.locator('[data-testid="stAudio"]')).to_have_count(11)  # the 11 misclassified test clips play
    assert page.get_by_text(re.compile("last hidden layer")).count()  # the map of what it learned
    assert_no_overlaps_or_cut_labels(page)
    screenshot(page, "evaluate-shipped-default")


def test_cold_start_shows_the_home_page_at_once_and_synthesizes_in_the_background(browser, tmp_path):
    """A fresh install: no data folder yet. The home page is readable within 5 s while the built-in set is
    made in the background with a progress bar."""
    import os
    import subprocess
    import sys
    import urllib.request

    from tests.e2e.conftest import ROOT, _free_port

    port = _free_port()
    env = {**os.environ, "AUDIOWB_DATA_DIR": str(tmp_path / "data"), "AUDIOWB_RUNS_DIR": str(tmp_path / "models"),
           "AUDIOWB_BUILTIN_CLIPS": "6"}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "streamlit did not start"
                time.sleep(0.3)
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        page = context.new_page()
        started = time.monotonic()
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("h1", timeout=30_000)
        first_heading = time.monotonic() - started
        page.locator('[data-testid="stProgress"]').first.wait_for(timeout=60_000)
        screenshot(page, "home-cold-start")
        page.get_by_text(re.compile("classes \\(yes, no")).first.wait_for(timeout=180_000)  # the set is ready
        assert_no_exception(page)
        context.close()
        print(f"\ncold start: first heading after {first_heading:.1f} s")
        assert first_heading < 5, f"the first page took {first_heading:.1f} s to show anything"
    finally:
        process.terminate()
        process.wait(10)

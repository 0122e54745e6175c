"""Browser end-to-end fixtures: a real `streamlit run` on a free loopback port and Debian's headless Chromium.

Chromium's fake microphone plays a WAV of a spoken keyword, so the Record page can be tested for real.
Screenshots go to ``test-output/screenshots/``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_url(app_env):
    """Start the app against the test folders (tiny built-in set, a trained "default" run)."""
    port = _free_port()
    (ROOT / "test-output").mkdir(exist_ok=True)
    log = open(ROOT / "test-output" / "streamlit.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env={**os.environ}, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("streamlit did not start; see test-output/streamlit.log")
    yield url
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="session")
def spoken_keyword_wav(tmp_path_factory) -> Path:
    """'yes' spoken by eSpeak (a voice variant), padded with silence: what the fake microphone plays."""
    from lib.dsp.audio import resample
    from lib.data.synth.espeak import synthesize

    import torch

    speech, rate = synthesize("yes", voice="en-us", variant="m3")
    speech = resample(torch.from_numpy(speech), rate, 16000).numpy()
    clip = np.concatenate([np.zeros(8000), 0.8 * speech / np.abs(speech).max(), np.zeros(16000)]).astype(np.float32)
    path = tmp_path_factory.mktemp("mic") / "yes.wav"
    sf.write(path, clip, 16000, subtype="PCM_16")
    return path


def launch_chromium(playwright, microphone_wav: Path):
    """Debian's headless Chromium whose fake microphone plays ``microphone_wav`` in a loop."""
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: run `make e2e-deps` (installs Debian's chromium)")
    return playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True,
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run",
              "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
              f"--use-file-for-fake-audio-capture={microphone_wav}"])


@pytest.fixture(scope="session")
def playwright():
    """The one Playwright driver of the session (a second sync driver cannot start while one runs): tests that
    need a microphone of their own launch their browser from it with :func:`launch_chromium`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright, spoken_keyword_wav):
    browser = launch_chromium(playwright, spoken_keyword_wav)
    yield browser
    browser.close()


LOOPBACK = re.compile(r"^(https?|wss?)://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?/|^(data|blob|about):")


@pytest.fixture
def page(browser, app_url):
    """A 1280 x 1000 page (a laptop screen) that fails its test if anything is requested outside loopback
    (fonts, favicons, CDNs: the app must work offline)."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, permissions=["microphone"])
    outside: list[str] = []
    context.on("request", lambda request: outside.append(request.url) if not LOOPBACK.match(request.url) else None)
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()
    assert not outside, f"requests outside loopback: {sorted(set(outside))}"


def wait_for_app(page, timeout_ms: int = 60_000) -> None:
    """Wait until the script run has finished (no 'Running...' status) and the page has a title."""
    page.wait_for_selector("h1", timeout=timeout_ms)
    deadline = time.monotonic() + timeout_ms / 1000
    quiet_since = None
    while time.monotonic() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').count() > 0
        if running:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 1.5:
            return
        time.sleep(0.25)
    raise AssertionError("the app kept running for too long")


def open_with_run(page, url: str, picker: str, run_id: str) -> None:
    """Open the page at ``url`` and choose run ``run_id`` in its run picker labelled ``picker``."""
    page.goto(url)
    wait_for_app(page)
    page.get_by_role("combobox", name=picker).click()
    page.get_by_role("option", name=re.compile(f"^{re.escape(run_id)}")).click()
    wait_for_app(page)
    assert_no_exception(page)


def screenshot(page, name: str) -> Path:
    """A full-height screenshot: Streamlit scrolls its main area inside the window, so the window is made as tall
    as that area for the shot (then put back)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    viewport = page.viewport_size
    height = page.evaluate("""() => Math.max(...[...document.querySelectorAll('[data-testid="stMain"], section')]
        .map(el => el.scrollHeight), document.body.scrollHeight)""")
    page.set_viewport_size({"width": viewport["width"], "height": min(max(height, viewport["height"]), 12000)})
    time.sleep(0.8)  # let the charts re-layout
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(viewport)
    return path


def assert_no_overlaps_or_cut_labels(page) -> None:
    """Every chart's title clear of its legend, every drop-down showing its whole value, no Deploy button."""
    page.wait_for_function("""() => [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
        .every(chart => chart.querySelector('.main-svg'))""", timeout=30_000)  # every chart drawn
    overlaps = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')].flatMap(plot => {
        const title = plot.querySelector('.gtitle'), legend = plot.querySelector('g.legend');
        if (!title || !legend || !title.textContent) return [];
        const a = title.getBoundingClientRect(), b = legend.getBoundingClientRect();
        const apart = a.right <= b.left || b.right <= a.left || a.bottom <= b.top || b.bottom <= a.top;
        return apart ? [] : [title.textContent];
    })""")
    assert not overlaps, f"chart titles drawn over their legends: {overlaps}"
    cut = page.evaluate("""() => {
        const context = document.createElement('canvas').getContext('2d');
        return [...document.querySelectorAll('[data-testid="stSelectbox"] input[role="combobox"]')].filter(input => {
            const style = getComputedStyle(input);
            context.font = style.font;
            const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
            return input.value && context.measureText(input.value).width > room + 1;
        }).map(input => input.value);
    }""")
    assert not cut, f"drop-down values cut off: {cut}"
    assert page.locator('[data-testid="stAppDeployButton"]').count() == 0, "the Deploy button is shown"


def assert_no_exception(page) -> None:
    boxes = page.locator('[data-testid="stException"]')
    assert boxes.count() == 0, boxes.first.inner_text()

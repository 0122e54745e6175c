"""Live listening in a real headless Chromium: its fake microphone says three keywords over and over; the Listen
page streams them to the server over WebRTC (loopback, no STUN server) and the shipped default model detects them
as they are spoken."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.e2e.conftest import (assert_no_exception, assert_no_overlaps_or_cut_labels, launch_chromium, open_with_run,
                                screenshot, wait_for_app)

pytestmark = pytest.mark.e2e

WORDS = ("yes", "stop", "left")
GAP_SEC = 1.2  # silence after each word


@pytest.fixture(scope="module")
def keywords_wav(tmp_path_factory) -> Path:
    """The three words spoken by eSpeak (a voice variant the default model was not trained on), with pauses."""
    import torch

    from lib.dsp.audio import resample
    from lib.data.synth.espeak import synthesize

    parts = [np.zeros(8000)]
    for word in WORDS:
        speech, rate = synthesize(word, voice="en-us", variant="m3")
        speech = resample(torch.from_numpy(speech).float(), rate, 16000).numpy()
        parts += [0.8 * speech / np.abs(speech).max(), np.zeros(int(GAP_SEC * 16000))]
    path = tmp_path_factory.mktemp("listen-mic") / "keywords.wav"
    sf.write(path, np.concatenate(parts).astype(np.float32), 16000, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def listen_page(playwright, keywords_wav, app_url):
    """A page in its own Chromium whose fake microphone plays ``keywords_wav`` in a loop."""
    browser = launch_chromium(playwright, keywords_wav)
    page = browser.new_context(viewport={"width": 1280, "height": 1000}, permissions=["microphone"]).new_page()
    page.set_default_timeout(60_000)
    yield page
    browser.close()


def test_listen_detects_spoken_keywords_live(listen_page, app_url, shipped_default_run):
    page = listen_page
    open_with_run(page, f"{app_url}/listen", "Run", "shipped-default")
    component = page.frame_locator('iframe[title*="streamlit_webrtc"]')
    component.get_by_role("button", name=re.compile("start listening", re.I)).click()
    table = page.locator('[data-testid="stTable"]')
    rows: list[tuple[str, float]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not set(WORDS) <= {word for word, _ in rows}:
        if table.count():  # rows of word, at, probability, shown after
            cells = [row.locator("th, td").all_inner_texts() for row in table.first.locator("tbody tr").all()]
            rows = [(cell[0].strip(), float(cell[3].rstrip(" s"))) for cell in cells if len(cell) == 4]
        time.sleep(0.5)
    screenshot(page, "listen-live")
    heard = {word for word, _ in rows}
    assert set(WORDS) <= heard, f"heard only {sorted(heard)} of {WORDS}"
    assert max(delay for _, delay in rows) < 1.0, f"a word showed more than 1 s after it was heard: {rows}"
    assert_no_overlaps_or_cut_labels(page)
    component.get_by_role("button", name=re.compile("^stop$", re.I)).click()
    wait_for_app(page)
    assert_no_exception(page)

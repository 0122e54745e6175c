"""Page test (AppTest) of app_pages/listen.py: the run's operating point, the threshold, and the detections shown.

The WebRTC component needs a browser (tests/e2e/test_listen.py streams Chromium's fake microphone through it); here
it is replaced by a stub that says whether the microphone streams, and audio is fed to the page's listener
directly, as the media thread would."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

import ui.microphone
from lib.dsp.audio import resample
from tests.keyword_streams import PLACEMENTS, RATE, make_stream

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "app_pages" / "listen.py"


@pytest.fixture
def shipped_default(shipped_default_run, monkeypatch):
    """The real models/default as run "shipped-default"; the microphone stubbed off."""
    monkeypatch.setattr(ui.microphone, "live_microphone", lambda key, sink, start_label="": False)
    return shipped_default_run


def open_page() -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.session_state["run_id"] = "shipped-default"
    at.run()
    assert not at.exception, at.exception
    return at


def test_the_page_starts_at_the_runs_operating_point(shipped_default):
    at = open_page()
    assert at.selectbox(key="listen_run").value == "shipped-default"
    assert at.slider(key="listen_threshold_shipped-default").value == pytest.approx(0.5)  # detector.json
    captions = " ".join(c.value for c in at.caption)
    assert "yes, no, up, down, left, right, on, off, stop, go" in captions
    assert "false detections per hour" in captions
    assert any("Start listening" in i.value for i in at.info)
    listener = at.session_state["listen_holder"]["listener"]
    at.slider(key="listen_threshold_shipped-default").set_value(0.8).run()
    assert listener.detector.threshold == pytest.approx(0.8)  # the same listener, its threshold changed live


def test_detected_words_are_listed_with_their_delay(shipped_default, clear_clips):
    at = open_page()
    listener = at.session_state["listen_holder"]["listener"]
    waveform, _ = make_stream(clear_clips, PLACEMENTS[:3], 11.0)
    mic = resample(torch.from_numpy(waveform), RATE, 48000).numpy()
    listener.max_behind_sec = 60
    for start in range(0, len(mic), 960):  # what the media thread does with each WebRTC frame
        listener.feed(np.stack([mic[start:start + 960]] * 2), 48000)
    deadline = time.monotonic() + 30
    while listener.state().time_sec < 10.99 and time.monotonic() < deadline:
        time.sleep(0.05)
    at.run()
    assert not at.exception, at.exception
    table = at.table[0].value
    assert list(table.index) == [word for word, _ in reversed(PLACEMENTS[:3])]
    assert list(table.columns) == ["at", "probability", "shown after"]
    assert at.metric[0].value == PLACEMENTS[2][0]  # the latest word

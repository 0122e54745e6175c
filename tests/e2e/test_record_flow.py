"""The Record page's promise, in a real headless Chromium: a few takes of two words of your own and the background
class, trained with the default settings, then the words said live are heard right.

Two browsers, one voice each word (Chromium's fake microphone plays one file per browser, in a loop): each says
its word six times in ONE long take, which the page saves as six takes (one per time the word was said); the
second adds the background class and trains; both then say their word again and read the answer."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.e2e.conftest import (assert_no_exception, assert_no_overlaps_or_cut_labels, launch_chromium, screenshot,
                                wait_for_app)

pytestmark = pytest.mark.e2e

WORDS = ("yes", "stop")
REPEATS = 6
GAP_SEC = 0.6
DATASET = "e2e-my-words"


def word_wav(folder: Path, word: str) -> Path:
    """``word`` said REPEATS times by one eSpeak voice (a variant none of the default model's speakers has)."""
    import torch

    from lib.dsp.audio import resample
    from lib.data.synth.espeak import synthesize

    speech, rate = synthesize(word, voice="en-us", variant="m3")
    speech = resample(torch.from_numpy(speech).float(), rate, 16000).numpy()
    speech = 0.8 * speech / np.abs(speech).max()
    gap = np.zeros(int(GAP_SEC * 16000))
    path = folder / f"{word}.wav"
    sf.write(path, np.concatenate([gap] + [np.concatenate([speech, gap])] * REPEATS).astype(np.float32), 16000,
             subtype="PCM_16")
    return path


def record(page, seconds: float) -> None:
    recorder = page.locator('[data-testid="stAudioInput"]')
    recorder.get_by_role("button", name="Record", exact=True).click()  # not "Clear recording: Record"
    time.sleep(seconds)
    recorder.get_by_role("button", name=re.compile("stop", re.I)).first.click()
    wait_for_app(page)


def heard(page) -> str:
    """The "Heard" metric's value after a take."""
    metric = page.locator('[data-testid="stMetric"]').filter(has_text=re.compile(r"^\s*Heard"))
    metric.first.wait_for(timeout=60_000)
    return metric.first.locator('[data-testid="stMetricValue"]').inner_text().strip()


def add_long_take(page, app_url: str, word: str, microphone_wav: Path) -> None:
    """Say ``word`` REPEATS times in one take (the microphone's file once) and add it to the dataset as class
    ``word``."""
    page.goto(f"{app_url}/record")
    wait_for_app(page)
    dataset = page.get_by_role("textbox", name="Dataset name")
    dataset.fill(DATASET)
    dataset.press("Enter")
    wait_for_app(page)
    new_class = page.get_by_role("textbox", name=re.compile("^(New class|Class)$"))
    new_class.fill(word)
    new_class.press("Enter")
    wait_for_app(page)
    record(page, sf.info(str(microphone_wav)).duration)
    page.get_by_role("button", name=f"Add recording as class “{word}”").click()
    wait_for_app(page)
    assert_no_exception(page)
    saved = page.get_by_text(re.compile(r"Saved \d+ takes")).first.inner_text()
    takes = int(re.search(r"Saved (\d+) takes", saved).group(1))
    assert REPEATS - 1 <= takes <= REPEATS + 1, saved  # one per time the word was said (a loop may cut one)


@pytest.fixture
def my_words(app_env):
    import shutil

    from lib.settings import settings

    folder = settings().recordings_dir / DATASET
    shutil.rmtree(folder, ignore_errors=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_six_takes_of_two_words_train_and_answer_live(playwright, app_url, tmp_path, my_words, new_runs):
    browsers, pages = [], {}
    try:
        for word in WORDS:
            wav = word_wav(tmp_path, word)
            browsers.append(launch_chromium(playwright, wav))
            pages[word] = browsers[-1].new_context(viewport={"width": 1280, "height": 1000},
                                                   permissions=["microphone"]).new_page()
            pages[word].set_default_timeout(60_000)
            add_long_take(pages[word], app_url, word, wav)
        page = pages[WORDS[-1]]
        page.get_by_role("button", name="Add a “background” class").click()
        wait_for_app(page)
        page.get_by_role("button", name="Train on my recordings").click()
        trained = page.get_by_text(re.compile(r"Trained .+ on your takes"))
        trained.first.wait_for(timeout=180_000)
        run_id = re.search(r"Trained (\S+) on your takes", trained.first.inner_text()).group(1)
        wait_for_app(page)
        for word in reversed(WORDS):  # the trainer's session has the new run; the other reopens the page for it
            page = pages[word]
            if word != WORDS[-1]:
                page.reload()
                wait_for_app(page)
                page.get_by_role("combobox", name="Run").click()
                page.get_by_role("option", name=re.compile(f"^{re.escape(run_id)}")).click()
                wait_for_app(page)
            record(page, 2.5)
            assert_no_exception(page)
            assert_no_overlaps_or_cut_labels(page)
            screenshot(page, f"record-flow-{word}")
            assert heard(page) == word
    finally:
        for browser in browsers:
            browser.close()

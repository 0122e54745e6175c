"""lib.serving.listen and lib.dsp.audio.StreamResampler: live detection fed as a browser microphone feeds it (48 kHz stereo
blocks of 20 ms on another thread) gives the events of the whole recording; bounded, resettable, never blocking."""

from __future__ import annotations

import time

import av
import numpy as np
import pytest
import torch

from lib.serving import listen as listen_module
from lib.dsp.audio import StreamResampler, resample, resample_long
from lib.serving.listen import Listener, block_level_dbfs, frame_samples
from lib.serving.stream import StreamingDetector, detect_stream
from tests.keyword_streams import PLACEMENTS, RATE, make_stream

MIC_RATE, BLOCK = 48000, 960  # what WebRTC delivers: 20 ms blocks at 48 kHz


@pytest.mark.parametrize("orig_sr,new_sr", [(48000, 16000), (44100, 16000), (8000, 16000), (22050, 16000),
                                            (16000, 16000)])
def test_stream_resampler_matches_resampling_the_whole_signal(orig_sr, new_sr):
    signal = torch.randn(2 * orig_sr, generator=torch.Generator().manual_seed(0)) * 0.3
    resampler, pieces, start = StreamResampler(orig_sr, new_sr), [], 0
    sizes = np.random.default_rng(1).integers(1, 3000, size=10_000)
    for size in sizes:
        pieces.append(resampler.push(signal[start:start + size]))
        start += size
        if start >= len(signal):
            break
    chunked, whole = torch.cat(pieces), resample_long(signal, orig_sr, new_sr)
    assert len(whole) - 0.05 * new_sr <= len(chunked) <= len(whole)  # all but the kernel's lookahead (< 50 ms)
    assert torch.allclose(chunked, whole[:len(chunked)], atol=1e-5)


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def feed_as_microphone(listener: Listener, waveform_16k: np.ndarray) -> None:
    """The stream as a browser sends it: 48 kHz, stereo, 20 ms blocks (as fast as the test can)."""
    mic = resample(torch.from_numpy(waveform_16k), RATE, MIC_RATE).numpy()
    for start in range(0, len(mic), BLOCK):
        listener.feed(np.stack([mic[start:start + BLOCK]] * 2), MIC_RATE)


def test_listener_fed_blocks_gives_the_events_of_the_whole_recording(shipped_classifier, clear_clips):
    waveform, placed = make_stream(clear_clips, PLACEMENTS, 22.0)
    mic = resample(torch.from_numpy(waveform), RATE, MIC_RATE).numpy()
    expected = detect_stream(shipped_classifier, mic, MIC_RATE, threshold=0.7)
    listener = Listener(StreamingDetector(shipped_classifier, threshold=0.7), max_behind_sec=60)  # keep every block
    feed_as_microphone(listener, waveform)
    wait_until(lambda: listener.state().time_sec >= len(waveform) / RATE - 0.01)
    state = listener.state()
    assert [h.event.word for h in reversed(state.events)] == [e.word for e in expected] == [w for w, _ in PLACEMENTS]
    for heard, event in zip(reversed(state.events), expected):
        assert heard.event.time_sec == pytest.approx(event.time_sec, abs=1e-6)
        assert heard.event.probability == pytest.approx(event.probability, abs=1e-4)
        assert 0 <= heard.delay_sec < 5
    assert state.dropped_sec == 0 and state.error is None
    assert state.probabilities.shape == (shipped_classifier.n_classes,)
    listener.close()


def test_reset_threshold_and_close(shipped_classifier, clear_clips):
    waveform, _ = make_stream(clear_clips, PLACEMENTS[:2], 6.0)
    listener = Listener(StreamingDetector(shipped_classifier), max_behind_sec=60)
    with pytest.raises(ValueError, match="threshold"):
        listener.set_threshold(0.2)
    listener.set_threshold(0.7)
    assert listener.detector.threshold == 0.7
    feed_as_microphone(listener, waveform)
    wait_until(lambda: listener.state().time_sec >= 5.99)
    assert listener.state().events
    listener.reset()
    state = listener.state()
    assert state.events == [] and state.time_sec == 0 and not state.probabilities.any()
    with pytest.raises(ValueError, match="sample_rate"):
        listener.feed(np.zeros(BLOCK, dtype=np.float32), 0)
    listener.close()
    listener.feed(np.zeros(BLOCK, dtype=np.float32), MIC_RATE)  # ignored after close
    time.sleep(0.2)
    assert listener.state().time_sec == 0


def test_a_slow_worker_drops_the_oldest_audio_and_feed_never_blocks(shipped_classifier, monkeypatch):
    detector = StreamingDetector(shipped_classifier)
    real = detector.posteriors
    monkeypatch.setattr(detector, "posteriors", lambda chunk: (time.sleep(0.05), real(chunk))[1])
    listener = Listener(detector)
    started = time.monotonic()
    for _ in range(500):  # 10 s of 20 ms blocks at once
        listener.feed(np.zeros((2, BLOCK), dtype=np.float32), MIC_RATE)
    assert time.monotonic() - started < 2.0
    state = listener.state()
    assert state.dropped_sec >= 10 - listen_module.MAX_BEHIND_SEC - 1
    listener.close()


def test_the_worker_ends_when_idle_and_an_error_is_reported(shipped_classifier, monkeypatch):
    monkeypatch.setattr(listen_module, "IDLE_SEC", 0.1)
    detector = StreamingDetector(shipped_classifier)
    listener = Listener(detector)
    listener.feed(np.zeros(BLOCK, dtype=np.float32), MIC_RATE)
    wait_until(lambda: listener._worker is None, timeout=10)
    monkeypatch.setattr(detector, "posteriors", lambda chunk: 1 / 0)
    listener.feed(np.zeros(BLOCK, dtype=np.float32), MIC_RATE)
    wait_until(lambda: listener.state().error is not None, timeout=10)
    assert "ZeroDivisionError" in listener.state().error


def test_frame_samples_reads_packed_and_planar_frames():
    interleaved = np.arange(2 * 960, dtype=np.int16).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(interleaved, format="s16", layout="stereo")
    frame.sample_rate = MIC_RATE
    samples, rate = frame_samples(frame)
    assert rate == MIC_RATE and samples.shape == (2, 960) and samples.dtype == np.float32
    assert np.array_equal(samples[0] * 32768, np.arange(0, 1920, 2)) and np.array_equal(samples[1] * 32768,
                                                                                        np.arange(1, 1920, 2))
    planar = np.random.default_rng(0).uniform(-1, 1, (2, 480)).astype(np.float32)
    frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout="stereo")
    frame.sample_rate = 44100
    samples, rate = frame_samples(frame)
    assert rate == 44100 and np.array_equal(samples, planar)


def test_block_level():
    assert block_level_dbfs(np.zeros(10)) == -100.0
    assert block_level_dbfs(np.full(10, 0.5)) == pytest.approx(-6.02, abs=0.01)

"""Live listening: a microphone's blocks in, as they come, keyword events and class bars out, for a page to poll.

A browser microphone (WebRTC) delivers blocks of 10-20 ms at its own rate (usually 48 kHz, often stereo) on a
media thread that must never wait. :class:`Listener` sits between it and a :class:`lib.serving.stream.StreamingDetector`:

    media thread                    Listener's worker thread                  page (a fragment every ~0.3 s)
    feed(block, rate) ──queue──▶  mono ─ StreamResampler ─ detector.posteriors ─ EventRule ──▶ state()
    (never blocks: drops the       (to the run's rate)     (ring buffer, hop,    (threshold,       (bars, words,
     oldest audio when the                                  silence, smoothing)   refractory)       delays)
     worker falls behind)

The worker classifies on one torch thread (a class of 30 listening at once shares the server's cores), starts with
the first block and ends after :data:`IDLE_SEC` without audio, so a closed browser tab leaves nothing running. What
it keeps is bounded: the queue (:data:`MAX_BEHIND_SEC` of audio), the detector's one clip, the last
:data:`MAX_EVENTS` events.

Each event carries its delay: from the moment the block that completed the word's window reached the server to the
moment the word was detected (:attr:`HeardWord.delay_sec`); the page adds the time until it shows it.

Example:
    >>> listener = Listener(StreamingDetector.from_run("models/default"))
    >>> listener.feed(block, 48000)        # from the media thread, (channels, time) or (time,) float
    >>> listener.state().events            # from the page, newest first
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from lib.dsp.audio import StreamResampler
from lib.serving.detect import level_dbfs
from lib.serving.stream import CONFIDENCE_FLOOR, KeywordEvent, StreamingDetector, _number

__all__ = ["Listener", "ListenState", "HeardWord", "MAX_EVENTS", "MAX_BEHIND_SEC", "IDLE_SEC", "block_level_dbfs",
           "frame_samples"]

MAX_EVENTS = 20          # events a listener keeps (newest first)
MAX_BEHIND_SEC = 2.0     # audio waiting for the worker beyond this is dropped, oldest first
IDLE_SEC = 10.0          # the worker ends after this long without audio (the next block starts it again)
SILENCE_DBFS = -100.0    # the level of digital silence


def block_level_dbfs(samples: np.ndarray) -> float:
    """RMS level of ``samples`` (any shape, float in [-1, 1]) in dB below full scale; :data:`SILENCE_DBFS` for
    silence."""
    return max(SILENCE_DBFS, level_dbfs(samples))


def frame_samples(frame) -> tuple[np.ndarray, int]:
    """A media frame (PyAV's ``AudioFrame``, as WebRTC delivers it) as ``(channels, time)`` float32 samples in
    [-1, 1] and its sample rate.

    Packed formats (``s16``: the channels interleaved in one row) are split into channels; planar ones (``s16p``,
    ``fltp``) are one row per channel already. Integer samples are scaled by their full scale (int16: 32768).

    Raises:
        ValueError: If the frame's sample format is not integer or float PCM.
    """
    data = frame.to_ndarray()                                  # packed: (1, time * channels); planar: (channels, time)
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        data = data.reshape(-1, channels).T                    # (channels, time)
    if np.issubdtype(data.dtype, np.integer):
        data = data.astype(np.float32) / float(-np.iinfo(data.dtype).min)
    elif np.issubdtype(data.dtype, np.floating):
        data = data.astype(np.float32, copy=False)
    else:
        raise ValueError(f"unsupported audio sample format {frame.format.name!r}: expected integer or float PCM")
    return data, int(frame.sample_rate)


@dataclass(frozen=True)
class HeardWord:
    """A detected keyword, with when it happened in the stream and how long detecting it took.

    Attributes:
        event: The detector's event (word, stream time in seconds, smoothed probability).
        delay_sec: From the arrival of the audio that completed the word's window to its detection.
        detected_at: ``time.monotonic()`` at detection (the page measures from it how late it shows the word).
    """

    event: KeywordEvent
    delay_sec: float
    detected_at: float


@dataclass(frozen=True)
class ListenState:
    """What a page shows of a :class:`Listener`.

    Attributes:
        listening: Audio arrived within the last second.
        time_sec: Seconds of stream heard since the last :meth:`Listener.reset`.
        level_dbfs: The level of the last block, dBFS.
        probabilities: ``(n_classes,)`` the latest smoothed posteriors (zeros in silence or before a whole clip).
        class_names: The model's classes, in the order of ``probabilities``.
        events: The latest :class:`HeardWord` s, newest first.
        dropped_sec: Audio dropped because the worker fell behind (0 on a machine that keeps up).
        error: Why the worker stopped, when it failed (the page shows it); None otherwise.
    """

    listening: bool
    time_sec: float
    level_dbfs: float
    probabilities: np.ndarray
    class_names: list[str]
    events: list[HeardWord] = field(default_factory=list)
    dropped_sec: float = 0.0
    error: str | None = None


class Listener:
    """Keyword detection over a live stream fed from another thread (see the module's description).

    Args:
        detector: The run's streaming detector (its settings: hop, smoothing, threshold, refractory time).
        threads: Torch threads the worker classifies on.
        max_behind_sec: Seconds of audio that may wait for the worker; beyond them the oldest is dropped.

    Thread safety: :meth:`feed` is for the media thread; :meth:`state`, :meth:`set_threshold`, :meth:`reset` and
    :meth:`close` for any other; all of them return at once.
    """

    def __init__(self, detector: StreamingDetector, threads: int = 1, max_behind_sec: float = MAX_BEHIND_SEC) -> None:
        self.detector = detector
        self.threads = max(1, int(threads))
        self.max_behind_sec = float(max_behind_sec)
        self._queue: queue.Queue = queue.Queue()          # (samples (channels, time) float32, rate, arrival)
        self._queued_sec = 0.0
        self._lock = threading.Lock()                     # the queue and the state the page reads
        self._detector_lock = threading.Lock()            # the detector's stream (the worker, reset)
        self._worker: threading.Thread | None = None
        self._closed = False
        self._generation = 0                               # bumped by reset(): the worker drops older audio
        self._clear()

    def _clear(self) -> None:
        self._resampler: StreamResampler | None = None
        self._probabilities = np.zeros(self.detector.classifier.n_classes)
        self._events: collections.deque[HeardWord] = collections.deque(maxlen=MAX_EVENTS)
        self._level = SILENCE_DBFS
        self._last_audio = -np.inf
        self._dropped = 0.0
        self._error: str | None = None

    # ------------------------------------------------------------------ media thread
    def feed(self, samples: np.ndarray, sample_rate: int) -> None:
        """Queues one block of the stream: ``(time,)`` or ``(channels, time)`` float samples in [-1, 1] at
        ``sample_rate`` Hz. Never blocks; when more than ``max_behind_sec`` waits, the oldest is dropped.

        Raises:
            ValueError: If ``sample_rate`` is not a positive number of Hz.
        """
        if self._closed:
            return
        if not sample_rate or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
        block = np.asarray(samples, dtype=np.float32)
        block = block.mean(axis=0) if block.ndim == 2 else block.reshape(-1)          # (time,) mono
        now = time.monotonic()
        with self._lock:
            self._level = block_level_dbfs(block)
            self._last_audio = now
            self._queue.put((block, int(sample_rate), now, self._generation))
            self._queued_sec += len(block) / sample_rate
            while self._queued_sec > self.max_behind_sec:
                try:
                    old, rate, _, _ = self._queue.get_nowait()
                except queue.Empty:
                    break
                self._queued_sec -= len(old) / rate
                self._dropped += len(old) / rate
                self._resampler = None                     # a gap: the resampler starts again
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="listener", daemon=True)
                self._worker.start()

    # ------------------------------------------------------------------ worker thread
    def _work(self) -> None:
        torch.set_num_threads(self.threads)               # this thread's share (OpenMP threads are per thread)
        while not self._closed:
            try:
                block, rate, arrival, generation = self._queue.get(timeout=IDLE_SEC)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._worker = None
                        return
                continue
            with self._lock:
                self._queued_sec -= len(block) / rate
                if generation != self._generation:
                    continue
                if self._resampler is None or self._resampler.orig_sr != rate:
                    self._resampler = StreamResampler(rate, self.detector.sample_rate)
                resampler = self._resampler
            try:
                self._classify(resampler.push(torch.from_numpy(block)).numpy(), arrival, generation)
            except Exception as error:  # noqa: BLE001 - shown on the page; the media thread must not see it
                with self._lock:
                    self._error = f"{type(error).__name__}: {error}"
                    self._worker = None
                return

    def _classify(self, samples: np.ndarray, arrival: float, generation: int) -> None:
        with self._detector_lock:
            if generation != self._generation:
                return
            times, smoothed = self.detector.posteriors(samples)
            events = self.detector.rule.step(times, smoothed)
        now = time.monotonic()
        with self._lock:
            if generation != self._generation:
                return
            if len(smoothed):
                self._probabilities = smoothed[-1]
            for event in events:
                self._events.appendleft(HeardWord(event, now - arrival, now))

    # ------------------------------------------------------------------ page
    def state(self) -> ListenState:
        """A consistent copy of what the listener knows now."""
        with self._lock:
            return ListenState(listening=time.monotonic() - self._last_audio < 1.0,
                               time_sec=self.detector.time_sec, level_dbfs=self._level,
                               probabilities=self._probabilities.copy(),
                               class_names=list(self.detector.classifier.class_names),
                               events=list(self._events), dropped_sec=self._dropped, error=self._error)

    def set_threshold(self, threshold: float) -> None:
        """Changes the smoothed probability a word needs, live.

        Raises:
            ValueError: If it is not in [:data:`lib.serving.stream.CONFIDENCE_FLOOR`, 1].
        """
        value = _number("threshold", threshold, CONFIDENCE_FLOOR, 1.0)
        with self._lock:
            self.detector.rule.threshold = value

    def reset(self) -> None:
        """Starts a new stream (a new Start in the page): the audio still queued is dropped, the detector's buffer,
        history and events cleared."""
        with self._detector_lock, self._lock:
            self._generation += 1
            self.detector.reset()
            self._clear()

    def close(self) -> None:
        """Stops the worker (at its next block or idle check) and ignores later audio."""
        self._closed = True

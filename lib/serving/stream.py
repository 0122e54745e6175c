"""Continuous keyword detection: a live stream (or a long recording) in, timed keyword events out.

A keyword spotter listens without pause, so it cannot wait for the end of a recording. :class:`StreamingDetector`
is fed chunks of samples of any length as they arrive (a microphone's blocks, a file read piece by piece) and
answers each chunk with the keywords it completed:

1. **Ring buffer.** It keeps the last clip of samples (the run's ``clip_seconds``); a stream of hours costs one
   clip of memory beyond the chunk being pushed.
2. **Hop.** Every ``hop_sec`` of stream (100 ms by default) the model classifies the clip that ends there
   (:meth:`lib.serving.infer.Classifier.clip_probabilities`, batched across the hops one chunk completes), from the
   first hop at which a whole clip has arrived (a stream shorter than one clip has no windows; padding the
   start with silence would make the first sound an onset the model can mistake for a word).
3. **Silence.** A window that is silent by :func:`lib.serving.detect.is_silent` (the Record page's rule: peak below
   :data:`~lib.serving.detect.SILENT_PEAK` or level below :data:`~lib.serving.detect.SILENT_RMS_DBFS`) is not classified: it
   counts as "no word" (all probabilities zero).
4. **Smoothing.** The posteriors are averaged over the last ``smoothing_sec`` of hops (a moving average), so one
   odd window does not fire and a word must hold for a few hops.
5. **Events.** A keyword fires when its smoothed probability reaches ``threshold``, then stays quiet for
   ``refractory_sec`` and until it has dropped below the threshold again. The threshold is never below
   :data:`CONFIDENCE_FLOOR` (below even odds a model without a background class is guessing, and noise alone
   stays under it). Classes that mean "no word" never fire: ``_unknown_`` and the background classes of
   :func:`lib.serving.background.is_background` (``_silence_``, ``_background_`` ...), plus any named in ``ignore``.

Each event is a :class:`KeywordEvent`: the word, the stream time at which it fired (the end of the window that
crossed, seconds from the stream's start) and its smoothed probability. :func:`detect_stream` runs the detector
over a whole recording. A run's measured operating point (``detector.json``, written by ``bench/detection.py``
with :func:`save_operating_point`) is read by :func:`operating_point` and gives :meth:`StreamingDetector.from_run`
its defaults.

Example:
    >>> detector = StreamingDetector.from_run("models/default")
    >>> for chunk in microphone_blocks():          # (time,) float32 at detector.sample_rate
    ...     for event in detector.push(chunk):
    ...         print(f"{event.time_sec:7.2f} s  {event.word}  {event.probability:.2f}")
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from lib.dsp.audio import fit_clip
from lib.serving.background import CONFIDENCE_THRESHOLD, is_background
from lib.data.catalog import UNKNOWN_LABEL
from lib.serving.detect import is_silent
from lib.serving.infer import WINDOW_BATCH, Classifier, _checked_waveform
from lib.engine.runs import DETECTOR_FILE, write_json_atomic

__all__ = ["KeywordEvent", "StreamingDetector", "EventRule", "detect_stream", "moving_average",
           "operating_point", "save_operating_point", "detector_settings", "DETECTOR_FILE", "CONFIDENCE_FLOOR", "DEFAULT_HOP_SEC",
           "DEFAULT_SMOOTHING_SEC", "DEFAULT_THRESHOLD", "DEFAULT_REFRACTORY_SEC"]

CONFIDENCE_FLOOR = CONFIDENCE_THRESHOLD  # the least threshold: a word needs more than even odds (lib.serving.background)
DEFAULT_HOP_SEC = 0.1
DEFAULT_SMOOTHING_SEC = 0.3
DEFAULT_THRESHOLD = 0.8
DEFAULT_REFRACTORY_SEC = 1.0
MAX_HOP_SEC = 10.0
MAX_SMOOTHING_SEC = 10.0
MAX_REFRACTORY_SEC = 3600.0
_POINT_KEYS = ("threshold", "smoothing_sec", "refractory_sec", "hop_sec")
_PUSH_BLOCK_HOPS = 4 * WINDOW_BATCH  # detect_stream pushes this many hops at a time (bounded memory)


@dataclass(frozen=True)
class KeywordEvent:
    """One detected keyword.

    Attributes:
        word: The class that fired.
        time_sec: When it fired: the end of the window whose smoothed probability crossed the threshold, in
            seconds from the stream's start (the word itself ends somewhat before).
        probability: Its smoothed probability at that window.
    """

    word: str
    time_sec: float
    probability: float


def _number(name: str, value: Any, low: float, high: float, low_open: bool = False) -> float:
    """``value`` as a float in ``[low, high]`` (``(low, high]`` with ``low_open``), else ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or value > high or value < low or (low_open and value == low):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


def moving_average(probabilities: np.ndarray, n_windows: int, history: np.ndarray | None = None) -> np.ndarray:
    """Each row averaged with the rows before it: the mean of the last ``n_windows`` rows up to it.

    Args:
        probabilities: ``(n, n_classes)`` the newest windows' probabilities, oldest first.
        n_windows: How many windows each average spans (1: no smoothing).
        history: ``(k, n_classes)`` the rows just before ``probabilities`` (the last ``n_windows - 1`` are used);
            None or fewer rows at a stream's start: the first averages span fewer windows.

    Returns:
        ``(n, n_classes)`` float64.
    """
    rows = np.asarray(probabilities, dtype=np.float64)
    before = np.zeros((0, rows.shape[1])) if history is None else np.asarray(history, dtype=np.float64)
    before = before[len(before) - min(len(before), n_windows - 1):]
    every = np.concatenate([before, rows])
    sums = np.cumsum(np.concatenate([np.zeros((1, rows.shape[1])), every]), axis=0)  # (k + n + 1, n_classes)
    ends = np.arange(len(before) + 1, len(every) + 1)
    starts = np.maximum(ends - n_windows, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)[:, None]


class EventRule:
    """When smoothed posteriors fire: threshold crossing from below, refractory time, classes that never fire.

    Stateful, so a stream can be fed in pieces: :meth:`step` continues where the last call stopped.

    Args:
        class_names: The model's classes, in the order of the posteriors.
        threshold: The smoothed probability a keyword needs, in [:data:`CONFIDENCE_FLOOR`, 1].
        refractory_sec: After an event, its word stays quiet this long (seconds, >= 0).
        ignore: More class names that never fire (``_unknown_`` and background classes never do).

    Raises:
        ValueError: If ``threshold`` or ``refractory_sec`` is out of range, or every class is ignored.
    """

    def __init__(self, class_names: Sequence[str], threshold: float = DEFAULT_THRESHOLD,
                 refractory_sec: float = DEFAULT_REFRACTORY_SEC, ignore: Sequence[str] = ()) -> None:
        self.threshold = _number("threshold", threshold, CONFIDENCE_FLOOR, 1.0)
        self.refractory_sec = _number("refractory_sec", refractory_sec, 0.0, MAX_REFRACTORY_SEC)
        if isinstance(ignore, str):
            raise ValueError(f"ignore must be a list of class names, got the string {ignore!r}")
        never = {UNKNOWN_LABEL, *map(str, ignore)}
        self.class_names = [str(name) for name in class_names]
        self.keywords = np.array([name not in never and not is_background(name) for name in self.class_names])
        if not self.keywords.any():
            raise ValueError(f"no class can fire: all of {self.class_names} are ignored or background classes")
        self.reset()

    @property
    def words(self) -> list[str]:
        """The classes that can fire, in the model's order."""
        return [name for name, fires in zip(self.class_names, self.keywords) if fires]

    def reset(self) -> None:
        """Forget the stream so far: every word armed, no refractory time running."""
        self._armed = np.ones(len(self.class_names), dtype=bool)             # below threshold since its last event
        self._quiet_until = np.full(len(self.class_names), -np.inf)         # end of each word's refractory time

    def step(self, times_sec: np.ndarray, smoothed: np.ndarray) -> list[KeywordEvent]:
        """The events of the next windows.

        A word fires at a window where its smoothed probability is at or above the threshold, it has been below
        the threshold since its last event, and its refractory time is over.

        Args:
            times_sec: ``(n,)`` each window's end, seconds from the stream's start, increasing.
            smoothed: ``(n, n_classes)`` their smoothed probabilities.

        Returns:
            The events, in time order.
        """
        smoothed = np.asarray(smoothed)
        above = (smoothed >= self.threshold) & self.keywords                     # (n, n_classes)
        events, previous = [], -1
        for row in np.flatnonzero(above.any(axis=1)):   # rows with no word above only re-arm every word
            if row > previous + 1:
                self._armed[:] = True
            now = float(times_sec[row])
            fire = above[row] & self._armed & (now >= self._quiet_until - 1e-9)  # float sums of times
            for index in np.flatnonzero(fire):
                events.append(KeywordEvent(self.class_names[index], round(now, 6), float(smoothed[row, index])))
            self._quiet_until[fire] = now + self.refractory_sec
            self._armed = (self._armed & ~fire) | ~above[row]
            previous = row
        if previous < len(above) - 1:
            self._armed[:] = True
        return events


class StreamingDetector:
    """Keyword events from a stream pushed in chunks of any length (see the module's description).

    Args:
        classifier: The run's model and preprocessing.
        hop_sec: Seconds between classified windows, in (0, 10]; rounded to whole samples.
        smoothing_sec: Seconds of hops the posteriors are averaged over (0 or less than a hop: none).
        threshold: The smoothed probability a keyword needs, in [:data:`CONFIDENCE_FLOOR`, 1].
        refractory_sec: After an event, its word stays quiet this long.
        ignore: More class names that never fire.

    Attributes:
        sample_rate (int): The rate :meth:`push` expects (the run's ``FeatureConfig.sample_rate``).
        hop_samples (int): Samples between windows.
        n_smooth (int): Windows each smoothed posterior spans.

    Raises:
        ValueError: If an argument is out of range (the message names it).
    """

    def __init__(self, classifier: Classifier, hop_sec: float = DEFAULT_HOP_SEC,
                 smoothing_sec: float = DEFAULT_SMOOTHING_SEC, threshold: float = DEFAULT_THRESHOLD,
                 refractory_sec: float = DEFAULT_REFRACTORY_SEC, ignore: Sequence[str] = ()) -> None:
        if not isinstance(classifier, Classifier):
            raise ValueError(f"classifier must be a lib.serving.infer.Classifier, got {type(classifier).__name__}")
        self.classifier = classifier
        self.sample_rate = classifier.feature_config.sample_rate
        self.hop_sec = _number("hop_sec", hop_sec, 0.0, MAX_HOP_SEC, low_open=True)
        self.smoothing_sec = _number("smoothing_sec", smoothing_sec, 0.0, MAX_SMOOTHING_SEC)
        self.hop_samples = max(1, round(self.hop_sec * self.sample_rate))
        self.n_smooth = max(1, round(self.smoothing_sec / self.hop_sec))
        self.rule = EventRule(classifier.class_names, threshold, refractory_sec, ignore)
        self.reset()

    @classmethod
    def from_run(cls, path: str | Path, device: str | torch.device = "cpu", **overrides: Any) -> StreamingDetector:
        """A detector for a saved run, with its measured operating point (:func:`operating_point`) as defaults.

        Args:
            path: The run folder.
            device: Where the model runs (as :meth:`Classifier.from_run`).
            **overrides: Any of the constructor's keyword arguments, over the operating point.

        Raises:
            RunError: If the run cannot be loaded. ValueError: a bad ``detector.json`` or argument.
        """
        return cls(Classifier.from_run(path, device=device), **{**detector_settings(path), **overrides})

    @property
    def threshold(self) -> float:
        return self.rule.threshold

    @property
    def refractory_sec(self) -> float:
        return self.rule.refractory_sec

    @property
    def time_sec(self) -> float:
        """Seconds of stream pushed so far."""
        return self._n_seen / self.sample_rate

    def reset(self) -> None:
        """Start a new stream: an empty ring buffer, no history, no refractory times."""
        n_samples = self.classifier.feature_config.n_samples
        self._ring = np.zeros(n_samples, dtype=np.float32)               # the stream's last clip of samples (zeros
                                                                          # before its start: never classified)
        self._n_seen = 0                                                  # samples pushed so far
        self._history = np.zeros((0, self.classifier.n_classes))          # the last n_smooth - 1 posteriors
        self.rule.reset()

    def _samples(self, chunk: Tensor | np.ndarray) -> np.ndarray:
        """``chunk`` ``(time,)`` or ``(channels, time)`` as ``(time,)`` float32 (channels averaged)."""
        samples = np.asarray(chunk.detach().cpu() if isinstance(chunk, Tensor) else chunk)
        if samples.ndim not in (1, 2):
            raise ValueError(f"a chunk must be (time,) or (channels, time), got shape {samples.shape}")
        if not np.issubdtype(samples.dtype, np.floating):
            raise ValueError(f"a chunk must hold float samples in [-1, 1], got {samples.dtype} "
                             "(convert int16 with lib.dsp.audio.from_int16)")
        if not np.isfinite(samples).all():
            raise ValueError("the chunk has non-finite samples (NaN or infinity)")
        samples = samples.astype(np.float32, copy=False)
        return samples.mean(axis=0) if samples.ndim == 2 else samples

    def posteriors(self, chunk: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advances the stream by ``chunk`` and returns the smoothed posteriors of the hops it completed
        (no events: :meth:`push` adds those; ``bench/detection.py`` sweeps thresholds over these).

        Args:
            chunk: ``(time,)`` or ``(channels, time)`` float samples at :attr:`sample_rate`; any length, 0 too.

        Returns:
            ``(times_sec, smoothed)``: ``(n,)`` each completed window's end in seconds from the stream's start,
            and ``(n, n_classes)`` float64 the moving averages of their posteriors.
        """
        samples = self._samples(chunk)
        n_samples, first = len(self._ring), self._n_seen
        buffer = np.concatenate([self._ring, samples])                    # stream samples first - n_samples ...
        self._n_seen += len(samples)
        first_end = max(first // self.hop_samples + 1, -(-n_samples // self.hop_samples)) * self.hop_samples
        ends = np.arange(first_end, self._n_seen + 1, self.hop_samples)  # every hop, once a whole clip is in
        self._ring = buffer[len(buffer) - n_samples:]
        raw = self._window_probabilities(buffer, ends - first)            # (n, n_classes)
        smoothed = moving_average(raw, self.n_smooth, self._history)
        history = np.concatenate([self._history, raw])
        self._history = history[len(history) - min(len(history), self.n_smooth - 1):]
        return ends / self.sample_rate, smoothed

    def _window_probabilities(self, buffer: np.ndarray, window_ends: np.ndarray) -> np.ndarray:
        """``(n, n_classes)`` probabilities of the clips ending ``window_ends`` + ``n_samples`` into ``buffer``;
        silent clips (:func:`lib.serving.detect.is_silent`) are zeros, not classified."""
        n_samples, n_classes = len(self._ring), self.classifier.n_classes
        out = np.zeros((len(window_ends), n_classes))
        offsets = np.arange(n_samples)
        for first in range(0, len(window_ends), WINDOW_BATCH):
            clips = buffer[window_ends[first:first + WINDOW_BATCH, None] + offsets]   # (batch, n_samples)
            sound = np.array([not is_silent(clip) for clip in clips], dtype=bool)
            if sound.any():
                batch = torch.from_numpy(clips[sound][:, None]).to(self.classifier.device)  # (b, 1, n_samples)
                with torch.inference_mode():
                    out[first + np.flatnonzero(sound)] = self.classifier.clip_probabilities(batch).cpu().numpy()
        return out

    def push(self, chunk: Tensor | np.ndarray) -> list[KeywordEvent]:
        """Feeds the next samples of the stream.

        Args:
            chunk: ``(time,)`` or ``(channels, time)`` float samples at :attr:`sample_rate`; any length.

        Returns:
            The keywords that fired in the hops this chunk completed, in time order.

        Raises:
            ValueError: If the chunk has more than two dimensions or non-finite samples.
        """
        return self.rule.step(*self.posteriors(chunk))


def detect_stream(classifier: Classifier, waveform: Tensor | np.ndarray, sample_rate: int,
                  **kwargs: Any) -> list[KeywordEvent]:
    """Keyword events of a whole recording: resampled once to the run's rate, then pushed a few hundred hops
    at a time through a :class:`StreamingDetector` (the same events as pushing it in any other pieces).

    Args:
        classifier: The run's model and preprocessing.
        waveform: ``(time,)`` or ``(channels, time)`` float samples.
        sample_rate: Its rate, Hz.
        **kwargs: The detector's settings (``hop_sec``, ``smoothing_sec``, ``threshold``, ``refractory_sec``,
            ``ignore``).

    Returns:
        The events in time order.

    Raises:
        ValueError: If the waveform is empty or not finite, the rate is not positive, or a setting is invalid.
    """
    detector = StreamingDetector(classifier, **kwargs)
    waveform = _checked_waveform(waveform, sample_rate)
    with torch.inference_mode():
        mono = fit_clip(waveform.float(), int(sample_rate), detector.sample_rate)[0].numpy()   # (time,) at rate
    block = _PUSH_BLOCK_HOPS * detector.hop_samples
    events = []
    for start in range(0, len(mono), block):
        events += detector.push(mono[start:start + block])
    return events


def _checked_point(point: Any, source: str) -> dict[str, Any]:
    """``point`` checked as an operating point (the keys of :data:`_POINT_KEYS` in range), else ValueError."""
    if not isinstance(point, dict) or any(key not in point for key in _POINT_KEYS):
        raise ValueError(f"{source} must be a JSON object with {', '.join(_POINT_KEYS)}; "
                         "rerun python bench/detection.py for the run or delete the file")
    try:
        _number("threshold", point["threshold"], CONFIDENCE_FLOOR, 1.0)
        _number("smoothing_sec", point["smoothing_sec"], 0.0, MAX_SMOOTHING_SEC)
        _number("refractory_sec", point["refractory_sec"], 0.0, MAX_REFRACTORY_SEC)
        _number("hop_sec", point["hop_sec"], 0.0, MAX_HOP_SEC, low_open=True)
    except ValueError as error:
        raise ValueError(f"{source}: {error}; rerun python bench/detection.py for the run or delete the file") \
            from error
    return point


def save_operating_point(run_path: str | Path, point: dict[str, Any]) -> Path:
    """Writes a run's operating point as ``detector.json`` in its folder, atomically.

    Args:
        run_path: The run folder (it must exist).
        point: ``threshold``, ``smoothing_sec``, ``refractory_sec``, ``hop_sec`` and anything measured with them
            (``false_accepts_per_hour``, ``miss_rate``, ``how``, ...).

    Returns:
        The file's path.

    Raises:
        ValueError: If the folder does not exist or a setting is missing or out of range.
    """
    path = Path(run_path)
    if not path.is_dir():
        raise ValueError(f"run folder {path} does not exist: give a saved run's folder")
    _checked_point(point, "the operating point")
    write_json_atomic(path / DETECTOR_FILE, point)
    return path / DETECTOR_FILE


def detector_settings(run_path: str | Path, point: dict[str, Any] | None = None) -> dict[str, float]:
    """The detector settings of a run's operating point (``threshold``, ``smoothing_sec``, ``refractory_sec``,
    ``hop_sec``), as :class:`StreamingDetector`'s keyword arguments; {} when it has none (the defaults).

    Args:
        run_path: The run folder, whose ``detector.json`` is read when ``point`` is None.
        point: The run's :func:`operating_point`, when the caller has read it already.

    Raises:
        ValueError: If its ``detector.json`` is not valid.
    """
    point = (operating_point(run_path) if point is None else point) or {}
    return {key: point[key] for key in _POINT_KEYS if key in point}


def operating_point(run_path: str | Path) -> dict[str, Any] | None:
    """A run's saved operating point (``detector.json``), or None when it has none.

    Args:
        run_path: The run folder.

    Returns:
        The saved dict: ``threshold``, ``smoothing_sec``, ``refractory_sec``, ``hop_sec`` and what was measured.

    Raises:
        ValueError: If the file is not valid JSON or a setting is missing or out of range.
    """
    import json

    path = Path(run_path) / DETECTOR_FILE
    if not path.is_file():
        return None
    try:
        point = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} cannot be read ({error}); rerun python bench/detection.py for the run or "
                         "delete the file") from error
    return _checked_point(point, str(path))

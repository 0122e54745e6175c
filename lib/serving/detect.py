"""Where the sounds are in a recording: the one rule that turns a long recording into answers.

The Record page, the Inference page and ``python -m lib.serving.predict`` all classify a recording through
:meth:`lib.serving.infer.Classifier.predict`, which follows this rule:

1. A recording no longer than one clip of the model is classified whole (centre padded), as in training.
2. A longer one is searched for *sounds*: 20 ms frames whose level stands out from the recording's own
   background (:func:`sound_segments`); silence between words is never classified.
3. Each sound gets a window of one clip centred on it; a sound longer than a clip gets windows every half
   clip across it (:func:`detection_windows`).
4. Neighbouring windows of one sound that agree on the class are one detection; a sound whose windows
   disagree ("yes" and "stop" run together) becomes several (:func:`group_detections`). Each detection has
   its times, class and probabilities, so "yes ... stop" in one file reads as two detections, not one label.
5. The recording's single answer is the detection of its loudest sound (its main sound); a recording with no
   sound at all is classified whole, like a short one, and has no detections.

Everything here is NumPy on one mono waveform; :mod:`lib.serving.infer` runs the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["Detection", "sound_segments", "detection_windows", "group_detections", "sound_windows", "main_sound_window",
           "level_dbfs", "is_silent",
           "FRAME_SEC",
           "SILENCE_DBFS", "SILENT_PEAK", "SILENT_RMS_DBFS"]

FRAME_SEC = 0.02        # level frames: 20 ms
SILENCE_DBFS = -60.0    # a recording whose loudest frame is below this has no sound at all
MIN_CONTRAST_DB = 10.0  # loudest frame less than this above the background: one steady sound (rain, music)
MAX_GAP_SEC = 0.3       # quieter stretches shorter than this inside a sound (the stop in "st-op") do not split it
MIN_SOUND_SEC = 0.06    # shorter blips (a click) are not sounds
LEVEL_CHUNK_FRAMES = 4096  # frames measured at a time (bounded memory for a recording of any length)


@dataclass
class Detection:
    """One sound of a recording and what the model heard in it.

    Attributes:
        start_sec: Where the sound starts, seconds from the recording's start.
        end_sec: Where it ends.
        probabilities: ``(n_classes,)`` float32, the mean of its windows' probabilities.
        class_names: Names of the probabilities' classes.
        level_db: The sound's loudest frame, dB relative to full scale.
    """

    start_sec: float
    end_sec: float
    probabilities: np.ndarray
    class_names: list[str]
    level_db: float

    @property
    def label(self) -> str:
        """The most probable class."""
        return self.class_names[int(np.argmax(self.probabilities))]

    @property
    def probability(self) -> float:
        """Its probability."""
        return float(np.max(self.probabilities))


def _frame_levels_db(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(time,)`` -> ``(n_frames,)`` RMS level of each 20 ms frame in dBFS (the last partial frame included).

    Frames are measured :data:`LEVEL_CHUNK_FRAMES` at a time in float64, so a recording of hours costs a few MB
    beyond itself (each frame's level is the same as measured all at once)."""
    frame = max(1, round(FRAME_SEC * sample_rate))
    n_frames = int(np.ceil(len(waveform) / frame))
    power = np.empty(n_frames, dtype=np.float64)
    for first in range(0, n_frames, LEVEL_CHUNK_FRAMES):
        last = min(first + LEVEL_CHUNK_FRAMES, n_frames)
        padded = np.zeros((last - first) * frame, dtype=np.float64)
        part = waveform[first * frame:last * frame]
        padded[:len(part)] = part
        power[first:last] = (padded.reshape(last - first, frame) ** 2).mean(axis=1)
    return 10 * np.log10(np.maximum(power, 1e-12))


def sound_segments(waveform: np.ndarray, sample_rate: int) -> list[tuple[float, float, float]]:
    """Where a recording has sound: stretches of frames clearly above its own background level.

    The background is the 10th percentile of the 20 ms frame levels; a frame is sound when it is above
    ``background + 0.3 * (loudest - background)`` (and within 35 dB of the loudest frame). Sound frames less
    than ``MAX_GAP_SEC`` apart form one segment; segments shorter than ``MIN_SOUND_SEC`` are dropped.
    A recording whose loudest frame is below ``SILENCE_DBFS`` has none; one whose level hardly varies
    (less than ``MIN_CONTRAST_DB`` between background and loudest frame) is one sound from start to end.

    Args:
        waveform: ``(time,)`` mono samples in [-1, 1].
        sample_rate: Hz.

    Returns:
        ``[(start_sec, end_sec, level_db), ...]`` in time order; ``level_db`` is the segment's loudest frame.
    """
    waveform = np.asarray(waveform).ravel()  # converted to float64 chunk by chunk (_frame_levels_db)
    if waveform.size == 0:
        return []
    levels = _frame_levels_db(waveform, sample_rate)
    duration = len(waveform) / sample_rate
    loudest, background = float(levels.max()), float(np.percentile(levels, 10))
    if loudest < SILENCE_DBFS:
        return []
    if loudest - background < MIN_CONTRAST_DB:
        return [(0.0, duration, loudest)]
    threshold = max(background + 0.3 * (loudest - background), loudest - 35.0)
    active = np.flatnonzero(levels >= threshold)
    max_gap = max(1, round(MAX_GAP_SEC / FRAME_SEC))
    segments, first, last = [], int(active[0]), int(active[0])
    for frame in active[1:]:
        if frame - last > max_gap:
            segments.append((first, last))
            first = int(frame)
        last = int(frame)
    segments.append((first, last))
    out = []
    for first, last in segments:
        start, end = first * FRAME_SEC, min((last + 1) * FRAME_SEC, duration)
        if end - start >= MIN_SOUND_SEC:
            out.append((start, end, float(levels[first:last + 1].max())))
    return out


def detection_windows(segments: Sequence[tuple[float, ...]], duration_sec: float,
                      window_sec: float) -> list[tuple[int, float]]:
    """The windows of one clip each that the model classifies for the sounds ``segments``.

    A sound no longer than a window gets one window centred on it; a longer one gets windows every half
    window from its start, the last ending at its end. Windows are kept inside the recording.

    Args:
        segments: ``[(start_sec, end_sec, ...), ...]`` as from :func:`sound_segments`.
        duration_sec: The recording's length; at least ``window_sec``.
        window_sec: The model's clip length.

    Returns:
        ``[(segment_index, window_start_sec), ...]``, by segment then time.
    """
    latest = max(0.0, duration_sec - window_sec)
    windows = []
    for index, (start, end, *_) in enumerate(segments):
        if end - start <= window_sec:
            starts = [(start + end) / 2 - window_sec / 2]
        else:
            starts = list(np.arange(start, end - window_sec, window_sec / 2)) + [end - window_sec]
        windows.extend((index, float(min(max(s, 0.0), latest))) for s in starts)
    return windows


def group_detections(segments: Sequence[tuple[float, float, float]], windows: Sequence[tuple[int, float]],
                     window_probabilities: np.ndarray, class_names: Sequence[str],
                     window_sec: float) -> list[Detection]:
    """Detections from the classified windows of :func:`detection_windows`.

    Consecutive windows of one sound with the same most probable class are one detection (their mean
    probabilities); where the class changes inside a long sound, a new detection starts. A detection of part
    of a sound spans its windows, clipped to the sound.

    Args:
        segments: As from :func:`sound_segments`.
        windows: As from :func:`detection_windows`.
        window_probabilities: ``(len(windows), n_classes)``.
        class_names: Names of the classes.
        window_sec: The window length.

    Returns:
        The detections in time order.
    """
    names = [str(c) for c in class_names]
    probabilities = np.asarray(window_probabilities, dtype=np.float32)
    detections: list[Detection] = []
    run: list[int] = []

    def close() -> None:
        segment = segments[windows[run[0]][0]]
        whole = sum(1 for w in windows if w[0] == windows[run[0]][0]) == len(run)  # the sound in one piece
        start = segment[0] if whole else max(segment[0], windows[run[0]][1])
        end = segment[1] if whole else min(segment[1], windows[run[-1]][1] + window_sec)
        detections.append(Detection(float(start), float(end), probabilities[run].mean(axis=0), names,
                                    float(segment[2])))

    for i, (segment_index, _) in enumerate(windows):
        if run and (windows[run[-1]][0] != segment_index
                    or probabilities[run[-1]].argmax() != probabilities[i].argmax()):
            close()
            run = []
        run.append(i)
    if run:
        close()
    return detections


def sound_windows(waveform: np.ndarray, sample_rate: int, window_sec: float) -> list[tuple[int, int, float]]:
    """One window of a clip centred on each sound of a recording (:func:`sound_segments`), kept inside it: how
    one long take of a word said several times becomes one clip per time it was said.

    Args:
        waveform: ``(time,)`` mono samples in [-1, 1].
        sample_rate: Hz.
        window_sec: The clip length.

    Returns:
        ``[(start, end, level_db), ...]`` in samples, in time order (``level_db``: the sound's loudest frame);
        ``[(0, time, 0.0)]``, the whole recording, when it is no longer than a clip or has no sound.
    """
    waveform = np.asarray(waveform).ravel()
    length = round(window_sec * sample_rate)
    segments = sound_segments(waveform, sample_rate) if len(waveform) > length else []
    if not segments:
        return [(0, len(waveform), 0.0)]
    windows = []
    for start_sec, end_sec, level in segments:
        start = round(((start_sec + end_sec) / 2 - window_sec / 2) * sample_rate)
        start = min(max(start, 0), len(waveform) - length)
        windows.append((start, start + length, level))
    return windows


def main_sound_window(waveform: np.ndarray, sample_rate: int, window_sec: float) -> tuple[int, int]:
    """The window of one clip centred on a recording's loudest sound (:func:`sound_windows`), where
    :meth:`lib.serving.infer.Classifier.predict` looks for the answer; kept inside the recording.

    Returns:
        ``(start, end)`` in samples: the whole recording when it is no longer than a clip or has no sound.
    """
    start, end, _ = max(sound_windows(waveform, sample_rate, window_sec), key=lambda window: window[2])
    return start, end


#: A take whose loudest sample is below this (full scale 1.0) is silent (the Record page refuses it).
SILENT_PEAK = 1e-3
#: ... and so is one whose RMS level over the whole take is below this, dBFS.
SILENT_RMS_DBFS = -60.0


def level_dbfs(waveform: np.ndarray) -> float:
    """RMS level of samples of any shape (full scale 1.0) in dB below full scale; -inf for silence or no samples."""
    samples = np.asarray(waveform, dtype=np.float64)
    rms = float(np.sqrt(np.mean(samples ** 2))) if samples.size else 0.0
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def is_silent(waveform: np.ndarray) -> bool:
    """True when a take has no sound worth keeping: its peak is below :data:`SILENT_PEAK` or its RMS level is
    below :data:`SILENT_RMS_DBFS`.

    Args:
        waveform: samples of any shape (channels included), full scale 1.0.
    """
    samples = np.asarray(waveform, dtype=np.float64)
    if samples.size == 0:
        return True
    return float(np.abs(samples).max()) < SILENT_PEAK or level_dbfs(samples) < SILENT_RMS_DBFS

"""Inference with a saved run: the run's exact preprocessing and model, on clips of any rate, channels and length.

A :class:`Classifier` is built from a run folder (``config.json`` + ``model.pt``, see :mod:`lib.engine.runs`) and
repeats what training did to every clip (:func:`lib.dsp.audio.fit_clip`: mix to mono, resample to the run's
``FeatureConfig.sample_rate``, centre pad or trim to its clip length), featurise with a :class:`~lib.dsp.features.FeatureExtractor` of that config,
and run the model in eval mode.

A recording longer than one clip is answered by the rule of :mod:`lib.serving.detect`: its sounds are found, each is
classified in a window of one clip centred on it, and every sound is a :class:`~lib.serving.detect.Detection` with its
times; the recording's probabilities are those of its loudest sound. For a timeline the recording is also cut
into overlapping windows of the clip length (hop: half a clip by default), the last one aligned to its end.

Example:
    >>> classifier = Classifier.from_run("models/20261121-071500-kws_resnet-3fa2")
    >>> prediction = classifier.predict(waveform, sample_rate=44100)  # (channels, time)
    >>> prediction.top(3)
    [('yes', 0.93), ('no', 0.04), ('up', 0.01)]
"""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from lib.dsp.audio import AudioSource, fit_clip, load_audio
from lib.serving.detect import Detection, detection_windows, group_detections, sound_segments
from lib.device import resolve_device
from lib.dsp.features import FeatureConfig, FeatureExtractor, extract
from lib.models import Ensemble, build_model, model_features
from lib.engine.runs import RunError, load_run

__all__ = ["Classifier", "Prediction", "penultimate", "WINDOW_BATCH", "MAX_MODEL_VALUES"]

WINDOW_BATCH = 64  # windows of a long recording classified at a time (bounded memory whatever its length: ~80 MB)
FINITE_CHUNK = 1 << 22  # samples checked for NaN and infinity at a time
LATENCY_RUNS = 30  # timed one-clip calls behind a run's saved latency (metrics.json "latency")
MAX_MODEL_VALUES = 50_000_000  # weights and buffers a run's config.json may ask for beyond its architecture's own
# (those with 2 classes: < 1 M for our models, 134 M for VGG-16): 200 MB of float32


@dataclass
class Prediction:
    """The result of classifying one recording.

    Attributes:
        probabilities: ``(n_classes,)`` float32, the recording's answer: the whole recording's probabilities
            when it fits in one clip (or has no sound), else those of its loudest detection.
        class_names: The run's class names, in the order of the probabilities.
        window_starts: ``(n_windows,)`` float64, each window's start in seconds from the recording's start
            (a recording no longer than one clip has one window starting at 0).
        window_probabilities: ``(n_windows, n_classes)`` float32, each window's probabilities.
        latency_ms: Wall time of the prediction (preprocessing, features and model), milliseconds.
        duration_sec: The recording's duration, seconds.
        window_seconds: Length of each window (the run's clip length), seconds.
        detections: The sounds heard, in time order, each with its times and probabilities
            (:mod:`lib.serving.detect`); empty when the recording has no sound.
    """

    probabilities: np.ndarray
    class_names: list[str]
    window_starts: np.ndarray
    window_probabilities: np.ndarray
    latency_ms: float
    duration_sec: float
    window_seconds: float | None = None
    detections: list[Detection] = field(default_factory=list)

    @property
    def top_class(self) -> str:
        """The most probable class's name (the first one on a tie)."""
        return self.top(1)[0][0]

    @property
    def top_probability(self) -> float:
        """The most probable class's probability."""
        return self.top(1)[0][1]

    @property
    def n_windows(self) -> int:
        """Number of windows classified."""
        return len(self.window_starts)

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable classes, most probable first.

        Args:
            k: How many (clamped to the number of classes).

        Returns:
            ``[(class_name, probability), ...]``, at most ``k`` pairs.
        """
        order = np.argsort(-self.probabilities, kind="stable")[:max(0, int(k))]
        return [(self.class_names[i], float(self.probabilities[i])) for i in order]

    def window_table(self) -> dict[str, np.ndarray | list[str]]:
        """Each timeline window's times and top class, as table columns.

        Returns:
            ``{"start_sec", "end_sec", "top_class", "confidence"}``, each ``n_windows`` long: start and end in
            seconds rounded to ms (the end clipped to the recording), the top class and its probability
            rounded to 4 decimals.
        """
        window = self.duration_sec if self.window_seconds is None else self.window_seconds
        return {"start_sec": np.round(self.window_starts, 3),
                "end_sec": np.round(np.minimum(self.window_starts + window, self.duration_sec), 3),
                "top_class": [self.class_names[j] for j in self.window_probabilities.argmax(axis=1)],
                "confidence": self.window_probabilities.max(axis=1).round(4)}


def _output_layers(model: nn.Module) -> list[nn.Module]:
    """The layer that turns each network's learned representation into class scores: the last layer with
    weights (registered last) of the model, or of each member of an ensemble."""
    networks = list(model.members) if isinstance(model, Ensemble) else [model]
    layers = []
    for network in networks:
        with_weights = [m for m in network.modules() if not list(m.children()) and any(True for _ in m.parameters())]
        if not with_weights:
            raise ValueError(f"{type(network).__name__} has no layer with weights")
        layers.append(with_weights[-1])
    return layers


def penultimate(model: nn.Module, features: Tensor, batch_size: int = 512, first_member_only: bool = False) -> Tensor:
    """What a trained model has learned to see in each clip: the input of its output layer.

    The output layer (a ``Linear``, or a 1x1 ``Conv2d`` after pooling) only draws straight lines through this
    representation, so its classes lie in separate clusters where the input features are intermixed: the
    map worth showing. For an ensemble, the members' representations side by side.

    Args:
        model: A network of :mod:`lib.models` (in eval mode), ``(batch, 1, bins, frames) -> (batch, classes)``.
        features: ``(n, 1, bins, frames)`` on the model's device.
        batch_size: Clips per forward pass.
        first_member_only: For an ensemble, only its first member's (a fifth of the compute for five members:
            what one of its networks learned).

    Returns:
        Tensor: ``(n, dim)`` float32 on the CPU (``dim`` e.g. 64 for tutorial_cnn, 5 x 32 for kws_resnet_x5).
    """
    if first_member_only and isinstance(model, Ensemble):
        model = model.members[0]
    captured: list[Tensor] = []
    hooks = [layer.register_forward_pre_hook(lambda _, inputs: captured.append(inputs[0].flatten(1).float()))
             for layer in _output_layers(model)]
    chunks = []
    try:
        with torch.inference_mode():
            for i in range(0, len(features), batch_size):
                captured.clear()
                model(features[i:i + batch_size])
                chunks.append(torch.cat(captured, dim=1).cpu())
    finally:
        for hook in hooks:
            hook.remove()
    return torch.cat(chunks) if chunks else torch.empty(0, 0)


def _as_device(device: str | torch.device) -> torch.device:
    """``"auto"``, ``"cpu"``, ``"cuda"``... (checked by :func:`resolve_device`) or a ``torch.device``."""
    return resolve_device(device) if isinstance(device, str) else torch.device(device)


def _checked_waveform(waveform: Tensor | np.ndarray, sample_rate: int) -> Tensor:
    """``waveform`` as a float tensor, after the checks of :meth:`Classifier.predict`.

    Args:
        waveform: ``(time,)`` or ``(channels, time)`` samples (a tensor or a NumPy array).
        sample_rate: Its sample rate in Hz.

    Returns:
        Tensor: The same shape, floating point (its dtype kept if it was one already).

    Raises:
        ValueError: If the waveform is empty, has non-finite samples or more than two dimensions, or the
            sample rate is not a positive integer.
    """
    if isinstance(waveform, np.ndarray):
        waveform = np.ascontiguousarray(waveform)  # torch cannot wrap negative strides
    waveform = torch.as_tensor(waveform)
    if waveform.ndim not in (1, 2):
        raise ValueError(f"waveform must be (time,) or (channels, time), got shape {tuple(waveform.shape)}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Integral) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    if waveform.numel() == 0:
        raise ValueError(f"the waveform is empty (shape {tuple(waveform.shape)}): nothing to classify")
    if not waveform.is_floating_point():
        waveform = waveform.float()
    with torch.inference_mode():
        # checked a few million samples at a time: isfinite of a whole long upload costs 1.5 times its size
        if not all(bool(torch.isfinite(part).all()) for part in waveform.reshape(-1).split(FINITE_CHUNK)):
            raise ValueError("the waveform has non-finite samples (NaN or infinity): nothing to classify")
    return waveform


class Classifier:
    """A trained model with its preprocessing, ready to classify recordings.

    Args:
        model: The trained network, taking ``(batch, 1, n_bins, n_frames)`` features and returning
            ``(batch, n_classes)`` logits. It is moved to ``device`` and put in eval mode (not copied).
        feature_config: The preprocessing the model was trained with.
        class_names: The names of the model's outputs, in order.
        run_id: The run's name, when built from a run.
        device: ``"cpu"``, ``"cuda"``, ``"mps"``, ``"auto"`` or a ``torch.device``.

    Attributes:
        model (nn.Module): The network, in eval mode, on ``device``.
        feature_config (FeatureConfig): The run's preprocessing.
        class_names (list[str]): Output names.
        run_id (str | None): The run's name.
        device (torch.device): Where features and the model are computed.
        extractor (FeatureExtractor): The feature extractor, built once, on ``device``.

    Raises:
        ValueError: If ``class_names`` is empty or the device is unknown or unavailable.
    """

    def __init__(self, model: nn.Module, feature_config: FeatureConfig, class_names: Sequence[str],
                 run_id: str | None = None, device: str | torch.device = "cpu") -> None:
        if not class_names:
            raise ValueError("a Classifier needs at least one class name")
        self.device = _as_device(device)
        self.feature_config = feature_config
        self.class_names = [str(name) for name in class_names]
        self.run_id = run_id
        self.model = model.to(self.device).eval()
        self.extractor = FeatureExtractor(feature_config).to(self.device).eval()

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_run(cls, path: str | Path, device: str | torch.device = "cpu") -> Classifier:
        """Loads a saved run folder.

        Args:
            path: The run folder (holding ``config.json``, ``model.pt`` and ``metrics.json``).
            device: Where to run, as in the constructor.

        Returns:
            The classifier, with ``run_id`` the folder's name.

        Raises:
            RunError: If the folder or a file is missing or malformed, the feature config is invalid, the
                model is unknown, or the weights do not fit the model.
            ValueError: If the device is unknown or unavailable.
        """
        run = load_run(path)
        record, name = run.record, run.run_id
        shape = (len(record.class_names), record.feature_config.n_bins, record.feature_config.n_frames)
        try:
            options = record.model_kwargs  # run_embedding's run
            own = model_features(record.model, FeatureConfig(), **options)  # the architecture, 2 classes: allowed
            with torch.device("meta"):  # sized first, without allocating: a tampered width must not cost gigabytes
                n_values, n_own = (sum(t.numel() for m in [build_model(record.model, *size, weights=False, **options)]
                                       for t in (*m.parameters(), *m.buffers()))
                                   for size in (shape, (2, own.n_bins, own.n_frames)))
            if n_values > MAX_MODEL_VALUES + n_own:
                raise ValueError(f"{n_values:,} weights, more than the {MAX_MODEL_VALUES:,} a run may have beyond "
                                 f"its architecture's {n_own:,} (check class_names and feature_config)")
            model = build_model(record.model, *shape, weights=False, **options)
        except (TypeError, ValueError, RuntimeError) as error:
            raise RunError(f"config.json of run '{name}' names a model that cannot be built ({record.model!r}): "
                           f"{error} ({run.path}). Delete the run or retrain.", run_id=name,
                           file="config.json") from error
        try:
            model.load_state_dict(run.state_dict)
        except (RuntimeError, KeyError, TypeError) as error:
            raise RunError(f"model.pt of run '{name}' does not fit model {record.model!r} with "
                           f"{len(record.class_names)} classes: {str(error).splitlines()[0]} ({run.path}). "
                           "Delete the run or retrain.", run_id=name, file="model.pt") from error
        return cls(model, record.feature_config, record.class_names, run_id=name, device=device)

    # -- helpers -----------------------------------------------------------------------------------
    def latency(self, runs: int = LATENCY_RUNS, threads: int | None = 1) -> dict[str, float]:
        """Time to classify one clip (features and model, :meth:`clip_probabilities`), as deployed: one clip at a
        time after a warm-up, on ``threads`` torch threads of the calling thread (None: as it is).

        Args:
            runs: timed calls (after ``max(3, runs // 10)`` untimed ones).
            threads: torch intra-op threads while timing (restored after); 1 is a small device's budget.

        Returns:
            ``{"p50_ms": ..., "p95_ms": ..., "device": ..., "threads": ..., "runs": ...}`` (the engine times
            each saved run this way on the CPU: ``metrics.json``'s ``"latency"``).
        """
        clip = torch.zeros(1, 1, self.feature_config.n_samples, device=self.device)
        before = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            times = []
            with torch.inference_mode():
                for _ in range(max(3, runs // 10) + runs):
                    started = time.perf_counter()
                    self.clip_probabilities(clip).cpu()  # .cpu() waits for the device
                    times.append(time.perf_counter() - started)
        finally:
            torch.set_num_threads(before)
        timed = np.asarray(times[-runs:]) * 1000.0
        p50, p95 = (round(float(np.percentile(timed, q)), 4) for q in (50, 95))
        return {"p50_ms": p50, "p95_ms": p95,
                "device": str(self.device), "threads": before if threads is None else threads, "runs": runs}

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def __repr__(self) -> str:
        return (f"Classifier(run_id={self.run_id!r}, model={type(self.model).__name__}, "
                f"classes={self.class_names}, device={str(self.device)!r})")

    def clip_probabilities(self, clips: Tensor) -> Tensor:
        """The model on clips of one clip length: features, logits, softmax (what :mod:`lib.serving.export` exports).

        Args:
            clips (Tensor): ``(batch, channels, n_samples)`` float, at ``feature_config.sample_rate``, on the device.

        Returns:
            Tensor: ``(batch, n_classes)`` float32 probabilities.
        """
        return self.model(self.extractor(clips)).float().softmax(dim=-1)

    def window_starts(self, n_samples: int, hop_seconds: float | None = None) -> np.ndarray:
        """Start sample of each window over a recording of ``n_samples`` samples at the feature sample rate.

        Args:
            n_samples: Recording length at ``feature_config.sample_rate``.
            hop_seconds: Seconds between window starts; ``None`` means half a clip.

        Returns:
            np.ndarray: ``(n_windows,)`` int64; ``[0]`` when the recording fits in one clip, otherwise starts
            every hop plus a last window ending exactly at the recording's end.

        Raises:
            ValueError: If ``hop_seconds`` is not a positive finite number.
        """
        if hop_seconds is None:
            hop_seconds = self.feature_config.clip_seconds / 2
        if isinstance(hop_seconds, bool) or not isinstance(hop_seconds, numbers.Real) \
                or not math.isfinite(hop_seconds) or hop_seconds <= 0:
            raise ValueError(f"hop_seconds must be a positive number of seconds, got {hop_seconds!r}")
        length = self.feature_config.n_samples
        if n_samples <= length:
            return np.zeros(1, dtype=np.int64)
        hop = max(1, round(hop_seconds * self.feature_config.sample_rate))
        last = n_samples - length
        starts = np.arange(0, last + 1, hop, dtype=np.int64)
        if starts[-1] != last:
            starts = np.append(starts, last)
        return starts

    # -- prediction --------------------------------------------------------------------------------
    def predict(self, waveform: Tensor | np.ndarray, sample_rate: int,
                hop_seconds: float | None = None) -> Prediction:
        """Classifies one recording of any sample rate, channel count and length.

        The recording is mixed to mono and resampled to the run's sample rate. If it lasts one clip or less
        it is centre padded with silence to one clip and classified whole. A longer one is answered by the
        rule of :mod:`lib.serving.detect`: each sound in it is classified in a window of one clip centred on it
        (silence never is), and the answer is its loudest sound's. For the timeline, all windows of one clip
        every ``hop_seconds`` (the last aligned to the end) are classified too, in the same batch.

        Args:
            waveform: ``(time,)`` or ``(channels, time)`` float samples (a tensor or a NumPy array).
            sample_rate: Its sample rate in Hz.
            hop_seconds: Seconds between the timeline's windows; ``None`` means half a clip.

        Returns:
            Prediction: The answer ``(n_classes,)``, the detections, each timeline window's start and
            probabilities ``(n_windows, n_classes)``, the latency and the duration.

        Raises:
            ValueError: If the waveform is empty, has non-finite samples or more than two dimensions,
                the sample rate is not positive, or ``hop_seconds`` is invalid.
        """
        started = time.perf_counter()
        waveform = _checked_waveform(waveform, sample_rate)
        rate, window_sec = self.feature_config.sample_rate, self.feature_config.clip_seconds
        with torch.inference_mode():
            mono = fit_clip(waveform.to(self.device, torch.float32), int(sample_rate), rate)[0]  # (time,) at rate
            starts = self.window_starts(mono.shape[-1], hop_seconds)
            segments = sound_segments(mono.cpu().numpy(), rate)
            windows = detection_windows(segments, mono.shape[-1] / rate, window_sec) if len(starts) > 1 else []
            probabilities_all = self._window_probabilities(mono, starts, windows)
        window_probabilities = probabilities_all[:len(starts)]
        if len(starts) == 1:  # one clip: classified whole, as in training; its sound (if any) is its detection
            detections = [Detection(segments[0][0], segments[-1][1], window_probabilities[0], list(self.class_names),
                                    max(level for *_, level in segments))] if segments else []
        else:
            detections = group_detections(segments, windows, probabilities_all[len(starts):], self.class_names,
                                          window_sec)
        return Prediction(
            probabilities=self._answer(mono, detections, window_probabilities),
            class_names=list(self.class_names),
            window_starts=starts / rate,
            window_probabilities=window_probabilities,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            duration_sec=waveform.shape[-1] / sample_rate,
            window_seconds=window_sec,
            detections=detections,
        )

    def _window_probabilities(self, mono: Tensor, starts: np.ndarray, windows: list) -> np.ndarray:
        """Probabilities of the timeline's windows, then of the detection windows (call in inference mode).

        Args:
            mono: ``(time,)`` the recording at the run's sample rate, on the classifier's device.
            starts: ``(n_windows,)`` the timeline windows' first samples (:meth:`window_starts`).
            windows: The detection windows (:func:`lib.serving.detect.detection_windows`); ``(sound, start_sec)`` each.

        Returns:
            np.ndarray: ``(n_windows + n_detection_windows, n_classes)``; with one timeline window, the whole
            recording centre padded to one clip, ``(1, n_classes)``.
        """
        rate, length = self.feature_config.sample_rate, self.feature_config.n_samples
        if len(starts) == 1:
            return self.clip_probabilities(fit_clip(mono, rate, rate, length)[None]).cpu().numpy()  # (1, n_classes)
        every = np.concatenate([starts, [round(s * rate) for _, s in windows]]).astype(np.int64)
        # Windows are cut and classified WINDOW_BATCH at a time: a long upload costs one batch of memory.
        offsets = torch.arange(length, device=self.device)
        parts = []
        for i in range(0, len(every), WINDOW_BATCH):
            index = torch.as_tensor(every[i:i + WINDOW_BATCH], device=self.device)[:, None] + offsets
            parts.append(self.clip_probabilities(mono[index][:, None]).cpu().numpy())  # (batch, n_classes)
        return np.concatenate(parts)

    def _answer(self, mono: Tensor, detections: list[Detection], window_probabilities: np.ndarray) -> np.ndarray:
        """The recording's answer ``(n_classes,)``: its loudest sound's probabilities; with no sound, the one
        clip's, or (a longer recording) those of its middle as one clip (a ``"_silence_"`` class can answer).

        Args:
            mono: ``(time,)`` the recording at the run's sample rate, on the classifier's device.
            detections: Its sounds, as :meth:`predict` found them.
            window_probabilities: ``(n_windows, n_classes)`` of the timeline's windows.
        """
        if detections:
            return max(detections, key=lambda d: d.level_db).probabilities
        if len(window_probabilities) == 1:
            return window_probabilities[0]
        rate, length = self.feature_config.sample_rate, self.feature_config.n_samples
        middle = fit_clip(mono, rate, rate, length)[None]                                   # (1, 1, length)
        with torch.inference_mode():
            return self.clip_probabilities(middle).cpu().numpy()[0]

    def predict_batch(self, waveforms: Tensor, batch_size: int = 256) -> Tensor:
        """Probabilities of many clips already at the run's sample rate (for evaluating a dataset).

        Args:
            waveforms: ``(batch, channels, time)`` (or ``(batch, time)``) at ``feature_config.sample_rate``,
                normally ``(batch, 1, n_samples)`` (others are fitted by :func:`lib.dsp.audio.fit_clip`).
            batch_size: Clips per forward pass.

        Returns:
            Tensor: ``(batch, n_classes)`` float32 probabilities, on the CPU.

        Raises:
            ValueError: If ``waveforms`` is not 2-D or 3-D.
        """
        waveforms = torch.as_tensor(waveforms)
        if waveforms.ndim == 2:
            waveforms = waveforms[:, None]
        if waveforms.ndim != 3:
            raise ValueError(f"waveforms must be (batch, channels, time), got shape {tuple(waveforms.shape)}")
        rate, length = self.feature_config.sample_rate, self.feature_config.n_samples
        with torch.inference_mode():
            chunks = []
            for i in range(0, len(waveforms), batch_size):
                clips = fit_clip(waveforms[i:i + batch_size].to(self.device, torch.float32), rate, rate, length)
                chunks.append(self.clip_probabilities(clips).cpu())
            out = torch.cat(chunks) if chunks else torch.empty(0, self.n_classes)
        return out.clone()  # a normal tensor (not an inference tensor): callers may modify it in place

    def embed_batch(self, waveforms: Tensor, batch_size: int = 256, first_member_only: bool = False) -> Tensor:
        """The learned representation (:func:`penultimate`) of many clips at the run's sample rate.

        Args:
            waveforms: ``(batch, channels, time)`` (or ``(batch, time)``) at ``feature_config.sample_rate``;
                fitted to one mono clip by :func:`lib.dsp.audio.fit_clip`.
            batch_size: Clips per forward pass.
            first_member_only: As in :func:`penultimate`.

        Returns:
            Tensor: ``(batch, dim)`` float32, on the CPU.
        """
        waveforms = torch.as_tensor(waveforms)
        if waveforms.ndim == 2:
            waveforms = waveforms[:, None]
        rate, length = self.feature_config.sample_rate, self.feature_config.n_samples
        chunks = []
        with torch.inference_mode():
            for i in range(0, len(waveforms), batch_size):
                clips = fit_clip(waveforms[i:i + batch_size].to(self.device, torch.float32), rate, rate, length)
                chunks.append(penultimate(self.model, self.extractor(clips), batch_size, first_member_only))
        return torch.cat(chunks).clone() if chunks else torch.empty(0, 0)

    def embed_features(self, features: Tensor | np.ndarray, first_member_only: bool = False) -> Tensor:
        """The learned representation (:func:`penultimate`) of clips whose features are already made.

        Args:
            features: ``(n, 1, bins, frames)`` made with ``feature_config`` (a tensor or a NumPy array).
            first_member_only: As in :func:`penultimate`.

        Returns:
            Tensor: ``(n, dim)`` float32, on the CPU.
        """
        features = torch.as_tensor(features).to(self.device)
        return penultimate(self.model, features, first_member_only=first_member_only)

    def embed_clips(self, dataset, indices: Sequence[int]) -> np.ndarray:
        """The learned representation of a dataset's clips ``indices``, each fitted to one clip at the run's
        sample rate (:meth:`lib.data.dataset.ClipDataset.to_tensor`): ``(len(indices), dim)`` float32."""
        config = self.feature_config
        return self.embed_batch(dataset.to_tensor(config.sample_rate, config.n_samples, np.array(indices))).numpy()

    def view_features(self, waveform: Tensor, sample_rate: int, max_seconds: float | None = None) -> Tensor:
        """The features of a recording as the model reads them, to show (computed on the CPU).

        A recording of one clip or less is centre padded to one clip, as :meth:`predict` classifies it; a
        longer one is shown whole (the model reads it a clip at a time), or only its first ``max_seconds``.

        Args:
            waveform: ``(time,)`` or ``(channels, time)`` float samples.
            sample_rate: Its sample rate in Hz.
            max_seconds: Longest stretch shown of a long recording; ``None``: all of it.

        Returns:
            Tensor: ``(1, bins, frames)`` float32 (one channel).
        """
        config = self.feature_config
        with torch.inference_mode():
            mono = fit_clip(waveform, sample_rate, config.sample_rate)                        # (1, time)
            if mono.shape[-1] <= config.n_samples:
                mono = fit_clip(waveform, sample_rate, config.sample_rate, config.n_samples)  # (1, n_samples)
            elif max_seconds is not None:
                mono = mono[..., :int(max_seconds * config.sample_rate)]
            return extract(mono, config)[0]

    def predict_file(self, source: AudioSource, hop_seconds: float | None = None) -> Prediction:
        """Decodes and classifies an audio file.

        Args:
            source: A path, the encoded bytes, or a binary file-like object (see :func:`lib.dsp.audio.load_audio`).
            hop_seconds: As in :meth:`predict`.

        Returns:
            Prediction: As :meth:`predict` (the latency excludes decoding).

        Raises:
            AudioDecodeError: If the file cannot be decoded.
            ValueError: As :meth:`predict`.
        """
        waveform, sample_rate = load_audio(source)
        return self.predict(waveform, sample_rate, hop_seconds=hop_seconds)

"""Log-spectrogram features (mel, MFCC, linear) and their plotting axes (SpecAugment is in :mod:`lib.augment`).

Everything is pure PyTorch/torchaudio and runs on any device. A :class:`FeatureConfig` is frozen and
hashable, so it can key caches and be stored next to a trained model as JSON.

Choices fixed for every config:
    * STFT with ``center=True``, ``pad_mode="reflect"`` and a periodic Hann window of ``win_length``
      (zero-padded to ``n_fft`` and centred in it, as ``torch.stft`` does).
    * Mel filters on the HTK mel scale (``2595 * log10(1 + f / 700)``) with ``norm=None`` (triangles of
      peak 1), so :func:`frequency_axis` can give each filter's centre exactly and a tone's energy is not
      rescaled by the filter's width.
    * dB conversion with ``top_db`` clamping computed per example (each clip is clamped to its own
      maximum minus ``top_db``), so a quiet clip's features do not depend on louder clips in its batch.

Example:
    >>> config = FeatureConfig(kind="mel", n_mels=40)
    >>> features = extract(torch.randn(8, 2, 16000), config)  # (batch, channels, time)
    >>> features.shape == (8, *config.feature_shape)  # (batch, 1, n_mels, frames)
    True
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torchaudio
from torch import Tensor, nn

from lib.config import ConfigDict

__all__ = [
    "FeatureConfig", "FeatureExtractor", "extract", "standardize",
    "frequency_axis", "frequency_axis_label", "time_axis", "frame_grid",
]

KINDS = ("mel", "mfcc", "linear", "speech_embedding", "waveform")
# The speech embedding's own frontend (lib.models.speech_embedding, Google's model): these fields are fixed for that kind.
SPEECH_EMBEDDING_FIELDS = dict(sample_rate=16000, n_fft=512, win_length=400, hop_length=160, n_mels=32, f_min=60.0,
                               f_max=3800.0, power=2.0, top_db=80.0, normalization="none", lifter=0)
# The waveform itself (lib.models.ssl_backbones: wav2vec 2.0, HuBERT, WavLM read 16 kHz samples): one row, a sample a frame.
WAVEFORM_FIELDS = dict(hop_length=1, n_mels=1, power=1.0, top_db=None, normalization="none", lifter=0)
WAVEFORM_SAMPLE_RATE = 16000
_INT16_DB = 20 * math.log10(32768)  # the embedding hears int16 sample values: dB of (32768 x)^2 = dB(x^2) + 90.3
SPEECH_EMBEDDING_PAD_SECONDS = 0.3  # silence added each side, so a word at the clip's edge is inside a whole window
NORMALIZATIONS = ("none", "per_clip", "per_bin")
_EPS = 1e-5  # added to the standard deviation in normalisation (a silent clip has std 0)
# Bounds that keep one clip's work small whatever a config.json says (a run file is user input).
MAX_SAMPLE_RATE = 192_000
MAX_CLIP_SECONDS = 60.0
MAX_N_FFT = 16_384
MAX_FEATURE_VALUES = 8_000_000  # 32 MB of float32 per clip


def standardize(x: Tensor, dim: int | tuple[int, ...]) -> Tensor:
    """``(x - mean) / (std + 1e-5)`` over ``dim`` (population std; a silent clip stays 0), same shape as ``x``.

    Two passes (the mean, then the mean square of ``x - mean``): on a CPU about 8x faster than ``torch.std``'s
    one-pass kernel, which took a fifth of a batch's augmentation (1.9 of 10 ms), and within float rounding of it.
    """
    centred = x - x.mean(dim=dim, keepdim=True)
    return centred / ((centred * centred).mean(dim=dim, keepdim=True).sqrt() + _EPS)


def _hz_to_mel(hz: float) -> float:
    """HTK mel scale."""
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: Tensor) -> Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@dataclass(frozen=True)
class FeatureConfig(ConfigDict):
    """How a clip becomes a feature image. Frozen, hashable, validated on construction.

    Attributes:
        sample_rate: Sample rate of the waveforms, Hz.
        clip_seconds: Clip length the model sees, seconds (sets ``n_samples`` and ``n_frames``).
        kind: ``"mel"`` (log-mel), ``"mfcc"`` (DCT of the log-mel), ``"linear"`` (log-power STFT) or
            ``"speech_embedding"``: the frames Google's speech embedding was trained on (32 Slaney mel bands of
            60-3800 Hz from a 512-point STFT without centring, dB with an 80 dB floor, then ``x / 10 + 2``), on the
            clip with 0.3 s of silence each side; it sets the other fields to :data:`SPEECH_EMBEDDING_FIELDS`; or
            ``"waveform"``: the mono clip itself as ``(1, 1, n_samples)`` (the self-supervised speech backbones of
            :mod:`lib.models.ssl_backbones`), 16 kHz only; it sets the other fields to :data:`WAVEFORM_FIELDS` (power 1: the
            engine augments the waveform, never a spectrogram).
        n_fft: FFT size; ``n_fft // 2 + 1`` linear frequency bins.
        win_length: Hann window length in samples; ``None`` means ``n_fft``.
        hop_length: Samples between frames.
        n_mels: Mel filters (mel and mfcc).
        f_min: Lowest mel filter edge, Hz.
        f_max: Highest mel filter edge, Hz; ``None`` means ``sample_rate / 2``.
        power: Exponent of the magnitude (2: power, dB = 10 log10; otherwise dB = 20 log10).
        top_db: Dynamic range kept below each clip's maximum, dB; ``None`` keeps everything.
        n_mfcc: MFCC coefficients kept (mfcc only), at most ``n_mels``.
        normalization: ``"none"``; ``"per_clip"`` (subtract the mean and divide by the standard deviation
            over all bins and frames of each clip); ``"per_bin"`` (CMVN: each bin over time, per clip).
        lifter: mel and linear only: keep the first ``lifter`` cepstral coefficients of each frame's dB
            spectrum and turn them back into a spectrum (DCT, cut, inverse DCT): a smooth spectral envelope
            without the pitch harmonics, same shape as before. 0 (default) keeps the spectrum as it is.

    Raises:
        ValueError: On any invalid field; the message names the field and the bad value.
    """

    sample_rate: int = 16000
    clip_seconds: float = 1.0
    kind: str = "mel"
    n_fft: int = 512
    win_length: int | None = 400
    hop_length: int = 160
    n_mels: int = 40
    f_min: float = 20.0
    f_max: float | None = None
    power: float = 2.0
    top_db: float | None = 80.0
    n_mfcc: int = 40
    normalization: str = "per_clip"
    lifter: int = 0

    def __post_init__(self) -> None:
        if self.kind == "speech_embedding":
            for name, value in SPEECH_EMBEDDING_FIELDS.items():
                object.__setattr__(self, name, value)
        if self.kind == "waveform":
            for name, value in WAVEFORM_FIELDS.items():
                object.__setattr__(self, name, value)
            if self.sample_rate != WAVEFORM_SAMPLE_RATE:
                raise ValueError(f"FeatureConfig.sample_rate must be {WAVEFORM_SAMPLE_RATE} for kind 'waveform' (the "
                                 f"speech backbones were trained on 16 kHz audio; clips are resampled to it), got "
                                 f"{self.sample_rate!r}")

        def fail(name: str, requirement: str) -> None:
            raise ValueError(f"FeatureConfig.{name} must be {requirement}, got {getattr(self, name)!r}")

        for name in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels", "n_mfcc"):
            value = getattr(self, name)
            if value is None and name == "win_length":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                fail(name, "a positive int" + (" or None" if name == "win_length" else ""))
        for name in ("clip_seconds", "f_min", "f_max", "power", "top_db"):
            value = getattr(self, name)
            if value is None and name in ("f_max", "top_db"):
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                fail(name, "a finite number" + (" or None" if name in ("f_max", "top_db") else ""))
        for name, choices in (("kind", KINDS), ("normalization", NORMALIZATIONS)):
            if getattr(self, name) not in choices:
                fail(name, f"one of {choices}")
        if self.clip_seconds <= 0:
            fail("clip_seconds", "> 0")
        if self.sample_rate > MAX_SAMPLE_RATE:
            fail("sample_rate", f"at most {MAX_SAMPLE_RATE} Hz")
        if self.clip_seconds > MAX_CLIP_SECONDS:
            fail("clip_seconds", f"at most {MAX_CLIP_SECONDS} s (longer recordings are classified window by window)")
        if self.n_fft > MAX_N_FFT:
            fail("n_fft", f"at most {MAX_N_FFT}")
        if self.n_samples <= self.n_fft // 2:
            fail("clip_seconds", f"long enough for reflect padding ({self.n_fft // 2 + 1} samples or more)")
        if self.win_length is not None and self.win_length > self.n_fft:
            fail("win_length", f"<= n_fft ({self.n_fft})")
        if self.power <= 0:
            fail("power", "> 0")
        if self.top_db is not None and self.top_db <= 0:
            fail("top_db", "> 0 or None")
        if self.f_min < 0:
            fail("f_min", ">= 0")
        if self.f_max is not None and self.f_max > self.sample_rate / 2:
            fail("f_max", f"<= sample_rate / 2 ({self.sample_rate / 2})")
        if self.f_min >= self.effective_f_max:
            fail("f_min", f"< f_max ({self.effective_f_max})")
        if self.kind in ("mel", "mfcc"):  # (the speech embedding's fixed filters are all non-empty)
            n_freqs = self.n_fft // 2 + 1
            if self.n_mels > n_freqs:
                fail("n_mels", f"<= n_fft // 2 + 1 ({n_freqs})")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torchaudio warns about empty filters; we raise instead
                filters = torchaudio.functional.melscale_fbanks(
                    n_freqs, float(self.f_min), float(self.effective_f_max), self.n_mels, self.sample_rate,
                    norm=None, mel_scale="htk")
            if bool((filters.amax(dim=0) == 0).any()):
                fail("n_mels", f"small enough that no mel filter is empty for n_fft={self.n_fft} between "
                               f"f_min={self.f_min} and f_max={self.effective_f_max} Hz")
        if isinstance(self.lifter, bool) or not isinstance(self.lifter, int) or self.lifter < 0:
            fail("lifter", "an int >= 0")
        if self.lifter and self.kind == "mfcc":
            fail("lifter", "0 for MFCC features (they are cepstral coefficients already)")
        if self.lifter > self.n_bins:
            fail("lifter", f"<= the number of bins ({self.n_bins})")
        if self.kind == "mfcc" and self.n_mfcc > self.n_mels:
            fail("n_mfcc", f"<= n_mels ({self.n_mels})")
        if self.power_bins * self.n_frames > MAX_FEATURE_VALUES:
            fail("hop_length", f"large enough that one clip has at most {MAX_FEATURE_VALUES:,} feature values "
                               f"({self.power_bins} bins x {self.n_frames} frames is too many)")

    # -- serialisation ---------------------------------------------------------------------------


    def to_json(self) -> str:
        """The config as a JSON object string."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, s: str) -> FeatureConfig:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(s))


    # -- derived sizes ---------------------------------------------------------------------------
    @property
    def n_samples(self) -> int:
        """Samples in one clip: ``round(sample_rate * clip_seconds)``."""
        return round(self.sample_rate * self.clip_seconds)

    @property
    def effective_win_length(self) -> int:
        """``win_length``, or ``n_fft`` when it is None."""
        return self.n_fft if self.win_length is None else self.win_length

    @property
    def effective_f_max(self) -> float:
        """``f_max``, or ``sample_rate / 2`` when it is None."""
        return self.sample_rate / 2 if self.f_max is None else float(self.f_max)

    @property
    def power_bins(self) -> int:
        """Rows of the linear (pre-dB) spectrogram: ``n_mels`` (mel, mfcc, speech_embedding) or ``n_fft // 2 + 1``
        (linear)."""
        return self.n_fft // 2 + 1 if self.kind == "linear" else self.n_mels

    @property
    def n_bins(self) -> int:
        """Feature rows: ``n_mels`` (mel), ``n_mfcc`` (mfcc), ``n_fft // 2 + 1`` (linear) or 1 (waveform)."""
        return {"mel": self.n_mels, "mfcc": self.n_mfcc, "linear": self.n_fft // 2 + 1,
                "speech_embedding": self.n_mels, "waveform": 1}[self.kind]

    @property
    def center(self) -> bool:
        """Whether frames are centred on their hop (reflect padding); the speech embedding's frontend is not."""
        return self.kind not in ("speech_embedding", "waveform")

    @property
    def pad_samples(self) -> int:
        """Silence added to each side of a clip before the STFT (the speech embedding's 0.3 s; else 0)."""
        return round(SPEECH_EMBEDDING_PAD_SECONDS * self.sample_rate) if self.kind == "speech_embedding" else 0

    def frames_for(self, n_samples: int) -> int:
        """STFT frames for ``n_samples`` samples: ``n_samples // hop_length + 1`` for an even ``n_fft`` with
        ``center=True``; ``(n_samples + 2 * pad_samples - n_fft) // hop_length + 1`` without; ``n_samples`` for the
        waveform."""
        if self.kind == "waveform":
            return n_samples
        padded = n_samples + 2 * self.pad_samples + (2 * (self.n_fft // 2) if self.center else 0)
        return (padded - self.n_fft) // self.hop_length + 1

    @property
    def n_frames(self) -> int:
        """Feature columns for one clip of ``n_samples``."""
        return self.frames_for(self.n_samples)

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        """Shape of one example's features: ``(1, n_bins, n_frames)``."""
        return (1, self.n_bins, self.n_frames)


class FeatureExtractor(nn.Module):
    """Waveforms to normalised log-spectrogram images, as configured by a :class:`FeatureConfig`.

    Has no trainable parameters; its buffers (window, filters, DCT) follow ``.to(device)``.
    MFCC is torchaudio's ``MFCC`` (DCT-II, ortho) on the log-mel, with its dB step replaced by this
    config's ``top_db``/``power`` (torchaudio fixes ``("power", top_db=80)``).

    Attributes:
        config (FeatureConfig): The configuration it was built with.
    """

    def __init__(self, config: FeatureConfig) -> None:
        super().__init__()
        self.config = c = config
        stft = dict(n_fft=c.n_fft, win_length=c.effective_win_length, hop_length=c.hop_length, power=c.power,
                    center=c.center, pad_mode="reflect", window_fn=torch.hann_window)
        slaney = c.kind == "speech_embedding"  # Google's filters: Slaney's mel scale, area-normalised triangles
        mel = dict(stft, sample_rate=c.sample_rate, n_mels=c.n_mels, f_min=float(c.f_min), f_max=c.effective_f_max,
                   norm="slaney" if slaney else None, mel_scale="slaney" if slaney else "htk")
        self.to_db = torchaudio.transforms.AmplitudeToDB("power" if c.power == 2 else "magnitude", c.top_db)
        if c.kind == "waveform":
            self.transform = nn.Identity()
        elif c.kind in ("mel", "speech_embedding"):
            self.transform = torchaudio.transforms.MelSpectrogram(**mel)
        elif c.kind == "linear":
            self.transform = torchaudio.transforms.Spectrogram(**stft)
        else:
            mel.pop("sample_rate")
            self.transform = torchaudio.transforms.MFCC(c.sample_rate, c.n_mfcc, norm="ortho", melkwargs=mel)
            self.transform.amplitude_to_DB = self.to_db
        smoothing = None
        if c.lifter:
            dct = torchaudio.functional.create_dct(c.n_bins, c.n_bins, norm="ortho")   # (bins, coefficients)
            smoothing = dct[:, :c.lifter] @ dct[:, :c.lifter].T                        # (bins, bins), symmetric
        self.register_buffer("smoothing", smoothing)

    @property
    def filterbank(self) -> Tensor | None:
        """The mel filters that sum power bins into rows, ``(n_fft // 2 + 1, n_mels)``; None for linear features."""
        if self.config.kind in ("mel", "speech_embedding"):
            return self.transform.mel_scale.fb
        if self.config.kind == "mfcc":
            return self.transform.MelSpectrogram.mel_scale.fb
        return None

    def forward(self, waveform: Tensor) -> Tensor:
        """Featurises a batch: :meth:`finish` of :meth:`power`.

        Args:
            waveform (Tensor): ``(batch, channels, time)``, also ``(channels, time)`` or ``(time,)``;
                float samples in [-1, 1], on the module's device. Channels are averaged to mono.

        Returns:
            Tensor: ``(batch, 1, n_bins, frames)`` float32, ``frames = config.frames_for(time)``.
        """
        return self.finish(self.power(waveform))

    def power(self, waveform: Tensor) -> Tensor:
        """The linear stage: the mel (mel, mfcc) or linear spectrogram before dB, ``|STFT|**power`` summed by the
        mel filters. With ``power == 2`` it is linear in the signal's power, so gain, added noise, reverberation
        and equalisation can be applied to it directly (:mod:`lib.augment.power`).

        Args:
            waveform (Tensor): As :meth:`forward`.

        Returns:
            Tensor: ``(batch, 1, power_bins, frames)`` float32, ``power_bins = config.power_bins``.
        """
        if waveform.dim() == 1:
            waveform = waveform[None, None]
        elif waveform.dim() == 2:
            waveform = waveform[None]
        elif waveform.dim() != 3:
            raise ValueError(f"waveform must be (batch, channels, time), (channels, time) or (time,), "
                             f"got shape {tuple(waveform.shape)}")
        x = waveform.float().mean(dim=1, keepdim=True)   # (batch, 1, time)
        if self.config.pad_samples:
            x = nn.functional.pad(x, (self.config.pad_samples, self.config.pad_samples))  # (batch, 1, time + 2 pad)
        if self.config.kind == "waveform":
            return x[:, :, None, :]                      # (batch, 1, 1, time)
        if self.config.kind == "mfcc":
            return self.transform.MelSpectrogram(x)      # (batch, 1, n_mels, frames)
        return self.transform(x)                         # (batch, 1, bins, frames)

    def finish(self, power: Tensor) -> Tensor:
        """The rest: dB with ``top_db`` per example (4-D input), the DCT (mfcc), the lifter, the normalisation.

        ``power (batch, 1, power_bins, frames)`` from :meth:`power` -> ``(batch, 1, n_bins, frames)``.
        """
        if self.config.kind == "waveform":
            return power
        x = self.to_db(power)
        if self.config.kind == "mfcc":                   # torchaudio's MFCC.forward after its mel stage
            x = torch.matmul(x.transpose(-1, -2), self.transform.dct_mat).transpose(-1, -2)
        if self.smoothing is not None:
            x = torch.einsum("ij,bcjt->bcit", self.smoothing, x)
        if self.config.normalization == "per_clip":
            x = standardize(x, dim=(-2, -1))
        elif self.config.normalization == "per_bin":
            x = standardize(x, dim=-1)
        if self.config.kind == "speech_embedding":
            x = (x + _INT16_DB) / 10.0 + 2.0  # openWakeWord's scaling of int16-valued samples, which it was trained on
        return x


@lru_cache(maxsize=32)
def _cached_extractor(config: FeatureConfig, device: str) -> FeatureExtractor:
    return FeatureExtractor(config).to(device).eval()


def extract(waveform: Tensor, config: FeatureConfig) -> Tensor:
    """Functional :class:`FeatureExtractor` (one cached extractor per config and device).

    Args:
        waveform (Tensor): ``(batch, channels, time)``, ``(channels, time)`` or ``(time,)``.
        config (FeatureConfig): Feature settings.

    Returns:
        Tensor: ``(batch, 1, n_bins, frames)`` float32 on ``waveform``'s device.
    """
    return _cached_extractor(config, str(waveform.device))(waveform)


# -- plotting axes -------------------------------------------------------------------------------
def frequency_axis(config: FeatureConfig) -> np.ndarray:
    """The value of each feature row, for a plot's y axis.

    Returns:
        np.ndarray: ``(n_bins,)``: bin frequencies in Hz (linear, 0 to sample_rate/2), mel filter centres
        in Hz (mel: the HTK mel scale between f_min and f_max; speech_embedding: Slaney's), coefficient indices
        0..n_mfcc-1 (mfcc) or ``[0]`` (waveform).
    """
    if config.kind == "speech_embedding":
        mels = torchaudio.functional.melscale_fbanks(config.n_fft // 2 + 1, config.f_min, config.effective_f_max,
                                                     config.n_mels, config.sample_rate, "slaney", "slaney")
        hz = torch.linspace(0, config.sample_rate / 2, config.n_fft // 2 + 1, dtype=torch.float64)
        return hz[mels.argmax(dim=0)].numpy()  # the bin where each filter peaks
    if config.kind == "waveform":
        return np.zeros(1)
    if config.kind == "linear":
        return torch.linspace(0, config.sample_rate / 2, config.n_bins, dtype=torch.float64).numpy()
    if config.kind == "mfcc":
        return np.arange(config.n_mfcc)
    mels = torch.linspace(_hz_to_mel(float(config.f_min)), _hz_to_mel(config.effective_f_max),
                          config.n_mels + 2, dtype=torch.float64)
    return _mel_to_hz(mels[1:-1]).numpy()


def frequency_axis_label(config: FeatureConfig) -> str:
    """The y-axis title matching :func:`frequency_axis`."""
    return {"linear": "Frequency (Hz)", "mel": "Mel bin centre (Hz)", "mfcc": "MFCC coefficient",
            "speech_embedding": "Mel bin centre (Hz)", "waveform": "Waveform"}[config.kind]


def time_axis(config: FeatureConfig, n_frames: int) -> np.ndarray:
    """Frame centres in seconds, ``(n_frames,)``: ``(frame_index * hop_length + offset) / sample_rate``, where the
    offset is 0 for centred frames and ``n_fft / 2 - pad_samples`` for the speech embedding's."""
    return (np.arange(n_frames) * config.hop_length + _first_centre(config)) / config.sample_rate


def _first_centre(config: FeatureConfig) -> float:
    """Where frame 0's window is centred, in samples of the unpadded clip."""
    return 0.0 if config.center else config.n_fft / 2 - config.pad_samples


def frame_grid(config: FeatureConfig, n_samples: int | None = None) -> list[tuple[float, float]]:
    """Window span of each frame over the waveform, for drawing the frame grid.

    Frame ``i``'s window covers its centre (:func:`time_axis`) ``- win_length / 2`` to ``+ win_length``, clipped to the signal ``[0, n_samples / sample_rate]``.

    Args:
        config (FeatureConfig): Feature settings.
        n_samples (int | None): Waveform length; ``None`` means ``config.n_samples``.

    Returns:
        list[tuple[float, float]]: ``(start_sec, end_sec)`` for each of ``config.frames_for(n_samples)`` frames.
    """
    n_samples = config.n_samples if n_samples is None else n_samples
    sr, half, end = config.sample_rate, config.effective_win_length / 2, n_samples / config.sample_rate
    centres = np.arange(config.frames_for(n_samples)) * config.hop_length + _first_centre(config)
    return [(min(end, max(0.0, (c - half) / sr)), max(0.0, min(end, (c + half) / sr))) for c in centres.tolist()]

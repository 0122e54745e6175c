"""Training-time augmentation, batched on the training device.

Waveform domain (``(batch, channels, time)``): time shift, gain, background noise at a random SNR.
Waveform domain also offers room reverberation (synthetic impulse responses, FFT convolution) and a random
equaliser (a smooth gain curve over log frequency: the colour of another voice, microphone or synthesizer).
Feature domain (``(batch, 1, bins, frames)``): time shift as a frame roll, frequency warping (vocal-tract
length perturbation) and time stretching as one per-example affine resampling of the spectrogram (together
they approximate speed perturbation), SpecAugment masks, and mixup of examples and their labels.

Randomness follows one pattern: ``draw_*`` functions take an explicit ``torch.Generator`` and return plain
tensors of parameters; ``apply`` functions are deterministic. A page can keep a draw and show the same
augmentation on every rerun; a test can pin it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor

from lib.audio import NOISE_KINDS, add_noise, apply_gain, draw_shifts, draw_uniform, make_noise, time_shift
from lib.config import ConfigDict
from lib.features import FeatureConfig, apply_spec_masks, draw_spec_masks, frequency_axis

__all__ = ["AugmentConfig", "WaveformDraw", "draw_waveform_augment", "apply_waveform_augment",
           "augment_waveforms", "draw_impulse_responses", "apply_reverb", "shift_frames", "augment_features",
           "draw_warp", "apply_warp", "warp_axis", "draw_feature_warp", "warp_features", "draw_mixup_weights",
           "mixup", "AUGMENT_DOMAINS", "EQ_KNOTS_HZ", "draw_eq", "eq_curve", "eq_bin_gains", "apply_eq"]

AUGMENT_DOMAINS = ("spectrogram", "waveform")

# Knots of the random equaliser's gain curve, one an octave apart; the curve is linear in log frequency
# between them and flat beyond the outer ones.
EQ_KNOTS_HZ: tuple[float, ...] = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)


@dataclass(frozen=True)
class AugmentConfig(ConfigDict):
    """Augmentation settings, read top to bottom; all off gives the clean pipeline.

    Attributes:
        time_shift_sec: maximum shift either way, in seconds (0: off).
        noise_probability: fraction of examples that get background noise (0: off).
        snr_db_min: lowest SNR of that noise, in dB.
        snr_db_max: highest SNR, in dB.
        noise_kinds: noise colours drawn from (white, pink, brown).
        gain_db: maximum gain either way, in dB (0: off).
        freq_mask_param: SpecAugment: widest frequency mask, in bins.
        n_freq_masks: SpecAugment: frequency masks per example.
        time_mask_param: SpecAugment: widest time mask, in frames.
        n_time_masks: SpecAugment: time masks per example.
        freq_warp: maximum frequency scaling either way, as a fraction (0.15: formants moved by up to 15%).
        time_stretch: maximum time scaling either way, as a fraction (0.2: 20% faster or slower).
        reverb_probability: fraction of examples played in a synthetic room (0: off).
        rt60_sec_max: longest reverberation time (RT60) of those rooms, in seconds.
        mixup_alpha: mixup's Beta(alpha, alpha) parameter (0: off; 0.2 is typical).
        eq_probability: fraction of examples passed through a random equaliser (0: off).
        eq_db: its largest boost or cut at each octave knot (:data:`EQ_KNOTS_HZ`), in dB.
        domain: where time shift, gain, noise, reverb and EQ are applied when any of the last four is on:
            ``"spectrogram"`` (default: on each clip's power spectrogram, cached once, at the model's speed; see
            :mod:`lib.power_augment`) or ``"waveform"`` (on the waveform, every batch featurised again; exact,
            slower). Features with ``power != 2`` always use the waveform.
    """

    time_shift_sec: float = 0.1
    noise_probability: float = 0.0
    snr_db_min: float = 5.0
    snr_db_max: float = 30.0
    noise_kinds: tuple[str, ...] = NOISE_KINDS
    gain_db: float = 0.0
    freq_mask_param: int = 8
    n_freq_masks: int = 2
    time_mask_param: int = 10
    n_time_masks: int = 2
    freq_warp: float = 0.0
    time_stretch: float = 0.0
    reverb_probability: float = 0.0
    rt60_sec_max: float = 0.6
    mixup_alpha: float = 0.0
    eq_probability: float = 0.0
    eq_db: float = 10.0
    domain: str = "spectrogram"

    def __post_init__(self) -> None:
        object.__setattr__(self, "noise_kinds", tuple(self.noise_kinds))
        if self.domain not in AUGMENT_DOMAINS:
            raise ValueError(f"domain must be one of {AUGMENT_DOMAINS}, got {self.domain!r}")
        for name in ("time_shift_sec", "gain_db", "freq_mask_param", "n_freq_masks", "time_mask_param", "n_time_masks",
                     "mixup_alpha"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("noise_probability", "reverb_probability", "eq_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("freq_warp", "time_stretch"):
            if not 0 <= getattr(self, name) < 0.5:
                raise ValueError(f"{name} must be in [0, 0.5), got {getattr(self, name)}")
        if not 0 <= self.eq_db <= 30:
            raise ValueError(f"eq_db must be in [0, 30] dB, got {self.eq_db}")
        if not 0.05 <= self.rt60_sec_max <= 2.0:
            raise ValueError(f"rt60_sec_max must be in [0.05, 2] s, got {self.rt60_sec_max}")
        if self.snr_db_min > self.snr_db_max:
            raise ValueError(f"snr_db_min ({self.snr_db_min}) is above snr_db_max ({self.snr_db_max})")
        unknown = set(self.noise_kinds) - set(NOISE_KINDS)
        if unknown or not self.noise_kinds:
            raise ValueError(f"noise_kinds must be some of {NOISE_KINDS}, got {self.noise_kinds}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AugmentConfig":
        """As :meth:`ConfigDict.from_dict`; settings saved before ``domain`` existed with a waveform step on
        (noise, gain, reverb, EQ) were applied to waveforms, and say so."""
        config = super().from_dict(d)
        return config.replace(domain="waveform") if "domain" not in d and config.waveform_domain else config

    @property
    def waveform_domain(self) -> bool:
        """True when some step needs the waveform (noise, gain, reverb, EQ); time shift alone is done on frames."""
        return (self.noise_probability > 0 or self.gain_db > 0 or self.reverb_probability > 0
                or (self.eq_probability > 0 and self.eq_db > 0))

    def summary(self, detailed: bool = True) -> str:
        """One line naming every step that is on, e.g. ``"shift ±0.1 s, 2 freq mask(s) ≤8 bins"`` (or ``"none"``)."""
        a, parts = self, []
        if a.time_shift_sec:
            parts.append(f"shift ±{a.time_shift_sec:g} s")
        if a.noise_probability:
            parts.append(f"noise {a.noise_probability:.0%}"
                         + (f" at {a.snr_db_min:g}–{a.snr_db_max:g} dB SNR" if detailed else ""))
        if a.gain_db:
            parts.append(f"gain ±{a.gain_db:g} dB")
        if a.n_freq_masks and a.freq_mask_param:
            parts.append(f"{a.n_freq_masks} freq mask(s)" + (f" ≤{a.freq_mask_param} bins" if detailed else ""))
        if a.n_time_masks and a.time_mask_param:
            parts.append(f"{a.n_time_masks} time mask(s)" + (f" ≤{a.time_mask_param} frames" if detailed else ""))
        if a.freq_warp:
            parts.append(f"frequency warp ±{a.freq_warp:.0%}")
        if a.time_stretch:
            parts.append(f"time stretch ±{a.time_stretch:.0%}")
        if a.reverb_probability:
            parts.append(f"reverb {a.reverb_probability:.0%}" + (f" (RT60 ≤{a.rt60_sec_max:g} s)" if detailed else ""))
        if a.eq_probability and a.eq_db:
            parts.append(f"EQ {a.eq_probability:.0%}" + (f" (±{a.eq_db:g} dB per octave knot)" if detailed else ""))
        if a.mixup_alpha:
            parts.append(f"mixup α={a.mixup_alpha:g}")
        return ", ".join(parts) or "none"





@dataclass
class WaveformDraw:
    """One draw of waveform augmentation parameters for a batch (all ``(batch,)`` but ``noise``).

    Attributes:
        shift: time shift in samples (int64).
        gain_db: gain in dB.
        snr_db: SNR in dB; ``inf`` where the example gets no noise.
        noise: ``(batch, 1, time)`` unit-RMS noise.
        impulse_response: ``(batch, 1, ir_time)`` room impulse responses; None when reverb is off.
        eq_db: ``(batch, len(EQ_KNOTS_HZ))`` equaliser gains at the knots, in dB (zeros: flat); None when EQ is off.
        eq_gain: ``(batch, time // 2 + 1)`` the same equaliser as a linear gain per FFT bin; None when EQ is off.
    """

    shift: Tensor
    gain_db: Tensor
    snr_db: Tensor
    noise: Tensor
    impulse_response: Tensor | None = None
    eq_db: Tensor | None = None
    eq_gain: Tensor | None = None


def draw_waveform_augment(batch_size: int, n_samples: int, sample_rate: int, config: AugmentConfig,
                          generator: torch.Generator | None = None) -> WaveformDraw:
    """Draw every random parameter of :func:`apply_waveform_augment` for a batch (on the generator's device)."""
    shift = draw_shifts(batch_size, round(config.time_shift_sec * sample_rate), generator)
    gain = draw_uniform(batch_size, -config.gain_db, config.gain_db, generator)
    snr = draw_uniform(batch_size, config.snr_db_min, config.snr_db_max, generator)
    noisy = torch.rand(batch_size, generator=generator, device=snr.device) < config.noise_probability
    snr = torch.where(noisy, snr, torch.full_like(snr, float("inf")))
    kind_index = torch.randint(len(config.noise_kinds), (batch_size,), generator=generator, device=snr.device)
    noise = torch.zeros(batch_size, 1, n_samples, device=snr.device)
    if bool(noisy.any()):
        for k, kind in enumerate(config.noise_kinds):  # a loop over noise colours, not over examples
            rows = noisy & (kind_index == k)
            if bool(rows.any()):
                noise[rows] = make_noise((int(rows.sum()), 1, n_samples), kind, generator).to(noise.device)
    impulse_response = None
    if config.reverb_probability > 0:
        impulse_response = draw_impulse_responses(batch_size, sample_rate, config.rt60_sec_max,
                                                  config.reverb_probability, generator)
    eq_db = eq_gain = None
    if config.eq_probability > 0 and config.eq_db > 0:
        eq_db = draw_eq(batch_size, config.eq_db, config.eq_probability, generator)
        eq_gain = eq_bin_gains(eq_db, n_samples, sample_rate)
    return WaveformDraw(shift=shift, gain_db=gain, snr_db=snr, noise=noise, impulse_response=impulse_response,
                        eq_db=eq_db, eq_gain=eq_gain)


def draw_eq(batch_size: int, max_db: float, probability: float = 1.0,
            generator: torch.Generator | None = None) -> Tensor:
    """Random equaliser gains: uniform in [-max_db, max_db] at each knot of :data:`EQ_KNOTS_HZ`.

    Examples not drawn (``1 - probability``) get a flat curve (all zeros). Returns ``(batch, n_knots)`` in dB.
    """
    device = _device_of(generator)
    gains = (torch.rand(batch_size, len(EQ_KNOTS_HZ), generator=generator, device=device) * 2 - 1) * max_db
    on = torch.rand(batch_size, generator=generator, device=device) < probability
    return torch.where(on[:, None], gains, torch.zeros_like(gains))


def eq_curve(eq_db: Tensor, frequencies: Tensor) -> Tensor:
    """The equaliser's gain in dB at ``frequencies`` (Hz, ``(n_freqs,)``): knots joined linearly in log frequency.

    ``eq_db (batch, n_knots)`` -> ``(batch, n_freqs)``; flat (the outer knot's gain) beyond the outer knots.
    """
    knots = torch.log2(torch.tensor(EQ_KNOTS_HZ, device=eq_db.device, dtype=eq_db.dtype))
    return _interp(torch.log2(frequencies.to(eq_db).clamp_min(1e-6)), knots, eq_db)


def eq_bin_gains(eq_db: Tensor, n_samples: int, sample_rate: int) -> Tensor:
    """The equaliser as a linear gain per bin of an ``n_samples``-point real FFT: ``(batch, n_samples // 2 + 1)``."""
    frequencies = torch.fft.rfftfreq(n_samples, 1 / sample_rate, device=eq_db.device)
    return 10 ** (eq_curve(eq_db, frequencies) / 20)


def apply_eq(waveform: Tensor, eq_gain: Tensor) -> Tensor:
    """Filter each example with its equaliser (zero phase, in the frequency domain).

    ``waveform (batch, channels, time)``, ``eq_gain (batch, time // 2 + 1)`` from :func:`eq_bin_gains` ->
    ``(batch, channels, time)``. The gain is smooth over frequency, so the FFT's circular convolution is short
    and barely wraps around.
    """
    n = waveform.shape[-1]
    return torch.fft.irfft(torch.fft.rfft(waveform, dim=-1) * eq_gain.to(waveform.device)[:, None, :], n=n, dim=-1)


def draw_impulse_responses(batch_size: int, sample_rate: int, rt60_sec_max: float = 0.6, probability: float = 1.0,
                           generator: torch.Generator | None = None) -> Tensor:
    """Synthetic room impulse responses: a direct path plus exponentially decaying noise.

    Each example's RT60 (time for the tail to fall by 60 dB) is uniform in [0.1 s, ``rt60_sec_max``] and its
    direct-to-reverberant ratio uniform in [0, 15] dB; examples not drawn (``1 - probability``) get a unit
    impulse (no reverb).

    Returns:
        ``(batch, 1, ir_time)`` with ``ir_time = rt60_sec_max * sample_rate``, the direct path at index 0.
    """
    n_taps = max(2, round(rt60_sec_max * sample_rate))
    device = _device_of(generator)
    rt60 = draw_uniform(batch_size, min(0.1, rt60_sec_max), rt60_sec_max, generator)
    drr_db = draw_uniform(batch_size, 0.0, 15.0, generator)
    on = torch.rand(batch_size, generator=generator, device=device) < probability
    t = torch.arange(n_taps, device=device) / sample_rate
    decay = torch.exp(-6.9078 * t[None, :] / rt60[:, None])  # 60 dB down at rt60: ln(1000) = 6.9078
    tail = torch.randn(batch_size, n_taps, generator=generator, device=device) * decay
    tail[:, 0] = 0
    tail = tail / tail.norm(dim=1, keepdim=True).clamp_min(1e-8) * 10 ** (-drr_db[:, None] / 20)
    impulse = torch.zeros(batch_size, n_taps, device=device)
    impulse[:, 0] = 1.0
    return torch.where(on[:, None], impulse + tail, impulse)[:, None, :]


def apply_reverb(waveform: Tensor, impulse_response: Tensor) -> Tensor:
    """Convolve each example with its impulse response (FFT), keeping the length and the peak level.

    ``waveform (batch, channels, time)``, ``impulse_response (batch, 1, ir_time)`` -> ``(batch, channels, time)``.
    """
    n = waveform.shape[-1] + impulse_response.shape[-1] - 1
    size = 1 << (n - 1).bit_length()
    spectrum = torch.fft.rfft(waveform, size) * torch.fft.rfft(impulse_response.to(waveform.device), size)
    wet = torch.fft.irfft(spectrum, size)[..., :waveform.shape[-1]]
    peak_in = waveform.abs().amax(dim=-1, keepdim=True)
    peak_out = wet.abs().amax(dim=-1, keepdim=True).clamp_min(1e-8)
    return wet * (peak_in / peak_out)


def _device_of(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def apply_waveform_augment(waveform: Tensor, draw: WaveformDraw) -> Tensor:
    """Apply a :class:`WaveformDraw`. ``waveform (batch, channels, time)`` -> same shape, on its device."""
    device = waveform.device
    out = waveform
    if draw.impulse_response is not None:
        out = apply_reverb(out, draw.impulse_response)
    if draw.eq_db is not None:
        out = apply_eq(out, draw.eq_gain)
    out = time_shift(out, draw.shift.to(device), mode="zero")
    out = apply_gain(out, draw.gain_db.to(device))
    noisy = torch.isfinite(draw.snr_db)
    if bool(noisy.any()):
        snr = torch.where(noisy, draw.snr_db, torch.zeros_like(draw.snr_db)).to(device)
        with_noise = add_noise(out, draw.noise.to(device), snr)
        out = torch.where(noisy.to(device)[:, None, None], with_noise, out)
    return out


def augment_waveforms(waveform: Tensor, sample_rate: int, config: AugmentConfig,
                      generator: torch.Generator | None = None) -> Tensor:
    """Draw and apply waveform augmentation. ``(batch, channels, time)`` -> same shape."""
    draw = draw_waveform_augment(waveform.shape[0], waveform.shape[-1], sample_rate, config, generator)
    return apply_waveform_augment(waveform, draw)


def shift_frames(features: Tensor, max_shift_sec: float, feature_config: FeatureConfig,
                 generator: torch.Generator | None = None) -> Tensor:
    """Time shift on cached features: roll each example by its own whole number of frames.

    ``features (batch, 1, bins, frames)`` -> same shape. Equivalent to a circular waveform shift rounded to the hop.
    """
    max_frames = round(max_shift_sec * feature_config.sample_rate / feature_config.hop_length)
    if max_frames == 0:
        return features
    shifts = draw_shifts(features.shape[0], max_frames, generator).to(features.device)
    return time_shift(features, shifts, mode="roll")


def augment_features(features: Tensor, config: AugmentConfig, generator: torch.Generator | None = None) -> Tensor:
    """SpecAugment frequency and time masks, drawn independently per example. ``(batch, 1, bins, frames)``."""
    if not (config.n_freq_masks and config.freq_mask_param) and not (config.n_time_masks and config.time_mask_param):
        return features
    batch, _, n_bins, n_frames = features.shape
    mask = draw_spec_masks(batch, n_bins, n_frames, min(config.freq_mask_param, n_bins), config.n_freq_masks,
                           min(config.time_mask_param, n_frames), config.n_time_masks, generator,
                           device=features.device)
    return apply_spec_masks(features, mask)


def draw_warp(batch_size: int, freq_warp: float, time_stretch: float,
              generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Per-example frequency and time scale factors, log-uniform in [1 - x, 1 + x]. Returns two ``(batch,)``."""
    def scales(amount: float) -> Tensor:
        low, high = torch.log(torch.tensor(1 - amount)).item(), torch.log(torch.tensor(1 + amount)).item()
        return torch.exp(draw_uniform(batch_size, low, high, generator))

    return scales(freq_warp), scales(time_stretch)


def apply_warp(features: Tensor, freq_scale: Tensor, time_scale: Tensor, bin_hz: Tensor | None = None) -> Tensor:
    """Stretch each example's spectrogram along frequency and time (one ``grid_sample`` for the batch).

    A frequency scale ``s`` moves what was at ``f`` Hz to ``s * f`` Hz, as a shorter (``s > 1``) or longer vocal
    tract would (vocal-tract length perturbation); ``bin_hz`` gives each row's centre frequency
    (:func:`lib.features.frequency_axis`), so on a mel axis the move is a scaling at low frequencies and nearly a
    shift at high ones, as in Hz. Without ``bin_hz`` the rows are taken as evenly spaced from 0 Hz and content
    moves from row ``r`` to row ``s * r``. A time scale ``s`` makes the utterance ``s`` times longer (anchored at
    the centre). Edges repeat the border values.

    ``features (batch, 1, bins, frames)``, scales ``(batch,)``, ``bin_hz (bins,)`` increasing ->
    ``(batch, 1, bins, frames)``.
    """
    batch, _, n_bins, n_frames = features.shape
    freq_scale, time_scale = freq_scale.to(features), time_scale.to(features)
    rows = torch.arange(n_bins, dtype=features.dtype, device=features.device)
    if bin_hz is None:
        source_row = (rows[None, :] + 0.5) / freq_scale[:, None] - 0.5           # even rows anchored at 0 Hz
    else:
        bin_hz = bin_hz.to(features)
        source_row = _interp(bin_hz[None, :] / freq_scale[:, None], bin_hz, rows)  # fractional rows, (batch, bins)
    columns = torch.arange(n_frames, dtype=features.dtype, device=features.device)
    centre = (n_frames - 1) / 2
    source_column = (columns[None, :] - centre) / time_scale[:, None] + centre     # (batch, frames)
    # grid_sample's coordinates (align_corners=False): -1 and 1 are the outer edges of the first and last cell.
    y = (2 * source_row + 1) / n_bins - 1                                            # (batch, bins)
    x = (2 * source_column + 1) / n_frames - 1                                       # (batch, frames)
    grid = torch.stack(torch.broadcast_tensors(x[:, None, :], y[:, :, None]), dim=-1)  # (batch, bins, frames, 2)
    return torch.nn.functional.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation, like ``numpy.interp``: flat beyond the outer points.

    ``xp (n,)`` increasing, ``fp (..., n)`` the values there, ``x`` any shape; returns ``fp``'s leading dimensions
    followed by ``x``'s (``fp (n,)``: the shape of ``x``).
    """
    right = torch.searchsorted(xp, x.contiguous()).clamp(1, xp.numel() - 1)
    weight = ((x - xp[right - 1]) / (xp[right] - xp[right - 1])).clamp(0, 1)
    left = fp[..., right - 1]
    return left + (fp[..., right] - left) * weight


def warp_axis(feature_config: FeatureConfig) -> Tensor | None:
    """``bin_hz`` for :func:`apply_warp`: each row's centre frequency in Hz (:func:`lib.features.frequency_axis`),
    or None for MFCCs, whose rows are no frequency axis. ``(bins,)`` float32."""
    if feature_config.kind == "mfcc":
        return None
    return torch.as_tensor(frequency_axis(feature_config), dtype=torch.float32)


def draw_feature_warp(batch_size: int, config: AugmentConfig, feature_config: FeatureConfig | None = None,
                      generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """:func:`draw_warp` for features made with ``feature_config``: MFCCs get a frequency scale of 1 (the time
    stretch only). Returns ``freq_scale`` and ``time_scale``, each ``(batch,)``."""
    freq_scale, time_scale = draw_warp(batch_size, config.freq_warp, config.time_stretch, generator)
    if feature_config is not None and warp_axis(feature_config) is None:
        freq_scale = torch.ones_like(freq_scale)
    return freq_scale, time_scale


def warp_features(features: Tensor, config: AugmentConfig, generator: torch.Generator | None = None,
                  feature_config: FeatureConfig | None = None) -> Tensor:
    """Draw and apply :func:`apply_warp` when ``freq_warp`` or ``time_stretch`` is on.

    With ``feature_config`` the frequency warp is linear in Hz over its rows (:func:`warp_axis`); MFCCs have no
    frequency axis, so they get the time stretch only.
    """
    if config.freq_warp == 0 and config.time_stretch == 0:
        return features
    freq_scale, time_scale = draw_feature_warp(features.shape[0], config, feature_config, generator)
    return apply_warp(features, freq_scale, time_scale,
                      None if feature_config is None else warp_axis(feature_config))


def draw_mixup_weights(batch_size: int, alpha: float, generator: torch.Generator | None = None) -> Tensor:
    """Mixup's weight of each example itself: ``max(u, 1 - u)`` with ``u ~ Beta(alpha, alpha)``. ``(batch,)``, CPU."""
    beta = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
    # torch's Beta takes no generator: seed a forked global RNG from ours, so the draw stays reproducible.
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        weight = beta.sample((batch_size,))
    return torch.maximum(weight, 1 - weight)  # the example itself dominates


def mixup(features: Tensor, targets: Tensor, alpha: float,
          generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Mix each example with another of the batch (Zhang et al. 2018), one Beta(alpha, alpha) weight per example.

    Args:
        features: ``(batch, 1, bins, frames)``.
        targets: ``(batch, n_classes)`` class probabilities (one-hot for hard labels).
        alpha: Beta parameter; 0 returns the inputs unchanged.

    Returns:
        Mixed ``features`` and ``targets``, same shapes.
    """
    if alpha <= 0:
        return features, targets
    batch = features.shape[0]
    weight = draw_mixup_weights(batch, alpha, generator).to(features.device)
    partner = torch.randperm(batch, generator=generator).to(features.device)
    mixed = weight[:, None, None, None] * features + (1 - weight[:, None, None, None]) * features[partner]
    return mixed, weight[:, None] * targets + (1 - weight[:, None]) * targets[partner]

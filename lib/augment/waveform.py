"""The waveform steps of augmentation, batched on the training device: time shift, gain, background noise at a
random SNR, room reverberation (synthetic impulse responses, FFT convolution) and a random equaliser (a smooth
gain curve over log frequency: the colour of another voice, microphone or synthesizer).

Waveforms are ``(batch, channels, time)``. Randomness follows one pattern: ``draw_*`` functions (and
:func:`make_noise`) take an explicit ``torch.Generator`` and return plain tensors of parameters; the functions
that apply them are deterministic. :func:`draw_waveform_augment` draws every step for a batch
(:class:`WaveformDraw`), :func:`apply_waveform_augment` applies it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from lib.augment.config import EQ_KNOTS_HZ, NOISE_KINDS, AugmentConfig

__all__ = ["draw_shifts", "time_shift", "draw_uniform", "apply_gain", "make_noise", "add_noise", "WaveformDraw",
           "draw_level_steps", "draw_waveform_augment", "apply_waveform_augment", "draw_impulse_responses", "apply_reverb", "draw_eq",
           "eq_curve", "eq_bin_gains", "apply_eq", "interp"]

_EPS = 1e-12
_SHIFT_MODES = ("roll", "zero")
# Power spectrum exponent: power ~ 1 / f**exponent.
_NOISE_EXPONENT = {"white": 0.0, "pink": 1.0, "brown": 2.0}


def _device_of(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


# --------------------------------------------------------------------------------------------- time shift


def draw_shifts(batch_size: int, max_shift: int, generator: torch.Generator | None = None) -> Tensor:
    """Draw integer time shifts uniformly in ``[-max_shift, max_shift]`` samples.

    Args:
        batch_size (int): How many shifts.
        max_shift (int): Largest absolute shift in samples (>= 0).
        generator (torch.Generator | None): Source of randomness.

    Returns:
        Tensor: int64 ``(batch_size,)``, on the generator's device (CPU without one).
    """
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    return torch.randint(-max_shift, max_shift + 1, (batch_size,), generator=generator,
                         device=_device_of(generator), dtype=torch.int64)


def time_shift(waveform: Tensor, shift: int | Tensor, mode: str = "roll") -> Tensor:
    """Shift along time: positive shifts move the content later (like ``torch.roll``).

    Shifts are whole samples (or frames, on a spectrogram's last axis).

    Args:
        waveform (Tensor): ``(batch, ..., time)`` with a ``(batch,)`` shift, or ``(..., time)`` with
            one shift.
        shift (int | Tensor): Samples; an int or 0-d tensor for the whole tensor, or an int tensor
            ``(batch,)`` with one shift per example.
        mode (str): ``"roll"`` (circular) or ``"zero"`` (what is shifted in is silence).

    Returns:
        Tensor: Same shape as ``waveform``.
    """
    if mode not in _SHIFT_MODES:
        raise ValueError(f"mode must be one of {_SHIFT_MODES}, got {mode!r}")
    shift = torch.as_tensor(shift)
    if shift.is_floating_point():
        raise TypeError("shift must be a whole number of samples")
    if shift.ndim > 1 or (shift.ndim == 1 and (waveform.ndim < 2 or shift.numel() != waveform.shape[0])):
        raise ValueError(f"shift of shape {tuple(shift.shape)} does not match waveform {tuple(waveform.shape)}")
    time = waveform.shape[-1]
    if time == 0:
        return waveform
    shift = shift.to(waveform.device, torch.int64).reshape(-1)
    rows = waveform.reshape(shift.numel(), -1, time)                                # (batch, rest, time)
    # Each example's output is one window of ``time`` consecutive values of its row laid out twice (roll) or
    # between two silences (zero): windows of a view picked by advanced indexing, which copies whole runs
    # (2-4x faster on a CPU than a gather with an index per value).
    if mode == "roll":
        extended, start = torch.cat([rows, rows], dim=-1), (-shift) % time           # (batch, rest, 2 time)
    else:
        silence = rows.new_zeros(rows.shape[:-1] + (time,))
        extended, start = torch.cat([silence, rows, silence], dim=-1), time - shift.clamp(-time, time)
    windows = extended.unfold(-1, time, 1)                                          # (batch, rest, n, time) view
    out = windows[torch.arange(len(shift), device=shift.device), :, start]          # (batch, rest, time)
    return out.reshape(waveform.shape)


# ------------------------------------------------------------------------------------- gain and noise


def _per_example(value: float | Tensor, waveform: Tensor) -> Tensor:
    """A scalar, or a ``(batch,)`` tensor reshaped to ``(batch, 1, ..., 1)`` to broadcast over ``waveform``."""
    value = torch.as_tensor(value, dtype=waveform.dtype, device=waveform.device)
    if value.ndim == 0:
        return value
    if value.ndim != 1 or waveform.ndim < 2 or value.numel() != waveform.shape[0]:
        raise ValueError(f"expected a scalar or ({waveform.shape[0]},) tensor, got shape {tuple(value.shape)}")
    return value.reshape(-1, *([1] * (waveform.ndim - 1)))


def draw_uniform(batch_size: int, low: float, high: float, generator: torch.Generator | None = None) -> Tensor:
    """Draw floats uniformly in ``[low, high)`` (e.g. SNRs or gains in dB).

    Args:
        batch_size (int): How many values.
        low (float): Lower bound.
        high (float): Upper bound.
        generator (torch.Generator | None): Source of randomness.

    Returns:
        Tensor: float32 ``(batch_size,)``, on the generator's device (CPU without one).
    """
    u = torch.rand(batch_size, generator=generator, device=_device_of(generator))
    return low + (high - low) * u


def apply_gain(waveform: Tensor, gain_db: float | Tensor) -> Tensor:
    """Multiply by ``10 ** (gain_db / 20)``.

    Args:
        waveform (Tensor): ``(batch, ..., time)`` with a ``(batch,)`` gain, or any shape with a scalar gain.
        gain_db (float | Tensor): Gain in dB; a scalar or a ``(batch,)`` tensor.

    Returns:
        Tensor: Same shape as ``waveform``.
    """
    return waveform * 10.0 ** (_per_example(gain_db, waveform) / 20.0)


def make_noise(shape: int | Sequence[int], kind: str = "white",
               generator: torch.Generator | None = None) -> Tensor:
    """Coloured Gaussian noise, shaped in the frequency domain.

    White noise has a flat power spectrum, pink noise power ~ 1/f and brown noise power ~ 1/f**2
    (the DC bin of coloured noise is zeroed). Each row (last dim) is normalised to unit RMS.

    Args:
        shape (int | Sequence[int]): ``(..., time)``.
        kind (str): ``"white"``, ``"pink"`` or ``"brown"``.
        generator (torch.Generator | None): Source of randomness; the noise is made on its device.

    Returns:
        Tensor: float32 of ``shape``.
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind must be one of {NOISE_KINDS}, got {kind!r}")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    noise = torch.randn(shape, generator=generator, device=_device_of(generator))
    time = shape[-1]
    if kind != "white" and time > 0:
        spectrum = torch.fft.rfft(noise, dim=-1)
        bins = torch.arange(spectrum.shape[-1], device=noise.device, dtype=noise.dtype)
        amplitude = bins.clamp_min(1.0) ** (-_NOISE_EXPONENT[kind] / 2.0)
        amplitude[0] = 0.0
        noise = torch.fft.irfft(spectrum * amplitude, n=time, dim=-1)
    rms = noise.pow(2).mean(dim=-1, keepdim=True).sqrt()
    return noise / rms.clamp_min(_EPS)


def _fit_length(noise: Tensor, time: int) -> Tensor:
    """Tile or crop ``noise`` ``(..., noise_time)`` to ``(..., time)``."""
    if noise.shape[-1] == time:
        return noise
    if noise.shape[-1] == 0:
        raise ValueError("the noise clip is empty")
    repeats = math.ceil(time / noise.shape[-1])
    return noise.repeat(*([1] * (noise.ndim - 1)), repeats)[..., :time]


def add_noise(waveform: Tensor, noise: Tensor, snr_db: float | Tensor) -> Tensor:
    """Add ``noise`` scaled to a signal-to-noise ratio.

    The noise is scaled so that ``10 * log10(P_signal / P_noise) == snr_db`` per example, powers being mean
    squares over one example: all non-batch dims of a ``(batch, channels, time)`` waveform (or of any
    waveform given a ``(batch,)`` ``snr_db``), the whole clip otherwise. A silent signal gets no noise.

    Args:
        waveform (Tensor): ``(batch, channels, time)``, ``(channels, time)`` or ``(time,)``.
        noise (Tensor): Same shape as ``waveform``, or a ``(time',)`` / ``(channels, time')`` clip that is
            tiled or cropped to ``time`` and broadcast over ``waveform``.
        snr_db (float | Tensor): SNR in dB; a scalar or a ``(batch,)`` tensor.

    Returns:
        Tensor: Same shape as ``waveform``.
    """
    noise = _fit_length(noise.to(waveform.device, waveform.dtype), waveform.shape[-1])
    try:
        noise = noise.broadcast_to(waveform.shape)
    except RuntimeError as error:
        raise ValueError(f"noise of shape {tuple(noise.shape)} does not broadcast to "
                         f"waveform {tuple(waveform.shape)}") from error
    snr = _per_example(snr_db, waveform)
    batched = waveform.ndim >= 3 or snr.ndim > 0
    dims = tuple(range(1 if batched else 0, waveform.ndim))                        # the dims one example spans
    signal_power = waveform.pow(2).mean(dim=dims, keepdim=True)
    noise_power = noise.pow(2).mean(dim=dims, keepdim=True).clamp_min(_EPS)
    scale = torch.sqrt(signal_power / (noise_power * 10.0 ** (snr / 10.0)))
    return waveform + scale * noise


# ------------------------------------------------------------------------------- one draw for a batch


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


def draw_level_steps(batch_size: int, max_shift: int, config: AugmentConfig,
                     generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The first draws of the waveform steps, shared by the waveform and power paths, in this order.

    Returns:
        Five ``(batch,)`` tensors: shifts (int64, in ``[-max_shift, max_shift]`` samples or frames), gains in dB,
        SNRs in dB (``inf`` where the example gets no noise), whether it gets noise (bool), and the index of its
        noise colour in ``config.noise_kinds`` (int64).
    """
    shift = draw_shifts(batch_size, max_shift, generator)
    gain = draw_uniform(batch_size, -config.gain_db, config.gain_db, generator)
    snr = draw_uniform(batch_size, config.snr_db_min, config.snr_db_max, generator)
    noisy = torch.rand(batch_size, generator=generator, device=snr.device) < config.noise_probability
    snr = torch.where(noisy, snr, torch.full_like(snr, float("inf")))
    kind_index = torch.randint(len(config.noise_kinds), (batch_size,), generator=generator, device=snr.device)
    return shift, gain, snr, noisy, kind_index


def draw_waveform_augment(batch_size: int, n_samples: int, sample_rate: int, config: AugmentConfig,
                          generator: torch.Generator | None = None) -> WaveformDraw:
    """Draw every random parameter of :func:`apply_waveform_augment` for a batch (on the generator's device)."""
    shift, gain, snr, noisy, kind_index = draw_level_steps(batch_size, round(config.time_shift_sec * sample_rate),
                                                          config, generator)
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
    return interp(torch.log2(frequencies.to(eq_db).clamp_min(1e-6)), knots, eq_db)


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


def interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation, like ``numpy.interp``: flat beyond the outer points.

    ``xp (n,)`` increasing, ``fp (..., n)`` the values there, ``x`` any shape; returns ``fp``'s leading dimensions
    followed by ``x``'s (``fp (n,)``: the shape of ``x``).
    """
    right = torch.searchsorted(xp, x.contiguous()).clamp(1, xp.numel() - 1)
    weight = ((x - xp[right - 1]) / (xp[right] - xp[right - 1])).clamp(0, 1)
    left = fp[..., right - 1]
    return left + (fp[..., right] - left) * weight

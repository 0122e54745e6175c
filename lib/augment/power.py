"""Waveform augmentation at feature-cache speed: time shift, gain, noise, reverberation and equalisation applied
to cached power spectrograms instead of waveforms.

With ``FeatureConfig.power == 2`` the extractor's first stage (:meth:`~lib.dsp.features.FeatureExtractor.power`,
``|STFT|**2`` summed by the mel filters) is linear in the signal's power, so each waveform step has a close
counterpart on it. The training engine caches every training clip's power spectrogram once and applies these
per batch, on the device; an epoch then costs little more than the model (the waveform path re-featurises every
batch). What changes, step by step (``P`` is a clip's power spectrogram ``(1, bins, frames)``):

* time shift: whole frames, zero-filled (``hop_length`` samples a frame: 10 ms by default);
* gain: ``P * 10 ** (gain_db / 10)``: exact;
* noise: ``P + s * N``, where ``N`` is the power spectrogram of a unit-RMS noise clip from a :class:`NoiseBank`
  (rolled by a random number of frames) and ``s`` sets the SNR from the clip's mean square. The cross term
  ``2 Re(X conj(N))`` averages to zero and is left out: the bands' expected power is exact, their frame-to-frame
  fluctuation a little smaller than with the waveform;
* reverberation: each frame's power spreads over the following frames by the impulse response's expected energy
  envelope (direct path plus an exponential tail of the drawn RT60 and direct-to-reverberant ratio; Polack's
  statistical model of a room), keeping the clip's energy (the waveform path keeps its peak);
* equalisation: each row times the equaliser's power gain averaged over the row's mel filter.

:func:`render_power_augment` plays the same draw as a waveform (for the Transform lab); tests hold the two paths
to stated tolerances. Randomness follows :mod:`lib.augment.waveform`: ``draw_power_augment`` draws every
parameter from an explicit generator, ``apply_power_augment`` is deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from lib.augment.config import AugmentConfig
from lib.augment.waveform import (add_noise, apply_eq, apply_gain, apply_reverb, draw_eq, draw_level_steps,
                                  draw_uniform, eq_bin_gains, eq_curve, make_noise, time_shift)
from lib.dsp.features import FeatureConfig, FeatureExtractor

__all__ = ["NoiseBank", "PowerDraw", "draw_power_augment", "apply_power_augment", "render_power_augment",
           "reverb_envelope", "signal_power", "cached_noise_bank"]

_LN_1000 = 6.9078  # RT60: the tail falls by 60 dB, amplitude by 1000


class NoiseBank:
    """Unit-RMS noise clips of each colour, kept as their power spectrograms (their waveforms are remade from
    their seeds on demand, so the bank costs ``n_kinds * n_per_kind`` power spectrograms of memory).

    Args:
        extractor: the training's feature extractor (its device holds the bank).
        kinds: noise colours, as in :attr:`AugmentConfig.noise_kinds`; row ``k * n_per_kind + i`` is clip ``i`` of
            ``kinds[k]``.
        n_per_kind: clips per colour (each also rolled by a random number of frames when drawn).
        seed: the bank's seed; clip ``j`` is ``make_noise`` from a generator seeded ``seed * 1_000_003 + j``.
    """

    def __init__(self, extractor: FeatureExtractor, kinds: tuple[str, ...], n_per_kind: int = 128,
                 seed: int = 0) -> None:
        self.kinds, self.n_per_kind, self.seed = tuple(kinds), int(n_per_kind), int(seed)
        self.n_samples = extractor.config.n_samples
        device = next(iter(extractor.buffers())).device
        with torch.no_grad():
            parts = [extractor.power(self.waveforms(torch.arange(start, min(start + 64, len(self)))).to(device))
                     for start in range(0, len(self), 64)]
        self.power = torch.cat(parts)  # (n_kinds * n_per_kind, 1, power_bins, frames)

    def __len__(self) -> int:
        return len(self.kinds) * self.n_per_kind

    def waveforms(self, index: Tensor) -> Tensor:
        """The noise clips at rows ``index (n,)``: ``(n, 1, n_samples)`` float32 on the CPU, unit RMS."""
        rows = []
        for j in index.tolist():
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + j)
            rows.append(make_noise((1, self.n_samples), self.kinds[j // self.n_per_kind], generator))
        return torch.stack(rows) if rows else torch.empty(0, 1, self.n_samples)


@dataclass
class PowerDraw:
    """One draw of the steps for a batch; all ``(batch,)`` but ``eq_db``.

    Attributes:
        shift_frames: time shift in frames (int64; positive: later).
        gain_db: gain in dB.
        snr_db: SNR in dB; ``inf`` where the example gets no noise.
        noise_index: the :class:`NoiseBank` row of each example's noise (int64).
        noise_roll: frames the noise is rolled by (int64).
        rt60_sec: reverberation time; None when reverb is off for the whole config.
        drr_db: direct-to-reverberant ratio in dB (None with ``rt60_sec``).
        reverb: True where the example is played in a room (None with ``rt60_sec``).
        eq_db: ``(batch, len(EQ_KNOTS_HZ))`` equaliser gains in dB (zeros: flat); None when EQ is off.
    """

    shift_frames: Tensor
    gain_db: Tensor
    snr_db: Tensor
    noise_index: Tensor
    noise_roll: Tensor
    rt60_sec: Tensor | None = None
    drr_db: Tensor | None = None
    reverb: Tensor | None = None
    eq_db: Tensor | None = None


def draw_power_augment(batch_size: int, feature_config: FeatureConfig, config: AugmentConfig,
                       generator: torch.Generator | None = None, n_noise_per_kind: int = 128) -> PowerDraw:
    """Draw every random parameter of :func:`apply_power_augment` for a batch (on the generator's device)."""
    max_shift = round(config.time_shift_sec * feature_config.sample_rate / feature_config.hop_length)
    shift, gain, snr, _, kind = draw_level_steps(batch_size, max_shift, config, generator)
    device = shift.device
    clip = torch.randint(n_noise_per_kind, (batch_size,), generator=generator, device=device)
    roll = torch.randint(feature_config.n_frames, (batch_size,), generator=generator, device=device)
    draw = PowerDraw(shift, gain, snr, kind * n_noise_per_kind + clip, roll)
    if config.reverb_probability > 0:
        draw.rt60_sec = draw_uniform(batch_size, min(0.1, config.rt60_sec_max), config.rt60_sec_max, generator)
        draw.drr_db = draw_uniform(batch_size, 0.0, 15.0, generator)
        draw.reverb = torch.rand(batch_size, generator=generator, device=device) < config.reverb_probability
    if config.eq_probability > 0 and config.eq_db > 0:
        draw.eq_db = draw_eq(batch_size, config.eq_db, config.eq_probability, generator)
    return draw


def reverb_envelope(rt60_sec: Tensor, drr_db: Tensor, feature_config: FeatureConfig, rt60_sec_max: float) -> Tensor:
    """The expected energy of a synthetic impulse response (:func:`lib.augment.waveform.draw_impulse_responses`) in each
    frame of lag: ``rt60_sec, drr_db (batch,)`` -> ``(batch, n_lags)``, lag ``k`` collecting the taps nearest to
    ``k * hop_length`` samples. Lag 0 holds the direct path (energy 1); the tail's energy adds up to
    ``10 ** (-drr_db / 10)`` and decays by 60 dB in ``rt60_sec``.
    """
    hop, rate = feature_config.hop_length, feature_config.sample_rate
    n_taps = max(2, round(rt60_sec_max * rate))
    n_lags = math.ceil((n_taps - 1) / hop + 0.5) + 1
    # Tap n (1 <= n < n_taps) has expected energy a**n, a = exp(-2 ln(1000) / (rt60 * rate)); sum each lag's taps
    # [lo, hi) in closed form (a geometric series), in float64 (a is within 1e-3 of 1).
    a = torch.exp(-2 * _LN_1000 / (rt60_sec.double()[:, None] * rate))                         # (batch, 1)
    centres = torch.arange(n_lags, dtype=torch.float64, device=rt60_sec.device) * hop
    lo = (centres - hop / 2).ceil().clamp(1, n_taps)                                             # (n_lags,)
    hi = (centres + hop / 2).ceil().clamp(1, n_taps)
    energy = (a ** lo - a ** hi) / (1 - a)                                                       # (batch, n_lags)
    tail = energy / energy.sum(dim=1, keepdim=True).clamp_min(1e-30) * 10 ** (-drr_db.double()[:, None] / 10)
    tail[:, 0] += 1.0
    return tail.float()


def _spread_over_frames(power: Tensor, envelope: Tensor) -> Tensor:
    """Causal convolution along frames, one kernel per example (FFT).

    ``power (batch, 1, bins, frames)``, ``envelope (batch, n_lags)`` -> ``(batch, 1, bins, frames)``.
    """
    frames = power.shape[-1]
    size = frames + envelope.shape[-1] - 1
    size += size % 2
    spectrum = torch.fft.rfft(power, n=size) * torch.fft.rfft(envelope, n=size)[:, None, None, :]
    return torch.fft.irfft(spectrum, n=size)[..., :frames].clamp_min(0)


def _row_power_gains(eq_db: Tensor, extractor: FeatureExtractor) -> Tensor:
    """The equaliser's power gain per row of the power spectrogram: ``eq_db (batch, knots)`` -> ``(batch, bins)``.

    Mel rows average the linear-bin gains with their filter's weights; linear rows take their bin's gain.
    """
    config = extractor.config
    frequencies = torch.fft.rfftfreq(config.n_fft, 1 / config.sample_rate, device=eq_db.device)
    gains = 10 ** (eq_curve(eq_db, frequencies) / 10)                                # (batch, n_freqs)
    filters = extractor.filterbank
    if filters is None:
        return gains
    filters = filters.to(gains)                                                      # (n_freqs, n_mels)
    return gains @ filters / filters.sum(dim=0).clamp_min(1e-12)


def signal_power(waveform: Tensor) -> Tensor:
    """Mean square of each example: ``(batch, channels, time)`` -> ``(batch,)`` (of the mono mix, as featurised)."""
    return waveform.float().mean(dim=1).pow(2).mean(dim=-1)


def apply_power_augment(power: Tensor, clip_power: Tensor, draw: PowerDraw, bank: NoiseBank | None,
                        extractor: FeatureExtractor, rt60_sec_max: float = 0.6) -> Tensor:
    """Apply a :class:`PowerDraw` to power spectrograms, in the waveform path's order: reverb, EQ, shift, gain,
    noise.

    Args:
        power: ``(batch, 1, power_bins, frames)`` from :meth:`FeatureExtractor.power` (``power == 2``).
        clip_power: ``(batch,)`` each clip's mean square (:func:`signal_power`), which sets the noise level.
        draw: the parameters.
        bank: the noise clips :attr:`PowerDraw.noise_index` points into (None: no example gets noise).
        extractor: the feature extractor (for the mel filters and the frame rate).
        rt60_sec_max: :attr:`AugmentConfig.rt60_sec_max` (the longest impulse response).

    Returns:
        ``(batch, 1, power_bins, frames)`` on ``power``'s device.
    """
    device = power.device
    out = power
    energy = power.sum(dim=(1, 2, 3))                                                 # (batch,)
    if draw.rt60_sec is not None and bool(draw.reverb.any()):
        rows = draw.reverb.nonzero().squeeze(1)                                      # only the rooms' examples
        envelope = reverb_envelope(draw.rt60_sec[rows], draw.drr_db[rows], extractor.config, rt60_sec_max)
        envelope = (envelope / envelope.sum(dim=1, keepdim=True)).to(device)          # the clip's energy kept
        rows = rows.to(device)
        out = out.index_put((rows,), _spread_over_frames(out[rows], envelope))
    if draw.eq_db is not None:
        out = out * _row_power_gains(draw.eq_db.to(device), extractor)[:, None, :, None]
    out = time_shift(out, draw.shift_frames.to(device), mode="zero")
    out = out * (10 ** (draw.gain_db.to(device) / 10))[:, None, None, None]
    noisy = torch.isfinite(draw.snr_db)
    if bank is not None and bool(noisy.any()):
        # The clip's mean square after the steps above, from the ratio of its spectrogram's energy.
        ratio = out.sum(dim=(1, 2, 3)) / energy.clamp_min(1e-20)
        level = clip_power.to(device) * ratio * 10 ** (-torch.where(noisy, draw.snr_db, 0.0).to(device) / 10)
        noise = time_shift(bank.power[draw.noise_index.to(bank.power.device)].to(device),
                           draw.noise_roll.to(device), mode="roll")
        out = out + torch.where(noisy.to(device), level, 0.0)[:, None, None, None] * noise
    return out


def render_power_augment(waveform: Tensor, draw: PowerDraw, bank: NoiseBank | None, feature_config: FeatureConfig,
                         rt60_sec_max: float = 0.6, generator: torch.Generator | None = None) -> Tensor:
    """The same draw on a waveform, to listen to: ``(batch, channels, time)`` -> same shape.

    Shift, gain, EQ and noise are the very steps of :func:`apply_power_augment` (the noise is the bank's clip,
    rolled by the same frames); the room is an impulse response with the drawn RT60 and ratio whose tail is drawn
    from ``generator`` (the power path uses its expected envelope).
    """
    hop, rate, n = feature_config.hop_length, feature_config.sample_rate, waveform.shape[-1]
    out = waveform
    if draw.rt60_sec is not None and bool(draw.reverb.any()):
        n_taps = max(2, round(rt60_sec_max * rate))
        t = torch.arange(n_taps) / rate
        tail = torch.randn(len(draw.rt60_sec), n_taps, generator=generator)
        tail = tail * torch.exp(-_LN_1000 * t[None, :] / draw.rt60_sec.cpu()[:, None])
        tail[:, 0] = 0
        tail = tail / tail.norm(dim=1, keepdim=True).clamp_min(1e-8) * 10 ** (-draw.drr_db.cpu()[:, None] / 20)
        tail[:, 0] = 1.0
        wet = apply_reverb(out, tail[:, None, :].to(out.device))
        out = torch.where(draw.reverb.to(out.device)[:, None, None], wet, out)
    if draw.eq_db is not None:
        out = apply_eq(out, eq_bin_gains(draw.eq_db, n, rate))
    out = time_shift(out, draw.shift_frames.to(out.device) * hop, mode="zero")
    out = apply_gain(out, draw.gain_db.to(out.device))
    noisy = torch.isfinite(draw.snr_db)
    if bank is not None and bool(noisy.any()):
        noise = time_shift(bank.waveforms(draw.noise_index.cpu()), draw.noise_roll.cpu() * hop, mode="roll")
        with_noise = add_noise(out, noise.to(out.device), torch.where(noisy, draw.snr_db, 0.0).to(out.device))
        out = torch.where(noisy.to(out.device)[:, None, None], with_noise, out)
    return out


@lru_cache(maxsize=8)
def cached_noise_bank(feature_config: FeatureConfig, kinds: tuple[str, ...], seed: int = 0) -> NoiseBank:
    """A :class:`NoiseBank` on the CPU, built once per settings (for previews of single clips)."""
    return NoiseBank(FeatureExtractor(feature_config), kinds, seed=seed)

"""The augmentation settings: :class:`AugmentConfig`, the range of each setting, and a one-line summary.

The ranges live here, beside the checks that use them, so that every editor of these settings (the Transform
lab, the Train page) offers the same ones: :data:`AUGMENT_RANGES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from lib.config import ConfigDict

__all__ = ["AugmentConfig", "SettingRange", "AUGMENT_RANGES", "AUGMENT_DOMAINS", "BATCH_SOURCES", "NOISE_KINDS",
           "EQ_KNOTS_HZ"]

AUGMENT_DOMAINS = ("spectrogram", "waveform")
# Where the engine makes a training batch from: features cached once (no waveform step is on), power spectrograms
# cached once and augmented per batch, or waveforms augmented and featurised per batch (AugmentConfig.batch_source).
BATCH_SOURCES = ("features", "power", "waveform")
NOISE_KINDS: tuple[str, ...] = ("white", "pink", "brown")
# Knots of the random equaliser's gain curve, one an octave apart; the curve is linear in log frequency
# between them and flat beyond the outer ones.
EQ_KNOTS_HZ: tuple[float, ...] = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)


@dataclass(frozen=True)
class SettingRange:
    """The range of one numeric setting.

    Attributes:
        low: the lowest value; lower ones are rejected.
        high: the end of an editor's scale.
        step: an editor's step.
        limit: the highest value the config accepts (None: no limit beyond ``high``'s scale, which an editor
            widens to hold a larger saved value).
        limit_excluded: True when ``limit`` itself is rejected (values must be below it).
    """

    low: float
    high: float
    step: float
    limit: float | None = None
    limit_excluded: bool = False

    def check(self, name: str, value: float, unit: str = "") -> None:
        """Raise ValueError naming ``name`` when ``value`` is outside the range the config accepts."""
        if self.limit is None:
            if value < self.low:
                raise ValueError(f"{name} must be >= {self.low:g}, got {value}")
            return
        inside = value < self.limit if self.limit_excluded else value <= self.limit
        if not (self.low <= value and inside):
            bracket = ")" if self.limit_excluded else "]"
            raise ValueError(f"{name} must be in [{self.low:g}, {self.limit:g}{bracket}{unit}, got {value}")


_PROBABILITY = SettingRange(0.0, 1.0, 0.05, limit=1.0)
_WARP = SettingRange(0.0, 0.45, 0.01, limit=0.5, limit_excluded=True)
AUGMENT_RANGES: dict[str, SettingRange] = {
    "time_shift_sec": SettingRange(0.0, 0.5, 0.01),
    "noise_probability": _PROBABILITY,
    "snr_db": SettingRange(-10.0, 50.0, 0.5, limit=float("inf")),   # snr_db_min and snr_db_max
    "gain_db": SettingRange(0.0, 20.0, 0.5),
    "freq_mask_param": SettingRange(0, 80, 1),
    "n_freq_masks": SettingRange(0, 10, 1),
    "time_mask_param": SettingRange(0, 100, 1),
    "n_time_masks": SettingRange(0, 10, 1),
    "freq_warp": _WARP,
    "time_stretch": _WARP,
    "reverb_probability": _PROBABILITY,
    "rt60_sec_max": SettingRange(0.05, 2.0, 0.05, limit=2.0),
    "mixup_alpha": SettingRange(0.0, 1.0, 0.05),
    "eq_probability": _PROBABILITY,
    "eq_db": SettingRange(0.0, 30.0, 1.0, limit=30.0),
}
_UNITS = {"rt60_sec_max": " s", "eq_db": " dB"}


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
            :mod:`lib.augment.power`) or ``"waveform"`` (on the waveform, every batch featurised again; exact,
            slower). Features with ``power != 2`` always use the waveform.

    Raises:
        ValueError: a setting outside its :data:`AUGMENT_RANGES` entry, or an unknown domain or noise colour.
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
        for name, bounds in AUGMENT_RANGES.items():
            if name != "snr_db":
                bounds.check(name, getattr(self, name), _UNITS.get(name, ""))
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

    def batch_source(self, power: float = 2.0) -> str:
        """What the engine augments, one of :data:`BATCH_SOURCES`, for features of ``FeatureConfig.power``:
        ``"features"`` cached once (no waveform step is on: the time shift rolls frames), ``"power"``
        spectrograms cached once (``domain="spectrogram"`` with ``power == 2``), or ``"waveform"``."""
        if not self.waveform_domain:
            return "features"
        return "power" if self.domain == "spectrogram" and power == 2 else "waveform"

    def every_step_on(self) -> "AugmentConfig":
        """These settings with every step that is on applied to every example (probability 1): what a preview of
        one clip shows, where training applies noise, reverb and EQ to a share of its examples."""
        return self.replace(**{name: 1.0 for name in ("noise_probability", "reverb_probability", "eq_probability")
                               if getattr(self, name) > 0})

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

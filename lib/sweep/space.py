"""What a sweep varies: parameters (dotted paths into a run's settings) with their ranges or choices.

A parameter's ``name`` is a path into the settings a run trains with: ``"train.<TrainConfig field>"``,
``"train.augment.<AugmentConfig field>"`` or ``"features.<FeatureConfig field>"``. Its kind follows the field's
type (an ``int`` field gives integers); strings and switches are choices. On the command line a parameter is
written ``name=low:high[:log|:step]`` or ``name=a,b,c`` (:meth:`Param.parse`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from lib.augment import AUGMENT_RANGES, AugmentConfig
from lib.dsp.features import FeatureConfig, NORMALIZATIONS
from lib.models import MODELS
from lib.engine.train_config import OPTIMIZERS, SCHEDULERS, TrainConfig

__all__ = ["Param", "SearchSpace", "searchable_params", "KINDS", "GRID_POINTS"]

KINDS = ("float", "int", "categorical")
#: Points of a float range without a step on a grid (low, middle, high; the middle geometric on a log scale).
GRID_POINTS = 3
#: The prefix of a parameter name -> the command-line option group of :func:`lib.engine.cli.config_options`.
_GROUPS = {"train.augment.": "augment", "features.": "feature", "train.": "train"}


@functools.cache
def _options() -> dict[tuple[str, str], Any]:
    """``{(group, field): lib.engine.cli.ConfigOption}`` of every setting."""
    from lib.engine.cli import config_options

    return {(option.group, option.field.name): option for option in config_options()}


def _option(name: str):
    """The :class:`lib.engine.cli.ConfigOption` of a dotted parameter name (ValueError when it names no setting)."""
    for prefix, group in _GROUPS.items():
        if name.startswith(prefix):
            option = _options().get((group, name[len(prefix):]))
            if option is not None and option.kind is tuple:
                raise ValueError(f"sweep parameter {name!r}: a list setting cannot be searched")
            if option is not None:
                return option
            break
    raise ValueError(f"unknown sweep parameter {name!r}: use train.<field>, train.augment.<field> or "
                     f"features.<field> of TrainConfig, AugmentConfig or FeatureConfig")


@dataclass(frozen=True)
class Param:
    """One setting a sweep varies.

    Attributes:
        name: dotted path into the run's settings, e.g. ``"train.learning_rate"``, ``"features.n_mels"``.
        kind: ``"float"``, ``"int"`` or ``"categorical"``.
        low: the lowest value of a range (float, int).
        high: the highest value of a range, included.
        log: draw on a log scale (``low`` > 0).
        step: the spacing of the values (None: continuous floats, 1 for ints).
        choices: the values of a categorical parameter.

    Raises:
        ValueError: an unknown setting, or a range or choices that make no sense (the message names the parameter).
    """

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()

    def __post_init__(self) -> None:
        _option(self.name)
        object.__setattr__(self, "choices", tuple(self.choices))
        if self.kind not in KINDS:
            raise ValueError(f"sweep parameter {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "categorical":
            if not self.choices:
                raise ValueError(f"sweep parameter {self.name!r}: give at least one choice")
            if len(set(map(repr, self.choices))) != len(self.choices):
                raise ValueError(f"sweep parameter {self.name!r}: a choice is given twice")
            return
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"sweep parameter {self.name!r}: needs low < high, got {self.low}:{self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"sweep parameter {self.name!r}: a log scale needs low > 0, got {self.low}")
        if self.log and self.step not in (None, 1):
            raise ValueError(f"sweep parameter {self.name!r}: a log scale takes no step")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"sweep parameter {self.name!r}: step must be positive, got {self.step}")
        if self.kind == "int" and not all(float(v).is_integer() for v in (self.low, self.high, self.step or 1)):
            raise ValueError(f"sweep parameter {self.name!r}: an integer range needs whole numbers")

    @classmethod
    def parse(cls, text: str) -> Param:
        """``"train.learning_rate=1e-4:1e-1:log"``, ``"features.n_mels=32:64:8"`` or ``"train.model=a,b"``.

        Raises:
            ValueError: the text is not ``name=range`` or ``name=choices``, or a value does not fit the setting.
        """
        name, sep, spec = text.partition("=")
        name, spec = name.strip(), spec.strip()
        if not sep or not name or not spec:
            raise ValueError(f"sweep parameter {text!r}: write name=low:high[:log|:step] or name=a,b,c")
        option = _option(name)
        parts = [p.strip() for p in spec.split(":")]
        try:
            if len(parts) == 1 or option.kind in (str, bool):
                if len(parts) != 1:
                    raise ValueError(f"{name} takes choices a,b,c, not a range")
                return cls(name, "categorical", choices=tuple(_value(option, w.strip()) for w in spec.split(",")))
            if len(parts) not in (2, 3):
                raise ValueError("write low:high, low:high:log or low:high:step")
            kind = "int" if option.kind is int else "float"
            number = int if kind == "int" else float
            low, high = number(parts[0]), number(parts[1])
            log = len(parts) == 3 and parts[2].lower() == "log"
            step = number(parts[2]) if len(parts) == 3 and not log else None
        except (TypeError, ValueError) as error:
            raise ValueError(f"sweep parameter {text!r}: {error}") from None
        return cls(name, kind, low, high, log=log, step=step)

    def to_text(self) -> str:
        """The :meth:`parse` form of this parameter."""
        if self.kind == "categorical":
            return f"{self.name}={','.join(str(c) for c in self.choices)}"
        tail = ":log" if self.log else (f":{self.step:g}" if self.step is not None else "")
        return f"{self.name}={self.low:g}:{self.high:g}{tail}"

    def distribution(self):
        """The Optuna distribution of this parameter."""
        import optuna.distributions as d

        if self.kind == "categorical":
            return d.CategoricalDistribution(self.choices)
        if self.kind == "int":
            return d.IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return d.FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)

    def grid_values(self) -> list:
        """The values a grid search tries: the choices, the steps of a range (at most 10), else :data:`GRID_POINTS`
        points from low to high (evenly spaced, on a log scale when ``log``)."""
        if self.kind == "categorical":
            return list(self.choices)
        step = self.step or (1 if self.kind == "int" else None)
        if step is not None and (self.high - self.low) / step < 10:
            values = np.arange(self.low, self.high + step / 2, step)
        elif self.log:
            values = np.geomspace(self.low, self.high, GRID_POINTS)
        else:
            values = np.linspace(self.low, self.high, GRID_POINTS)
        if self.kind == "int":
            return sorted({int(round(v)) for v in values})
        return [float(v) for v in values]

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (choices as a list)."""
        return {"name": self.name, "kind": self.kind, "low": self.low, "high": self.high, "log": self.log,
                "step": self.step, "choices": list(self.choices)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Param:
        """The parameter :meth:`to_dict` wrote."""
        return cls(**{**d, "choices": tuple(d.get("choices") or ())})


def _value(option, text: str) -> Any:
    """A choice written on the command line as the setting's type (``none`` for an optional field)."""
    if option.kind is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError(f"{text!r} is not true or false")
        return text.lower() == "true"
    return option.parse(text)


@dataclass(frozen=True)
class SearchSpace:
    """The parameters of a sweep.

    Attributes:
        params: the parameters, each with a different name.
    """

    params: tuple[Param, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(self.params))
        names = [p.name for p in self.params]
        if not names:
            raise ValueError("a sweep needs at least one parameter to vary")
        if len(set(names)) != len(names):
            raise ValueError(f"sweep parameters named twice: {sorted({n for n in names if names.count(n) > 1})}")

    @property
    def names(self) -> list[str]:
        """The parameters' names, in order."""
        return [p.name for p in self.params]

    def apply(self, values: Mapping[str, Any], feature_config: FeatureConfig,
              train_config: TrainConfig) -> tuple[FeatureConfig, TrainConfig]:
        """The base settings with ``values`` (``{name: value}``) put in.

        Raises:
            ValueError: a value the setting refuses, or a name that is no setting (the message names the parameter).
        """
        changes: dict[str, dict[str, Any]] = {"feature": {}, "augment": {}, "train": {}}
        for name, value in values.items():
            option = _option(name)
            changes[option.group][option.field.name] = value.item() if isinstance(value, np.generic) else value
        try:
            augment = train_config.augment.replace(**changes["augment"])
            return (feature_config.replace(**changes["feature"]),
                    train_config.replace(**changes["train"], augment=augment))
        except (TypeError, ValueError) as error:
            raise ValueError(f"sweep values {dict(values)} are not valid settings: {error}") from None

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of the parameters' :meth:`Param.grid_values`, the first parameter changing slowest."""
        combos: list[dict[str, Any]] = [{}]
        for param in self.params:
            combos = [{**c, param.name: v} for c in combos for v in param.grid_values()]
        return combos

    def to_dict(self) -> dict[str, Any]:
        """``{"params": [Param.to_dict(), ...]}``."""
        return {"params": [p.to_dict() for p in self.params]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SearchSpace:
        """The space :meth:`to_dict` wrote."""
        return cls(tuple(Param.from_dict(p) for p in d["params"]))


def _augment_param(name: str) -> Param:
    """An augmentation setting over its :data:`lib.augment.AUGMENT_RANGES` scale (the SNR bounds each up to the
    other's default, so that either alone keeps min <= max)."""
    bounds = AUGMENT_RANGES["snr_db" if name.startswith("snr_db") else name]
    option = _option("train.augment." + name)
    if option.kind is int:
        return Param("train.augment." + name, "int", int(bounds.low), int(bounds.high), step=1)
    low = AugmentConfig().snr_db_min if name == "snr_db_max" else bounds.low
    high = bounds.high if bounds.limit is None or math.isinf(bounds.limit) else min(bounds.high, bounds.limit)
    high = AugmentConfig().snr_db_max if name == "snr_db_min" else high
    return Param("train.augment." + name, "float", float(low), float(high))


def searchable_params() -> dict[str, Param]:
    """Every setting a sweep may vary, each with a sensible default range (``{name: Param}``).

    Learning rate and weight decay on log scales; augmentation over :data:`lib.augment.AUGMENT_RANGES`; the models
    that train from scratch.
    """
    scratch = tuple(name for name, spec in MODELS.items() if not spec.pretrained and spec.feature_kind is None)
    params = [
        Param("train.model", "categorical", choices=scratch),
        Param("train.learning_rate", "float", 1e-4, 1e-1, log=True),
        Param("train.weight_decay", "float", 1e-5, 1e-1, log=True),
        Param("train.batch_size", "categorical", choices=(16, 32, 64, 128)),
        Param("train.epochs", "int", 5, 30, step=5),
        Param("train.optimizer", "categorical", choices=OPTIMIZERS),
        Param("train.momentum", "float", 0.8, 0.99),
        Param("train.scheduler", "categorical", choices=SCHEDULERS),
        Param("train.label_smoothing", "float", 0.0, 0.2),
        Param("features.kind", "categorical", choices=("mel", "mfcc", "linear")),
        Param("features.n_mels", "int", 16, 80, step=8),
        Param("features.n_mfcc", "int", 13, 40),
        Param("features.hop_length", "categorical", choices=(80, 160, 320)),
        Param("features.normalization", "categorical", choices=NORMALIZATIONS),
    ]
    for name in ("time_shift_sec", "noise_probability", "snr_db_min", "snr_db_max", "gain_db", "freq_mask_param",
                 "n_freq_masks", "time_mask_param", "n_time_masks", "freq_warp", "time_stretch", "reverb_probability",
                 "rt60_sec_max", "mixup_alpha", "eq_probability", "eq_db"):
        params.append(_augment_param(name))
    return {p.name: p for p in params}

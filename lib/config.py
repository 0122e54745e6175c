"""What every frozen configuration dataclass shares: a plain-dict round trip and validated copies."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

__all__ = ["ConfigDict"]

C = TypeVar("C", bound="ConfigDict")


class ConfigDict:
    """Mixin for frozen dataclasses (``FeatureConfig``, ``AugmentConfig``, ``TrainConfig``)."""

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict (nested configs too; JSON-ready)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[C], d: Mapping[str, Any]) -> C:
        """Builds a config from a dict; missing keys take defaults.

        Raises:
            ValueError: If ``d`` is not a mapping, has keys that are not fields, or a value is invalid.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"{cls.__name__}.from_dict needs a mapping, got {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"{cls.__name__}.from_dict: unknown keys {unknown}")
        return cls(**d)

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

"""Named parameters: the one vocabulary shared by models, YAML files, the likelihood and Minuit."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

__all__ = ["Parameter", "ModelError"]


class ModelError(ValueError):
    """A model, its parameters or its serialised form is inconsistent."""


@dataclass(frozen=True)
class Parameter:
    """A model parameter with its unit, bounds and whether it is fitted.

    Parameters
    ----------
    name : str
        Field name (``amplitude``, ``index``, ``lon_0``, ``sigma``, ``norm``, ...).
    value : float
        Value in ``unit``.
    unit : str
        An astropy unit string; values inside JAX are plain floats in this unit.
    min, max : float
        Bounds (``nan`` for none).
    frozen : bool
        ``True`` keeps the parameter fixed in fits.
    scale : float
        Typical size, so that Minuit sees ``value / scale`` near 1 (autoscaled when 0).
    """

    name: str
    value: float
    unit: str = ""
    min: float = np.nan
    max: float = np.nan
    frozen: bool = False
    scale: float = 0.0

    def __post_init__(self):
        value = float(self.value)
        if not np.isfinite(value):
            raise ModelError(f"parameter {self.name!r} has non-finite value {self.value}")
        if (np.isfinite(self.min) and value < self.min) or (np.isfinite(self.max) and value > self.max):
            raise ModelError(f"parameter {self.name!r} = {value} lies outside its bounds [{self.min}, {self.max}]")
        object.__setattr__(self, "value", value)

    @property
    def autoscale(self) -> float:
        if self.scale:
            return float(self.scale)
        if self.name in ("lon_0", "lat_0"):  # positions: offsets of order a degree matter, not |value|
            return 1.0
        return abs(self.value) if self.value != 0 else 1.0

    def with_value(self, value: float) -> Parameter:
        return replace(self, value=float(value))

    def to_dict(self) -> dict:
        d = {"name": self.name, "value": self.value, "unit": self.unit}
        if np.isfinite(self.min):
            d["min"] = self.min
        if np.isfinite(self.max):
            d["max"] = self.max
        d["frozen"] = bool(self.frozen)  # always: gammapy keeps its own default (frozen reference) otherwise
        if self.scale:
            d["scale"] = self.scale
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Parameter:
        unknown = set(d) - {"name", "value", "unit", "min", "max", "frozen", "scale", "error"}
        if unknown:
            raise ModelError(f"parameter {d.get('name')!r} has unknown keys {sorted(unknown)}")
        if "name" not in d or "value" not in d:
            raise ModelError(f"a parameter needs 'name' and 'value', got {d}")
        return cls(
            name=str(d["name"]),
            value=float(d["value"]),
            unit=str(d.get("unit", "")),
            min=float(d.get("min", np.nan)),
            max=float(d.get("max", np.nan)),
            frozen=bool(d.get("frozen", False)),
            scale=float(d.get("scale", 0.0)),
        )

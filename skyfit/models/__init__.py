"""Source models: spatial shapes, spectra, sky models and their YAML form."""

from .._precision import X64  # noqa: F401  (JAX in float64 before this package's code runs)
from ._parameter import ModelError, Parameter
from .sky import BackgroundNorm, SkyModel, Source
from .spatial import (
    DiskSpatialModel,
    GalacticDiffuseSpatialModel,
    GaussianSpatialModel,
    PointSpatialModel,
    SpatialModel,
)
from .spectral import ExpCutoffPowerLaw, LogParabola, PowerLaw, SpectralModel

__all__ = [
    "Parameter",
    "ModelError",
    "Source",
    "BackgroundNorm",
    "SkyModel",
    "SpatialModel",
    "PointSpatialModel",
    "GaussianSpatialModel",
    "DiskSpatialModel",
    "GalacticDiffuseSpatialModel",
    "SpectralModel",
    "PowerLaw",
    "LogParabola",
    "ExpCutoffPowerLaw",
]

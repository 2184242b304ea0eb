"""Source models: spatial shapes, spectra, sky models and their YAML form."""

from .._precision import X64  # noqa: F401  (JAX in float64 before this package's code runs)
from ._parameter import ModelError, Parameter
from .sky import BackgroundNorm, Models, Source, deprecated_sky_model
from .spatial import (
    ConstantSpatialModel,
    DiskSpatialModel,
    GalacticDiffuseSpatialModel,
    GaussianSpatialModel,
    PointSpatialModel,
    SpatialModel,
    TemplateSpatialModel,
)
from .spectral import ExpCutoffPowerLaw, LogParabola, PowerLaw, PowerLawNorm, SpectralModel

__all__ = [
    "Parameter",
    "ModelError",
    "Source",
    "BackgroundNorm",
    "Models",
    "SpatialModel",
    "PointSpatialModel",
    "GaussianSpatialModel",
    "DiskSpatialModel",
    "GalacticDiffuseSpatialModel",
    "ConstantSpatialModel",
    "TemplateSpatialModel",
    "SpectralModel",
    "PowerLaw",
    "LogParabola",
    "ExpCutoffPowerLaw",
    "PowerLawNorm",
]


def __getattr__(name: str):
    if name == "SkyModel":  # deprecated alias of Models
        return deprecated_sky_model()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

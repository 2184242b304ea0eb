"""skyfit: HEALPix counts maps, JAX joint Poisson likelihoods and iminuit fits for wide-field
gamma-ray arrays (LHAASO WCDA/KM2A, HAWC).

Quick tour::

    from skyfit import hawc_dataset, SkyModel, Source, PointSpatialModel, LogParabola, fit
    ds = hawc_dataset("NN")
    model = SkyModel([Source("crab", PointSpatialModel.create(83.633, 22.0145), LogParabola.create(2.3e-13))])
    result = fit(model, ds)
"""

from .dataset import Dataset
from .fit import Fit, FitError, FitResult, fit, profile, significance_from_ts, ts_of_source, upper_limit
from .hawc import hawc_dataset
from .likelihood import Likelihood
from .maps import HealpixMaps, HealpixROI, bin_events
from .models import (
    BackgroundNorm,
    DiskSpatialModel,
    ExpCutoffPowerLaw,
    GaussianSpatialModel,
    LogParabola,
    PointSpatialModel,
    PowerLaw,
    SkyModel,
    Source,
)
from .response import GaussianMixturePSF, Response
from .simulate import lhaaso_dataset, simulate_dataset, simulate_events

__version__ = "0.1.0"

__all__ = [
    "Dataset",
    "Fit",
    "FitError",
    "FitResult",
    "fit",
    "profile",
    "significance_from_ts",
    "ts_of_source",
    "upper_limit",
    "hawc_dataset",
    "Likelihood",
    "HealpixMaps",
    "HealpixROI",
    "bin_events",
    "BackgroundNorm",
    "DiskSpatialModel",
    "ExpCutoffPowerLaw",
    "GaussianSpatialModel",
    "LogParabola",
    "PointSpatialModel",
    "PowerLaw",
    "SkyModel",
    "Source",
    "GaussianMixturePSF",
    "Response",
    "lhaaso_dataset",
    "simulate_dataset",
    "simulate_events",
]

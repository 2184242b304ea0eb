"""skyfit: HEALPix counts maps, JAX joint Poisson likelihoods and iminuit fits for wide-field
gamma-ray arrays (LHAASO WCDA/KM2A, HAWC).

Quick tour::

    from skyfit import hawc_dataset, Models, Source, PointSpatialModel, LogParabola, fit
    ds = hawc_dataset("NN")
    model = Models([Source("crab", PointSpatialModel.create(83.633, 22.0145), LogParabola.create(2.3e-13))])
    result = fit(model, ds)
"""

import importlib

# names of the public API and the module each lives in: imported on first use (PEP 562), so that
# `import skyfit` and `skyfit --help` do not pay for JAX, healpy and astropy up front
_LAZY = {
    "compilation_cache": "_precision",
    "DataNotFoundError": "_data",
    "data_dir": "_data",
    "Dataset": "dataset",
    "Fit": "fit",
    "FitError": "fit",
    "FitResult": "fit",
    "fit": "fit",
    "profile": "fit",
    "significance_from_ts": "fit",
    "ts_of_source": "fit",
    "upper_limit": "fit",
    "FluxPoints": "fluxpoints",
    "flux_points": "fluxpoints",
    "light_curve": "lightcurve",
    "hawc_dataset": "hawc",
    "Likelihood": "likelihood",
    "HealpixMaps": "maps",
    "HealpixROI": "maps",
    "bin_events": "maps",
    "BackgroundNorm": "models",
    "ConstantSpatialModel": "models",
    "DiskSpatialModel": "models",
    "ExpCutoffPowerLaw": "models",
    "GaussianSpatialModel": "models",
    "LogParabola": "models",
    "PointSpatialModel": "models",
    "PowerLaw": "models",
    "PowerLawNorm": "models",
    "TemplateSpatialModel": "models",
    "Models": "models",
    "SkyModel": "models",  # deprecated alias of Models (FutureWarning)
    "Source": "models",
    "GaussianMixturePSF": "response",
    "Response": "response",
    "lhaaso_dataset": "simulate",
    "simulate_dataset": "simulate",
    "simulate_events": "simulate",
}


_DEPRECATED = {"SkyModel"}  # old names that warn on every use


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'skyfit' has no attribute {name!r}")
    if name == "SkyModel":
        return importlib.import_module(".models.sky", __name__).deprecated_sky_model(stacklevel=3)
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    if name not in _DEPRECATED:
        globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__():
    return sorted((set(globals()) | set(_LAZY)) - _DEPRECATED)


from ._version import __version__ as __version__  # noqa: E402

__all__ = [
    "compilation_cache",
    "DataNotFoundError",
    "data_dir",
    "Dataset",
    "Fit",
    "FitError",
    "FitResult",
    "fit",
    "profile",
    "significance_from_ts",
    "ts_of_source",
    "upper_limit",
    "FluxPoints",
    "flux_points",
    "light_curve",
    "hawc_dataset",
    "Likelihood",
    "HealpixMaps",
    "HealpixROI",
    "bin_events",
    "BackgroundNorm",
    "ConstantSpatialModel",
    "DiskSpatialModel",
    "ExpCutoffPowerLaw",
    "GaussianSpatialModel",
    "LogParabola",
    "PointSpatialModel",
    "PowerLaw",
    "PowerLawNorm",
    "TemplateSpatialModel",
    "Models",
    "Source",
    "GaussianMixturePSF",
    "Response",
    "lhaaso_dataset",
    "simulate_dataset",
    "simulate_events",
]

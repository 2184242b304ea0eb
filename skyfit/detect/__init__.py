"""Source detection: TS maps and peak finding (classic), the neural-network prior
(:mod:`skyfit.detect.prior`) that proposes all components of a ROI at once, with uncertainties, and the
pieces of a ROI's detection that the catalogue builds on (:class:`DetectionConfig`, the components and
their fitter in :mod:`skyfit.detect.components`, the network's stage in :mod:`skyfit.detect.nn_stage`)."""

from .._precision import X64  # noqa: F401  (JAX in float64 before this package's code runs)
from ._skies import counts_per_amplitude, draw_sky, psf68, sky_model
from .config import DetectionConfig
from .tsmap import DEFAULT_INDEX, REFERENCE_TEV, TSMap, ts_map

__all__ = [
    "TSMap",
    "ts_map",
    "DEFAULT_INDEX",
    "REFERENCE_TEV",
    "DetectionConfig",
    "sky_model",
    "draw_sky",
    "psf68",
    "counts_per_amplitude",
]

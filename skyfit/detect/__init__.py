"""Source detection: TS maps and peak finding (classic), and the neural-network prior
(:mod:`skyfit.detect.prior`) that proposes all components of a ROI at once, with uncertainties."""

from .._precision import X64  # noqa: F401  (JAX in float64 before this package's code runs)
from .tsmap import DEFAULT_INDEX, TSMap, ts_map

__all__ = ["TSMap", "ts_map", "DEFAULT_INDEX"]

"""Instrument responses: containers, readers of standard IRFs and a parametric LHAASO-like instrument.

* :func:`dl3_response`: GADF DL3 full-enclosure IRFs (effective area, dispersion, PSF against zenith) of any
  drift-scan array, exposure integrated over the transits;
* ``skyfit.response.hawc.hawc_response``: HAWC's public pass-4 map IRFs;
* ``skyfit.io.read_hal_response``: a HAWC/LHAASO detector response in 3ML's HAL layout (ROOT or HDF5);
* ``skyfit.response.lhaaso``: the parametric WCDA and KM2A instruments;
* :mod:`skyfit.response.fermi`: Fermi-LAT's PSF table (gtpsf) and exposure cube (gtexpcube2).
"""

from ._types import GaussianMixturePSF, Response, SkyGrid, TabulatedPSF, log_simpson_bin_weights, log_simpson_nodes
from .dl3 import DL3FileError, dl3_response, read_dl3_irfs

__all__ = [
    "GaussianMixturePSF",
    "TabulatedPSF",
    "Response",
    "SkyGrid",
    "log_simpson_nodes",
    "log_simpson_bin_weights",
    "dl3_response",
    "read_dl3_irfs",
    "DL3FileError",
]

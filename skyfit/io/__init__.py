"""Files at every stage: skyfit dataset and response files (FITS), and 3ML HAL maptrees and responses.

Which reader to use:

* result maps (TS, significance, excess, residual) as FITS: :func:`write_maps`, :func:`read_maps`
  (:mod:`skyfit.io.skymaps`);
* a file ``skyfit bin`` or :meth:`skyfit.Dataset.write` made: :func:`read_dataset` (``Dataset.read``);
* a response alone (``Response.write``): :func:`read_response`;
* a HAWC/LHAASO maptree and detector response in 3ML's HAL layout (ROOT or HDF5):
  :func:`maptree_dataset`, or :func:`read_maptree` and :func:`read_hal_response` separately;
* Fermi-LAT event lists and map cubes (counts, model background, diffuse templates): :mod:`skyfit.io.fermi`
  (the PSF table and exposure cube: :mod:`skyfit.response.fermi`).

:func:`file_format` tells which of these a file is, from its content.
"""

from ._files import DatasetFileError, file_format, read_dataset, read_response, write_dataset, write_response
from .hal import (
    HALFormatError,
    HALPSFFallbackWarning,
    hal_response_root_to_hdf5,
    hal_response_table,
    maptree_dataset,
    read_hal_response,
    read_maptree,
    write_maptree,
)
from .skymaps import read_maps, write_maps

__all__ = [
    "read_maps",
    "write_maps",
    "DatasetFileError",
    "file_format",
    "read_dataset",
    "read_response",
    "write_dataset",
    "write_response",
    "HALFormatError",
    "HALPSFFallbackWarning",
    "hal_response_root_to_hdf5",
    "hal_response_table",
    "maptree_dataset",
    "read_hal_response",
    "read_maptree",
    "write_maptree",
]

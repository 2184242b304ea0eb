"""Dataset and response files: one FITS file that gammapy, healpy and astropy open.

The layout is described in :mod:`skyfit.response._files`, which also holds the parts both kinds of
file share; the response's HDUs are written and read in :mod:`skyfit.response._types`
(``Response.write``/``Response.read``) and the dataset's in :mod:`skyfit.dataset`
(``Dataset.write``/``Dataset.read``), so that neither layer imports :mod:`skyfit.io`. This module
gathers the readers and writers under their public names.
"""

from __future__ import annotations

from ..dataset import read_dataset, write_dataset
from ..response._files import DatasetFileError, file_format
from ..response._types import read_response, write_response

__all__ = ["DatasetFileError", "write_dataset", "read_dataset", "write_response", "read_response", "file_format"]

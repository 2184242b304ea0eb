"""Read and write the files of 3ML's HAL plugin (``hawc_hal``): maptrees and detector responses.

HAL (the HAWC Accelerated Likelihood plugin of 3ML, https://github.com/threeML/hawc_hal, BSD-3-Clause)
uses two files per analysis, each in a ROOT and an HDF5 form:

**Maptree** (observed counts and expected background per analysis bin, HEALPix RING, equatorial).

* ROOT: a ``BinInfo`` tree with one entry per analysis bin (branch ``name``, or ``id`` in old files,
  and ``totalDuration`` in hours: one transit is 24 h) and, per bin, a directory ``nHit<name>`` (or
  ``nHit0<name>`` for one-digit names) holding two trees ``data`` and ``bkg`` with one ``count``
  entry per pixel of the full sky; ``nside`` follows from the number of entries.
* HDF5: a pandas ``HDFStore`` (``format="fixed"``) with the data frames ``/analysis_bins`` (index:
  bin name x RING pixel id; columns ``observation``, ``background``), ``/analysis_bins_meta``
  (index: bin name; columns ``scheme``, ``n_transits``, ``nside``) and an empty series ``/ROI``
  whose ``metadata`` attribute holds the ROI as a dict (``{}`` for none).

**Response** (simulated detector response per declination band and analysis bin).

* ROOT: ``LogLogSpectrum`` (the simulated spectrum as a ``TF1`` of ``x = log10(E/TeV)`` giving
  ``log10(dN/dE / (TeV^-1 cm^-2 s^-1))``), ``DecBins`` (``simdec``, ``lowerEdge``, ``upperEdge``),
  ``AnalysisBins`` (``name`` or ``id``) and, per band ``dec_DD`` and bin ``nh_NN``, the histograms
  ``EnSig_dec<d>_nh<b>`` / ``EnBg_dec<d>_nh<b>`` (simulated signal / background events per
  transit, in bins of ``log10(E/TeV)``), ``PSF_dec<d>_nh<b>`` (angular distribution, deg) and its
  fit ``PSF_dec<d>_nh<b>_fit`` (a ``TF1`` of the angular distance ``r`` giving ``dN/dr``).
* HDF5: the data frames ``/dec_bins_definition``, ``/effective_area`` (per band and bin:
  ``sim_energy_bin_low``, ``sim_energy_bin_centers``, ``sim_energy_bin_hi``,
  ``sim_differential_photon_fluxes``, ``sim_signal_events_per_bin``) and ``/psf`` (``xs``, ``ys``:
  the PSF fit sampled at 500 log-spaced radii from 1e-3 to 15 deg; no rows for an unusable fit).

HAL's expected counts in an analysis bin for a point source of spectrum ``f`` are
``n_transits * sum_k S_k * f(E_k) / f_sim(E_k)``, with ``S_k`` the simulated signal events in true
energy bin ``k``, ``E_k`` the bin's logarithmic centre and ``f_sim`` the simulated spectrum there
(point evaluation, no integration across the bin: HAL's default). :func:`read_hal_response` puts
exactly that into skyfit's :class:`~skyfit.response.Response`: ``energy_true_tev = E_k`` and
``counts_matrix[d, b, k] = n_transits * S_k / f_sim(E_k)``, tabulated at the band centres (skyfit
interpolates linearly between them, as HAL does with ``interpolate=True``).

The HDF5 files are read and written with ``h5py`` alone (pandas and PyTables are not needed): the
writer lays out the same groups, data sets and attributes that pandas' ``HDFStore.put(...,
format="fixed")`` writes, so that pandas (and therefore ``hawc_hal``) reads them back. HAL itself
compresses with ``blosc:zstd``; reading such files needs the ``hdf5plugin`` package (imported when
installed); skyfit writes with gzip + shuffle, which every HDF5 reader decodes.

The code lives in private modules next to this one: ``_hal_common`` (errors, file detection, opening),
``_hal_tf1`` (ROOT TF1 evaluation), ``_hal_pandas`` (the pandas HDFStore layout with h5py),
``_hal_response_tables`` (reading a response's tables and PSFs), ``_hal_response`` (the public response
functions) and ``_hal_maptree`` (maptrees).
"""

from __future__ import annotations

from ._hal_common import HDF5_SUFFIXES, ROOT_SUFFIXES, HALFormatError, HALPSFFallbackWarning  # noqa: F401 - the file suffixes, importable here as before
from ._hal_maptree import maptree_dataset, read_maptree, write_maptree
from ._hal_response import hal_response_root_to_hdf5, hal_response_table, read_hal_response

__all__ = [
    "HALFormatError",
    "HALPSFFallbackWarning",
    "read_hal_response",
    "hal_response_root_to_hdf5",
    "hal_response_table",
    "read_maptree",
    "write_maptree",
    "maptree_dataset",
]

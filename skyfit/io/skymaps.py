"""Result maps as FITS files: TS, significance, excess and residual maps in gammapy's ``HpxNDMap`` layout.

One file holds several maps, one HDU each (``TS``, ``SQRT_TS``, ``EXCESS``, ...), each with its axis HDU
(``<NAME>_BANDS``): the analysis bins (a reconstructed-energy axis in TeV, or a labelled
``analysis_bin`` axis for nHit/fHit bins), or one plane named ``all`` for maps summed over the bins.
``gammapy.maps.Map.read(path, hdu="TS")`` opens each; healpy reads the pixel columns; :func:`read_maps`
reads them all back. Partial-sky maps: the pixels of the ROI's enclosing disc (``HPX_REG``), zeros
outside the ROI.

Which maps (:func:`skyfit.detect.result_maps.fit_maps` and :func:`~skyfit.detect.result_maps.data_maps`
compute them):

=========================== ========= ============================================================================
name                        planes    meaning
=========================== ========= ============================================================================
``COUNTS``                  per bin   observed counts (masked pixels 0)
``NPRED``                   per bin   the best-fit model's predicted counts
``BACKGROUND``              per bin   the background alone (the model without its sources, or the dataset's)
``EXCESS``                  per bin   counts - background
``RESIDUAL``                per bin   counts - npred
``TS``                      all       TS of a point source (1LHAASO's power law) over the background
``SQRT_TS``                 all       sqrt(TS): the significance of that point source
``RESIDUAL_TS``             all       TS of a point source over the best-fit model (what the model misses)
``SIGNIFICANCE``            all       (N - B) / sqrt(B), counts and background summed in discs of ``radius``
``RESIDUAL_SIGNIFICANCE``   all       (N - npred) / sqrt(npred), summed in discs of ``radius``
=========================== ========= ============================================================================
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from astropy.io import fits

__all__ = ["write_maps", "read_maps"]


def write_maps(path, maps: dict, roi, bin_names=None, energy_edges=None, meta: dict | None = None) -> Path:
    """Write ``maps`` (``{name: (n_bins, n_pix) or (n_pix,) array}`` on ``roi``'s pixels) to one FITS file.

    Per-bin maps get the analysis-bin axis (``bin_names``; a TeV energy axis when ``energy_edges``
    (n_bins, 2) are contiguous reconstructed-energy bands), 1-D maps one plane named ``all``. ``meta`` goes
    to the primary header as JSON (``SKYFIT``)."""
    from ..dataset import _enclosing_disc, _energy_axis, _map_hdus

    path = Path(path)
    region, pix = _enclosing_disc(roi)
    primary = fits.PrimaryHDU()
    primary.header["CREATOR"] = "skyfit"
    primary.header["CONTENT"] = "skyfit-maps"
    for i, (k, v) in enumerate((meta or {}).items()):
        primary.header[f"SKYFIT{i}"] = json.dumps({k: v}, default=str)[:68]
    hdus = [primary]
    edges = None if bin_names is None else _energy_axis(energy_edges, bin_names)
    for name, values in maps.items():
        values = np.asarray(values, float)
        if values.ndim == 1:
            values, names, e = values[None, :], ("all",), None
        else:
            if bin_names is None or len(bin_names) != values.shape[0]:
                raise ValueError(f"map {name}: {values.shape[0]} planes need as many bin names, got {bin_names}")
            names, e = tuple(bin_names), edges
        if values.shape[1] != roi.pixels.size:
            raise ValueError(f"map {name}: {values.shape[1]} pixels, the ROI has {roi.pixels.size}")
        hdus += _map_hdus(name.upper(), np.nan_to_num(values), roi, region, pix, names, e, "")
    tmp = path.with_name(path.name + ".part")
    fits.HDUList(hdus).writeto(tmp, overwrite=True)
    tmp.replace(path)
    return path


def read_maps(path) -> dict:
    """``{name: (n_planes, n_pix_of_the_file's_disc) array}`` and ``"_pixels"``: the maps :func:`write_maps`
    wrote (pixels of the enclosing disc, in the file's order)."""
    out = {}
    with fits.open(path) as hdul:
        for hdu in hdul[1:]:
            if hdu.name.endswith("_BANDS") or "PIX" not in getattr(hdu, "columns", fits.ColDefs([])).names:
                continue
            cols = [c for c in hdu.columns.names if c.startswith("CHANNEL")]
            out[hdu.name] = np.stack([np.asarray(hdu.data[c], float) for c in cols])
            out["_pixels"] = np.asarray(hdu.data["PIX"], np.int64)
    return out

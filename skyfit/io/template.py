"""A map-cube template (e.g. the LAT's Galactic diffuse model) folded with a dataset's response.

For each pair of an analysis bin ``b`` and a true-energy node ``t`` of the response, on the template's own
grid (its WCS pixels ``x``):

    W_bt(x) = I(E_t, x) * Omega(x) * R_bt(x)

the intensity interpolated log-log in energy to ``E_t`` (cm-2 s-1 TeV-1 sr-1), the pixel's solid angle,
and the response's exposure x integration weight at the pixel's position (:meth:`Response.node_weights`:
declination or sky-grid nodes). Each ``W_bt`` is convolved with bin ``b``'s PSF (its Gaussians as
Gaussian filters on the grid, taken as square pixels of the projection-plane scale: for CAR within
``1 - cos b`` of the true width, 0.4 % at ``|b| < 5`` deg; beyond the map's edge the nearest pixel is
repeated) and integrated over each HEALPix pixel of the dataset
(:func:`skyfit.reproject.wcs_to_healpix`, ``how="counts"``: nested sub-pixels, each in exactly one
template pixel, so nothing is counted twice at pixel edges). The predicted counts of the template source
are then ``sum_t f(E_t) C_bt`` with ``f`` its spectral factor (``PowerLawNorm``: ``norm (E/E0)^-tilt``).

A region reaching beyond the template, a template whose unit is not an intensity, or whose energies do not
cover the response's, raise :class:`~skyfit.response.fermi.FermiFileError` naming the file.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..response.fermi import FermiFileError, interp_planes_loglog
from .fermi import read_map_cube

__all__ = ["TemplateCounts", "template_counts"]

INTENSITY = "cm-2 s-1 TeV-1 sr-1"


class TemplateCounts(NamedTuple):
    """Predicted counts of a template per (bin, true-node) pair, for a spectral factor of 1."""

    counts: np.ndarray  # (n_pairs, n_pix)
    bin_index: np.ndarray  # (n_pairs,)
    node_index: np.ndarray  # (n_pairs,)


def _intensity_at(cube, energy_tev, path) -> np.ndarray:
    """The cube's intensity (cm-2 s-1 TeV-1 sr-1) at true energies, log-log between its planes."""
    import astropy.units as u

    try:
        scale = (1.0 * cube.unit).to_value(u.Unit(INTENSITY))
    except u.UnitConversionError:
        raise FermiFileError(f"{path}: the template's unit {cube.unit} is not an intensity ({INTENSITY}); give a "
                             "map cube of intensity per energy and solid angle") from None  # fmt: skip
    if cube.energy_tev is None:
        raise FermiFileError(f"{path}: the template has energy bins (EBOUNDS), not node energies (ENERGIES); an "
                             "intensity template needs its energies")  # fmt: skip
    nodes = np.log(cube.energy_tev)
    e = np.log(np.asarray(energy_tev, dtype=float))
    if e.min() < nodes[0] - 1e-9 or e.max() > nodes[-1] + 1e-9:
        raise FermiFileError(f"{path}: the template covers {cube.energy_tev[0]:.4g}-{cube.energy_tev[-1]:.4g} TeV, the "
                             f"response needs {np.exp(e.min()):.4g}-{np.exp(e.max()):.4g} TeV")  # fmt: skip
    return interp_planes_loglog(cube.data, cube.energy_tev, energy_tev) * scale


def template_counts(spatial, dataset, oversample: int = 8) -> TemplateCounts:
    """The template ``spatial`` (a :class:`~skyfit.models.TemplateSpatialModel`) folded with ``dataset``'s
    exposure and PSF and integrated over its pixels (module docstring)."""
    from astropy.coordinates import SkyCoord
    from astropy.wcs.utils import proj_plane_pixel_scales
    from scipy.ndimage import gaussian_filter

    from ..reproject import wcs_pixel_solid_angle, wcs_to_healpix

    path = spatial.filename
    cube = read_map_cube(path, unit=spatial.unit, what="template map cube")
    r = dataset.response
    ny, nx = cube.data.shape[1:]
    yy, xx = np.mgrid[0:ny, 0:nx]
    lon, lat = cube.wcs.pixel_to_world_values(xx.ravel(), yy.ravel())
    icrs = SkyCoord(lon, lat, unit="deg", frame=cube.frame).icrs
    weights = r.node_weights(icrs.ra.deg, icrs.dec.deg)  # (n_wcs, n_nodes)
    n_nodes, n_bins, n_true = r.counts_matrix.shape
    resp = (weights @ r.counts_matrix.reshape(n_nodes, -1)).reshape(ny, nx, n_bins, n_true)
    pairs = np.argwhere(np.any(resp > 0, axis=(0, 1)))  # (n_pairs, 2): bin, node
    intensity = _intensity_at(cube, r.energy_true_tev, path)  # (n_true, ny, nx)
    omega = wcs_pixel_solid_angle(cube.wcs, (ny, nx))
    scale_deg = proj_plane_pixel_scales(cube.wcs)  # (x, y)
    images = np.empty((len(pairs), ny, nx))
    for k, (b, t) in enumerate(pairs):
        w = intensity[t] * omega * resp[:, :, b, t]
        conv = np.zeros_like(w)
        for weight, sigma in zip(r.psf.weights[b], r.psf.sigma_deg[b], strict=True):
            conv += weight * gaussian_filter(w, (sigma / scale_deg[1], sigma / scale_deg[0]), mode="nearest")
        images[k] = conv
    counts = wcs_to_healpix(images, cube.wcs, cube.frame, dataset.roi, how="counts", oversample=oversample,
                            name=f"{path} (template map cube)")  # fmt: skip
    return TemplateCounts(counts, pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64))

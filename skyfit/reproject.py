"""Maps on a celestial WCS (CAR, TAN, ... cubes of gammapy, the Fermi Science Tools, DS9) onto HEALPix pixels.

Each HEALPix pixel of the region is cut into its ``4**k`` nested sub-pixels (``oversample = 2**k`` per side);
each sub-pixel takes the value of the WCS pixel that holds its centre, and the HEALPix pixel is the average
(``how="mean"``, for intensities: per steradian, per cm2 s, ...) or the integral of the density
(``how="counts"``, for counts or model counts per WCS pixel: each WCS pixel's counts spread over its solid
angle, then summed over the sub-pixels). Every sub-pixel belongs to exactly one HEALPix pixel and lands in
exactly one WCS pixel, so nothing is counted twice at pixel edges, and a region covered by whole WCS pixels
keeps its total up to the sub-pixels' sampling of the WCS pixels' boundaries (:func:`wcs_pixel_solid_angle`
for the areas). A HEALPix pixel that reaches beyond the map is refused, not filled with zeros.
"""

from __future__ import annotations

import healpy as hp
import numpy as np

from .maps import HealpixROI, MapFormatError

__all__ = ["wcs_to_healpix", "wcs_pixel_solid_angle", "subpixel_centers"]


def subpixel_centers(roi: HealpixROI, oversample: int) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) in deg of the nested sub-pixels of each ROI pixel, shape (n_pix, oversample**2)."""
    if oversample < 1 or oversample & (oversample - 1):
        raise MapFormatError(f"oversample must be a power of 2, got {oversample}")
    nested = roi.pixels if roi.nest else hp.ring2nest(roi.nside, roi.pixels)
    n_sub = oversample**2
    children = nested[:, None] * n_sub + np.arange(n_sub)[None, :]
    ra, dec = hp.pix2ang(roi.nside * oversample, children.ravel(), nest=True, lonlat=True)
    return ra.reshape(children.shape), dec.reshape(children.shape)


def wcs_pixel_solid_angle(wcs, shape) -> np.ndarray:
    """Solid angle (sr) of each pixel of a celestial WCS image of ``shape`` (ny, nx): two spherical
    triangles per pixel (:func:`skyfit.response.hawc.car_pixel_solid_angle_sr`, which holds for any
    celestial WCS; for CAR, whose latitude edges are small circles, within 1e-6 at 0.05 deg pixels)."""
    from .response.hawc import car_pixel_solid_angle_sr

    return car_pixel_solid_angle_sr(wcs, shape)


def wcs_to_healpix(data, wcs, frame: str, roi: HealpixROI, how: str = "mean", oversample: int = 8,
                   name: str = "map") -> np.ndarray:  # fmt: skip
    """Values of WCS image planes ``data`` (..., ny, nx) on the ROI's HEALPix pixels, shape (..., n_pix).

    ``frame`` is the WCS's (``"galactic"`` or ``"icrs"``); ``how`` is ``"mean"`` (intensities: the average
    over each HEALPix pixel) or ``"counts"`` (counts per WCS pixel: the expected counts in each HEALPix
    pixel, the WCS pixels' densities integrated over it). Raises :class:`~skyfit.maps.MapFormatError`
    naming ``name`` when ROI pixels reach beyond the map.
    """
    from astropy.coordinates import SkyCoord

    if how not in ("mean", "counts"):
        raise ValueError(f"how must be 'mean' or 'counts', got {how!r}")
    if frame not in ("galactic", "icrs"):
        raise MapFormatError(f"{name}: frame {frame!r}; give 'galactic' or 'icrs'")
    data = np.asarray(data, dtype=float)
    ny, nx = data.shape[-2:]
    ra, dec = subpixel_centers(roi, oversample)
    if frame == "galactic":
        g = SkyCoord(ra.ravel(), dec.ravel(), unit="deg", frame="icrs").galactic
        lon, lat = g.l.deg, g.b.deg
    else:
        lon, lat = ra.ravel(), dec.ravel()
    x, y = wcs.world_to_pixel_values(lon, lat)
    ix, iy = np.floor(np.asarray(x) + 0.5).astype(int), np.floor(np.asarray(y) + 0.5).astype(int)
    outside = ~((ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny))
    if outside.any():
        bad = np.unique(np.nonzero(outside.reshape(ra.shape))[0])
        p = bad[0]
        raise MapFormatError(
            f"{name}: {len(bad)} of the region's {roi.n_pix} HEALPix pixels reach beyond the map (first: pixel "
            f"{roi.pixels[p]} at ra {ra[p].mean():.4f}, dec {dec[p].mean():.4f} deg); give a map that covers the "
            "region, or a smaller region"
        )
    flat = data.reshape(-1, ny, nx)
    values = flat[:, iy, ix]  # (n_planes, n_pix * n_sub)
    if how == "counts":
        omega = wcs_pixel_solid_angle(wcs, (ny, nx))[iy, ix]
        sub_area = hp.nside2pixarea(roi.nside * oversample)
        values = values / omega * sub_area
        out = values.reshape(len(flat), *ra.shape).sum(axis=-1)
    else:
        out = values.reshape(len(flat), *ra.shape).mean(axis=-1)
    return out.reshape(*data.shape[:-2], roi.n_pix)

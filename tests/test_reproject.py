"""WCS maps onto HEALPix: intensities averaged, counts integrated, totals kept, nothing counted twice, a
region beyond the map refused."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest
from astropy.wcs import WCS

from skyfit.maps import HealpixROI, MapFormatError
from skyfit.reproject import wcs_pixel_solid_angle, wcs_to_healpix


def _car(nx=200, ny=100, cdelt=0.05, frame="galactic"):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["GLON-CAR", "GLAT-CAR"] if frame == "galactic" else ["RA---CAR", "DEC--CAR"]
    wcs.wcs.crval = [0.0, 0.0]
    wcs.wcs.cdelt = [-cdelt, cdelt]
    wcs.wcs.crpix = [(nx + 1) / 2, (ny + 1) / 2]
    return wcs


def _lonlat(wcs, shape):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    lon, lat = wcs.pixel_to_world_values(xx, yy)
    return (lon + 180) % 360 - 180, lat


def test_car_pixel_solid_angles_are_exact_and_tile_the_sphere():
    wcs = _car(nx=360, ny=180, cdelt=1.0)
    omega = wcs_pixel_solid_angle(wcs, (180, 360))
    assert omega.sum() == pytest.approx(4 * np.pi, rel=1e-12)
    wcs = _car()
    omega = wcs_pixel_solid_angle(wcs, (100, 200))
    _, lat = _lonlat(wcs, (100, 200))
    exact = np.radians(0.05) * (np.sin(np.radians(lat + 0.025)) - np.sin(np.radians(lat - 0.025)))
    np.testing.assert_allclose(omega, exact, rtol=1e-6)


def test_a_uniform_density_gives_density_times_the_healpix_pixel_area():
    wcs = _car()
    omega = wcs_pixel_solid_angle(wcs, (100, 200))
    counts = 3.0e4 * omega  # expected counts per WCS pixel of a uniform 3e4 sr-1
    roi = HealpixROI.from_galactic_box((-3, 3), (-1.5, 1.5), nside=512)
    hpx = wcs_to_healpix(counts[None], wcs, "galactic", roi, how="counts")
    np.testing.assert_allclose(hpx[0], 3.0e4 * hp.nside2pixarea(512), rtol=1e-12)
    mean = wcs_to_healpix(np.full((2, 100, 200), 7.0), wcs, "galactic", roi, how="mean")
    np.testing.assert_array_equal(mean, 7.0)


@pytest.mark.parametrize("nest", [True, False])
def test_counts_keep_their_total_and_intensities_their_mean(nest):
    """A smooth sky: the HEALPix total over a box equals the WCS total over the same box to 1e-3 (only the
    box's boundary, pixel centres against pixel edges, differs), in either ordering."""
    wcs = _car()
    lon, lat = _lonlat(wcs, (100, 200))
    intensity = 1e4 * (1.0 + 0.3 * np.cos(np.radians(20 * lon)) + 0.5 * np.exp(-0.5 * (lat / 0.8) ** 2))
    counts = intensity * wcs_pixel_solid_angle(wcs, (100, 200))
    roi = HealpixROI.from_galactic_box((-4, 4), (-2, 2), nside=1024, nest=nest)
    hpx = wcs_to_healpix(counts, wcs, "galactic", roi, how="counts")
    inside = (np.abs(lon) < 4) & (np.abs(lat) < 2)
    assert hpx.sum() == pytest.approx(counts[inside].sum(), rel=1e-3)
    mean = wcs_to_healpix(intensity, wcs, "galactic", roi, how="mean")
    assert mean.mean() == pytest.approx(intensity[inside].mean(), rel=2e-3)


def test_an_equatorial_map_and_a_region_beyond_the_map_refused():
    wcs = _car(frame="icrs")
    wcs.wcs.crval = [83.6, 22.0]
    roi = HealpixROI.from_disc((83.6, 22.0), 1.0, nside=256)
    assert wcs_to_healpix(np.ones((100, 200)), wcs, "icrs", roi).shape == (roi.n_pix,)
    with pytest.raises(MapFormatError, match="reach beyond the map"):
        wcs_to_healpix(np.ones((100, 200)), wcs, "icrs", HealpixROI.from_disc((83.6, 22.0), 4.0, nside=256))


@pytest.mark.data
def test_the_fermi_background_cube_keeps_its_total_on_healpix(fermi_gc):
    from skyfit.io.fermi import read_counts_cube

    cube = read_counts_cube(fermi_gc / "fermi-3fhl-gc-background-cube.fits.gz", what="model counts cube")
    roi = HealpixROI.from_galactic_box((-9, 9), (-4, 4), nside=512)
    hpx = wcs_to_healpix(cube.data, cube.wcs, cube.frame, roi, how="counts")
    np.testing.assert_allclose(hpx.sum(axis=1), cube.data[:, 20:180, 20:380].sum(axis=(1, 2)), rtol=1e-3)

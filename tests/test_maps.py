"""HEALPix ROIs, event binning and the map file format (skyfit.maps)."""

from __future__ import annotations

import astropy.units as u
import healpy as hp
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits

from skyfit.maps import HealpixMaps, HealpixROI, bin_events, unit_vectors


def separation_deg(nside, pixels, nest, center):
    """Angular distance (deg) of pixel centres from ``center`` (ra, dec), via astropy (not skyfit)."""
    theta, phi = hp.pix2ang(nside, pixels, nest=nest)
    coords = SkyCoord(np.degrees(phi), 90 - np.degrees(theta), unit="deg", frame="icrs")
    return coords.separation(SkyCoord(*center, unit="deg", frame="icrs")).deg


# --- ROIs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "center, radius, nside",
    [((83.6, 22.0), 2.0, 1024), ((10.0, 80.0), 3.0, 512), ((200.0, -45.0), 1.0, 2048), ((83.6, 22.0), 2.0, 128)],
)
def test_disc_pixel_count_matches_area(center, radius, nside):
    roi = HealpixROI.from_disc(center, radius, nside)
    area_sr = 2 * np.pi * (1 - np.cos(np.radians(radius)))
    expected = area_sr / hp.nside2pixarea(nside)
    # pixels are kept by their centre: the count scatters around the disc area by a fraction of the
    # pixels along the edge (perimeter / pixel size)
    edge_pixels = 2 * np.pi * np.radians(radius) / np.sqrt(hp.nside2pixarea(nside))
    assert abs(roi.n_pix - expected) < 0.5 * edge_pixels
    assert roi.pixel_area_sr == pytest.approx(4 * np.pi / hp.nside2npix(nside), rel=1e-12)
    assert roi.meta["radius_deg"] == radius and roi.center() == center


@pytest.mark.parametrize("nest", [True, False])
def test_disc_holds_exactly_the_pixels_with_center_inside(nest):
    center, radius, nside = (83.6, 22.0), 2.0, 256
    roi = HealpixROI.from_disc(center, radius, nside, nest=nest)
    all_pix = np.arange(hp.nside2npix(nside))
    sep = separation_deg(nside, all_pix, nest, center)
    np.testing.assert_array_equal(roi.pixels, all_pix[sep <= radius])
    assert roi.nest is nest


def test_disc_accepts_skycoord_and_galactic_input():
    c = SkyCoord(83.6, 22.0, unit="deg", frame="icrs")
    a = HealpixROI.from_disc(c.galactic, 2.0, 256)
    b = HealpixROI.from_disc((83.6, 22.0), 2.0, 256)
    np.testing.assert_array_equal(a.pixels, b.pixels)
    assert a.center() == pytest.approx((83.6, 22.0), abs=1e-9)


def test_nest_and_ring_describe_the_same_pixels():
    nside = 512
    ring = HealpixROI.from_disc((150.0, -30.0), 2.5, nside, nest=False)
    nest = HealpixROI.from_disc((150.0, -30.0), 2.5, nside, nest=True)
    assert ring.n_pix == nest.n_pix
    np.testing.assert_array_equal(np.sort(hp.ring2nest(nside, ring.pixels)), nest.pixels)
    # same pixel centres, whatever the ordering
    ra_r, dec_r = ring.radec()
    ra_n, dec_n = nest.radec()
    key_r = np.lexsort((np.round(ra_r, 9), np.round(dec_r, 9)))
    key_n = np.lexsort((np.round(ra_n, 9), np.round(dec_n, 9)))
    np.testing.assert_allclose(ra_r[key_r], ra_n[key_n], atol=1e-9)
    np.testing.assert_allclose(dec_r[key_r], dec_n[key_n], atol=1e-9)
    # pixel unit vectors agree with the (ra, dec) of the centres
    np.testing.assert_allclose(nest.unit_vectors(), unit_vectors(ra_n, dec_n), atol=1e-12)


@pytest.mark.parametrize("nest", [True, False])
def test_contains_and_index_of(nest):
    roi = HealpixROI.from_disc((83.6, 22.0), 2.0, 128, nest=nest)
    ra, dec = roi.radec()
    assert roi.contains(ra, dec).all()
    assert not roi.contains(np.array([83.6 + 10, 0.0]), np.array([22.0, -60.0])).any()
    np.testing.assert_array_equal(roi.index_of(roi.pixels[::-1]), np.arange(roi.n_pix)[::-1])
    outside = np.setdiff1d(np.arange(hp.nside2npix(128)), roi.pixels)[:50]
    assert np.all(roi.index_of(outside) == -1)


@pytest.mark.parametrize(
    "center, radius, nside, nest",
    [
        ((83.6, 22.0), 2.0, 128, True),
        ((83.6, 22.0), 2.0, 1024, True),
        ((10.0, 80.0), 3.0, 512, False),
        ((200.0, -45.0), 1.0, 2048, True),
        ((83.6, 22.0), 5.0, 256, True),
    ],
)
def test_from_region_circle_vs_from_disc(center, radius, nside, nest):
    """A ``CircleSkyRegion`` is tested for containment on a local gnomonic (TAN) projection.

    Its projected radius equals the angular radius at the centre, while a point at angular distance
    theta projects to tan(theta): pixels with arctan(r) < theta <= r (r in rad) are left out. So the
    region's pixels are a subset of the disc's, and the disc's extra pixels lie in that thin annulus
    (1e-3 deg wide at r = 2 deg, 0.013 deg at 5 deg).
    """
    from regions import CircleSkyRegion

    disc = HealpixROI.from_disc(center, radius, nside, nest=nest)
    circle = CircleSkyRegion(SkyCoord(*center, unit="deg"), radius * u.deg)
    region = HealpixROI.from_region(circle, nside, nest)
    assert region.nside == nside and region.nest is nest
    assert np.all(np.isin(region.pixels, disc.pixels))
    extra = np.setdiff1d(disc.pixels, region.pixels)
    inner = np.degrees(np.arctan(np.radians(radius)))
    sep = separation_deg(nside, extra, nest, center)
    assert np.all((sep > inner - 1e-6) & (sep <= radius))
    # and the annulus is thin: at most a few percent of the edge pixels
    edge_pixels = 2 * np.pi * np.radians(radius) / np.sqrt(hp.nside2pixarea(nside))
    assert len(extra) <= max(2, 0.1 * edge_pixels)


# --- binning ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("nest", [True, False])
def test_bin_events_against_brute_force(nest):
    rng = np.random.default_rng(7)
    nside, n_bins = 64, 3
    roi = HealpixROI.from_disc((83.6, 22.0), 4.0, nside, nest=nest)
    n = 1000
    # events in a 12 x 12 deg box: about a third inside the 4 deg disc
    ra = 83.6 + rng.uniform(-6, 6, n)
    dec = 22.0 + rng.uniform(-6, 6, n)
    bin_index = rng.integers(-1, n_bins + 1, n)  # -1 and n_bins are outside the analysis bins
    counts, report = bin_events(ra, dec, bin_index, roi, n_bins)

    expected = np.zeros((n_bins, roi.n_pix))
    pixel_list = list(roi.pixels)
    n_outside_roi = n_outside_bins = 0
    for r, d, b in zip(ra, dec, bin_index, strict=True):
        theta, phi = np.radians(90.0 - d), np.radians(r)
        p = int(hp.ang2pix(nside, theta, phi, nest=nest))
        if p not in pixel_list:
            n_outside_roi += 1
        elif not 0 <= b < n_bins:
            n_outside_bins += 1
        else:
            expected[b, pixel_list.index(p)] += 1

    np.testing.assert_array_equal(counts, expected)
    assert counts.shape == (n_bins, roi.n_pix)
    assert report == {
        "n_events": n,
        "n_binned": int(expected.sum()),
        "n_outside_roi": n_outside_roi,
        "n_outside_bins": n_outside_bins,
    }
    # nothing dropped silently: every event is accounted for exactly once
    assert report["n_binned"] + report["n_outside_roi"] + report["n_outside_bins"] == n
    assert 200 < report["n_binned"] < 500 and report["n_outside_roi"] > 400 and report["n_outside_bins"] > 50


# --- file format -----------------------------------------------------------------------------------


def _random_maps(nest: bool, nside: int = 64, n_bins: int = 3) -> HealpixMaps:
    roi = HealpixROI.from_disc((83.6, 22.0), 3.0, nside, nest=nest)
    data = np.random.default_rng(3).normal(10.0, 3.0, size=(n_bins, roi.n_pix))
    return HealpixMaps(data, roi, tuple(f"fHit{i + 5}_E1-10" for i in range(n_bins)), unit="ct")


@pytest.mark.parametrize("nest", [True, False])
@pytest.mark.parametrize("suffix", [".fits", ".fits.gz"])
def test_write_read_round_trip(tmp_path, nest, suffix):
    maps = _random_maps(nest)
    path = tmp_path / f"map{suffix}"
    maps.write(path)
    back = HealpixMaps.read(path)
    assert back.roi.same_as(maps.roi)
    assert back.roi.nside == 64 and back.roi.nest is nest
    np.testing.assert_array_equal(back.data, maps.data)
    assert back.bin_names == maps.bin_names and back.unit == "ct"
    assert back.roi.meta == maps.roi.meta
    # the checks on nside and ordering pass when they agree with the file
    assert HealpixMaps.read(path, nside=64, nest=nest).roi.same_as(maps.roi)
    with pytest.raises(OSError, match="already exists"):
        maps.write(path)
    maps.write(path, overwrite=True)


@pytest.mark.parametrize("nest", [True, False])
def test_written_file_reads_in_gammapy(tmp_path, nest):
    from gammapy.maps import HpxNDMap, Map

    maps = _random_maps(nest)
    path = tmp_path / "map.fits"
    maps.write(path)
    m = Map.read(path)
    assert isinstance(m, HpxNDMap)
    assert m.geom.nside.item() == 64 and m.geom.nest is nest and m.geom.frame == "icrs"
    assert m.data.shape == (maps.n_bins, maps.roi.n_pix)
    n_bins, n_pix = maps.data.shape
    values = m.get_by_idx((np.tile(maps.roi.pixels, n_bins), np.repeat(np.arange(n_bins), n_pix)))
    # gammapy holds float32
    np.testing.assert_allclose(values.reshape(n_bins, n_pix), maps.data, rtol=1e-6)
    # a pixel outside the ROI is not part of gammapy's geometry either
    outside = np.setdiff1d(np.arange(hp.nside2npix(64)), maps.roi.pixels)[:5]
    assert np.all(m.geom.global_to_local((outside, np.zeros(5, int)))[0] == -1)


@pytest.mark.parametrize("file_nest", [True, False])
@pytest.mark.parametrize("read_nest", [True, False])
def test_written_file_reads_in_healpy(tmp_path, file_nest, read_nest):
    maps = _random_maps(file_nest)
    path = tmp_path / "map.fits"
    maps.write(path)
    with fits.open(path) as hdul:
        assert hdul["SKYMAP"].header["INDXSCHM"] == "EXPLICIT"
    npix = hp.nside2npix(64)
    for i in range(maps.n_bins):
        full = hp.read_map(path, partial=True, field=i, nest=read_nest)
        assert full.shape == (npix,)
        pix = maps.roi.pixels
        if read_nest != file_nest:  # healpy reorders to the ordering asked for
            pix = hp.ring2nest(64, pix) if read_nest else hp.nest2ring(64, pix)
        np.testing.assert_array_equal(full[pix], maps.data[i])
        seen = full != hp.UNSEEN
        assert seen.sum() == maps.roi.n_pix and np.all(seen[pix])


def test_to_full_sky():
    maps = _random_maps(True)
    full = maps.to_full_sky(1)
    np.testing.assert_array_equal(full[maps.roi.pixels], maps.data[1])
    assert np.sum(full != hp.UNSEEN) == maps.roi.n_pix
    np.testing.assert_allclose(maps.to_full_sky()[maps.roi.pixels], maps.data.sum(axis=0))

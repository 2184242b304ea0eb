"""The TS map's neighbour lists (skyfit.detect.tsmap): the same sets as a brute-force search."""

import healpy as hp
import numpy as np
import pytest

from skyfit.detect.tsmap import _neighbour_table


@pytest.mark.parametrize("nside_l, reach_deg", [(256, 0.4), (128, 1.3), (64, 3.0)])
def test_neighbour_lists_equal_a_brute_force_search(nside_l, reach_deg):
    rng = np.random.default_rng(nside_l)
    # coarse pixels of an irregular ROI (a disc with a hole), their centroids moved off the pixel centres
    # as those of partly covered pixels are
    disc = hp.query_disc(nside_l, hp.ang2vec(40.0, 5.0, lonlat=True), np.radians(6.0), nest=True)
    hole = hp.query_disc(nside_l, hp.ang2vec(42.0, 6.0, lonlat=True), np.radians(1.0), nest=True)
    coarse = np.setdiff1d(disc, hole)
    cvec = np.stack(hp.pix2vec(nside_l, coarse, nest=True), axis=1)
    cvec += rng.normal(0, 0.3 * np.radians(hp.nside2resol(nside_l, arcmin=True) / 60), cvec.shape)
    cvec /= np.linalg.norm(cvec, axis=1, keepdims=True)
    # test positions inside, at the edge of and beyond the ROI
    lon, lat = rng.uniform(32, 48, 400), rng.uniform(-3, 13, 400)
    t_vec = hp.ang2vec(lon, lat, lonlat=True)
    table = _neighbour_table(t_vec, cvec, coarse, nside_l, reach_deg)
    truth = t_vec @ cvec.T >= np.cos(np.radians(reach_deg))
    assert table.dtype == np.int32
    for i in range(t_vec.shape[0]):
        got = table[i][table[i] < coarse.size]
        assert got.size == np.unique(got).size
        assert set(got.tolist()) == set(np.flatnonzero(truth[i]).tolist())
    assert np.any(truth.sum(axis=1) == 0) and np.any(truth.sum(axis=1) > 10)  # both kinds of position seen

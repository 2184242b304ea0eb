"""Tests of the parametric LHAASO-like responses (skyfit.response.lhaaso)."""

import numpy as np
import pytest
from scipy.integrate import quad

from skyfit.response.lhaaso import (
    LHAASO_LATITUDE_DEG,
    background_counts_per_sr,
    bin_exposure_cm2_s,
    km2a_response,
    wcda_response,
)

CRAB_DEC_DEG = 22.0


def crab_dnde(energy_tev):
    """Crab log-parabola (cm^-2 s^-1 TeV^-1), LHAASO Collab. 2021, Science 373, 425."""
    x = np.asarray(energy_tev, dtype=float) / 10.0
    return 8.2e-14 * x ** (-2.90 - 0.19 * np.log10(x))


def crab_counts(response, dec_deg=CRAB_DEC_DEG):
    return response.counts_matrix_at(dec_deg) @ crab_dnde(response.energy_true_tev)


def psf_overlap_per_sr(psf):
    """Integral of the squared PSF over the sky (sr^-1), per bin: sum_ij w_i w_j / (2 pi (s_i^2 + s_j^2))."""
    w, s = psf.weights, np.radians(psf.sigma_deg)
    return np.einsum("bi,bj,bij->b", w, w, 1.0 / (2 * np.pi * (s[:, :, None] ** 2 + s[:, None, :] ** 2)))


@pytest.fixture(scope="module")
def wcda():
    return wcda_response()


@pytest.fixture(scope="module")
def km2a():
    return km2a_response()


@pytest.mark.parametrize("name, n_bins", [("wcda", 6), ("km2a", 9)])
def test_shapes_and_values(name, n_bins, request):
    r = request.getfixturevalue(name)
    assert r.n_bins == n_bins
    assert r.counts_matrix.shape == (len(r.dec_nodes_deg), n_bins, len(r.energy_true_tev))
    np.testing.assert_allclose(r.dec_nodes_deg, np.arange(-20.0, 80.1, 2.5))
    assert np.all(np.isfinite(r.counts_matrix)) and np.all(r.counts_matrix >= 0)
    assert r.counts_matrix.max() > 0
    assert r.energy_reco_edges_tev.shape == (n_bins, 2)
    assert np.all(r.energy_reco_edges_tev[:, 1] > r.energy_reco_edges_tev[:, 0])
    assert r.meta["site_latitude_deg"] == LHAASO_LATITUDE_DEG and r.meta["livetime_days"] == 365.0
    assert len(r.meta["references"]) >= 3


def test_bin_names(wcda, km2a):
    assert wcda.bin_names == tuple(f"WCDA_nHit{i}" for i in range(1, 7))
    assert km2a.bin_names[0] == "KM2A_logE1.4-1.6" and km2a.bin_names[-1] == "KM2A_logE3.0-3.2"
    np.testing.assert_allclose(km2a.energy_reco_edges_tev[0], [10**1.4, 10**1.6])
    np.testing.assert_allclose(km2a.energy_reco_edges_tev[-1, 1], 10**3.2)


def test_wcda_crab_counts_order_1e5(wcda):
    # Target: O(1e5) Crab photons per year after cuts for the full WCDA (order-of-magnitude
    # target set for this model, not a published count), factor-3 window.
    total = crab_counts(wcda).sum()
    assert 1e5 / 3 < total < 3e5


def test_wcda_crab_significance_vs_wcda1_sensitivity(wcda):
    # WCDA-1 (one pond, 22,500 m^2) reached 65 mCU/yr at 5 sigma (Aharonian et al. 2021, CPC 45
    # 085002), i.e. the Crab at 5 / 0.065 = 77 sigma per year. The full array (78,000 m^2, larger
    # PMTs in ponds 2-3) must do better, but not by more than a factor of 10.
    s = crab_counts(wcda)
    b = background_counts_per_sr("WCDA", CRAB_DEC_DEG)
    z = np.sqrt(np.sum(s**2 * psf_overlap_per_sr(wcda.psf) / b))
    z_wcda1 = 5.0 / 0.065
    assert z_wcda1 < z < 10 * z_wcda1


def test_km2a_crab_counts_above_100tev(km2a):
    # Target: ~90 Crab photons above 100 TeV in KM2A's first ~year with the half array (figure
    # given with the task, not verified against LHAASO Collab. 2021, Science 373, 425); the full
    # array (~2x area) should then see ~180 per year: factor-3 window.
    counts = crab_counts(km2a)
    above_100 = counts[km2a.energy_reco_edges_tev[:, 0] >= 99.9].sum()
    assert 180 / 3 < above_100 < 180 * 3


def test_km2a_nearly_background_free_above_100tev(km2a):
    s = crab_counts(km2a)
    b = background_counts_per_sr("KM2A", CRAB_DEC_DEG)
    r68 = np.radians(np.array(km2a.meta["psf68_deg"]))
    b_disk = b * np.pi * r68**2
    high = km2a.energy_reco_edges_tev[:, 0] >= 99.9
    assert np.all(b_disk[high] < 1.0)  # < 1 background event per year inside R68
    assert np.all(b_disk[high] < 0.1 * 0.68 * s[high] + 1e-3)
    # while the lowest WCDA bin is strongly background dominated
    bw = background_counts_per_sr("WCDA", CRAB_DEC_DEG)[0] * np.pi * np.radians(0.5) ** 2
    assert bw > 10 * crab_counts(wcda_response(dec_nodes_deg=[CRAB_DEC_DEG]))[0]


def test_wcda_psf68(wcda):
    # 0.45 deg at 1 TeV, better than 0.2 deg above 6 TeV (Aharonian et al. 2021, CPC 45 085002)
    r68 = np.array([wcda.psf.containment_radius(0.68, b) for b in range(wcda.n_bins)])
    np.testing.assert_allclose(r68, wcda.meta["psf68_deg"], rtol=2e-3)
    assert 0.40 < r68[0] < 0.65  # ~0.4-1 TeV
    assert 0.35 < r68[1] < 0.50  # ~1-2 TeV
    assert np.all(r68[wcda.energy_reco_edges_tev[:, 0] >= 5.5] < 0.2)
    assert np.all(np.diff(r68) < 0)


def test_km2a_psf68(km2a):
    # 0.5-0.8 deg near 25 TeV, ~0.25-0.3 deg at 100 TeV (Aharonian et al. 2021, CPC 45 025002)
    r68 = np.array([km2a.psf.containment_radius(0.68, b) for b in range(km2a.n_bins)])
    np.testing.assert_allclose(r68, km2a.meta["psf68_deg"], rtol=2e-3)
    assert 0.45 < r68[0] < 0.8
    i100 = km2a.bin_names.index("KM2A_logE2.0-2.2")
    assert 0.2 < r68[i100] < 0.32
    assert np.all(r68 > 0.1) and np.all(np.diff(r68) < 0)
    # the tail component is 1.8x the core and holds 25% of events
    np.testing.assert_allclose(km2a.psf.sigma_deg[:, 1] / km2a.psf.sigma_deg[:, 0], 1.8)
    np.testing.assert_allclose(km2a.psf.weights[:, 1], 0.25)


@pytest.mark.parametrize("name", ["wcda", "km2a"])
def test_exposure_vs_declination(name, request):
    r = request.getfixturevalue(name)
    per_bin = r.counts_matrix.sum(axis=2)  # (n_dec, n_bins)
    dec = r.dec_nodes_deg
    # dec = 80 never gets below 50 deg zenith (max transit zenith 50.64 deg): zero exposure
    assert np.all(r.counts_matrix[dec > LHAASO_LATITUDE_DEG + 50.0] == 0)
    assert np.all(per_bin[dec == -20.0] > 0)  # transits at 49.4 deg
    # maximal near the latitude: a 50-deg zenith cut gives longer arcs to northern decs, so the
    # maximum sits a little north of the latitude, within ~12 deg, for every bin
    peak = dec[np.argmax(per_bin, axis=0)]
    assert np.all(np.abs(peak - LHAASO_LATITUDE_DEG) < 12.0)
    at_lat = per_bin[np.argmin(np.abs(dec - LHAASO_LATITUDE_DEG))]
    assert np.all(at_lat > 0.9 * per_bin.max(axis=0))
    assert np.all(per_bin[0] < 0.2 * per_bin.max(axis=0))  # dec -20 barely visible


def test_exposure_never_visible_and_south():
    expo = bin_exposure_cm2_s("WCDA", [1.0, 10.0], [-25.0, 85.0])
    assert expo.shape == (2, 6, 2) and np.all(expo == 0)
    assert np.all(background_counts_per_sr("KM2A", [-25.0, 85.0]) == 0)


def test_drift_scan_plateau_matches_analytic():
    # Far above threshold A(E, z) -> a_max cos(z) and the open last WCDA bin collects every event,
    # so the exposure is T * a_max * <cos z> with the closed-form hour-angle average.
    lat, z_max = np.radians(LHAASO_LATITUDE_DEG), np.radians(50.0)
    for dec_deg in (-10.0, 22.0, 60.0):
        d = np.radians(dec_deg)
        h_max = np.arccos((np.cos(z_max) - np.sin(lat) * np.sin(d)) / (np.cos(lat) * np.cos(d)))
        mean_cos = (h_max * np.sin(lat) * np.sin(d) + np.cos(lat) * np.cos(d) * np.sin(h_max)) / np.pi
        expected = 365 * 86400 * 6.0e4 * 1e4 * mean_cos
        got = bin_exposure_cm2_s("WCDA", [1e5], dec_deg).sum()
        np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.parametrize("instrument, factory, bin_index", [("WCDA", wcda_response, 2), ("KM2A", km2a_response, 3)])
def test_simpson_matches_quad(instrument, factory, bin_index):
    r = factory(dec_nodes_deg=[CRAB_DEC_DEG])
    simpson = r.counts_matrix[0, bin_index] @ crab_dnde(r.energy_true_tev)

    def integrand(log_e):
        e = np.exp(log_e)
        return crab_dnde(e) * bin_exposure_cm2_s(instrument, e, CRAB_DEC_DEG)[bin_index, 0] * e

    lo, hi = np.log(r.energy_true_tev[0]), np.log(r.energy_true_tev[-1])
    direct, _ = quad(integrand, lo, hi, limit=400, epsabs=0.0, epsrel=1e-8)
    np.testing.assert_allclose(simpson, direct, rtol=1e-3)


def test_livetime_and_zenith_cut_scaling():
    a = wcda_response(livetime_days=100.0, dec_nodes_deg=[0.0, 30.0])
    b = wcda_response(livetime_days=200.0, dec_nodes_deg=[0.0, 30.0])
    np.testing.assert_allclose(b.counts_matrix, 2 * a.counts_matrix)
    np.testing.assert_allclose(
        background_counts_per_sr("WCDA", 30.0, livetime_days=200.0),
        2 * background_counts_per_sr("WCDA", 30.0, livetime_days=100.0),
    )
    tight = wcda_response(livetime_days=100.0, dec_nodes_deg=[0.0, 30.0], max_zenith_deg=25.0)
    assert np.all(tight.counts_matrix[0] == 0)  # dec 0 transits at 29.4 deg zenith
    assert np.all(tight.counts_matrix[1] <= a.counts_matrix[1]) and tight.counts_matrix[1].sum() > 0


def test_background_shapes_and_trend():
    for instrument, n_bins in (("WCDA", 6), ("KM2A", 9)):
        b = background_counts_per_sr(instrument, 22.0)
        assert b.shape == (n_bins,) and np.all(b > 0) and np.all(np.diff(b) < 0)
        assert background_counts_per_sr(instrument, [0.0, 22.0, 45.0]).shape == (3, n_bins)
    with pytest.raises(ValueError):
        background_counts_per_sr("HAWC", 22.0)

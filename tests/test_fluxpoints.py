"""Flux points: recovery of an injected spectrum, the bad-input paths, and the HAWC Crab against HAWC's
published points, read back by gammapy."""

import warnings
from dataclasses import replace

import numpy as np
import pytest
from astropy.table import Table
from scipy import stats

from skyfit import Fit, Likelihood, LogParabola, Models, PointSpatialModel, PowerLaw, Source
from skyfit.fluxpoints import FluxPoints, FluxPointsError, flux_points, plot_sed
from skyfit.simulate import lhaaso_dataset, simulate_dataset

RA, DEC = 83.63, 22.01


@pytest.fixture(scope="module")
def km2a_fit():
    truth = Models([Source("src", PointSpatialModel.create(RA, DEC), PowerLaw.create(3e-15, 3.0, 50.0))])
    ds = simulate_dataset(truth, lhaaso_dataset("KM2A", (RA, DEC), 1.5, nside=128, livetime_days=365), seed=3)
    model = truth.with_frozen(["src.lon_0", "src.lat_0"])
    return Fit(Likelihood(model, [ds])).run(), ds


def test_flux_points_recover_the_injected_spectrum(km2a_fit, tmp_path):
    result, ds = km2a_fit
    fp = flux_points(result, [ds], "src")
    t = fp.table
    assert len(t) == ds.n_bins and np.all(t["e_min"][1:] == t["e_max"][:-1])
    truth = 3e-15 * (np.asarray(t["e_ref"]) / 50.0) ** -3.0
    good = ~np.asarray(t["is_ul"])
    assert good.sum() >= 4
    pulls = (np.asarray(t["dnde"])[good] - truth[good]) / np.asarray(t["dnde_err"])[good]
    assert np.sum(pulls**2) < stats.chi2.ppf(0.999, good.sum())  # the truth within the errors, band by band
    # upper limits lie above the measured value, errors are positive, TS matches sqrt_ts
    assert np.all(t["dnde_ul"] >= t["dnde"]) and np.all(t["dnde_errp"] > 0)
    np.testing.assert_allclose(np.asarray(t["sqrt_ts"]) ** 2, t["ts"], rtol=1e-12)
    # counts per dataset sum over the band's bins
    np.testing.assert_allclose(np.asarray(t["counts"])[:, 0], ds.counts.data.sum(axis=1))
    path = fp.write(tmp_path / "fp.fits")
    back = FluxPoints.read(path)
    np.testing.assert_array_equal(back.table["dnde"], t["dnde"])
    assert back.source == "src"
    fig = plot_sed(fp, result, tmp_path / "sed.png")
    assert (tmp_path / "sed.png").stat().st_size > 1000 and len(fig.axes[0].lines) >= 1


def test_wider_bands_combine_bins(km2a_fit):
    result, ds = km2a_fit
    edges = ds.response.energy_reco_edges_tev
    wide = flux_points(result, [ds], "src", energy_edges=[edges[0, 0], edges[3, 1], edges[-1, 1]])
    assert len(wide.table) == 2
    assert wide.table["counts"][0, 0] == ds.counts.data[:4].sum()


def test_bad_bands_and_binnings_are_refused_with_the_reason(km2a_fit):
    result, ds = km2a_fit
    with pytest.raises(FluxPointsError, match="contains no whole analysis bin.*bins span"):
        flux_points(result, [ds], "src", energy_edges=[3000.0, 5000.0])  # beyond the data's energies
    with pytest.raises(FluxPointsError, match="at least two increasing"):
        flux_points(result, [ds], "src", energy_edges=[100.0, 50.0])
    labelled = replace(ds, response=replace(ds.response, energy_reco_edges_tev=None))  # e.g. bins of nHit only
    with pytest.raises(FluxPointsError, match="no reconstructed-energy ranges"):
        flux_points(result, [labelled], "src")


def test_a_band_without_counts_gives_an_upper_limit(km2a_fit):
    result, ds = km2a_fit
    counts = ds.counts.data.copy()
    counts[-1] = 0
    empty = ds.with_counts(counts)
    fp = flux_points(result, [empty], "src")
    last = fp.table[-1]
    assert last["counts"][0] == 0 and last["is_ul"] and last["ts"] == 0.0 and last["dnde_ul"] > 0


def test_energy_edges_take_quantities(km2a_fit):
    import astropy.units as u

    result, ds = km2a_fit
    e = ds.response.energy_reco_edges_tev
    a = flux_points(result, [ds], "src", energy_edges=[e[2, 0], e[4, 1]])
    b = flux_points(result, [ds], "src", energy_edges=np.array([e[2, 0], e[4, 1]]) * 1000.0 * u.GeV)
    np.testing.assert_allclose(a.table["dnde"], b.table["dnde"], rtol=1e-9)


@pytest.mark.data
def test_hawc_crab_flux_points_agree_with_hawc_and_open_in_gammapy(hawc_data, tmp_path):
    from gammapy.estimators import FluxPoints as GPFluxPoints

    from skyfit import hawc_dataset
    from skyfit.dataset import BackgroundNaNWarning
    from skyfit.hawc import CRAB_DEC_DEG, CRAB_RA_DEG

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BackgroundNaNWarning)
        ds = hawc_dataset("NN")
    crab = Source("crab", PointSpatialModel.create(CRAB_RA_DEG, CRAB_DEC_DEG), LogParabola.create(2.3e-13, 2.6, 0.1))
    result = Fit(Likelihood(Models([crab]).with_frozen(["crab.lon_0", "crab.lat_0"]), [ds])).run()
    fp = flux_points(result, [ds], "crab")
    path = fp.write(tmp_path / "crab_fp.fits")
    ours = GPFluxPoints.read(path).to_table(sed_type="dnde")
    pub = Table.read(hawc_data.parent / "crab_flux" / "HAWC19_flux_points.fits")
    compared = 0
    for row in ours:
        match = np.isclose(pub["e_min"], row["e_min"], rtol=1e-2) & np.isclose(pub["e_max"], row["e_max"], rtol=1e-2)
        if not match.any():
            continue
        p = pub[match][0]
        if not row["is_ul"] and not p["is_ul"]:
            sigma = np.hypot(row["dnde_err"], p["dnde_err"])
            assert abs(row["dnde"] - p["dnde"]) < 2 * sigma, (row["e_min"], row["dnde"], p["dnde"], sigma)
            compared += 1
        elif row["is_ul"] and not p["is_ul"]:  # our limit does not exclude HAWC's point
            assert p["dnde"] - 2 * p["dnde_err"] < row["dnde_ul"]
    assert compared >= 5
    plot_sed(fp, result, tmp_path / "sed.png", compare=pub)

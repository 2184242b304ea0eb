"""Complete fit results (covariance, correlation, versions), model YAML with errors that gammapy reads,
and result maps as FITS that gammapy's ``Map.read`` opens with their axis."""

import json

import numpy as np
import pytest

from skyfit import Fit, Likelihood, Models, PointSpatialModel, PowerLaw, Source
from skyfit.detect.result_maps import data_maps, fit_maps
from skyfit.io.skymaps import read_maps, write_maps
from skyfit.simulate import lhaaso_dataset, simulate_dataset

RA, DEC = 83.63, 22.01


@pytest.fixture(scope="module")
def fitted():
    truth = Models([Source("src", PointSpatialModel.create(RA, DEC), PowerLaw.create(3e-15, 3.0, 50.0))])
    ds = simulate_dataset(truth, lhaaso_dataset("KM2A", (RA, DEC), 1.5, nside=128, livetime_days=365), seed=5)
    return Fit(Likelihood(truth, [ds])).run(), ds


def test_the_result_dict_has_covariance_correlation_and_versions(fitted):
    result, _ = fitted
    d = json.loads(json.dumps(result.to_dict()))
    n = len(result.free_keys)
    assert d["free_keys"] == list(result.free_keys) and n == 4
    cov, corr = np.array(d["covariance"]), np.array(d["correlation"])
    assert cov.shape == corr.shape == (n, n)
    hesse = [result.errors[k] for k in result.free_keys]
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), hesse, rtol=1e-4)  # Minuit's errors: limits transformed
    np.testing.assert_allclose(np.diag(corr), 1.0, rtol=1e-12)
    assert np.all(np.abs(corr) <= 1 + 1e-12) and abs(corr[2, 3]) > 0.1  # amplitude-index: correlated
    assert d["software"]["skyfit"] and d["software"]["jax"] and d["status"] == "valid"


def test_gammapy_reads_the_best_fit_yaml_with_its_errors(fitted, tmp_path):
    from gammapy.modeling.models import Models as GPModels

    result, _ = fitted
    path = tmp_path / "best.yaml"
    result.model.to_yaml(path, errors=result.errors)
    gp = GPModels.read(path)
    for key, err in result.errors.items():
        name, par = key.split(".")
        assert gp[name].parameters[par].error == pytest.approx(err, rel=1e-12)
        assert gp[name].parameters[par].value == pytest.approx(result.value(key), rel=1e-12)
    assert gp["src"].parameters["reference"].error == 0  # frozen: no error written
    back = Models.from_yaml(path)  # skyfit reads its own file back, errors and all
    assert back.values() == result.model.values()


def test_result_maps_open_in_gammapy_with_their_axis(fitted, tmp_path):
    from gammapy.maps import Map

    result, ds = fitted
    mu = Likelihood(result.model, [ds]).npred()[0]
    mu_b = Likelihood(Models((), result.model.backgrounds), [ds]).npred()[0]
    maps = fit_maps(ds, mu, mu_b)
    assert set(maps) == {"COUNTS", "NPRED", "BACKGROUND", "EXCESS", "RESIDUAL", "RESIDUAL_SIGNIFICANCE", "TS",
                         "SQRT_TS", "RESIDUAL_TS"}  # fmt: skip
    # the injected source stands out in TS over the background, not in TS over the best fit
    assert maps["TS"].max() > 100 and maps["RESIDUAL_TS"].max() < 25
    path = write_maps(tmp_path / "maps.fits", maps, ds.roi, ds.bin_names, ds.response.energy_reco_edges_tev)
    excess = Map.read(path, hdu="EXCESS")
    axis = excess.geom.axes[0]
    assert axis.name == "energy" and axis.nbin == ds.n_bins
    np.testing.assert_allclose(axis.edges.to_value("TeV")[[0, -1]], ds.response.energy_reco_edges_tev[[0, -1], [0, 1]])
    np.testing.assert_allclose(excess.data.sum(), (maps["COUNTS"] - maps["BACKGROUND"]).sum())
    ts = Map.read(path, hdu="TS")
    idx = ds.roi.pixels[np.argmax(maps["TS"])]
    assert ts.get_by_idx((np.array([idx]), np.array([0])))[0] == pytest.approx(maps["TS"].max(), rel=1e-12)
    back = read_maps(path)
    np.testing.assert_allclose(back["RESIDUAL"].sum(), maps["RESIDUAL"].sum())


def test_data_maps_of_a_labelled_binning(tmp_path):
    from gammapy.maps import Map

    ds = lhaaso_dataset("WCDA", (RA, DEC), 1.0, nside=128, livetime_days=30)
    ds = ds.with_counts(np.random.default_rng(1).poisson(ds.background_filled()).astype(float))
    maps = data_maps(ds, ts=False)
    path = write_maps(tmp_path / "m.fits", maps, ds.roi, ds.bin_names, None)
    m = Map.read(path, hdu="COUNTS")
    assert m.geom.axes[0].name == "analysis_bin" and list(m.geom.axes[0].center) == list(ds.bin_names)
    assert abs(np.mean(maps["SIGNIFICANCE"])) < 1.0
    with pytest.raises(ValueError, match="pixels"):
        write_maps(tmp_path / "x.fits", {"X": np.zeros(3)}, ds.roi)

"""Light curves: a steady source's flux per time block, from a simulated event stream (counts and a
direct-integration background per block), read back by gammapy."""

import numpy as np
import pytest
from scipy import stats

from skyfit import LogParabola, Models, PointSpatialModel, Source
from skyfit.background import Exclusions
from skyfit.fluxpoints import FluxPointsError
from skyfit.lightcurve import light_curve, light_curve_from_events
from skyfit.maps import HealpixROI
from skyfit.simulate import simulate_event_stream
from skyfit.stream import write_event_stream

START = 59639.0
CRAB = Source("crab", PointSpatialModel.create(83.63, 22.01), LogParabola.create(10 * 2.31e-13, 2.73, 0.06, 7.0))


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    d = tmp_path_factory.mktemp("lc_stream")
    blocks = simulate_event_stream("WCDA", START, 3.0, [CRAB], block_hours=24, rate_scale=0.01, bins=[2, 3], seed=8)
    write_event_stream(blocks, d, meta={"INSTRUME": "WCDA"})
    return d


def test_a_steady_source_gives_a_flat_light_curve_that_gammapy_reads(stream, tmp_path):
    from gammapy.estimators import FluxPoints

    roi = HealpixROI.from_disc((83.63, 22.01), 2.0, 512)  # pixels well below the PSF (see the README)
    model = Models([CRAB]).with_frozen(["crab.lon_0", "crab.lat_0"])
    excl = Exclusions.from_discs(83.63, 22.01, 1.0)
    lc = light_curve_from_events(sorted(stream.glob("*.parquet")), roi, model, "crab",
                                 [START, START + 1.0, START + 2.0, START + 3.0], "WCDA", bins=[2, 3],
                                 exclusions=excl)  # fmt: skip
    t = lc.table
    assert len(t) == 3 and np.allclose(t["time_max"] - t["time_min"], 1.0)
    np.testing.assert_allclose(np.asarray(t["time_min"]) + t.meta["MJDREFI"], [START, START + 1, START + 2])
    norm, err = np.asarray(t["norm"])[:, 0], np.asarray(t["norm_err"])[:, 0]
    assert np.all(np.asarray(t["ts"])[:, 0] > 25)
    # the truth (norm 1) within the errors, block by block (the simulated flux is the model's)
    assert np.sum(((norm - 1) / err) ** 2) < stats.chi2.ppf(0.999, 3), (norm, err)
    path = lc.write(tmp_path / "lc.fits")
    read = FluxPoints.read(path, format="lightcurve")
    assert read.geom.axes["time"].nbin == 3
    np.testing.assert_allclose(read.dnde.data.ravel(), np.asarray(t["dnde"]).ravel(), rtol=1e-10)
    np.testing.assert_allclose(read.geom.axes["time"].time_min.mjd, [START, START + 1, START + 2], atol=1e-6)


def test_bad_blocks_are_refused(stream):
    model = Models([CRAB])
    with pytest.raises(FluxPointsError, match="at least one time block"):
        light_curve(model, "crab", [])
    with pytest.raises(FluxPointsError, match="increasing"):
        light_curve_from_events([], None, model, "crab", [START + 1, START], "WCDA")
    with pytest.raises(FluxPointsError, match="whole days"):
        light_curve_from_events([], None, model, "crab", [START, START + 0.5], "WCDA")


def test_bins_without_energies_take_the_responses_band():
    from dataclasses import replace

    from skyfit.simulate import lhaaso_dataset, simulate_dataset

    truth = Models([CRAB])
    base = lhaaso_dataset("KM2A", (83.63, 22.01), 1.5, nside=128, livetime_days=30)
    blocks = []
    for k in range(2):
        ds = simulate_dataset(truth, base, seed=k)
        blocks.append(
            (START + k, START + k + 1, [replace(ds, response=replace(ds.response, energy_reco_edges_tev=None))])
        )
    t = light_curve(truth.with_frozen(["crab.lon_0", "crab.lat_0"]), "crab", blocks).table
    e = base.response.energy_true_tev
    np.testing.assert_allclose(np.asarray(t["e_min"])[:, 0], e.min())
    np.testing.assert_allclose(np.asarray(t["e_max"])[:, 0], e.max())
    assert np.all(np.asarray(t["ts"]) > 25) and np.all(np.isfinite(np.asarray(t["dnde"])))

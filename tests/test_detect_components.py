"""The fitter of a ROI's components (:class:`skyfit.detect.components.RoiFitter`) and the robust-fit recipe it
runs (:func:`skyfit.fit.robust_fit`, :func:`~skyfit.fit.settle`, :func:`~skyfit.fit.release`)."""

from dataclasses import replace

import numpy as np
import pytest

from skyfit.detect import DetectionConfig
from skyfit.detect.components import RoiFitter, seed_component
from skyfit.fit import pinned
from skyfit.maps import unit_vectors
from skyfit.models import Models, PointSpatialModel, PowerLaw, Source
from skyfit.simulate import lhaaso_dataset, simulate_dataset


def test_a_null_fit_that_migrad_left_short_is_continued_to_its_minimum(monkeypatch):
    # strategy-0 MIGRAD can stop short of a many-parameter minimum and say it converged (J1908+0615's
    # KM2A null fit on the built-in ROI: 45.96 short, TS 703 instead of 657); the TS null fits are checked
    center = (287.05, 6.26)
    ds = lhaaso_dataset("WCDA", center, 1.5, nside=128, livetime_days=200.0)
    b = PointSpatialModel.create(center[0] + 0.4, center[1])
    truth = Models([Source("a", PointSpatialModel.create(*center), PowerLaw.create(1.2e-13, 2.6, 3.0)),
                      Source("b", b, PowerLaw.create(8e-14, 2.6, 3.0))])  # fmt: skip
    ds = simulate_dataset(truth, ds, 4)
    fitter = RoiFitter(truth, [ds])
    best = fitter.run(truth, hesse=True)
    assert best.valid, best.messages
    off = best.model.with_values({"a.amplitude": 1.6 * best.model.values()["a.amplitude"], "b.lon_0": center[0] + 0.5})
    short = replace(best, model=off, stat=float(fitter.lk.stat(fitter.lk.vector(off.values()))))
    assert short.stat > best.stat + 10
    settled = fitter.settle(short)
    assert settled.stat == pytest.approx(best.stat, abs=0.05)
    assert fitter.settled == 1
    # at the minimum the check changes nothing and continues nothing
    assert fitter.settle(best).stat == pytest.approx(best.stat, abs=0.05)
    assert fitter.settled == 1
    # the TS null fits use it: a MIGRAD that stops where it starts still yields the minimum
    monkeypatch.setattr(
        fitter,
        "run",
        lambda model, hesse=False: replace(
            short, model=model, stat=float(fitter.lk.stat(fitter.lk.vector(model.values())))
        ),
    )
    assert fitter.fit_stat(off) == pytest.approx(best.stat, abs=0.05)
    assert fitter.settled == 2


def test_a_component_stopped_at_its_position_bounds_is_released_and_reaches_its_source():
    # the bounds keep a component within max_shift_deg of its seed in one fit; one seeded 0.7 deg from
    # its source stops at them (the built-in ROI's c003_WCDA did, 0.5 deg from its seed in RA and Dec)
    center = (287.05, 6.26)
    ds = lhaaso_dataset("WCDA", center, 1.5, nside=128, livetime_days=200.0)
    truth = Models([Source("a", PointSpatialModel.create(*center), PowerLaw.create(4e-13, 2.6, 3.0))])
    ds = simulate_dataset(truth, ds, 5)
    cfg = DetectionConfig()
    seed = seed_component("c001", center[0], center[1] + 0.7, ds.name, "WCDA", 1e-13, cfg, r39=0.1)
    model = Models([seed])
    fitter = RoiFitter(model, [ds])
    stuck = fitter.run(model)
    assert pinned(stuck.model) == ["c001"]
    assert any("at a limit" in m for m in stuck.messages)
    free, n = fitter.release(stuck, cfg)
    assert n >= 1 and pinned(free.model) == []
    assert free.stat < stuck.stat - 25
    # the same minimum as a fit started at the source, and a valid one
    best = fitter.run(free.model.with_values({"c001.lon_0": center[0], "c001.lat_0": center[1]}), hesse=True)
    final = fitter.run(free.model, hesse=True)
    assert final.valid, final.messages
    assert final.stat == pytest.approx(best.stat, abs=0.05)
    sep = np.degrees(np.arccos(unit_vectors(*final.model.source("c001").spatial.position())
                               @ unit_vectors(*best.model.source("c001").spatial.position())))  # fmt: skip
    assert sep < 0.01
    # never released: the fit stays where the bounds stopped it
    kept, n0 = fitter.release(stuck, DetectionConfig(max_releases=0))
    assert n0 == 0 and kept is stuck
    # run_released, which the catalogue's full-model fits use: the same fit and release, its fits counted
    via, n_via = fitter.run_released(model, cfg)
    assert n_via == 1 + n and pinned(via.model) == []
    assert via.stat == pytest.approx(free.stat, abs=1e-6)
    held, n_held = fitter.run_released(model, DetectionConfig(max_releases=0))
    assert n_held == 1 and pinned(held.model) == ["c001"]

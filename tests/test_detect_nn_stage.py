"""The network's stage in the detection of a ROI (:mod:`skyfit.detect.nn_stage`): which of its unsure
proposals become components (issue #6)."""

from dataclasses import replace

import numpy as np

from skyfit.detect import DetectionConfig, psf68
from skyfit.detect.components import seed_component
from skyfit.detect.nn_stage import _accept_unsure, _pair_members, _residual_ts
from skyfit.likelihood import Likelihood
from skyfit.models import Models, PointSpatialModel, PowerLaw, Source
from skyfit.simulate import lhaaso_dataset, simulate_dataset


def test_a_second_proposal_on_an_excess_already_explained_is_not_added():
    # Two point sources 1.2 deg apart, and three unsure proposals: one on each source and a second guess
    # 0.1 deg from the first. Each has residual TS > 25 on its own; taken greedily (the strongest first,
    # its excess then explained with the network's counts, here the true ones), the second guess is left
    # out and the other source is still added.
    ds = lhaaso_dataset("WCDA", center=(83.6, 22.0), radius_deg=2.5, nside=128, livetime_days=60, name="WCDA")
    pos = {"a": (83.0, 22.0), "b": (84.2, 22.3)}
    truth = Models([Source(k, PointSpatialModel.create(ra, dec), PowerLaw.create(1e-12, 2.6, 3.0), datasets=("WCDA",))
                      for k, (ra, dec) in pos.items()])  # fmt: skip
    ds = simulate_dataset(truth, ds, 21)
    cfg = DetectionConfig()
    guesses = {"n1": (83.0, 22.0), "n2": (84.2, 22.3), "n3": (83.1, 22.0)}
    unsure = []
    for name, (ra, dec) in guesses.items():
        sd = seed_component(f"{name}_WCDA", ra, dec, "WCDA", "WCDA", 1e-12, cfg, 0.0)
        unsure.append((sd, {"ra": ra, "dec": dec, "detector": "WCDA", "score": 0.3}))
    kept = [sd.name for sd, _ in _accept_unsure([ds], [ds.background_filled()], unsure, cfg)]
    assert "n2_WCDA" in kept
    assert len([k for k in kept if k in ("n1_WCDA", "n3_WCDA")]) == 1, kept


def test_turned_down_pair_member_beside_a_component_is_tried_and_duplicates_are_not():
    # A close pair (a, b: 0.35 deg apart, about 1.2 PSF68) of which the model holds only a, and a third
    # source c 1.6 deg from a that no component is near. Of the turned-down proposals, the one on b
    # (residual TS > 9 over the model, within 2 PSF68 of a), or the second guess 0.1 deg from it (they
    # tie), but not both; a second guess on a is not (a Gaussian kernel there reaches b's excess: once
    # b is in the baseline, nothing is left), nor is the proposal on c: with no component beside it,
    # its excess is no pair member.
    ds = lhaaso_dataset("WCDA", center=(83.6, 22.0), radius_deg=2.0, nside=512, livetime_days=60, name="WCDA")
    pos = {"a": (83.0, 22.0), "b": (83.0, 22.35), "c": (84.6, 22.0)}
    sources = {k: Source(k, PointSpatialModel.create(ra, dec), PowerLaw.create(6e-14, 2.6, 3.0), datasets=("WCDA",))
               for k, (ra, dec) in pos.items()}  # fmt: skip
    ds = simulate_dataset(Models(list(sources.values())), ds, 21)
    fitted = Models([sources["a"]])  # the model found a only, at its true flux
    lk = Likelihood(fitted, [ds])
    npreds = lk.npred(lk.vector(fitted.values()))
    cfg = DetectionConfig()
    assert 0.35 < 2 * psf68(ds.response) < 1.6
    guesses = {"near_b": (83.0, 22.45), "on_a": (83.05, 22.0), "on_c": (84.6, 22.0), "on_b": (83.0, 22.35)}
    turned = []
    for name, (ra, dec) in guesses.items():
        sd = seed_component(f"{name}_WCDA", ra, dec, "WCDA", "WCDA", 6e-14, cfg, 0.0)
        turned.append((sd, {"ra": ra, "dec": dec, "detector": "WCDA", "score": 0.3}))
    ts = dict(zip(guesses, _residual_ts(ds, np.asarray(npreds[0]), turned, cfg), strict=True))
    assert ts["on_b"] >= ts["near_b"] > cfg.nn_pair_ts and ts["on_c"] > cfg.nn_pair_ts, ts
    assert ts["on_b"] > ts["on_a"], ts
    chosen = [sd.name for sd, _ in _pair_members([ds], npreds, fitted, turned, cfg)]
    assert len(chosen) == 1 and chosen[0] in ("on_b_WCDA", "near_b_WCDA"), (chosen, ts)
    assert _pair_members([ds], npreds, fitted, turned, replace(cfg, nn_pair_ts=1e4)) == []

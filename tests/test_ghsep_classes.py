"""Event classes (issue #29): gammaness and PSF classes, their ratios, the PSF estimator, the class
significance study, and the bad input they refuse."""

import numpy as np
import pytest

from skyfit.ghsep import (
    FEATURES,
    ClassScheme,
    GHSepError,
    assign_classes,
    check_scores,
    class_dataset,
    class_edges,
    class_ratios,
    class_significance_study,
    load_model,
    simulation_revision,
    train_classifier,
    train_psf_estimator,
    weighted_quantile,
)
from skyfit.maps import HealpixROI
from skyfit.simulate import lhaaso_dataset


def test_class_edges_cut_the_gammas_at_the_asked_efficiencies():
    rng = np.random.default_rng(1)
    n = 40000
    score = rng.uniform(size=n)
    bins = rng.integers(0, 2, n)
    w = rng.uniform(0.5, 1.5, n)
    eff = (0.2, 0.4, 0.7, 1.0)
    edges = class_edges(score, w, bins, eff)
    assert set(edges) == {0, 1} and np.all(np.diff(edges[0][:3]) < 0) and edges[0][3] == -np.inf
    cls = assign_classes(score, bins, edges)
    assert np.all(cls >= 0)  # the last class keeps everything
    for b in (0, 1):
        m = bins == b
        frac = [np.sum(w[m & (cls == c)]) / np.sum(w[m]) for c in range(4)]
        np.testing.assert_allclose(frac, np.diff((0.0,) + eff), atol=0.01)
    # a smaller-is-better variable (an angular-error estimate): the best quarter first
    err = rng.lognormal(size=n)
    pe = class_edges(err, np.ones(n), bins, (0.25, 0.5, 0.75, 1.0), higher_is_gamma=False)
    pc = assign_classes(err, bins, pe, higher_is_gamma=False)
    assert np.all(pc >= 0)
    np.testing.assert_allclose(np.bincount(pc) / n, 0.25, atol=0.01)
    m0 = bins == 0
    assert np.max(err[m0 & (pc == 0)]) <= np.min(err[m0 & (pc == 1)])
    # a score equal to a threshold passes it, as in every cut (ties at the edges too)
    few = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.8])
    e = class_edges(few, np.ones(6), np.zeros(6, int), (1 / 6, 0.5, 1.0))
    np.testing.assert_array_equal(assign_classes(few, np.zeros(6, int), e), [0, 1, 2, 2, 2, 1])
    # a bin without edges: no class
    assert np.all(assign_classes(score, np.full(n, 7), edges) == -1)
    with pytest.raises(GHSepError, match="increase"):
        class_edges(score, w, bins, (0.5, 0.3, 1.0))


def test_weighted_quantile():
    x = np.arange(10.0)
    assert weighted_quantile(x, np.ones(10), 0.5)[0] == 4.0
    # all the weight on the last event
    assert weighted_quantile(x, np.r_[np.zeros(9), 1.0], 0.1)[0] == 9.0


def test_scores_outside_zero_one_are_refused():
    check_scores(np.array([0.0, 0.5, 1.0]))
    for bad in (np.array([0.2, 1.5]), np.array([-0.1, 0.3]), np.array([0.2, np.nan])):
        with pytest.raises(GHSepError, match=r"outside \[0, 1\]"):
            check_scores(bad, "my scores")


def _toy_events(rng, n):
    """Gammas score high, background low; per bin half the gammas pass a 'traditional' cut."""
    bins = rng.integers(0, 3, n)
    sg = rng.beta(5, 2, n)
    sb = rng.beta(2, 5, n)
    return bins, sg, sb


def test_class_ratios_and_the_one_class_special_cases():
    rng = np.random.default_rng(2)
    n = 30000
    bins_g, sg, sb = _toy_events(rng, n)
    bins_b = rng.integers(0, 3, n)
    w_g, w_b = np.ones(n), np.ones(n)
    trad_g, trad_b = sg > np.median(sg), sb > np.quantile(sb, 0.9)
    # the traditional cut through the class code: ratios 1
    one = class_ratios(np.where(trad_g, 0, -1), np.where(trad_b, 0, -1), bins_g, bins_b, w_g, w_b, trad_g, trad_b,
                       3, ("traditional",))  # fmt: skip
    np.testing.assert_allclose(one.r_gamma, 1.0)
    np.testing.assert_allclose(one.r_bkg, 1.0)
    # gammaness classes: their gamma ratios add up to all gammas over the traditional ones (2)
    edges = class_edges(sg, w_g, bins_g, (0.2, 0.4, 0.7, 1.0))
    sch = class_ratios(assign_classes(sg, bins_g, edges), assign_classes(sb, bins_b, edges), bins_g, bins_b, w_g, w_b,
                       trad_g, trad_b, 3, ("a", "b", "c", "d"))  # fmt: skip
    np.testing.assert_allclose(sch.r_gamma.sum(axis=0), 2.0, rtol=0.02)
    np.testing.assert_allclose(sch.r_bkg.sum(axis=0), 10.0, rtol=0.05)
    # the most gamma-like class is the cleanest
    q = sch.r_gamma / np.sqrt(sch.r_bkg)
    assert np.all(q[0] > q[3])
    # bins outside the scored ones keep the traditional cut in class 0, nothing in the others
    part = class_ratios(assign_classes(sg, bins_g, edges), assign_classes(sb, bins_b, edges), bins_g, bins_b, w_g,
                        w_b, trad_g, trad_b, 3, ("a", "b", "c", "d"), bins_scored=[0, 1])  # fmt: skip
    assert part.r_gamma[0, 2] == 1.0 and np.all(part.r_gamma[1:, 2] == 0) and np.all(part.r_bkg[1:, 2] == 0)
    # class edges that leave a class empty in a bin: a clear error
    cls_g = assign_classes(sg, bins_g, edges)
    cls_g[(bins_g == 1) & (cls_g == 2)] = 3
    with pytest.raises(GHSepError, match="holds no gamma in analysis bin 1"):
        class_ratios(cls_g, assign_classes(sb, bins_b, edges), bins_g, bins_b, w_g, w_b, trad_g, trad_b, 3,
                     ("a", "b", "c", "d"))  # fmt: skip


def test_psf_estimator_learns_the_angular_error():
    rng = np.random.default_rng(3)
    n = 6000
    # the angular error shrinks with the number of hits and grows with the core distance
    nhit = 10 ** rng.uniform(1.5, 3.0, n)
    core = rng.uniform(0, 1.5, n)
    err = 0.8 * (nhit / 30.0) ** -0.5 * (1 + core) * rng.lognormal(0, 0.3, n)
    phi = rng.uniform(0, 2 * np.pi, n)
    table = {"NHIT": nhit, "REC_CORE_X": 100 * core * np.cos(phi), "REC_CORE_Y": 100 * core * np.sin(phi),
             "ANGULAR_ERROR": err}  # fmt: skip
    est = train_psf_estimator(table, "WCDA", features=("log10_nhit", "core_r_100m"), epochs=20, seed=1)
    pred = est.predict(table)
    # most of the variance explained, and the ordering right
    from scipy.stats import spearmanr

    assert spearmanr(pred, np.log10(err)).statistic > 0.85
    assert est.meta["validation_mse"][-1] < 0.5 * est.meta["target_variance"]
    with pytest.raises(GHSepError, match="ANGULAR_ERROR"):
        train_psf_estimator({k: v for k, v in table.items() if k != "ANGULAR_ERROR"}, "WCDA",
                            features=("log10_nhit", "core_r_100m"))  # fmt: skip


def test_class_dataset_scales_exposure_background_and_psf():
    roi = HealpixROI.from_disc((120.0, 22.0), 1.0, 128, True)
    ds = lhaaso_dataset("WCDA", roi=roi)
    rg, rb, ps = np.full(6, 0.5), np.full(6, 0.1), np.full(6, 0.8)
    rg[5] = rb[5] = 0.0  # a bin the class does not hold
    c = class_dataset(ds, rg, rb, ps, "WCDA_g0")
    assert c.n_bins == 5 and c.name == "WCDA_g0"
    np.testing.assert_allclose(c.response.counts_matrix, ds.response.counts_matrix[:, :5] * 0.5)
    np.testing.assert_allclose(c.background.data, ds.background.data[:5] * 0.1)
    np.testing.assert_allclose(c.response.psf.sigma_deg, ds.response.psf.sigma_deg[:5] * 0.8)
    assert class_dataset(ds, np.zeros(6), np.zeros(6), np.ones(6), "empty") is None
    with pytest.raises(ValueError, match="positive"):
        class_dataset(ds, np.ones(6), np.ones(6), np.r_[np.ones(5), -1.0], "bad")


def test_classes_of_equal_purity_add_up_and_unequal_ones_gain():
    # two classes with the same signal/background share as the whole (each half of both): the Asimov
    # TS of the joint fit equals the one-class TS; two of unequal purity give more than their union
    n = 6
    trad = {"WCDA": ClassScheme.traditional(n)}
    halves = {"WCDA": ClassScheme(np.full((2, n), 0.5), np.full((2, n), 0.5), np.ones((2, n)), ("h0", "h1"))}
    unequal = {
        "WCDA": ClassScheme(
            np.array([np.full(n, 0.7), np.full(n, 0.3)]),
            np.array([np.full(n, 0.2), np.full(n, 0.8)]),
            np.ones((2, n)),
            ("u0", "u1"),
        )
    }
    out = class_significance_study({"trad": trad, "halves": halves, "unequal": unequal}, 120.0, 22.0, 0.0, 0.01,
                                   n_realisations=3, radius_deg=1.5, seed=4)  # fmt: skip
    ta = {k: sum(float(np.sum(t)) for t in v["ts_asimov_per_dataset"].values()) for k, v in out.items()}
    assert out["halves"]["n_datasets"] == 2 and out["trad"]["n_datasets"] == 1
    assert ta["halves"] == pytest.approx(ta["trad"], rel=1e-6)
    assert ta["unequal"] > 1.1 * ta["trad"]
    assert all(np.all(v["ts"] >= 0) for v in out.values())


def test_model_file_from_another_simulation_revision_is_refused(tmp_path):
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(400, 3)), (rng.uniform(size=400) < 0.5).astype(float)
    names = FEATURES["WCDA"][:3]
    model = train_classifier(x, y, np.ones(400), names, "WCDA", epochs=1, hyper={"width": 8})
    model.meta["samples"] = {"training_seed": 0, "simulation_revision": simulation_revision("WCDA")}
    load_model(model.save(tmp_path / "now.npz"))
    model.meta["samples"]["simulation_revision"] = "an older simulation"
    with pytest.raises(GHSepError, match="revision 'an older simulation'.*retrain"):
        load_model(model.save(tmp_path / "old.npz"))


def test_protocol_resumes_from_its_files_and_bootstraps_over_seeds(tmp_path):
    import json

    from skyfit.ghsep import (
        PROTOCOL_CASES,
        PROTOCOL_METHODS,
        plot_class_protocol,
        run_protocol_seed,
        summarise_protocol,
    )

    # finished results on disk: nothing is simulated again (sizes of 0 showers would fail if it were)
    gains = {10: 1.2, 20: 1.4, 30: 1.6}  # classes + PSF over the traditional cut, per seed
    for s, g in gains.items():
        for c in PROTOCOL_CASES:
            row = {m: {"ts": list(np.full(5, 16.0)), "n_datasets": 1, "asimov_ts": 16.0} for m in PROTOCOL_METHODS}
            row["single_cut"]["ts"] = list(np.full(5, 16.0 * 1.1**2))
            row["classes"]["ts"] = list(np.full(5, 16.0 * 1.2**2))
            row["classes_psf"]["ts"] = list(np.full(5, 16.0 * g**2))
            (tmp_path / f"seed{s}_f1_{c}.json").write_text(json.dumps(row))
    cases = {c: {} for c in PROTOCOL_CASES}
    res = {s: run_protocol_seed(s, tmp_path, {"WCDA": (0, 0)}, factors=(1.0,), cases=cases) for s in gains}
    out = summarise_protocol(res)["x1"]
    assert out["seeds"] == [10, 20, 30]
    med = out["median"]
    assert med["ratio_single_cut"] == pytest.approx(1.1) and med["ratio_classes"] == pytest.approx(1.2)
    assert med["gain_classes_over_single"] == pytest.approx(1.2 / 1.1)
    assert med["ratio_classes_psf"] == pytest.approx(1.4)
    # the 68 % bootstrap interval over three seeds of 1.2, 1.4, 1.6: around the mean, inside the range
    assert 1.2 <= med["ratio_classes_psf_lo"] < 1.4 < med["ratio_classes_psf_hi"] <= 1.6
    assert med["ratio_classes_lo"] == pytest.approx(1.2) == med["ratio_classes_hi"]
    assert plot_class_protocol(summarise_protocol(res), tmp_path).stat().st_size > 10000
    # the noise correction: a class-bin measured on n effective background events keeps n / (n + 1) of its
    # Asimov TS; exact ones (the traditional cut, no background event) keep all of it
    from skyfit.ghsep import noise_corrected_asimov

    sch = ClassScheme(np.array([[0.5, 1.0, 0.0], [0.5, 0.0, 0.0]]), np.array([[0.1, 1.0, 0.0], [0.3, 0.0, 0.0]]),
                      np.ones((2, 3)), ("a", "b"), np.array([[1.0, 50.0, 0.0], [3.0, 0.0, 0.0]]),
                      np.zeros((2, 3), bool))  # fmt: skip
    row = {"asimov_ts_per_dataset": {"WCDA_a": [4.0, 2.0], "WCDA_b": [8.0]}}
    assert noise_corrected_asimov(row, {"WCDA": sch}) == pytest.approx(4.0 / 2 + 2.0 + 8.0 * 3 / 4)
    # a resumed run with other settings than the seed's classes were made with is refused
    (tmp_path / "seed40_schemes.json").write_text(json.dumps({"setup": {"sizes": {"WCDA": [5, 5]}}, "schemes": {}}))
    with pytest.raises(ValueError, match="seed40_schemes.json"):
        run_protocol_seed(40, tmp_path, {"WCDA": (0, 0)}, factors=(1.0,), cases=cases)

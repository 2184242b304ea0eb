"""ML gamma/hadron separation: features, networks, model files, cuts, the significance study, HAWC."""

import json

import numpy as np
import pytest

from skyfit.cli import main
from skyfit.ghsep import (
    FEATURES,
    GHSepError,
    analysis_bin,
    compare_at_equal_efficiency,
    effective_count,
    energy_calibration,
    feature_matrix,
    labelled_sample,
    load_model,
    optimise_cuts,
    separability_after_cut,
    significance_study,
    train_classifier,
    weighted_auc,
    weighted_efficiency,
)


def _toy(n=4000, seed=0):
    """Three features; gammas and background are Gaussians 1.5 sigma apart in the first two."""
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=n) < 0.5).astype(float)
    x = rng.normal(size=(n, 3))
    x[:, 0] += 1.5 * y
    x[:, 1] -= 1.5 * y
    return x, y


def _auc(s, y):
    from scipy.stats import mannwhitneyu

    return mannwhitneyu(s[y == 1], s[y == 0]).statistic / ((y == 1).sum() * (y == 0).sum())


@pytest.fixture(scope="module")
def toy_model():
    x, y = _toy()
    names = FEATURES["WCDA"][:3]
    return train_classifier(x, y, np.ones(len(y)), names, "WCDA", epochs=8, hyper={"width": 16}), names


def test_missing_column_is_named():
    with pytest.raises(GHSepError, match="COMPACTNESS"):
        feature_matrix({"NHIT": np.ones(3)}, FEATURES["WCDA"], "my table")


def test_network_learns_a_separable_toy_and_round_trips(tmp_path, toy_model):
    model, names = toy_model
    x, y = _toy(seed=1)  # independent events
    # the features are transforms of columns: invert them to build a table that gives x
    table = {"NHIT": 10 ** x[:, 0], "COMPACTNESS": 10 ** x[:, 1], "PINCNESS": x[:, 2] * 10.0}
    s = model.score(table)
    # the Bayes-optimal AUC of two unit Gaussians 1.5 sqrt(2) apart is Phi(1.5) = 0.933
    assert 0.9 < _auc(s, y) < 0.95
    path = model.save(tmp_path / "m.npz")
    again = load_model(path)
    np.testing.assert_allclose(again.score(table), s, rtol=1e-6)
    assert again.features == tuple(names)


def test_model_files_that_are_missing_corrupt_or_for_other_features_are_refused(tmp_path, toy_model):
    model, names = toy_model
    with pytest.raises(GHSepError, match="no such model file"):
        load_model(tmp_path / "nothere.npz")
    bad = tmp_path / "corrupt.npz"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(GHSepError, match="corrupt.npz"):
        load_model(bad)
    path = model.save(tmp_path / "m.npz")
    with pytest.raises(GHSepError, match="trained on features"):
        load_model(path, features=FEATURES["KM2A"])
    with pytest.raises(GHSepError, match="a WCDA model"):
        load_model(path, instrument="KM2A")
    # another format version
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(bytes(arrays["header"]).decode())
    header["version"] = 99
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(tmp_path / "v99.npz", **arrays)
    with pytest.raises(GHSepError, match="version 99"):
        load_model(tmp_path / "v99.npz")
    # a truncated file
    raw = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(GHSepError, match="cut.npz"):
        load_model(tmp_path / "cut.npz")
    # a model scoring a table without its columns
    with pytest.raises(GHSepError, match="NHIT"):
        model.score({"N_E": np.ones(4)})


def test_q_optimised_cut_on_known_distributions():
    # gamma scores uniform: eff_gamma(t) = 1 - t; background density 3 (1 - s)^2: eff_bkg(t) = (1 - t)^3;
    # Q = (1 - t)^-1/2 rises with t, so the optimum is at the gamma-efficiency floor
    rng = np.random.default_rng(3)
    g = rng.uniform(size=200_000)
    b = 1 - rng.uniform(size=200_000) ** (1 / 3)
    one = np.ones_like(g)
    cuts = optimise_cuts(g, one, np.zeros(g.size, int), b, one, np.zeros(b.size, int), min_gamma_eff=0.3,
                         min_bkg_events=10, n_thresholds=71)  # fmt: skip
    eff, _ = weighted_efficiency(g >= cuts[0], one)
    assert abs(eff - 0.3) < 0.01
    # with a floor of 5000 surviving background events the cut must stop earlier: (1 - t)^3 >= 0.025
    cuts = optimise_cuts(g, one, np.zeros(g.size, int), b, one, np.zeros(b.size, int), min_gamma_eff=0.1,
                         min_bkg_events=5000, n_thresholds=901)  # fmt: skip
    assert np.sum(b >= cuts[0]) >= 5000
    assert abs((1 - cuts[0]) - 0.025 ** (1 / 3)) < 0.02


def test_q_optimised_cut_is_not_tuned_on_a_few_heavy_background_events():
    # above 0.6 the background is 37 light events and 3 heavy ones: 40 raw events, worth about 4; Q is
    # highest there, but a cut tuned on four events' worth would be noise: the cut must stay below 0.6
    rng = np.random.default_rng(5)
    g = rng.uniform(size=20_000)
    b = np.r_[rng.uniform(0, 0.6, 10_000), rng.uniform(0.6, 1.0, 40)]
    wb = np.r_[np.ones(10_000), np.full(37, 0.01), np.ones(3)]
    zg, zb = np.zeros(g.size, int), np.zeros(b.size, int)
    assert np.sum(b >= 0.6) >= 20 and effective_count(wb[b >= 0.6]) < 5
    cut = optimise_cuts(g, np.ones_like(g), zg, b, wb, zb, min_gamma_eff=0.2, min_bkg_events=20, n_thresholds=41)[0]
    assert cut < 0.6
    assert effective_count(wb[b >= cut]) >= 20


def test_equal_efficiency_comparison():
    rng = np.random.default_rng(4)
    n = 50_000
    ml_g, ml_b = rng.normal(2, 1, n), rng.normal(0, 1, n)
    noisy_g, noisy_b = ml_g + rng.normal(0, 1.5, n), ml_b + rng.normal(0, 1.5, n)  # a worse discriminant
    w, zeros = np.ones(n), np.zeros(n, int)
    same = compare_at_equal_efficiency(ml_g, ml_b, ml_g, ml_b, w, w, zeros, zeros, 0.5)[0]
    assert same["reduction"] == pytest.approx(1.0)
    row = compare_at_equal_efficiency(noisy_g, noisy_b, ml_g, ml_b, w, w, zeros, zeros, 0.5)[0]
    # analytic: at 50 % gamma efficiency the thresholds sit at the gamma means; background survival is
    # Phi(-2) = 0.0228 for ML and Phi(-2 / sqrt(1 + 1.5^2)) = 0.133 for the noisy one: ratio 5.8
    assert row["gamma_eff_ml"] == pytest.approx(0.5, abs=0.01)
    assert row["reduction"] == pytest.approx(0.1333 / 0.02275, rel=0.1)


def test_significance_follows_the_efficiency_prediction():
    # background 4x lower at the same gamma efficiency in every WCDA bin: Q = 2, a faint source's
    # significance doubles; KM2A unchanged
    ratios = {"WCDA": (np.ones(6), np.full(6, 0.25)), "KM2A": (np.ones(9), np.ones(9))}
    out = significance_study(ratios, 120.0, 22.0, 0.0, 0.01, n_realisations=20, radius_deg=2.0, seed=5)
    s = out["summary"]
    asimov_wcda = np.sum(out["before"]["ts_asimov_per_bin"]["WCDA"])
    asimov_km2a = np.sum(out["before"]["ts_asimov_per_bin"]["KM2A"])
    # the background-dominated limit: every WCDA bin's TS x 4
    expected = np.sqrt((4 * asimov_wcda + asimov_km2a) / (asimov_wcda + asimov_km2a))
    assert s["ratio_q_limit"] == pytest.approx(expected, rel=1e-6)
    # a 0.01-Crab source is not far below the background in the high WCDA bins: the Asimov prediction
    # lies below that limit, above 1, and the fitted realisations follow it
    assert 1.2 < s["ratio_predicted"] < s["ratio_q_limit"]
    assert s["ratio_after_before"] == pytest.approx(s["ratio_predicted"], rel=0.15)
    # the fitted amplitude is unbiased in both
    for label in ("before", "after"):
        assert abs(np.mean(out[label]["amplitude_over_true"]) - 1) < 0.5


def test_labelled_sample_weights_bins_and_hits():
    s = labelled_sample("WCDA", 1500, 1500, seed=7, hits=True, k_hits=16)
    g, b = s["gamma"], s["background"]
    assert len(g["BIN"]) > 100 and len(b["BIN"]) > 100
    assert np.all(g["WEIGHT"] > 0) and np.all(b["WEIGHT"] > 0)
    assert set(np.unique(b["PARTICLE"])) == {"proton", "electron"}
    # gammas weighted to the Crab's falling spectrum: weight x E^-2 density follows E^-2.7ish
    lo, hi = g["TRUE_ENERGY"] < 1.0, g["TRUE_ENERGY"] > 5.0
    assert np.mean(g["WEIGHT"][lo]) > np.mean(g["WEIGHT"][hi])
    cloud = g["CLOUD"]
    assert cloud.shape == (len(g["BIN"]), 16, 4)
    # hits sorted by signal within each event, mask set where there are hits
    assert np.all(np.diff(cloud[:, :, 1], axis=1)[cloud[:, 1:, 3] > 0] <= 1e-6)
    assert np.all(cloud[:, 0, 3] == 1)
    np.testing.assert_array_equal(analysis_bin(g, "WCDA"), g["BIN"])


def test_km2a_energy_bins_follow_true_energy():
    s = labelled_sample("KM2A", 1500, 300, seed=9)
    calib = energy_calibration(s["gamma"], "KM2A")
    bins = analysis_bin(s["gamma"], "KM2A", calib)
    true_bin = np.floor((np.log10(s["gamma"]["TRUE_ENERGY"]) - 1.4) / 0.2)
    ok = bins >= 0
    assert np.mean(np.abs(bins[ok] - true_bin[ok]) <= 1) > 0.8
    with pytest.raises(GHSepError, match="calibration"):
        analysis_bin(s["gamma"], "KM2A")


def test_cli_train_apply_report(tmp_path, capsys):
    assert main(["ghsep", "train", "--instrument", "KM2A", "--n-gamma", "1500", "--n-background", "3000",
                 "--epochs", "3", "--outdir", str(tmp_path)]) == 0  # fmt: skip
    model = tmp_path / "ghsep_KM2A.npz"
    assert main(["showers", "simulate", "--instrument", "KM2A", "--n", "300", "--outdir", str(tmp_path)]) == 0
    events = tmp_path / "showers.parquet"
    assert main(["ghsep", "apply", str(model), str(events), "--outdir", str(tmp_path / "scored")]) == 0
    from skyfit.events import EventFile

    f = EventFile(tmp_path / "scored" / "showers.gh.parquet")
    t = f.read(("GH_SCORE", "GH_PASS"))
    assert len(t["GH_SCORE"]) == 300 and np.all((t["GH_SCORE"] >= 0) & (t["GH_SCORE"] <= 1))
    # a test sample with the training or tuning seed is refused
    capsys.readouterr()
    assert main(["ghsep", "report", str(model), "--seed", "1", "--realisations", "0"]) == 2
    assert "tuning sample" in capsys.readouterr().err
    assert main(["ghsep", "report", str(model), "--n-gamma", "1500", "--n-background", "3000",
                 "--realisations", "0", "--outdir", str(tmp_path / "rep")]) == 0  # fmt: skip
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["instrument"] == "KM2A" and rep["equal_efficiency"] and rep["model"] == str(model)
    assert (tmp_path / "rep" / "roc_KM2A.png").exists()
    # a corrupt model file: a clear error naming it, exit status 2
    bad = tmp_path / "bad.npz"
    bad.write_text("garbage")
    capsys.readouterr()
    assert main(["ghsep", "apply", str(bad), str(events)]) == 2
    assert "bad.npz" in capsys.readouterr().err
    # a table without the model's features
    wcda = tmp_path / "wcda"
    assert main(["showers", "simulate", "--instrument", "WCDA", "--n", "200", "--outdir", str(wcda)]) == 0
    capsys.readouterr()
    assert main(["ghsep", "apply", str(model), str(wcda / "showers.parquet")]) == 2
    assert "N_E" in capsys.readouterr().err


def test_independent_seed_refuses_the_training_and_tuning_seeds(toy_model):
    from skyfit.ghsep import independent_seed

    model, _ = toy_model
    model.meta["samples"] = {"training_seed": 5}
    assert independent_seed(model) == 7 and independent_seed(model, 3) == 3
    for seed in (5, 6):
        with pytest.raises(GHSepError, match="training or tuning sample"):
            independent_seed(model, seed)


@pytest.mark.data
def test_hawc_weak_supervision_gain_is_quoted_with_its_interval(hawc_data):
    from skyfit.ghsep.hawc import read_onoff, weak_supervision_gain

    d = read_onoff(hawc_data)
    assert set(d["alpha"]) == {5, 6, 7, 8, 9}
    # ON: a disc of 0.25-0.45 deg; OFF: the declination band across the 8.8 deg-wide field
    assert all(0.03 < a < 0.3 for a in d["alpha"].values())
    r = weak_supervision_gain(d, n_boot=50, epochs=5, n_repeats=2)
    # the Crab is detected before any ML cut (HAWC's own analysis: well above 10 sigma in these bins)
    assert r["signif_before"] > 10
    assert len(r["gain_repeats"]) == 2
    assert r["gain_lo95"] <= r["gain_lo68"] <= r["gain_hi68"] <= r["gain_hi95"]
    assert r["gain_lo95"] <= r["gain"] <= r["gain_hi95"]
    # null test: ON on an empty position holds background only; the cut must keep ON and OFF alike,
    # or alpha (fixed before the cut) would be biased and the gain with it
    null = weak_supervision_gain(read_onoff(hawc_data, on_position=(80.6, 22.0145)), n_boot=10, epochs=5)
    assert abs(null["on_kept_over_off_kept"] - 1) < 4 * null["on_kept_over_off_kept_err"] + 0.02


def test_weighted_auc_and_effective_count():
    rng = np.random.default_rng(3)
    sg, sb = rng.normal(1.0, 1.0, 300), rng.normal(0.0, 1.0, 400)
    # unit weights: the Mann-Whitney statistic; integer weights: the same as repeating the events
    y = np.r_[np.ones(300), np.zeros(400)]
    assert weighted_auc(sg, np.ones(300), sb, np.ones(400)) == pytest.approx(_auc(np.r_[sg, sb], y), rel=1e-12)
    wg, wb = rng.integers(1, 4, 300), rng.integers(1, 4, 400)
    rep = weighted_auc(np.repeat(sg, wg), np.ones(wg.sum()), np.repeat(sb, wb), np.ones(wb.sum()))
    assert weighted_auc(sg, wg, sb, wb) == pytest.approx(rep, rel=1e-12)
    # ties count one half; separated samples give 1
    assert weighted_auc(np.zeros(5), np.ones(5), np.zeros(7), np.ones(7)) == 0.5
    assert weighted_auc(sb + 100, np.ones(400), sb, np.ones(400)) == 1.0
    assert effective_count(np.ones(50)) == pytest.approx(50)
    assert effective_count(np.r_[1000.0, np.ones(50)]) < 1.2


def _wcda_like(n, rng, hidden_gap):
    """WCDA-like tables, one bin: a third of the background has the gammas' compactness, the rest a low
    one that fails a compactness cut; PINCNESS separates gammas from background by ``hidden_gap`` (0:
    nothing is left to separate among the events that pass the cut)."""
    out = {}
    for cls, y in (("gamma", 1), ("background", 0)):
        like = (rng.uniform(size=n) < 1 / 3) | (y == 1)
        comp = np.where(like, rng.normal(14.0, 3.0, n), rng.normal(5.0, 1.0, n))
        t = {"BIN": np.zeros(n, int), "COMPACTNESS": comp, "NHIT": rng.integers(50, 80, n),
             "PINCNESS": rng.normal(2.0 + hidden_gap * y, 0.5, n), "DISPERSION": rng.uniform(20, 60, n),
             "CXPE40": rng.uniform(5, 20, n), "SUM_SIGNAL": rng.uniform(500, 900, n),
             "REC_ZENITH": rng.uniform(0, 40, n), "REC_CORE_X": rng.normal(0, 50, n),
             "REC_CORE_Y": rng.normal(0, 50, n), "WEIGHT": np.ones(n)}  # fmt: skip
        out[cls] = t
    return out


@pytest.mark.parametrize("gap, auc_range", [(0.0, (0.4, 0.6)), (2.0, (0.95, 1.0))])
def test_separability_after_cut_measures_what_is_left(gap, auc_range):
    rng = np.random.default_rng(11)
    tune, test = _wcda_like(3000, rng, gap), _wcda_like(3000, rng, gap)
    feats = ("log10_compactness", "log10_nhit")  # the model under test does not read PINCNESS
    x = np.concatenate([feature_matrix(tune[c], feats) for c in ("gamma", "background")])
    y = np.r_[np.ones(3000), np.zeros(3000)]
    model = train_classifier(x, y, np.ones(6000), feats, "WCDA", epochs=2, seed=0)
    thr = float(np.quantile(tune["gamma"]["COMPACTNESS"], 0.5))
    model.meta["traditional_cut"] = {"column": "COMPACTNESS", "gamma_efficiency": 0.5, "thresholds": {0: thr}}
    sep = separability_after_cut(model, tune, test, extra_features=("pincness",), epochs=15)
    assert sep["features"] == ["log10_compactness", "log10_nhit", "pincness"]
    (row,) = sep["per_bin"]
    assert row["n_bkg"] == int(np.sum(test["background"]["COMPACTNESS"] >= thr))
    assert auc_range[0] <= row["auc"] <= auc_range[1]
    assert row["gamma_kept"] == pytest.approx(0.9, abs=0.02)
    if gap == 0.0:
        assert row["further_reduction"] < 1.3
    else:  # a perfect separation may leave none: then a lower limit is quoted
        assert row["bkg_left"] < 0.2
        assert (row["further_reduction"] or row["further_reduction_lo"]) > 5

"""Air-shower simulation, reconstruction and the traditional cut (issue #3, first part)."""

import numpy as np
import pytest

from skyfit.showers import (
    Hits,
    Layout,
    LayoutError,
    hits_table,
    km2a_layouts,
    sample_primaries,
    simulate_hits,
    simulate_shower_events,
    traditional_cut,
    wcda_layout,
)
from skyfit.showers import physics as ph
from skyfit.showers.reconstruct import noise_filter_performance, reconstruct


def test_physics_parametrisations_behave():
    # Greisen size peaks near Xmax = X0 ln(E/Ec) and grows with energy; age 1 at the maximum
    e = np.array([1.0, 10.0])
    b0 = np.log(e / ph.EC_TEV)
    size_max, age = ph.electron_size(e, ph.X0 * b0, np.zeros(2, int))
    assert np.allclose(age, 1.0) and size_max[1] > 8 * size_max[0]
    # NKG integrates to the size
    r = np.geomspace(0.01, 5000, 20000)
    total = np.trapezoid(2 * np.pi * r * ph.nkg_density(r, 1000.0, 1.3), r)
    assert total == pytest.approx(1000.0, rel=0.02)
    # muons: protons muon-rich, iron richer at equal energy, photons poor [Matthews05]
    n = ph.muon_number(np.array([0, 1, 26]), np.array([10.0, 10.0, 10.0]))
    assert n[0] < 0.1 * n[1] < n[2]
    assert ph.species_z("Fe") == 26 and ph.species_z("CNO") == 7 and ph.species_z(2) == 2


def test_bad_input_is_refused_clearly():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown particle 'pion'"):
        sample_primaries(10, "pion", rng=rng)
    with pytest.raises(ValueError, match="energies must satisfy"):
        sample_primaries(10, "gamma", 0.001, 1.0, rng=rng)
    with pytest.raises(ValueError, match="energies must satisfy"):
        sample_primaries(10, "proton", 100.0, 1e5, rng=rng)
    with pytest.raises(LayoutError, match="equal-length"):
        Layout("bad", np.zeros(3), np.zeros(2), 1.0, 1.0, 1.0)
    with pytest.raises(LayoutError, match="share a position"):
        Layout("bad", np.zeros(2), np.zeros(2), 1.0, 1.0, 1.0)
    with pytest.raises(LayoutError, match="area must be positive"):
        Layout("bad", np.arange(2.0), np.zeros(2), 0.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="instrument must be"):
        simulate_shower_events("HAWC", n=10)


def test_layouts_have_the_documented_sizes():
    w = wcda_layout()
    ed, md = km2a_layouts()
    assert w.n == 3120 and w.area_m2 == 25.0
    assert 5000 < ed.n < 5500 and 1100 < md.n < 1400


def test_reconstruction_and_noise_filter_on_vertical_gammas():
    rng = np.random.default_rng(4)
    lay = wcda_layout()
    p = sample_primaries(300, "gamma", 3.0, 5.0, 2.0, 20.0, 60.0, rng)
    hits = simulate_hits(p, lay, rng)
    rec = reconstruct(hits, lay)
    err = np.hypot(rec["REC_CORE_X"] - p["CORE_X"], rec["REC_CORE_Y"] - p["CORE_Y"])
    assert np.median(err) < 5.0
    from skyfit.showers import angular_error_deg

    ang = angular_error_deg(p["ZENITH"], p["AZIMUTH"], rec["REC_ZENITH"], rec["REC_AZIMUTH"])
    assert np.percentile(ang, 68) < 0.5
    purity, eff = noise_filter_performance(hits, rec["KEPT"])
    assert purity > 0.95 and eff > 0.95
    # noise-free simulation: the filter keeps almost every hit
    quiet = wcda_layout(noise_rate_hz=0.0)
    h2 = simulate_hits(p, quiet, np.random.default_rng(5))
    assert not h2.noise.any()


def test_km2a_muon_detectors_see_the_electromagnetic_arrays_showers(monkeypatch):
    # half the protons gamma-like (a leading neutral pion with a fraction x of the energy; the muons of
    # the rest, (1 - x) E): their muon detectors must see that, for they watch the same shower as the
    # electromagnetic detectors (they drew their own before)
    from skyfit.showers import physics

    monkeypatch.setattr(physics, "LEADING_PI0_PROBABILITY", 0.5)
    ed, md = km2a_layouts()
    rng = np.random.default_rng(8)
    p = sample_primaries(200, "proton", 80.0, 120.0, 2.0, 20.0, 100.0, rng)
    truth = {}
    simulate_hits(p, ed, rng, truth)
    shower = truth["SHOWER"]
    lead = shower["LEADING_PI0"]
    assert 60 < lead.sum() < 140
    md_truth = {}
    mh = simulate_hits(p, md, rng, md_truth, shower=shower)
    for k in ("X1", "LEADING_PI0"):
        np.testing.assert_array_equal(md_truth[k], truth[k])
    x = shower["LEAD_X"]
    assert np.all((x[lead] >= 0.5) & (x[lead] < 1)) and np.all(x[~lead] == 0)
    n_mu = np.bincount(mh.shower[~mh.noise], minlength=200)  # muon detectors hit, per shower
    assert np.median(n_mu[lead]) < 0.6 * np.median(n_mu[~lead])
    # the muons are the rest's: (1 - x)^0.9 of a proton's, under a third for x > 0.7
    assert (lead & (x > 0.7)).sum() >= 5
    assert np.median(n_mu[lead & (x > 0.7)]) < 0.5 * np.median(n_mu[~lead])
    assert np.median(n_mu[lead & (x > 0.7)]) < np.median(n_mu[lead & (x < 0.6)])
    with pytest.raises(ValueError, match="same primaries"):
        simulate_hits({k: v[:10] for k, v in p.items()}, md, rng, shower=shower)


def test_compactness_separates_gammas_from_protons():
    g = simulate_shower_events("WCDA", "gamma", 3000, e_min_tev=1.0, e_max_tev=3.0, throw_radius_m=120, seed=1)
    p = simulate_shower_events("WCDA", "proton", 3000, e_min_tev=2.5, e_max_tev=8.0, throw_radius_m=120, seed=2)
    cuts = traditional_cut(g, p, "COMPACTNESS", 0.5)
    assert cuts, "no bin with enough events"
    for _thr, eff, surv, _ng, _nb in cuts.values():
        assert 0.45 < eff < 0.6
        assert surv < 0.1  # protons are far less compact (muons and sub-cascades far from the core)
    assert np.median(p["TRUE_N_MU"]) > 10 * np.median(g["TRUE_N_MU"])


def test_km2a_muon_content_rejects_protons():
    g = simulate_shower_events("KM2A", "gamma", 200, e_min_tev=80, e_max_tev=120, seed=3)
    p = simulate_shower_events("KM2A", "proton", 200, e_min_tev=150, e_max_tev=300, seed=4)
    thr = np.quantile(g["MU_E_RATIO"], 0.9)
    assert np.mean(p["MU_E_RATIO"] <= thr) < 0.02


def test_event_tables_round_trip_through_binning(tmp_path):
    from skyfit.events import write_events
    from skyfit.maps import HealpixROI
    from skyfit.stream import bin_event_files

    t = simulate_shower_events("WCDA", "proton", 1500, seed=7)
    assert np.all(np.diff(t["TIME"]) >= 0)
    cols = {k: v for k, v in t.items() if k != "SPECIES"}
    write_events(tmp_path / "showers.parquet", cols, {"INSTRUME": "WCDA"})
    write_events(tmp_path / "showers.fits", cols)
    roi = HealpixROI.from_disc((180.0, 30.0), 90.0, 16, True)
    a = bin_event_files(tmp_path / "showers.parquet", roi, 6, progress=False)
    b = bin_event_files(tmp_path / "showers.fits", roi, 6, progress=False)
    assert np.array_equal(a.counts.data, b.counts.data)
    r = a.report
    assert r["n_binned"] + r["n_outside_roi"] + r["n_outside_bins"] == r["n_events"] == 1500
    from skyfit.maps import bin_events

    ref, _ = bin_events(t["RA"], t["DEC"], t["BIN"], roi, 6)
    assert np.array_equal(a.counts.data, ref) and ref.sum() > 0


def test_cli_showers_simulate_and_report(tmp_path, monkeypatch, capsys):
    from skyfit.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["showers", "simulate", "--n", "1500", "--e-min", "1", "--e-max", "5", "--outdir", "g"]) == 0
    # the deprecated --output FILE still names the file (here FITS) for one release
    assert main(["showers", "simulate", "--particle", "proton", "--n", "1500", "--e-min", "2", "--e-max", "12",
                 "--seed", "1", "--output", "p.fits"]) == 0  # fmt: skip
    assert "--output FILE is deprecated" in capsys.readouterr().err
    assert main(["showers", "report", "g/showers.parquet", "p.fits", "--outdir", "rep"]) == 0
    assert (tmp_path / "rep" / "roc.png").exists() and (tmp_path / "rep" / "cut_table.ecsv").exists()
    assert main(["showers", "simulate", "--particle", "pion", "--n", "10"]) == 2


def test_the_cut_table_is_the_traditional_cut_per_bin():
    from skyfit.showers import cut_table, quality_cut

    g = quality_cut(simulate_shower_events("WCDA", "gamma", 1500, e_min_tev=1.0, e_max_tev=5.0, seed=1))
    p = quality_cut(simulate_shower_events("WCDA", "proton", 1500, e_min_tev=2.0, e_max_tev=12.0, seed=2))
    assert g["CORE_IN_ARRAY"].all() and p["CORE_IN_ARRAY"].all()
    for higher, variable, eff in ((True, "COMPACTNESS", 0.5), (False, "PINCNESS", 0.7)):
        t = cut_table(g, p, variable, eff, higher_is_gamma=higher)
        cuts = traditional_cut(g, p, variable, eff, higher_is_gamma=higher)
        assert list(t["bin"]) == list(cuts) and len(t) > 0
        for row in t:
            assert (row["threshold"], row["gamma_efficiency"], row["background_survival"]) == cuts[row["bin"]][:3]
            sel = g["BIN"] == row["bin"]
            assert row["psf68_deg"] == np.nanpercentile(g["ANGULAR_ERROR"][sel], 68)


def test_one_threshold_rule_for_showers_and_ghsep():
    """The per-bin threshold at a gamma efficiency lives in skyfit.showers; skyfit.ghsep uses it. Unweighted it is
    numpy's interpolated quantile (the traditional cut's, as before); weighted, the highest score whose weighted
    fraction at or above it reaches the efficiency."""
    import skyfit.ghsep as ghsep
    from skyfit.showers import threshold_at_efficiency, thresholds_per_bin

    rng = np.random.default_rng(2)
    score, w, bins = rng.normal(size=400), rng.uniform(0.1, 3.0, 400), rng.integers(-1, 3, 400)
    for eff in (0.1, 0.5, 0.9):
        assert threshold_at_efficiency(score, None, eff) == np.quantile(score, 1 - eff)
        thr = threshold_at_efficiency(score, w, eff)
        assert thr in score and np.sum(w[score >= thr]) / w.sum() >= eff
        assert np.sum(w[score > thr]) / w.sum() < eff
        assert ghsep.threshold_at_efficiency(score, w, eff) == thr
    per_bin = thresholds_per_bin(score, bins, 0.5, w)
    assert set(per_bin) == {0, 1, 2}  # bin -1 is outside the analysis
    assert per_bin[1] == threshold_at_efficiency(score[bins == 1], w[bins == 1], 0.5)
    assert thresholds_per_bin(score[:30], bins[:30], 0.5) == {}  # fewer than 20 events per bin
    with pytest.raises(ghsep.GHSepError, match="no events"):
        ghsep.threshold_at_efficiency([], [], 0.5)


def test_the_old_name_simulate_events_still_works_and_warns():
    from skyfit.showers.pipeline import simulate_events

    with pytest.warns(FutureWarning, match="simulate_shower_events"):
        old = simulate_events("WCDA", "gamma", 50, seed=3)
    new = simulate_shower_events("WCDA", "gamma", 50, seed=3)
    assert old.keys() == new.keys() and all(np.array_equal(old[k], new[k], equal_nan=old[k].dtype.kind == "f")
                                             for k in old)  # fmt: skip


def test_derived_response_has_area_psf_and_background():
    from skyfit.showers import derive_response

    ng, nb = 3000, 3000
    g = simulate_shower_events("WCDA", "gamma", ng, index=2.0, seed=11)
    p = simulate_shower_events("WCDA", "proton", nb, index=2.0, e_min_tev=0.5, e_max_tev=100, seed=12)
    r = derive_response(g, p, 300.0, ng, nb)
    assert r["bins"], "no analysis bin populated"
    areas = np.concatenate([d["effective_area_m2"] for d in r["bins"].values()])
    # no bin can have more area than the throw disc; the pond (78,000 m^2) bounds a fully efficient bin
    assert np.nanmax(areas) < np.pi * 300.0**2 and np.nanmax(areas) > 1e3
    meds = [d["log10_energy_16_50_84"][1] for d in r["bins"].values() if d["n_gamma"] > 50]
    assert np.all(np.diff(meds) > -0.05)  # higher nHit bins hold higher energies
    assert all(d["background_rate_per_sr"] >= 0 for d in r["bins"].values())


def test_cli_reconstruct_from_stored_hits_reproduces_the_simulation(tmp_path, monkeypatch):
    from skyfit.cli import main
    from skyfit.events import EventFile

    monkeypatch.chdir(tmp_path)
    assert main(["showers", "simulate", "--n", "800", "--e-min", "1", "--e-max", "5", "--hits", "--outdir", "g"]) == 0
    assert main(["showers", "reconstruct", "g/showers.parquet", "--hits", "g/hits.parquet", "--outdir", "r"]) == 0
    cols = ("EVENT_ID", "NHIT", "REC_ZENITH", "COMPACTNESS")
    a, b = EventFile("g/showers.parquet").read(cols), EventFile("r/showers.parquet").read(cols)
    assert np.array_equal(a["EVENT_ID"], b["EVENT_ID"]) and np.array_equal(a["NHIT"], b["NHIT"])
    assert np.allclose(a["REC_ZENITH"], b["REC_ZENITH"], equal_nan=True)
    assert main(["showers", "reconstruct", "g/showers.parquet", "--hits", "g/hits.parquet", "--window-ns", "8",
                 "--outdir", "narrow"]) == 0  # fmt: skip
    with pytest.raises(SystemExit) as exc:  # no --hits: a usage error
        main(["showers", "reconstruct", "g/showers.parquet"])
    assert exc.value.code == 2


def test_core_finder_ignores_an_isolated_large_signal():
    # a muon far from the core (150 PE in one cell) used to capture a signal-weighted core; the
    # densest-neighbourhood seed keeps the core on the shower
    from skyfit.showers import Hits

    rng = np.random.default_rng(7)
    lay = wcda_layout(noise_rate_hz=0.0)
    p = sample_primaries(200, "gamma", 0.8, 1.5, 2.0, 20.0, 60.0, rng)
    hits = simulate_hits(p, lay, rng)
    far = np.argmin(np.hypot(lay.x - 100.0, lay.y - 100.0))  # one cell ~100-200 m from every core
    t_far = np.array([np.median(hits.time[hits.shower == i]) for i in range(200)])
    muon = Hits(np.arange(200), np.full(200, far), np.full(200, 400.0), t_far, np.zeros(200, bool), 200)
    merged = Hits(*(np.concatenate([getattr(hits, f), getattr(muon, f)]) for f in ("shower", "detector", "signal",
                  "time", "noise")), 200)  # fmt: skip
    order = np.lexsort((merged.detector, merged.shower))
    merged = Hits(merged.shower[order], merged.detector[order], merged.signal[order], merged.time[order],
                  merged.noise[order], 200)  # fmt: skip
    rec = reconstruct(merged, lay)
    err = np.hypot(rec["REC_CORE_X"] - p["CORE_X"], rec["REC_CORE_Y"] - p["CORE_Y"])
    assert np.median(err) < 8.0
    assert np.mean(err > 50.0) < 0.05


def test_muons_spread_less_for_deep_showers_and_thresholds_set_the_muon_fraction():
    # Greisen's r0 shrinks with the production height above the site [Greisen60 scaled]
    r0 = ph.muon_ldf_r0(np.array([50.0, 300.0]), 1.0)
    assert r0[1] < 0.7 * r0[0] < ph.MU_LDF_R0
    # water Cherenkov cells see more of the muons than a counter under soil
    assert ph.muon_threshold_fraction(0.2) > 1.4 * ph.muon_threshold_fraction(1.0)
    assert ph.muon_threshold_fraction(1.0) == pytest.approx(0.25)
    # the LDF stays normalised for any r0
    r = np.geomspace(1.0, 2000.0, 20000)
    for r0_ in (60.0, 320.0):
        assert np.trapezoid(2 * np.pi * r * ph.muon_density(r, 10.0, r0_), r) == pytest.approx(10.0, rel=0.01)
    with pytest.raises(LayoutError, match="muon threshold"):
        Layout("bad", np.arange(2.0), np.zeros(2), 1.0, 1.0, 1.0, muon_threshold_gev=-1.0)


def test_importance_sampled_leading_pions_are_weighted_back_to_the_physical_rate():
    """Proton showers drawn with the leading neutral pion 25 times as often as physical carry weights that
    restore the physical rate (the weighted share of gamma-like showers is the constant, the mean weight
    1); the default draws the physical rate with weight 1; reweighting to 3x the constant triples the
    gamma-like share; a sampling probability outside (0, 1) is refused."""
    from skyfit.ghsep import reweight_leading_pi0
    from skyfit.showers.simulate import leading_pi0_weight

    rng = np.random.default_rng(5)
    n, q, p = 400_000, 0.05, ph.LEADING_PI0_PROBABILITY
    z = np.ones(n, int)
    lead = rng.uniform(size=n) < q
    w = leading_pi0_weight(z, lead, q)
    assert np.mean(w) == pytest.approx(1.0, abs=4 * np.sqrt(q * (1 - q) / n) * p / q + 1e-3)
    assert np.sum(w[lead]) / np.sum(w) == pytest.approx(p, rel=0.05)
    assert np.all(leading_pi0_weight(np.zeros(3, int), [True, False, True], q) == 1.0)  # gammas: untouched
    table = simulate_shower_events("KM2A", "proton", 300, e_min_tev=50, e_max_tev=100, seed=3,
                                   leading_pi0_sampling=0.3)  # fmt: skip
    assert 0.2 < np.mean(table["TRUE_LEADING_PI0"]) < 0.4
    # a gamma-like shower's weight: p / 0.3 times the density ratio of its pion's energy fraction x (drawn
    # uniformly in 1 - x on (0, 0.5], physically ~ (1 - x)^3): 4 ((1 - x) / 0.5)^3
    lx = table["TRUE_LEADING_PI0"]
    u = 1.0 - table["TRUE_LEAD_X"][lx]
    assert np.all((u > 0) & (u <= 0.5))
    np.testing.assert_allclose(table["LEAD_WEIGHT"][lx], p / 0.3 * 4.0 * (u / 0.5) ** 3, rtol=1e-12)
    default = simulate_shower_events("KM2A", "proton", 50, e_min_tev=50, e_max_tev=100, seed=3)
    assert np.all(default["LEAD_WEIGHT"] == 1.0)
    sample = {"Z": z, "TRUE_LEADING_PI0": lead, "WEIGHT": w}
    w3 = reweight_leading_pi0(sample, 3.0)
    assert np.sum(w3[lead]) / np.sum(w3) == pytest.approx(3 * p, rel=0.05)
    assert np.array_equal(reweight_leading_pi0(sample, 1.0), w)
    with pytest.raises(ValueError, match="leading-pion"):
        leading_pi0_weight(z, lead, 1.5)


def test_muon_scale_scales_the_nuclei_muons_and_leaves_gammas_and_the_default_alone():
    kw = dict(e_min_tev=30.0, e_max_tev=100.0, seed=4)
    base = simulate_shower_events("KM2A", "proton", 300, **kw)
    same = simulate_shower_events("KM2A", "proton", 300, muon_scale=1.0, **kw)
    for k in base:
        np.testing.assert_array_equal(base[k], same[k])
    more = simulate_shower_events("KM2A", "proton", 300, muon_scale=1.2, **kw)
    # the same showers (one batch: the random streams agree up to the muon draws): TRUE_N_MU is x 1.2 exactly
    a, b = (t["TRUE_N_MU"][np.argsort(t["EVENT_ID"])] for t in (base, more))
    np.testing.assert_allclose(b, 1.2 * a, rtol=1e-12)
    ratio = np.median(more["N_MU"][more["N_MU"] > 0]) / np.median(base["N_MU"][base["N_MU"] > 0])
    assert 1.1 < ratio < 1.3
    g = [simulate_shower_events("KM2A", "gamma", 100, muon_scale=s, **kw)["N_MU"] for s in (1.0, 1.2)]
    np.testing.assert_array_equal(g[0], g[1])
    with pytest.raises(ValueError, match="muon_scale must be a positive number"):
        simulate_shower_events("KM2A", "proton", 10, muon_scale=0.0, **kw)


def test_reconstruct_with_a_prefilter_drops_those_hits_and_keeps_the_default_without_one():
    recs = []
    simulate_shower_events("WCDA", "gamma", 300, e_min_tev=1.0, e_max_tev=5.0, seed=6, hits_out=recs)
    h = hits_table(recs)
    lay = wcda_layout()
    hits = Hits(h["EVENT_ID"], h["DETECTOR"].astype(np.int64), h["SIGNAL"], h["TIME_NS"], h["NOISE"], 300)
    ref = reconstruct(hits, lay)
    everything = reconstruct(hits, lay, kept=np.ones(h["NOISE"].size, bool))
    for k in ref:
        np.testing.assert_array_equal(ref[k], everything[k])
    clean = reconstruct(hits, lay, kept=~hits.noise)
    assert not np.any(clean["KEPT"] & hits.noise)
    assert noise_filter_performance(hits, clean["KEPT"])[0] == 1.0
    with pytest.raises(ValueError, match="one per hit"):
        reconstruct(hits, lay, kept=np.ones(3, bool))

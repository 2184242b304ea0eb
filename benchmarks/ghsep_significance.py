"""ML gamma/hadron separation: background reduction and the significance of 0.01-Crab sources (issue #7).

    python benchmarks/ghsep_significance.py [--n-gamma 40000] [--n-background 240000]
        [--km2a-gamma 20000] [--km2a-background 150000] [--realisations 100] [--pointcloud] [--cache DIR]
        [--outdir /tmp/skyfit-ghsep]

1. WCDA and KM2A: training, tuning and test samples from skyfit's shower simulation (independent seeds);
   an MLP on the event features (``--pointcloud``: also the deep-sets network on hit patterns, measured
   at equal efficiency beside it; the significance study uses the MLP's cuts).
2. Per analysis bin on the test sample: the background left by the ML cut at the traditional cut's
   gamma efficiency (WCDA compactness at 50 %, KM2A muon ratio at 90 %), and the Q-optimised ML cut's
   efficiency ratios to the traditional one. Each figure comes with the Kish effective number of the
   weighted background events behind it (n_eff: a bin measured with a few heavy events is uncertain
   whatever its raw count) and the share of gamma-like protons (a leading neutral pion) among them.
   Then what is left to separate after the traditional cut: a second MLP trained on the tuning sample's
   events that pass it (with, for KM2A, the electromagnetic detectors' pattern features too), its AUC
   and further background reduction at 90 % of the passing gammas on the test sample.
3. Significance before/after: one simulated year of the LHAASO-like WCDA + KM2A with a 0.01-Crab point
   source and a 0.01-Crab 0.3 deg Gaussian, at declination 22 deg and in the Galactic plane among the
   1LHAASO components; iminuit fits; compared with the prediction from eps_gamma / sqrt(eps_bkg).
4. HAWC pass-4 Crab events: the weakly supervised, cross-fitted gain with its bootstrap interval.

The last line is a JSON object of the figures.

Event classes (issue #29): ``--classes [--seeds 600,610,620,630,640] [--realisations 100]
[--outdir DIR] [--cache DIR]``. Protocol, written before the first run and kept:

- Population: per sample seed s (600, 610, 620, 630, 640), independent WCDA training, tuning and test
  samples (seeds s, s+1, s+2; WCDA 20000 gammas + 120000 cosmic rays thrown each) and KM2A ones (seeds
  s+5, s+6, s+7; 10000 + 150000); the protons' leading neutral pion drawn with probability 0.05 and
  weighted back to the simulator's constant (importance sampling).
- Methods, per analysis bin: the traditional cut (WCDA compactness at 50 % gamma efficiency, KM2A muon
  ratio at 90 %); the single ML cut (the MLP's Q-optimised cut); gammaness classes (four, at cumulative
  gamma efficiencies 0.2, 0.4, 0.7, 1 of the MLP score); gammaness x PSF classes (each gammaness class
  split at the quartiles of an angular-error network trained on the training gammas: 16 classes). Cuts
  and class edges set on the tuning sample only; efficiencies, background and PSF ratios measured on the
  test sample. Bins where the ML cut does not beat the traditional one on the tuning sample keep the
  traditional cut in every method.
- Cases: 0.01 Crab (log-parabola) at dec 22 deg and in the Galactic plane among the 1LHAASO components
  with the diffuse emission; a point source and a 0.3 deg Gaussian; one year of WCDA + KM2A; 100
  Poisson realisations per case, realisation k of every method drawn from the same random stream.
- Metric: per seed and case, the median sqrt(TS) of each method over the traditional cut's
  (``ratio_single_cut``, ``ratio_classes``, ``ratio_classes_psf``) and classes over the single cut
  (``gain_classes_over_single``); per case and for the median over the four cases, the mean over seeds
  with a 68 % interval from 10000 bootstrap resamplings of the seeds (``_lo``/``_hi``).
- The same at the leading-pion constant x0.3 and x3 (the test background reweighted; models, cuts and
  edges unchanged): the systematic band.
- Every (seed, constant, case) result is stored under ``--outdir`` when done; a rerun resumes.
- Diagnostic, added while the first run was under way (not one of the protocol's figures): the Asimov
  ratio of each method, and that ratio with each class-bin's TS share scaled by n / (n + 1), n the Kish
  effective count of its test background (``noise_corrected_asimov``): how much of a gain the noise of
  the measured class ratios could make.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from skyfit.ghsep import (
    build_model,
    equal_efficiency_summary,
    evaluate,
    labelled_sample,
    plot_roc,
    plot_significance,
    run_significance,
    separability_after_cut,
)
from skyfit.ghsep.hawc import read_onoff, weak_supervision_gain


def _print_equal_efficiency(ev, label):
    print(f"\n{label}: background at equal gamma efficiency (test sample)")
    print(
        " bin  eff_gamma  bkg trad          bkg ML            reduction      n_pass trad/ML  n_eff trad/ML"
        "  gamma-like p share trad/ML"
    )
    for r in ev["equal_efficiency"]:
        red = "—" if r["reduction"] is None else f"{r['reduction']:.2f} ± {r['reduction_err']:.2f}"
        lead = "/".join("—" if r[k] is None else f"{r[k]:.2f}" for k in ("leading_pi0_share_trad",
                                                                        "leading_pi0_share_ml"))  # fmt: skip
        print(f"{r['bin']:4d} {r['gamma_eff_trad']:10.3f}  {r['bkg_eff_trad']:.2e}±{r['bkg_eff_trad_err']:.1e}"
              f"  {r['bkg_eff_ml']:.2e}±{r['bkg_eff_ml_err']:.1e}  {red:>14}  {r['n_bkg_pass_trad']:6d}/"
              f"{r['n_bkg_pass_ml']:<6d}  {r['n_eff_bkg_pass_trad']:6.1f}/{r['n_eff_bkg_pass_ml']:<6.1f}"
              f"  {lead}")  # fmt: skip


def _print_separability(sep, label):
    print(
        f"\n{label}: what is left to separate among the events that pass the traditional cut "
        f"({sep['n_background_train']} background events to train on; features {', '.join(sep['features'])})"
    )
    print(" bin  n gamma/bkg (test)  n_eff bkg  AUC    bkg left at 90 % of the gammas  further reduction")
    for r in sep["per_bin"]:
        if r["auc"] is None:
            print(
                f"{r['bin']:4d} {r['n_gamma']:8d}/{r['n_bkg']:<9d} {r['n_eff_bkg']:9.1f}  too few background events "
                f"(train {r['n_bkg_train']}, test {r['n_bkg']})"
            )
        else:
            red = f"{r['further_reduction']:.2f}" if r["further_reduction"] is not None else (
                f"> {r['further_reduction_lo']:.1f} (none left)")  # fmt: skip
            print(
                f"{r['bin']:4d} {r['n_gamma']:8d}/{r['n_bkg']:<9d} {r['n_eff_bkg']:9.1f}  {r['auc']:.3f}  "
                f"{r['bkg_left']:.3f} ± {r['bkg_left_err']:.3f}                 {red}"
            )


def _print_ratios(ev):
    for k, v in sorted(ev["ratios"].items()):
        print(f"  bin {k}: {v['cut']:11s} r_gamma {v['r_gamma']:.3f}  r_bkg {v['r_bkg']:.4f}"
              f"{' (bound)' if v['bkg_bound'] else ''}  Q {v['q']:.2f}")  # fmt: skip


def _classes_main(args):
    """The event-class protocol (issue #29): see the docstring."""
    from skyfit.ghsep import (
        LEADING_PI0_FACTORS,
        PROTOCOL_CASES,
        plot_class_protocol,
        read_seed_schemes,
        run_protocol_seed,
        summarise_protocol,
    )

    t0 = time.perf_counter()
    sizes = {"WCDA": (20000, 120000), "KM2A": (10000, 150000)}
    seeds = [int(x) for x in args.seeds.split(",")]
    results = {s: {} for s in seeds}
    # the central value on every seed first, then the band: a run stopped early has the central figures
    for f in LEADING_PI0_FACTORS:
        for s in seeds:
            res = run_protocol_seed(s, Path(args.outdir) / "classes", sizes, factors=(f,),
                                    n_realisations=args.realisations, cache_dir=args.cache)  # fmt: skip
            results[s].update(res)
            schemes = {k: read_seed_schemes(Path(args.outdir) / "classes", k) for k in seeds}
            block = summarise_protocol(results, schemes=schemes).get(f"x{f:g}")
            m = block["median"]
            print(f"constant x{f:g}, after seed {s} ({time.perf_counter() - t0:.0f} s), median over cases, mean over "
                  f"{len(block['seeds'])} seeds: single cut {m['ratio_single_cut']:.3f}, classes "
                  f"{m['ratio_classes']:.3f}, classes + PSF {m['ratio_classes_psf']:.3f}, classes/single "
                  f"{m['gain_classes_over_single']:.3f}", flush=True)  # fmt: skip
    summary = summarise_protocol(results, schemes=schemes)
    print("plot:", plot_class_protocol(summary, Path(args.outdir)))
    print("\nper case (constant x1): ratio over the traditional cut, mean over seeds [68 % bootstrap]")
    for c in (*PROTOCOL_CASES, "median"):
        b = summary["x1"][c]
        print(f" {c:16s}" + "".join(f"  {k} {b[k]:.3f} [{b[k + '_lo']:.3f}, {b[k + '_hi']:.3f}]"
                                    for k in ("ratio_single_cut", "ratio_classes", "ratio_classes_psf",
                                              "gain_classes_over_single")))  # fmt: skip
    figures = {}
    for f, block in summary.items():
        suffix = "" if f == "x1" else f"_{f}"
        for k in (
            "ratio_single_cut",
            "ratio_classes",
            "ratio_classes_psf",
            "gain_classes_over_single",
            "asimov_ratio_classes_psf",
            "asimov_ratio_classes_psf_noise_corrected",
        ):
            if k not in block["median"]:
                continue
            for tail in ("", "_lo", "_hi"):
                figures[f"{k}{tail}{suffix}"] = round(block["median"][k + tail], 4)
        figures[f"per_case{suffix}"] = {c: {k: round(v, 4) for k, v in block[c].items()} for c in PROTOCOL_CASES}
        figures[f"seeds{suffix}"] = block["seeds"]
    figures["realisations"] = args.realisations
    figures["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(figures))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-gamma", type=int, default=40000)
    parser.add_argument("--n-background", type=int, default=240000)
    parser.add_argument("--km2a-gamma", type=int, default=20000)
    parser.add_argument("--km2a-background", type=int, default=150000)
    parser.add_argument("--realisations", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--pointcloud", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--outdir", default="/tmp/skyfit-ghsep")
    parser.add_argument("--cache", default=None, help="folder for the simulated samples (reused when rerun)")
    parser.add_argument("--classes", action="store_true", help="the event-class protocol of issue #29 (docstring)")
    parser.add_argument("--seeds", default="600,610,620,630,640", help="--classes: the sample seeds")
    args = parser.parse_args()
    if args.classes:
        return _classes_main(args)
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sizes = {"WCDA": (args.n_gamma, args.n_background), "KM2A": (args.km2a_gamma, args.km2a_background)}
    evals, ratios, extra = {}, {}, {}
    for inst, (ng, nb) in sizes.items():
        model, tune = build_model(inst, ng, nb, seed=args.seed, epochs=args.epochs, cache_dir=args.cache)
        model.save(out / f"ghsep_{inst}.npz")
        print(f"simulating the {inst} test sample")
        test = labelled_sample(inst, ng, nb, seed=args.seed + 2, cache_dir=args.cache)
        ev = evaluate(model, test)
        evals[inst], ratios[inst] = ev, ev["ratios"]
        plot_roc(ev, test, inst, out)
        _print_equal_efficiency(ev, inst)
        print(f"{inst}: Q-optimised ML cut vs traditional, per bin (r_gamma, r_bkg, Q = r_gamma/sqrt(r_bkg))")
        _print_ratios(ev)
        extra[f"n_eff_bkg_pass_per_bin_{inst}"] = {
            r["bin"]: [round(r["n_eff_bkg_pass_trad"], 1), round(r["n_eff_bkg_pass_ml"], 1)]
            for r in ev["equal_efficiency"]
        }
        sep = separability_after_cut(model, tune, test)
        _print_separability(sep, inst)
        extra[f"after_trad_cut_auc_per_bin_{inst}"] = {
            r["bin"]: None if r["auc"] is None else round(r["auc"], 3) for r in sep["per_bin"]
        }
        extra[f"after_trad_cut_further_reduction_per_bin_{inst}"] = {
            r["bin"]: None if r["further_reduction"] is None else round(r["further_reduction"], 3)
            for r in sep["per_bin"]
        }
        del tune
        if args.pointcloud:
            pc, _ = build_model(
                inst, ng, nb, kind="pointcloud", seed=args.seed, epochs=args.epochs, cache_dir=args.cache
            )
            test_pc = labelled_sample(inst, ng, nb, seed=args.seed + 2, hits=True, cache_dir=args.cache)
            ev_pc = evaluate(pc, test_pc)
            pc.save(out / f"ghsep_{inst}_pointcloud.npz")
            _print_equal_efficiency(ev_pc, f"{inst} hit-pattern (deep-sets) network")
            _print_ratios(ev_pc)
            extra[f"pointcloud_q_per_bin_{inst}"] = {
                k: round(float(v["q"]), 3) for k, v in sorted(ev_pc["ratios"].items())
            }
            extra[f"pointcloud_reduction_err_per_bin_{inst}"] = {
                r["bin"]: None if r["reduction"] is None else round(r["reduction_err"], 3)
                for r in ev_pc["equal_efficiency"]
            }
            extra[f"pointcloud_reduction_per_bin_{inst}"] = {
                r["bin"]: None if r["reduction"] is None else round(r["reduction"], 3)
                for r in ev_pc["equal_efficiency"]
            }
            print(f"{inst} hit-pattern (deep-sets) network, reduction at equal efficiency:",
                  extra[f"pointcloud_reduction_per_bin_{inst}"])  # fmt: skip
    eq = equal_efficiency_summary(evals)
    t_sig = time.perf_counter()
    studies = run_significance(ratios, args.realisations, seed=args.seed)
    plot_significance(studies, out)
    print("\nsignificance (sqrt TS) of 0.01-Crab sources, one year WCDA + KM2A, "
          f"{args.realisations} realisations ({time.perf_counter() - t_sig:.0f} s)")  # fmt: skip
    print(" case                                   before  after  ratio  predicted  Q limit  >5σ before/after")
    summaries = {}
    for name, st in studies.items():
        s = st["summary"]
        summaries[name] = s
        print(f" {name:38s} {s['signif_before_median']:6.2f} {s['signif_after_median']:6.2f} "
              f"{s['ratio_after_before']:6.3f} {s['ratio_predicted']:9.3f} {s['ratio_q_limit']:8.3f}  "
              f"{s['frac_5sigma_before']:.2f}/"
              f"{s['frac_5sigma_after']:.2f}")  # fmt: skip
    hawc = weak_supervision_gain(read_onoff(), n_boot=300, seed=args.seed, n_repeats=5)
    # null test: the same on an empty position of the field (3 deg west of the Crab, same declination)
    null = weak_supervision_gain(read_onoff(on_position=(80.6, 22.0145)), n_boot=50, seed=args.seed)
    print(f"\nHAWC pass-4 Crab (GP, fHit 5-9), weakly supervised, cross-fitted: significance "
          f"{hawc['signif_before']:.2f} -> {hawc['signif_after']:.2f}, gain {hawc['gain']:.3f} "
          f"(68 %: {hawc['gain_lo68']:.3f}-{hawc['gain_hi68']:.3f},"
          f" 95 %: {hawc['gain_lo95']:.3f}-{hawc['gain_hi95']:.3f}); repeats {hawc['gain_repeats']}")  # fmt: skip
    print(
        f"null test (ON on an empty position): ON kept / OFF kept = {null['on_kept_over_off_kept']:.3f} ± "
        f"{null['on_kept_over_off_kept_err']:.3f}, significance {null['signif_before']:.2f} -> "
        f"{null['signif_after']:.2f}"
    )
    ratios_all = [s["ratio_after_before"] for s in summaries.values()]
    pred_all = [s["ratio_predicted"] for s in summaries.values()]
    q_all = [v["q"] for r in ratios.values() for v in r.values() if v["cut"] == "ml"]
    figures = {
        "bkg_reduction_at_equal_eff": {
            "per_bin": eq["per_bin"],
            "median": None if eq["median"] is None else round(eq["median"], 3),
            "n_bins_measured": eq["n_bins_measured"],
        },  # fmt: skip
        "q_factor_median": round(float(np.median(q_all)), 3) if q_all else None,
        "signif_before_median": round(float(np.median([s["signif_before_median"] for s in summaries.values()])), 3),
        "signif_after_median": round(float(np.median([s["signif_after_median"] for s in summaries.values()])), 3),
        "ratio_after_before": round(float(np.median(ratios_all)), 3),
        "ratio_predicted": round(float(np.median(pred_all)), 3),
        "ratio_after_before_per_case": {k: round(v["ratio_after_before"], 3) for k, v in summaries.items()},
        "ratio_predicted_per_case": {k: round(v["ratio_predicted"], 3) for k, v in summaries.items()},
        "ratio_q_limit_per_case": {k: round(v["ratio_q_limit"], 3) for k, v in summaries.items()},
        "frac_5sigma_before": round(float(np.mean([s["frac_5sigma_before"] for s in summaries.values()])), 3),
        "frac_5sigma_after": round(float(np.mean([s["frac_5sigma_after"] for s in summaries.values()])), 3),
        "frac_5sigma_per_case": {k: [v["frac_5sigma_before"], v["frac_5sigma_after"]] for k, v in summaries.items()},
        "hawc_gain": round(hawc["gain"], 4),
        "hawc_gain_lo": round(hawc["gain_lo68"], 4),
        "hawc_gain_hi": round(hawc["gain_hi68"], 4),
        "hawc_gain_95": [round(hawc["gain_lo95"], 4), round(hawc["gain_hi95"], 4)],
        "hawc_gain_repeats": [round(g, 4) for g in hawc["gain_repeats"]],
        "hawc_on_kept_over_off_kept": round(hawc["on_kept_over_off_kept"], 4),
        "hawc_null_on_kept_over_off_kept": [
            round(null["on_kept_over_off_kept"], 4),
            round(null["on_kept_over_off_kept_err"], 4),
        ],
        "realisations": args.realisations,
        **extra,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

"""The neural-network prior against the classic TS-map finder, same likelihood, same evaluation (issue #6).

    python benchmarks/prior_vs_tsmap.py [--fields synthetic:0 ... synthetic:3 wide:0 ... wide:3 1lhaaso:0 1lhaaso:1]
                                        [--outdir /tmp/skyfit-prior-bench] [--both]
    python benchmarks/prior_vs_tsmap.py --proposals-only 8     # the network alone: recall, coverage

Each field is one catalogue ROI (a 10 x 6 deg tile grown by 1.5 deg), one simulated year of WCDA + KM2A,
run through `skyfit.catalog.run` twice: ``proposer="tsmap"`` and ``proposer="nn"`` (shipped weights),
in-process, one after the other on the same counts. Populations: ``synthetic`` (the network's training
population, seeds it never saw), ``wide`` (another flux and extension distribution, r39 up to 1.5 deg,
never trained on) and ``1lhaaso`` (the real catalogue's sky around l = 40 deg). The evaluation is
catalog_quality.py's (TS_true >= 37 inside the region; a match within 0.3 deg + r39, same detector):

- completeness_*: recovered fraction; pair_completeness_*: the same among true components with another
  of the same detector closer than 2 PSF68 (the detector's median over analysis bins);
  close_pair_completeness_*: closer than 1 PSF68; *_1to1: each catalogue component recovers at most one
  true component (an assignment), so a pair merged into one component counts one member, not two;
- false_per_100deg2_*: catalogue components with TS >= 37 and no true counterpart;
- fits_*, wall_s_*: likelihood fits and wall time per ROI (mean over fields); fits_detect_*: of those
  fits, the ones that built the model (seeding and refits), before the per-component TS and extension
  tests, which are the same for both proposers (one fit per component and per Gaussian);
- invalid_rois_*: ROIs whose final fit (with errors) is not valid (its messages say why);
- coverage68: fraction of the matched truths inside the network's 68 % intervals, averaged over
  position (2D), r39 and log10 counts (each also printed, and the mean per population);
- prior_on_off_max_sigma: for isolated bright components (TS > 100, nothing within 1.5 deg) of the first
  field, the largest |difference| between the fits with the network's priors on and off, in units of
  the fit's error (position, r39, amplitude).
A rerun with the same ``--outdir`` resumes: finished catalogues are read back, not redone.
The last line is a JSON object of the figures.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from catalog_quality import evaluate, sep_deg, true_components

from skyfit.catalog import CatalogConfig, Region, run
from skyfit.catalog._pipeline import _simulated_region
from skyfit.detect._skies import counts_per_amplitude, psf68
from skyfit.detect.prior import CHI2_2D_68

FIELD_L = {"synthetic": (20.0, 50.0), "wide": (55.0, 25.0), "1lhaaso": (35.0,)}
# ten held-out ROIs, four of each simulated population and two of the 1LHAASO sky: pair statistics need them
# (the first five alone hold 18 pair members, where one component is a 6 % difference)
FIELDS = [f"{pop}:{k}" for pop, n in (("synthetic", 4), ("wide", 4), ("1lhaaso", 2)) for k in range(n)]


def region_of(population: str, k: int) -> str:
    starts = FIELD_L[population]
    l0 = starts[k % len(starts)] + 10.0 * (k // len(starts))
    return f"{l0:g},{l0 + 10:g},-3,3"


def pair_flags(truth, psf68_deg: dict, within: float = 2.0) -> list[bool]:
    """Whether each true component has another of its detector closer than ``within`` PSF68."""
    out = []
    for t in truth:
        others = [u for u in truth if u is not t and u["dataset"] == t["dataset"]]
        out.append(any(sep_deg(t["ra"], t["dec"], u["ra"], u["dec"]) < within * psf68_deg[t["dataset"]]
                       for u in others))  # fmt: skip
    return out


def n_found(group, names) -> int:
    """How many true components of ``group`` are among the recovered ``names``."""
    return sum(t["name"] in names for t in group)


def nn_coverage(truth, proposals, datasets, ts_keep=37.0) -> list[dict]:
    """Standardised errors of the network's proposals for the true components they match."""
    by_name = {d.name: d for d in datasets}
    rows = []
    for t in truth:
        if not t["inside"] or t["ts_true"] < ts_keep:
            continue
        cands = [p for p in proposals if p["detector"] == t["dataset"]]
        cands = [(sep_deg(t["ra"], t["dec"], p["ra"], p["dec"]), p) for p in cands]
        cands = [(s, p) for s, p in cands if s < 0.3 + t["r39"]]
        if not cands:
            continue
        s, p = min(cands, key=lambda x: x[0])
        ds = by_name[t["dataset"]]
        counts = t["amplitude"] * np.sum(counts_per_amplitude(ds.response, t["dec"], t["index"], t["reference"]))
        dc = abs(p["log10_counts"] - np.log10(max(counts, 1.0)))
        rows.append({"pos": (s / p["sigma_pos"]) ** 2 <= CHI2_2D_68, "r39": abs(p["r39"] - t["r39"]) <= p["sigma_r39"],
                     "counts": dc <= p["sigma_log10_counts"]})  # fmt: skip
    return rows


def on_off(out_on: str, out_off: str) -> list[float]:
    """|on - off| / error for isolated bright components present in both runs."""
    a = json.loads(Path(out_on, "rois", "roi_000.json").read_text())["components"]
    b = json.loads(Path(out_off, "rois", "roi_000.json").read_text())["components"]
    diffs = []
    for c in a:
        if c["ts"] < 100 or any(o is not c and sep_deg(c["ra"], c["dec"], o["ra"], o["dec"]) < 1.5 for o in a):
            continue
        match = [o for o in b if o["dataset"] == c["dataset"] and sep_deg(c["ra"], c["dec"], o["ra"], o["dec"]) < 0.2]
        if not match:
            continue
        o = match[0]
        sig_pos = c["pos_err95"] / np.sqrt(-2 * np.log(0.05))
        diffs.append(sep_deg(c["ra"], c["dec"], o["ra"], o["dec"]) / sig_pos)
        diffs.append(abs(c["amplitude"] - o["amplitude"]) / c["amplitude_err"])
        if np.isfinite(c["r39_err"]) and c["r39_err"] > 0:
            diffs.append(abs(c["r39"] - o["r39"]) / c["r39_err"])
    return diffs


def proposals_only(n: int) -> None:
    """Recall and interval coverage of the shipped network's proposals (no fits), held-out seeds."""
    from skyfit.detect.prior import coverage, load_prior, make_fields, match_proposals

    model = load_prior()
    figures = {"threshold": model.threshold}
    for population, base in (("1lhaaso", 920_000), ("wide", 930_000)):
        fields = make_fields([base + k for k in range(1, n + 1)], population)
        pairs, n37, found37, n_prop, n_targets = [], 0, 0, 0, 0
        for f in fields:
            props = model.propose(f["image"], f["grid"])
            matched = match_proposals(props, f["targets"])
            pairs += matched
            n_prop += len(props)
            found = {id(t) for _, t in matched}
            for det in ("WCDA", "KM2A"):
                n_targets += len(f["targets"][det])
                for t in f["targets"][det]:
                    if t["ts"] >= 37:
                        n37 += 1
                        found37 += id(t) in found
        cov = coverage(pairs)
        print(f"{population}: {n} fields, {n_targets} components with expected TS >= 16, {n_prop} proposals; "
              f"recall of TS >= 37: {found37}/{n37}; coverage of 68 % intervals {cov}", flush=True)  # fmt: skip
        figures[population] = {"recall_ts37": round(found37 / max(n37, 1), 3), "n_ts37": n37, "proposals": n_prop,
                               "targets": n_targets, "coverage68_pos": round(cov["pos"], 3),
                               "coverage68_r39": round(cov["r39"], 3), "coverage68_counts": round(cov["counts"], 3),
                               "coverage68": round((cov["pos"] + cov["r39"] + cov["counts"]) / 3, 3),
                               "n_matched": cov["n"]}  # fmt: skip
    print(json.dumps(figures))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fields", nargs="+", default=FIELDS)
    parser.add_argument("--outdir", default="/tmp/skyfit-prior-bench")
    parser.add_argument("--both", action="store_true", help="also proposer='both' (network, then TS maps)")
    parser.add_argument("--multiplicity", action="store_true",
                        help="also 'nn_mult': the network with the multiplicity test (issue #30)")  # fmt: skip
    parser.add_argument(
        "--proposers", default=None, help="only these, comma-separated (default: all asked for; no prior on/off check)"
    )
    parser.add_argument("--proposals-only", type=int, default=0, metavar="N",
                        help="only the network's proposals on N held-out fields per population: recall and "
                             "68 %% coverage, no catalogue runs (about 5 s per field)")  # fmt: skip
    args = parser.parse_args()
    if args.proposals_only:
        return proposals_only(args.proposals_only)
    proposers = ("tsmap", "nn", "both") if args.both else ("tsmap", "nn")
    proposers += ("nn_mult",) if args.multiplicity else ()
    if args.proposers:
        proposers = tuple(p for p in proposers if p in args.proposers.split(","))
    t_start = time.perf_counter()
    stats = {p: {"n": 0, "rec": 0, "pair_n": 0, "pair_rec": 0, "false": 0, "fits": [], "fits_detect": [], "wall": [],
                 "invalid": 0, "rec_1to1": 0, "pair_rec_1to1": 0, "close_n": 0, "close_rec": 0, "close_rec_1to1": 0}
             for p in proposers}  # fmt: skip
    cover, area, on_off_diffs = [], 0.0, None
    for field in args.fields:
        population, k = field.split(":")
        k = int(k)
        region = region_of(population, k)
        area += Region.parse(region).area_deg2
        for proposer in proposers:
            extra = {"multiplicity": True} if proposer == "nn_mult" else {}
            cfg = CatalogConfig(region=region, seed=100 + k, simulate=population,
                                proposer=proposer.removesuffix("_mult"), detection=extra)  # fmt: skip
            out_dir = f"{args.outdir}/{population}_{k}_{proposer}"
            summary = run(cfg, out_dir=out_dir, progress=False, plots=False, log=lambda *a: None)
            truth = true_components(cfg)
            datasets, truth_model = _simulated_region(cfg, Region.parse(region))
            spectra = {s.name: {q.name: q.value for q in s.spectral.parameters} for s in truth_model.sources}
            for t in truth:
                t["index"], t["reference"] = spectra[t["name"]]["index"], spectra[t["name"]]["reference"]
            psf = {d.name: psf68(d.response) for d in datasets}
            ev = evaluate(truth, summary["components"], Region.parse(region), cfg.ts_keep)
            inside = [t for t in truth if t["inside"] and t["ts_true"] >= cfg.ts_keep]
            one = evaluate(truth, summary["components"], Region.parse(region), cfg.ts_keep, one_to_one=True)
            pairs = [t for t, f in zip(truth, pair_flags(truth, psf), strict=True) if f and t in inside]
            close = [t for t, f in zip(truth, pair_flags(truth, psf, 1.0), strict=True) if f and t in inside]
            found, found_1to1 = set(ev["recovered"]), set(one["recovered"])
            # one catalogue component per truth (1to1): a merged pair recovers one of its members, not both
            counts = {"n": ev["n_true_ts37"], "rec": ev["n_recovered"], "pair_n": len(pairs),
                      "pair_rec": n_found(pairs, found), "false": ev["n_false"], "rec_1to1": one["n_recovered"],
                      "pair_rec_1to1": n_found(pairs, found_1to1), "close_n": len(close),
                      "close_rec": n_found(close, found), "close_rec_1to1": n_found(close, found_1to1)}  # fmt: skip
            st = stats[proposer]
            for key, value in counts.items():
                st[key] += value
            # per ROI, from its record: a rerun with the same --outdir resumes finished catalogues
            # (skyfit.catalog.run's checkpoints) and still reports the time they took
            wall = float(sum(summary["roi_wall_s"]))
            st["fits"].append(summary["fits"])
            st["fits_detect"].append(summary["fits_detect"])
            st["wall"].append(wall)
            st["invalid"] += len(summary["invalid_rois"])
            if proposer == "nn":
                rec = json.loads(Path(out_dir, "rois", "roi_000.json").read_text())
                proposals = [h for h in rec["history"] if h.get("proposer") == "nn"]
                cover += [{**r, "population": population}
                          for r in nn_coverage(truth, proposals, datasets, cfg.ts_keep)]  # fmt: skip
            print(f"{field} {proposer:5s}: {counts['rec']}/{counts['n']} recovered (pairs "
                  f"{counts['pair_rec']}/{counts['pair_n']}; one-to-one {counts['rec_1to1']}, pairs "
                  f"{counts['pair_rec_1to1']}; closer than 1 PSF68 "
                  f"{counts['close_rec_1to1']}/{counts['close_n']}), {counts['false']} false, "
                  f"{summary['fits']} fits "
                  f"({summary['fits_detect']} building the model), "
                  f"{wall:.0f} s{'' if not summary['invalid_rois'] else ', final fit not valid'}",
                  flush=True)  # fmt: skip
        if on_off_diffs is None and "nn" in proposers and not args.proposers:  # the first field, priors off
            cfg = CatalogConfig(region=region, seed=100 + k, simulate=population, proposer="nn",
                                detection={"prior_terms": False})  # fmt: skip
            run(cfg, out_dir=f"{args.outdir}/{population}_{k}_nn_noprior", progress=False, plots=False,
                log=lambda *a: None)  # fmt: skip
            on_off_diffs = on_off(f"{args.outdir}/{population}_{k}_nn", f"{args.outdir}/{population}_{k}_nn_noprior")
            worst = max(on_off_diffs, default=float("nan"))
            print(f"{field}: prior on vs off, isolated bright components: max |diff| / sigma {worst:.3f} over "
                  f"{len(on_off_diffs)} parameters", flush=True)  # fmt: skip

    def frac(a, b):
        return round(a / b, 3) if b else None

    cov = {k: round(float(np.mean([r[k] for r in cover])), 3) if cover else None for k in ("pos", "r39", "counts")}
    figures = {}
    for p in proposers:
        st = stats[p]
        figures.update({
            f"pair_completeness_{p}": frac(st["pair_rec"], st["pair_n"]),
            f"completeness_{p}": frac(st["rec"], st["n"]),
            f"false_per_100deg2_{p}": round(100 * st["false"] / area, 3),
            f"fits_{p}": round(float(np.mean(st["fits"])), 1),
            f"fits_detect_{p}": round(float(np.mean(st["fits_detect"])), 1),
            f"wall_s_{p}": round(float(np.mean(st["wall"])), 1),
            f"invalid_rois_{p}": st["invalid"],
        })  # fmt: skip
    figures = {
        **figures,
        "coverage68": round(float(np.mean(list(cov.values()))), 3) if cover else None,
        "coverage68_pos": cov["pos"],
        "coverage68_r39": cov["r39"],
        "coverage68_counts": cov["counts"],
        "n_coverage": len(cover),
        **{
            f"coverage68_{pop}": round(
                float(np.mean([r[k] for r in cover if r["population"] == pop for k in ("pos", "r39", "counts")])), 3
            )
            for pop in sorted({r["population"] for r in cover})
        },  # fmt: skip
        **{
            f"{key}_{p}": frac(stats[p][num], stats[p][den])
            for key, num, den in (
                ("completeness_1to1", "rec_1to1", "n"),
                ("pair_completeness_1to1", "pair_rec_1to1", "pair_n"),
                ("close_pair_completeness", "close_rec", "close_n"),
                ("close_pair_completeness_1to1", "close_rec_1to1", "close_n"),
            )
            for p in proposers
        },  # fmt: skip
        "n_true_ts37": stats[proposers[0]]["n"],
        "n_pairs": stats[proposers[0]]["pair_n"],
        "n_close_pairs": stats[proposers[0]]["close_n"],
        "prior_on_off_max_sigma": round(max(on_off_diffs), 4) if on_off_diffs else None,
        "fields": args.fields,
        "total_s": round(time.perf_counter() - t_start, 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

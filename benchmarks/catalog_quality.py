"""Catalogue quality on simulated Galactic-plane fields with known truth (issue #5).

    python benchmarks/catalog_quality.py [--region 25,45,-5,5] [--seeds 0] [--null-runs 10]
                                         [--scheduler local] [--outdir /tmp/skyfit-quality]

Signal fields: the 1LHAASO components of the region (one year of WCDA + KM2A, diffuse emission and
background), run through `skyfit.catalog.run` exactly as `skyfit catalog` does. Each true component's
TS_true is 2 (ln L(truth) - ln L(truth without it)) on the simulated counts, all parameters at their
true values. A detected component (same detector) matches a true one within 0.3 deg + the true r39.

- completeness_ts37: fraction of true components inside the region with TS_true >= 37 that are matched
  by a catalogue component (any TS);
- false_per_100deg2: catalogue components (TS >= 37) with no true component of either detector within
  0.3 deg + r39, per 100 deg2 of the region;
- pos_offset_over_err: median of offset / sigma_pos, sigma_pos = pos_err95 / 2.448 (a correct error
  gives 1.18 for a 2D Gaussian); also the fraction of offsets within pos_err95;
- flux_bias: median (fitted - true) / true amplitude at the same reference energy;
- null runs: the same region with background and diffuse emission only; catalogue sources at TS >= 37.
The last line is a JSON object of the figures.
"""

import argparse
import json
import time

import numpy as np

from skyfit.catalog import CatalogConfig, Region, run
from skyfit.catalog._pipeline import _simulated_region
from skyfit.likelihood import Likelihood
from skyfit.maps import unit_vectors


def sep_deg(ra1, dec1, ra2, dec2):
    return float(np.degrees(np.arccos(np.clip(unit_vectors(ra1, dec1) @ unit_vectors(ra2, dec2), -1, 1))))


def true_components(cfg: CatalogConfig):
    """True components inside the region with their TS_true on the simulated counts."""
    from astropy.coordinates import SkyCoord

    region = Region.parse(cfg.region)
    datasets, truth = _simulated_region(cfg, region)
    lk = Likelihood(truth, datasets, cutout_margin_deg=0.5)
    stat_all = lk.stat()
    out = []
    for s in truth.sources:
        if s.spatial.per_pixel_exposure:
            continue
        ra, dec = s.spatial.position()
        g = SkyCoord(ra, dec, unit="deg").galactic
        null = truth.with_values({f"{s.name}.amplitude": 0.0})
        ts_true = lk.stat(lk.vector(null.values())) - stat_all
        p = {q.name: q.value for q in s.parameters}
        out.append({"name": s.name, "dataset": s.datasets[0], "ra": ra, "dec": dec, "r39": p.get("sigma", 0.0),
                    "amplitude": p["amplitude"], "ts_true": float(ts_true),
                    "inside": bool(region.contains(g.l.deg, g.b.deg))})  # fmt: skip
    return out


def evaluate(truth, components, region: Region, ts_keep=37.0, one_to_one: bool = False):
    """Match catalogue components to the true components (TS_true >= ts_keep, inside the region).

    By default any component within 0.3 deg + r39 (same detector) recovers a truth, so one component
    between two true ones recovers both. ``one_to_one=True`` pairs them instead (scipy's assignment:
    the most matches, then the least summed separation): a merged pair recovers one truth, not two.
    ``recovered`` lists the names of the recovered truths.
    """
    from scipy.optimize import linear_sum_assignment

    detected = [c for c in components]
    evaluated = [t for t in truth if t["inside"] and t["ts_true"] >= ts_keep]
    allowed = np.full((len(evaluated), len(detected)), np.inf)
    for i, t in enumerate(evaluated):
        for j, c in enumerate(detected):
            if c["dataset"] == t["dataset"]:
                s = sep_deg(t["ra"], t["dec"], c["ra"], c["dec"])
                if s < 0.3 + t["r39"]:
                    allowed[i, j] = s
    if one_to_one and allowed.size:
        # a disallowed pair costs more than any set of allowed ones: the most matches first
        rows, cols = linear_sum_assignment(np.where(np.isfinite(allowed), allowed, 1e6))
        best = {i: j for i, j in zip(rows, cols, strict=True) if np.isfinite(allowed[i, j])}
    else:
        best = {i: int(np.argmin(allowed[i])) for i in range(len(evaluated)) if np.isfinite(allowed[i]).any()}
    matched, offsets, fluxes, recovered = [], [], [], []
    for i, t in enumerate(evaluated):
        matched.append(i in best)
        if i in best:
            c, s = detected[best[i]], allowed[i, best[i]]
            recovered.append(t["name"])
            if np.isfinite(c["pos_err95"]) and c["pos_err95"] > 0:
                offsets.append((s, s / (c["pos_err95"] / np.sqrt(-2 * np.log(0.05))), s / c["pos_err95"]))
            fluxes.append((c["amplitude"] - t["amplitude"]) / t["amplitude"])
    false = 0
    for c in detected:
        if c["ts"] < ts_keep:
            continue
        if not any(sep_deg(t["ra"], t["dec"], c["ra"], c["dec"]) < 0.3 + t["r39"] for t in truth):
            false += 1
    return {
        "n_true_ts37": len(matched),
        "n_recovered": int(np.sum(matched)),
        "n_false": false,
        "offsets": offsets,
        "flux_rel": fluxes,
        "recovered": recovered,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--region", default="25,45,-5,5")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--null-runs", type=int, default=10)
    parser.add_argument("--nside", type=int, default=512)
    parser.add_argument("--tile-deg", type=float, default=10.0)
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--outdir", default="/tmp/skyfit-quality")
    args = parser.parse_args()
    region = Region.parse(args.region)
    t_start = time.perf_counter()
    totals = {"n_true_ts37": 0, "n_recovered": 0, "n_false": 0, "offsets": [], "flux_rel": []}
    walls, fits = [], []
    for seed in args.seeds:
        cfg = CatalogConfig(region=args.region, nside=args.nside, seed=seed, tile_deg=args.tile_deg)
        summary = run(cfg, out_dir=f"{args.outdir}/signal_{seed}", scheduler=args.scheduler, progress=False,
                      plots=False)  # fmt: skip
        truth = true_components(cfg)
        ev = evaluate(truth, summary["components"], region, cfg.ts_keep)
        for k in totals:
            totals[k] = totals[k] + ev[k]
        walls.append(summary["wall_s"])
        fits.append(summary["fits"])
        print(f"seed {seed}: {ev['n_recovered']}/{ev['n_true_ts37']} true components with TS_true >= 37 recovered,"
              f" {ev['n_false']} false; {summary['n_sources']} catalogue sources; {summary['fits']} fits, "
              f"{summary['wall_s']:.0f} s")  # fmt: skip
    null_false = []
    for k in range(args.null_runs):
        cfg = CatalogConfig(region=args.region, nside=args.nside, seed=1000 + k, tile_deg=args.tile_deg,
                            simulate="background")  # fmt: skip
        summary = run(cfg, out_dir=f"{args.outdir}/null_{k}", scheduler=args.scheduler, progress=False, plots=False)
        null_false.append(int(summary["n_sources"]))
        print(f"null run {k}: {summary['n_sources']} source(s) at TS >= 37 ({summary['wall_s']:.0f} s)")
    offsets = np.array(totals["offsets"]) if totals["offsets"] else np.zeros((0, 3))
    area = region.area_deg2 * len(args.seeds)
    figures = {
        "completeness_ts37": round(totals["n_recovered"] / max(totals["n_true_ts37"], 1), 3),
        "n_true_ts37": totals["n_true_ts37"],
        "false_per_100deg2": round(100.0 * totals["n_false"] / area, 3),
        "n_false": totals["n_false"],
        "pos_offset_over_err": round(float(np.median(offsets[:, 1])), 3) if len(offsets) else None,
        "frac_offset_within_pos_err95": round(float(np.mean(offsets[:, 2] <= 1.0)), 3) if len(offsets) else None,
        "flux_bias": round(float(np.median(totals["flux_rel"])), 4) if totals["flux_rel"] else None,
        "wall_s": round(float(np.mean(walls)), 1),
        "fits": int(np.mean(fits)),
        "null_runs": args.null_runs,
        "null_false_total": int(np.sum(null_false)),
        "null_false_per_run": round(float(np.mean(null_false)), 3) if null_false else None,
        "region_deg2": round(region.area_deg2, 1),
        "total_s": round(time.perf_counter() - t_start, 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

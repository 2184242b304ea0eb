"""Statistical validation: pulls, coverage and TS under the null over many simulated datasets.

    python benchmarks/validate_statistics.py [--n 500] [--seed 0]

Prints a table and, as its last line, a JSON object of the figures. The issue's criteria: each
free parameter's pull has mean within +-0.1 and width within 1 +- 0.1; the TS of a non-negative
flux under the null follows 1/2 chi2_0 + 1/2 chi2_1 (KS p > 0.01).
"""

import argparse
import json
import time

import numpy as np

from skyfit.validate import null_ts_study, pull_study


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    t0 = time.perf_counter()
    pulls = pull_study(args.n, seed=args.seed)
    t_pull = time.perf_counter() - t0
    t0 = time.perf_counter()
    null = null_ts_study(args.n, seed=args.seed + 1)
    t_null = time.perf_counter() - t0
    figures = {
        "n": args.n,
        "n_invalid_fits": pulls["n_invalid"],
        "pull_time_s": round(t_pull, 2),
        "null_time_s": round(t_null, 2),
    }
    print(f"{'parameter':16s} {'mean':>8s} {'width':>8s} {'cov68':>8s}  pass")
    ok = True
    for k, p in pulls["parameters"].items():
        good = abs(p["mean"]) < 0.1 and abs(p["std"] - 1) < 0.1
        ok &= good
        print(f"{k:16s} {p['mean']:8.3f} {p['std']:8.3f} {p['coverage_1sigma']:8.3f}  {good}")
        figures[f"pull_mean[{k}]"] = round(p["mean"], 4)
        figures[f"pull_std[{k}]"] = round(p["std"], 4)
        figures[f"coverage68[{k}]"] = round(p["coverage_1sigma"], 4)
    print(
        f"TS under the null: fraction TS=0 {null['fraction_zero']:.3f}, KS p = {null['ks_pvalue']:.3f}, "
        f"P(TS > 2.71) = {np.mean(null['ts'] > 2.71):.3f}"
    )
    figures.update(
        {
            "null_fraction_zero": null["fraction_zero"],
            "null_ks_pvalue": round(null["ks_pvalue"], 4),
            "null_p_ts_gt_2.71": float(np.mean(null["ts"] > 2.71)),
            "pass": bool(ok and null["ks_pvalue"] > 0.01),
        }
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

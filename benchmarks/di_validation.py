"""Direct-integration validation on simulated LHAASO-like (WCDA) event streams.

    python benchmarks/di_validation.py null [--days 30] [--rate-scale 0.0305]
    python benchmarks/di_validation.py fit [--n 50] [--days 4]

``null``: a background-only stream (default about 1.1e8 events over 30 days) is streamed block by block
(one day each, never stored) through direct integration; over a 40 deg x 20 deg Galactic-plane region
(20 <= l <= 60 deg, |b| <= 10 deg, nside 256, 797 deg^2) it reports the mean of (counts - bkg)/bkg and the mean and
width of the per-pixel significance (n - b)/sqrt(b) (all bins summed), against the criteria +-0.2 %,
0 +- 0.02 and 1 +- 0.02.

``fit``: 30-day streams (WCDA bins 4-5 by default, to keep 50 realisations affordable) with a bright
(1 Crab) and a faint (0.01 Crab) point source 3 deg apart at the same declination; DI with both
excluded and without exclusions; a joint fit of both amplitudes (positions and spectral shapes fixed
to the truth; the faint amplitude may go negative) on each realisation. Reports the mean pull of each
amplitude with its standard error and the mean fitted/true flux ratio, with and without exclusion;
also the faint source's aperture excess (counts - background within 0.4 deg) over the true expected
source counts there, a fit-free check of the background bias.

The last line of output is a JSON object of the figures.
"""

import argparse
import json
import time
from dataclasses import replace

import numpy as np

from skyfit.background import DIConfig, Exclusions, direct_integration_block
from skyfit.coords import LHAASO_SITE, SiteFrame
from skyfit.simulate import simulate_event_stream

START = 59639.0  # 2022-03-01


def galactic_box(l_min, l_max, b_max, nside=256):
    """HEALPix ROI of the pixels with l_min <= l <= l_max and |b| <= b_max (deg): an exact l, b box."""
    import healpy as hp
    from astropy.coordinates import SkyCoord

    from skyfit.maps import HealpixROI

    ra, dec = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)), nest=True, lonlat=True)
    g = SkyCoord(ra, dec, unit="deg").galactic
    sel = (g.l.deg >= l_min) & (g.l.deg <= l_max) & (np.abs(g.b.deg) <= b_max)
    return HealpixROI(nside, True, np.flatnonzero(sel), {"region": f"{l_min}<=l<={l_max}, |b|<={b_max}"})


def run_null(args):
    roi = galactic_box(20.0, 60.0, 10.0)
    frame = SiteFrame(LHAASO_SITE, START, START + args.days)
    config = DIConfig(window_hours=args.window_hours)
    counts = bkg = 0.0
    n_total = 0
    t0 = time.perf_counter()
    t_sim = 0.0
    blocks = simulate_event_stream("WCDA", START, args.days, rate_scale=args.rate_scale, block_hours=24, seed=args.seed)
    while True:
        ts = time.perf_counter()
        try:
            b0, b1, ev = next(blocks)
        except StopIteration:
            break
        t_sim += time.perf_counter() - ts
        c, b, rep = direct_integration_block(ev, b0, b1, roi, 6, frame, config)
        counts, bkg = counts + c, bkg + b
        n_total += rep["n_events"]
        print(f"day {b0 - START:5.1f}: {rep['n_events']} events, {rep['n_binned']} in the region", flush=True)
    wall = time.perf_counter() - t0
    n, b = counts.sum(axis=0), bkg.sum(axis=0)
    rel = (n.sum() - b.sum()) / b.sum()
    sig = (n - b) / np.sqrt(b)
    per_bin = [(counts[i].sum() - bkg[i].sum()) / bkg[i].sum() for i in range(6)]
    print(f"region: {roi.n_pix} pixels of {np.degrees(np.sqrt(roi.pixel_area_sr)):.3f} deg, {n.sum():.0f} events")
    print(f"mean (counts - bkg)/bkg = {rel * 100:+.4f} % (statistical error {100 / np.sqrt(n.sum()):.4f} %)")
    print("per bin (%):", " ".join(f"{100 * x:+.3f}" for x in per_bin))
    print(f"significance: mean {sig.mean():+.4f}, width {sig.std():.4f}; counts per pixel {n.mean():.0f}")
    figures = {
        "mode": "null",
        "n_events": int(n_total),
        "days": args.days,
        "region_deg2": round(roi.n_pix * np.degrees(1) ** 2 * roi.pixel_area_sr, 1),
        "n_pix": int(roi.n_pix),
        "rel_excess_mean": float(rel),
        "rel_excess_stat_err": float(1 / np.sqrt(n.sum())),
        "rel_excess_per_bin": [float(x) for x in per_bin],
        "sig_mean": float(sig.mean()),
        "sig_width": float(sig.std()),
        "counts_per_pixel": float(n.mean()),
        "wall_s": round(wall, 1),
        "simulate_s": round(t_sim, 1),
        "pass": bool(abs(rel) < 0.002 and abs(sig.mean()) < 0.02 and abs(sig.std() - 1) < 0.02),
    }
    print(json.dumps(figures))


def run_fit(args):
    from skyfit import Fit, Likelihood, LogParabola, Models, PointSpatialModel, Source
    from skyfit.dataset import Dataset
    from skyfit.maps import HealpixMaps, HealpixROI
    from skyfit.response.lhaaso import wcda_response

    dec = 22.0
    bright = Source("bright", PointSpatialModel.create(80.0, dec), LogParabola.create(2.31e-13, 2.73, 0.06, 7.0))
    faint_lp = LogParabola.create(2.31e-15, 2.73, 0.06, 7.0)
    # let the faint amplitude go negative: a bias study must not be cut at zero
    faint_lp = replace(
        faint_lp, parameters=tuple(replace(q, min=np.nan) if q.name == "amplitude" else q for q in faint_lp.parameters)
    )
    faint = Source("faint", PointSpatialModel.create(83.0, dec), faint_lp)
    bins = [int(b) for b in args.bins]  # default 4, 5: above ~10 TeV, PSF ~0.2 deg, cosmic rays ~0.85 Hz
    roi = HealpixROI.from_disc((81.5, dec), 4.0, 512, True)  # pixels well below the PSF
    frame = SiteFrame(LHAASO_SITE, START, START + args.days)
    excl = Exclusions.from_discs([80.0, 83.0], [dec, dec], [2.0, 1.0])
    from skyfit.coords import radec_to_vector
    from skyfit.simulate import npred

    aperture = np.degrees(np.arccos(np.clip(roi.unit_vectors() @ radec_to_vector(83.0, dec), -1, 1))) < 0.4
    response = wcda_response(livetime_days=args.days, dec_nodes_deg=np.arange(dec - 6, dec + 6.1, 1.0)).select(bins)
    names = response.bin_names
    # true source counts in the aperture (no background): computed once, they do not depend on the realisation
    zero = HealpixMaps(np.zeros((len(bins), roi.n_pix)), roi, names)
    empty = Dataset("WCDA", zero, zero, response)
    faint_in_aperture = npred(Models([faint]), empty)[:, aperture].sum()
    bright_leak = npred(Models([bright]), empty)[:, aperture].sum()
    out = {"excluded": [], "not_excluded": []}
    t0 = time.perf_counter()
    for i in range(args.n):
        c_sum = {k: 0.0 for k in out}
        b_sum = {k: 0.0 for k in out}
        for b0, b1, ev in simulate_event_stream(
            "WCDA", START, args.days, [bright, faint], block_hours=24, bins=bins, seed=1000 + i
        ):
            for key, ex in (("excluded", excl), ("not_excluded", None)):
                c, b, _ = direct_integration_block(ev, b0, b1, roi, 6, frame, DIConfig(), ex)
                c_sum[key] = c_sum[key] + c[bins]
                b_sum[key] = b_sum[key] + b[bins]
        for key in out:
            ds = Dataset("WCDA", HealpixMaps(c_sum[key], roi, names), HealpixMaps(b_sum[key], roi, names), response)
            model = Models([bright, faint]).with_frozen(
                [
                    "bright.lon_0",
                    "bright.lat_0",
                    "bright.alpha",
                    "bright.beta",
                    "faint.lon_0",
                    "faint.lat_0",
                    "faint.alpha",
                    "faint.beta",
                ]
            )
            res = Fit(Likelihood(model, [ds])).run()
            row = {}
            for s, truth in (("bright", 2.31e-13), ("faint", 2.31e-15)):
                k = f"{s}.amplitude"
                row[s] = ((res.value(k) - truth) / res.errors[k], res.value(k) / truth)
            row["valid"] = res.valid
            excess = c_sum[key][:, aperture].sum() - b_sum[key][:, aperture].sum() - bright_leak
            row["aperture_ratio"] = float(excess / faint_in_aperture)
            out[key].append(row)
        e, ne = out["excluded"][-1], out["not_excluded"][-1]
        print(
            f"realisation {i}: pulls excluded bright {e['bright'][0]:+.2f} faint {e['faint'][0]:+.2f}; "
            f"not excluded bright {ne['bright'][0]:+.2f} faint {ne['faint'][0]:+.2f}",
            flush=True,
        )
    figures = {"mode": "fit", "n": args.n, "days": args.days, "wall_s": round(time.perf_counter() - t0, 1)}
    for key, rows in out.items():
        for s in ("bright", "faint"):
            pulls = np.array([r[s][0] for r in rows])
            ratio = np.array([r[s][1] for r in rows])
            figures[f"{key}_{s}_pull_mean"] = round(float(pulls.mean()), 3)
            figures[f"{key}_{s}_pull_mean_err"] = round(float(pulls.std(ddof=1) / np.sqrt(len(pulls))), 3)
            figures[f"{key}_{s}_pull_width"] = round(float(pulls.std(ddof=1)), 3)
            figures[f"{key}_{s}_flux_ratio_mean"] = round(float(ratio.mean()), 4)
        figures[f"{key}_n_invalid"] = int(sum(not r["valid"] for r in rows))
        ap = np.array([r["aperture_ratio"] for r in rows])
        figures[f"{key}_faint_aperture_ratio_mean"] = round(float(ap.mean()), 3)
        figures[f"{key}_faint_aperture_ratio_err"] = round(float(ap.std(ddof=1) / np.sqrt(len(ap))), 3)
        f = {k[len(key) + 1 :]: v for k, v in figures.items() if k.startswith(key + "_")}
        print(
            f"{key}: bright pull {f['bright_pull_mean']:+.3f} +- {f['bright_pull_mean_err']:.3f} "
            f"(flux ratio {f['bright_flux_ratio_mean']:.4f}); faint pull "
            f"{f['faint_pull_mean']:+.3f} +- {f['faint_pull_mean_err']:.3f}"
        )
    print(json.dumps(figures))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["null", "fit"])
    parser.add_argument("--days", type=float, default=None)
    parser.add_argument("--rate-scale", type=float, default=0.0305)
    parser.add_argument("--window-hours", type=float, default=2.0)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--bins", type=int, nargs="+", default=[4, 5], help="WCDA bins of the fit study")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.mode == "null":
        args.days = args.days or 30.0
        run_null(args)
    else:
        args.days = args.days or 30.0
        run_fit(args)


if __name__ == "__main__":
    main()

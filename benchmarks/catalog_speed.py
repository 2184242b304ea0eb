"""Speed of the Galactic-plane machinery (issue #5): a 30-source joint fit and a TS map at nside 1024.

    python benchmarks/catalog_speed.py [--region 60,80,-5,5] [--n-sources 30] [--skip-tsmap]

1. Joint fit: the simulated 1LHAASO sky of a 20 x 10 deg region (one year of WCDA + KM2A, nside 512);
   the window l 60-80 deg holds the most 1LHAASO components of any 20-deg window (28 with the 1.5 deg
   margin), topped up to ``--n-sources`` with synthetic point sources (0.03-0.1 Crab at 3 TeV) at
   random positions. Every position, r39, amplitude and index is free, plus the diffuse
   normalisation; the fit starts from the truth perturbed (0.05 deg, amplitudes x1.3, indices +0.15,
   r39 x1.2). Timed: likelihood construction and compilation, MIGRAD, HESSE.
2. TS maps of the same region at nside 1024 (point-source kernel, both detectors), over the background.
The last line is a JSON object of the figures.
"""

import argparse
import json
import time

import jax
import numpy as np

from skyfit.catalog import Region, read_1lhaaso
from skyfit.detect import ts_map
from skyfit.fit import Fit
from skyfit.likelihood import Likelihood
from skyfit.models import Models, PointSpatialModel, PowerLaw, Source
from skyfit.simulate import lhaaso_dataset, simulate_dataset
from skyfit.skies import catalog_sky, galactic_diffuse

CRAB_3TEV = 2.34e-13 * (3.0 / 7.0) ** -2.6  # approximate Crab flux at 3 TeV (HAWC log-parabola at 7 TeV)


def truth_model(region: Region, n_sources: int, rng) -> Models:
    sky = catalog_sky(read_1lhaaso(), region, 1.5)
    sources = list(sky.sources)
    k = 0
    while len(sources) < n_sources:
        lon = rng.uniform(region.l_min + 1, region.l_max - 1)
        lat = rng.uniform(region.b_min + 1, region.b_max - 1)
        from astropy.coordinates import SkyCoord

        c = SkyCoord(lon, lat, unit="deg", frame="galactic").icrs
        det = ("WCDA", "KM2A")[k % 2]
        amp = rng.uniform(0.03, 0.1) * CRAB_3TEV * (1.0 if det == "WCDA" else (50 / 3.0) ** -3.0)
        ref = 3.0 if det == "WCDA" else 50.0
        sources.append(Source(f"synthetic{k}_{det}", PointSpatialModel.create(c.ra.deg, c.dec.deg),
                              PowerLaw.create(amp, 2.7, ref), datasets=(det,)))  # fmt: skip
        k += 1
    return Models(sources + [galactic_diffuse()])


def perturbed(model: Models, rng) -> Models:
    values = {}
    for key, q in model.parameters().items():
        if q.frozen:
            continue
        name = key.split(".")[-1]
        if name in ("lon_0", "lat_0"):
            values[key] = q.value + rng.normal(0, 0.05)
        elif name == "amplitude":
            values[key] = q.value * 1.3
        elif name == "index":
            values[key] = q.value + 0.15
        elif name == "sigma":
            values[key] = q.value * 1.2
    return model.with_values(values)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--region", default="60,80,-5,5")
    parser.add_argument("--n-sources", type=int, default=30)
    parser.add_argument("--nside", type=int, default=512)
    parser.add_argument("--tsmap-nside", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-tsmap", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    region = Region.parse(args.region)
    truth = truth_model(region, args.n_sources, rng)
    n_components = len(truth.sources) - 1
    roi = region.roi(args.nside, 1.5)
    datasets = []
    for det in ("WCDA", "KM2A"):
        ds = lhaaso_dataset(det, roi=roi, livetime_days=365.0, name=det)
        datasets.append(simulate_dataset(truth.for_datasets([det]), ds, int(rng.integers(2**31))))
    start = perturbed(truth, rng)
    n_free = sum(not q.frozen for q in start.parameters().values())
    print(f"region {region}: {n_components} components + diffuse, {n_free} free parameters, "
          f"{roi.n_pix} pixels x (6 WCDA + 9 KM2A) bins at nside {args.nside}")  # fmt: skip

    t0 = time.perf_counter()
    lk = Likelihood(start, datasets, cutout_margin_deg=0.5)
    v, g = lk.value_and_grad(lk.vector())
    jax.block_until_ready(g)
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(5):
        jax.block_until_ready(lk.value_and_grad(lk.vector())[1])
    t_eval = (time.perf_counter() - t0) / 5
    t0 = time.perf_counter()
    res = Fit(lk, strategy=0, hessian="minuit").run(start, hesse=False)
    t_migrad = time.perf_counter() - t0
    t0 = time.perf_counter()
    final = Fit(lk, strategy=0, hessian="fd").run(res.model, hesse=True, migrad=False)
    t_hesse = time.perf_counter() - t0
    fit_total = t_compile + t_migrad + t_hesse
    pulls = []
    for key, err in final.errors.items():
        if key.endswith(("lon_0", "lat_0")) and err > 0:
            pulls.append((final.model.values()[key] - truth.values()[key]) / err)
    print(f"joint fit: compile + first call {t_compile:.1f} s, MIGRAD {t_migrad:.1f} s ({res.nfcn} calls), "
          f"HESSE {t_hesse:.1f} s; total {fit_total:.1f} s; valid {final.valid} {final.messages}")  # fmt: skip
    print(f"  value + gradient {t_eval * 1e3:.1f} ms; position pulls: mean {np.mean(pulls):.2f}, "
          f"rms {np.sqrt(np.mean(np.square(pulls))):.2f} ({len(pulls)})")  # fmt: skip

    figures = {
        "n_components": n_components,
        "n_free_parameters": n_free,
        "fit_compile_s": round(t_compile, 2),
        "fit_migrad_s": round(t_migrad, 2),
        "fit_hesse_s": round(t_hesse, 2),
        "fit_total_s": round(fit_total, 2),
        "fit_calls": res.nfcn,
        "fit_valid": bool(final.valid),
        "eval_ms": round(t_eval * 1e3, 1),
        "position_pull_rms": round(float(np.sqrt(np.mean(np.square(pulls)))), 3),
    }
    if not args.skip_tsmap:
        roi_hi = region.roi(args.tsmap_nside, 0.0)
        for det in ("WCDA", "KM2A"):
            ds = lhaaso_dataset(det, roi=roi_hi, livetime_days=365.0, name=det)
            ds = simulate_dataset(truth.for_datasets([det]), ds, int(rng.integers(2**31)))
            t0 = time.perf_counter()
            tsm = ts_map(ds, None, "point")
            dt = time.perf_counter() - t0
            print(f"TS map {det}: {roi_hi.n_pix} test positions at nside {args.tsmap_nside}, {dt:.1f} s "
                  f"(levels {tsm.meta['levels_nside']}), max TS {tsm.ts.max():.0f}")  # fmt: skip
            figures[f"tsmap_{det.lower()}_s"] = round(dt, 2)
        figures["tsmap_total_s"] = round(figures["tsmap_wcda_s"] + figures["tsmap_km2a_s"], 2)
        figures["tsmap_positions"] = int(roi_hi.n_pix)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

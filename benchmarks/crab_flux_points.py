"""HAWC Crab (NN, fHit 5-9) flux points from skyfit against HAWC's published points (Abeysekara et al. 2019).

Protocol: the public pass-4 events binned by ``hawc_dataset("NN")`` (3 deg disc, nside 1024, the default safe
energy range); a log-parabola at the Crab's position (fixed), fitted; flux points in the analysis bins' own
reconstructed-energy bands (:func:`skyfit.flux_points`, amplitude refitted per band with the shape fixed);
for each band that HAWC also published: (ours - HAWC) / sqrt(err_ours^2 + err_HAWC^2); where either is an
upper limit, which. Needs the public data (SKYFIT_DATA). Writes OUTDIR/crab_flux_points.fits and
OUTDIR/sed_crab.png. Last line: one JSON object.

    python benchmarks/crab_flux_points.py --outdir OUT
"""

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
from astropy.table import Table

from skyfit import Fit, Likelihood, LogParabola, Models, PointSpatialModel, Source, data_dir, flux_points, hawc_dataset
from skyfit.dataset import BackgroundNaNWarning
from skyfit.fluxpoints import plot_sed
from skyfit.hawc import CRAB_DEC_DEG, CRAB_RA_DEG


def _text(r) -> str:
    return f"< {r['dnde_ul']:.3e}" if r["is_ul"] else f"{r['dnde']:.3e} ± {r['dnde_err']:.2e}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outdir", default="crab-flux-points")
    out = Path(ap.parse_args().outdir)
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BackgroundNaNWarning)
        ds = hawc_dataset("NN")
    crab = Source("crab", PointSpatialModel.create(CRAB_RA_DEG, CRAB_DEC_DEG), LogParabola.create(2.3e-13, 2.6, 0.1))
    result = Fit(Likelihood(Models([crab]).with_frozen(["crab.lon_0", "crab.lat_0"]), [ds])).run()
    t0 = time.perf_counter()
    fp = flux_points(result, [ds], "crab")
    fp_s = time.perf_counter() - t0
    fp.write(out / "crab_flux_points.fits")
    pub = Table.read(data_dir("hawc", "crab_flux") / "HAWC19_flux_points.fits")
    plot_sed(
        fp,
        result,
        out / "sed_crab.png",
        compare=pub,
        title="HAWC Crab (NN): skyfit vs HAWC 2019",
        compare_label="HAWC 2019 (Abeysekara et al.)",
    )
    rows = []
    print(f"{'band (TeV)':>14s} {'skyfit dnde':>24s} {'HAWC 2019 dnde':>24s} {'pull':>6s}")
    for r in fp.table:
        m = np.isclose(pub["e_min"], r["e_min"], rtol=1e-2) & np.isclose(pub["e_max"], r["e_max"], rtol=1e-2)
        p = pub[m][0] if m.any() else None
        ours = _text(r)
        theirs = "-" if p is None else _text(p)
        pull = None
        if p is not None and not r["is_ul"] and not p["is_ul"]:
            pull = float((r["dnde"] - p["dnde"]) / np.hypot(r["dnde_err"], p["dnde_err"]))
        pull_text = "" if pull is None else f"{pull:6.2f}"
        print(f"{r['e_min']:6.2f}-{r['e_max']:<7.2f} {ours:>24s} {theirs:>24s} {pull_text}")
        rows.append({"e_min": float(r["e_min"]), "e_max": float(r["e_max"]), "dnde": float(r["dnde"]),
                     "dnde_err": float(r["dnde_err"]), "ts": float(r["ts"]), "is_ul": bool(r["is_ul"]),
                     "pull_vs_hawc": pull})  # fmt: skip
    pulls = [x["pull_vs_hawc"] for x in rows if x["pull_vs_hawc"] is not None]
    print(json.dumps({"n_bands": len(rows), "n_compared": len(pulls), "max_abs_pull": max(abs(x) for x in pulls),
                      "within_2sigma": all(abs(x) < 2 for x in pulls), "flux_points_s": fp_s,
                      "bands": rows}))  # fmt: skip


if __name__ == "__main__":
    main()

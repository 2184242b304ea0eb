"""Crowded fields: can a proposer resolve blended sources? TS-map finder, network prior, both, and an oracle
(issue #30).

    python benchmarks/crowded_fields.py [--n-blends 300] [--methods tsmap,nn,both,oracle]
                                        [--outdir /tmp/skyfit-crowded] [--prior-weights FILE]
                                        [--multiplicity FILE|shipped]

Protocol (version 2; version 1 was written before the first run and is kept but for the ROI's shape, below;
a fix to a bug is a new version, stated here):

- Population (drawn by ``skyfit.detect.blends``, stream 1): blend k = 0 .. n-1 (default 300), one per ROI.
  Detector: WCDA for even k, KM2A for odd k (only that detector is simulated: one year, nside 512, skyfit's
  parametric response, the cosmic-ray background and the Galactic diffuse band). ROI: the 1220 HEALPix pixels
  (nside 512: 16 deg2, the area of a 4 x 4 deg box) nearest its centre, a disc of about 2.26 deg, centred at l
  uniform in 15-75 deg, b uniform in -1..1 deg. (Version 2; version 1 took the 4 x 4 deg box in l, b, whose
  pixel count changes with its place: every blend paid JAX's compilation again, 20 s a blend instead of a few,
  and the run would not fit in an hour. Stopped after 6 of 300 blends; nothing else changed.)
  Type by k mod 5: 0, 1, 2 a pair of point sources;
  3 a point source on an extended one (Gaussian, r39 log-uniform in 0.2-1 deg); 4 a triple of points.
  The first member sits at the ROI centre offset by uniform -0.25..0.25 deg in l and b; each other member
  at a separation u PSF68 from it in a uniform direction, log10 u uniform in -1..0 (PSF68: the detector's
  median over analysis bins, ``skyfit.detect.psf68``). Fluxes: relative amplitudes 1 and 10^U(0, 1) (pair,
  point on extended: which member is the brighter is drawn 50/50), 1, 10^U(0,1), 10^U(0,1) (triple);
  spectral index the finder's default (2.6 WCDA, 3.0 KM2A) + U(-0.2, 0.2), the same for the members. The
  overall scale is set so that the least significant member's TS_true is T, log10 T uniform in
  log10 37..log10 300; TS_true of a member is its expected TS alone over the background and diffuse
  emission, the Asimov 2 sum[(mu + s) ln(1 + s / mu) - s] over pixels and bins (s its predicted counts,
  mu those of background and diffuse emission), so every member has TS_true >= 37. Generator:
  ``numpy.random.default_rng([30, 1, k])`` for the blend and its Poisson counts (stream 1: never used
  for training or tuning; stream 2 is for validation, 3 for training).
- Methods, on the same counts: ``tsmap``, ``nn``, ``both`` (``skyfit.catalog.detect_and_fit`` with that
  proposer, every other setting its default) and ``oracle``: the same function seeded with the true
  members (true positions; r39 for the extended member, points as points; the finder's default index,
  amplitude the truth's) and no proposer (``proposer="none"``): the same fits, TS tests (TS > 25, pruning,
  extension test TS_ext > 16). Its resolved fraction is the ceiling. With ``--multiplicity``, ``nn`` and
  ``both`` also run the multiplicity network's test (``skyfit.detect.multiplicity``; issue #30's
  model-selection test, added after the first run: the same blends and counts, a new output directory).
- Matching, per blend, in its detector: the final components with TS >= 25 inside the ROI are
  matched one-to-one to the members (scipy's linear_sum_assignment on angular distance), a pair allowed
  only within R_i = min(0.3 deg, half the distance from member i to its nearest other member). A blend is
  resolved when every member is matched. A false component is one with no member within its R_i (the
  only true components are the members, all with TS_true >= 37 > 16).
- Metrics per method: resolved fraction (Clopper-Pearson 68 % interval); false components per blend
  (mean; 68 % interval from 2000 bootstrap resamplings of the blends, generator seed 0); likelihood fits
  per resolved blend (all fits of ``RoiResult.fits`` summed over the blends / blends resolved; the same
  bootstrap); wall time per blend (mean, and the first blend apart: it pays JAX's compilation). For all
  blends and for those whose smallest member separation is below 0.5 PSF68; and on a grid of smallest
  separation (PSF68: 0.1, 0.2, 0.3, 0.5, 0.7, 1.0) x largest flux ratio (1, 2, 4, 10).
- Goal (issue #30): below 0.5 PSF68, ``nn`` closes at least half of the gap between ``tsmap`` and the
  oracle, with 68 % intervals that do not overlap ``tsmap``'s, and no more false components per blend
  than ``tsmap`` within the intervals.
- Every (blend, method) result is appended to OUTDIR/blends.jsonl when done; a rerun resumes (the
  protocol version and the options are checked). The last line is a JSON object of the figures;
  OUTDIR/crowded_fields.png shows the resolved fraction against separation.
"""

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np
from catalog_quality import clopper_pearson
from scipy.optimize import linear_sum_assignment

from skyfit.catalog import DetectionConfig, detect_and_fit
from skyfit.detect._skies import _icrs
from skyfit.detect.blends import draw_blend, realise, roi_contains
from skyfit.detect.components import components, seed_component, to_point

PROTOCOL_VERSION = 2
METHODS = ("tsmap", "nn", "both", "oracle")
STREAM = 1  # the benchmark's blends; 2: validation, 3: training (issue #30's model-selection network)
SEP_EDGES = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
RATIO_EDGES = (1.0, 2.0, 4.0, 10.0)
TS_KEEP = 25.0


def sep_deg(ra1, dec1, ra2, dec2):
    """Angular distance (deg), broadcast over the arrays (haversine)."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(v, float)) for v in (ra1, dec1, ra2, dec2))
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def oracle_seeds(real: dict, cfg: DetectionConfig) -> list:
    """The true members as the components a finder would add (points as points, the finder's index)."""
    out = []
    det = real["dataset"].name
    for i, m in enumerate(real["members"]):
        ra, dec = (float(v) for v in _icrs(m["l"], m["b"]))
        amp = m["spectra"][det][0]
        sd = seed_component(f"t{i:03d}_{det}", ra, dec, det, det, amp, cfg, m["r39"] if m["r39"] > 0 else None)
        out.append(sd if m["r39"] > 0 else to_point(sd))
    return out


def match(real: dict, fitted: list[dict]) -> dict:
    """Resolved (every member matched one-to-one within R_i) and the false components of one blend."""
    mem = real["members"]
    mra, mdec = (np.asarray(v, float) for v in _icrs(np.array([m["l"] for m in mem]), np.array([m["b"] for m in mem])))
    dmm = sep_deg(mra[:, None], mdec[:, None], mra[None, :], mdec[None, :])
    np.fill_diagonal(dmm, np.inf)
    radius = np.minimum(0.3, 0.5 * dmm.min(axis=1))
    comps = [c for c in fitted if c["ts"] >= TS_KEEP and roi_contains(real["roi"], c["ra"], c["dec"])]
    if not comps:
        return {"resolved": False, "n_false": 0, "n_matched": 0, "n_components": 0}
    cra, cdec = np.array([c["ra"] for c in comps]), np.array([c["dec"] for c in comps])
    d = sep_deg(mra[:, None], mdec[:, None], cra[None, :], cdec[None, :])
    ok = d < radius[:, None]
    rows, cols = linear_sum_assignment(np.where(ok, d, 1e6))
    n_matched = int(np.sum(ok[rows, cols]))
    n_false = int(np.sum(~ok.any(axis=0)))
    return {"resolved": n_matched == len(mem), "n_false": n_false, "n_matched": n_matched, "n_components": len(comps)}


def run_method(real: dict, method: str, prior_weights=None, multiplicity=None) -> dict:
    """One method on one blend: its components (l, b, ra, dec, TS), fits and wall time. ``multiplicity``: the
    multiplicity network's file (``"shipped"``: skyfit's own) for ``nn`` and ``both``; None: not used."""
    from skyfit.detect._skies import _galactic

    cfg = DetectionConfig(proposer="none" if method == "oracle" else method, prior_weights=prior_weights,
                          multiplicity=multiplicity is not None and method in ("nn", "both"),
                          multiplicity_weights=None if multiplicity in (None, "shipped") else multiplicity)  # fmt: skip
    seeds = oracle_seeds(real, cfg) if method == "oracle" else None
    t0 = time.perf_counter()
    out = detect_and_fit([real["dataset"]], cfg, log=lambda *a: None, seeds=seeds)
    wall = time.perf_counter() - t0
    fitted = []
    for c in components(out.result.model):
        p = {q.name: q.value for q in c.spatial.parameters}
        lon, lat = (float(v) for v in _galactic(p["lon_0"], p["lat_0"]))
        fitted.append({"name": c.name, "ra": p["lon_0"], "dec": p["lat_0"], "l": lon, "b": lat,
                       "r39": c.spatial.extent_deg(), "ts": float(out.ts.get(c.name, 0.0))})  # fmt: skip
    return {"components": fitted, "fits": int(out.fits), "wall_s": wall, "valid": bool(out.result.valid)}


def _bootstrap(num: np.ndarray, den: np.ndarray, n_boot: int = 2000) -> list:
    """68 % interval of sum(num) / sum(den) over bootstrap resamplings of the blends (generator seed 0)."""
    if len(num) == 0 or den.sum() == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(num), (n_boot, len(num)))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = num[idx].sum(axis=1) / den[idx].sum(axis=1)
    return [float(v) for v in np.nanpercentile(r, [16, 84])]


def figures(rows: list[dict], suffix: str = "") -> dict:
    """The protocol's figures of each method over ``rows`` (one per blend and method)."""
    out = {}
    for m in METHODS:
        mine = [r for r in rows if r["method"] == m]
        if not mine:
            continue
        res = np.array([r["resolved"] for r in mine], float)
        n_false = np.array([r["n_false"] for r in mine], float)
        fits = np.array([r["fits"] for r in mine], float)
        k, n = int(res.sum()), len(mine)
        lo, hi = clopper_pearson(k, n)
        out[f"resolved_{m}{suffix}"] = k / n
        out[f"resolved_{m}{suffix}_lo"], out[f"resolved_{m}{suffix}_hi"] = lo, hi
        out[f"false_per_blend_{m}{suffix}"] = float(n_false.mean())
        out[f"false_per_blend_{m}{suffix}_lo"], out[f"false_per_blend_{m}{suffix}_hi"] = _bootstrap(n_false, np.ones(n))
        out[f"fits_per_resolved_{m}{suffix}"] = float(fits.sum() / k) if k else float("nan")
        out[f"fits_per_resolved_{m}{suffix}_lo"], out[f"fits_per_resolved_{m}{suffix}_hi"] = _bootstrap(fits, res)
        out[f"n_blends{suffix}"] = n
    return out


def grid_table(rows: list[dict]) -> dict:
    """Resolved fraction per (separation bin, flux-ratio bin) and method: {method: [[k, n], ...]}."""
    table = {}
    for m in METHODS:
        cells = np.zeros((len(SEP_EDGES) - 1, len(RATIO_EDGES) - 1, 2), int)
        for r in (r for r in rows if r["method"] == m):
            i = min(max(np.searchsorted(SEP_EDGES, r["sep_psf"], side="right") - 1, 0), len(SEP_EDGES) - 2)
            j = min(max(np.searchsorted(RATIO_EDGES, r["ratio"], side="right") - 1, 0), len(RATIO_EDGES) - 2)
            cells[i, j] += (int(r["resolved"]), 1)
        table[m] = cells.tolist()
    return table


def print_grid(table: dict) -> None:
    for m, cells in table.items():
        print(f"\n{m}: resolved / blends, rows smallest separation (PSF68), columns largest flux ratio")
        print(
            "            "
            + "".join(f"{RATIO_EDGES[j]:>4g}-{RATIO_EDGES[j + 1]:<4g}  " for j in range(len(RATIO_EDGES) - 1))
        )
        for i, row in enumerate(cells):
            print(f"  {SEP_EDGES[i]:>4g}-{SEP_EDGES[i + 1]:<4g}  " + "".join(f"{k:>4d}/{n:<4d}  " for k, n in row))


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    centres = np.sqrt(np.array(SEP_EDGES[:-1]) * np.array(SEP_EDGES[1:]))
    for j, m in enumerate(METHODS):
        cells = np.array(grid_table(rows)[m]).sum(axis=1)
        ok = cells[:, 1] > 0
        if not ok.any():
            continue
        frac = cells[ok, 0] / cells[ok, 1]
        ci = np.array([clopper_pearson(int(k), int(n)) for k, n in cells[ok]])
        x = centres[ok] * (1 + 0.03 * (j - 1.5))
        ax.errorbar(x, frac, yerr=[frac - ci[:, 0], ci[:, 1] - frac], marker="o", capsize=2, label=m)
    ax.set_xscale("log")
    ax.set_xlabel("smallest separation in the blend (PSF68)")
    ax.set_ylabel("blends resolved")
    ax.set_ylim(-0.02, 1.02)
    ax.legend()
    ax.set_title("crowded fields: resolved blends (68 % intervals)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _setup(args) -> dict:
    return {"protocol": PROTOCOL_VERSION, "prior_weights": args.prior_weights, "multiplicity": args.multiplicity}


def _read_done(path: Path, setup: dict) -> list[dict]:
    if not path.exists():
        return []
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    if lines and lines[0].get("setup") != setup:
        raise SystemExit(f"{path}: written with {lines[0].get('setup')}, now {setup}; use another --outdir")
    return [x for x in lines[1:]]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-blends", type=int, default=300)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--outdir", default="/tmp/skyfit-crowded")
    ap.add_argument("--prior-weights", default=None, help="the network's file (default: the shipped weights)")
    ap.add_argument("--multiplicity", default=None, metavar="FILE|shipped",
                    help="nn and both with the multiplicity network's test (its file, or 'shipped')")  # fmt: skip
    args = ap.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    if any(m not in METHODS for m in methods):
        raise SystemExit(f"--methods: choose among {METHODS}")
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    path, setup = out / "blends.jsonl", _setup(args)
    rows = _read_done(path, setup)
    if not path.exists():
        path.write_text(json.dumps({"setup": setup}) + "\n")
    done = {(r["k"], r["method"]) for r in rows}
    t_start = time.time()
    for k in range(args.n_blends):
        todo = [m for m in methods if (k, m) not in done]
        if not todo:
            continue
        if k % 20 == 0:  # compiled code of older blends' models: freed (the process ran out of memory maps
            jax.clear_caches()  # after about 190 blends, "LLVM compilation error: Cannot allocate memory")
        blend = draw_blend(k, STREAM)
        real = realise(blend)
        seps = np.array(blend["seps_psf"])
        amps = np.array(blend["amps"])
        if blend["kind"] == "triple":  # the smallest of the three distances
            p = real["members"]
            ra, dec = _icrs(np.array([m["l"] for m in p]), np.array([m["b"] for m in p]))
            d = sep_deg(ra[:, None], dec[:, None], ra[None, :], dec[None, :])
            seps = d[np.triu_indices(3, 1)] / real["psf68"]
        info = {"k": k, "det": blend["det"], "kind": blend["kind"], "sep_psf": float(seps.min()),
                "ratio": float(amps.max() / amps.min()), "ts_true": real["ts_true"]}  # fmt: skip
        for m in todo:
            res = run_method(real, m, args.prior_weights, args.multiplicity)
            row = {**info, "method": m, **match(real, res["components"]),
                   "fits": res["fits"], "wall_s": res["wall_s"], "valid": res["valid"]}  # fmt: skip
            rows.append(row)
            with path.open("a") as f:
                f.write(json.dumps(row) + "\n")
        if (k + 1) % 10 == 0 or k == args.n_blends - 1:
            now = {m: np.mean([r["resolved"] for r in rows if r["method"] == m]) for m in methods}
            print(f"blend {k + 1}/{args.n_blends} ({time.time() - t_start:.0f} s): resolved "
                  + ", ".join(f"{m} {v:.3f}" for m, v in now.items()), flush=True)  # fmt: skip
    rows = [r for r in rows if r["k"] < args.n_blends]
    close = [r for r in rows if r["sep_psf"] < 0.5]
    result = {**figures(rows), **figures(close, "_below_half_psf")}
    for m in methods:
        walls = [r["wall_s"] for r in sorted(rows, key=lambda r: r["k"]) if r["method"] == m]
        result[f"wall_s_{m}"] = float(np.mean(walls)) if walls else float("nan")
        result[f"first_blend_wall_s_{m}"] = walls[0] if walls else float("nan")
    table = grid_table(rows)
    print_grid(table)
    (out / "grid.json").write_text(json.dumps(table))
    plot(rows, out / "crowded_fields.png")
    if {"tsmap", "nn", "oracle"} <= set(methods):
        s = "_below_half_psf"
        gap = result[f"resolved_oracle{s}"] - result[f"resolved_tsmap{s}"]
        result["gap_closed_nn_below_half_psf"] = (
            (result[f"resolved_nn{s}"] - result[f"resolved_tsmap{s}"]) / gap if gap > 0 else float("nan")
        )
    print(f"\nplot: {out / 'crowded_fields.png'}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

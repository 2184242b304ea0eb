"""Why the HAWC Crab TS differs between skyfit (554) and gammapy (644), measured one difference at a time.

    python benchmarks/crab_ts_vs_gammapy.py [--fine]

Data: HAWC's public pass-4 Crab events, NN estimator, fHit 5-9; model: point source with a log-parabola
at 7 TeV; TS = -2 ln L(background only) - (-2 ln L(best fit)), background fixed in both tools (neither
fits a background norm, so the null hypothesis has no free parameter: amplitude 0, nothing refitted).
The gammapy side is ``_gammapy_peer.py`` (gammapy's HAWC tutorial reduction: 6x6 deg CAR at 0.05 deg,
``SafeMaskMaker(["aeff-max"])``, background and exposure times the transits at the map centre).

Table 1 starts from skyfit's default dataset (``hawc_dataset("NN")``: 3 deg disc, nside 1024, its own
safe-energy rule) and changes one thing at a time towards gammapy's reduction (cumulative):

1. the ``aeff-max`` threshold computed as gammapy does (log-log interpolation between true-energy bin
   centres, ``hawc_dataset(safe_mask="gammapy")``), zero-background pixels still in;
2. pixels with zero background masked (gammapy's ``bkg-invalid`` rule, part of ``safe_mask="gammapy"``);
3. the ROI: the HEALPix pixels whose centres fall in gammapy's 6x6 deg CAR map (``hawc_dataset(roi=)``);
4. background and exposure times one number of transits, read at gammapy's map centre (skyfit: per pixel);
   this is the matched configuration at skyfit's default pixel size;
5. smaller HEALPix pixels (nside 2048 and 4096; gammapy's 0.05 deg lies between nside 1024 and 2048).

Table 2 moves gammapy instead, for what skyfit cannot switch: its PSF kernel (the radial table cut at
gammapy's default 0.66 deg, vs the full table; then skyfit's three-Gaussian fit put in its place) and its
pixel grid (the same 0.05 deg grid shifted by a quarter, half and three quarters of a pixel; pixels with
the area of nside 1024 and 2048). The grid shifts measure the binning scatter of the TS itself.

``--fine`` adds the fine-binning limit (gammapy at 0.0125 deg, skyfit at nside 8192: about 4 more
minutes and 9 GB of memory). Then it prints, per analysis bin, the TS share of each fit and the
background and source counts of the matched skyfit dataset against gammapy's (same parameters).
The last line of stdout is one JSON object with the figures. Runtime on 2 cores: about 8 minutes,
12 with ``--fine``.

Measured (gammapy 2.1): default 554.0 vs 643.8 (0.861); the safe threshold alone brings 633.1
(0.984); matched at nside 1024 634.4 (0.985), nside 2048 642.1 (0.997); gammapy's own TS moves
between 637.5 and 643.8 when its grid is shifted by fractions of a pixel; in the fine-binning limit
640.9 (skyfit, nside 8192) vs 640.9 (gammapy, 0.0125 deg).
"""

import argparse
import contextlib
import dataclasses
import json
import sys
import time
import warnings
from pathlib import Path

import astropy.units as u
import healpy as hp
import numpy as np
from astropy.coordinates import SkyCoord
from scipy.special import xlogy

sys.path.insert(0, str(Path(__file__).parent))
import _gammapy_peer as peer  # noqa: E402

from skyfit import Fit, Likelihood, LogParabola, Models, PointSpatialModel, Source, hawc_dataset  # noqa: E402
from skyfit.dataset import BackgroundNaNWarning  # noqa: E402
from skyfit.fit import ts_of_source  # noqa: E402
from skyfit.hawc import CRAB_DEC_DEG, CRAB_RA_DEG, aeff_max_threshold_gammapy  # noqa: E402
from skyfit.maps import HealpixMaps, HealpixROI, unit_vectors  # noqa: E402
from skyfit.response.hawc import hawc_response, read_car_cube, sample_car  # noqa: E402

# the peer's map geometry (gammapy's HAWC tutorial)
GAMMAPY_CENTER = (83.63, 22.01)
GAMMAPY_WIDTH_DEG = 6.0
GAMMAPY_BINSZ_DEG = 0.05
ENERGY_EDGES_TEV = peer.ENERGY_EDGES_TEV


def gammapy_geom(binsz=GAMMAPY_BINSZ_DEG, width=GAMMAPY_WIDTH_DEG):
    """The peer's 2D map geometry (CAR, ICRS, centred on ``GAMMAPY_CENTER``)."""
    from gammapy.maps import WcsGeom

    return WcsGeom.create(skydir=SkyCoord(*GAMMAPY_CENTER, unit="deg", frame="icrs"), width=width * u.deg, binsz=binsz)


def car_footprint_roi(nside, nest=True, binsz=GAMMAPY_BINSZ_DEG, width=GAMMAPY_WIDTH_DEG) -> HealpixROI:
    """The HEALPix pixels whose centres fall inside gammapy's CAR map (its pixel edges), centred where it is."""
    geom = gammapy_geom(binsz, width)
    cand = hp.query_disc(nside, unit_vectors(*GAMMAPY_CENTER), np.radians(width), nest=nest, inclusive=True)
    theta, phi = hp.pix2ang(nside, cand, nest=nest)
    x, y = geom.wcs.world_to_pixel_values(np.degrees(phi), 90 - np.degrees(theta))
    ny, nx = geom.data_shape
    inside = (x > -0.5) & (x < nx - 0.5) & (y > -0.5) & (y < ny - 0.5)
    return HealpixROI(nside, nest, cand[inside], meta={"center_ra": GAMMAPY_CENTER[0], "center_dec": GAMMAPY_CENTER[1]})


def matched_dataset(nside=1024, path=None):
    """skyfit's dataset under gammapy's reduction rules (steps 1-3): safe mask and ROI (transits: step 4)."""
    return hawc_dataset("NN", safe_mask="gammapy", roi=car_footprint_roi(nside), path=path)


def with_gammapy_transits(ds, path=None):
    """Background and exposure scaled by one number of transits, the transits map's pixel value at gammapy's
    map centre (gammapy's ``get_by_coord``, nearest pixel), instead of skyfit's interpolation per pixel
    (background) and per declination node (exposure)."""
    path = Path(path) if path is not None else peer.data_dir_default()
    transits, wcs, _ = read_car_cube(path / "irfs" / "TransitsMap_Crab.fits.gz", 0)
    t_center = float(sample_car(transits, wcs, *GAMMAPY_CENTER, order=0)[0])
    ra, dec = ds.roi.radec()
    background = HealpixMaps(ds.background.data * t_center / sample_car(transits, wcs, ra, dec), ds.roi, ds.bin_names)
    r = ds.response
    nodes = np.asarray(r.dec_nodes_deg, float)
    t_nodes = sample_car(transits, wcs, np.full(nodes.size, ds.roi.center()[0]), nodes)
    response = dataclasses.replace(r, counts_matrix=r.counts_matrix * (t_center / t_nodes)[:, None, None])
    return dataclasses.replace(ds, background=background, response=response)


def crab_model(free_position):
    crab = Source(
        "crab", PointSpatialModel.create(CRAB_RA_DEG, CRAB_DEC_DEG), LogParabola.create(2.3e-13, 2.6, 0.1, 7.0)
    )
    model = Models([crab])
    return model if free_position else model.with_frozen(["crab.lon_0", "crab.lat_0"])


def fit_skyfit(ds):
    """TS with free and with fixed position; best-fit values of the free-position fit."""
    out = {}
    for free in (False, True):
        result = Fit(Likelihood(crab_model(free), [ds])).run()
        ts, _ = ts_of_source(result, [ds], "crab")
        out["ts" if free else "ts_fixed"] = ts
        if free:
            out["valid"] = bool(result.valid)
            out.update({k: result.value(f"crab.{k}") for k in ("amplitude", "alpha", "beta")})
            out["ra"], out["dec"] = result.value("crab.lon_0"), result.value("crab.lat_0")
            out["per_band"] = per_band_ts_skyfit(result, ds)
    return out


def per_band_ts_skyfit(result, ds):
    """Each analysis bin's share of the TS at the best fit (Cash null minus Cash best, unmasked pixels)."""
    npred = Likelihood(result.model, [ds]).npred()[0]
    bkg, n, mask = ds.background_filled(), ds.counts.data, ds.mask
    cash = 2 * (npred - xlogy(n, npred)) - 2 * (bkg - xlogy(n, np.where(bkg > 0, bkg, 1.0)))
    return {name.replace("NN", ""): float(-np.sum(cash[i][mask[i]])) for i, name in enumerate(ds.bin_names)}


def per_band_ts_gammapy(datasets):
    """Each (fHit, band)'s share of gammapy's TS at its current (best-fit) model."""
    out = {}
    for d in datasets:
        m, n, b, s = d.mask_safe.data, d.counts.data, d.background.data, d.npred_signal().data
        for i in range(n.shape[0]):
            if m[i].any():
                mu0, mu1, k = b[i][m[i]], b[i][m[i]] + s[i][m[i]], n[i][m[i]]
                name = f"{d.name}_E{ENERGY_EDGES_TEV[i]:.3g}-{ENERGY_EDGES_TEV[i + 1]:.3g}"
                out[name] = float(np.sum(2 * (mu0 - xlogy(k, mu0)) - 2 * (mu1 - xlogy(k, mu1))))
    return out


@contextlib.contextmanager
def gammapy_variant(binsz=None, shift_px=0.0, rad_max_deg=None):
    """The peer's reduction with another pixel size, its grid shifted diagonally by ``shift_px`` pixels, or
    a PSF radius axis to ``rad_max_deg`` (gammapy's default stops at 0.66 deg), by swapping the two
    gammapy constructors the peer calls; restored on exit."""
    from gammapy.datasets import MapDataset
    from gammapy.maps import MapAxis, WcsGeom

    class Geom:
        @staticmethod
        def create(**kw):
            size = binsz or kw["binsz"]
            c = kw["skydir"]
            step = shift_px * size * u.deg
            kw.update(binsz=size, skydir=SkyCoord(c.ra + step / np.cos(c.dec), c.dec + step, frame=c.frame))
            return WcsGeom.create(**kw)

    class Dataset:
        @staticmethod
        def create(*args, **kw):
            if rad_max_deg:
                n = int(round(rad_max_deg / 0.01))
                kw["rad_axis"] = MapAxis.from_bounds(0, rad_max_deg, nbin=n, node_type="edges", name="rad", unit="deg")
            return MapDataset.create(*args, **kw)

    saved = peer.WcsGeom, peer.MapDataset
    peer.WcsGeom, peer.MapDataset = Geom, Dataset
    try:
        yield
    finally:
        peer.WcsGeom, peer.MapDataset = saved


def put_skyfit_psf(datasets, sky_ds):
    """Replace gammapy's tabulated PSF of each (fHit, band) by skyfit's three-Gaussian fit of the same table."""
    r = sky_ds.response
    for d in datasets:
        pm = d.psf.psf_map
        rad = pm.geom.axes["rad"].center.to_value("deg")
        for i in range(len(ENERGY_EDGES_TEV) - 1):
            name = f"{d.name}NN_E{ENERGY_EDGES_TEV[i]:.3g}-{ENERGY_EDGES_TEV[i + 1]:.3g}"
            if name in r.bin_names:
                j = r.bin_names.index(name)
                w, s = r.psf.weights[j], r.psf.sigma_deg[j]
                density = np.sum(w / (2 * np.pi * s**2) * np.exp(-0.5 * (rad[:, None] / s) ** 2), axis=1)  # deg^-2
                pm.data[i] = density[:, None, None] * u.Unit("deg-2").to(pm.unit)


def fit_gammapy(datasets):
    out = {"ts_fixed": peer.fit_crab_gammapy(datasets, free_position=False)["ts"]}
    free = peer.fit_crab_gammapy(datasets, free_position=True)
    out.update({k: free[k] for k in ("ts", "amplitude", "alpha", "beta", "ra", "dec", "success")})
    out["per_band"] = per_band_ts_gammapy(datasets)
    out["sums"] = {}  # (background, signal) counts per (fHit, band) in the fit, at the best fit
    for d in datasets:
        m, b, s = d.mask_safe.data, d.background.data, d.npred_signal().data
        for i in np.nonzero(m.any(axis=(1, 2)))[0]:
            name = f"{d.name}_E{ENERGY_EDGES_TEV[i]:.3g}-{ENERGY_EDGES_TEV[i + 1]:.3g}"
            out["sums"][name] = (float(b[i][m[i]].sum()), float(s[i][m[i]].sum()))
    return out


def sums_skyfit(ds, g):
    """(background, signal) counts per analysis bin of ``ds`` with gammapy's best-fit source ``g``."""
    values = {f"crab.{k}": g[k] for k in ("amplitude", "alpha", "beta")}
    values.update({"crab.lon_0": g["ra"], "crab.lat_0": g["dec"]})
    model = crab_model(True).with_values(values)
    bkg = ds.background_filled()
    signal = Likelihood(model, [ds]).npred()[0] - bkg
    return {
        name.replace("NN", ""): (float(bkg[i][ds.mask[i]].sum()), float(signal[i][ds.mask[i]].sum()))
        for i, name in enumerate(ds.bin_names)
    }


def make_gammapy(**variant):
    with gammapy_variant(**variant):
        return peer.make_gammapy_datasets(peer.data_dir_default(), estimator="NN")


def thresholds(path=None):
    """Per fHit bin: skyfit's default aeff-max threshold and gammapy's (TeV), at gammapy's map centre."""
    path = Path(path) if path is not None else peer.data_dir_default()
    out = {}
    for fhit in (5, 6, 7, 8, 9):
        _, default = hawc_response(path, fhit, "NN", GAMMAPY_CENTER[0], np.array([GAMMAPY_CENTER[1]]))
        aeff = path / "irfs" / f"EffectiveAreaMap_Crab_fHitbin{fhit}NN.fits.gz"
        out[fhit] = (default, aeff_max_threshold_gammapy(aeff, *GAMMAPY_CENTER))
    return out


def row(label, s, g):
    return {
        "step": label,
        "ts_skyfit": round(s["ts"], 2),
        "ts_gammapy": round(g["ts"], 2),
        "ratio": round(s["ts"] / g["ts"], 4),
        "ts_skyfit_fixed": round(s["ts_fixed"], 2),
        "ts_gammapy_fixed": round(g["ts_fixed"], 2),
        "ratio_fixed": round(s["ts_fixed"] / g["ts_fixed"], 4),
    }


def print_table(title, rows):
    print(f"\n{title}")
    head = f"{'step':64s}{'skyfit':>9s}{'gammapy':>9s}{'ratio':>8s}"
    print(f"{head} | {'fixed position: skyfit':>22s}{'gammapy':>9s}{'ratio':>8s}")
    for r in rows:
        print(
            f"{r['step']:64s}{r['ts_skyfit']:9.2f}{r['ts_gammapy']:9.2f}{r['ratio']:8.4f} | "
            f"{r['ts_skyfit_fixed']:22.2f}{r['ts_gammapy_fixed']:9.2f}{r['ratio_fixed']:8.4f}"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fine", action="store_true", help="add the fine-binning limit (~5 min, 9 GB)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", BackgroundNaNWarning)
    warnings.filterwarnings("ignore", module="gammapy")
    warnings.filterwarnings("ignore", module="astropy")
    t_start = time.perf_counter()
    log = lambda msg: print(f"[{time.perf_counter() - t_start:6.0f} s] {msg}", file=sys.stderr, flush=True)  # noqa: E731

    gp_ref = fit_gammapy(peer.make_gammapy_datasets(peer.data_dir_default(), estimator="NN"))
    log(f"gammapy reference: TS {gp_ref['ts']:.2f}")

    steps, sky = [], {}
    ds = hawc_dataset("NN")
    sky["default"] = fit_skyfit(ds)
    steps.append(row("0 skyfit default: 3 deg disc, nside 1024, own safe threshold", sky["default"], gp_ref))
    ds = hawc_dataset("NN", safe_mask="gammapy")
    sky["threshold"] = fit_skyfit(dataclasses.replace(ds, mask=np.isfinite(ds.background.data)))
    steps.append(row("1 + gammapy's aeff-max threshold (interpolated)", sky["threshold"], gp_ref))
    sky["zero_bkg"] = fit_skyfit(ds)
    steps.append(row("2 + zero-background pixels masked (bkg-invalid)", sky["zero_bkg"], gp_ref))
    log("skyfit steps 0-2")
    ds = matched_dataset(1024)
    sky["roi"] = fit_skyfit(ds)
    steps.append(row("3 + ROI: gammapy's 6x6 deg CAR footprint", sky["roi"], gp_ref))
    ds = with_gammapy_transits(ds)
    sky["matched"] = fit_skyfit(ds)
    matched_ds = ds
    steps.append(row("4 + transits: one number at the centre = MATCHED, nside 1024", sky["matched"], gp_ref))
    for nside in (2048, 4096):
        sky[f"matched_{nside}"] = fit_skyfit(with_gammapy_transits(matched_dataset(nside)))
        steps.append(row(f"5 matched, nside {nside} ({hp.nside2resol(nside, arcmin=True) / 60:.3f} deg pixels)",
                         sky[f"matched_{nside}"], gp_ref))  # fmt: skip
    log("skyfit steps 3-5")

    # gammapy moved instead: PSF, pixel grid
    variants = []
    gds = make_gammapy(rad_max_deg=3.0)
    g = fit_gammapy(gds)
    variants.append(row("gammapy: PSF table to 3 deg (default stops at 0.66 deg)", sky["matched"], g))
    put_skyfit_psf(gds, matched_ds)
    g = fit_gammapy(gds)
    variants.append(row("gammapy: + skyfit's 3-Gaussian PSF in place of the table", sky["matched"], g))
    log("gammapy PSF variants")
    shifted = [gp_ref]
    for shift in (0.25, 0.5, 0.75):
        g = fit_gammapy(make_gammapy(shift_px=shift))
        shifted.append(g)
        variants.append(row(f"gammapy: 0.05 deg grid shifted by {shift:.2f} pixel (diagonal)", sky["matched"], g))
    log("gammapy grid shifts")
    for nside in (1024, 2048):
        size = float(np.sqrt(hp.nside2pixarea(nside, degrees=True)))
        g = fit_gammapy(make_gammapy(binsz=size))
        s = sky["matched"] if nside == 1024 else sky[f"matched_{nside}"]
        variants.append(row(f"gammapy: {size:.4f} deg pixels (area of nside {nside}) vs skyfit nside {nside}", s, g))
    log("gammapy pixel sizes")
    if args.fine:
        sky["matched_8192"] = fit_skyfit(with_gammapy_transits(matched_dataset(8192)))
        g = fit_gammapy(make_gammapy(binsz=0.0125))
        variants.append(row("fine limit: gammapy 0.0125 deg vs skyfit nside 8192", sky["matched_8192"], g))
        log("fine binning")

    thr = thresholds()
    print("HAWC Crab (NN), fHit 5-9, point source, log-parabola at 7 TeV; TS with free position (and fixed)")
    print("\nSafe-energy threshold (TeV) at the map centre: skyfit default (centre of the first true-energy bin")
    print("above 10 % of the maximum exposure) vs gammapy (log-log interpolation to the 10 % crossing)")
    for fhit, (a, b) in thr.items():
        print(f"  fHit{fhit}: skyfit {a:7.3f}   gammapy {b:7.3f}")
    print_table("Table 1: skyfit moved towards gammapy's reduction, one change at a time (cumulative)", steps)
    print_table("Table 2: gammapy moved (PSF, pixel grid); skyfit column: matched, same pixel scale", variants)

    bands = sorted(set(gp_ref["per_band"]) | set(sky["default"]["per_band"]),
                   key=lambda k: (k[:5], float(k.split("_E")[1].split("-")[0])))  # fmt: skip
    print("\nTS per analysis bin at each fit's best fit (free position). skyfit: default, then matched at nside")
    print("1024, 2048, 4096; gammapy: its 0.05 deg grid as is, then shifted by 0.25, 0.5, 0.75 pixel")
    cols = [sky[k] for k in ("default", "matched", "matched_2048", "matched_4096")] + shifted
    heads = [f"{h:>9s}" for h in ("default", "1024", "2048", "4096", "0.05", "+0.25", "+0.5", "+0.75")]
    print(f"  {'bin':20s}{''.join(heads[:4])} |{''.join(heads[4:])}")
    for k in bands + ["sum"]:
        vals = [sum(c["per_band"].values()) if k == "sum" else c["per_band"].get(k) for c in cols]
        text = [f"{v:9.2f}" if v is not None else f"{'-':>9s}" for v in vals]
        print(f"  {k:20s}{''.join(text[:4])} |{''.join(text[4:])}")
    sums = sums_skyfit(matched_ds, gp_ref)
    print("\nCounts per analysis bin in the fit, skyfit matched (nside 1024) / gammapy: background, and the")
    print("source's predicted counts with gammapy's best-fit parameters (exposure, dispersion, PSF containment)")
    for k, (gb, gs) in gp_ref["sums"].items():
        sb, ss = sums.get(k, (np.nan, np.nan))
        print(f"  {k:20s} background {sb:9.2f} / {gb:9.2f} = {sb / gb:6.4f}   ", end="")
        print(f"source {ss:7.3f} / {gs:7.3f} = {ss / gs:6.4f}")
    sum_b = sum(v[0] for v in sums.values()), sum(v[0] for v in gp_ref["sums"].values())
    sum_s = sum(v[1] for v in sums.values()), sum(v[1] for v in gp_ref["sums"].values())
    print(f"  {'all':20s} background {sum_b[0]:9.2f} / {sum_b[1]:9.2f} = {sum_b[0] / sum_b[1]:6.4f}   "
          f"source {sum_s[0]:7.3f} / {sum_s[1]:7.3f} = {sum_s[0] / sum_s[1]:6.4f}")  # fmt: skip
    print("\nbest fit (free position)     amplitude     alpha    beta       ra       dec")
    for label, r in (("skyfit default", sky["default"]), ("skyfit matched", sky["matched"]), ("gammapy", gp_ref)):
        print(f"  {label:24s}{r['amplitude']:12.4e}{r['alpha']:9.3f}{r['beta']:8.3f}{r['ra']:9.4f}{r['dec']:9.4f}")

    shift_ts = [g["ts"] for g in shifted]
    runtime = time.perf_counter() - t_start
    figures = {
        "ts_skyfit_default": round(sky["default"]["ts"], 2),
        "ts_gammapy": round(gp_ref["ts"], 2),
        "ts_skyfit_matched": round(sky["matched"]["ts"], 2),
        "ratio_matched": round(sky["matched"]["ts"] / gp_ref["ts"], 4),
        "ts_skyfit_matched_nside2048": round(sky["matched_2048"]["ts"], 2),
        "ratio_matched_nside2048": round(sky["matched_2048"]["ts"] / gp_ref["ts"], 4),
        "ts_gammapy_grid_shifts": [round(v, 2) for v in shift_ts],
        "ts_gammapy_grid_shift_mean": round(float(np.mean(shift_ts)), 2),
        "ts_gammapy_grid_shift_std": round(float(np.std(shift_ts, ddof=1)), 2),
        "thresholds_tev": {f"fHit{f}": [round(a, 3), round(b, 3)] for f, (a, b) in thr.items()},
        "steps": steps,
        "gammapy_variants": variants,
        "matched_over_gammapy_background": round(sum_b[0] / sum_b[1], 5),
        "matched_over_gammapy_source_counts": round(sum_s[0] / sum_s[1], 5),
        "matched_fit": {k: float(f"{sky['matched'][k]:.5g}") for k in ("amplitude", "alpha", "beta", "ra", "dec")},
        "gammapy_fit": {k: float(f"{gp_ref[k]:.5g}") for k in ("amplitude", "alpha", "beta", "ra", "dec")},
        "runtime_s": round(runtime, 1),
    }
    print(f"\nruntime {runtime:.0f} s")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

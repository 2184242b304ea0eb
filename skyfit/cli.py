"""``skyfit`` command line: a thin layer over the Python API.

Commands
--------
skyfit demo       simulate a LHAASO-like (WCDA + KM2A) field with a Crab-like source, fit it, report
skyfit simulate   simulate a LHAASO-like event list from a model (YAML config)
skyfit bin        bin an event list (HAWC DL3 or skyfit) into HEALPix counts maps
skyfit fit        fit a model to datasets described in a YAML config; results as ECSV and JSON
skyfit catalog    make a source catalogue of a Galactic region (no arguments: a built-in simulated field)
skyfit prior train   reproduce the neural-network prior's shipped weights from its seed

``skyfit --version``; ``-v`` (log progress) before or after the subcommand.

Exit codes: 0 done; 1 an unexpected error (with a traceback); 2 bad usage, configuration or input (a
message naming the file and the fix); 3 a fit ran but its minimum is not valid (results are written:
look at them before trusting them).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import yaml

__all__ = ["main", "ConfigError"]

log = logging.getLogger("skyfit")


# exit codes: 0 done; 1 an unexpected error (a traceback); 2 bad usage, configuration or input (a message
# naming the file and the fix); 3 the fit ran but its minimum is not valid (results written, not to be trusted)
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INVALID_FIT = 0, 1, 2, 3


class ConfigError(ValueError):
    """A configuration file is missing, malformed or has unknown/invalid entries."""


def _read_yaml_mapping(path, what: str) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {exc}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: {what}")
    return cfg


def _load_config(path) -> dict:
    path = Path(path)
    cfg = _read_yaml_mapping(path, "the config must be a mapping with 'datasets' and 'model'")
    unknown = set(cfg) - {"datasets", "model", "output", "minos", "ts", "seed"}
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)} (allowed: datasets, model, output, minos, ts, seed)")
    for key in ("datasets", "model"):
        if key not in cfg:
            raise ConfigError(f"{path}: missing '{key}'")
    cfg["_base"] = path.parent
    return cfg


def _model_from(cfg):
    from .models import SkyModel

    model = cfg["model"]
    if isinstance(model, str):
        p = Path(model) if Path(model).is_absolute() else cfg["_base"] / model
        return SkyModel.from_yaml(p)
    return SkyModel.from_dict(model)


def _config_path(cfg, value) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else cfg["_base"] / p


def _maptree_roi(d: dict, where: str):
    from .maps import HealpixROI

    if "roi" not in d:
        return None
    roi = dict(d.pop("roi"))
    try:
        return HealpixROI.from_disc(tuple(roi["center"]), float(roi["radius"]), int(roi.get("nside", 1024)),
                                    nest=bool(roi.get("nest", False)))  # fmt: skip
    except KeyError as exc:
        raise ConfigError(f"{where}: roi needs center: [ra, dec], radius (deg) and optionally nside, nest") from exc


def _datasets_from(cfg, model=None, templates: bool = False):
    """The config's datasets. Types: ``file`` (a dataset file), ``maptree`` (a HAL maptree + response),
    ``hawc`` (the public HAWC Crab release), ``wcda``/``km2a`` (LHAASO-like templates: only with
    ``simulate: true``, their counts drawn from the config's model with its ``seed``). ``templates``: the
    datasets need no counts (``skyfit simulate`` draws events from their background and response)."""
    from .dataset import Dataset, require_counts
    from .hawc import hawc_dataset
    from .simulate import lhaaso_dataset, simulate_dataset

    if not isinstance(cfg["datasets"], list) or not cfg["datasets"]:
        raise ConfigError("'datasets' must be a non-empty list of mappings, each with a 'type'")
    out = []
    for i, d in enumerate(cfg["datasets"]):
        d = dict(d)
        kind = d.pop("type", None)
        where = f"datasets[{i}] ({kind})"
        try:
            if kind == "hawc":
                ds = hawc_dataset(**d)
            elif kind == "file":
                if "path" not in d:
                    raise ConfigError(f"{where}: needs 'path' (a dataset file from `skyfit bin` or Dataset.write)")
                path = _config_path(cfg, d.pop("path"))
                ds = Dataset.read(path, **d)
                where = f"{where}: {path}"
            elif kind == "maptree":
                from .io.hal import maptree_dataset

                for key in ("maptree", "response"):
                    if key not in d:
                        raise ConfigError(f"{where}: needs 'maptree' and 'response' (HAL ROOT or HDF5 files)")
                roi = _maptree_roi(d, where)
                ds = maptree_dataset(_config_path(cfg, d.pop("maptree")), _config_path(cfg, d.pop("response")),
                                     roi=roi, **d)  # fmt: skip
            elif kind in ("wcda", "km2a"):
                simulate = bool(d.pop("simulate", False))
                ds = lhaaso_dataset(kind, **d)
                if simulate:
                    ds = simulate_dataset(model, ds, seed=cfg.get("seed", 0) + i)
            else:
                raise ConfigError(
                    f"datasets[{i}]: type must be 'file', 'maptree', 'hawc', 'wcda' or 'km2a', got {kind!r}"
                )
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        out.append(ds if templates else require_counts(ds, where))
    return out


def _write_results(result, outdir: Path, extra: dict) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    result.table().write(outdir / "fit_result.ecsv", overwrite=True)
    payload = result.to_dict()
    payload.update(extra)
    (outdir / "fit_result.json").write_text(json.dumps(payload, indent=2, default=float))
    result.model.to_yaml(outdir / "best_fit_model.yaml")


def _fit_and_report(model, datasets, outdir: Path, ts_sources=(), minos=()):
    from .fit import Fit, significance_from_ts, ts_of_source
    from .likelihood import Likelihood
    from .plotting import plot_residuals

    lk = Likelihood(model, datasets)
    result = Fit(lk).run(minos=tuple(minos))
    print(result)
    if not result.valid:
        print("WARNING: the fit is not valid: " + "; ".join(result.messages), file=sys.stderr)
    extra = {"ts": {}}
    for name in ts_sources:
        ts, _ = ts_of_source(result, datasets, name)
        extra["ts"][name] = {"ts": ts, "sqrt_ts": significance_from_ts(ts)}
        print(f"TS({name}) = {ts:.1f}  (sqrt(TS) = {significance_from_ts(ts):.1f})")
    _write_results(result, outdir, extra)
    best = Likelihood(result.model, datasets)
    for ds, mu in zip(datasets, best.npred(), strict=False):
        plot_residuals(ds, mu, outdir / f"residuals_{ds.name}.png", title=f"{ds.name}: best fit")
    print(f"results written to {outdir}/ (fit_result.ecsv, fit_result.json, best_fit_model.yaml, residuals_*.png)")
    return result, extra


def cmd_demo(args) -> int:
    from .models import LogParabola, PointSpatialModel, SkyModel, Source
    from .simulate import lhaaso_dataset, simulate_dataset

    t0 = time.perf_counter()
    ra, dec = 83.633, 22.0145
    # Crab-like log-parabola at 7 TeV (HAWC NN fit, Abeysekara et al. 2019, ApJ 881 134)
    truth = SkyModel([Source("crab", PointSpatialModel.create(ra, dec), LogParabola.create(2.31e-13, 2.73, 0.06, 7.0))])
    datasets = []
    for i, inst in enumerate(("WCDA", "KM2A")):
        base = lhaaso_dataset(inst, (ra, dec), args.radius, nside=args.nside, livetime_days=args.livetime_days)
        datasets.append(simulate_dataset(truth, base, seed=args.seed + i))
        print(f"simulated {inst}: {int(datasets[-1].counts.data.sum())} counts in {base.n_bins} bins")
    start = truth.with_values(
        {"crab.lon_0": ra + 0.1, "crab.lat_0": dec - 0.1, "crab.amplitude": 1e-13, "crab.alpha": 2.5, "crab.beta": 0.1}
    )
    result, extra = _fit_and_report(start, datasets, Path(args.outdir), ts_sources=["crab"])
    truth_v = truth.values()
    print("\nparameter         truth        fit          pull")
    for k in result.free_keys:
        pull = (result.value(k) - truth_v[k]) / result.errors[k]
        print(f"{k:16s} {truth_v[k]:12.5g} {result.value(k):12.5g} {pull:8.2f}")
    print(f"demo done in {time.perf_counter() - t0:.1f} s")
    return 0 if result.valid else EXIT_INVALID_FIT


def cmd_fit(args) -> int:
    cfg = _load_config(args.config)
    model = _model_from(cfg)
    datasets = _datasets_from(cfg, model)
    outdir = Path(args.outdir or cfg.get("output", "skyfit-fit"))
    result, _ = _fit_and_report(model, datasets, outdir, ts_sources=cfg.get("ts", []), minos=cfg.get("minos", []))
    return 0 if result.valid else EXIT_INVALID_FIT


def cmd_simulate(args) -> int:
    from astropy.table import Table

    from .simulate import simulate_events

    cfg = _load_config(args.config)
    model = _model_from(cfg)
    seed = cfg.get("seed", args.seed)
    tables = []
    for ds in _datasets_from(cfg, model, templates=True):
        ev = simulate_events(model, ds, seed)
        t = Table({"RA": ev["RA"], "DEC": ev["DEC"], "BIN": ev["BIN"]})
        t.meta.update({"DATASET": ds.name, "NSIDE": ds.roi.nside, "SEED": seed})
        tables.append((ds, t))
        print(f"{ds.name}: {len(t)} events")
    from astropy.io import fits

    hdus = [fits.PrimaryHDU()]
    for ds, t in tables:
        hdu = fits.table_to_hdu(t)
        hdu.name = f"EVENTS_{ds.name}"
        hdu.header["BINNAMES"] = ",".join(ds.bin_names)
        hdus.append(hdu)
    fits.HDUList(hdus).writeto(args.output, overwrite=True)
    print(f"events written to {args.output}")
    return 0


def _parse_time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        from astropy.time import Time

        try:
            return float(Time(text, scale="utc").mjd)
        except ValueError as exc:
            raise ConfigError(f"cannot read the time {text!r}: give an MJD or an ISO date like 2022-03-01") from exc


def cmd_simulate_events(args) -> int:
    from .models import GaussianSpatialModel, LogParabola, PointSpatialModel, Source
    from .simulate import simulate_event_stream
    from .stream import write_event_stream

    sources = []
    for i, spec in enumerate(args.source or []):
        if len(spec) not in (3, 4):
            raise ConfigError(f"--source takes RA DEC CRAB_FRACTION [SIGMA_DEG], got {spec}")
        ra, dec, crab = spec[:3]
        spatial = (
            GaussianSpatialModel.create(ra, dec, spec[3])
            if len(spec) == 4 and spec[3] > 0
            else PointSpatialModel.create(ra, dec)
        )
        # HAWC's Crab log-parabola (Abeysekara et al. 2019) scaled by CRAB_FRACTION
        sources.append(Source(f"src{i}", spatial, LogParabola.create(2.31e-13 * crab, 2.73, 0.06, 7.0)))
    blocks = simulate_event_stream(
        args.instrument,
        _parse_time(args.start),
        args.days,
        sources,
        block_hours=args.block_hours,
        rate_scale=args.rate_scale,
        bins=args.bins,
        seed=args.seed,
    )
    from tqdm import tqdm

    n_blocks = int(np.ceil(args.days * 24.0 / args.block_hours - 1e-9))
    meta = {"INSTRUME": args.instrument.upper(), "SITE": "LHAASO"}
    paths = write_event_stream(
        tqdm(blocks, total=n_blocks, desc="simulating", unit="block"), args.outdir, args.format, meta
    )
    from .events import EventFile

    n = sum(EventFile(p).n_rows for p in paths)
    print(f"{n} events in {len(paths)} file(s) written to {args.outdir}")
    return 0


def _exclusions_from(args):
    from .background import Exclusions

    excl = None
    for ra, dec, r in args.exclude_disc or []:
        e = Exclusions.from_discs(ra, dec, r)
        excl = e if excl is None else excl | e
    if args.exclude_band:
        e = Exclusions.galactic_band(args.exclude_band)
        excl = e if excl is None else excl | e
    if args.exclude_catalog:
        e = Exclusions.from_catalog(args.exclude_catalog)
        excl = e if excl is None else excl | e
    return excl


def cmd_bin_stream(args, roi) -> int:
    from .background import DIConfig, grow_exclusions
    from .stream import bin_event_files

    config = DIConfig(window_hours=args.window_hours)
    excl = _exclusions_from(args)
    common = dict(
        background="di" if args.background == "di" else "none",  # other backgrounds join in _write_binned_dataset
        di_config=config,
        block_hours=args.block_hours,
        scheduler=args.scheduler,
        n_workers=args.workers,
        checkpoint_dir=args.checkpoint,
    )
    res = bin_event_files(args.events, roi, args.n_bins, exclusions=excl, **common)
    if args.background == "di" and args.iterate:
        excl2, n_hot = grow_exclusions(excl, res.counts.data, res.background.data, roi)
        print(f"DI iteration: {n_hot} pixel(s) above 5 sigma excluded; re-estimating")
        if n_hot:
            ck = None if args.checkpoint is None else str(Path(args.checkpoint) / "iteration2")
            res = bin_event_files(args.events, roi, args.n_bins, exclusions=excl2, **{**common, "checkpoint_dir": ck})
    out = Path(args.output)
    print(res.summary())
    print(json.dumps(res.report))
    if args.response is not None:
        return _write_binned_dataset(args, res.counts, res.background, how=f"skyfit bin {args.events} (stream)")
    res.counts.write(out, overwrite=True)
    print(f"counts maps ({args.n_bins} bins x {roi.n_pix} pixels, nside {roi.nside}) written to {out}")
    if res.background is not None:
        bkg_path = out.with_name(out.stem + "_background" + out.suffix)
        res.background.write(bkg_path, overwrite=True)
        import matplotlib.pyplot as plt

        from .plotting import plot_hpx, residual_significance

        sig = residual_significance(res.counts.data, res.background.data, roi, radius_deg=0.5)
        fig, ax = plt.subplots(figsize=(6, 5))
        plot_hpx(sig, roi, ax=ax, label="(N - B) / sqrt(B) within 0.5 deg, all bins", cmap="RdBu_r", vmin=-6, vmax=6)
        png = out.with_name(out.stem + "_significance.png")
        fig.savefig(png, dpi=100)
        plt.close(fig)
        print(f"DI background written to {bkg_path}; significance map {png}")
    return 0


def cmd_showers(args) -> int:
    from .events import EventFile, write_events
    from .showers.pipeline import simulate_events, traditional_cut

    if args.action == "simulate":
        t0 = time.perf_counter()
        hits = [] if args.hits else None
        table, rep = simulate_events(
            args.instrument, args.particle, args.n, e_min_tev=args.e_min, e_max_tev=args.e_max, index=args.index,
            seed=args.seed, with_report=True, hits_out=hits,
        )  # fmt: skip
        if hits is not None:
            write_events(args.hits, {k: np.concatenate([h[k] for h in hits]) for k in hits[0]},
                         {"INSTRUME": args.instrument.upper()})  # fmt: skip
            print(f"hits written to {args.hits}")
        out = Path(args.output)
        cols = {k: v for k, v in table.items() if k != "SPECIES" or out.suffix == ".parquet"}
        write_events(out, cols, {"INSTRUME": args.instrument.upper(), "PARTICLE": str(args.particle)})
        print(f"{args.n} {args.particle} showers simulated and reconstructed in {time.perf_counter() - t0:.1f} s")
        print(f"noise filter: purity {rep['noise_filter_purity']:.4f}, efficiency {rep['noise_filter_efficiency']:.4f}")
        print(f"event table written to {out}")
        return 0
    if args.action == "reconstruct":
        from .showers.pipeline import reconstruct_table

        if len(args.files) != 1 or not args.hits:
            raise ConfigError(
                "showers reconstruct takes one event table and --hits HITS (from showers simulate --hits)"
            )
        ev_file = EventFile(args.files[0])
        table = ev_file.read(tuple(c for c in ev_file.columns))
        hit_file = EventFile(args.hits)
        hits = hit_file.read(hit_file.columns)
        instrument = ev_file.meta.get("INSTRUME", args.instrument)
        out_table, rep = reconstruct_table(table, hits, instrument, window_ns=args.window_ns)
        out = Path(args.output)
        cols = {k: v for k, v in out_table.items() if k != "SPECIES" or out.suffix == ".parquet"}
        write_events(out, cols, {"INSTRUME": instrument})
        print(f"noise filter (window {args.window_ns} ns): purity {rep['noise_filter_purity']:.4f}, "
              f"efficiency {rep['noise_filter_efficiency']:.4f}; table written to {out}")  # fmt: skip
        return 0
    # report: per-bin traditional cut, PSF and a plot
    if len(args.files) != 2:
        raise ConfigError("showers report takes two event tables: gammas then background (protons, nuclei)")
    g, b = (f.read(tuple(c for c in f.columns if c != "SPECIES")) for f in map(EventFile, args.files))
    quality_g = g["CORE_IN_ARRAY"].astype(bool)
    quality_b = b["CORE_IN_ARRAY"].astype(bool)
    g = {k: v[quality_g] for k, v in g.items()}
    b = {k: v[quality_b] for k, v in b.items()}
    cuts = traditional_cut(g, b, args.variable, args.efficiency, higher_is_gamma=not args.lower_is_gamma)
    from astropy.table import Table

    rows = []
    for k, (thr, eff, surv, ng, nb) in cuts.items():
        sel = g["BIN"] == k
        rows.append((k, ng, nb, float(np.median(g["TRUE_ENERGY"][sel])), float(np.nanpercentile(
            g["ANGULAR_ERROR"][sel], 68)), thr, eff, surv, 1 - surv))  # fmt: skip
    t = Table(rows=rows, names=("bin", "n_gamma", "n_background", "median_true_energy_tev", "psf68_deg",
                                "threshold", "gamma_efficiency", "background_survival", "rejection"))  # fmt: skip
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    t.write(outdir / "cut_table.ecsv", overwrite=True)
    print(t)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    sign = -1.0 if args.lower_is_gamma else 1.0
    for k in cuts:
        gv, bv = np.sort(sign * g[args.variable][g["BIN"] == k]), sign * b[args.variable][b["BIN"] == k]
        thr = gv[:: max(1, gv.size // 200)]
        ax.plot([np.mean(gv >= x) for x in thr], [np.mean(bv >= x) for x in thr], label=f"bin {k}")
    ax.set_xlabel("gamma efficiency")
    ax.set_ylabel("background survival")
    ax.set_yscale("log")
    ax.set_title(f"ROC of the {args.variable} cut")
    ax.legend(fontsize=8)
    fig.savefig(outdir / "roc.png", dpi=100)
    plt.close(fig)
    print(f"cut table and ROC curves written to {outdir}")
    return 0


def cmd_bin(args) -> int:
    from astropy.io import fits

    from .maps import HealpixMaps, HealpixROI, bin_events

    roi = HealpixROI.from_disc(tuple(args.center), args.radius, args.nside, nest=not args.ring)
    path = Path(args.events)
    if path.is_dir() and any((path / "events").glob("EventList_*fHitbin*.fits*")):
        return _bin_hawc_release(args, path)
    if args.background == "di" or path.is_dir() or path.suffix == ".parquet" or args.n_bins is not None:
        if args.n_bins is None:
            raise ConfigError("streamed binning needs --n-bins (the number of analysis bins)")
        return cmd_bin_stream(args, roi)
    if not path.exists():
        raise ConfigError(f"event file {path} does not exist")
    with fits.open(path) as hdul:
        ev_hdus = [h for h in hdul if h.name.startswith("EVENTS")]
        if not ev_hdus:
            raise ConfigError(f"{path} has no EVENTS extension")
        h = ev_hdus[0]
        ra, dec = np.asarray(h.data["RA"], float), np.asarray(h.data["DEC"], float)
        if "BIN" in h.columns.names:
            bins = np.asarray(h.data["BIN"])
            names = h.header.get("BINNAMES", "").split(",") if "BINNAMES" in h.header else None
            n_bins = int(bins.max()) + 1 if names is None else len(names)
        else:
            edges = np.asarray(args.energy_edges, float)
            energy = np.asarray(h.data["ENERGY"], float)
            bins = np.searchsorted(edges, energy, side="right") - 1
            bins[(energy < edges[0]) | (energy >= edges[-1])] = -1
            n_bins = len(edges) - 1
            names = [f"E{lo:.3g}-{hi:.3g}" for lo, hi in zip(edges[:-1], edges[1:], strict=False)]
    counts, report = bin_events(ra, dec, bins, roi, n_bins)
    names = names or [f"bin{i}" for i in range(n_bins)]
    print(json.dumps(report))
    if args.response is not None:
        return _write_binned_dataset(args, HealpixMaps(counts, roi, names), None, how=f"skyfit bin {path}")
    HealpixMaps(counts, roi, names).write(args.output, overwrite=True)
    print(f"counts maps ({n_bins} bins x {roi.n_pix} pixels, nside {roi.nside}) written to {args.output}")
    return 0


def _bin_hawc_release(args, path: Path) -> int:
    """A HAWC pass-4 release folder (events/, background/, irfs/): events binned per fHit bin and energy
    band, the release's background maps and DL3 IRFs, written as one dataset file."""
    from .hawc import hawc_dataset

    ds = hawc_dataset(estimator=args.estimator, fhit_bins=tuple(args.fhit), center=tuple(args.center),
                      radius_deg=args.radius, nside=args.nside, nest=not args.ring, path=path)  # fmt: skip
    for line in ds.meta.get("dropped", []):
        print(f"not used: {line}")
    ds.write(args.output, overwrite=True, how=f"skyfit bin {path} --estimator {args.estimator} (HAWC pass-4 release)")
    print(ds.info())
    print(f"dataset (counts, background, response; {ds.n_bins} bins x {ds.roi.n_pix} pixels) written to {args.output}")
    return 0


def _binned_response(args, roi, n_bins: int, livetime_days: float | None):
    """``(response, background template or None)`` for ``--response``: wcda / km2a (the parametric
    instrument), hal:PATH (a HAL detector response), dl3:PATH (GADF IRFs of a drift-scan array)."""
    spec = args.response
    kind, _, arg = spec.partition(":")
    kind = kind.lower()
    if kind in ("wcda", "km2a"):
        from .simulate import lhaaso_dataset

        if livetime_days is None:
            raise ConfigError(f"--response {spec} needs --livetime-days (the exposure of the events)")
        template = lhaaso_dataset(kind, roi=roi, livetime_days=livetime_days)
        return template.response, template.background, {"instrument": kind.upper(), "livetime_days": livetime_days}
    if kind == "hal":
        from .io.hal import read_hal_response

        ra, dec = roi.center()
        response = read_hal_response(arg, dec_deg=dec, n_transits=args.transits or 1.0)
        return response, None, {"instrument": response.meta.get("instrument", "HAWC")}
    if kind == "dl3":
        from .response.dl3 import dl3_response

        if args.site_latitude is None or args.transits is None:
            raise ConfigError(f"--response {spec} needs --site-latitude (deg) and --transits (the number of days)")
        _, dec = roi.radec()
        dec_nodes = np.arange(np.floor(dec.min()) - 1.0, dec.max() + 1.01, 0.5)
        edges = np.asarray(args.energy_edges, float)
        response = dl3_response(arg, site_latitude_deg=args.site_latitude, dec_nodes_deg=dec_nodes,
                                analysis_bins=np.stack([edges[:-1], edges[1:]], axis=1),
                                n_transits=args.transits)  # fmt: skip
        return response, None, {"instrument": response.meta.get("instrument", "DL3")}
    raise ConfigError(f"--response must be wcda, km2a, hal:PATH or dl3:PATH, got {spec!r}")


def _write_binned_dataset(args, counts, background, how: str) -> int:
    """Counts (+ a background: from direct integration, a map file or the instrument) + a response → one
    dataset file (Dataset.write)."""
    from .dataset import Dataset
    from .maps import HealpixMaps

    roi = counts.roi
    response, template_bkg, meta = _binned_response(args, roi, counts.n_bins, args.livetime_days)
    if response.n_bins != counts.n_bins:
        raise ConfigError(
            f"--response {args.response} has {response.n_bins} analysis bins ({list(response.bin_names)[:4]} ...) "
            f"but the events fall in {counts.n_bins}: bin the events as the response does (--n-bins, "
            "--energy-edges) or give the matching response"
        )
    names = response.bin_names
    if background is None:
        choice = args.background
        if choice == "instrument":
            if template_bkg is None:
                raise ConfigError("--background instrument needs the parametric instrument (--response wcda|km2a)")
            background = template_bkg
        elif choice not in ("none", "di"):
            bkg = HealpixMaps.read(choice, nside=roi.nside, nest=roi.nest)
            idx = bkg.roi.index_of(roi.pixels)
            if np.any(idx < 0) or bkg.n_bins != counts.n_bins:
                raise ConfigError(
                    f"background map {choice} does not cover the ROI ({int(np.sum(idx < 0))} of {roi.n_pix} pixels "
                    f"missing) or has {bkg.n_bins} bins for {counts.n_bins}: make it on the same ROI and bins"
                )
            background = HealpixMaps(bkg.data[:, idx], roi, names)
            meta["background_file"] = str(choice)
        else:
            raise ConfigError(
                "a dataset needs a background: --background di (direct integration from the stream), "
                "--background instrument (the parametric instrument's), or --background MAP.fits"
            )
    ds = Dataset(args.name or meta.get("instrument", "dataset"), HealpixMaps(counts.data, roi, names),
                 HealpixMaps(background.data, roi, names), response, meta=meta)  # fmt: skip
    ds.write(args.output, overwrite=True, how=how)
    print(ds.info())
    print(f"dataset (counts, background, response; {ds.n_bins} bins x {roi.n_pix} pixels) written to {args.output}")
    return 0


def cmd_catalog(args) -> int:
    from dataclasses import fields

    from .catalog import CatalogConfig, CatalogError, run

    settings = {}
    if args.config:
        settings = _read_yaml_mapping(args.config, "a catalogue config maps CatalogConfig fields (e.g. region: ...)")
        known = {f.name for f in fields(CatalogConfig)}
        unknown = set(settings) - known
        if unknown:
            raise ConfigError(f"{args.config}: unknown catalogue settings {sorted(unknown)}; known: {sorted(known)}")
    for opt, key in (("region", "region"), ("livetime_days", "livetime_days"), ("nside", "nside"), ("seed", "seed"),
                     ("tile_deg", "tile_deg"), ("overlap_deg", "overlap_deg")):  # fmt: skip
        if getattr(args, opt) is not None:
            settings[key] = getattr(args, opt)
    if args.datasets:
        settings["datasets"] = tuple(args.datasets)
    if args.simulate_sky:
        settings["sky"] = args.simulate_sky
    if args.null:
        settings["simulate"] = "background"
    if args.proposer is not None:
        settings["proposer"] = args.proposer
    if args.prior_weights is not None:
        settings["prior_weights"] = args.prior_weights
    if args.no_prior_terms:
        settings["detection"] = {**settings.get("detection", {}), "prior_terms": False}
    try:
        cfg = CatalogConfig(**settings)
        summary = run(cfg, out_dir=args.outdir, scheduler=args.scheduler, plots=not args.no_plots)
    except CatalogError as exc:
        raise ConfigError(str(exc)) from None
    table = summary["table"]
    cols = [
        c for c in ("name", "l", "b", "pos_err95", "r39", "ts", "components", "assoc_1lhaaso") if c in table.colnames
    ]
    if len(table):
        print("\n".join(table[cols].pformat(max_lines=-1, max_width=-1)))
    return 0


def cmd_prior(args) -> int:
    from .detect.prior import SHIPPED_WEIGHTS, train_prior

    if args.replace_shipped and args.out:
        raise ConfigError("give either --out FILE or --replace-shipped, not both")
    # a new file unless told: overwriting the installed weights changes every later `--proposer nn` run
    out = SHIPPED_WEIGHTS if args.replace_shipped else Path(args.out or "prior_weights.npz")
    kw = {k: getattr(args, k) for k in ("n_fields", "n_validation", "steps") if getattr(args, k) is not None}
    model = train_prior(seed=args.seed, log=lambda *a: print(*a, flush=True), **kw)
    model.save(out)
    card = out.with_suffix(".json")
    record = {"weights": out.name, **model.meta, "calibration": model.calibration, "threshold": model.threshold}
    card.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) and its training record {card}")
    return 0


def cmd_ghsep(args) -> int:
    import json

    from .events import EventFile, write_events
    from .ghsep import GHSepError, load_model

    if args.action == "train":
        from .ghsep._pipeline import build_model

        if args.files:
            raise ConfigError("ghsep train takes no files: it simulates its own training and tuning samples")
        inst = args.instrument.upper()
        ng = args.n_gamma or (40000 if inst == "WCDA" else 20000)
        nb = args.n_background or (120000 if inst == "WCDA" else 150000)
        t0 = time.perf_counter()
        model, _ = build_model(inst, ng, nb, kind=args.kind, seed=args.seed or 0, epochs=args.epochs, progress=True)
        out = Path(args.out or f"ghsep_{inst}.npz")
        model.save(out)
        print(f"{inst} {args.kind} model trained in {time.perf_counter() - t0:.0f} s; ML cuts in bins "
              f"{sorted(model.cuts)}, traditional kept elsewhere -> {out}")  # fmt: skip
        return 0
    if not args.files:
        raise ConfigError(f"ghsep {args.action} needs a model file (from `skyfit ghsep train`)")
    model = load_model(args.files[0])
    if args.action == "apply":
        if len(args.files) != 2:
            raise ConfigError("ghsep apply takes a model file and an event table")
        ev_file = EventFile(args.files[1])
        table = ev_file.read(tuple(c for c in ev_file.columns if c != "SPECIES"))
        cloud = None
        if model.kind == "pointcloud":
            if not args.hits:
                raise ConfigError(
                    "this model reads hit patterns: give --hits HITS (from `skyfit showers simulate --hits`)"
                )
            from .ghsep import hit_cloud
            from .showers import km2a_layouts, wcda_layout

            hf = EventFile(args.hits)
            layout = wcda_layout() if model.instrument == "WCDA" else km2a_layouts()[0]
            cloud = hit_cloud(table, hf.read(hf.columns), layout)
        try:
            score = model.score(table, cloud=cloud, where=str(args.files[1]))
        except GHSepError as exc:
            raise ConfigError(f"{args.files[0]} cannot score {args.files[1]}: {exc}") from None
        table["GH_SCORE"] = score
        table["GH_PASS"] = model.passes(table, scores=score)
        out = Path(args.out or Path(args.files[1]).with_suffix(".gh.parquet").name)
        write_events(out, table, {"INSTRUME": model.instrument, "GHMODEL": Path(args.files[0]).name})
        print(f"{int(table['GH_PASS'].sum())} of {len(score)} events pass -> {out}")
        return 0
    # report: an independent test sample, ROC curves, efficiency tables, significance before/after
    from .ghsep._pipeline import evaluate
    from .ghsep._plots import plot_roc, plot_significance
    from .ghsep._samples import labelled_sample
    from .ghsep._study import equal_efficiency_summary, run_significance

    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    inst = model.instrument
    train_seed = int(model.meta.get("samples", {}).get("training_seed", 0))
    seed = train_seed + 2 if args.seed is None else args.seed
    if seed in (train_seed, train_seed + 1):
        raise ConfigError(f"--seed {seed} would regenerate the model's training or tuning sample (seeds {train_seed} "
                          f"and {train_seed + 1}); a test sample needs another seed")  # fmt: skip
    ng = args.n_gamma or int(model.meta.get("samples", {}).get("n_gamma_thrown", 20000))
    nb = args.n_background or int(model.meta.get("samples", {}).get("n_background_thrown", 60000))
    print(f"simulating an independent {inst} test sample (seed {seed})")
    test = labelled_sample(inst, ng, nb, seed=seed, hits=model.kind == "pointcloud")
    ev = evaluate(model, test)
    files = [plot_roc(ev, test, inst, outdir)]
    report = {"model": str(args.files[0]), "instrument": inst, "test_seed": seed,
              "equal_efficiency": ev["equal_efficiency"], "traditional": ev["traditional"], "ml": ev["ml"],
              "ratios": {str(k): v for k, v in ev["ratios"].items()},
              "bkg_reduction_at_equal_eff": equal_efficiency_summary({inst: ev})}  # fmt: skip
    print(" bin  gamma eff  bkg trad   bkg ML     reduction at equal efficiency")
    for r in ev["equal_efficiency"]:
        red = "—" if r["reduction"] is None else f"{r['reduction']:.2f} ± {r['reduction_err']:.2f}"
        print(f"{r['bin']:4d} {r['gamma_eff_trad']:10.3f} {r['bkg_eff_trad']:9.2e} {r['bkg_eff_ml']:9.2e}  {red}")
    if args.realisations > 0:
        studies = run_significance({inst: ev["ratios"]}, args.realisations, seed=seed)
        files.append(plot_significance(studies, outdir))
        report["significance"] = {k: v["summary"] for k, v in studies.items()}
        for k, v in report["significance"].items():
            print(f"{k}: significance {v['signif_before_median']:.2f} -> {v['signif_after_median']:.2f} "
                  f"(ratio {v['ratio_after_before']:.3f}, predicted {v['ratio_predicted']:.3f})")  # fmt: skip
    path = outdir / "report.json"
    path.write_text(json.dumps(report, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    print(f"report written to {path}; plots: {', '.join(str(f) for f in files)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="skyfit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    from . import __version__

    p.add_argument("-v", "--verbose", action="store_true", help="log progress and dropped events")
    p.add_argument("--version", action="version", version=f"skyfit {__version__}")
    # -v after the subcommand too (SUPPRESS: a subcommand without it keeps the top-level value)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log progress and dropped events")  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", parents=[common], help="simulate a LHAASO-like Crab field and fit it")
    d.add_argument("--outdir", default="skyfit-demo")
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--livetime-days", type=float, default=365.0)
    d.add_argument("--nside", type=int, default=512)
    d.add_argument("--radius", type=float, default=3.0, help="ROI radius (deg)")
    d.set_defaults(func=cmd_demo)

    f = sub.add_parser("fit", parents=[common], help="fit a model to datasets from a YAML config")
    f.add_argument("config")
    f.add_argument("--outdir", default=None)
    f.set_defaults(func=cmd_fit)

    s = sub.add_parser(
        "simulate", parents=[common], help="simulate LHAASO-like events from a YAML config (datasets + model)"
    )
    s.add_argument("config")
    s.add_argument("--output", default="events.fits")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_simulate)

    b = sub.add_parser(
        "bin",
        parents=[common],
        help="bin events into HEALPix counts maps, or a complete dataset file (--response, or "
        "a HAWC pass-4 release folder)",
    )
    b.add_argument("events")
    b.add_argument("--center", type=float, nargs=2, required=True, metavar=("RA", "DEC"))
    b.add_argument("--radius", type=float, default=3.0)
    b.add_argument("--nside", type=int, default=1024)
    b.add_argument("--ring", action="store_true", help="RING ordering (default NESTED)")
    b.add_argument(
        "--energy-edges", type=float, nargs="+", default=[1.00, 1.78, 3.16, 5.62, 10.0, 17.8, 31.6, 56.2, 100, 177, 316]
    )
    b.add_argument("--output", default="counts.fits")
    b.add_argument(
        "--background",
        default="none",
        help="di: direct integration from the event stream (needs TIME, AZ, ZEN); instrument: the parametric "
        "instrument's (with --response wcda|km2a); or a HEALPix map file of the expected background",
    )
    b.add_argument("--response", default=None, metavar="SPEC",
                   help="write a complete dataset file: wcda | km2a (parametric instrument), hal:PATH (HAL detector "
                   "response, ROOT or HDF5), dl3:PATH (GADF IRFs of a drift-scan array)")  # fmt: skip
    b.add_argument("--livetime-days", type=float, default=None, help="exposure of the events (parametric response)")
    b.add_argument("--transits", type=float, default=None, help="number of transits (HAL and DL3 responses)")
    b.add_argument("--site-latitude", type=float, default=None, help="array latitude, deg (DL3 responses)")
    b.add_argument("--name", default=None, help="dataset name (default: the instrument)")
    b.add_argument("--estimator", default="NN", choices=["NN", "GP"], help="HAWC release: energy estimator")
    b.add_argument("--fhit", type=int, nargs="+", default=[5, 6, 7, 8, 9], help="HAWC release: fHit bins")
    b.add_argument("--n-bins", type=int, default=None, help="analysis bins (streamed files: Parquet, FITS, dirs)")
    b.add_argument("--window-hours", type=float, default=2.0, help="DI window (h)")
    b.add_argument("--block-hours", type=float, default=24.0, help="task length (h); a multiple of the window")
    b.add_argument("--exclude-disc", type=float, nargs=3, action="append", metavar=("RA", "DEC", "R"))
    b.add_argument("--exclude-band", type=float, default=None, help="exclude |b| below this (deg)")
    b.add_argument("--exclude-catalog", default=None, help="FITS/ECSV table with RA, DEC (deg) [, r39]")
    b.add_argument("--iterate", action="store_true", help="re-estimate after excluding >5 sigma excesses")
    b.add_argument("--scheduler", default=None, help="'local' (dask LocalCluster) or a scheduler address")
    b.add_argument("--workers", type=int, default=2)
    b.add_argument("--checkpoint", default=None, help="directory of finished tasks: re-run to resume")
    b.set_defaults(func=cmd_bin)

    sh = sub.add_parser(
        "showers", parents=[common], help="air-shower simulation, reconstruction and the traditional g/h cut"
    )
    sh.add_argument("action", choices=["simulate", "reconstruct", "report"])
    sh.add_argument("files", nargs="*", help="report: gamma table, background table")
    sh.add_argument("--instrument", default="WCDA", choices=["WCDA", "KM2A"])
    sh.add_argument("--particle", default="gamma", help="gamma, proton, He, CNO, MgSi, Fe, H..Fe or Z")
    sh.add_argument("--n", type=int, default=10000)
    sh.add_argument("--e-min", type=float, default=None, help="TeV")
    sh.add_argument("--e-max", type=float, default=None, help="TeV")
    sh.add_argument("--index", type=float, default=2.6)
    sh.add_argument("--seed", type=int, default=0)
    sh.add_argument("--output", default="showers.parquet")
    sh.add_argument("--hits", default=None, help="simulate: also write the hits here; reconstruct: read them")
    sh.add_argument("--window-ns", type=float, default=20.0, help="reconstruct: noise-filter time window")
    sh.add_argument("--variable", default="COMPACTNESS")
    sh.add_argument("--lower-is-gamma", action="store_true", help="e.g. for PINCNESS, DISPERSION, MU_E_RATIO")
    sh.add_argument("--efficiency", type=float, default=0.5)
    sh.add_argument("--outdir", default="shower-report")
    sh.set_defaults(func=cmd_showers)

    gh = sub.add_parser(
        "ghsep", parents=[common], help="ML gamma/hadron separation: train a classifier, apply it, report its gain"
    )
    gh.add_argument("action", choices=["train", "apply", "report"])
    gh.add_argument("files", nargs="*", help="apply: MODEL EVENTS; report: MODEL")
    gh.add_argument("--instrument", default="WCDA", choices=["WCDA", "KM2A"])
    gh.add_argument("--kind", default="mlp", choices=["mlp", "pointcloud"], help="event features or hit patterns")
    gh.add_argument("--n-gamma", type=int, default=None, help="gamma showers thrown per sample")
    gh.add_argument("--n-background", type=int, default=None, help="cosmic-ray showers thrown per sample")
    gh.add_argument("--epochs", type=int, default=40)
    gh.add_argument("--seed", type=int, default=None)
    gh.add_argument("--out", default=None, help="train: model file; apply: output event table")
    gh.add_argument("--hits", default=None, help="apply with a hit-pattern model: the hit table")
    gh.add_argument("--realisations", type=int, default=20, help="report: simulated years per source")
    gh.add_argument("--outdir", default="ghsep-report")
    gh.set_defaults(func=cmd_ghsep)

    c = sub.add_parser(
        "catalog", parents=[common], help="make a source catalogue of a region (default: a built-in simulated field)"
    )
    c.add_argument("--config", default=None, help="YAML with CatalogConfig fields (command-line options override)")
    c.add_argument(
        "--region",
        default=None,
        help="l_min,l_max,b_min,b_max in Galactic deg (default 35,45,-3,3; with --datasets: the data's footprint)",
    )
    c.add_argument(
        "--datasets",
        nargs="+",
        default=None,
        metavar="FILE",
        help="catalogue these dataset files (`skyfit bin`, Dataset.write) instead of a simulated sky",
    )
    c.add_argument(
        "--simulate-sky",
        default=None,
        metavar="SKY.yaml",
        help="simulate this sky (a SkyModel YAML) instead of the 1LHAASO sources, then catalogue it",
    )
    c.add_argument("--livetime-days", type=float, default=None)
    c.add_argument("--nside", type=int, default=None)
    c.add_argument("--seed", type=int, default=None)
    c.add_argument("--tile-deg", type=float, default=None, help="ROI tile width in longitude (deg)")
    c.add_argument("--overlap-deg", type=float, default=None, help="ROI margin around each tile (deg)")
    c.add_argument("--null", action="store_true", help="simulate background and diffuse emission only")
    c.add_argument("--scheduler", default=None, help="'local' (dask LocalCluster) or a scheduler address")
    c.add_argument("--outdir", default="skyfit-catalog")
    c.add_argument("--no-plots", action="store_true")
    c.add_argument(
        "--proposer",
        default=None,
        choices=["tsmap", "nn", "both"],
        help="what seeds the components: TS-map peaks (default), the neural-network prior, or both",
    )
    c.add_argument("--prior-weights", default=None, help="the prior network's file (default: the shipped one)")
    c.add_argument(
        "--no-prior-terms",
        action="store_true",
        help="with --proposer nn/both: seed from the network but fit without its Gaussian priors",
    )
    c.set_defaults(func=cmd_catalog)

    pr = sub.add_parser(
        "prior", parents=[common], help="the neural-network prior: `prior train` reproduces the shipped network"
    )
    pr.add_argument("action", choices=["train"])
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--n-fields", type=int, default=None, help="simulated training fields (default 200)")
    pr.add_argument("--n-validation", type=int, default=None, help="validation fields for the calibration")
    pr.add_argument("--steps", type=int, default=None, help="optimiser steps")
    pr.add_argument("--out", default=None, help="weights file (default: prior_weights.npz here)")
    pr.add_argument("--replace-shipped", action="store_true",
                    help="write over the weights installed with skyfit (`--proposer nn` uses them)")  # fmt: skip
    pr.set_defaults(func=cmd_prior)

    se = sub.add_parser(
        "simulate-events", parents=[common], help="simulate a LHAASO-like event stream (cosmic rays + sources)"
    )
    se.add_argument("--instrument", default="WCDA", choices=["WCDA", "KM2A"])
    se.add_argument("--start", default="2022-03-01", help="UTC start: MJD or ISO date")
    se.add_argument("--days", type=float, default=1.0)
    se.add_argument("--rate-scale", type=float, default=0.01, help="factor on the cosmic-ray rate")
    se.add_argument("--bins", type=int, nargs="+", default=None)
    se.add_argument("--source", type=float, nargs="+", action="append", metavar="RA DEC CRAB [SIGMA]")
    se.add_argument("--block-hours", type=float, default=24.0, help="one file per block")
    se.add_argument("--format", choices=["parquet", "fits"], default="parquet")
    se.add_argument("--outdir", default="events")
    se.add_argument("--seed", type=int, default=0)
    se.set_defaults(func=cmd_simulate_events)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    from .plotting import use_file_backend

    use_file_backend()  # figures go to files; a notebook calling main() keeps its inline backend
    try:
        return args.func(args)
    except (ConfigError, FileNotFoundError, ValueError, OSError, ConnectionError) as exc:
        print(f"skyfit {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())

"""`skyfit demo`, `skyfit fit` and `skyfit simulate`: datasets and a model from a YAML config, fits and results."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ._common import (
    EXIT_INVALID_FIT,
    ConfigError,
    add_deprecated_output,
    add_outdir,
    output_file,
    plain_json,
    read_yaml_mapping,
    record_outputs,
    record_result,
)

__all__ = ["add_parsers", "cmd_demo", "cmd_fit", "cmd_simulate"]


def _load_config(path) -> dict:
    path = Path(path)
    cfg = read_yaml_mapping(path, "the config must be a mapping with 'datasets' and 'model'")
    allowed = ("datasets", "model", "output", "minos", "ts", "seed", "cutout_margin_deg", "flux_points")
    unknown = set(cfg) - set(allowed)
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)} (allowed: {', '.join(allowed)})")
    for key in ("datasets", "model"):
        if key not in cfg:
            raise ConfigError(f"{path}: missing '{key}'")
    margin = cfg.get("cutout_margin_deg")
    if margin is not None and not (isinstance(margin, (int, float)) and margin >= 0):
        raise ConfigError(f"{path}: cutout_margin_deg must be a number >= 0 (deg), got {margin!r}")
    cfg["flux_points"] = _flux_point_requests(cfg.get("flux_points"), path)
    cfg["_base"] = path.parent
    cfg["_file"] = path
    return cfg


def _flux_point_requests(value, path) -> list:
    """``flux_points:`` as a list of ``{source, energy_edges (TeV, optional), reoptimize}``: a source name,
    a mapping or a list of either."""
    items = [] if value is None else value if isinstance(value, list) else [value]
    out = []
    for item in items:
        item = {"source": item} if isinstance(item, str) else item
        if not isinstance(item, dict) or "source" not in item or set(item) - {"source", "energy_edges", "reoptimize"}:
            raise ConfigError(f"{path}: flux_points entries are a source name or {{source, energy_edges (TeV), "
                              f"reoptimize}}, got {item!r}")  # fmt: skip
        out.append(item)
    return out


def _model_from(cfg):
    from ..models import Models

    model = cfg["model"]
    if isinstance(model, str):
        p = Path(model) if Path(model).is_absolute() else cfg["_base"] / model
        return Models.from_yaml(p)
    return Models.from_dict(model)


def _config_path(cfg, value) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else cfg["_base"] / p


def _maptree_roi(d: dict, where: str):
    from ..maps import HealpixROI

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
    from ..dataset import Dataset, require_counts
    from ..hawc import hawc_dataset
    from ..simulate import lhaaso_dataset, simulate_dataset

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
                from ..io.hal import maptree_dataset

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


def _provenance(cfg: dict | None, datasets) -> dict:
    """The configuration as given (and its file) and where each dataset came from."""
    from ..provenance import provenance

    config = None if cfg is None else {k: v for k, v in cfg.items() if not k.startswith("_")}
    sources = [{"name": ds.name, "n_bins": ds.n_bins, "nside": ds.roi.nside, "n_pix": int(ds.roi.pixels.size),
                **{k: v for k, v in ds.meta.items() if isinstance(v, str | int | float | bool)}}
               for ds in datasets]  # fmt: skip
    return provenance(config=config, config_file=None if cfg is None else str(cfg["_file"]), datasets=sources)


def _write_results(args, result, outdir: Path, extra: dict, provenance: dict | None = None) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    result.table().write(outdir / "fit_result.ecsv", overwrite=True)
    payload = result.to_dict()
    payload.update(extra)
    if provenance is not None:
        payload["provenance"] = provenance
    (outdir / "fit_result.json").write_text(json.dumps(plain_json(payload), indent=2))  # NaN, inf: null
    result.model.to_yaml(outdir / "best_fit_model.yaml", errors=result.errors)
    record_outputs(args, fit_result_ecsv=outdir / "fit_result.ecsv", fit_result_json=outdir / "fit_result.json",
                   best_fit_model_yaml=outdir / "best_fit_model.yaml")  # fmt: skip


def _maps_and_points(args, result, datasets, outdir: Path, flux_points=()) -> None:
    """FITS result maps per dataset (skyfit.io.skymaps) and the flux points and SED of the sources asked for."""
    from ..detect.result_maps import fit_maps
    from ..fluxpoints import flux_points as compute_points
    from ..fluxpoints import plot_sed
    from ..io.skymaps import write_maps
    from ..likelihood import Likelihood
    from ..models import Models

    maps = {}
    for ds in datasets:
        mu = Likelihood(result.model.for_datasets([ds.name]), [ds]).npred()[0]
        mu_b = Likelihood(Models((), result.model.for_datasets([ds.name]).backgrounds), [ds]).npred()[0]
        maps[ds.name] = write_maps(outdir / f"maps_{ds.name}.fits", fit_maps(ds, mu, mu_b), ds.roi, ds.bin_names,
                                   ds.response.energy_reco_edges_tev, meta={"residual_disc_deg": 0.2})  # fmt: skip
    record_outputs(args, maps_fits=maps)
    points, seds, rows = {}, {}, {}
    for req in flux_points:
        name = req["source"]
        used = [ds for ds in datasets if result.model.source(name).applies_to(ds.name)]
        fp = compute_points(result, used, name, energy_edges=req.get("energy_edges"),
                            reoptimize=bool(req.get("reoptimize", False)))  # fmt: skip
        print(fp)
        points[name] = fp.write(outdir / f"flux_points_{name}.fits")
        seds[name] = outdir / f"sed_{name}.png"
        plot_sed(fp, result, seds[name])
        rows[name] = [{c: fp.table[c][i].tolist() for c in fp.table.colnames} for i in range(len(fp.table))]
    if rows:
        record_result(args, flux_points=rows)
    record_outputs(args, flux_points_fits=points or None, sed_png=seds or None)


def _fit_and_report(args, model, datasets, outdir: Path, ts_sources=(), minos=(), cutout_margin_deg=None, cfg=None):
    from ..fit import Fit, significance_from_ts, ts_of_source
    from ..likelihood import Likelihood
    from ..plotting import plot_residuals

    lk = Likelihood(model, datasets, cutout_margin_deg=cutout_margin_deg)
    result = Fit(lk).run(minos=tuple(minos))
    print(result)
    if not result.valid:
        print("WARNING: the fit is not valid: " + "; ".join(result.messages), file=sys.stderr)
    extra = {"ts": {}}
    for name in ts_sources:
        ts, _ = ts_of_source(result, datasets, name)
        extra["ts"][name] = {"ts": ts, "sqrt_ts": significance_from_ts(ts)}
        print(f"TS({name}) = {ts:.1f}  (sqrt(TS) = {significance_from_ts(ts):.1f})")
    _write_results(args, result, outdir, extra, _provenance(cfg, datasets))
    best = Likelihood(result.model, datasets)
    for ds, mu in zip(datasets, best.npred(), strict=False):
        plot_residuals(ds, mu, outdir / f"residuals_{ds.name}.png", title=f"{ds.name}: best fit")
    record_outputs(args, residuals_png={ds.name: outdir / f"residuals_{ds.name}.png" for ds in datasets})
    _maps_and_points(args, result, datasets, outdir, (cfg or {}).get("flux_points", ()))
    print(f"results written to {outdir}/ (fit_result.ecsv, fit_result.json, best_fit_model.yaml, residuals_*.png, "
          "maps_*.fits, flux_points_*.fits and sed_*.png where asked)")  # fmt: skip
    return result, extra


def _fit_exit(args, result, extra: dict) -> int:
    """Record the fit (as in fit_result.json) for ``--json``; its exit code (3: the minimum is not valid)."""
    record_result(args, **result.to_dict(), **extra)
    return 0 if result.valid else EXIT_INVALID_FIT


def cmd_demo(args) -> int:
    from ..models import LogParabola, Models, PointSpatialModel, Source
    from ..simulate import lhaaso_dataset, simulate_dataset

    t0 = time.perf_counter()
    ra, dec = 83.633, 22.0145
    # Crab-like log-parabola at 7 TeV (HAWC NN fit, Abeysekara et al. 2019, ApJ 881 134)
    truth = Models([Source("crab", PointSpatialModel.create(ra, dec), LogParabola.create(2.31e-13, 2.73, 0.06, 7.0))])
    datasets = []
    for i, inst in enumerate(("WCDA", "KM2A")):
        base = lhaaso_dataset(inst, (ra, dec), args.radius, nside=args.nside, livetime_days=args.livetime_days)
        datasets.append(simulate_dataset(truth, base, seed=args.seed + i))
        print(f"simulated {inst}: {int(datasets[-1].counts.data.sum())} counts in {base.n_bins} bins")
    record_result(args, simulated_counts={ds.name: int(ds.counts.data.sum()) for ds in datasets})
    start = truth.with_values(
        {"crab.lon_0": ra + 0.1, "crab.lat_0": dec - 0.1, "crab.amplitude": 1e-13, "crab.alpha": 2.5, "crab.beta": 0.1}
    )
    result, extra = _fit_and_report(args, start, datasets, Path(args.outdir), ts_sources=["crab"])
    truth_v = truth.values()
    print("\nparameter         truth        fit          pull")
    pulls = {}
    for k in result.free_keys:
        pulls[k] = (result.value(k) - truth_v[k]) / result.errors[k]
        print(f"{k:16s} {truth_v[k]:12.5g} {result.value(k):12.5g} {pulls[k]:8.2f}")
    wall = time.perf_counter() - t0
    print(f"demo done in {wall:.1f} s")
    record_result(args, truth={k: truth_v[k] for k in result.free_keys}, pulls=pulls, wall_s=wall)
    return _fit_exit(args, result, extra)


def cmd_fit(args) -> int:
    cfg = _load_config(args.config)
    model = _model_from(cfg)
    datasets = _datasets_from(cfg, model)
    outdir = Path(args.outdir or cfg.get("output", "skyfit-fit"))
    result, extra = _fit_and_report(args, model, datasets, outdir, ts_sources=cfg.get("ts", []), cfg=cfg,
                                    minos=cfg.get("minos", []),
                                    cutout_margin_deg=cfg.get("cutout_margin_deg"))  # fmt: skip
    return _fit_exit(args, result, extra)


def cmd_simulate(args) -> int:
    from astropy.io import fits
    from astropy.table import Table

    from ..simulate import simulate_events

    cfg = _load_config(args.config)
    model = _model_from(cfg)
    seed = cfg.get("seed", args.seed)
    out = output_file(args, "events.fits")
    tables = []
    for ds in _datasets_from(cfg, model, templates=True):
        ev = simulate_events(model, ds, seed)
        t = Table({"RA": ev["RA"], "DEC": ev["DEC"], "BIN": ev["BIN"]})
        t.meta.update({"DATASET": ds.name, "NSIDE": ds.roi.nside, "SEED": seed})
        tables.append((ds, t))
        print(f"{ds.name}: {len(t)} events")
    per_dataset = {ds.name: len(t) for ds, t in tables}
    record_result(args, seed=seed, n_events=sum(per_dataset.values()), n_events_per_dataset=per_dataset)
    hdus = [fits.PrimaryHDU()]
    for ds, t in tables:
        hdu = fits.table_to_hdu(t)
        hdu.name = f"EVENTS_{ds.name}"
        hdu.header["BINNAMES"] = ",".join(ds.bin_names)
        hdus.append(hdu)
    fits.HDUList(hdus).writeto(out, overwrite=True)
    record_outputs(args, events=out)
    print(f"events written to {out}")
    return 0


def add_parsers(sub, common) -> None:
    """`demo`, `fit` and `simulate`."""
    d = sub.add_parser("demo", parents=[common], help="simulate a LHAASO-like Crab field and fit it",
                       description="Simulate a LHAASO-like (WCDA + KM2A) field with a Crab-like source, fit it and "
                       "compare the fit with the truth.")  # fmt: skip
    add_outdir(d, "the fit results and residual maps", "skyfit-demo")
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--livetime-days", type=float, default=365.0)
    d.add_argument("--nside", type=int, default=512)
    d.add_argument("--radius", type=float, default=3.0, help="ROI radius (deg)")
    d.set_defaults(func=cmd_demo)

    f = sub.add_parser("fit", parents=[common], help="fit a model to datasets from a YAML config",
                       description="Fit a model to the datasets of a YAML config (datasets, model, and optionally "
                       "output, minos, ts, seed); results as ECSV, JSON, the best-fit model as YAML and "
                       "residual maps.")  # fmt: skip
    f.add_argument("config", help="YAML config")
    f.add_argument("--outdir", default=None, metavar="DIR",
                   help="write the results here (default: the config's 'output', else skyfit-fit)")  # fmt: skip
    f.set_defaults(func=cmd_fit)

    s = sub.add_parser("simulate", parents=[common],
                       help="simulate LHAASO-like events from a YAML config (datasets + model)",
                       description="Draw LHAASO-like events from the model of a YAML config in its datasets' "
                       "background and response; one FITS extension per dataset (events.fits).")  # fmt: skip
    s.add_argument("config", help="YAML config (datasets + model)")
    add_outdir(s, "events.fits")
    add_deprecated_output(s, "--output", "events.fits")
    s.add_argument("--seed", type=int, default=0, help="random seed (the config's 'seed' wins)")
    s.set_defaults(func=cmd_simulate)

"""`skyfit catalog` (a source catalogue of a region) and `skyfit prior train` (the neural-network prior)."""

from __future__ import annotations

import json
from pathlib import Path

from ._common import (
    ConfigError,
    add_deprecated_output,
    add_outdir,
    output_file,
    read_yaml_mapping,
    record_outputs,
    record_result,
)

__all__ = ["add_parsers", "cmd_catalog", "cmd_prior_train", "cmd_prior_train_multiplicity"]

PRIOR_NAME = "prior_weights.npz"
MULTIPLICITY_NAME = "multiplicity_weights.npz"
# the catalogue's columns in `skyfit catalog --json` (result.sources), where the table has them
SOURCE_KEYS = ("name", "ra", "dec", "l", "b", "pos_err95", "r39", "r39_err", "ts", "components", "assoc_1lhaaso")


def cmd_catalog(args) -> int:
    from dataclasses import fields

    from ..catalog import CatalogConfig, CatalogError, run

    settings = {}
    if args.config:
        settings = read_yaml_mapping(args.config, "a catalogue config maps CatalogConfig fields (e.g. region: ...)")
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
    _record_catalog(args, summary)
    table = summary["table"]
    cols = [
        c for c in ("name", "l", "b", "pos_err95", "r39", "ts", "components", "assoc_1lhaaso") if c in table.colnames
    ]
    if len(table):
        print("\n".join(table[cols].pformat(max_lines=-1, max_width=-1)))
    return 0


def _record_catalog(args, summary: dict) -> None:
    """For ``--json``: the run's summary (as in run.json), the sources' key columns, the files written."""
    table, out = summary["table"], Path(summary["out_dir"])
    keys = [k for k in SOURCE_KEYS if k in table.colnames]
    record_result(args, **{k: v for k, v in summary.items() if k not in ("table", "components", "out_dir")},
                  sources=[{k: row[k] for k in keys} for row in table])  # fmt: skip
    plots = [] if args.no_plots else sorted([*out.glob("significance_*.png"), *out.glob("residual_*.png")])
    record_outputs(args, catalog_fits=out / "catalog.fits", catalog_ecsv=out / "catalog.ecsv",
                   catalog_reg=out / "catalog.reg", run_json=out / "run.json", config_yaml=out / "config.yaml",
                   checkpoints=out / "rois", plots_png=plots or None,
                   maps_fits=None if args.no_plots else sorted(out.glob("maps_*.fits")) or None)  # fmt: skip


def cmd_prior_train(args) -> int:
    from ..detect.prior import SHIPPED_WEIGHTS, train_prior

    if args.replace_shipped and (args.out or args.outdir):
        raise ConfigError("give either --outdir DIR or --replace-shipped, not both")
    # a new file unless told: overwriting the installed weights changes every later `--proposer nn` run
    out = SHIPPED_WEIGHTS if args.replace_shipped else output_file(args, PRIOR_NAME, alias="out")
    kw = {k: getattr(args, k) for k in ("n_fields", "n_validation", "steps") if getattr(args, k) is not None}
    model = train_prior(seed=args.seed, log=lambda *a: print(*a, flush=True), **kw)
    model.save(out)
    card = out.with_suffix(".json")
    record = {"weights": out.name, **model.meta, "calibration": model.calibration, "threshold": model.threshold}
    card.write_text(json.dumps(record, indent=1) + "\n")
    record_result(args, seed=args.seed, threshold=model.threshold, calibration=model.calibration, training=model.meta)
    record_outputs(args, weights=out, record_json=card)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) and its training record {card}")
    return 0


def cmd_prior_train_multiplicity(args) -> int:
    from ..detect.multiplicity import SHIPPED_MULTIPLICITY, multiplicity_examples, train_multiplicity

    if args.replace_shipped and args.outdir:
        raise ConfigError("give either --outdir DIR or --replace-shipped, not both")
    out = SHIPPED_MULTIPLICITY if args.replace_shipped else output_file(args, MULTIPLICITY_NAME)

    def log(*a):
        print(*a, flush=True)

    log(f"simulating {args.n_train} training blends (stream 3) and {args.n_validation} validation ones (stream 2)")
    train = multiplicity_examples(3, range(args.n_train), log=log)
    val = multiplicity_examples(2, range(args.n_validation), log=log)
    model = train_multiplicity(train, val, seed=args.seed, steps=args.steps, log=log)
    model.save(out)
    card = out.with_suffix(".json")
    card.write_text(json.dumps({"weights": out.name, "threshold": model.threshold, **model.meta}, indent=1) + "\n")
    record_result(args, seed=args.seed, threshold=model.threshold, training=model.meta)
    record_outputs(args, weights=out, record_json=card)
    log(f"wrote {out} and its training record {card}")
    return 0


def add_parsers(sub, common) -> None:
    """`catalog`, and `prior` with its action `train`."""
    c = sub.add_parser(
        "catalog", parents=[common], help="make a source catalogue of a region (default: a built-in simulated field)",
        description="Make a source catalogue of a Galactic region: of dataset files, or of a simulated sky (the "
        "1LHAASO sources, or a Models YAML); without arguments a built-in simulated field.",
    )  # fmt: skip
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
        help="simulate this sky (a Models YAML) instead of the 1LHAASO sources, then catalogue it",
    )
    c.add_argument("--livetime-days", type=float, default=None)
    c.add_argument("--nside", type=int, default=None)
    c.add_argument("--seed", type=int, default=None)
    c.add_argument("--tile-deg", type=float, default=None, help="ROI tile width in longitude (deg)")
    c.add_argument("--overlap-deg", type=float, default=None, help="ROI margin around each tile (deg)")
    c.add_argument("--null", action="store_true", help="simulate background and diffuse emission only")
    c.add_argument("--scheduler", default=None, help="'local' (dask LocalCluster) or a scheduler address")
    add_outdir(c, "the catalogue, its components and plots", "skyfit-catalog")
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

    pr = sub.add_parser("prior", parents=[common], help="the neural-network prior: `prior train` reproduces the "
                        "shipped network", description="The neural-network prior of `skyfit catalog --proposer "
                        "nn`.")  # fmt: skip
    actions = pr.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = actions.add_parser("train", parents=[common], help="train the prior network from its seed",
                           description="Reproduce the neural-network prior's shipped weights from its seed: "
                           "prior_weights.npz and its training record prior_weights.json.")  # fmt: skip
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--n-fields", type=int, default=None, help="simulated training fields (default 200)")
    t.add_argument("--n-validation", type=int, default=None, help="validation fields for the calibration")
    t.add_argument("--steps", type=int, default=None, help="optimiser steps")
    add_outdir(t, f"{PRIOR_NAME} and its record")
    add_deprecated_output(t, "--out", PRIOR_NAME)
    t.add_argument("--replace-shipped", action="store_true",
                   help="write over the weights installed with skyfit instead (`--proposer nn` uses them)")  # fmt: skip
    t.set_defaults(func=cmd_prior_train)
    m = actions.add_parser("train-multiplicity", parents=[common], help="train the multiplicity network (#30)",
                           description="Reproduce the multiplicity network (skyfit.detect.multiplicity: is a fitted "
                           "component one source or a blend?) from its seed: multiplicity_weights.npz and its "
                           "training record multiplicity_weights.json.")  # fmt: skip
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--n-train", type=int, default=6000, help="training blends (stream 3)")
    m.add_argument("--n-validation", type=int, default=600, help="validation blends (stream 2): the threshold")
    m.add_argument("--steps", type=int, default=4000, help="optimiser steps (the network kept: least validation loss)")
    add_outdir(m, f"{MULTIPLICITY_NAME} and its record")
    m.add_argument("--replace-shipped", action="store_true",
                   help="write over the network installed with skyfit instead")  # fmt: skip
    m.set_defaults(func=cmd_prior_train_multiplicity)

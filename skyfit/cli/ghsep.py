"""`skyfit ghsep train | apply | report`: machine-learning gamma/hadron separation (:mod:`skyfit.ghsep`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ._common import ConfigError, add_deprecated_output, add_outdir, output_file, record_outputs, record_result

__all__ = ["add_parsers", "cmd_train", "cmd_apply", "cmd_report"]

# showers thrown per sample by default: (gammas, cosmic rays)
DEFAULT_SAMPLES = {"WCDA": (40000, 120000), "KM2A": (20000, 150000)}


def cmd_train(args) -> int:
    from ..ghsep import build_model

    inst = args.instrument.upper()
    out = output_file(args, f"ghsep_{inst}.npz", alias="out")
    ng = args.n_gamma or DEFAULT_SAMPLES[inst][0]
    nb = args.n_background or DEFAULT_SAMPLES[inst][1]
    t0 = time.perf_counter()
    model, _ = build_model(inst, ng, nb, kind=args.kind, seed=args.seed, epochs=args.epochs, progress=True)
    model.save(out)
    record_result(args, instrument=inst, kind=args.kind, n_gamma=ng, n_background=nb, seed=args.seed,
                  epochs=args.epochs, ml_cut_bins=sorted(model.cuts), wall_s=time.perf_counter() - t0)  # fmt: skip
    record_outputs(args, model=out)
    print(f"{inst} {args.kind} model trained in {time.perf_counter() - t0:.0f} s; ML cuts in bins "
          f"{sorted(model.cuts)}, traditional kept elsewhere -> {out}")  # fmt: skip
    return 0


def cmd_apply(args) -> int:
    from ..events import EventFile, write_events
    from ..ghsep import GHSepError, apply_model, load_model

    model = load_model(args.model)
    out = output_file(args, Path(args.events).with_suffix(".gh.parquet").name, alias="out")
    ev_file = EventFile(args.events)
    table = ev_file.read(tuple(c for c in ev_file.columns if c != "SPECIES"))
    hits = None
    if model.kind == "pointcloud":
        if not args.hits:
            raise ConfigError("this model reads hit patterns: give --hits HITS (from `skyfit showers simulate --hits`)")
        hf = EventFile(args.hits)
        hits = hf.read(hf.columns)
    try:
        table = apply_model(model, table, hits=hits, where=str(args.events))
    except GHSepError as exc:
        raise ConfigError(f"{args.model} cannot score {args.events}: {exc}") from None
    write_events(out, table, {"INSTRUME": model.instrument, "GHMODEL": Path(args.model).name})
    n_pass, n = int(table["GH_PASS"].sum()), len(table["GH_SCORE"])
    record_result(args, instrument=model.instrument, n_events=n, n_pass=n_pass)
    record_outputs(args, events=out)
    print(f"{n_pass} of {n} events pass -> {out}")
    return 0


def cmd_report(args) -> int:
    from ..ghsep import load_model, model_report

    model = load_model(args.model)
    path, plots = model_report(model, args.outdir, n_gamma=args.n_gamma, n_background=args.n_background,
                               seed=args.seed, realisations=args.realisations, source=args.model)  # fmt: skip
    record_result(args, **json.loads(Path(path).read_text()))
    record_outputs(args, report_json=path, plots_png=list(plots))
    print(f"report written to {path}; plots: {', '.join(str(f) for f in plots)}")
    return 0


def add_parsers(sub, common) -> None:
    """`ghsep` and its actions."""
    gh = sub.add_parser("ghsep", parents=[common], help="ML gamma/hadron separation: train a classifier, apply "
                        "it, report its gain", description="Machine-learning gamma/hadron separation "
                        "(skyfit.ghsep): train a classifier on simulated showers, apply it to an event table, "
                        "report its gain on an independent sample.")  # fmt: skip
    actions = gh.add_subparsers(dest="action", required=True, metavar="ACTION")

    t = actions.add_parser("train", parents=[common], help="simulate samples, train the network, tune its cuts",
                           description="Simulate a training and a tuning sample, train the classifier and choose "
                           "its cuts per analysis bin; writes the model file (ghsep_INSTRUMENT.npz).")  # fmt: skip
    t.add_argument("--instrument", default="WCDA", choices=["WCDA", "KM2A"])
    t.add_argument("--kind", default="mlp", choices=["mlp", "pointcloud"], help="event features or hit patterns")
    t.add_argument("--n-gamma", type=int, default=None,
                   help="gamma showers thrown per sample (default: WCDA 40000, KM2A 20000)")  # fmt: skip
    t.add_argument("--n-background", type=int, default=None,
                   help="cosmic-ray showers thrown per sample (default: WCDA 120000, KM2A 150000)")  # fmt: skip
    t.add_argument("--epochs", type=int, default=40)
    t.add_argument("--seed", type=int, default=0, help="training sample's seed (tuning: seed + 1)")
    add_outdir(t, "the model file ghsep_INSTRUMENT.npz")
    add_deprecated_output(t, "--out", "ghsep_INSTRUMENT.npz")
    t.set_defaults(func=cmd_train)

    a = actions.add_parser("apply", parents=[common], help="score an event table: GH_SCORE and GH_PASS columns",
                           description="Score an event table with a model: the table with GH_SCORE and GH_PASS "
                           "columns (EVENTS.gh.parquet).")  # fmt: skip
    a.add_argument("model", help="model file (`skyfit ghsep train`)")
    a.add_argument("events", help="event table")
    a.add_argument("--hits", default=None, help="with a hit-pattern model: the events' hit table")
    add_outdir(a, "the scored table EVENTS.gh.parquet")
    add_deprecated_output(a, "--out", "EVENTS.gh.parquet")
    a.set_defaults(func=cmd_apply)

    r = actions.add_parser("report", parents=[common], help="ROC, efficiencies, significance before/after",
                           description="A model on an independent test sample: ROC curves, background at equal "
                           "gamma efficiency, and the significance of faint sources before and after its cuts "
                           "(report.json and plots).")  # fmt: skip
    r.add_argument("model", help="model file (`skyfit ghsep train`)")
    r.add_argument("--n-gamma", type=int, default=None, help="gamma showers thrown (default: as for training)")
    r.add_argument("--n-background", type=int, default=None, help="cosmic rays thrown (default: as for training)")
    r.add_argument("--seed", type=int, default=None, help="test sample's seed (default: the training seed + 2)")
    r.add_argument("--realisations", type=int, default=20, help="simulated years per source (0: no significance)")
    add_outdir(r, "report.json and the plots", "ghsep-report")
    r.set_defaults(func=cmd_report)

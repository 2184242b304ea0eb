"""`skyfit showers train | apply | report MODEL`: the shower networks of :mod:`skyfit.showerml` (particle
categorisation, noise-hit filtering, learned reconstruction)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ._common import ConfigError, add_outdir, output_file, record_outputs, record_result

__all__ = ["add_ml_parsers", "cmd_train", "cmd_apply", "cmd_model_report"]


def cmd_train(args) -> int:
    from ..showerml import ShowerMLError, train_task

    inst = args.instrument.upper()
    out = output_file(args, f"shower_{args.task}_{inst}.npz")
    t0 = time.perf_counter()
    try:
        model = train_task(args.task, inst, seed=args.seed, n_train=args.n, n_tune=args.n_tune, epochs=args.epochs,
                           progress=True)  # fmt: skip
    except ShowerMLError as exc:
        raise ConfigError(str(exc)) from None
    model.save(out)
    record_result(args, task=args.task, instrument=inst, seed=args.seed, n_train_showers=model.meta["n_train_showers"],
                  n_tune_showers=model.meta["n_tune_showers"], wall_s=time.perf_counter() - t0)  # fmt: skip
    record_outputs(args, model=out)
    print(f"{inst} {args.task} model trained in {time.perf_counter() - t0:.0f} s -> {out}")
    return 0


def _read(path):
    from ..events import EventFile

    f = EventFile(path)
    return f.read(tuple(c for c in f.columns if c != "SPECIES")), f.meta


def _apply_columns(model, eh) -> tuple[dict, dict | None]:
    """(new event columns, new hit columns or None) of ``model`` on the joined events and hits."""
    import numpy as np

    from ..showerml import mass_scores, noise_keep, reconstruct_learned
    from ..showers.reconstruct import reconstruct

    if model.task == "mass":
        s = mass_scores(model, eh)
        cols = {f"P_{g.upper()}": s["P"][:, i] for i, g in enumerate(model.meta["groups"])}
        cols.update(LIGHTNESS=s["light"], PROTONNESS=s["proton"], MASS_LOG10_E=s["log10_e"])
        return cols, None
    if model.task == "reco":
        r = reconstruct_learned(model, eh)
        return {k: r[k] for k in ("ML_ZENITH", "ML_AZIMUTH", "ML_SIGMA_DEG", "ML_LOG10_E", "ML_LOG10_E_SIGMA")}, None
    keep, _ = noise_keep(model, eh)
    rec = reconstruct(eh.main, eh.layout, kept=keep)
    cols = {"NHIT_ML": rec["NHIT"].astype(np.int32), "REC_ZENITH_ML": rec["REC_ZENITH"],
            "REC_AZIMUTH_ML": rec["REC_AZIMUTH"]}  # fmt: skip
    return cols, {"KEPT_ML": keep}


def cmd_apply(args) -> int:
    import numpy as np

    from ..events import write_events
    from ..showerml import ShowerMLError, event_hits, load_shower_model

    try:
        model = load_shower_model(args.model)
        table, meta = _read(args.events)
        hits, _ = _read(args.hits)
        inst = str(meta.get("INSTRUME", model.instrument)).upper()
        model.check_array(inst, str(args.events))
        eh = event_hits(table, hits, inst, where=str(args.hits))
        cols, hit_cols = _apply_columns(model, eh)
    except ShowerMLError as exc:
        raise ConfigError(f"{args.model} cannot be applied to {args.events}: {exc}") from None
    out = output_file(args, Path(args.events).with_suffix(f".{model.task}.parquet").name)
    # event_hits keeps the table's rows in order; the columns are per row
    write_events(out, {**table, **cols}, {"INSTRUME": inst, "SHOWERNET": Path(args.model).name})
    outputs = {"events": out}
    if hit_cols is not None:
        hout = out.with_name(Path(args.hits).with_suffix(f".{model.task}.parquet").name)
        kept = np.zeros(len(hits["EVENT_ID"]), bool)  # hits of other events and of muon detectors: False
        kept[eh.main_index] = hit_cols["KEPT_ML"]
        write_events(hout, {**hits, "KEPT_ML": kept}, {"INSTRUME": inst})
        outputs["hits"] = hout
    record_result(args, task=model.task, instrument=inst, n_events=len(table["EVENT_ID"]), columns=sorted(cols))
    record_outputs(args, **outputs)
    print(f"{model.task} model applied to {len(table['EVENT_ID'])} events -> {', '.join(map(str, outputs.values()))}")
    return 0


def cmd_model_report(args) -> int:
    from ..showerml import ShowerMLError, load_shower_model, task_report

    try:
        model = load_shower_model(args.inputs[0])
        rep = task_report(model, seed=args.seed, n_test=args.n, muon_scale=args.muon_scale,
                          noise_rate_hz=args.noise_rate, strong=args.strong)  # fmt: skip
    except ShowerMLError as exc:
        raise ConfigError(f"{args.inputs[0]}: {exc}") from None
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / "report.json"
    path.write_text(json.dumps(rep, indent=1))
    record_result(args, **rep)
    record_outputs(args, report_json=path)
    print(json.dumps(rep, indent=1)[:4000])
    print(f"report written to {path}")
    return 0


def add_ml_parsers(actions, common) -> None:
    """`showers train` and `showers apply` (`showers report MODEL` is parsed with the cut report)."""
    t = actions.add_parser("train", parents=[common], help="train a shower network: mass, noise or reco",
                           description="Simulate a training and a tuning sample and train a shower network: "
                           "'mass' (KM2A particle categorisation H..Fe), 'noise' (WCDA noise-hit filter) or "
                           "'reco' (learned direction and energy); writes shower_TASK_INSTRUMENT.npz.")  # fmt: skip
    t.add_argument("--task", required=True, choices=["mass", "noise", "reco"])
    t.add_argument("--instrument", default=None, choices=["WCDA", "KM2A"],
                   help="default: KM2A for mass, WCDA otherwise")  # fmt: skip
    t.add_argument("--n", type=int, default=None, help="training showers (mass: per group; default per task)")
    t.add_argument("--n-tune", type=int, default=None, help="tuning showers (default per task)")
    t.add_argument("--epochs", type=int, default=None, help="default per task")
    t.add_argument("--seed", type=int, default=0, help="training sample's seed (tuning: seed + 1)")
    add_outdir(t, "the model file shower_TASK_INSTRUMENT.npz")
    t.set_defaults(func=_train_default_instrument)

    a = actions.add_parser("apply", parents=[common], help="apply a shower network to events and their hits",
                           description="Apply a shower network to an event table and its hits: mass adds P_H.. "
                           "P_FE, LIGHTNESS, PROTONNESS; reco adds ML_ZENITH, ML_AZIMUTH, ML_SIGMA_DEG, ML_LOG10_E; "
                           "noise adds NHIT_ML, REC_*_ML and writes the hits with KEPT_ML.")  # fmt: skip
    a.add_argument("model", help="model file (`skyfit showers train`)")
    a.add_argument("events", help="event table (`skyfit showers simulate --hits`)")
    a.add_argument("--hits", required=True, help="its hit table")
    add_outdir(a, "EVENTS.TASK.parquet (and HITS.noise.parquet)")
    a.set_defaults(func=cmd_apply)


def _train_default_instrument(args) -> int:
    if args.instrument is None:
        args.instrument = "KM2A" if args.task == "mass" else "WCDA"
    return cmd_train(args)

"""`skyfit showers simulate | reconstruct | report | train | apply`: air showers, their reconstruction, the
traditional cut (:mod:`skyfit.showers`) and the shower networks (:mod:`skyfit.showerml`)."""

from __future__ import annotations

import time
from pathlib import Path

from ._common import ConfigError, add_deprecated_output, add_outdir, output_file, record_outputs, record_result
from .showers_ml import add_ml_parsers, cmd_model_report

__all__ = ["add_parsers", "cmd_simulate", "cmd_reconstruct", "cmd_report"]

EVENTS_NAME, HITS_NAME = "showers.parquet", "hits.parquet"


def _write_table(out: Path, table: dict, meta: dict) -> None:
    from ..events import write_events

    # SPECIES (strings) goes to Parquet only
    write_events(out, {k: v for k, v in table.items() if k != "SPECIES" or out.suffix == ".parquet"}, meta)


def _noise_filter(rep: dict) -> dict:
    return {k: rep[k] for k in ("noise_filter_purity", "noise_filter_efficiency")}


def cmd_simulate(args) -> int:
    from ..events import write_events
    from ..showers import hits_table, simulate_shower_events

    out = output_file(args, EVENTS_NAME)
    t0 = time.perf_counter()
    hits = [] if args.hits else None
    table, rep = simulate_shower_events(
        args.instrument, args.particle, args.n, e_min_tev=args.e_min, e_max_tev=args.e_max, index=args.index,
        seed=args.seed, with_report=True, hits_out=hits, noise_rate_hz=args.noise_rate, muon_scale=args.muon_scale,
    )  # fmt: skip
    if hits is not None:
        hits_path = Path(args.outdir or ".") / args.hits
        hits_path.parent.mkdir(parents=True, exist_ok=True)
        write_events(hits_path, hits_table(hits), {"INSTRUME": args.instrument.upper()})
        record_outputs(args, hits=hits_path)
        print(f"hits written to {hits_path}")
    _write_table(out, table, {"INSTRUME": args.instrument.upper(), "PARTICLE": str(args.particle)})
    record_outputs(args, events=out)
    record_result(args, instrument=args.instrument.upper(), particle=str(args.particle), n_showers=args.n,
                  n_events=len(table["BIN"]), wall_s=time.perf_counter() - t0, **_noise_filter(rep))  # fmt: skip
    print(f"{args.n} {args.particle} showers simulated and reconstructed in {time.perf_counter() - t0:.1f} s")
    print(f"noise filter: purity {rep['noise_filter_purity']:.4f}, efficiency {rep['noise_filter_efficiency']:.4f}")
    print(f"event table written to {out}")
    return 0


def cmd_reconstruct(args) -> int:
    from ..events import EventFile
    from ..showers import reconstruct_table

    out = output_file(args, EVENTS_NAME)
    ev_file = EventFile(args.events)
    table = ev_file.read(tuple(c for c in ev_file.columns))
    hit_file = EventFile(args.hits)
    hits = hit_file.read(hit_file.columns)
    instrument = ev_file.meta.get("INSTRUME", args.instrument)
    out_table, rep = reconstruct_table(table, hits, instrument, window_ns=args.window_ns)
    _write_table(out, out_table, {"INSTRUME": instrument})
    record_outputs(args, events=out)
    record_result(args, instrument=instrument, window_ns=args.window_ns, n_events=len(out_table["BIN"]),
                  **_noise_filter(rep))  # fmt: skip
    print(f"noise filter (window {args.window_ns} ns): purity {rep['noise_filter_purity']:.4f}, "
          f"efficiency {rep['noise_filter_efficiency']:.4f}; table written to {out}")  # fmt: skip
    return 0


def cmd_report(args) -> int:
    """Per-bin traditional cut, PSF and ROC curves of two event tables (gammas, background); with one model
    file, the shower network's report (:func:`skyfit.cli.showers_ml.cmd_model_report`)."""
    from ..events import EventFile
    from ..showers import cut_table, plot_cut_roc, quality_cut

    if len(args.inputs) == 1 and str(args.inputs[0]).endswith(".npz"):
        return cmd_model_report(args)
    if len(args.inputs) != 2:
        raise ConfigError(f"showers report takes GAMMAS BACKGROUND (two event tables) or one MODEL.npz, got "
                          f"{len(args.inputs)} inputs: {args.inputs}")  # fmt: skip
    args.gammas, args.background = args.inputs
    g, b = (quality_cut(f.read(tuple(c for c in f.columns if c != "SPECIES")))
            for f in map(EventFile, (args.gammas, args.background)))  # fmt: skip
    higher = not args.lower_is_gamma
    table = cut_table(g, b, args.variable, args.efficiency, higher_is_gamma=higher)
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    table.write(outdir / "cut_table.ecsv", overwrite=True)
    print(table)
    plot_cut_roc(g, b, list(table["bin"]), args.variable, outdir / "roc.png", higher_is_gamma=higher)
    record_result(args, variable=args.variable, higher_is_gamma=higher, efficiency=args.efficiency,
                  bins=[dict(zip(table.colnames, row, strict=True)) for row in table])  # fmt: skip
    record_outputs(args, cut_table_ecsv=outdir / "cut_table.ecsv", roc_png=outdir / "roc.png")
    print(f"cut table and ROC curves written to {outdir}")
    return 0


def add_parsers(sub, common) -> None:
    """`showers` and its actions."""
    sh = sub.add_parser("showers", parents=[common], help="air-shower simulation, reconstruction and the "
                        "traditional g/h cut", description="Air showers on LHAASO-like arrays (skyfit.showers): "
                        "simulate and reconstruct them, reconstruct stored hits again, report the traditional "
                        "gamma/hadron cut.")  # fmt: skip
    actions = sh.add_subparsers(dest="action", required=True, metavar="ACTION")

    s = actions.add_parser("simulate", parents=[common], help="simulate and reconstruct showers: an event table",
                           description="Simulate and reconstruct air showers: an event table with truth and "
                           "reconstructed columns (showers.parquet), optionally the hits.")  # fmt: skip
    s.add_argument("--instrument", default="WCDA", choices=["WCDA", "KM2A"])
    s.add_argument("--particle", default="gamma", help="gamma, proton, He, CNO, MgSi, Fe, H..Fe or Z")
    s.add_argument("--n", type=int, default=10000, help="showers thrown")
    s.add_argument("--e-min", type=float, default=None, help="TeV (default: WCDA 0.3, KM2A 10)")
    s.add_argument("--e-max", type=float, default=None, help="TeV (default: WCDA 30, KM2A 1000)")
    s.add_argument("--index", type=float, default=2.6, help="spectral index of the thrown primaries")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--noise-rate", type=float, default=None, help="dark-count rate per detector, Hz (default: "
                   "WCDA 15000, KM2A electron detectors 1500)")  # fmt: skip
    s.add_argument("--muon-scale", type=float, default=1.0, help="nuclei's muon number x this (hadronic-model band)")
    s.add_argument(
        "--hits",
        nargs="?",
        const=HITS_NAME,
        default=None,
        metavar="NAME",
        help=f"also write the hits (for `showers reconstruct`), as NAME in --outdir (default {HITS_NAME})",
    )
    add_outdir(s, EVENTS_NAME)  # fmt: skip
    add_deprecated_output(s, "--output", EVENTS_NAME)
    s.set_defaults(func=cmd_simulate)

    r = actions.add_parser("reconstruct", parents=[common], help="reconstruct an event table again from its hits",
                           description="Reconstruct the showers of an event table again from its stored hits "
                           "(`showers simulate --hits`), e.g. with another noise-filter window.")  # fmt: skip
    r.add_argument("events", help="event table from `showers simulate`")
    r.add_argument("--hits", required=True, help="its hit table (`showers simulate --hits`)")
    r.add_argument("--window-ns", type=float, default=20.0, help="noise-filter time window (ns)")
    r.add_argument("--instrument", default="WCDA", choices=["WCDA", "KM2A"],
                   help="where the table does not say (INSTRUME)")  # fmt: skip
    add_outdir(r, EVENTS_NAME)
    add_deprecated_output(r, "--output", EVENTS_NAME)
    r.set_defaults(func=cmd_reconstruct)

    add_ml_parsers(actions, common)
    p = actions.add_parser("report", parents=[common], help="the traditional cut per analysis bin (GAMMAS "
                           "BACKGROUND), or a shower network on an independent sample (MODEL.npz)",
                           description="With two event tables (GAMMAS BACKGROUND): the traditional cut on one "
                           "variable per analysis bin, keeping a gamma efficiency: cut_table.ecsv (threshold, "
                           "efficiencies, PSF) and roc.png. With one model file (`showers train`): the network "
                           "against the classic method on an independent test sample: report.json.")  # fmt: skip
    p.add_argument("inputs", nargs="+", metavar="GAMMAS BACKGROUND | MODEL",
                   help="gamma and background event tables, or one shower-network model file")  # fmt: skip
    p.add_argument("--variable", default="COMPACTNESS", help="the discriminating column")
    p.add_argument("--lower-is-gamma", action="store_true", help="e.g. for PINCNESS, DISPERSION, MU_E_RATIO")
    p.add_argument("--efficiency", type=float, default=0.5, help="gamma efficiency kept per bin")
    p.add_argument("--seed", type=int, default=None, help="MODEL: the test sample's seed (default training seed + 2)")
    p.add_argument("--n", type=int, default=None, help="MODEL: test showers (mass: per group; default per task)")
    p.add_argument("--muon-scale", type=float, default=1.0, help="MODEL: nuclei's muon number x this in the test")
    p.add_argument("--noise-rate", type=float, default=None, help="MODEL: the test's dark-count rate (Hz)")
    p.add_argument("--strong", action="store_true", help="MODEL (reco): also fit the strong classic")
    add_outdir(p, "cut_table.ecsv and roc.png, or report.json", "shower-report")
    p.set_defaults(func=cmd_report)

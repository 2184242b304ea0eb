"""``skyfit`` command line: a thin layer over the Python API.

Commands
--------
skyfit demo              simulate a LHAASO-like (WCDA + KM2A) field with a Crab-like source, fit it, report
skyfit fit               fit a model to datasets described in a YAML config; results as ECSV and JSON
skyfit simulate          simulate a LHAASO-like event list from a model (YAML config)
skyfit bin               bin an event list (HAWC DL3, skyfit, Parquet) into HEALPix counts maps or a dataset file
skyfit simulate-events   simulate a LHAASO-like event stream (cosmic rays + sources)
skyfit catalog           make a source catalogue of a Galactic region (no arguments: a built-in simulated field)
skyfit prior train       reproduce the neural-network prior's shipped weights from its seed
skyfit showers ACTION    air showers: simulate | reconstruct | report (the traditional gamma/hadron cut)
skyfit ghsep ACTION      ML gamma/hadron separation: train | apply | report

Every command writes under ``--outdir DIR`` (``skyfit COMMAND [ACTION] --help`` names its files and
default folder). ``skyfit --version``; ``-v`` (log progress) anywhere after ``skyfit``.

Exit codes: 0 done; 1 an unexpected error (with a traceback); 2 bad usage, configuration or input (a
message naming the file and the fix); 3 a fit ran but its minimum is not valid (results are written:
look at them before trusting them).
"""

from __future__ import annotations

import argparse
import logging
import sys

from . import binning, catalog, fitting, ghsep, showers
from ._common import EXIT_ERROR, EXIT_INVALID_FIT, EXIT_OK, EXIT_USAGE, ConfigError, verbose_parent

__all__ = ["main", "build_parser", "ConfigError", "EXIT_OK", "EXIT_ERROR", "EXIT_USAGE", "EXIT_INVALID_FIT"]


def build_parser() -> argparse.ArgumentParser:
    """The ``skyfit`` parser: one subcommand per command, and for ``showers``, ``ghsep`` and ``prior`` one
    sub-subcommand per action (each with only its own options)."""
    from .._version import __version__

    p = argparse.ArgumentParser(
        prog="skyfit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log progress and dropped events")
    p.add_argument("--version", action="version", version=f"skyfit {__version__}")
    common = verbose_parent()
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fitting.add_parsers(sub, common)  # demo, fit, simulate
    binning.add_parsers(sub, common)  # bin, simulate-events
    catalog.add_parsers(sub, common)  # catalog, prior train
    showers.add_parsers(sub, common)
    ghsep.add_parsers(sub, common)
    return p


def main(argv=None) -> int:
    """Run ``skyfit`` with the arguments ``argv`` (default: the command line); returns the exit code.
    Bad usage raises ``SystemExit(2)`` (argparse) or returns 2 (a configuration or input error)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    name = " ".join(filter(None, ("skyfit", args.command, getattr(args, "action", None))))
    for note in getattr(args, "deprecations", None) or []:
        print(f"{name}: warning: {note}", file=sys.stderr)
    from ..plotting import use_file_backend

    use_file_backend()  # figures go to files; a notebook calling main() keeps its inline backend
    try:
        return args.func(args)
    except (ConfigError, FileNotFoundError, ValueError, OSError, ConnectionError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())

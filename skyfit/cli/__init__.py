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
skyfit prior train-multiplicity   the same for the multiplicity network (is a component a blend?)
skyfit showers ACTION    air showers: simulate | reconstruct | report | train | apply (shower networks)
skyfit ghsep ACTION      ML gamma/hadron separation: train | apply | report

Every command writes under ``--outdir DIR`` (``skyfit COMMAND [ACTION] --help`` names its files and
default folder). ``skyfit --version``; ``-v`` (log progress) anywhere after ``skyfit``; ``--json`` (anywhere
after ``skyfit``) writes one JSON document on stdout: the results, the files written, the error if any
(docs/cli-json.md); the text goes to stderr.

Exit codes: 0 done; 1 an unexpected error (with a traceback); 2 bad usage, configuration or input (a
message naming the file and the fix); 3 a fit ran but its minimum is not valid (results are written:
look at them before trusting them).
"""

from __future__ import annotations

import argparse
import logging
import sys

from . import binning, catalog, fitting, ghsep, showers
from ._common import (
    EXIT_ERROR,
    EXIT_INVALID_FIT,
    EXIT_OK,
    EXIT_USAGE,
    JSON_HELP,
    ConfigError,
    Parser,
    json_document,
    stdout_to_stderr,
    verbose_parent,
)

__all__ = ["main", "build_parser", "ConfigError", "EXIT_OK", "EXIT_ERROR", "EXIT_USAGE", "EXIT_INVALID_FIT"]


def build_parser() -> argparse.ArgumentParser:
    """The ``skyfit`` parser: one subcommand per command, and for ``showers``, ``ghsep`` and ``prior`` one
    sub-subcommand per action (each with only its own options)."""
    from .._version import __version__

    p = Parser(prog="skyfit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="log progress and dropped events")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
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
    Bad usage raises ``SystemExit(2)`` (argparse; with ``--json`` after printing its JSON document) or
    returns 2 (a configuration or input error)."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        if "--json" in argv and exc.code and hasattr(exc, "usage"):  # not --help / --version
            prog, message = exc.usage
            print(json_document(None, prog.removeprefix("skyfit").strip() or None, EXIT_USAGE,
                                {"type": "UsageError", "message": f"{prog}: {message}"}))  # fmt: skip
        raise
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    command = " ".join(filter(None, (args.command, getattr(args, "action", None))))
    for note in getattr(args, "deprecations", None) or []:
        print(f"skyfit {command}: warning: {note}", file=sys.stderr)
    from ..plotting import use_file_backend

    use_file_backend()  # figures go to files; a notebook calling main() keeps its inline backend
    if not args.json:
        return _run(args, command)[0]
    with stdout_to_stderr() as stdout:
        code, error = _run(args, command)
    print(json_document(args, command, code, error), file=stdout, flush=True)
    return code


def _run(args, command: str) -> tuple[int, dict | None]:
    """Run the command: (its exit code, the error for ``--json`` or None). A configuration or input error:
    a message on stderr, exit 2; an unexpected one: its traceback (raised, without ``--json``), exit 1."""
    try:
        return args.func(args), None
    except (ConfigError, FileNotFoundError, ValueError, OSError, ConnectionError) as exc:
        print(f"skyfit {command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE, {"type": type(exc).__name__, "message": str(exc)}
    except Exception as exc:
        if not args.json:
            raise
        import traceback

        traceback.print_exc()
        return EXIT_ERROR, {"type": type(exc).__name__, "message": str(exc)}


if __name__ == "__main__":
    sys.exit(main())

"""What every command shares: exit codes, the configuration error, YAML configs, ``-v``, ``--json`` and
``--outdir``."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from pathlib import Path

__all__ = [
    "EXIT_OK",
    "EXIT_ERROR",
    "EXIT_USAGE",
    "EXIT_INVALID_FIT",
    "ConfigError",
    "read_yaml_mapping",
    "verbose_parent",
    "add_outdir",
    "add_deprecated_output",
    "output_file",
    "Parser",
    "JSON_SCHEMA",
    "record_result",
    "record_outputs",
    "stdout_to_stderr",
    "json_document",
    "plain_json",
]

# exit codes: 0 done; 1 an unexpected error (a traceback); 2 bad usage, configuration or input (a message
# naming the file and the fix); 3 the fit ran but its minimum is not valid (results written, not to be trusted)
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INVALID_FIT = 0, 1, 2, 3


class ConfigError(ValueError):
    """A configuration file is missing, malformed or has unknown/invalid entries."""


def read_yaml_mapping(path, what: str) -> dict:
    """The mapping in the YAML file ``path``; a :class:`ConfigError` naming the file otherwise (``what``:
    what the mapping should hold)."""
    import yaml

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


def verbose_parent() -> argparse.ArgumentParser:
    """A parent parser with ``-v`` and ``--json``, so that they are accepted after each (sub)command too;
    SUPPRESS: a command given without them keeps the value from the level above."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log progress and dropped events")  # fmt: skip
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=JSON_HELP)
    return common


# ---- --json: one JSON document on stdout (docs/cli-json.md) ----------------------------------------------

JSON_SCHEMA = "skyfit-cli/1"
JSON_HELP = "write one JSON document (results, files written, errors) on stdout; the text goes to stderr"


class Parser(argparse.ArgumentParser):
    """The parser of ``skyfit`` and its commands: a usage error keeps which parser refused what
    (``exc.usage = (prog, message)`` on the ``SystemExit``), for ``--json``'s error document."""

    def error(self, message):
        try:
            super().error(message)
        except SystemExit as exc:
            exc.usage = (self.prog, message)
            raise


def record_result(args, **entries) -> None:
    """Add ``entries`` to the ``result`` of the command's JSON document (``--json``)."""
    vars(args).setdefault("json_result", {}).update(entries)


def record_outputs(args, **paths) -> None:
    """Add files the command wrote to the ``outputs`` of its JSON document (``--json``): a path, a list of
    paths or a mapping (e.g. dataset name) -> path; ``None`` (a file not written) is left out."""
    vars(args).setdefault("json_outputs", {}).update({k: v for k, v in paths.items() if v is not None})


def plain_json(value):
    """``value`` as plain JSON: numpy scalars and arrays, Paths (absolute), tuples, NaN / inf -> null."""
    if isinstance(value, dict):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value.absolute())
    if isinstance(value, (list, tuple, set)) or hasattr(value, "tolist"):  # numpy arrays and scalars
        value = value.tolist() if hasattr(value, "tolist") else list(value)
        if isinstance(value, list):
            return [plain_json(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def json_document(args, command: str | None, code: int, error: dict | None = None) -> str:
    """The one JSON document of a command run with ``--json`` (its keys: docs/cli-json.md)."""
    from .._version import __version__

    if error is None and code == EXIT_INVALID_FIT:
        error = {"type": "InvalidFit", "message": "the fit ran but its minimum is not valid; its results are "
                 "written: look at them before trusting them"}  # fmt: skip
    elif error is None and code != EXIT_OK:
        error = {"type": "Error", "message": f"exit code {code}"}
    doc = {"schema": JSON_SCHEMA, "skyfit_version": __version__, "command": command, "exit_code": code,
           "ok": code == 0, "outputs": getattr(args, "json_outputs", {}), "result": getattr(args, "json_result", {}),
           "warnings": list(getattr(args, "deprecations", None) or []), "error": error}  # fmt: skip
    return json.dumps(plain_json(doc), allow_nan=False)


@contextlib.contextmanager
def stdout_to_stderr():
    """While a command runs with ``--json``, what it prints (Python's ``print`` and the C libraries' writes on
    file descriptor 1) goes to stderr; yields the real stdout, for the JSON document."""
    real = sys.stdout
    real.flush()
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except (OSError, ValueError):
        saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield real
    finally:
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def add_outdir(parser: argparse.ArgumentParser, writes: str, default: str | None = None) -> None:
    """``--outdir DIR``: the folder the command writes ``writes`` into (created if missing)."""
    where = "the current folder" if default is None else default
    parser.add_argument("--outdir", default=default, metavar="DIR", help=f"write {writes} here (default: {where})")


class _DeprecatedOutput(argparse.Action):
    """A file option kept for one release: stores the path and records a note that :func:`skyfit.cli.main`
    prints on stderr."""

    def __init__(self, option_strings, dest, instead: str = "", **kwargs):
        self.instead = instead
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        note = f"{option_string} FILE is deprecated and goes in the next release: {self.instead}"
        namespace.deprecations = [*(getattr(namespace, "deprecations", None) or []), note]


def add_deprecated_output(parser: argparse.ArgumentParser, flag: str, default_name: str) -> None:
    """The old ``--output FILE`` / ``--out FILE`` of a command, hidden from its help; it still names the
    file written, with a deprecation note. Use ``--outdir DIR`` (``DIR/default_name``)."""
    dest = flag.lstrip("-")
    parser.add_argument(flag, dest=dest, default=None, action=_DeprecatedOutput, help=argparse.SUPPRESS,
                        instead=f"use --outdir DIR, which writes DIR/{default_name}")  # fmt: skip


def output_file(args, name: str, alias: str = "output") -> Path:
    """Where a command writes its file ``name``: under ``--outdir`` (default: the current folder), or the
    file of the deprecated ``--output`` / ``--out`` (``alias``) where given. The folder is created."""
    old = getattr(args, alias, None)
    if old is not None and args.outdir is not None:
        raise ConfigError(f"give --outdir DIR (the file is DIR/{name}) or the deprecated --{alias} FILE, not both")
    path = Path(old) if old is not None else Path(args.outdir or ".") / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path

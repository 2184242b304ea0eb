"""What every command shares: exit codes, the configuration error, YAML configs, ``-v`` and ``--outdir``."""

from __future__ import annotations

import argparse
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
    """A parent parser with ``-v``, so that it is accepted after each (sub)command too; SUPPRESS: a command
    given without it keeps the value from the level above."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log progress and dropped events")  # fmt: skip
    return common


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

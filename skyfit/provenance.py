"""What every result file records about how it was made: software versions, the machine, the time."""

from __future__ import annotations

import platform
import sys
from datetime import UTC, datetime
from importlib import metadata

__all__ = ["software_versions", "provenance"]

_PACKAGES = ("skyfit", "numpy", "scipy", "astropy", "healpy", "gammapy", "iminuit", "jax", "jaxlib", "equinox")


def software_versions() -> dict:
    """``{package: version}`` of Python and the packages a result depends on (``None``: not installed)."""
    out = {"python": sys.version.split()[0]}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def provenance(**extra) -> dict:
    """The versions, the platform, the UTC time and ``extra`` (e.g. the configuration, the input files)."""
    return {
        "software": software_versions(),
        "platform": platform.platform(),
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    }

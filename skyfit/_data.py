"""Where the public reference data live (``SKYFIT_DATA``, falling back to ``../shared/data``)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_dir", "DataNotFoundError"]

HOW_TO_GET = (
    "skyfit's reference data (HAWC pass-4 Crab events and IRFs, catalogues; CC BY-NC-SA 4.0) are not "
    "shipped with the package. Point the environment variable SKYFIT_DATA at a folder holding them "
    "(e.g. a copy of the gammapy-data collection: `gammapy download datasets`, then "
    "SKYFIT_DATA=$GAMMAPY_DATA), or place them in ../shared/data beside the repository."
)


class DataNotFoundError(FileNotFoundError):
    """The reference data (or one file of them) could not be found."""


def data_dir(*parts: str, must_exist: bool = True) -> Path:
    """Path inside the reference data folder.

    When ``$SKYFIT_DATA`` is set, it alone is searched; otherwise ``../shared/data`` relative to the
    repository that holds this package, then ``../shared/data`` relative to the working directory.
    """
    if os.environ.get("SKYFIT_DATA"):
        candidates = [Path(os.environ["SKYFIT_DATA"]).expanduser()]
    else:
        candidates = [Path(__file__).resolve().parents[2] / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for base in candidates:
        path = base.joinpath(*parts)
        if path.exists():
            return path
    if not must_exist:
        return candidates[0].joinpath(*parts)
    raise DataNotFoundError(
        f"{Path(*parts) if parts else 'data folder'} not found in {[str(c) for c in candidates]}. {HOW_TO_GET}"
    )

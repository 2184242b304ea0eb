"""Dataset and response files: one FITS file that gammapy, healpy and astropy open.

This module holds what both kinds of file share (format detection, guarded opening, the primary header,
the JSON provenance) and :class:`DatasetFileError`; the response's HDUs are written and read in
:mod:`skyfit.response._types` (``Response.write``/``Response.read``), the maps' in :mod:`skyfit.dataset`
(``Dataset.write``/``Dataset.read``). :mod:`skyfit.io` exports every reader and writer.

Layout (``FORMAT = 'skyfit-dataset'`` or ``'skyfit-response'`` in the primary header)::

    PRIMARY          FORMAT, FMTVERS, SKYFITV, NAME, INSTRUME, LIVETIME (s, when known)
    COUNTS           partial-sky HEALPix map (gammapy HpxNDMap layout: PIX + CHANNEL<i> columns, float64)
    COUNTS_BANDS     its axis: reconstructed energy (E_MIN, E_MAX in TeV) or a labelled ``analysis_bin``
    BACKGROUND(_BANDS), MASK(_BANDS)     the same for the expected background and the fit mask
    ANALYSIS_BINS    the bin names, in order
    ROI_PIXELS       the region's pixels and its metadata (the maps may carry a few more, see below)
    RESP_MATRIX      counts_matrix (n_dec, n_bins, n_true), cm2 s TeV: exposure x dispersion x weight
    RESP_AXES        true-energy nodes (TeV)      RESP_DEC    declination nodes (deg)
    RESP_BINS        per bin: NAME, E_MIN/E_MAX (TeV, NaN where the bin is not an energy band), the
                     Gaussian-mixture PSF (PSF_WEIGHT, PSF_SIGMA in deg)
    RESP_PSF_TABLE   optional tabulated radial PSF (RAD_DEG; DENSITY in deg-2 per bin)
    RESP_GRID_LON, RESP_GRID_LAT   optional sky grid (deg, FRAME keyword) when RESP_MATRIX's first axis
                     runs over (lon, lat) nodes (exposure per sky position) instead of declinations
    PROVENANCE       JSON: the dataset's and response's metadata, skyfit version, when and how made

gammapy rebuilds an explicit partial-sky geometry only from a ``DISK`` region (``HPX_REG``), so the maps
are written over the smallest such disc that holds the ROI; pixels of the disc outside the ROI carry zero
counts, zero background and ``MASK = 0``, and ``ROI_PIXELS`` tells skyfit which pixels are the ROI. A
round trip is exact: every array is written in float64 and read back bit for bit.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

from .._version import __version__
from ..maps import MapFormatError

__all__ = ["DatasetFileError", "file_format"]

FORMAT_VERSION = 1


class DatasetFileError(MapFormatError):
    """A dataset or response file is missing, of another format, truncated or inconsistent."""


def _version() -> str:
    return __version__


# ---- JSON for metadata: numpy arrays come back as arrays -------------------------------------------------


def _to_json(obj):
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": obj.dtype.str}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a dataset file's metadata")


def _from_json(obj):
    if isinstance(obj, dict):
        if set(obj) == {"__ndarray__", "dtype"}:
            return np.asarray(obj["__ndarray__"], dtype=np.dtype(obj["dtype"]))
        return {k: _from_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_json(v) for v in obj]
    return obj


def _json_hdu(payload: dict, name: str) -> fits.BinTableHDU:
    text = json.dumps(payload, default=_to_json, sort_keys=True)
    raw = np.frombuffer(text.encode(), dtype=np.uint8)
    return fits.BinTableHDU.from_columns([fits.Column("JSON", f"{max(raw.size, 1)}B", array=raw[None])], name=name)


def _read_json_hdu(hdu) -> dict:
    return _from_json(json.loads(bytes(np.asarray(hdu.data["JSON"][0], dtype=np.uint8)).decode()))


# ---- files -------------------------------------------------------------------------------------------------


def _hdu(hdul, name: str, path: Path):
    if name not in hdul:
        raise DatasetFileError(
            f"{path} has no {name} HDU: the file is truncated or not a complete skyfit file "
            f"(HDUs found: {[h.name for h in hdul]}); write it again with skyfit"
        )
    return hdul[name]


def file_format(path) -> str:
    """What a file is: ``'skyfit-dataset'``, ``'skyfit-response'``, ``'fits'`` (another FITS file),
    ``'root'``, ``'hdf5'`` or ``'unknown'`` (by its first bytes, not its name)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetFileError(f"{path} does not exist")
    import gzip

    with open(path, "rb") as f:
        head = f.read(8)
    if head[:2] == b"\x1f\x8b":
        with gzip.open(path, "rb") as f:
            head = f.read(8)
    if head.startswith(b"root"):
        return "root"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if head.startswith(b"SIMPLE"):
        try:
            with fits.open(path) as hdul:
                return str(hdul[0].header.get("FORMAT", "fits"))
        except (OSError, ValueError):
            return "fits"
    return "unknown"


@contextlib.contextmanager
def _reading(path: Path, what: str):
    """Turn astropy's "file may have been truncated" warning and low-level read errors into a
    :class:`DatasetFileError` that names the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", AstropyUserWarning)
            yield
    except DatasetFileError:
        raise
    except AstropyUserWarning as exc:
        raise DatasetFileError(f"{path} is truncated ({exc}): copy or write the file again") from None
    except (KeyError, TypeError, ValueError, OSError, IndexError) as exc:
        raise DatasetFileError(
            f"{path} could not be read as a {what} ({type(exc).__name__}: {exc}): the file is corrupt or truncated; "
            "write it again with skyfit"
        ) from None


def _open(path, expected: str):
    path = Path(path)
    kind = file_format(path)
    if kind != expected and not (expected == "skyfit-response" and kind == "skyfit-dataset"):
        hint = {
            "root": "it is a ROOT file: a HAL maptree or response (skyfit.io.read_maptree / read_hal_response)",
            "hdf5": "it is an HDF5 file: a HAL maptree or response (skyfit.io.read_maptree / read_hal_response)",
            "skyfit-response": "it holds a response only (skyfit.io.read_response)",
            "skyfit-dataset": "it is a dataset file (Dataset.read)",
            "fits": "it is a FITS file of another kind (counts maps alone: HealpixMaps.read)",
        }.get(kind, "its content is not FITS")
        raise DatasetFileError(f"{path} is not a {expected} file: {hint}")
    try:
        return fits.open(path)
    except (OSError, ValueError) as exc:
        raise DatasetFileError(f"{path} could not be opened ({exc}): the file is corrupt or truncated") from None


def _primary(fmt: str, name: str, meta: dict) -> fits.PrimaryHDU:
    hdu = fits.PrimaryHDU()
    h = hdu.header
    h["FORMAT"], h["FMTVERS"], h["SKYFITV"] = fmt, FORMAT_VERSION, _version()
    h["NAME"] = name
    h["INSTRUME"] = str(meta.get("instrument", ""))
    if "livetime_s" in meta:
        h["LIVETIME"] = (float(meta["livetime_s"]), "s")
    h["DATE"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return hdu


def _provenance(dataset_meta: dict | None, response, how: str | None) -> dict:
    return {
        "dataset_meta": dataset_meta,
        "response_meta": dict(response.meta),
        "skyfit_version": _version(),
        "written": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "how": how,
    }

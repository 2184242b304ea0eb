"""Dataset and response files: one FITS file that gammapy, healpy and astropy open.

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

import healpy as hp
import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

from ..maps import HealpixMaps, HealpixROI, MapFormatError
from ..response import GaussianMixturePSF, Response, TabulatedPSF

__all__ = ["DatasetFileError", "write_dataset", "read_dataset", "write_response", "read_response", "file_format"]

FORMAT_VERSION = 1
_MAPS = ("COUNTS", "BACKGROUND", "MASK")


class DatasetFileError(MapFormatError):
    """A dataset or response file is missing, of another format, truncated or inconsistent."""


def _version() -> str:
    from .. import __version__

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


# ---- maps in gammapy's HpxNDMap layout --------------------------------------------------------------------


def _disc_pixels(nside: int, nest: bool, ra: float, dec: float, radius_deg: float) -> np.ndarray:
    """The pixels gammapy's ``HpxGeom`` takes for ``DISK(ra,dec,radius)`` (its get_index_list)."""
    theta, phi = np.pi / 2 - np.radians(dec), np.radians(ra)
    vec = np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)])
    return np.sort(hp.query_disc(nside, vec, np.radians(radius_deg), inclusive=False, nest=nest))


def _enclosing_disc(roi: HealpixROI) -> tuple[str, np.ndarray]:
    """``(HPX_REG, pixels)``: the ROI's own disc when it is one, else the smallest disc about its centre
    whose pixels include every ROI pixel."""
    meta = roi.meta
    if all(k in meta for k in ("center_ra", "center_dec", "radius_deg")):
        ra, dec, radius = float(meta["center_ra"]), float(meta["center_dec"]), float(meta["radius_deg"])
        pix = _disc_pixels(roi.nside, roi.nest, ra, dec, radius)
        if np.array_equal(pix, roi.pixels):
            return f"DISK({ra!r},{dec!r},{radius!r})", pix
    ra, dec = roi.center()
    centre = hp.ang2vec(ra, dec, lonlat=True)
    cos_sep = np.clip(roi.unit_vectors() @ centre, -1.0, 1.0)
    radius = float(np.degrees(np.arccos(cos_sep.min()))) * (1 + 1e-9) + 1e-9
    pix = _disc_pixels(roi.nside, roi.nest, ra, dec, radius)
    while not np.all(np.isin(roi.pixels, pix)):  # rounding at the rim: widen by a hair
        radius *= 1 + 1e-7
        pix = _disc_pixels(roi.nside, roi.nest, ra, dec, radius)
    return f"DISK({float(ra)!r},{float(dec)!r},{radius!r})", pix


def _energy_axis(edges, bin_names) -> np.ndarray | None:
    """(n_bins, 2) edges in TeV when the bins are contiguous increasing reconstructed-energy bands, else
    None (a labelled axis): nHit/fHit bins stay labelled even where a response gives them nominal edges."""
    if edges is None or any("nhit" in n.lower() or "fhit" in n.lower() for n in bin_names):
        return None
    e = np.asarray(edges, float)
    if e.ndim != 2 or e.shape[1] != 2 or not np.all(np.isfinite(e)) or np.any(e[:, 1] <= e[:, 0]):
        return None
    if len(e) > 1 and not np.allclose(e[1:, 0], e[:-1, 1], rtol=1e-9):
        return None
    return e


def _map_hdus(name: str, values: np.ndarray, roi: HealpixROI, region: str, pix: np.ndarray, bin_names, edges,
              unit: str) -> list:  # fmt: skip
    full = np.zeros((values.shape[0], pix.size), dtype=values.dtype)
    full[:, np.searchsorted(pix, roi.pixels)] = values
    fmt = "L" if values.dtype == bool else "D"
    cols = [fits.Column("PIX", "K", array=pix)]
    cols += [fits.Column(f"CHANNEL{i + 1}", fmt, array=full[i]) for i in range(values.shape[0])]
    hdu = fits.BinTableHDU.from_columns(cols, name=name)
    h = hdu.header
    h["PIXTYPE"], h["ORDERING"] = "HEALPIX", "NESTED" if roi.nest else "RING"
    h["INDXSCHM"], h["COORDSYS"], h["HPX_CONV"] = "EXPLICIT", "CEL", "GADF"
    h["NSIDE"], h["ORDER"] = roi.nside, int(np.log2(roi.nside))
    h["FIRSTPIX"], h["LASTPIX"] = 0, hp.nside2npix(roi.nside) - 1
    h["HPX_REG"], h["BANDSHDU"], h["BUNIT"] = region, f"{name}_BANDS", unit
    n = values.shape[0]
    if edges is not None:
        bands = fits.BinTableHDU.from_columns(
            [
                fits.Column("CHANNEL", "K", array=np.arange(n)),
                fits.Column("ENERGY", "D", unit="TeV", array=np.sqrt(edges[:, 0] * edges[:, 1])),
                fits.Column("E_MIN", "D", unit="TeV", array=edges[:, 0]),
                fits.Column("E_MAX", "D", unit="TeV", array=edges[:, 1]),
            ],
            name=f"{name}_BANDS",
        )
        bands.header["AXCOLS1"], bands.header["INTERP1"] = "E_MIN,E_MAX", "log"
    else:
        width = max(len(s) for s in bin_names)
        bands = fits.BinTableHDU.from_columns(
            [
                fits.Column("CHANNEL", "K", array=np.arange(n)),
                fits.Column("ANALYSIS_BIN", f"{width}A", array=np.array(bin_names)),
            ],
            name=f"{name}_BANDS",
        )
        bands.header["AXCOLS1"] = "ANALYSIS_BIN"
    return [hdu, bands]


def _read_map_hdu(hdul, name: str, path: Path, roi: HealpixROI) -> np.ndarray:
    hdu = _hdu(hdul, name, path)
    h = hdu.header
    nside, nest = int(h["NSIDE"]), str(h["ORDERING"]).upper().startswith("NEST")
    if nside != roi.nside or nest != roi.nest:
        raise DatasetFileError(
            f"{path}: the {name} map has nside={nside} ({'NESTED' if nest else 'RING'}) but the ROI has "
            f"nside={roi.nside} ({'NESTED' if roi.nest else 'RING'}): the file was edited or assembled from "
            "mismatched maps; write it again with skyfit (Dataset.write)"
        )
    pix = np.asarray(hdu.data["PIX"], dtype=np.int64)
    chans = sorted((c for c in hdu.columns.names if c.startswith("CHANNEL")), key=lambda c: int(c[7:]))
    pos = np.searchsorted(pix, roi.pixels)
    if np.any(pos >= pix.size) or not np.array_equal(pix[np.minimum(pos, pix.size - 1)], roi.pixels):
        raise DatasetFileError(f"{path}: the {name} map does not cover the ROI's pixels (ROI_PIXELS)")
    return np.stack([np.asarray(hdu.data[c])[pos] for c in chans])


# ---- response ----------------------------------------------------------------------------------------------


def _response_hdus(response: Response) -> list:
    n = response.n_bins
    given = response.energy_reco_edges_tev
    edges = np.full((n, 2), np.nan) if given is None else np.asarray(given, float)
    n_comp = response.psf.weights.shape[1]
    width = max(len(s) for s in response.bin_names)
    matrix = fits.ImageHDU(np.asarray(response.counts_matrix, dtype=np.float64), name="RESP_MATRIX")
    matrix.header["BUNIT"] = "cm2 s TeV"
    matrix.header["COMMENT"] = "expected counts per unit dN/dE (cm-2 s-1 TeV-1) at each true-energy node"
    hdus = [
        matrix,
        fits.BinTableHDU.from_columns(
            [fits.Column("ENERGY_TRUE", "D", unit="TeV", array=response.energy_true_tev)], name="RESP_AXES"
        ),
        fits.BinTableHDU.from_columns(
            [fits.Column("DEC", "D", unit="deg", array=np.asarray(response.dec_nodes_deg, float))], name="RESP_DEC"
        ),
        fits.BinTableHDU.from_columns(
            [
                fits.Column("NAME", f"{width}A", array=np.array(response.bin_names)),
                fits.Column("E_MIN", "D", unit="TeV", array=edges[:, 0]),
                fits.Column("E_MAX", "D", unit="TeV", array=edges[:, 1]),
                fits.Column("PSF_WEIGHT", f"{n_comp}D", array=response.psf.weights),
                fits.Column("PSF_SIGMA", f"{n_comp}D", unit="deg", array=response.psf.sigma_deg),
            ],
            name="RESP_BINS",
        ),
    ]
    hdus[-1].header["HASEDGES"] = response.energy_reco_edges_tev is not None
    if response.psf_table is not None:
        t = response.psf_table
        hdus.append(
            fits.BinTableHDU.from_columns(
                [
                    fits.Column("RAD_DEG", "D", unit="deg", array=np.asarray(t.rad_deg, float)),
                    fits.Column(
                        "DENSITY", f"{n}D", unit="deg-2", array=np.asarray(t.density_deg2, float).T.reshape(-1, n)
                    ),
                ],
                name="RESP_PSF_TABLE",
            )
        )
    return hdus


def _read_response_hdus(hdul, path: Path, meta: dict) -> Response:
    bins = _hdu(hdul, "RESP_BINS", path)
    names = tuple(str(s).strip() for s in bins.data["NAME"])
    edges = None
    if bins.header.get("HASEDGES", False):
        edges = np.stack([np.asarray(bins.data["E_MIN"], float), np.asarray(bins.data["E_MAX"], float)], axis=1)
    psf = GaussianMixturePSF(np.asarray(bins.data["PSF_WEIGHT"], float), np.asarray(bins.data["PSF_SIGMA"], float))
    psf_table = None
    if "RESP_PSF_TABLE" in hdul:
        t = hdul["RESP_PSF_TABLE"].data
        psf_table = TabulatedPSF(np.asarray(t["RAD_DEG"], float), np.asarray(t["DENSITY"], float).T.copy())
    matrix = np.asarray(_hdu(hdul, "RESP_MATRIX", path).data, dtype=np.float64)
    try:
        return Response(
            bin_names=names,
            energy_true_tev=np.asarray(_hdu(hdul, "RESP_AXES", path).data["ENERGY_TRUE"], float),
            dec_nodes_deg=np.asarray(_hdu(hdul, "RESP_DEC", path).data["DEC"], float),
            counts_matrix=matrix,
            psf=psf,
            energy_reco_edges_tev=edges,
            psf_table=psf_table,
            meta=meta,
        )
    except ValueError as exc:
        raise DatasetFileError(f"{path}: the response in this file is inconsistent ({exc})") from None


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


def _provenance(dataset_meta: dict | None, response: Response, how: str | None) -> dict:
    return {
        "dataset_meta": dataset_meta,
        "response_meta": dict(response.meta),
        "skyfit_version": _version(),
        "written": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "how": how,
    }


def write_response(response: Response, path, overwrite: bool = False, how: str | None = None) -> Path:
    """Write a :class:`~skyfit.response.Response` alone (see the module docstring for the layout)."""
    path = Path(path)
    hdus = [_primary("skyfit-response", "", response.meta), *_response_hdus(response)]
    hdus.append(_json_hdu(_provenance(None, response, how), "PROVENANCE"))
    fits.HDUList(hdus).writeto(path, overwrite=overwrite)
    return path


def read_response(path) -> Response:
    """Read the response of a response or dataset file."""
    path = Path(path)
    with _reading(path, "skyfit response"), _open(path, "skyfit-response") as hdul:
        prov = _read_json_hdu(_hdu(hdul, "PROVENANCE", path))
        return _read_response_hdus(hdul, path, prov.get("response_meta") or {})


def write_dataset(dataset, path, overwrite: bool = False, how: str | None = None) -> Path:
    """Write a :class:`~skyfit.Dataset` (counts, background, mask, response, provenance) to one FITS file."""
    path = Path(path)
    roi = dataset.roi
    region, pix = _enclosing_disc(roi)
    edges = _energy_axis(dataset.response.energy_reco_edges_tev, dataset.bin_names)
    meta = dict(dataset.meta)
    hdus = [_primary("skyfit-dataset", dataset.name, {**dataset.response.meta, **meta})]
    for name, values, unit in (
        ("COUNTS", dataset.counts.data, dataset.counts.unit),
        ("BACKGROUND", dataset.background.data, dataset.background.unit),
        ("MASK", np.asarray(dataset.mask, bool), ""),
    ):
        hdus += _map_hdus(name, values, roi, region, pix, dataset.bin_names, edges, unit)
    width = max(len(s) for s in dataset.bin_names)
    hdus.append(
        fits.BinTableHDU.from_columns(
            [fits.Column("NAME", f"{width}A", array=np.array(dataset.bin_names))], name="ANALYSIS_BINS"
        )
    )
    roi_hdu = fits.BinTableHDU.from_columns([fits.Column("PIX", "K", array=roi.pixels)], name="ROI_PIXELS")
    roi_hdu.header["NSIDE"], roi_hdu.header["ORDERING"] = roi.nside, "NESTED" if roi.nest else "RING"
    hdus.append(roi_hdu)
    hdus += _response_hdus(dataset.response)
    prov = _provenance(meta, dataset.response, how)
    prov["roi_meta"] = dict(roi.meta)
    prov["dataset_name"] = dataset.name
    hdus.append(_json_hdu(prov, "PROVENANCE"))
    tmp = path.with_name(path.name + ".part")
    if path.exists() and not overwrite:
        raise DatasetFileError(f"{path} exists: pass overwrite=True (or --overwrite) to replace it")
    fits.HDUList(hdus).writeto(tmp, overwrite=True)
    tmp.replace(path)
    return path


def read_dataset(path, name: str | None = None):
    """Read a dataset file written by :func:`write_dataset` (``Dataset.read``)."""
    from ..dataset import Dataset

    path = Path(path)
    with _reading(path, "skyfit dataset"), _open(path, "skyfit-dataset") as hdul:
        prov = _read_json_hdu(_hdu(hdul, "PROVENANCE", path))
        roi_hdu = _hdu(hdul, "ROI_PIXELS", path)
        roi = HealpixROI(
            int(roi_hdu.header["NSIDE"]),
            str(roi_hdu.header["ORDERING"]).upper().startswith("NEST"),
            np.asarray(roi_hdu.data["PIX"], dtype=np.int64),
            meta=prov.get("roi_meta") or {},
        )
        names = tuple(str(s).strip() for s in _hdu(hdul, "ANALYSIS_BINS", path).data["NAME"])
        arrays = {k: _read_map_hdu(hdul, k, path, roi) for k in _MAPS}
        units = {k: str(hdul[k].header.get("BUNIT", "")) for k in _MAPS}
        response = _read_response_hdus(hdul, path, prov.get("response_meta") or {})
    if response.bin_names != names:
        raise DatasetFileError(
            f"{path}: the response's analysis bins {list(response.bin_names)} do not match the maps' {list(names)}"
        )
    counts = HealpixMaps(arrays["COUNTS"].astype(np.float64), roi, names, units["COUNTS"])
    background = HealpixMaps(arrays["BACKGROUND"].astype(np.float64), roi, names, units["BACKGROUND"])
    meta = prov.get("dataset_meta") or {}
    meta = {**meta, "file": str(path)}
    return Dataset(name or prov.get("dataset_name", path.stem), counts, background, response,
                   arrays["MASK"].astype(bool), meta)  # fmt: skip

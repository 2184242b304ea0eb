"""A dataset: counts, background and response of one detector over one ROI, as immutable arrays."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import healpy as hp
import numpy as np
from astropy.io import fits

from .maps import HealpixMaps, HealpixROI, MapFormatError
from .response import Response
from .response._files import DatasetFileError, _hdu, _json_hdu, _open, _primary, _provenance, _read_json_hdu, _reading
from .response._types import _read_response_hdus, _response_hdus

__all__ = ["Dataset", "BadBackgroundError", "BackgroundNaNWarning", "EmptyCountsError", "require_counts"]


class BadBackgroundError(ValueError):
    """The background model is negative, or otherwise unusable."""


class BackgroundNaNWarning(UserWarning):
    """Some background pixels were not finite and have been masked."""


class EmptyCountsError(ValueError):
    """A dataset holds no counts at all: there is nothing to fit (an instrument template, not data)."""


def require_counts(dataset: Dataset, origin: str | None = None) -> Dataset:
    """``dataset`` if it holds counts; else :class:`EmptyCountsError` saying how to give it some.

    ``lhaaso_dataset`` builds a WCDA/KM2A *template* (background and response, zero counts); fitting one
    would report a meaningless TS, so every command refuses it.
    """
    if float(np.sum(dataset.counts.data[dataset.mask])) > 0:
        return dataset
    where = origin or f"dataset {dataset.name!r}"
    raise EmptyCountsError(
        f"{where}: the dataset has no counts (a {dataset.meta.get('instrument', dataset.name)} template holds only "
        "background and response): simulate it (`skyfit simulate`, skyfit.simulate_dataset) or give data "
        "(`type: file` with a dataset file from `skyfit bin`, or `type: maptree` with a response)"
    )


@dataclass(frozen=True, eq=False)
class Dataset:
    """Counts and expected background per analysis bin and pixel, with the detector response.

    Parameters
    ----------
    name : str
        Dataset name (used for its background normalisation, e.g. ``"hawc-bkg"``).
    counts : HealpixMaps
        Observed counts, shape (n_bins, n_pix).
    background : HealpixMaps
        Expected background counts on the same pixels and bins (transits/livetime included).
        Non-finite pixels are masked with a :class:`BackgroundNaNWarning` that counts them;
        negative values raise :class:`BadBackgroundError`.
    response : Response
        Per-bin exposure x dispersion matrix and PSF.
    mask : ndarray of bool, optional
        Pixels and bins that enter the likelihood (default: all with a finite background).
    """

    name: str
    counts: HealpixMaps
    background: HealpixMaps
    response: Response
    mask: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        where = self.meta.get("background_file", f"dataset {self.name!r}")
        self.counts.check_compatible(self.background, what=f"background of dataset {self.name!r}")
        if self.response.n_bins != self.counts.n_bins:
            raise MapFormatError(
                f"dataset {self.name!r}: response has {self.response.n_bins} analysis bins, "
                f"counts have {self.counts.n_bins}"
            )
        counts = self.counts.data
        if not np.all(np.isfinite(counts)) or np.any(counts < 0) or np.any(counts != np.round(counts)):
            raise ValueError(f"dataset {self.name!r}: counts must be finite non-negative integers")
        bkg = self.background.data
        finite = np.isfinite(bkg)
        if np.any(bkg[finite] < 0):
            n_neg = int(np.sum(bkg[finite] < 0))
            raise BadBackgroundError(
                f"{where}: {n_neg} background pixels are negative (min {bkg[finite].min():.3g}); "
                "an expected background must be >= 0: fix or re-derive the background map"
            )
        mask = finite if self.mask is None else (np.asarray(self.mask, bool) & finite)
        n_nan = int(np.sum(~finite))
        if n_nan:
            bins = sorted({self.counts.bin_names[i] for i in np.nonzero(~finite)[0]})
            warnings.warn(
                f"{where}: {n_nan} background pixels are NaN/inf and were masked "
                f"(in bins {bins}); {int(counts[~finite].sum())} counts there are not used",
                BackgroundNaNWarning,
                stacklevel=3,
            )
        if mask.sum() == 0:
            raise ValueError(f"dataset {self.name!r}: no pixel is left in the fit after masking")
        object.__setattr__(self, "mask", mask)

    @property
    def roi(self):
        return self.counts.roi

    @property
    def n_bins(self) -> int:
        return self.counts.n_bins

    @property
    def bin_names(self) -> tuple:
        return self.counts.bin_names

    def background_filled(self) -> np.ndarray:
        """Background with masked pixels set to 0 (their likelihood terms are masked out)."""
        return np.where(self.mask, np.nan_to_num(self.background.data, nan=0.0, posinf=0.0), 0.0)

    def select_bins(self, bins) -> Dataset:
        """A dataset restricted to analysis bins ``bins`` (indices or boolean mask)."""
        idx = np.arange(self.n_bins)[bins]
        names = tuple(self.bin_names[i] for i in idx)
        return Dataset(
            self.name,
            HealpixMaps(self.counts.data[idx], self.roi, names, self.counts.unit),
            HealpixMaps(self.background.data[idx], self.roi, names, self.background.unit),
            self.response.select(idx),
            self.mask[idx],
            dict(self.meta),
        )

    def with_counts(self, counts: np.ndarray) -> Dataset:
        """A copy with other counts (e.g. a simulated realisation), same background and response."""
        return Dataset(
            self.name,
            HealpixMaps(counts, self.roi, self.bin_names),
            self.background,
            self.response,
            self.mask,
            dict(self.meta),
        )

    def write(self, path, overwrite: bool = False, how: str | None = None):
        """Write counts, background, mask, response and provenance to one FITS file (see :mod:`skyfit.io`).

        gammapy's ``Map.read(path, hdu="COUNTS")`` (or ``"BACKGROUND"``) opens the maps; ``how`` says in the
        file's provenance how the dataset was made.
        """
        return write_dataset(self, path, overwrite=overwrite, how=how)

    @classmethod
    def read(cls, path, name: str | None = None) -> Dataset:
        """Read a dataset file (:meth:`write`, ``skyfit bin``); ``name`` overrides the stored name."""
        return read_dataset(path, name=name)

    def info(self) -> str:
        lines = [
            f"Dataset {self.name!r}: {self.n_bins} bins x {self.roi.n_pix} pixels "
            f"(nside {self.roi.nside}, {'NESTED' if self.roi.nest else 'RING'})"
        ]
        for i, n in enumerate(self.bin_names):
            m = self.mask[i]
            lines.append(
                f"  {n:24s} counts {self.counts.data[i][m].sum():10.0f}  "
                f"background {self.background_filled()[i].sum():12.1f}"
            )
        return "\n".join(lines)


# ---- dataset files (layout: skyfit.response._files); maps in gammapy's HpxNDMap layout ------------------

_MAPS = ("COUNTS", "BACKGROUND", "MASK")


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
    center = hp.ang2vec(ra, dec, lonlat=True)
    cos_sep = np.clip(roi.unit_vectors() @ center, -1.0, 1.0)
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

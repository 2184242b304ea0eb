"""A dataset: counts, background and response of one detector over one ROI, as immutable arrays."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .maps import HealpixMaps, MapFormatError
from .response import Response

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
        from .io import write_dataset

        return write_dataset(self, path, overwrite=overwrite, how=how)

    @classmethod
    def read(cls, path, name: str | None = None) -> Dataset:
        """Read a dataset file (:meth:`write`, ``skyfit bin``); ``name`` overrides the stored name."""
        from .io import read_dataset

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

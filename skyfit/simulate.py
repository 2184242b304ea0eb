"""Simulation: Poisson realisations of datasets, LHAASO-like datasets, and event lists.

Every random draw takes an explicit seed (``numpy.random.default_rng(seed)``).
"""

from __future__ import annotations

import healpy as hp
import numpy as np

from .dataset import Dataset
from .likelihood import Likelihood
from .maps import HealpixMaps, HealpixROI
from .models import SkyModel
from .response.lhaaso import background_counts_per_sr, km2a_response, wcda_response

__all__ = ["simulate_dataset", "lhaaso_dataset", "simulate_events", "npred"]


def npred(model: SkyModel, dataset: Dataset) -> np.ndarray:
    """Predicted counts (n_bins, n_pix) of ``model`` in ``dataset``."""
    return Likelihood(model.for_datasets([dataset.name]), [dataset]).npred()[0]


def simulate_dataset(model: SkyModel, dataset: Dataset, seed) -> Dataset:
    """A copy of ``dataset`` whose counts are a Poisson realisation of ``model`` (plus background)."""
    rng = np.random.default_rng(seed)
    mu = np.where(dataset.mask, npred(model, dataset), 0.0)
    return dataset.with_counts(rng.poisson(mu).astype(float))


def lhaaso_dataset(
    instrument: str,
    center,
    radius_deg: float,
    nside: int = 512,
    livetime_days: float = 365.0,
    nest: bool = True,
    name: str | None = None,
) -> Dataset:
    """A LHAASO-like (WCDA or KM2A) dataset over a disc ROI, with the parametric response and
    the residual cosmic-ray background of :mod:`skyfit.response.lhaaso`; counts are zero
    (simulate them with :func:`simulate_dataset`).
    """
    instrument = instrument.upper()
    makers = {"WCDA": wcda_response, "KM2A": km2a_response}
    if instrument not in makers:
        raise ValueError(f"instrument must be 'WCDA' or 'KM2A', got {instrument!r}")
    roi = HealpixROI.from_disc(center, radius_deg, nside, nest)
    _, dec_c = roi.center()
    dec_nodes = np.arange(np.floor(dec_c - radius_deg) - 1.0, dec_c + radius_deg + 1.01, 1.0)
    response = makers[instrument](livetime_days=livetime_days, dec_nodes_deg=dec_nodes)
    _, dec = roi.radec()
    # background per sr depends on declination only (drift scan); tabulate and interpolate
    bkg_nodes = background_counts_per_sr(instrument, dec_nodes, livetime_days)  # (n_dec, n_bins)
    bkg = np.stack([np.interp(dec, dec_nodes, bkg_nodes[:, b]) for b in range(response.n_bins)]) * roi.pixel_area_sr
    names = response.bin_names
    return Dataset(
        name or instrument,
        HealpixMaps(np.zeros_like(bkg), roi, names),
        HealpixMaps(bkg, roi, names),
        response,
        meta={"instrument": instrument, "livetime_days": livetime_days},
    )


def simulate_events(model: SkyModel, dataset: Dataset, seed) -> dict:
    """Event list drawn from ``model`` in ``dataset``: RA, DEC (deg) and analysis-bin index.

    Counts are drawn per pixel (Poisson of the predicted counts) and each event is placed uniformly
    at random inside its HEALPix pixel, so binning the events back gives the same counts map.
    """
    rng = np.random.default_rng(seed)
    mu = np.where(dataset.mask, npred(model, dataset), 0.0)
    counts = rng.poisson(mu)
    b_idx, p_idx = np.nonzero(counts)
    reps = counts[b_idx, p_idx]
    bins = np.repeat(b_idx, reps)
    pix = dataset.roi.pixels[np.repeat(p_idx, reps)]
    nside, nest = dataset.roi.nside, dataset.roi.nest
    ra, dec = hp.pix2ang(nside, pix, nest=nest, lonlat=True)
    ra, dec = np.array(ra), np.array(dec)
    todo = np.ones(pix.size, bool)
    size = np.degrees(hp.nside2resol(nside))
    while todo.any():  # rejection sampling inside each pixel
        n = int(todo.sum())
        z0 = np.sin(np.radians(dec[todo])) + rng.uniform(-1, 1, n) * np.radians(size) * np.cos(np.radians(dec[todo]))
        r_ra = ra[todo] + rng.uniform(-1, 1, n) * size / np.maximum(np.cos(np.radians(dec[todo])), 1e-3)
        r_dec = np.degrees(np.arcsin(np.clip(z0, -1, 1)))
        ok = hp.ang2pix(nside, r_ra, r_dec, nest=nest, lonlat=True) == pix[todo]
        idx = np.nonzero(todo)[0][ok]
        ra[idx], dec[idx] = r_ra[ok] % 360.0, r_dec[ok]
        todo[idx] = False
        if n == todo.sum():
            ra_c, dec_c = hp.pix2ang(nside, pix[todo], nest=nest, lonlat=True)
            ra[todo], dec[todo] = ra_c, dec_c  # pathological pixel: keep the centre
            break
    return {"RA": ra, "DEC": dec, "BIN": bins, "bin_names": dataset.bin_names}

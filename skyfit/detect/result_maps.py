"""Result maps of a dataset or a fit: counts, background, excess, residuals, significance and TS maps
(names and meanings: :mod:`skyfit.io.skymaps`, which writes them as FITS)."""

from __future__ import annotations

import numpy as np

__all__ = ["fit_maps", "data_maps"]


def _ts_map(dataset, baseline):
    """TS of a point source over ``baseline`` (pixels where the baseline is 0 are left out of the test:
    no background and no model there)."""
    from dataclasses import replace

    from .tsmap import ts_map

    positive = np.asarray(baseline) > 0
    ds = replace(dataset, mask=dataset.mask & positive) if not positive[dataset.mask].all() else dataset
    return np.asarray(ts_map(ds, np.where(positive, baseline, 1.0)).ts)


def _disc_significance(counts, expected, roi, radius_deg):
    from ..plotting import residual_significance

    return residual_significance(counts, expected, roi, radius_deg)


def data_maps(dataset, radius_deg: float = 0.2, ts: bool = True) -> dict:
    """Maps of a dataset against its background: ``COUNTS``, ``BACKGROUND``, ``EXCESS``, ``SIGNIFICANCE``
    and (``ts``) ``TS``, ``SQRT_TS`` (see the module)."""
    m = dataset.mask
    counts = np.where(m, dataset.counts.data, 0.0)
    bkg = dataset.background_filled()
    out = {"COUNTS": counts, "BACKGROUND": bkg, "EXCESS": counts - bkg,
           "SIGNIFICANCE": _disc_significance(counts, bkg, dataset.roi, radius_deg)}  # fmt: skip
    if ts:
        t = _ts_map(dataset, bkg)
        out["TS"], out["SQRT_TS"] = t, np.sqrt(np.clip(t, 0, None))
    return out


def fit_maps(dataset, npred, npred_background, radius_deg: float = 0.2, ts: bool = True) -> dict:
    """Maps of a fit on ``dataset``: ``COUNTS``, ``NPRED`` (the best-fit model), ``BACKGROUND``
    (``npred_background``: the model without its sources), ``EXCESS``, ``RESIDUAL``,
    ``RESIDUAL_SIGNIFICANCE`` and (``ts``) ``TS``, ``SQRT_TS``, ``RESIDUAL_TS`` (see the module)."""
    m = dataset.mask
    counts = np.where(m, dataset.counts.data, 0.0)
    mu = np.where(m, npred, 0.0)
    bkg = np.where(m, npred_background, 0.0)
    out = {"COUNTS": counts, "NPRED": mu, "BACKGROUND": bkg, "EXCESS": counts - bkg, "RESIDUAL": counts - mu,
           "RESIDUAL_SIGNIFICANCE": _disc_significance(counts, mu, dataset.roi, radius_deg)}  # fmt: skip
    if ts:
        t = _ts_map(dataset, bkg)
        out["TS"], out["SQRT_TS"] = t, np.sqrt(np.clip(t, 0, None))
        out["RESIDUAL_TS"] = _ts_map(dataset, mu)
    return out

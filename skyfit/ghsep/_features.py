"""Event features for gamma/hadron separation, per instrument.

Each feature is a named transform of event-table columns (the columns that
:func:`skyfit.showers.simulate_shower_events` writes, or those of HAWC's pass-4 event lists). A model
file stores the feature names it was trained on, so a table or model from another feature set is
refused instead of scored wrongly.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FEATURES", "GHSepError", "feature_matrix", "hit_cloud"]


class GHSepError(ValueError):
    """Bad input to the gamma/hadron separation: a missing column, a bad model file, an unknown instrument."""


def _log10p(x, floor=1e-3):
    return np.log10(np.maximum(np.asarray(x, float), floor))


# name -> (columns needed, transform); transforms keep every feature O(1)
_DEFS = {
    "log10_nhit": (("NHIT",), lambda t: _log10p(t["NHIT"], 1.0)),
    "log10_compactness": (("COMPACTNESS",), lambda t: _log10p(t["COMPACTNESS"])),
    "pincness": (("PINCNESS",), lambda t: np.clip(np.asarray(t["PINCNESS"], float), 0, 50) / 10.0),
    "log10_dispersion": (("DISPERSION",), lambda t: _log10p(np.asarray(t["DISPERSION"], float) + 1.0)),
    "log10_cxpe40": (("CXPE40",), lambda t: _log10p(np.asarray(t["CXPE40"], float) + 1.0)),
    "log10_sum_signal": (("SUM_SIGNAL",), lambda t: _log10p(np.asarray(t["SUM_SIGNAL"], float) + 1.0)),
    "cos_zenith": (("REC_ZENITH",), lambda t: np.cos(np.radians(np.nan_to_num(np.asarray(t["REC_ZENITH"], float))))),
    "core_r_100m": (("REC_CORE_X", "REC_CORE_Y"), lambda t: np.hypot(t["REC_CORE_X"], t["REC_CORE_Y"]) / 100.0),
    "log10_n_e": (("N_E",), lambda t: _log10p(np.asarray(t["N_E"], float) + 1.0)),
    "log10_n_mu": (("N_MU",), lambda t: _log10p(np.asarray(t["N_MU"], float) + 0.1)),
    "log10_mu_e_ratio": (("MU_E_RATIO",), lambda t: _log10p(t["MU_E_RATIO"], 1e-6)),
    # HAWC pass-4 event lists
    "hawc_log10_nhit": (("nHit",), lambda t: _log10p(t["nHit"], 1.0)),
    "hawc_sp10_frac": (("nHitSP10", "nHit"), lambda t: np.asarray(t["nHitSP10"], float) / np.maximum(t["nHit"], 1)),
    "hawc_sp20_frac": (("nHitSP20", "nHit"), lambda t: np.asarray(t["nHitSP20"], float) / np.maximum(t["nHit"], 1)),
    "hawc_log10_cxpe40": (("CxPE40",), lambda t: _log10p(np.asarray(t["CxPE40"], float) + 1.0)),
    "hawc_compactness": (
        ("nHit", "CxPE40"),
        lambda t: _log10p(np.asarray(t["nHit"], float) / np.maximum(t["CxPE40"], 1.0)),
    ),
    "hawc_pinc": (("PINC",), lambda t: np.asarray(t["PINC"], float)),
    "hawc_ldf_chi2": (("LDFChi2",), lambda t: np.clip(np.asarray(t["LDFChi2"], float), 0, 20) / 5.0),
    "hawc_log_npe": (("logNPE",), lambda t: np.asarray(t["logNPE"], float)),
    "hawc_cos_zenith": (("zenithAngle",), lambda t: np.cos(np.asarray(t["zenithAngle"], float))),
    "hawc_core_fidu": (("coreFiduScale",), lambda t: np.asarray(t["coreFiduScale"], float) / 100.0),
    "hawc_log10_energy": (("ENERGY",), lambda t: _log10p(t["ENERGY"])),
}

FEATURES = {
    "WCDA": ("log10_nhit", "log10_compactness", "pincness", "log10_dispersion", "log10_cxpe40",
             "log10_sum_signal", "cos_zenith", "core_r_100m"),
    "KM2A": ("log10_n_e", "log10_n_mu", "log10_mu_e_ratio", "log10_nhit", "log10_dispersion", "cos_zenith",
             "core_r_100m"),
    "HAWC": ("hawc_log10_nhit", "hawc_sp10_frac", "hawc_sp20_frac", "hawc_log10_cxpe40", "hawc_compactness",
             "hawc_pinc", "hawc_ldf_chi2", "hawc_log_npe", "hawc_cos_zenith", "hawc_core_fidu", "hawc_log10_energy"),
}  # fmt: skip


def feature_matrix(table, names, where: str = "event table") -> np.ndarray:
    """(n_events, n_features) float64 matrix of the named features of ``table`` (dict of columns or an
    astropy Table). A missing column raises :class:`GHSepError` naming it and ``where``."""
    cols = set(table.keys() if hasattr(table, "keys") else table.colnames)
    out = []
    for name in names:
        if name not in _DEFS:
            raise GHSepError(f"unknown feature {name!r}; known: {sorted(_DEFS)}")
        need, fn = _DEFS[name]
        missing = [c for c in need if c not in cols]
        if missing:
            raise GHSepError(
                f"{where}: feature {name!r} needs column(s) {missing}, which it lacks (it has {sorted(cols)[:20]}"
                f"{'...' if len(cols) > 20 else ''}); use a table from skyfit.showers.simulate_shower_events or a "
                "model trained on this table's features"
            )
        out.append(np.asarray(fn(table), float))
    x = np.stack(out, axis=1) if out else np.zeros((0, 0))
    bad = ~np.isfinite(x)
    if bad.any():
        # a failed reconstruction (no direction, no core) has NaN columns: such events fail every cut
        x[bad] = 0.0
    return x


def hit_cloud(table: dict, hits: dict, layout, k: int = 48) -> np.ndarray:
    """Per event, its ``k`` largest hits as (distance to the reconstructed core / 100 m, log10 signal,
    signal / largest signal); events with fewer hits are padded with zeros and a mask.

    ``hits`` is the hit record of :func:`skyfit.showers.simulate_shower_events` (``hits_out``, concatenated),
    with EVENT_ID, DETECTOR, SIGNAL and MUON_LAYOUT; only the main layout's hits (MUON_LAYOUT 0) are used.
    Returns (n_events, k, 4) float32: the three features and a 0/1 mask.
    """
    for c in ("EVENT_ID", "DETECTOR", "SIGNAL"):
        if c not in hits:
            raise GHSepError(f"hit record lacks column {c!r}; simulate with hits_out=[] to record hits")
    sel = np.asarray(hits.get("MUON_LAYOUT", np.zeros(len(hits["SIGNAL"]))), int) == 0
    eid, det, q = (np.asarray(hits[c])[sel] for c in ("EVENT_ID", "DETECTOR", "SIGNAL"))
    row_of = np.full(int(max(np.max(table["EVENT_ID"]), np.max(eid, initial=0))) + 1, -1, np.int64)
    row_of[np.asarray(table["EVENT_ID"], np.int64)] = np.arange(len(table["EVENT_ID"]))
    row = row_of[eid]
    ok = row >= 0
    row, det, q = row[ok], det[ok], q[ok]
    n = len(table["EVENT_ID"])
    # order by event, then by decreasing signal; rank within the event
    order = np.lexsort((-q, row))
    row, det, q = row[order], det[order], q[order]
    first = np.searchsorted(row, np.arange(n))
    rank = np.arange(row.size) - first[row]
    keep = rank < k
    row, det, q, rank = row[keep], det[keep], q[keep], rank[keep]
    cx = np.nan_to_num(np.asarray(table["REC_CORE_X"], float))[row]
    cy = np.nan_to_num(np.asarray(table["REC_CORE_Y"], float))[row]
    qmax = np.zeros(n)
    np.maximum.at(qmax, row, q)
    out = np.zeros((n, k, 4), np.float32)
    out[row, rank, 0] = np.hypot(layout.x[det] - cx, layout.y[det] - cy) / 100.0
    out[row, rank, 1] = np.log10(np.maximum(q, 1e-3))
    out[row, rank, 2] = q / np.maximum(qmax[row], 1e-9)
    out[row, rank, 3] = 1.0
    return out

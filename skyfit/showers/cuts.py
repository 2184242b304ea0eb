"""Cuts on one discriminant per analysis bin: the threshold that keeps a gamma efficiency, the traditional
gamma/hadron cut, its table and ROC curves. :mod:`skyfit.ghsep` sets its cuts with the same
:func:`threshold_at_efficiency`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = [
    "threshold_at_efficiency",
    "thresholds_per_bin",
    "traditional_cut",
    "quality_cut",
    "cut_table",
    "plot_cut_roc",
]


def threshold_at_efficiency(score, w, efficiency: float) -> float:
    """The score threshold above which a fraction ``efficiency`` of the events lies.

    With weights ``w``: the highest score whose weighted fraction of events at or above it reaches
    ``efficiency`` (one of the scores). ``w=None``: unweighted, the ``1 - efficiency`` quantile with
    linear interpolation between the scores (numpy's default, in the scores' precision)."""
    if np.size(score) == 0:
        raise ValueError("no events to set a threshold on")
    if w is None:
        return np.quantile(np.asarray(score), 1 - efficiency)
    score = np.asarray(score, float)
    w = np.asarray(w, float)
    o = np.argsort(score)[::-1]
    cum = np.cumsum(w[o]) / w.sum()
    i = int(np.searchsorted(cum, efficiency))
    return float(score[o][min(i, score.size - 1)])


def thresholds_per_bin(score, bins, efficiency: float, w=None, min_events: int = 20) -> dict:
    """``{bin: threshold}`` keeping ``efficiency`` of the events in each analysis bin (bins >= 0 with at
    least ``min_events`` events), by :func:`threshold_at_efficiency` (weighted when ``w`` is given)."""
    score, bins = np.asarray(score), np.asarray(bins)
    out = {}
    for b in np.unique(bins):
        sel = bins == b
        if b < 0 or sel.sum() < min_events:
            continue
        out[int(b)] = threshold_at_efficiency(score[sel], None if w is None else np.asarray(w)[sel], efficiency)
    return out


def traditional_cut(
    gammas: dict, background: dict, variable: str = "COMPACTNESS", efficiency: float = 0.5, higher_is_gamma=True
) -> dict:
    """Per-bin threshold on one discriminant keeping ``efficiency`` of the gammas; background survival.

    Returns ``{bin: (threshold, gamma_efficiency, background_survival, n_gamma, n_background)}``.
    """
    if variable not in gammas:
        raise KeyError(f"no column {variable!r}; available: {sorted(gammas)}")
    sign = 1.0 if higher_is_gamma else -1.0
    out = {}
    for b, thr in thresholds_per_bin(sign * gammas[variable], gammas["BIN"], efficiency).items():
        g = sign * gammas[variable][gammas["BIN"] == b]
        h = sign * background[variable][background["BIN"] == b]
        if h.size == 0:
            continue
        out[b] = (float(sign * thr), float(np.mean(g >= thr)), float(np.mean(h >= thr)), int(g.size), int(h.size))
    return out


def quality_cut(table: dict) -> dict:
    """The events whose reconstructed core is inside the array (``CORE_IN_ARRAY``)."""
    keep = np.asarray(table["CORE_IN_ARRAY"]).astype(bool)
    return {k: v[keep] for k, v in table.items()}


def cut_table(gammas: dict, background: dict, variable: str = "COMPACTNESS", efficiency: float = 0.5,
              higher_is_gamma: bool = True):  # fmt: skip
    """The traditional cut per analysis bin (:func:`traditional_cut`) as an astropy Table, with each bin's
    median true gamma energy (TeV) and 68 % containment of the gammas' angular error (deg)."""
    from astropy.table import Table

    cuts = traditional_cut(gammas, background, variable, efficiency, higher_is_gamma=higher_is_gamma)
    rows = []
    for k, (thr, eff, surv, ng, nb) in cuts.items():
        sel = gammas["BIN"] == k
        rows.append((k, ng, nb, float(np.median(gammas["TRUE_ENERGY"][sel])), float(np.nanpercentile(
            gammas["ANGULAR_ERROR"][sel], 68)), thr, eff, surv, 1 - surv))  # fmt: skip
    return Table(rows=rows, names=("bin", "n_gamma", "n_background", "median_true_energy_tev", "psf68_deg",
                                   "threshold", "gamma_efficiency", "background_survival", "rejection"))  # fmt: skip


def plot_cut_roc(gammas: dict, background: dict, bins, variable: str, path, higher_is_gamma: bool = True) -> Path:
    """ROC curves (gamma efficiency, background survival) of a cut on ``variable`` in each of ``bins``
    (unweighted; thresholds at up to 200 of the gammas' values; a survival of zero drawn at half an
    event's share), written to ``path``."""
    from ..plotting import use_file_backend

    use_file_backend()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    sign = 1.0 if higher_is_gamma else -1.0
    for k in bins:
        g = np.sort(sign * gammas[variable][gammas["BIN"] == k])
        h = sign * background[variable][background["BIN"] == k]
        thr = g[:: max(1, g.size // 200)]
        # no background event left: drawn at half an event's share (the log axis has no zero)
        surv = np.maximum([np.mean(h >= x) for x in thr], 0.5 / max(h.size, 1))
        ax.plot([np.mean(g >= x) for x in thr], surv, label=f"bin {k}")
    ax.set_xlabel("gamma efficiency")
    ax.set_ylabel("background survival")
    ax.set_yscale("log")
    ax.set_title(f"ROC of the {variable} cut")
    ax.legend(fontsize=8)
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

"""Cuts on a gamma-ness score: efficiency tables, the equal-efficiency comparison with the traditional
cut, and per-bin cut optimisation for a source of given flux.

Efficiencies are weighted: gammas by the source spectrum, background by the cosmic-ray spectrum, each
sample divided by the density it was drawn from. Errors are binomial with weights,
sqrt(sum w^2 (pass - eff)^2) / sum w.
"""

from __future__ import annotations

import numpy as np

from ..showers.cuts import threshold_at_efficiency as _threshold_at_efficiency
from ._features import GHSepError

__all__ = ["weighted_efficiency", "effective_count", "weighted_auc", "threshold_at_efficiency", "efficiency_table",
           "compare_at_equal_efficiency", "optimise_cuts", "roc_curve"]  # fmt: skip


def weighted_efficiency(passed, w) -> tuple[float, float]:
    """(efficiency, error) of a weighted pass/fail sample."""
    passed = np.asarray(passed, bool)
    w = np.asarray(w, float)
    tot = w.sum()
    if not tot > 0:
        return float("nan"), float("nan")
    eff = float(np.sum(w * passed) / tot)
    err = float(np.sqrt(np.sum(w**2 * (passed - eff) ** 2)) / tot)
    if eff == 0.0:  # no event passed: the error of one event of the mean weight (an upper scale)
        err = float(np.mean(w) / tot)
    return eff, err


def effective_count(w) -> float:
    """Kish's effective number of events of a weighted sample, (sum w)^2 / sum w^2: how many unweighted
    events the sample is worth. A few heavy events among many light ones make it small, and the
    efficiency they measure uncertain whatever the raw count."""
    w = np.asarray(w, float)
    s2 = float(np.sum(w**2))
    return float(np.sum(w) ** 2 / s2) if s2 > 0 else 0.0


def weighted_auc(score_g, w_g, score_b, w_b) -> float:
    """Area under the ROC curve with weights: the weighted probability that a gamma scores above a
    background event, ties counted one half (0.5: the score carries no information)."""
    score_g, w_g = np.asarray(score_g, float), np.asarray(w_g, float)
    score_b, w_b = np.asarray(score_b, float), np.asarray(w_b, float)
    if not (w_g.sum() > 0 and w_b.sum() > 0):
        return float("nan")
    o = np.argsort(score_b)
    sb, cw = score_b[o], np.concatenate([[0.0], np.cumsum(w_b[o])])
    below = cw[np.searchsorted(sb, score_g, side="left")]
    tied = cw[np.searchsorted(sb, score_g, side="right")] - below
    return float(np.sum(w_g * (below + 0.5 * tied)) / (w_g.sum() * w_b.sum()))


def threshold_at_efficiency(score, w, efficiency: float) -> float:
    """The score threshold above which a weighted fraction ``efficiency`` of the events lies:
    :func:`skyfit.showers.threshold_at_efficiency` (the one rule for both packages), with a
    :class:`GHSepError` for an empty sample."""
    if np.size(score) == 0:
        raise GHSepError("no events to set a threshold on")
    return _threshold_at_efficiency(score, w, efficiency)


def roc_curve(score_g, w_g, score_b, w_b, n: int = 200):
    """(gamma efficiency, background survival) at ``n`` thresholds spanning the gamma scores."""
    thr = np.unique(np.quantile(score_g, np.linspace(0, 1, n)))
    eg = np.array([np.sum(w_g * (score_g >= t)) for t in thr]) / np.sum(w_g)
    eb = np.array([np.sum(w_b * (score_b >= t)) for t in thr]) / np.sum(w_b)
    return eg, eb


def efficiency_table(score_g, w_g, bin_g, score_b, w_b, bin_b, thresholds: dict) -> list[dict]:
    """Per bin: the threshold, gamma efficiency and background survival with errors and event counts."""
    rows = []
    for b, thr in sorted(thresholds.items()):
        sg, sb = bin_g == b, bin_b == b
        eg, deg = weighted_efficiency(score_g[sg] >= thr, w_g[sg])
        eb, deb = weighted_efficiency(score_b[sb] >= thr, w_b[sb])
        rows.append({"bin": int(b), "threshold": float(thr), "gamma_eff": eg, "gamma_eff_err": deg, "bkg_eff": eb,
                     "bkg_eff_err": deb, "n_gamma": int(sg.sum()), "n_bkg": int(sb.sum()),
                     "n_bkg_pass": int(np.sum(score_b[sb] >= thr))})  # fmt: skip
    return rows


def compare_at_equal_efficiency(trad_g, trad_b, ml_g, ml_b, w_g, w_b, bin_g, bin_b, trad_efficiency=0.5,
                                min_events: int = 50) -> list[dict]:  # fmt: skip
    """Per bin: the traditional cut (threshold on ``trad_*`` keeping ``trad_efficiency`` of the gammas),
    the ML cut at the same gamma efficiency, and the background each leaves; ``reduction`` is the ratio
    traditional / ML background survival with its error (None where no ML background event passes:
    then ``reduction_lo`` is the bound from the 90 % upper limit, 2.3 events of the mean weight)."""
    rows = []
    for b in np.unique(bin_g):
        if b < 0:
            continue
        sg, sb = bin_g == b, bin_b == b
        if sg.sum() < min_events or sb.sum() < min_events:
            continue
        t_thr = threshold_at_efficiency(trad_g[sg], w_g[sg], trad_efficiency)
        eff_t, _ = weighted_efficiency(trad_g[sg] >= t_thr, w_g[sg])
        m_thr = threshold_at_efficiency(ml_g[sg], w_g[sg], eff_t)
        eff_m, _ = weighted_efficiency(ml_g[sg] >= m_thr, w_g[sg])
        bt, dbt = weighted_efficiency(trad_b[sb] >= t_thr, w_b[sb])
        bm, dbm = weighted_efficiency(ml_b[sb] >= m_thr, w_b[sb])
        n_t, n_m = int(np.sum(trad_b[sb] >= t_thr)), int(np.sum(ml_b[sb] >= m_thr))
        row = {"bin": int(b), "gamma_eff_trad": eff_t, "gamma_eff_ml": eff_m, "bkg_eff_trad": bt,
               "bkg_eff_trad_err": dbt, "bkg_eff_ml": bm, "bkg_eff_ml_err": dbm, "n_bkg": int(sb.sum()),
               "n_bkg_pass_trad": n_t, "n_bkg_pass_ml": n_m, "threshold_trad": t_thr,
               "threshold_ml": m_thr, "n_eff_bkg_pass_trad": effective_count(w_b[sb][trad_b[sb] >= t_thr]),
               "n_eff_bkg_pass_ml": effective_count(w_b[sb][ml_b[sb] >= m_thr])}  # fmt: skip
        # ties in the scores can make the efficiencies differ: then the comparison is not at equal efficiency
        row["efficiency_matched"] = bool(abs(eff_m - eff_t) < 0.02)
        if n_t == 0:  # nothing passes the traditional cut: no ratio to quote
            row["reduction"] = None
        elif n_m > 0 and bm > 0:
            row["reduction"] = bt / bm
            row["reduction_err"] = row["reduction"] * float(np.hypot(dbt / max(bt, 1e-300), dbm / bm))
        else:
            row["reduction"] = None
            row["reduction_lo"] = bt / max(2.3 * dbm, 1e-300)  # 90 % upper limit on the ML survival
        rows.append(row)
    return rows


def optimise_cuts(score_g, w_g, bin_g, score_b, w_b, bin_b, min_gamma_eff: float = 0.2,
                  min_bkg_events: float = 20.0, n_thresholds: int = 17) -> dict:  # fmt: skip
    """Per bin, the threshold that maximises the quality factor Q = eps_gamma / sqrt(eps_bkg), the
    significance gain of a faint (background-dominated) source, with the gamma efficiency at least
    ``min_gamma_eff`` and the surviving simulated background worth at least ``min_bkg_events`` events
    (Kish's effective number: a few heavy events among many light ones count as few), so that Q is not
    tuned on a few simulated events. The thresholds tried keep ``n_thresholds`` gamma efficiencies
    evenly spaced from ``min_gamma_eff`` to 1 (a coarse grid: a fine one would tune on the fluctuations
    of the few weighted background events that pass). Returns {bin: threshold}."""
    cuts = {}
    for b in np.unique(bin_g):
        if b < 0:
            continue
        sg, sb = bin_g == b, bin_b == b
        if sg.sum() < 20 or sb.sum() < min_bkg_events:
            continue
        g, wg, h, wh = score_g[sg], w_g[sg], score_b[sb], w_b[sb]
        best, best_q = None, -np.inf
        for t in np.unique([threshold_at_efficiency(g, wg, e) for e in np.linspace(min_gamma_eff, 1.0, n_thresholds)]):
            pg = g >= t
            eg = np.sum(wg * pg) / np.sum(wg)
            ph = h >= t
            if eg < min_gamma_eff or effective_count(wh[ph]) < min_bkg_events:
                continue
            q = eg / np.sqrt(np.sum(wh * ph) / np.sum(wh))
            if q > best_q:
                best, best_q = float(t), q
        if best is not None:
            cuts[int(b)] = best
    return cuts

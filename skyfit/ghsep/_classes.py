"""Event classes for the joint likelihood: gammaness classes, PSF classes and both (issue #29).

The field fits event classes jointly (Fermi-LAT's PSF event types, CTA's event types, HAWC's fHit bins):
per analysis bin, the events are split into classes, and each class is its own analysis bin with its own
exposure, PSF and background. A hard cut is the special case of one class kept.

- **Gammaness classes**: per bin, class edges at fixed gamma-efficiency quantiles of the classifier's
  score (:data:`GAMMANESS_EFFICIENCIES`: the most gamma-like 20 % of the gammas, the next 20 %, the next
  30 %, the rest; finer where the signal lives, since a faint source's significance comes from the
  cleanest events), set on the tuning sample.
- **PSF classes**: a network trained on gammas only estimates each event's angular error from its
  reconstructed observables (:func:`train_psf_estimator`); per bin, classes by the quartiles of that
  estimate among the tuning gammas (:data:`PSF_QUANTILES`).
- Combined: each gammaness class split at the quartiles of the estimate among its own tuning gammas.

Per class and bin, measured on the test sample against the traditional cut of the same bin:
``r_gamma = eff_gamma(class) / eff_gamma(traditional)``, ``r_bkg`` likewise for the background, and
``psf_scale`` = the 68 % containment radius of the class's gammas over that of the gammas passing the
traditional cut. They scale the LHAASO-like instruments (which describe the data after the traditional
cut): exposure x r_gamma, background x r_bkg, PSF widths x psf_scale. A class with no background event
in a bin takes the 90 % upper limit (2.3 events of the bin's mean background weight), flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._cuts import effective_count, threshold_at_efficiency
from ._features import GHSepError

__all__ = ["GAMMANESS_EFFICIENCIES", "PSF_QUANTILES", "ClassScheme", "class_edges", "assign_classes",
           "check_scores", "class_ratios", "class_schemes", "weighted_quantile"]  # fmt: skip

# gammaness class edges: cumulative gamma efficiency from the most gamma-like end (K = 4 classes)
GAMMANESS_EFFICIENCIES = (0.2, 0.4, 0.7, 1.0)
# PSF class edges: quantiles of the estimated angular error among the gammas (quartiles, best first)
PSF_QUANTILES = (0.25, 0.5, 0.75, 1.0)


def check_scores(score, where: str = "scores") -> np.ndarray:
    """``score`` as float64, refused (:class:`GHSepError`) if any is NaN or outside [0, 1]."""
    s = np.asarray(score, float)
    bad = ~np.isfinite(s) | (s < 0.0) | (s > 1.0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise GHSepError(
            f"{where}: {int(bad.sum())} gammaness scores are NaN or outside [0, 1] (the first, event "
            f"{i}: {s[i]!r}); class edges are set on a classifier's scores in [0, 1] (GHModel.score)"
        )
    return s


def weighted_quantile(x, w, q) -> np.ndarray:
    """Weighted quantiles ``q`` of ``x`` (the smallest x whose cumulative weight reaches q)."""
    x, w = np.asarray(x, float), np.asarray(w, float)
    if x.size == 0:
        raise GHSepError("no events to take a quantile of")
    o = np.argsort(x)
    c = np.cumsum(w[o])
    c = c / c[-1]
    idx = np.minimum(np.searchsorted(c, np.atleast_1d(q), side="left"), x.size - 1)
    return x[o][idx]


def class_edges(score, w, bins, efficiencies=GAMMANESS_EFFICIENCIES, higher_is_gamma: bool = True) -> dict:
    """Per analysis bin, the thresholds that cut the (tuning) gammas' ``score`` at cumulative efficiencies
    ``efficiencies`` from the gamma-like end: ``{bin: array of K thresholds}``, decreasing for
    ``higher_is_gamma`` (class c holds ``t[c] <= score < t[c-1]``); an efficiency of 1 keeps everything
    (threshold -inf). With ``higher_is_gamma=False`` (an angular-error estimate: small is good) the
    thresholds increase and class c holds ``t[c-1] < score <= t[c]``."""
    eff = np.asarray(efficiencies, float)
    if eff.ndim != 1 or eff.size == 0 or np.any(np.diff(eff) <= 0) or eff[0] <= 0 or eff[-1] > 1:
        raise GHSepError(f"class efficiencies must increase within (0, 1], got {list(efficiencies)}")
    score, w, bins = np.asarray(score, float), np.asarray(w, float), np.asarray(bins)
    out = {}
    for b in np.unique(bins[bins >= 0]):
        m = bins == b
        if higher_is_gamma:
            t = [threshold_at_efficiency(score[m], w[m], e) if e < 1 else -np.inf for e in eff]
        else:
            t = [float(weighted_quantile(score[m], w[m], e)[0]) if e < 1 else np.inf for e in eff]
        out[int(b)] = np.asarray(t, float)
    return out


def assign_classes(score, bins, edges: dict, higher_is_gamma: bool = True) -> np.ndarray:
    """Class index of each event under :func:`class_edges`' ``edges`` (-1: no class, i.e. below the last
    edge or in a bin without edges)."""
    score, bins = np.asarray(score, float), np.asarray(bins)
    out = np.full(score.size, -1, int)
    for b, t in edges.items():
        m = bins == b
        s = score[m]
        if higher_is_gamma:
            c = np.searchsorted(-np.asarray(t), -s, side="left")  # first t[c] <= s: a threshold passes
        else:
            c = np.searchsorted(np.asarray(t), s, side="left")  # first t[c] >= s
        out[m] = np.where(c < len(t), c, -1)
    return out


@dataclass
class ClassScheme:
    """Per instrument, per class and analysis bin: ``r_gamma``, ``r_bkg``, ``psf_scale`` (arrays of shape
    ``(n_classes, n_bins)``) with the effective counts behind them and the classes' names."""

    r_gamma: np.ndarray
    r_bkg: np.ndarray
    psf_scale: np.ndarray
    names: tuple
    n_eff_bkg: np.ndarray | None = None
    bkg_bound: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @classmethod
    def traditional(cls, n_bins: int) -> ClassScheme:
        """The traditional cut: one class, the instrument as it is."""
        one = np.ones((1, n_bins))
        return cls(one, one.copy(), one.copy(), ("traditional",))

    @property
    def n_classes(self) -> int:
        return self.r_gamma.shape[0]


def _r68(err, w) -> float:
    return float(weighted_quantile(err, w, 0.68)[0]) if np.size(err) else np.nan


def class_ratios(cls_g, cls_b, bins_g, bins_b, w_g, w_b, trad_g, trad_b, n_bins: int, names, err_g=None,
                 bins_scored=None, where: str = "test sample", empty: str = "raise") -> ClassScheme:  # fmt: skip
    """:class:`ClassScheme` from each (test) event's class (``cls_g``, ``cls_b``; -1 none), analysis bin,
    weight and whether it passes the traditional cut (``trad_g``, ``trad_b``); ``err_g``: the gammas'
    true angular errors (for ``psf_scale``; 1 without). Bins outside ``bins_scored`` (default: all with
    classes) keep the traditional cut, as do scored bins where no test gamma or background event passes
    it (listed in ``meta["traditional_fallback_bins"]``). A class with no gamma in a bin raises :class:`GHSepError` (its
    edges leave it empty), or with ``empty="zero"`` (a test sample, its edges checked on the tuning one)
    gets r_gamma 0: it then holds background only."""
    k = len(names)
    rg, rb, ps = np.ones((k, n_bins)), np.ones((k, n_bins)), np.ones((k, n_bins))
    neff, bound = np.zeros((k, n_bins)), np.zeros((k, n_bins), bool)
    fallback = []
    scored = set(np.unique(np.asarray(bins_g)[np.asarray(cls_g) >= 0]).tolist()) if bins_scored is None else set(
        bins_scored)  # fmt: skip
    for b in range(n_bins):
        mg, mb = bins_g == b, bins_b == b
        tg, tb = np.sum(w_g[mg & trad_g]), np.sum(w_b[mb & trad_b])
        if b not in scored or tg <= 0 or tb <= 0:
            rg[1:, b], rb[1:, b] = 0.0, 0.0  # the traditional cut in class 0, nothing in the others
            if b in scored:  # recorded, not silent: no test event passes the traditional cut here
                fallback.append(int(b))
            continue
        r68_t = _r68(err_g[mg & trad_g], w_g[mg & trad_g]) if err_g is not None else 1.0
        mean_wb = np.sum(w_b[mb]) / max(np.sum(mb), 1)
        for c in range(k):
            g = mg & (cls_g == c)
            if not g.any() and empty == "raise":
                raise GHSepError(f"{where}: class {names[c]!r} holds no gamma in analysis bin {b}: its edges leave it "
                                 "empty; use fewer classes or wider edges")  # fmt: skip
            bk = mb & (cls_b == c)
            wb = np.sum(w_b[bk])
            bound[c, b] = wb <= 0
            rg[c, b] = np.sum(w_g[g]) / tg
            rb[c, b] = (wb if wb > 0 else 2.3 * mean_wb) / tb
            neff[c, b] = effective_count(w_b[bk]) if bk.any() else 0.0
            if err_g is not None and g.any():
                ps[c, b] = _r68(err_g[g], w_g[g]) / r68_t
    return ClassScheme(rg, rb, ps, tuple(names), neff, bound, {"traditional_fallback_bins": fallback})


def class_schemes(
    model,
    tune: dict,
    test: dict,
    psf=None,
    leading_pi0_factor: float = 1.0,
    gammaness_efficiencies=GAMMANESS_EFFICIENCIES,
    psf_quantiles=PSF_QUANTILES,
) -> dict:
    """The event classes of ``model`` as :class:`ClassScheme` s: ``"traditional"`` (its cut, one class),
    ``"single_cut"`` (the model's Q-optimised cut, one class), ``"classes"`` (gammaness classes at
    :data:`GAMMANESS_EFFICIENCIES`) and, with a :class:`PSFEstimator` ``psf``, ``"classes_psf"`` (every
    gammaness x PSF-quartile pair). Edges are set on the ``tune`` sample, the ratios measured on ``test``
    (its background reweighted to the leading-pion constant x ``leading_pi0_factor``). Bins where the
    model kept the traditional cut keep it in every scheme."""
    from ..response.lhaaso import _spec
    from ._pipeline import _scores
    from ._samples import analysis_bin, reweight_leading_pi0, traditional_score

    inst = model.instrument
    n_bins = len(_spec(inst)["bin_names"])
    calib = model.meta.get("energy_calibration", [])
    sc_tune = {c: check_scores(v, f"tuning {c}") for c, v in _scores(model, tune).items()}
    sc_test = {c: check_scores(v, f"test {c}") for c, v in _scores(model, test).items()}
    bt = {c: analysis_bin(tune[c], inst, calib) for c in tune}
    be = {c: analysis_bin(test[c], inst, calib) for c in test}
    g, b = test["gamma"], test["background"]
    w_g = np.asarray(g["WEIGHT"], float)
    w_b = reweight_leading_pi0(b, leading_pi0_factor) if leading_pi0_factor != 1.0 else np.asarray(b["WEIGHT"], float)
    thr = {int(k): float(v) for k, v in model.meta["traditional_cut"]["thresholds"].items()}
    trad_edges = {k: np.array([v]) for k, v in thr.items()}
    tr = {c: assign_classes(traditional_score(test[c], inst), be[c], trad_edges) == 0 for c in test}
    scored = sorted(model.cuts)
    err = np.asarray(g["ANGULAR_ERROR"], float) if "ANGULAR_ERROR" in g else None

    def ratios(cls_g, cls_b, names):
        return class_ratios(cls_g, cls_b, be["gamma"], be["background"], w_g, w_b, tr["gamma"], tr["background"],
                            n_bins, names, err, scored, empty="zero")  # fmt: skip

    def filled(cls_tune, names):  # the edges are the tuning sample's: each of its classes holds gammas
        for b in scored:
            n = np.bincount(cls_tune[(bt["gamma"] == b) & (cls_tune >= 0)], minlength=len(names))
            if np.any(n[: len(names)] == 0):
                c = int(np.flatnonzero(n[: len(names)] == 0)[0])
                raise GHSepError(f"tuning sample: class {names[c]!r} holds no gamma in analysis bin {b}: its edges "
                                 "leave it empty; use fewer classes or wider edges")  # fmt: skip

    def in_scored(cls, bins):
        return np.where(np.isin(bins, scored), cls, -1)

    # the traditional cut through the same code: one class, its ratios 1 by construction
    out = {"traditional": ratios(np.where(tr["gamma"], 0, -1), np.where(tr["background"], 0, -1), ("traditional",))}
    single = {k: np.array([v]) for k, v in model.cuts.items()}
    out["single_cut"] = ratios(*(assign_classes(sc_test[c], be[c], single) for c in ("gamma", "background")),
                               ("single_cut",))  # fmt: skip
    edges = {k: v for k, v in class_edges(sc_tune["gamma"], tune["gamma"]["WEIGHT"], bt["gamma"],
                                          gammaness_efficiencies).items() if k in scored}  # fmt: skip
    cg = {c: in_scored(assign_classes(sc_test[c], be[c], edges), be[c]) for c in test}
    kg = len(gammaness_efficiencies)
    cg_tune = assign_classes(sc_tune["gamma"], bt["gamma"], edges)
    filled(cg_tune, tuple(f"g{i}" for i in range(kg)))
    out["classes"] = ratios(cg["gamma"], cg["background"], tuple(f"g{i}" for i in range(kg)))
    if psf is not None:
        # each gammaness class split at the quartiles of the angular-error estimate among its tuning gammas
        def sub(bins, cls):
            return np.where(cls >= 0, bins * kg + cls, -1)

        p_tune = psf.predict(tune["gamma"], "tuning gammas")
        p_edges = class_edges(p_tune, tune["gamma"]["WEIGHT"], sub(bt["gamma"], cg_tune), psf_quantiles,
                              higher_is_gamma=False)  # fmt: skip
        cp = {c: assign_classes(psf.predict(test[c], f"test {c}"), sub(be[c], cg[c]), p_edges, higher_is_gamma=False)
              for c in test}  # fmt: skip
        kp = len(psf_quantiles)
        both = {c: np.where((cg[c] >= 0) & (cp[c] >= 0), cg[c] * kp + cp[c], -1) for c in test}
        names = tuple(f"g{i}p{j}" for i in range(kg) for j in range(kp))
        cp_tune = assign_classes(p_tune, sub(bt["gamma"], cg_tune), p_edges, higher_is_gamma=False)
        filled(np.where((cg_tune >= 0) & (cp_tune >= 0), cg_tune * kp + cp_tune, -1), names)
        out["classes_psf"] = ratios(both["gamma"], both["background"], names)
    for sch in out.values():
        sch.meta.update(instrument=inst, leading_pi0_factor=leading_pi0_factor)
    return out

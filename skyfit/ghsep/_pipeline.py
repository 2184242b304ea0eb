"""Train, tune and evaluate a gamma/hadron classifier on the shower simulation, three independent
samples (no event is used in two of these steps):

1. **training** (``seed``): the network is fitted; bins and classes weigh the same;
2. **tuning** (``seed + 1``): the per-bin cut that maximises Q = eps_gamma / sqrt(eps_bkg), and the
   traditional cut's threshold per bin, are chosen;
3. **test** (``seed + 2``, :func:`evaluate`): efficiencies, background reduction at equal gamma
   efficiency, and the efficiency ratios that scale the LHAASO-like instruments.
"""

from __future__ import annotations

import numpy as np

from ..showers.cuts import thresholds_per_bin
from ._cuts import (
    compare_at_equal_efficiency,
    effective_count,
    efficiency_table,
    optimise_cuts,
    threshold_at_efficiency,
    weighted_auc,
    weighted_efficiency,
)
from ._features import FEATURES, GHSepError, feature_matrix, hit_cloud
from ._network import GHModel, _score_fn, train_classifier
from ._samples import (
    TRADITIONAL,
    analysis_bin,
    energy_calibration,
    labelled_sample,
    simulation_revision,
    traditional_score,
)

__all__ = ["build_model", "evaluate", "balanced_weights", "separability_after_cut", "apply_model"]

# reconstructed features a second classifier may use beyond the model's own, per instrument: for KM2A
# the electromagnetic detectors' pattern (compactness, PINCness, largest signal beyond 40 m, total signal)
PATTERN_FEATURES = {"KM2A": ("log10_compactness", "pincness", "log10_cxpe40", "log10_sum_signal"), "WCDA": ()}


def balanced_weights(bins, labels, weights) -> np.ndarray:
    """Physical weights rescaled so that each (bin, class) sums to the same total."""
    w = np.asarray(weights, float).copy()
    for b in np.unique(bins):
        for y in (0, 1):
            m = (bins == b) & (labels == y)
            if m.any() and w[m].sum() > 0:
                w[m] /= w[m].sum()
    return w


def _stack(sample, bins_g, bins_b, features):
    g, b = sample["gamma"], sample["background"]
    x = np.concatenate([feature_matrix(g, features, "gamma sample"), feature_matrix(b, features, "background sample")])
    y = np.concatenate([np.ones(len(g["BIN"])), np.zeros(len(b["BIN"]))])
    bins = np.concatenate([bins_g, bins_b])
    w = np.concatenate([g["WEIGHT"], b["WEIGHT"]])
    cloud = np.concatenate([g["CLOUD"], b["CLOUD"]]) if "CLOUD" in g else None
    return x, y, bins, w, cloud


def build_model(instrument: str, n_gamma: int, n_background: int, kind: str = "mlp", seed: int = 0,
                epochs: int = 40, hyper: dict | None = None, log=print, progress: bool = False,
                cache_dir=None, leading_pi0_sampling: float | None = None) -> tuple:  # fmt: skip
    """Simulate the training and tuning samples, train, choose cuts. Returns (model, tuning sample).
    ``leading_pi0_sampling``: importance-sample the gamma-like protons (see :func:`labelled_sample`)."""
    instrument = instrument.upper()
    hits = kind == "pointcloud"
    log(f"simulating the {instrument} training sample ({n_gamma} gammas, {n_background} cosmic rays thrown)")
    train = labelled_sample(instrument, n_gamma, n_background, seed=seed, hits=hits, progress=log, cache_dir=cache_dir,
                            leading_pi0_sampling=leading_pi0_sampling)  # fmt: skip
    calib = energy_calibration(train["gamma"], instrument)
    bg = analysis_bin(train["gamma"], instrument, calib)
    bb = analysis_bin(train["background"], instrument, calib)
    x, y, bins, w, cloud = _stack(train, bg, bb, FEATURES[instrument])
    ok = bins >= 0
    log(f"training the {kind} network on {int(ok.sum())} events")
    model = train_classifier(x[ok], y[ok], balanced_weights(bins[ok], y[ok], w[ok]), FEATURES[instrument], instrument,
                             kind=kind, cloud=None if cloud is None else cloud[ok], epochs=epochs, hyper=hyper,
                             seed=seed, progress=progress)  # fmt: skip
    model.meta["energy_calibration"] = calib
    log(f"simulating the {instrument} tuning sample")
    tune = labelled_sample(instrument, n_gamma, n_background, seed=seed + 1, hits=hits, progress=log,
                           cache_dir=cache_dir, leading_pi0_sampling=leading_pi0_sampling)  # fmt: skip
    tune_scores = _scores(model, tune)
    tbins = {c: analysis_bin(tune[c], instrument, calib) for c in tune}
    model.cuts = optimise_cuts(tune_scores["gamma"], tune["gamma"]["WEIGHT"], tbins["gamma"], tune_scores["background"],
                               tune["background"]["WEIGHT"], tbins["background"])  # fmt: skip
    col, _, eff = TRADITIONAL[instrument]
    trad = thresholds_per_bin(traditional_score(tune["gamma"], instrument), tbins["gamma"], eff,
                              tune["gamma"]["WEIGHT"])  # fmt: skip
    # keep the traditional cut in the bins where the ML cut does not do better on the tuning sample
    # (e.g. KM2A above ~40 TeV, where too few simulated cosmic rays pass either cut to tell)
    t_tab = efficiency_table(traditional_score(tune["gamma"], instrument), tune["gamma"]["WEIGHT"], tbins["gamma"],
                             traditional_score(tune["background"], instrument), tune["background"]["WEIGHT"],
                             tbins["background"], trad)  # fmt: skip
    m_tab = {r["bin"]: r for r in efficiency_table(tune_scores["gamma"], tune["gamma"]["WEIGHT"], tbins["gamma"],
                                                   tune_scores["background"], tune["background"]["WEIGHT"],
                                                   tbins["background"], model.cuts)}  # fmt: skip
    for t in t_tab:
        m = m_tab.get(t["bin"])
        q_t = t["gamma_eff"] / np.sqrt(t["bkg_eff"]) if t["bkg_eff"] > 0 else np.inf
        q_m = m["gamma_eff"] / np.sqrt(m["bkg_eff"]) if m is not None and m["bkg_eff"] > 0 else -np.inf
        if m is not None and not q_m > q_t:
            log(f"{instrument} bin {t['bin']}: the ML cut (Q {q_m:.2f}) does not beat the traditional one "
                f"(Q {q_t:.2f}) on the tuning sample; the traditional cut is kept there")  # fmt: skip
            del model.cuts[t["bin"]]
    model.meta["traditional_cut"] = {"column": col, "gamma_efficiency": eff, "thresholds": trad}
    model.meta["samples"] = {
        "n_gamma_thrown": n_gamma,
        "n_background_thrown": n_background,
        "training_seed": seed,
        "tuning_seed": seed + 1,
        "leading_pi0_sampling": leading_pi0_sampling,
        "simulation_revision": simulation_revision(instrument),
    }
    return model, tune


def _scores(model: GHModel, sample: dict) -> dict:
    return {c: model.score(t, cloud=t.get("CLOUD")) for c, t in sample.items()}


def evaluate(model: GHModel, test: dict) -> dict:
    """Figures of ``model`` on an independent ``test`` sample: per analysis bin, the background reduction
    at the traditional cut's gamma efficiency, and the efficiencies of the traditional and the optimised
    ML cuts with the ratios ``r_gamma``, ``r_bkg`` that scale the LHAASO-like instruments."""
    inst = model.instrument
    calib = model.meta.get("energy_calibration", [])
    bins = {c: analysis_bin(test[c], inst, calib) for c in test}
    s = _scores(model, test)
    trad = {c: traditional_score(test[c], inst) for c in test}
    g, b = test["gamma"], test["background"]
    eq = compare_at_equal_efficiency(trad["gamma"], trad["background"], s["gamma"], s["background"], g["WEIGHT"],
                                     b["WEIGHT"], bins["gamma"], bins["background"], TRADITIONAL[inst][2])  # fmt: skip
    # the gamma-like protons (a leading neutral pion) among the background passing each cut
    for row in eq:
        sel = bins["background"] == row["bin"]
        lead = np.asarray(b.get("TRUE_LEADING_PI0", np.zeros(len(b["BIN"]), bool)), bool)[sel]
        w = b["WEIGHT"][sel]
        for key, sc, thr in (("trad", trad["background"][sel], row["threshold_trad"]),
                             ("ml", s["background"][sel], row["threshold_ml"])):  # fmt: skip
            p = sc >= thr
            row[f"leading_pi0_share_{key}"] = float(np.sum(w * p * lead) / np.sum(w * p)) if p.any() else None
    tthr = {int(k): float(v) for k, v in model.meta["traditional_cut"]["thresholds"].items()}
    t_tab = efficiency_table(trad["gamma"], g["WEIGHT"], bins["gamma"], trad["background"], b["WEIGHT"],
                             bins["background"], tthr)  # fmt: skip
    m_tab = efficiency_table(s["gamma"], g["WEIGHT"], bins["gamma"], s["background"], b["WEIGHT"], bins["background"],
                             model.cuts)  # fmt: skip
    t_by, m_by = {r["bin"]: r for r in t_tab}, {r["bin"]: r for r in m_tab}
    ratios = {k: {"r_gamma": 1.0, "r_bkg": 1.0, "bkg_bound": False, "q": 1.0, "cut": "traditional"}
              for k in t_by if k not in m_by}  # fmt: skip
    for k in sorted(set(t_by) & set(m_by)):
        t, m = t_by[k], m_by[k]
        if not (t["gamma_eff"] > 0 and t["bkg_eff"] > 0):
            continue
        # no background event passing the ML cut: the 90 % upper limit, 2.3 events of the mean weight
        bm = m["bkg_eff"] if m["n_bkg_pass"] > 0 else 2.3 * m["bkg_eff_err"]
        ratios[k] = {"r_gamma": m["gamma_eff"] / t["gamma_eff"], "r_bkg": bm / t["bkg_eff"],
                     "bkg_bound": m["n_bkg_pass"] == 0, "cut": "ml"}  # fmt: skip
        ratios[k]["q"] = ratios[k]["r_gamma"] / np.sqrt(ratios[k]["r_bkg"])
    return {"equal_efficiency": eq, "traditional": t_tab, "ml": m_tab, "ratios": ratios, "scores": s, "bins": bins,
            "traditional_scores": trad}  # fmt: skip


def separability_after_cut(model: GHModel, tune: dict, test: dict, extra_features=None, keep: float = 0.9,
                           epochs: int = 60, min_background: int = 5) -> dict:  # fmt: skip
    """How much gamma/hadron information is left in the events that pass the traditional cut.

    A fresh MLP is trained on the ``tune`` sample's events passing the traditional cut (the model's
    thresholds, set on that sample), on the model's features and ``extra_features`` (default: the
    instrument's :data:`PATTERN_FEATURES`), and scored on the ``test`` sample's passing events. Per bin:
    the weighted AUC (0.5: nothing left to separate) and the further background reduction when keeping
    ``keep`` of the passing gammas (where no background event is left, ``further_reduction_lo``: a lower
    limit from the 90 % upper limit of 2.3 mean-weight events); bins with fewer than ``min_background``
    passing background events in either sample are reported without figures. The tuning sample trains
    here, so no test event is seen in training."""
    inst = model.instrument
    calib = model.meta.get("energy_calibration", [])
    thr = {int(k): float(v) for k, v in model.meta["traditional_cut"]["thresholds"].items()}
    feats = tuple(model.features) + tuple(PATTERN_FEATURES.get(inst, ()) if extra_features is None else extra_features)

    def passing(sample):
        out = {}
        for cls, t in sample.items():
            b = analysis_bin(t, inst, calib)
            cut = np.full(b.size, np.inf)  # bins without a traditional threshold pass nothing
            for k, v in thr.items():
                cut[b == k] = v
            ok = (b >= 0) & (traditional_score(t, inst) >= cut)
            out[cls] = (feature_matrix(t, feats, f"{cls} sample")[ok], np.asarray(t["WEIGHT"], float)[ok], b[ok])
        return out

    tr, te = passing(tune), passing(test)
    rows = []
    bins = sorted(set(np.unique(te["gamma"][2]).tolist()) & set(thr))
    x = np.concatenate([tr["gamma"][0], tr["background"][0]])
    y = np.concatenate([np.ones(len(tr["gamma"][1])), np.zeros(len(tr["background"][1]))])
    w = np.concatenate([tr["gamma"][1], tr["background"][1]])
    b = np.concatenate([tr["gamma"][2], tr["background"][2]])
    if (y == 0).sum() < min_background:
        return {"features": list(feats), "keep": keep, "per_bin": [], "n_background_train": int((y == 0).sum())}
    net = train_classifier(x, y, balanced_weights(b, y, w), feats, inst, epochs=epochs, seed=0)

    def score(xm):  # the network's logit on a feature matrix (a monotonic gamma-ness)
        import jax.numpy as jnp

        if len(xm) == 0:
            return np.zeros(0)
        z = ((xm - net.mean) / net.std).astype(np.float32)
        return np.asarray(_score_fn(net.kind)(net.net, jnp.asarray(z), None), np.float64)

    sg_all, sb_all = score(te["gamma"][0]), score(te["background"][0])
    for k in bins:
        mg, mb = te["gamma"][2] == k, te["background"][2] == k
        n_train_b = int(np.sum((b == k) & (y == 0)))
        row = {"bin": int(k), "n_gamma": int(mg.sum()), "n_bkg": int(mb.sum()), "n_bkg_train": n_train_b,
               "n_eff_bkg": effective_count(te["background"][1][mb])}  # fmt: skip
        if mb.sum() < min_background or n_train_b < min_background or mg.sum() < 20:
            row.update(auc=None, further_reduction=None)
            rows.append(row)
            continue
        wg, wb = te["gamma"][1][mg], te["background"][1][mb]
        row["auc"] = weighted_auc(sg_all[mg], wg, sb_all[mb], wb)
        t = threshold_at_efficiency(sg_all[mg], wg, keep)
        left, err = weighted_efficiency(sb_all[mb] >= t, wb)
        row["gamma_kept"] = weighted_efficiency(sg_all[mg] >= t, wg)[0]
        row["bkg_left"], row["bkg_left_err"] = left, err
        if left > 0:
            row["further_reduction"] = 1.0 / left
        else:  # nothing left: a lower limit from the 90 % upper limit on the survival (2.3 mean-weight events)
            row["further_reduction"] = None
            row["further_reduction_lo"] = 1.0 / (2.3 * err)
        rows.append(row)
    return {"features": list(feats), "keep": keep, "per_bin": rows, "n_background_train": int((y == 0).sum())}


def apply_model(model: GHModel, table: dict, hits: dict | None = None, where: str | None = None) -> dict:
    """``table`` with the model's ``GH_SCORE`` (gamma-ness) and ``GH_PASS`` (the model's cuts:
    :meth:`GHModel.passes`) columns. A hit-pattern model (``kind == "pointcloud"``) reads the events'
    ``hits`` (a hit table: :func:`skyfit.showers.hits_table`, `skyfit showers simulate --hits`);
    ``where`` names the table in errors."""
    from ..showers import km2a_layouts, wcda_layout

    cloud = None
    if model.kind == "pointcloud":
        if hits is None:
            raise GHSepError("this model reads hit patterns: give the events' hit table")
        layout = wcda_layout() if model.instrument == "WCDA" else km2a_layouts()[0]
        cloud = hit_cloud(table, hits, layout)
    score = model.score(table, cloud=cloud, where=where)
    out = {**table, "GH_SCORE": score}
    out["GH_PASS"] = model.passes(out, scores=score)
    return out

"""Particle categorisation on KM2A: the primary's mass group (H, He, CNO, MgSi, Fe) per reconstructed-energy
bin, against the classic cut on the muon content N_mu/N_e.

Inputs, per event, from the electron (ED) and muon (MD) detectors' hits around the reconstructed core and
direction: log10 N_e and N_mu, the secant of the zenith, the core's distance from the array centre, the
summed ED signal in five rings (0-20-50-100-200-400 m) and MD signal in four (15-50-100-200-400 m), the
ED front's time spread in two rings (40-100, 100-200 m; heavier showers develop earlier and their fronts
are flatter and thinner near the core), and the energy estimate. A 5-class MLP gives P(group); light
(H + He) and proton selections cut on P(H) + P(He) and P(H).

Energy: a quadratic in (log10 N_e, log10 N_mu) and sec(zenith) fitted on the mixed training sample
(equal numbers per group), since N_e alone is mass-biased (at equal energy Fe has ~4x fewer electrons than
H). Both methods are measured on the same events in bins of this estimate (:data:`ENERGY_EDGES_LOG10_TEV`).
"""

from __future__ import annotations

import numpy as np

from ..showers.reconstruct import reconstruct
from ._common import EventHits, ShowerMLError, bootstrap_interval, train_mlp
from ._modelfile import ShowerModel

__all__ = ["mass_features", "energy_estimate", "train_mass_model", "mass_scores", "classic_mass_score",
           "classic_age_score", "selection_purity", "mass_performance", "ENERGY_EDGES_LOG10_TEV",
           "MASS_FEATURES"]  # fmt: skip

ENERGY_EDGES_LOG10_TEV = np.array([2.0, 2.5, 3.0, 3.5, 4.0])
ED_RINGS, MD_RINGS, T_RINGS = (0, 20, 50, 100, 200, 400), (15, 50, 100, 200, 400), ((40, 100), (100, 200))
MASS_FEATURES = (("LOG10_NE", "LOG10_NMU", "SEC_ZENITH", "CORE_R")
                 + tuple(f"ED_{a}_{b}" for a, b in zip(ED_RINGS[:-1], ED_RINGS[1:], strict=True))
                 + tuple(f"MD_{a}_{b}" for a, b in zip(MD_RINGS[:-1], MD_RINGS[1:], strict=True))
                 + tuple(f"TSPREAD_{a}_{b}" for a, b in T_RINGS) + ("LOG10_E_EST",))  # fmt: skip


def _ring_sums(r, q, seg, n, edges):
    out = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        s = (r >= a) & (r < b)
        out.append(np.log10(1.0 + np.bincount(seg[s], weights=q[s], minlength=n)))
    return out


def _front_spread(eh: EventHits, kept, r):
    """Signal-weighted rms of the arrival times about the reconstructed plane, per ring (ns)."""
    h, t = eh.main, eh.table
    x, y = eh.layout.x[h.detector], eh.layout.y[h.detector]
    zen, az = np.radians(t["REC_ZENITH"]), np.radians(t["REC_AZIMUTH"])
    nx, ny = np.sin(zen) * np.sin(az), np.sin(zen) * np.cos(az)
    res = h.time + (nx[h.shower] * x + ny[h.shower] * y) / 0.299792458  # the plane's arrival time (m / (m/ns)) removed
    out = []
    for a, b in T_RINGS:
        s = kept & (r >= a) & (r < b) & np.isfinite(res)
        w = np.sqrt(h.signal[s])
        sw = np.bincount(h.shower[s], weights=w, minlength=eh.n)
        m1 = np.bincount(h.shower[s], weights=w * res[s], minlength=eh.n) / np.maximum(sw, 1e-9)
        m2 = np.bincount(h.shower[s], weights=w * res[s] ** 2, minlength=eh.n) / np.maximum(sw, 1e-9)
        out.append(np.log10(1.0 + np.sqrt(np.maximum(m2 - m1**2, 0.0))))
    return out


def energy_estimate(table: dict, coef=None) -> tuple:
    """log10 E (TeV) from (log10 N_e, log10 N_mu, sec zenith); ``coef`` None fits it on ``table``'s truth.
    Returns (estimate, coefficients)."""
    le = np.log10(np.maximum(np.asarray(table["N_E"], float), 1.0))
    lm = np.log10(1.0 + np.asarray(table["N_MU"], float))
    # sec(zenith) capped at 2.5 (66 deg): a failed reconstruction near the horizon must not dominate the fit
    sec = np.clip(1.0 / np.cos(np.radians(np.nan_to_num(np.asarray(table["REC_ZENITH"], float)))), 1.0, 2.5)
    a = np.stack([np.ones_like(le), le, lm, le * le, lm * lm, le * lm, sec, sec * le], 1)
    if coef is None:
        ok = np.isfinite(a).all(1) & (np.asarray(table["N_E"]) > 0)
        coef = np.linalg.lstsq(a[ok], np.log10(table["TRUE_ENERGY"][ok]), rcond=None)[0]
    return a @ np.asarray(coef), np.asarray(coef)


def mass_features(eh: EventHits, energy_coef) -> np.ndarray:
    """The (n_events, len(MASS_FEATURES)) feature matrix (see the module docstring)."""
    if eh.instrument != "KM2A" or eh.muon is None:
        raise ShowerMLError(f"mass categorisation reads KM2A's electron and muon detectors; got {eh.instrument} hits")
    t = eh.table
    rec = reconstruct(eh.main, eh.layout)
    kept = rec["KEPT"]
    h, m = eh.main, eh.muon
    cx, cy = np.asarray(t["REC_CORE_X"], float), np.asarray(t["REC_CORE_Y"], float)
    r = np.hypot(eh.layout.x[h.detector] - cx[h.shower], eh.layout.y[h.detector] - cy[h.shower])
    rm = np.hypot(eh.muon_layout.x[m.detector] - cx[m.shower], eh.muon_layout.y[m.detector] - cy[m.shower])
    sec = np.clip(1.0 / np.cos(np.radians(np.nan_to_num(t["REC_ZENITH"]))), 1.0, 2.5)
    cols = [np.log10(np.maximum(t["N_E"], 1.0)), np.log10(1.0 + t["N_MU"]), sec, np.hypot(cx, cy) / 100.0]
    cols += _ring_sums(r[kept], h.signal[kept], h.shower[kept], eh.n, ED_RINGS)
    cols += _ring_sums(rm, m.signal, m.shower, eh.n, MD_RINGS)
    cols += _front_spread(eh, kept, r)
    cols.append(energy_estimate(t, energy_coef)[0])
    return np.stack(cols, 1)


def _usable(t: dict) -> np.ndarray:
    """Core in the array, a direction within 60 deg of the zenith (the showers come from within 40), N_e > 0."""
    zen = np.nan_to_num(np.asarray(t["REC_ZENITH"], float), nan=90.0)
    return np.asarray(t["CORE_IN_ARRAY"], bool) & (zen < 60.0) & (np.asarray(t["N_E"]) > 0)


def classic_mass_score(table: dict) -> np.ndarray:
    """The classic lightness: -log10((N_mu + 1) / N_e), higher for lighter primaries (LHAASO's muon cut)."""
    return -np.log10((1.0 + np.asarray(table["N_MU"], float)) / np.maximum(table["N_E"], 1.0))


def _age_inputs(x: np.ndarray) -> np.ndarray:
    """The classic-with-age inputs: log10 N_mu/N_e, the ED lateral slope (20-50 m over 100-200 m ring
    signal, an age proxy: older showers are flatter) and log10 E."""
    i = {n: k for k, n in enumerate(MASS_FEATURES)}
    ratio = x[:, i["LOG10_NMU"]] - x[:, i["LOG10_NE"]]
    return np.stack([ratio, x[:, i["ED_20_50"]] - x[:, i["ED_100_200"]], x[:, i["LOG10_E_EST"]]], 1)


def _fisher(z: np.ndarray, light: np.ndarray) -> list:
    """Fisher's linear discriminant of light against heavy on the inputs ``z`` (classic, two moments)."""
    m1, m0 = z[light].mean(0), z[~light].mean(0)
    cov = np.cov(z[light].T) + np.cov(z[~light].T)
    return [float(v) for v in np.linalg.solve(cov, m1 - m0)]


def classic_age_score(x: np.ndarray, coef) -> np.ndarray:
    """The classic cut with the shower age: Fisher's linear combination of log10 N_mu/N_e and the lateral
    slope (with log10 E), fitted on the training sample; higher is lighter."""
    return _age_inputs(x) @ np.asarray(coef)


def train_mass_model(train: EventHits, epochs: int = 30, seed: int = 0, progress: bool = False) -> ShowerModel:
    """A 5-class mass network trained on a :func:`mass_sample` (events with the ``GROUP`` column)."""
    if "GROUP" not in train.table:
        raise ShowerMLError("the training sample has no GROUP column: use skyfit.showerml.mass_sample")
    _, coef = energy_estimate({k: v[_usable(train.table)] for k, v in train.table.items()})
    x = mass_features(train, coef)
    ok = _usable(train.table) & np.isfinite(x).all(1)
    hyper = {"n_in": x.shape[1], "n_out": 5, "width": 64, "depth": 3}
    net, (mean, scale), hist = train_mlp(x[ok], train.table["GROUP"][ok], "softmax", 5, width=64, depth=3,
                                         epochs=epochs, seed=seed, progress="mass" if progress else None)  # fmt: skip
    light = np.isin(train.table["GROUP"][ok], (0, 1))
    meta = {"energy_coef": [float(c) for c in coef], "fisher_light": _fisher(_age_inputs(x[ok]), light),
            "fisher_proton": _fisher(_age_inputs(x[ok]), train.table["GROUP"][ok] == 0), "n_train": int(ok.sum()),
            "epochs": epochs,
            "held_out_loss": hist, "groups": ["H", "He", "CNO", "MgSi", "Fe"]}  # fmt: skip
    return ShowerModel("mass", "KM2A", MASS_FEATURES, hyper, net, mean, scale, meta)


def mass_scores(model: ShowerModel, eh: EventHits) -> dict:
    """Per event: ``P`` (n, 5) group probabilities, ``light`` = P(H) + P(He), ``proton`` = P(H), ``log10_e``."""
    model.check_array(eh.instrument, "the event table")
    x = mass_features(eh, model.meta["energy_coef"])
    out = model.outputs(np.nan_to_num(x))
    p = np.exp(out - out.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return {
        "P": p,
        "light": p[:, 0] + p[:, 1],
        "proton": p[:, 0],
        "log10_e": x[:, -1],
        "light_classic_age": classic_age_score(x, model.meta["fisher_light"]),
        "proton_classic_age": classic_age_score(x, model.meta["fisher_proton"]),
    }


def selection_purity(score, is_signal, tune_score, tune_signal, efficiency: float, w=None) -> tuple:
    """Threshold on the tuning sample keeping ``efficiency`` of its signal; (purity on test, efficiency on
    test, threshold), with test-event weights ``w`` (default 1). Higher score = more signal-like."""
    thr = float(np.quantile(tune_score[tune_signal], 1.0 - efficiency)) if tune_signal.any() else np.inf
    w = np.ones(len(score)) if w is None else np.asarray(w, float)
    sel = score >= thr
    purity = float(np.sum(w[sel & is_signal]) / np.sum(w[sel])) if sel.any() else np.nan
    return purity, float(np.sum(w[sel & is_signal]) / max(np.sum(w[is_signal]), 1e-300)), thr


def mass_performance(model: ShowerModel, tune: EventHits, test: EventHits, seed: int = 0, weights=None) -> dict:
    """Per energy bin: light (H+He) purity at 50 % and proton purity at 30 % efficiency, classic (N_mu/N_e),
    classic with the age and ML, thresholds set on ``tune``, measured on ``test`` (``weights``: per test
    event, e.g. a leading-pion reweighting) with 68 % bootstrap intervals; and the confusion matrix (rows
    true group, columns most probable) per bin."""
    wt = np.ones(test.n) if weights is None else np.asarray(weights, float)
    res = {}
    for part, eh in (("tune", tune), ("test", test)):
        s = mass_scores(model, eh)
        res[part] = (s, classic_mass_score(eh.table), np.asarray(eh.table["GROUP"]), _usable(eh.table))
    (st, ct, gt, ut), (ss, cs, gs, us) = res["tune"], res["test"]
    edges, out = ENERGY_EDGES_LOG10_TEV, {}
    for b, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        it = ut & (st["log10_e"] >= lo) & (st["log10_e"] < hi)
        iv = np.flatnonzero(us & (ss["log10_e"] >= lo) & (ss["log10_e"] < hi))
        row = {"log10_e_range": [float(lo), float(hi)], "n_test": int(iv.size)}
        for name, sig_g, eff in (("light_purity_50", (0, 1), 0.5), ("proton_purity_30", (0,), 0.3)):
            tsig = np.isin(gt[it], sig_g)
            key = "light" if 1 in sig_g else "proton"
            methods = (("classic", ct, cs), ("classic_age", st[key + "_classic_age"], ss[key + "_classic_age"]),
                       ("ml", st[key], ss[key]))  # fmt: skip
            for method, tune_s, test_s in methods:

                def stat(i, tune_s=tune_s, test_s=test_s, tsig=tsig, sig_g=sig_g, eff=eff, iv=iv, it=it):
                    j = iv[i]
                    return selection_purity(test_s[j], np.isin(gs[j], sig_g), tune_s[it], tsig, eff, wt[j])[0]

                row[f"{name}_{method}"] = bootstrap_interval(stat, iv.size, seed) if iv.size else (np.nan,) * 3
        conf = np.zeros((5, 5), int)
        np.add.at(conf, (gs[iv], np.argmax(ss["P"][iv], 1)), 1)
        row["confusion"] = conf.tolist()
        out[b] = row
    return out

"""Noise-hit filtering: a per-hit classifier of shower hits against uncorrelated noise (dark counts), to
replace the plane-front filter of :func:`skyfit.showers.reconstruct` at equal signal-hit efficiency.

Each hit is described in the frame of the classic reconstruction (its core, direction and front): the
arrival-time residual from the curved front (ns) and its absolute value, the distance from the core, log10
of the signal, how many hits sit in the neighbouring detectors (1.6 spacings) and how many of them are on
the front (abs(residual) < 30 ns), the time to the nearest of those, the event's hit count, and whether the
plane-front filter kept it. The context from the neighbours makes it a small graph network: each hit
sees its neighbours through those pooled counts (segment sums over the detector-neighbour graph). A
per-hit MLP gives P(shower hit); one threshold per analysis bin (the classic nHit bin) is set on the
tuning sample to the plane filter's signal-hit efficiency in that bin.
"""

from __future__ import annotations

import numpy as np

from ..showers import WCDA_NHIT_EDGES, angular_error_deg
from ..showers import physics as ph
from ..showers.reconstruct import reconstruct
from ._common import EventHits, ShowerMLError, train_mlp
from ._modelfile import ShowerModel

__all__ = [
    "NOISE_FEATURES",
    "noise_features",
    "train_noise_model",
    "tune_noise_thresholds",
    "noise_keep",
    "noise_performance",
]

NOISE_FEATURES = ("RESIDUAL_NS", "ABS_RESIDUAL", "R_100M", "LOG10_Q", "N_NEIGHBOURS", "N_NEIGHBOURS_ON_FRONT",
                  "LOG10_HITS", "CLASSIC_KEPT")  # fmt: skip
FRONT_NS = 30.0
_GRAPHS: dict = {}


def _neighbours(layout):
    """Sparse detector-neighbour matrix (within 1.6 spacings, self excluded), cached per layout."""
    from scipy.sparse import csr_matrix
    from scipy.spatial import cKDTree

    key = (layout.name, layout.n)
    if key not in _GRAPHS:
        xy = np.stack([layout.x, layout.y], 1)
        tree = cKDTree(xy)
        spacing = float(np.median(tree.query(xy, k=2)[0][:, 1]))
        p = tree.query_pairs(1.6 * spacing, output_type="ndarray")
        i, j = np.concatenate([p[:, 0], p[:, 1]]), np.concatenate([p[:, 1], p[:, 0]])
        _GRAPHS[key] = csr_matrix((np.ones(i.size, np.float32), (i, j)), shape=(layout.n, layout.n))
    return _GRAPHS[key]


def _neighbour_sum(values, seg, det, n, layout):
    """Per hit: the sum of ``values`` over the hits of the same event in the neighbouring detectors."""
    from scipy.sparse import csr_matrix

    img = csr_matrix((values.astype(np.float32), (det, seg)), shape=(layout.n, n))
    return np.asarray((_neighbours(layout) @ img)[det, seg]).ravel()


def noise_features(eh: EventHits) -> tuple:
    """(per-hit features (n_hits, len(NOISE_FEATURES)), the classic reconstruction dict)."""
    h, lay = eh.main, eh.layout
    if not h.signal.size:
        raise ShowerMLError("no hits to filter")
    rec = reconstruct(h, lay)
    seg, n = h.shower, eh.n
    x, y = lay.x[h.detector], lay.y[h.detector]
    zen, az = np.radians(np.nan_to_num(rec["REC_ZENITH"])), np.radians(np.nan_to_num(rec["REC_AZIMUTH"]))
    nx, ny = np.sin(zen) * np.sin(az), np.sin(zen) * np.cos(az)
    r = np.hypot(x - rec["REC_CORE_X"][seg], y - rec["REC_CORE_Y"][seg])
    tc = h.time + (nx[seg] * x + ny[seg] * y) / 0.299792458 - ph.front_delay_ns(r)
    kept = rec["KEPT"]
    # the front's time: the median of the classic-kept hits' corrected times (all hits where none is kept)
    ref = np.where(np.bincount(seg[kept], minlength=n)[seg] > 0, kept, True)
    o = np.lexsort((tc, ~ref, seg))
    cnt = np.bincount(seg[ref], minlength=n)
    starts = np.concatenate([[0], np.cumsum(np.bincount(seg, minlength=n))[:-1]])
    t0 = tc[o][np.minimum(starts + cnt // 2, tc.size - 1)]
    res = tc - t0[seg]
    front = (np.abs(res) < FRONT_NS).astype(float)
    nn = _neighbour_sum(np.ones_like(res), seg, h.detector, n, lay)
    nf = _neighbour_sum(front, seg, h.detector, n, lay)
    hits_per_event = np.bincount(seg, minlength=n)[seg]
    x_ = np.stack(
        [
            np.clip(res, -600, 600) / 100.0,
            np.log10(1.0 + np.abs(res)),
            r / 100.0,
            np.log10(np.maximum(h.signal, 0.1)),
            nn,
            nf,
            np.log10(hits_per_event),
            kept.astype(float),
        ],
        1,
    )
    return x_, rec


def train_noise_model(train: EventHits, epochs: int = 8, seed: int = 0, progress: bool = False) -> ShowerModel:
    """The per-hit classifier trained on simulated hits with their truth label."""
    if not train.has_truth:
        raise ShowerMLError("training needs hits with the NOISE truth column (simulated hits)")
    x, _ = noise_features(train)
    y = (~train.main.noise).astype(float)
    hyper = {"n_in": x.shape[1], "n_out": 1, "width": 48, "depth": 3}
    net, (mean, scale), hist = train_mlp(x, y, "binary", 1, width=48, depth=3, epochs=epochs, batch=2048,
                                         seed=seed, progress="noise" if progress else None)  # fmt: skip
    meta = {"n_train_hits": int(len(y)), "noise_rate_hz": train.noise_rate_hz, "epochs": epochs,
            "held_out_loss": hist, "thresholds": {}}  # fmt: skip
    return ShowerModel("noise", train.instrument, NOISE_FEATURES, hyper, net, mean, scale, meta)


def _bins(nhit) -> np.ndarray:
    return np.searchsorted(WCDA_NHIT_EDGES, nhit, side="right") - 1


def tune_noise_thresholds(model: ShowerModel, tune: EventHits) -> dict:
    """One threshold per classic nHit bin giving the plane filter's signal-hit efficiency in that bin
    (stored in ``model.meta['thresholds']`` and returned)."""
    x, rec = noise_features(tune)
    p = model.outputs(x)[:, 0]
    sig, kept, b = ~tune.main.noise, rec["KEPT"], _bins(rec["NHIT"])[tune.main.shower]
    thr = {}
    for k in range(len(WCDA_NHIT_EDGES) - 1):
        s = sig & (b == k)
        if s.sum() >= 50:
            eff = np.sum(kept & s) / s.sum()
            thr[str(k)] = float(np.quantile(p[s], 1.0 - eff))
    model.meta["thresholds"] = thr
    return thr


def noise_keep(model: ShowerModel, eh: EventHits) -> tuple:
    """(the learned filter's per-hit keep mask, the classic reconstruction). Bins without a tuned threshold
    keep the plane filter's choice."""
    model.check_array(eh.instrument, "the hit table")
    if not model.meta.get("thresholds"):
        raise ShowerMLError("the noise model has no thresholds yet: tune it (skyfit showers train does)")
    x, rec = noise_features(eh)
    p = model.outputs(x)[:, 0]
    b = _bins(rec["NHIT"])[eh.main.shower]
    keep = rec["KEPT"].copy()
    for k, t in model.meta["thresholds"].items():
        s = b == int(k)
        keep[s] = p[s] >= t
    return keep, rec


def _psf68(rec, t, sel):
    err = angular_error_deg(t["TRUE_ZENITH"], t["TRUE_AZIMUTH"], rec["REC_ZENITH"], rec["REC_AZIMUTH"])
    e = err[sel & np.isfinite(err)]
    return float(np.percentile(e, 68)) if e.size else np.nan


def noise_performance(model: ShowerModel, test: EventHits, bins=(0, 1, 2)) -> dict:
    """Classic, learned and perfect (truth) filters on a test sample: the share of noise hits kept and of
    signal hits kept; per true bin (by the count of shower hits) the PSF68 after reconstructing with
    each filter's hits and the share of events whose nHit bin differs from the true bin."""
    keep_ml, rec_c = noise_keep(model, test)
    h, t = test.main, test.table
    noise = h.noise
    rec_ml = reconstruct(h, test.layout, kept=keep_ml)
    rec_true = reconstruct(h, test.layout, kept=~noise)
    true_bin = _bins(np.bincount(h.shower[~noise], minlength=test.n))
    ok = np.asarray(t["CORE_IN_ARRAY"], bool)
    lowest = np.isin(true_bin, bins) & ok
    ev_low = np.isin(h.shower, np.flatnonzero(lowest))
    out = {"noise_rate_hz": test.noise_rate_hz, "bins": {}}
    for name, kp in (("classic", rec_c["KEPT"]), ("ml", keep_ml), ("truth", ~noise)):
        out[f"noise_kept_{name}"] = float(np.sum(kp & noise & ev_low) / max(np.sum(noise & ev_low), 1))
        out[f"signal_kept_{name}"] = float(np.sum(kp & ~noise & ev_low) / max(np.sum(~noise & ev_low), 1))
    for k in bins:
        sel = ok & (true_bin == k)
        row = {"n_events": int(sel.sum())}
        for name, rec in (("classic", rec_c), ("ml", rec_ml), ("truth", rec_true)):
            row[f"psf68_{name}"] = _psf68(rec, t, sel)
            row[f"migration_{name}"] = float(np.mean(_bins(rec["NHIT"])[sel] != k)) if sel.any() else np.nan
        out["bins"][k] = row
    return out

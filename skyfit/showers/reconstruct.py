"""Classic reconstruction, vectorised over showers: noise filter, core, direction, nHit, discriminants.

Per shower (all steps are segment operations on the flat hit arrays):

1. **Noise filter**: keep hits within +-300 ns of the median time; fit a plane t = t0 + (a x + b y) to
   the strongest hits; keep hits within ``window_ns`` of the plane (after the curvature correction)
   and iterate twice.
2. **Core**: seeded at the hit whose neighbourhood (detectors within 1.6 spacings) holds the largest
   sum of sqrt(signal), so that an isolated large signal (a muon far from the core) cannot capture
   it; then the centroid, weights signal^2 capped at the seed's signal, of the hits within 60 m.
3. **Direction**: least-squares plane fit of the arrival times, corrected for the mean front curvature
   at the hit's distance from the reconstructed core, weights ~ sqrt(signal).
4. **nHit** (hits kept), **CxPE40** (largest signal more than 40 m from the core), **compactness**
   nHit / CxPE40 (HAWC, Abeysekara et al. 2017 ApJ 843 39), **PINCness** (HAWC: mean squared
   deviation of log10 signal from its annulus average, in units of an assumed spread), the signal-
   weighted **dispersion** of hits about the core (the WCDA discriminant of the LHAASO note), and for
   KM2A **Ne** (EM particles in the EDs) and **Nmu** (muons in the MDs beyond 15 m).
"""

from __future__ import annotations

import numpy as np

import skyfit.showers.physics as ph

from .detectors import Layout
from .simulate import C_M_PER_NS, Hits

__all__ = ["reconstruct", "noise_filter_performance"]


def _seg_sum(values, seg, n):
    return np.bincount(seg, weights=values, minlength=n)


_NEIGHBOURS: dict = {}


def _neighbour_matrix(layout: Layout):
    """Sparse (detector x detector) matrix of detectors within 1.6 spacings of each other (cached)."""
    from scipy.sparse import csr_matrix
    from scipy.spatial import cKDTree

    key = (layout.name, layout.n, hash(layout.x.tobytes()), hash(layout.y.tobytes()))
    if key not in _NEIGHBOURS:
        tree = cKDTree(np.stack([layout.x, layout.y], 1))
        spacing = float(np.median(tree.query(np.stack([layout.x, layout.y], 1), k=2)[0][:, 1]))
        pairs = tree.query_pairs(1.6 * spacing, output_type="ndarray")
        i = np.concatenate([pairs[:, 0], pairs[:, 1], np.arange(layout.n)])
        j = np.concatenate([pairs[:, 1], pairs[:, 0], np.arange(layout.n)])
        _NEIGHBOURS[key] = csr_matrix((np.ones(i.size, np.float32), (i, j)), shape=(layout.n, layout.n))
    return _NEIGHBOURS[key]


def _neighbourhood_sum(values, seg, det, n, layout):
    """Per hit: the sum of ``values`` over the hits of the same shower in neighbouring detectors."""
    key = det * n + seg
    img = np.bincount(key, weights=values, minlength=n * layout.n).reshape(layout.n, n)
    # (detector, shower) image times the symmetric neighbour matrix
    return (_neighbour_matrix(layout) @ img.astype(np.float32)).ravel()[key]


def _plane_fit(x, y, t, w, seg, n):
    """Weighted least squares t = t0 + a x + b y per shower; returns a, b, t0 (arrays of n)."""
    sums = {k: _seg_sum(w * v, seg, n) for k, v in
            {"1": np.ones_like(x), "x": x, "y": y, "t": t, "xx": x * x, "xy": x * y, "yy": y * y,
             "xt": x * t, "yt": y * t}.items()}  # fmt: skip
    m = np.stack(
        [
            np.stack([sums["xx"], sums["xy"], sums["x"]], -1),
            np.stack([sums["xy"], sums["yy"], sums["y"]], -1),
            np.stack([sums["x"], sums["y"], sums["1"]], -1),
        ],
        -2,
    )
    rhs = np.stack([sums["xt"], sums["yt"], sums["t"]], -1)
    ok = np.abs(np.linalg.det(m)) > 1e-9
    m[~ok] = np.eye(3)
    rhs[~ok] = 0.0
    sol = np.linalg.solve(m, rhs[..., None])[..., 0]
    sol[~ok] = np.nan
    return sol[:, 0], sol[:, 1], sol[:, 2]


def _direction(a, b):
    """Zenith, azimuth (deg) from plane slopes (ns/m): t = -(n . d)/c -> (a, b) = -(nx, ny)/c."""
    nx, ny = -a * C_M_PER_NS, -b * C_M_PER_NS
    s = np.hypot(nx, ny)
    zen = np.degrees(np.arcsin(np.clip(s, 0, 1)))
    az = np.degrees(np.arctan2(nx, ny)) % 360.0
    return zen, az


def reconstruct(hits: Hits, layout: Layout, window_ns: float = 20.0, muon_hits: Hits | None = None,
                muon_layout: Layout | None = None, kept: np.ndarray | None = None) -> dict:  # fmt: skip
    """Reconstructed quantities per shower (dict of arrays) and the per-hit ``KEPT`` mask. ``kept``: a per-hit
    pre-filter (e.g. a learned one, or the truth ``~hits.noise``): the hits outside it are dropped as if never
    recorded, then the plane-front filter runs on the rest (see :func:`_reconstruct_subset`)."""
    if kept is not None:
        return _reconstruct_subset(hits, layout, window_ns, muon_hits, muon_layout, kept)
    n = hits.n_showers
    seg = hits.shower
    x, y = layout.x[hits.detector], layout.y[hits.detector]
    q, t = hits.signal, hits.time
    # 1. noise filter: median-time window, then plane fits on the kept hits
    counts = np.bincount(seg, minlength=n)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    med = np.full(n, np.nan)
    nz = counts > 0
    # median per shower (hits are sorted by shower): sort times within segments
    order = np.lexsort((t, seg))
    ts = t[order]
    mid = starts + counts // 2
    med[nz] = ts[np.minimum(mid[nz], ts.size - 1)]
    kept = np.abs(t - med[seg]) < 300.0
    core_x = np.zeros(n)
    core_y = np.zeros(n)
    a = b = None
    n_est = np.maximum(q / max(layout.pe_per_em, 1e-9), 1.0) if layout.em_sensitive else np.maximum(q, 1.0)
    for it in range(4):
        if it > 0:
            r = np.hypot(x - core_x[seg], y - core_y[seg])
            # mean curvature delay plus the mean first-arrival delay of ~n_est particles in a front of
            # thickness sigma_t(r); weights: inverse variance of the arrival time
            thick = ph.front_thickness_ns(r)
            tc = t - ph.front_delay_ns(r) - thick / n_est
            w = kept / (layout.time_jitter_ns**2 + (thick / n_est) ** 2)
        else:
            tc = t
            w = kept * np.sqrt(q)
        a, b, t0 = _plane_fit(x, y, tc, w, seg, n)
        res = tc - (t0[seg] + a[seg] * x + b[seg] * y)
        tol = window_ns if it == 0 else window_ns + 2 * ph.front_thickness_ns(r) / n_est
        kept = np.abs(res) < (3 * window_ns if it == 0 else tol)
        kept &= np.isfinite(res)
        # core: seeded at the densest neighbourhood of kept hits (robust against an isolated large
        # signal such as a muon), then a capped-signal-weighted centroid around the seed
        if it < 2:  # the seed settles once the noise is gone
            score = _neighbourhood_sum(np.sqrt(np.where(kept, q, 0.0)), seg, hits.detector, n, layout)
            best = np.zeros(n, dtype=np.int64)
            if q.size:
                o = np.lexsort((score, seg))
                last = np.concatenate([np.flatnonzero(np.diff(seg[o])), [o.size - 1]])
                best[seg[o[last]]] = o[last]
        bx, by = x[best], y[best]
        near = kept & (np.hypot(x - bx[seg], y - by[seg]) < 60.0)
        wq = np.where(near, np.minimum(q, q[best][seg]) ** 2, 0.0)
        sw = _seg_sum(wq, seg, n)
        core_x = np.where(sw > 0, _seg_sum(wq * x, seg, n) / np.where(sw > 0, sw, 1), 0.0)
        core_y = np.where(sw > 0, _seg_sum(wq * y, seg, n) / np.where(sw > 0, sw, 1), 0.0)
    zen, az = _direction(a, b)
    r = np.hypot(x - core_x[seg], y - core_y[seg])
    nhit = np.bincount(seg, weights=kept.astype(float), minlength=n)
    far = kept & (r > 40.0)
    cxpe40 = np.zeros(n)
    np.maximum.at(cxpe40, seg[far], q[far])
    compactness = nhit / np.maximum(cxpe40, 1.0)
    # PINCness: annuli of 5 m around the core
    logq = np.log10(np.maximum(q, 1e-3))
    ring = np.minimum((r / 5.0).astype(np.int64), 200)
    key = seg * 201 + ring
    ksum = np.bincount(key[kept], weights=logq[kept], minlength=n * 201)
    kcnt = np.bincount(key[kept], minlength=n * 201)
    mean_ring = ksum / np.maximum(kcnt, 1)
    sigma = 0.05 + 0.2 * np.abs(mean_ring[key])  # assumed spread of log10 signal (approximate)
    dev = np.where(kept, (logq - mean_ring[key]) ** 2 / sigma**2, 0.0)
    pinc = _seg_sum(dev, seg, n) / np.maximum(nhit, 1)
    wq = np.where(kept, q, 0.0)
    sq = _seg_sum(wq, seg, n)
    dispersion = np.sqrt(_seg_sum(wq * r * r, seg, n) / np.maximum(sq, 1e-9))
    out = {
        "REC_ZENITH": zen,
        "REC_AZIMUTH": az,
        "REC_CORE_X": core_x,
        "REC_CORE_Y": core_y,
        "NHIT": nhit.astype(np.int32),
        "CXPE40": cxpe40,
        "COMPACTNESS": compactness,
        "PINCNESS": pinc,
        "DISPERSION": dispersion,
        "SUM_SIGNAL": sq,
        "KEPT": kept,
    }
    if muon_hits is not None and muon_layout is not None:
        mx = muon_layout.x[muon_hits.detector]
        my = muon_layout.y[muon_hits.detector]
        mr = np.hypot(mx - core_x[muon_hits.shower], my - core_y[muon_hits.shower])
        sel = mr > 15.0
        out["N_MU"] = np.bincount(muon_hits.shower[sel], weights=muon_hits.signal[sel], minlength=n)
        ring_ok = kept & (r > 40) & (r < 200)
        out["N_E"] = _seg_sum(np.where(ring_ok, q, 0.0), seg, n)
        out["MU_E_RATIO"] = (out["N_MU"] + 1e-3) / np.maximum(out["N_E"], 1.0)
    return out


def _reconstruct_subset(hits: Hits, layout, window_ns, muon_hits, muon_layout, kept) -> dict:
    """:func:`reconstruct` on the hits inside ``kept`` only; ``KEPT`` is returned for all hits. The plane-front
    filter still runs: it also removes shower hits far off the front, which would pull the direction fit."""
    m = np.asarray(kept, bool)
    if m.shape != hits.signal.shape:
        raise ValueError(f"kept holds {m.shape} entries, the hits {hits.signal.shape}: one per hit")
    sub = Hits(hits.shower[m], hits.detector[m], hits.signal[m], hits.time[m], hits.noise[m], hits.n_showers)
    out = reconstruct(sub, layout, window_ns, muon_hits, muon_layout)
    full = np.zeros(m.size, bool)
    full[m] = out["KEPT"]
    out["KEPT"] = full
    return out


def noise_filter_performance(hits: Hits, kept: np.ndarray) -> tuple[float, float]:
    """(purity, efficiency) of the noise filter against the truth: purity = shower hits / kept hits,
    efficiency = kept shower hits / all shower hits."""
    signal = ~hits.noise
    purity = float(np.sum(kept & signal) / max(np.sum(kept), 1))
    efficiency = float(np.sum(kept & signal) / max(np.sum(signal), 1))
    return purity, efficiency

"""The errors of one ROI's components and the table of them: the 95 % position radius of an error ellipse,
its sandwich scaling, and :func:`component_table`."""

from __future__ import annotations

import numpy as np

from ..detect.components import RoiFitter, components
from ..fit import FitResult
from ..models import Source


def radius95(cov: np.ndarray, level: float = 0.95) -> float:
    """Radius of the circle around the estimate that holds ``level`` of a 2D Gaussian of covariance ``cov``
    (deg^2, tangent plane): exact for any ellipse, from the distribution of l1 z1^2 + l2 z2^2 (l: the
    principal variances). A circle of the mean variance would hold less for an elongated error."""
    from scipy.optimize import brentq
    from scipy.special import erf, erfinv

    lam = np.sort(np.clip(np.linalg.eigvalsh(np.asarray(cov, float)), 0.0, None))
    l1, l2 = lam  # l1 <= l2
    if not l2 > 0:
        return 0.0
    if l1 <= 1e-12 * l2:  # a line: |z| sqrt(l2)
        return float(np.sqrt(l2) * np.sqrt(2.0) * erfinv(level))
    z, w = np.polynomial.legendre.leggauss(64)

    def prob(r):  # P(l1 z1^2 + l2 z2^2 <= r^2) = E over z2 of P(|z1| <= sqrt((r^2 - l2 z2^2) / l1))
        zmax = r / np.sqrt(l2)
        z2 = 0.5 * zmax * (z + 1.0)
        inner = erf(np.sqrt(np.clip(r * r - l2 * z2 * z2, 0.0, None) / l1) / np.sqrt(2.0))
        return float(np.sum(0.5 * zmax * w * inner * np.exp(-0.5 * z2 * z2)) * 2.0 / np.sqrt(2.0 * np.pi))

    hi = np.sqrt(l1 + l2) * 4.0
    return float(brentq(lambda r: prob(r) - level, 0.0, hi, xtol=1e-10 * hi))


def _sandwich_scale(fitter: RoiFitter, result: FitResult, s: Source) -> float:
    """How much the position errors of ``s`` grow when they are computed robustly (White 1982's sandwich
    I^-1 J I^-1, I the observed information and J the summed outer products of the per-pixel scores, over
    the component's own free parameters) rather than from I alone: the square root of the ratio of the
    two position variances (trace of the tangent-plane block), never below 1. I alone is right when the
    component's shape is the source's; an extended source fitted as a point (its TS_ext below threshold),
    or emission the model lacks nearby, makes the data scatter the position more than I says (offset /
    error 2.41 instead of 1.18 near threshold, issue #26)."""
    lk = fitter.lk
    keys = [f"{s.name}.{q.name}" for q in s.parameters if not q.frozen]
    if f"{s.name}.lon_0" not in keys or f"{s.name}.lat_0" not in keys:
        return 1.0
    x0 = np.asarray(lk.vector(result.model.values()), float)
    idx = [lk.keys.index(k) for k in keys]
    d = next(i for i, ds in enumerate(lk.datasets) if s.applies_to(ds.name))
    counts = np.asarray(lk.arrays[d].counts)
    mask = np.asarray(lk.arrays[d].mask)
    mu = np.maximum(lk.npred(x0)[d], 1e-300)
    steps = []
    for k, i in zip(keys, idx, strict=True):
        name = k.rsplit(".", 1)[1]
        steps.append(1e-4 if name in ("lon_0", "lat_0") else 1e-3 * abs(x0[i]) if name == "amplitude" else 1e-3)
    dmu, grads = [], []
    for i, h in zip(idx, steps, strict=True):
        up, down = x0.copy(), x0.copy()
        up[i] += h
        down[i] -= h
        dmu.append((lk.npred(up)[d] - lk.npred(down)[d]) / (2 * h))
        grads.append((np.asarray(lk.value_and_grad(up)[1]) - np.asarray(lk.value_and_grad(down)[1]))[idx] / (2 * h))
    info = 0.5 * np.array(grads)  # observed information of ln L (the statistic is -2 ln L)
    info = 0.5 * (info + info.T)
    score = np.stack([(mask * (counts / mu - 1.0) * g).ravel() for g in dmu])  # (n_par, n_bins * n_pix)
    sel = np.any(score != 0.0, axis=0)
    jmat = score[:, sel] @ score[:, sel].T
    try:
        inv = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        return 1.0
    naive, robust = inv, inv @ jmat @ inv
    pos = [keys.index(f"{s.name}.lon_0"), keys.index(f"{s.name}.lat_0")]
    scale = np.array([np.cos(np.radians(x0[idx[pos[1]]])), 1.0])
    v_naive = float(np.sum(np.diag(naive)[pos] * scale**2))
    v_robust = float(np.sum(np.diag(robust)[pos] * scale**2))
    if not (np.isfinite(v_naive) and np.isfinite(v_robust)) or v_naive <= 0:
        return 1.0
    return float(max(1.0, np.sqrt(v_robust / v_naive)))


def component_table(out: dict) -> list[dict]:
    """Per component: position, errors, r39, spectrum and TS as plain numbers (JSON-ready)."""
    res: FitResult = out["result"]
    rows = []
    for s in components(res.model):
        p = {q.name: q.value for q in s.parameters}
        err = {k.split(".", 1)[1]: v for k, v in res.errors.items() if k.startswith(s.name + ".")}
        i_ra, i_dec = (res.free_keys.index(f"{s.name}.{k}") if f"{s.name}.{k}" in res.free_keys else None
                       for k in ("lon_0", "lat_0"))  # fmt: skip
        cov = res.covariance
        if i_ra is not None and i_dec is not None and np.all(np.isfinite(cov[[i_ra, i_dec]][:, [i_ra, i_dec]])):
            c = cov[np.ix_([i_ra, i_dec], [i_ra, i_dec])].copy()
            c[0, :] *= np.cos(np.radians(p["lat_0"]))
            c[:, 0] *= np.cos(np.radians(p["lat_0"]))
            # the circle that holds 95 % of the error ellipse, its variances scaled by the sandwich factor
            pos_err95 = radius95(c) * out.get("position_scale", {}).get(s.name, 1.0)
        else:
            pos_err95 = float("nan")
        rows.append({
            "component": s.name,
            "dataset": s.datasets[0] if s.datasets else "",
            "ra": p["lon_0"],
            "dec": p["lat_0"],
            "pos_err95": pos_err95,
            "r39": p.get("sigma", 0.0),
            "r39_err": err.get("sigma", float("nan")) if "sigma" in p else float("nan"),
            "amplitude": p["amplitude"],
            "amplitude_err": err.get("amplitude", float("nan")),
            "index": p["index"],
            "index_err": err.get("index", float("nan")),
            "reference_tev": p["reference"],
            "ts": float(out["ts"].get(s.name, float("nan"))),
            "ts_ext": float(out["ts_ext"].get(s.name, 0.0)),
        })  # fmt: skip
    return rows

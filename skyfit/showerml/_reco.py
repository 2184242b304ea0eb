"""Learned event reconstruction: direction and energy from the hits, trained on gammas.

**Direction.** A per-hit network reads each hit in the frame of the classic reconstruction (distance from
the core, log10 signal, expected particle number, arrival-time residual from the curved front, the front's
expected first-arrival spread, the event's hit count) and returns a weight and a time correction per hit.
A weighted least-squares plane fit of the corrected times (solved in closed form per event, so the whole
chain is differentiable) gives the correction to the classic direction. The loss is the squared angular
error in units of the classic PSF68 of the event's bin, so every bin counts. The plane fit's covariance
gives each event's uncertainty; one scale per bin, set on the tuning sample, calibrates it (2-D 68 %
containment at 1.515 sigma).

**Energy.** An MLP on event quantities (log10 nHit, summed signal, CxPE40, the core's position, zenith,
the dispersion) with a Gaussian likelihood head: log10 E and its sigma, the sigma scaled per bin on the
tuning sample (68 % of abs(error) < sigma). The classic estimate is a least-squares line in the same bins
on log10 of the summed signal and sec(zenith).
"""

from __future__ import annotations

import functools

import numpy as np

from ..showers import WCDA_NHIT_EDGES, angular_error_deg
from ..showers import physics as ph
from ..showers.reconstruct import reconstruct
from ._common import EventHits, ShowerMLError, make_step, train_mlp
from ._modelfile import ShowerModel

__all__ = [
    "HIT_FEATURES",
    "ENERGY_FEATURES",
    "train_reco_model",
    "reconstruct_learned",
    "reco_performance",
    "energy_features",
    "classic_energy",
]

HIT_FEATURES = ("R_100M", "LOG10_Q", "LOG10_N_EST", "RESIDUAL_10NS", "SPREAD_10NS", "LOG10_NHIT")
ENERGY_FEATURES = ("LOG10_NHIT", "LOG10_SUM_SIGNAL", "LOG10_CXPE40", "CORE_X_100M", "CORE_Y_100M", "SEC_ZENITH",
                   "DISPERSION_100M", "LOG10_COMPACTNESS")  # fmt: skip
C = 0.299792458  # m/ns
R68_2D = 1.515  # 68 % radius of a circular 2-D Gaussian in sigmas


def _hit_frame(eh: EventHits, rec: dict):
    """Classic-frame per-hit arrays of the kept hits: (features, seg, dx, dy, residual (ns), kept index)."""
    h, lay = eh.main, eh.layout
    kept = np.flatnonzero(rec["KEPT"])
    seg = h.shower[kept]
    x, y = lay.x[h.detector[kept]], lay.y[h.detector[kept]]
    dx, dy = x - rec["REC_CORE_X"][seg], y - rec["REC_CORE_Y"][seg]
    r = np.hypot(dx, dy)
    q = h.signal[kept]
    n_est = np.maximum(q / max(lay.pe_per_em, 1e-9), 1.0) if lay.em_sensitive else np.maximum(q, 1.0)
    zen, az = np.radians(np.nan_to_num(rec["REC_ZENITH"])), np.radians(np.nan_to_num(rec["REC_AZIMUTH"]))
    nx, ny = np.sin(zen) * np.sin(az), np.sin(zen) * np.cos(az)
    spread = ph.front_thickness_ns(r) / n_est
    tc = h.time[kept] + (nx[seg] * dx + ny[seg] * dy) / C - ph.front_delay_ns(r) - spread
    w = 1.0 / (lay.time_jitter_ns**2 + spread**2)
    sw = np.bincount(seg, weights=w, minlength=eh.n)
    t0 = np.bincount(seg, weights=w * tc, minlength=eh.n) / np.maximum(sw, 1e-12)
    res = tc - t0[seg]
    nhit = np.maximum(rec["NHIT"], 1)[seg]
    feats = np.stack([r / 100.0, np.log10(np.maximum(q, 0.1)), np.log10(n_est), np.clip(res, -200, 200) / 10.0,
                      spread / 10.0, np.log10(nhit)], 1)  # fmt: skip
    return feats, seg, dx / 100.0, dy / 100.0, np.clip(res, -200, 200), kept


def _true_offsets(table, rec):
    """The true direction minus the classic one, as (nx, ny) offsets (direction cosines)."""

    def nvec(z, a):
        z, a = np.radians(np.nan_to_num(z)), np.radians(np.nan_to_num(a))
        return np.sin(z) * np.sin(a), np.sin(z) * np.cos(a)

    tx, ty = nvec(table["TRUE_ZENITH"], table["TRUE_AZIMUTH"])
    cx, cy = nvec(rec["REC_ZENITH"], rec["REC_AZIMUTH"])
    return np.stack([tx - cx, ty - cy], 1)


def _hit_mlp(width, seed, n_out: int = 2):
    import equinox as eqx
    import jax

    return eqx.nn.MLP(len(HIT_FEATURES), n_out, width, 2, activation=jax.nn.gelu, key=jax.random.PRNGKey(seed))


@functools.lru_cache(maxsize=8)
def _fit_fn(n_events: int, ridge: float = 1e-3):
    """jitted (net, standardised hit features, seg, dx, dy, residual, valid) -> (offset (n, 2) in direction
    cosines, covariance (n, 2, 2) in units of the fit's time scale)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    @eqx.filter_jit
    def fit(net, xh, seg, dx, dy, res, valid):
        out = jax.vmap(net)(xh)
        w = jnp.exp(jnp.clip(out[:, 0], -8.0, 8.0)) * valid
        t = (res - 10.0 * out[:, 1]) / 100.0  # the corrected residual, in 100 ns
        cols = (jnp.ones_like(dx), dx, dy)

        def ssum(v):
            return jax.ops.segment_sum(v, seg, num_segments=n_events)

        m = jnp.stack([jnp.stack([ssum(w * a * b) for b in cols], -1) for a in cols], -2)
        rhs = jnp.stack([ssum(w * a * t) for a in cols], -1)
        # ridge: the starting direction as a prior (an event without hits keeps it); with a third output,
        # each event's hits also set its weight (the mean of their outputs: how far to trust the start)
        lam = jnp.full(n_events, ridge)
        if out.shape[1] > 2:
            cnt = ssum(valid)
            lam = ridge * jnp.exp(jnp.clip(ssum(out[:, 2] * valid) / jnp.maximum(cnt, 1.0), -12.0, 12.0))
        m = m + jnp.stack([jnp.full(n_events, 1e-6), lam, lam], -1)[:, :, None] * jnp.eye(3)
        sol = jnp.linalg.solve(m, rhs[..., None])[..., 0]
        cov = jnp.linalg.inv(m)[:, 1:, 1:]
        # t = t0 + a x + b y with x in 100 m and t in 100 ns: a (ns/m) = slope; n = -a c
        return -sol[:, 1:] * C, cov * C**2

    return fit


def _batches(eh: EventHits, rec: dict, batch: int):
    """Padded per-batch arrays of ``batch`` events (hits padded to a multiple of 4096)."""
    feats, seg, dx, dy, res, _ = _hit_frame(eh, rec)
    bounds = np.searchsorted(seg, np.arange(0, eh.n + batch, batch))
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=False)):
        if i * batch >= eh.n:
            break
        k = b - a
        pad = max(4096 * int(np.ceil(max(k, 1) / 4096)), 4096)

        def p(v, fill=0.0, k=k, pad=pad):
            out = np.full((pad,) + v.shape[1:], fill, float)
            out[:k] = v
            return out

        yield i * batch, (p(feats[a:b]), p(seg[a:b] - i * batch, 0).astype(np.int32), p(dx[a:b]), p(dy[a:b]),
                          p(res[a:b]), p(np.ones(k)))  # fmt: skip


def _bins(eh: EventHits, rec: dict) -> np.ndarray:
    """The analysis bin: WCDA's nHit segment from the classic reconstruction, KM2A's ``BIN`` (log10 N_e)."""
    if eh.instrument == "WCDA":
        return np.searchsorted(WCDA_NHIT_EDGES, rec["NHIT"], side="right") - 1
    if "BIN" not in eh.table:
        raise ShowerMLError("a KM2A event table needs its BIN column (log10 N_e bins) for the learned reconstruction")
    return np.asarray(eh.table["BIN"], int)


def _usable(eh: EventHits, rec: dict) -> np.ndarray:
    t = eh.table
    return np.asarray(t["CORE_IN_ARRAY"], bool) & np.isfinite(rec["REC_ZENITH"]) & (_bins(eh, rec) >= 0)


def energy_features(table: dict, rec: dict) -> np.ndarray:
    sec = np.clip(1.0 / np.cos(np.radians(np.nan_to_num(rec["REC_ZENITH"]))), 1.0, 2.5)  # a failed fit: capped
    return np.stack([np.log10(np.maximum(rec["NHIT"], 1)), np.log10(np.maximum(rec["SUM_SIGNAL"], 1.0)),
                     np.log10(np.maximum(rec["CXPE40"], 1.0)), rec["REC_CORE_X"] / 100.0, rec["REC_CORE_Y"] / 100.0,
                     sec, rec["DISPERSION"] / 100.0, np.log10(np.maximum(rec["COMPACTNESS"], 1e-3))], 1)  # fmt: skip


def _classic_energy_coef(table, rec, ok) -> list:
    le = np.log10(np.maximum(rec["SUM_SIGNAL"], 1.0))
    sec = np.clip(1.0 / np.cos(np.radians(np.nan_to_num(rec["REC_ZENITH"]))), 1.0, 2.5)  # a failed fit: capped
    a = np.stack([np.ones_like(le), le, le * le, sec, sec * le], 1)
    return [float(c) for c in np.linalg.lstsq(a[ok], np.log10(table["TRUE_ENERGY"][ok]), rcond=None)[0]]


def classic_energy(rec: dict, coef) -> np.ndarray:
    """The classic log10 E (TeV): a quadratic in log10 of the summed signal, with sec(zenith)."""
    le = np.log10(np.maximum(rec["SUM_SIGNAL"], 1.0))
    sec = np.clip(1.0 / np.cos(np.radians(np.nan_to_num(rec["REC_ZENITH"]))), 1.0, 2.5)  # a failed fit: capped
    return np.stack([np.ones_like(le), le, le * le, sec, sec * le], 1) @ np.asarray(coef)


def _train_direction(eh, rec, ok, epochs, seed, width, progress, ridge, n_out):
    import equinox as eqx
    import jax.numpy as jnp
    import optax

    feats = _hit_frame(eh, rec)[0]
    mean, scale = feats.mean(0), feats.std(0) + 1e-9
    target = np.nan_to_num(_true_offsets(eh.table, rec))
    bins = _bins(eh, rec)
    err = angular_error_deg(eh.table["TRUE_ZENITH"], eh.table["TRUE_AZIMUTH"], rec["REC_ZENITH"], rec["REC_AZIMUTH"])
    psf = {b: np.percentile(err[ok & (bins == b)], 68) for b in np.unique(bins[ok])}
    unit = np.radians(np.array([psf.get(b, 1.0) for b in bins]))  # each event's error in its bin's PSF68
    weight = ok / unit**2
    batch = 256
    data = [(s, tuple(jnp.asarray(v) for v in ((a - mean) / scale, *rest)))
            for s, (a, *rest) in _batches(eh, rec, batch)]  # fmt: skip
    net = _hit_mlp(width, seed, n_out)
    opt = optax.adamw(optax.cosine_decay_schedule(2e-3, epochs * len(data)), weight_decay=1e-4)
    state = opt.init(eqx.filter(net, eqx.is_array))
    fit = _fit_fn(batch, ridge)

    def loss(net, arrays, tgt, wt):
        off, _ = fit(net, *arrays)
        return jnp.sum(wt * jnp.sum((off - tgt) ** 2, 1)) / jnp.maximum(jnp.sum(wt > 0), 1)

    step = make_step(loss, opt)

    def padded(v, s):
        out = np.zeros((batch,) + v.shape[1:])
        out[: min(batch, len(v) - s)] = v[s : s + batch]
        return jnp.asarray(out)

    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        total = 0.0
        for i in rng.permutation(len(data)):
            s, arrays = data[i]
            net, state, v = step(net, state, arrays, padded(target, s), padded(weight, s))
            total += float(v)
        if progress:
            print(f"reco: epoch {epoch + 1}/{epochs}, training loss {total / len(data):.4f}", flush=True)
    return net, mean, scale


def _direction(model: ShowerModel, eh: EventHits, rec: dict) -> tuple:
    """(offsets (n, 2) in direction cosines, raw sigma (n,) in rad before the per-bin scale)."""
    import jax.numpy as jnp

    net = model.net[0]
    mean, scale = np.asarray(model.mean), np.asarray(model.scale)
    batch = 256
    off, sig = np.zeros((eh.n, 2)), np.full(eh.n, np.nan)
    fit = _fit_fn(batch, float(model.hyper.get("ridge", 1e-3)))
    for s, (a, *rest) in _batches(eh, rec, batch):
        o, cov = fit(net, jnp.asarray((a - mean) / scale), *(jnp.asarray(v) for v in rest))
        k = min(batch, eh.n - s)
        off[s : s + k] = np.asarray(o)[:k]
        sig[s : s + k] = np.sqrt(0.5 * np.trace(np.asarray(cov)[:k], axis1=1, axis2=2))
    return off, sig


def _apply_offsets(rec, off):
    z, a = np.radians(np.nan_to_num(rec["REC_ZENITH"])), np.radians(np.nan_to_num(rec["REC_AZIMUTH"]))
    nx, ny = np.sin(z) * np.sin(a) + off[:, 0], np.sin(z) * np.cos(a) + off[:, 1]
    s = np.clip(np.hypot(nx, ny), 0, 1)
    zen = np.where(np.isfinite(rec["REC_ZENITH"]), np.degrees(np.arcsin(s)), np.nan)
    return zen, np.degrees(np.arctan2(nx, ny)) % 360.0


def _start(eh: EventHits, frame: str) -> tuple:
    """(the classic reconstruction, the starting solution): the classic one, or with ``frame='strong'`` the
    strong classic's direction and core (:func:`skyfit.showers.fit_showers`, the classic where it fails)."""
    rec = reconstruct(eh.main, eh.layout)
    if frame == "classic":
        return rec, rec
    if frame != "strong":
        raise ShowerMLError(f"frame must be 'classic' or 'strong', got {frame!r}")
    from ..showers import fit_showers

    ldf = fit_showers(eh.main, eh.layout, rec, rec["KEPT"])
    start = dict(rec)
    for a, b in (("REC_ZENITH", "LDF_ZENITH"), ("REC_AZIMUTH", "LDF_AZIMUTH"), ("REC_CORE_X", "LDF_CORE_X"),
                 ("REC_CORE_Y", "LDF_CORE_Y")):  # fmt: skip
        start[a] = np.where(np.isfinite(rec[a]), ldf[b], rec[a])
    return rec, start


def _calibrate(x_err, sigma, bins, k: float, min_events: int = 30) -> dict:
    """Per bin: the factor s with a fraction 0.68 of events inside abs(err) < k s sigma."""
    out = {}
    for b in np.unique(bins[bins >= 0]):
        m = (bins == b) & np.isfinite(x_err) & np.isfinite(sigma) & (sigma > 0)
        if m.sum() >= min_events:
            out[str(int(b))] = float(np.percentile(x_err[m] / (k * sigma[m]), 68))
    return out


def _scaled(sigma, bins, factors: dict) -> np.ndarray:
    f = np.array([factors.get(str(int(b)), np.nan) for b in bins])
    return sigma * f


def train_reco_model(train: EventHits, tune: EventHits, epochs: int = 12, seed: int = 0, width: int = 32,
                     progress: bool = False, frame: str = "classic",
                     ridge: float | None = None) -> ShowerModel:  # fmt: skip
    """Direction and energy networks trained on simulated gammas (WCDA or KM2A), their uncertainties scaled per
    bin on ``tune`` (an independent sample). ``frame``: start from the classic solution, or from the strong
    classic's (``'strong'``: :func:`skyfit.showers.fit_showers`; the network then also sets, per event, how
    far to trust that start)."""
    classic, rec = _start(train, frame)
    ok = _usable(train, classic)
    if ok.sum() < 50:
        raise ShowerMLError(f"only {int(ok.sum())} usable training events; simulate more gammas")
    # the starting direction's weight in the plane fit: negligible from the classic start; from the strong
    # classic's, comparable to the hits' (about 30 in units of sum w (r / 100 m)^2), so that it is refined
    ridge = (1e-3 if frame == "classic" else 30.0) if ridge is None else float(ridge)
    n_out = 2 if frame == "classic" else 3  # from the strong classic: a learned trust in the start per event
    hit_net, mean, scale = _train_direction(train, rec, ok, epochs, seed, width, progress, ridge, n_out)
    xe = energy_features(train.table, classic)
    e_net, (e_mean, e_scale), hist = train_mlp(xe[ok], np.log10(train.table["TRUE_ENERGY"][ok])[:, None],
                                               "gaussian", 2, width=48, depth=3, epochs=40, seed=seed)  # fmt: skip
    hyper = {
        "n_in": len(HIT_FEATURES),
        "n_out": n_out,
        "width": width,
        "depth": 2,
        "energy_width": 48,
        "energy_depth": 3,
        "ridge": ridge,
    }
    meta = {"energy_mean": e_mean.tolist(), "energy_scale": e_scale.tolist(), "energy_features": list(ENERGY_FEATURES),
            "classic_energy_coef": _classic_energy_coef(train.table, classic, ok), "epochs": epochs, "frame": frame,
            "n_train": int(ok.sum()), "sigma_scale": {}, "energy_sigma_scale": {}}  # fmt: skip
    model = ShowerModel("reco", train.instrument, HIT_FEATURES, hyper, (hit_net, e_net), mean, scale, meta)
    out = reconstruct_learned(model, tune, calibrated=False)
    ok_t = _usable(tune, out["classic"])
    bins = np.where(ok_t, _bins(tune, out["classic"]), -1)
    err = np.radians(angular_error_deg(tune.table["TRUE_ZENITH"], tune.table["TRUE_AZIMUTH"], out["ML_ZENITH"],
                                       out["ML_AZIMUTH"]))  # fmt: skip
    meta["sigma_scale"] = _calibrate(err, out["ML_SIGMA_RAD_RAW"], bins, R68_2D)
    e_err = np.abs(out["ML_LOG10_E"] - np.log10(tune.table["TRUE_ENERGY"]))
    meta["energy_sigma_scale"] = _calibrate(e_err, out["ML_LOG10_E_SIGMA_RAW"], bins, 1.0)
    return model


def reconstruct_learned(model: ShowerModel, eh: EventHits, calibrated: bool = True) -> dict:
    """Per event: ``ML_ZENITH``, ``ML_AZIMUTH``, ``ML_SIGMA_DEG`` (the calibrated 1-D sigma of the direction),
    ``ML_LOG10_E`` and ``ML_LOG10_E_SIGMA``, ``CLASSIC_LOG10_E``; ``classic`` holds the classic
    reconstruction it starts from."""
    from ._common import mlp_apply

    model.check_array(eh.instrument, "the event table")
    if model.task != "reco":
        raise ShowerMLError(f"a {model.task!r} model cannot reconstruct events; load a 'reco' model")
    classic, rec = _start(eh, model.meta.get("frame", "classic"))
    off, sig = _direction(model, eh, rec)
    zen, az = _apply_offsets(rec, off)
    xe = energy_features(eh.table, classic) - np.asarray(model.meta["energy_mean"])
    xe = xe / np.asarray(model.meta["energy_scale"])
    eo = np.asarray(mlp_apply(model.net[1], np.nan_to_num(xe)), float)
    out = {"ML_ZENITH": zen, "ML_AZIMUTH": az, "ML_SIGMA_RAD_RAW": sig, "ML_LOG10_E": eo[:, 0],
           "ML_LOG10_E_SIGMA_RAW": np.exp(np.clip(eo[:, 1], -7, 7)),
           "CLASSIC_LOG10_E": classic_energy(classic, model.meta["classic_energy_coef"]), "classic": classic,
           "start": rec}  # fmt: skip
    if calibrated:
        bins = _bins(eh, classic)
        out["ML_SIGMA_DEG"] = np.degrees(_scaled(sig, bins, model.meta["sigma_scale"]))
        out["ML_LOG10_E_SIGMA"] = _scaled(out["ML_LOG10_E_SIGMA_RAW"], bins, model.meta["energy_sigma_scale"])
    return out


def reco_performance(model: ShowerModel, test: EventHits, strong: dict | None = None, seed: int = 0) -> dict:
    """Per analysis bin on a test sample: PSF68 of the classic, the strong classic (``strong``: per-event
    ``LDF_ZENITH``/``LDF_AZIMUTH``, optional) and the learned direction, with 68 % bootstrap intervals; the
    coverage of the learned sigma (share with error < 1.515 sigma); the energy resolution (68 % of
    abs(log10 E error)) classic and learned, and the energy sigma's coverage."""
    from ._common import bootstrap_interval

    out = reconstruct_learned(model, test)
    rec, t = out["classic"], test.table
    if strong is None and model.meta.get("frame") == "strong":  # the starting solution is the strong classic
        strong = {"LDF_ZENITH": out["start"]["REC_ZENITH"], "LDF_AZIMUTH": out["start"]["REC_AZIMUTH"]}
    ok = _usable(test, rec)
    bins = _bins(test, rec)
    errs = {
        "classic": angular_error_deg(t["TRUE_ZENITH"], t["TRUE_AZIMUTH"], rec["REC_ZENITH"], rec["REC_AZIMUTH"]),
        "ml": angular_error_deg(t["TRUE_ZENITH"], t["TRUE_AZIMUTH"], out["ML_ZENITH"], out["ML_AZIMUTH"]),
    }
    if strong is not None:
        errs["strong"] = angular_error_deg(t["TRUE_ZENITH"], t["TRUE_AZIMUTH"], strong["LDF_ZENITH"],
                                           strong["LDF_AZIMUTH"])  # fmt: skip
    le = np.log10(t["TRUE_ENERGY"])
    res = {}
    for b in range(int(bins.max(initial=-1)) + 1):
        idx = np.flatnonzero(ok & (bins == b))
        row = {"n_test": int(idx.size)}
        if idx.size < 20:
            res[b] = row
            continue
        for name, e in errs.items():
            row[f"psf68_{name}"] = bootstrap_interval(lambda i, e=e, idx=idx: np.nanpercentile(e[idx[i]], 68),
                                                      idx.size, seed)  # fmt: skip
        sig = out["ML_SIGMA_DEG"][idx]
        fin = np.isfinite(sig)  # NaN: a bin without a calibration (too few tuning events)
        row["coverage_ml"] = float(np.mean(errs["ml"][idx][fin] < R68_2D * sig[fin])) if fin.any() else np.nan
        for name, key in (("classic", "CLASSIC_LOG10_E"), ("ml", "ML_LOG10_E")):
            d = np.abs(out[key] - le)
            row[f"energy_res68_{name}"] = bootstrap_interval(lambda i, d=d, idx=idx: np.percentile(d[idx[i]], 68),
                                                             idx.size, seed)  # fmt: skip
        es = out["ML_LOG10_E_SIGMA"][idx]
        fin = np.isfinite(es)
        row["energy_coverage_ml"] = (float(np.mean(np.abs(out["ML_LOG10_E"] - le)[idx][fin] < es[fin])) if fin.any()
                                     else np.nan)  # fmt: skip
        res[b] = row
    return res

"""Joint lateral-distribution and shower-front likelihood fit per shower (the "strong classic" reconstruction).

:func:`fit_showers` refits each shower that :func:`~skyfit.showers.reconstruct.reconstruct` reconstructed,
starting from its classic solution, by maximum likelihood over seven parameters: the core (x, y), the size
N (ln N) and age s of an NKG lateral density [physics.nkg_density], and the plane front's direction cosines
(l, m; toward the source, x east, y north) and time t0. The likelihood has three parts:

* **Signals** of the kept hits: the expected electromagnetic particles of a detector at shower-plane
  distance r are ``mu = rho_NKG(r; N, s) A cos(theta) (1 + conversion)``; the detector is hit with
  probability ``1 - exp(-(mu c + b))`` (c: the chance that a particle gives a signal, ``1 - exp(-pe)`` for
  photoelectrons; b: dark noise in the time window, at least 1e-4), and its signal given a hit is a
  Student-t (4 degrees of freedom, so that muons and sub-cascades do not pull it) with the conditional mean
  and variance of the compound Poisson signal (Poisson photoelectrons of Poisson particles), plus 10 %
  shower fluctuations. Hits among the ``PATCH`` (128) detectors nearest to the classic core add the hit
  probability; the silent detectors among them add ``-(mu c + b)`` (no hit); hits farther out enter
  conditionally on being hit.
* **Arrival times**: the first of n particles in a front of thickness sigma_t(r) behind the curved front
  ``t0 - (l x + m y)/c + front_delay_ns(r)``, so an exponentially modified Gaussian of decay
  ``front_thickness_ns(r) / n`` (n estimated from the signal) and width the detector jitter -- the
  simulation's own model -- mixed with 3 % of a uniform 100 ns outlier density for the noise hits that
  survive the classic filter.
* A Gaussian prior on the age, 1.3 +- 0.3 (the age is kept within 0.7-1.9 by a tanh map).

The fit uses the at most ``max_hits`` kept hits of each shower chosen alternately by signal and by timing
weight times lever arm. It is vectorised over showers with ``jax.vmap`` on padded arrays (showers sorted by
their number of hits, ``CHUNK`` = 512 at a time, each call padded to 64, 128, 256 ... ``max_hits`` slots: a
few compiled shapes), in float64: the exact Hessian (made positive definite) at the start, 24
Levenberg-Marquardt steps with BFGS updates of it, and the exact Hessian at the end, whose inverse gives the
covariance: ``LDF_SIGMA_DIR_DEG`` is sqrt(trace / 2) of the covariance of the unit vector (l, m, n_z)
(at the zenith: of the direction cosines alone), in degrees. A fit is ``LDF_CONVERGED`` when it is finite,
its Hessian positive definite, its Newton decrement below 0.1, it used at least 8 hits, and its core,
zenith and age are sane; otherwise the columns hold the classic direction and core, the starting size,
the prior age and a sigma of 90 deg.

Measured on WCDA gammas (80,000 thrown, 0.3-10 TeV, index 2.6, zenith < 40 deg, 15 kHz noise, seed 3;
the 7,182 events with CORE_IN_ARRAY and NHIT >= 60; 94 % converge), PSF68 (deg) per nHit bin, classic ->
this fit with ``max_hits=256`` (with ``max_hits=1024``), and the median core error (m):

=========  ======  ================  ====================  ===================  ==========
nHit       events  classic PSF68     fit PSF68 (1024)      median core error    1.515 sigma
=========  ======  ================  ====================  ===================  ==========
60-100     2360    1.275             0.625 (0.625)         9.2 -> 6.8           0.45
100-200    2578    0.746             0.326 (0.326)         5.4 -> 3.4           0.57
200-300    1007    0.501             0.209 (0.205)         3.4 -> 2.0           0.62
300-500    742     0.356             0.178 (0.148)         2.3 -> 1.4           0.65
500-800    309     0.233             0.176 (0.106)         1.6 -> 1.2           0.60
800-       186     0.157             0.155 (0.078)         0.95 -> 0.95         0.61
=========  ======  ================  ====================  ===================  ==========

The PSF68 is halved in the two lowest bins (0.49 and 0.44 of the classic); the last column is the fraction
of converged events whose angular error is below 1.515 sigma (68 % for a calibrated circular Gaussian):
0.55 overall, so the sigmas are ~1.2-1.4 times too small at low nHit (the particle number in each detector
is only estimated from its signal). Above nHit 300 the 256 hits leave information unused: ``max_hits=1024``
halves the PSF there again. Speed after compilation, on 2 CPU cores (1.6 in use): 910 showers per second
on those 7,182 events (12.6 CPU-seconds), 1,800 per second over all 80,000 thrown showers (most have few
hits and use the narrow padded shapes); ``max_hits=1024`` is ~15 % slower on the selected events. To reproduce::

    import numpy as np
    from skyfit.showers import Hits, angular_error_deg, hits_table, simulate_shower_events, wcda_layout
    from skyfit.showers.ldf_fit import fit_showers
    from skyfit.showers.reconstruct import reconstruct

    recs = []
    tab = simulate_shower_events("WCDA", "gamma", 80_000, e_min_tev=0.3, e_max_tev=10, seed=3, hits_out=recs)
    h = hits_table(recs)
    o = np.argsort(h["EVENT_ID"], kind="stable")
    hits = Hits(h["EVENT_ID"][o], h["DETECTOR"][o].astype(np.int64), h["SIGNAL"][o], h["TIME_NS"][o],
                h["NOISE"][o], 80_000)
    rec = reconstruct(hits, wcda_layout())
    out = fit_showers(hits, wcda_layout(), rec, rec.pop("KEPT"))
    i = tab["EVENT_ID"]  # the table's rows are in time order
    sel = tab["CORE_IN_ARRAY"] & (tab["NHIT"] >= 60)
    err = angular_error_deg(tab["TRUE_ZENITH"], tab["TRUE_AZIMUTH"], out["LDF_ZENITH"][i], out["LDF_AZIMUTH"][i])
    # PSF68 per bin of np.searchsorted(WCDA_NHIT_EDGES, tab["NHIT"], side="right") - 1 over sel

(fitting only the selected events, as done for the table, gives the same per-event results.)
"""

from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, log_ndtr

import skyfit._precision  # noqa: F401  (float64 in JAX)
import skyfit.showers.physics as ph

from .detectors import Layout
from .simulate import C_M_PER_NS, Hits

__all__ = ["fit_showers"]

AGE_PRIOR = (1.3, 0.3)  # Gaussian prior on the NKG age (mean, sigma): young-to-old gamma showers
STUDENT_NU = 4.0  # degrees of freedom of the Student-t signal pdf (muons, sub-cascades: heavy tail)
OUTLIER_FRACTION = 0.03  # weight of the uniform (noise) component of the arrival-time pdf
OUTLIER_WIDTH_NS = 100.0  # its width
NOISE_HIT_FLOOR = 1e-4  # least probability per detector of a hit not from the shower's EM particles
N_STEPS = 24  # damped Newton (Levenberg-Marquardt) steps per shower
PATCH = 128  # detectors nearest to the classic core whose silence enters the likelihood
MAX_DECREMENT = 0.1  # converged: g^T H^-1 g below this (the parameters within ~0.3 sigma of the optimum)
MIN_HITS = 8  # fewer selected hits: no fit (classic values, LDF_CONVERGED False)
CHUNK = 512  # showers per vectorised call
FALLBACK_SIGMA_DEG = 90.0  # LDF_SIGMA_DIR_DEG without a fit: no information
N_PAR = 7  # core x, core y (m, from the classic core), ln size, age, l, m (direction cosines), t0 (ns)


def _config(layout: Layout) -> tuple:
    """The layout's response as a hashable tuple of floats (static in the compiled fit)."""
    if not layout.em_sensitive:
        raise ValueError(f"layout {layout.name!r} sees no electromagnetic particles: no lateral distribution")
    g = float(layout.pe_per_em)
    photo = bool(layout.photoelectrons)
    c_hit = float(1.0 - np.exp(-g)) if photo else 1.0  # P(signal > 0 | one particle)
    var_per = g * (1.0 + g) if photo else g * g  # signal variance per expected particle (compound Poisson)
    conv = 1.0 + layout.photon_conversion * ph.PHOTONS_PER_ELECTRON
    noise = max(layout.noise_rate_hz * 40e-9, NOISE_HIT_FLOOR)
    soft = max(layout.area_m2 / 8.0, 0.25)  # m^2: the core singularity averaged over a detector
    return (g, c_hit, var_per, float(layout.area_m2 * conv), float(layout.time_jitter_ns), noise, soft)


def _front_delay(r):
    """:func:`skyfit.showers.physics.front_delay_ns` in JAX."""
    return 7e-4 * r**2 / (1.0 + r / 300.0)


def _front_thickness(r):
    """:func:`skyfit.showers.physics.front_thickness_ns` in JAX."""
    return jnp.minimum(1.6 * (1.0 + r / 30.0) ** 1.5, 60.0)


def _log_nkg(r, ln_size, age):
    """ln of the NKG density (per m^2) [physics.nkg_density] at shower-plane distance ``r`` (m)."""
    rm = ph.R_MOLIERE_M
    lc = gammaln(4.5 - age) - gammaln(age) - gammaln(4.5 - 2.0 * age) - jnp.log(2.0 * jnp.pi * rm**2)
    x = r / rm
    return ln_size + lc + (age - 2.0) * jnp.log(x) + (age - 4.5) * jnp.log1p(x)


def _age(u):
    """The NKG age from its unbounded parameter: within the valid 0.7-1.9."""
    return AGE_PRIOR[0] + 0.6 * jnp.tanh(u)


def _geometry(p, x, y, cfg):
    """Shower-plane distance (m, softened at the core), plane time (ns) and cos(zenith) of detectors."""
    xc, yc, _, _, l_, m_, t0 = p
    dx, dy = x - xc, y - yc
    along = l_ * dx + m_ * dy
    r2 = jnp.maximum(dx * dx + dy * dy - along * along, 0.0)
    cos_z = jnp.sqrt(jnp.maximum(1.0 - l_ * l_ - m_ * m_, 1e-4))
    return jnp.sqrt(r2 + cfg[6]), r2, t0 - (l_ * x + m_ * y) / C_M_PER_NS, cos_z


def _negloglike(p, ev, cfg):
    """Negative log-likelihood of one shower: hit signals, silent patch detectors, arrival times, age prior."""
    g, c_hit, var_per, area_conv, jitter, noise, _ = cfg
    hx, hy, hq, ht, hmask, hpatch, px, py, pmask = ev
    ln_size, age = p[2], _age(p[3])
    # lateral distribution: expected EM particles per detector
    r, r2, t_plane, cos_z = _geometry(p, hx, hy, cfg)
    mu = jnp.exp(_log_nkg(r, ln_size, age)) * area_conv * cos_z
    lam = mu * c_hit + noise
    log_p_hit = jnp.log(-jnp.expm1(-lam))
    p_hit = jnp.exp(log_p_hit)
    mean = g * mu + 1.3 * noise  # noise hits: 1 + Poisson(0.3) photoelectrons
    cmean = mean / p_hit  # conditional on a hit
    cvar = (var_per * mu + mean * mean) / p_hit - cmean**2
    cvar = jnp.maximum(cvar, 0.0) + (0.1 * mean) ** 2 + 1.0
    z2 = (hq - cmean) ** 2 / cvar
    log_sig = -0.5 * (STUDENT_NU + 1.0) * jnp.log1p(z2 / STUDENT_NU) - 0.5 * jnp.log(cvar)
    ll_hits = jnp.sum(hmask * (log_sig + jnp.where(hpatch, log_p_hit, 0.0)))
    rp, _, _, _ = _geometry(p, px, py, cfg)
    mu_p = jnp.exp(_log_nkg(rp, ln_size, age)) * area_conv * cos_z
    ll_silent = -jnp.sum(pmask * (mu_p * c_hit + noise))
    # shower front: exponentially modified Gaussian (first of n particles in a front of thickness
    # sigma_t(r): delay ~ Exp(sigma_t / n); detector jitter), with a uniform outlier component
    r_true = jnp.sqrt(r2 + 1e-6)
    n_est = jnp.maximum(hq / g, 1.0)
    tau = jnp.maximum(_front_thickness(r_true) / n_est, 0.02)
    d = ht - t_plane - _front_delay(r_true)
    log_emg = -jnp.log(tau) + 0.5 * (jitter / tau) ** 2 - d / tau + log_ndtr(d / jitter - jitter / tau)
    log_t = jnp.logaddexp(jnp.log1p(-OUTLIER_FRACTION) + log_emg, np.log(OUTLIER_FRACTION / OUTLIER_WIDTH_NS))
    ll_time = jnp.sum(hmask * log_t)
    prior = 0.5 * ((age - AGE_PRIOR[0]) / AGE_PRIOR[1]) ** 2
    return -(ll_hits + ll_silent + ll_time) + prior


def _positive(h):
    """``h`` made positive definite: the absolute eigenvalues of its diagonally scaled form (floored)."""
    d = jnp.sqrt(jnp.maximum(jnp.abs(jnp.diag(h)), 1e-12))
    w, v = jnp.linalg.eigh(h / d[:, None] / d[None, :])
    w = jnp.maximum(jnp.abs(w), 1e-4)
    return (v * w) @ v.T * d[:, None] * d[None, :]


def _fit_one(p0, ev, cfg):
    """Levenberg-Marquardt from ``p0`` with the exact Hessian (made positive definite) at the start and
    BFGS updates of it after (a fixed number of steps); returns the parameters, the inverse of the exact
    Hessian at the end, the Newton decrement (inf where that Hessian is not positive definite) and the
    objective."""
    fg = jax.value_and_grad(lambda p: _negloglike(p, ev, cfg))
    hess = jax.hessian(lambda p: _negloglike(p, ev, cfg))

    def step(_, state):
        p, fp, gp, b, lam = state
        dscale = jnp.maximum(jnp.abs(jnp.diag(b)), 1e-12)
        trial = p - jnp.linalg.solve(b + lam * jnp.diag(dscale), gp)
        ft, gt = fg(trial)
        ok = jnp.isfinite(ft) & (ft <= fp) & jnp.all(jnp.isfinite(gt))
        s_, y_ = trial - p, gt - gp
        sy = s_ @ y_
        bs = b @ s_
        update = ok & (sy > 1e-8 * jnp.sqrt((s_ @ s_) * (y_ @ y_))) & (s_ @ bs > 0)
        b_new = b - jnp.outer(bs, bs) / jnp.where(update, s_ @ bs, 1.0) + jnp.outer(y_, y_) / jnp.where(update, sy, 1.0)
        return (jnp.where(ok, trial, p), jnp.where(ok, ft, fp), jnp.where(ok, gt, gp), jnp.where(update, b_new, b),
                jnp.where(ok, jnp.maximum(lam * 0.2, 1e-4), lam * 5.0))  # fmt: skip

    f0, g0 = fg(p0)
    state = (p0, f0, g0, _positive(hess(p0)), jnp.asarray(1.0))
    p, fp, gp, _, _ = jax.lax.fori_loop(0, N_STEPS, step, state)
    h = hess(p)
    cov = jnp.linalg.inv(h)
    chol = jnp.linalg.cholesky(h)
    decrement = gp @ cov @ gp
    pd = jnp.all(jnp.isfinite(chol)) & jnp.all(jnp.diag(cov) > 0)
    return p, cov, jnp.where(pd, decrement, jnp.inf), fp


@lru_cache(maxsize=16)
def _compiled(cfg: tuple):
    """The vectorised, compiled fit for one layout response (compiles once per padded shape)."""
    return jax.jit(jax.vmap(lambda p0, ev: _fit_one(p0, ev, cfg)))


def _rank_in_shower(key, seg, n):
    """Rank of each entry by descending ``key`` within its shower; entries ordered as given."""
    order = np.lexsort((-key, seg))
    starts = np.searchsorted(seg[order], np.arange(n + 1))
    rank = np.empty(key.size, np.int64)
    rank[order] = np.arange(key.size) - starts[seg[order]]
    return rank


def _select_hits(hits: Hits, layout: Layout, kept: np.ndarray, core: np.ndarray, max_hits: int) -> tuple:
    """Indices of the at most ``max_hits`` kept hits of each shower that the fit uses, ordered by shower,
    and the start of each shower's run in them: alternately the largest signals (the core, the lateral
    distribution) and the largest timing weight (jitter and front thickness over the particle number)
    times the lever arm (distance from the classic core plus 20 m), so that the large showers keep their
    far hits, which fix the direction."""
    idx = np.flatnonzero(np.asarray(kept, bool))
    seg = hits.shower[idx]
    r = np.hypot(layout.x[hits.detector[idx]] - core[seg, 0], layout.y[hits.detector[idx]] - core[seg, 1])
    n_est = np.maximum(hits.signal[idx] / max(layout.pe_per_em, 1e-9), 1.0)
    lever = (r**2 + 400.0) / (layout.time_jitter_ns**2 + (ph.front_thickness_ns(r) / n_est) ** 2)
    key = np.minimum(2 * _rank_in_shower(hits.signal[idx], seg, hits.n_showers),
                     2 * _rank_in_shower(lever, seg, hits.n_showers) + 1)  # fmt: skip
    use = _rank_in_shower(-key.astype(float), seg, hits.n_showers) < max_hits
    idx = idx[use][np.lexsort((key[use], seg[use]))]
    seg = hits.shower[idx]
    return idx, np.searchsorted(seg, np.arange(hits.n_showers + 1))


def _pad_chunk(hits, layout, sel, bounds, chunk, size, max_hits, core, lm, cfg, tree, hit_keys) -> tuple:
    """Padded per-shower arrays of the showers ``chunk`` (then empty ones up to ``size``) with
    ``max_hits`` hit slots each, and the initial parameters."""
    ids = np.concatenate([chunk, np.full(size - chunk.size, chunk[0])])
    real = np.arange(size) < chunk.size
    first, count = bounds[ids], np.where(real, bounds[ids + 1] - bounds[ids], 0)
    slot = np.arange(max_hits)
    hmask = slot[None, :] < count[:, None]
    take = sel[np.where(hmask, first[:, None] + slot[None, :], 0)] if sel.size else np.zeros(hmask.shape, int)
    det = np.where(hmask, hits.detector[take] if sel.size else 0, 0)
    c0 = core[ids]
    hx = np.where(hmask, layout.x[det] - c0[:, :1], 100.0)
    hy = np.where(hmask, layout.y[det] - c0[:, 1:], 100.0)
    hq = np.where(hmask, hits.signal[take] if sel.size else 1.0, 1.0)
    l0, m0 = lm[ids, 0:1], lm[ids, 1:2]
    along = l0 * hx + m0 * hy
    r0 = np.sqrt(np.maximum(hx * hx + hy * hy - along * along, 0.0))
    t_raw = hits.time[take] if sel.size else np.zeros(hmask.shape)
    tau = ph.front_thickness_ns(r0) / np.maximum(hq / cfg[0], 1.0)  # the mean first-particle delay
    res = np.where(hmask, t_raw + (l0 * hx + m0 * hy) / C_M_PER_NS - ph.front_delay_ns(r0) - tau, np.nan)
    t_ref = np.zeros(size)
    some = hmask.any(1)
    t_ref[some] = np.nanmedian(res[some], axis=1)
    ht = np.where(hmask, t_raw - t_ref[:, None], 0.0)
    # the silent detectors: the PATCH nearest to the classic core that have no hit at all
    _, near = tree.query(c0, k=min(PATCH, layout.n))
    near = near.reshape(size, -1)
    keys = ids[:, None] * layout.n + near
    pos = np.minimum(np.searchsorted(hit_keys, keys), max(hit_keys.size - 1, 0))
    pmask = ~((hit_keys[pos] == keys) if hit_keys.size else np.zeros(keys.shape, bool)) & real[:, None]
    px, py = layout.x[near] - c0[:, :1], layout.y[near] - c0[:, 1:]
    hpatch = np.isin(ids[:, None] * layout.n + det, ids[:, None] * layout.n + near) & hmask
    # initial size: the summed signal over the EM signal per particle and the array's coverage
    # initial size: the summed signal over that of a unit size (NKG of age AGE_PRIOR) in the same detectors
    cos_z = np.sqrt(np.maximum(1.0 - l0[:, 0] ** 2 - m0[:, 0] ** 2, 1e-4))
    rp = np.hypot(px, py)
    unit = np.sum(hmask * ph.nkg_density(np.hypot(r0, 1.0), 1.0, AGE_PRIOR[0]), 1)
    unit += np.sum(pmask * ph.nkg_density(np.hypot(rp, 1.0), 1.0, AGE_PRIOR[0]), 1)
    unit *= cfg[0] * cfg[3] * cos_z
    ln_size = np.log(np.maximum(np.sum(hq * hmask, 1), 10.0) / np.maximum(unit, 1e-9)) - 0.9  # (measured)
    p0 = np.stack([np.zeros(size), np.zeros(size), ln_size, np.zeros(size), l0[:, 0], m0[:, 0],
                   np.zeros(size)], 1)  # fmt: skip
    ev = (hx, hy, hq, ht, hmask.astype(float), hpatch, px, py, pmask.astype(float))
    return p0, ev, count


def _chunks(count: np.ndarray, max_hits: int):
    """(showers, hit slots) of the vectorised calls: showers in order of their number of hits, ``CHUNK``
    at a time, each call with the fewest slots (of 64, 128, 256, ..., ``max_hits``) that hold its hits."""
    widths = [w for w in 2 ** np.arange(6, 16) if w < max_hits] + [max_hits]
    order = np.argsort(count, kind="stable")
    for lo in range(0, order.size, CHUNK):
        chunk = order[lo : lo + CHUNK]
        yield chunk, next(w for w in widths if w >= count[chunk].max())


def fit_showers(hits: Hits, layout: Layout, rec: dict, kept: np.ndarray, max_hits: int = 256) -> dict:
    """Joint maximum-likelihood fit of each shower's lateral distribution and front (module docstring).

    ``rec``: :func:`~skyfit.showers.reconstruct.reconstruct`'s output (its ``REC_*`` columns start the
    fit), ``kept`` its per-hit ``KEPT`` mask; ``max_hits``: the most hits per shower the fit uses. Returns
    per shower, in the order of ``hits``' shower index: ``LDF_ZENITH``, ``LDF_AZIMUTH`` (deg),
    ``LDF_CORE_X``, ``LDF_CORE_Y`` (m), ``LDF_LOG10_SIZE``, ``LDF_AGE``, ``LDF_SIGMA_DIR_DEG`` and
    ``LDF_CONVERGED`` (where False: the classic direction and core)."""
    from scipy.spatial import cKDTree

    cfg = _config(layout)
    n = hits.n_showers
    zen0 = np.asarray(rec["REC_ZENITH"], float)
    az0 = np.asarray(rec["REC_AZIMUTH"], float)
    core = np.stack([np.asarray(rec["REC_CORE_X"], float), np.asarray(rec["REC_CORE_Y"], float)], 1)
    if zen0.shape != (n,) or core.shape != (n, 2) or np.shape(kept) != hits.shower.shape:
        raise ValueError(f"rec must hold {n} showers and kept one flag per hit ({hits.shower.size})")
    start_dir = np.isfinite(zen0) & np.isfinite(az0)
    th, az = np.radians(np.where(start_dir, zen0, 0.0)), np.radians(np.where(start_dir, az0, 0.0))
    lm = np.stack([np.sin(th) * np.sin(az), np.sin(th) * np.cos(az)], 1)
    core = np.nan_to_num(core)
    sel, bounds = _select_hits(hits, layout, kept, core, int(max_hits))
    tree = cKDTree(np.stack([layout.x, layout.y], 1))
    hit_keys = np.unique(hits.shower.astype(np.int64) * layout.n + hits.detector)
    fit = _compiled(cfg)
    out = {k: np.empty(n) for k in ("X", "Y", "LNS", "AGE", "L", "M", "SIG", "DEC", "LNS0")}
    count = np.diff(bounds)
    for part, width in _chunks(count, int(max_hits)):
        p0, ev, _ = _pad_chunk(hits, layout, sel, bounds, part, CHUNK, width, core, lm, cfg, tree, hit_keys)
        p, cov, dec, _ = fit(jnp.asarray(p0), tuple(jnp.asarray(a) for a in ev))
        p, cov, dec = np.asarray(p), np.asarray(cov), np.asarray(dec)
        m = part.size
        for k, v in zip(("X", "Y", "LNS", "AGE", "L", "M"), p[:m, :6].T, strict=True):
            out[k][part] = v
        out["AGE"][part] = AGE_PRIOR[0] + 0.6 * np.tanh(p[:m, 3])
        out["X"][part] += core[part, 0]
        out["Y"][part] += core[part, 1]
        out["SIG"][part] = _direction_sigma(p[:m, 4], p[:m, 5], cov[:m, 4:6, 4:6])
        out["DEC"][part] = dec[:m]
        out["LNS0"][part] = p0[:m, 2]
    return _results(out, count, zen0, az0, core)


def _direction_sigma(l_, m_, cov2):
    """Circular 1-sigma (deg) of the direction: sqrt of half the trace of the covariance of the unit
    vector (l, m, n_z), n_z = sqrt(1 - l^2 - m^2) (at the zenith: of (l, m) alone)."""
    nz = np.sqrt(np.maximum(1.0 - l_**2 - m_**2, 1e-6))
    jac = np.stack([np.broadcast_to([1.0, 0.0], (l_.size, 2)), np.broadcast_to([0.0, 1.0], (l_.size, 2)),
                    np.stack([-l_ / nz, -m_ / nz], 1)], 1)  # fmt: skip
    cov3 = np.einsum("nij,njk,nlk->nil", jac, cov2, jac)
    return np.degrees(np.sqrt(np.maximum(np.trace(cov3, axis1=1, axis2=2), 0.0) / 2.0))


def _results(out: dict, count, zen0, az0, core) -> dict:
    """The output columns, with the classic values where the fit did not converge."""
    s = np.hypot(out["L"], out["M"])
    zen = np.degrees(np.arcsin(np.clip(s, 0.0, 1.0)))
    az = np.degrees(np.arctan2(out["L"], out["M"])) % 360.0
    finite = np.all(np.isfinite(np.stack([out[k] for k in ("X", "Y", "LNS", "AGE", "L", "M", "SIG")])), 0)
    shift = np.hypot(out["X"] - core[:, 0], out["Y"] - core[:, 1])
    conv = (
        finite & (count >= MIN_HITS) & (out["DEC"] < MAX_DECREMENT) & (s < np.sin(np.radians(75.0))) & (shift < 300.0)
    )
    conv &= (out["AGE"] > 0.3) & (out["AGE"] < 2.1) & (out["SIG"] > 0)
    return {
        "LDF_ZENITH": np.where(conv, zen, zen0),
        "LDF_AZIMUTH": np.where(conv, az, az0),
        "LDF_CORE_X": np.where(conv, out["X"], core[:, 0]),
        "LDF_CORE_Y": np.where(conv, out["Y"], core[:, 1]),
        "LDF_LOG10_SIZE": np.where(conv, out["LNS"], out["LNS0"]) / np.log(10.0),
        "LDF_AGE": np.where(conv, out["AGE"], AGE_PRIOR[0]),
        "LDF_SIGMA_DIR_DEG": np.where(conv, out["SIG"], FALLBACK_SIGMA_DEG),
        "LDF_CONVERGED": conv,
    }

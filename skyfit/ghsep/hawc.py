"""Weakly supervised gamma/hadron separation on HAWC's public pass-4 Crab events.

There are no labels in real data, but the Crab region holds gammas and background while regions at
the same declination away from it hold background only. A classifier trained to tell ON events (within
``theta_on`` of the Crab) from OFF events (the same declination band more than 1 deg away: the same zenith
mix; alpha, the ratio of their expected background, from HAWC's background maps) learns
gamma-ness up to the background's share of ON (Metodiev, Nachman & Thaler 2017, "classification without
labels"). The events have already passed HAWC's cuts on CxPE40 and PINC, so the gain left is small.

Cross-fitting: the runs are split in two halves by run number; a classifier and its cut are trained
and chosen on one half and applied to the other, so no event is used both to train or tune and to
score. The gain is the Li & Ma significance of the Crab after the cut over that before (same events,
same ON/OFF regions), with a bootstrap interval over runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._data import data_dir
from ..hawc import CRAB_DEC_DEG, CRAB_RA_DEG
from ..maps import unit_vectors
from ._features import FEATURES, GHSepError, feature_matrix
from ._network import train_classifier

__all__ = ["read_onoff", "li_ma", "weak_supervision_gain", "THETA_ON_DEG"]

CRAB = (CRAB_RA_DEG, CRAB_DEC_DEG)
# ON radius per fHit bin, near HAWC's PSF 68 % containment for these bins (Abeysekara et al. 2017,
# ApJ 843 39: ~0.5 deg at low fHit to ~0.2 deg at high fHit; approximate)
THETA_ON_DEG = {5: 0.45, 6: 0.35, 7: 0.3, 8: 0.25, 9: 0.25}
OFF_EXCLUSION_DEG = 1.0


def li_ma(n_on, n_off, alpha) -> float:
    """Li & Ma (1983) eq. 17 significance (signed)."""
    n_on, n_off = float(n_on), float(n_off)
    if n_on <= 0 or n_off <= 0:
        return 0.0
    t1 = n_on * np.log((1 + alpha) / alpha * n_on / (n_on + n_off))
    t2 = n_off * np.log((1 + alpha) * n_off / (n_on + n_off))
    s = np.sqrt(max(2.0 * (t1 + t2), 0.0))
    return float(np.sign(n_on - alpha * n_off) * s)


def _background_ratio(bkg_path, ra_lim, dec_lim, on, off, nside=1024) -> float:
    """alpha = expected background in ON / in OFF, from HAWC's background map (all energy bands summed)
    sampled on HEALPix pixels inside the box; ``on``/``off`` select pixels from (ra, dec)."""
    import healpy as hp

    from ..response.hawc import car_pixel_solid_angle_sr, read_car_cube, sample_car

    try:
        bkg, wcs, _ = read_car_cube(bkg_path, 0, "PRIMARY_BANDS")
    except (OSError, KeyError, ValueError) as exc:
        raise GHSepError(f"{bkg_path}: not a readable HAWC background map ({exc}); download it again") from None
    density = np.nansum(bkg, axis=0, keepdims=True) / car_pixel_solid_angle_sr(wcs, bkg.shape[-2:])
    theta = np.radians(90 - np.array(dec_lim)[::-1])
    pix = hp.query_strip(nside, theta[0], theta[1], inclusive=False)
    th, ph = hp.pix2ang(nside, pix)
    ra, dec = np.degrees(ph), 90 - np.degrees(th)
    inbox = (ra >= ra_lim[0]) & (ra <= ra_lim[1])
    ra, dec = ra[inbox], dec[inbox]
    b = sample_car(density, wcs, ra, dec)[0]
    b = np.where(np.isfinite(b), b, 0.0)
    return float(np.sum(b * on(ra, dec)) / np.sum(b * off(ra, dec)))


def read_onoff(root=None, estimator: str = "GP", bins=(5, 6, 7, 8, 9), on_position=CRAB) -> dict:
    """ON and OFF events of the HAWC Crab data with their features, bin, run and label (1 ON, 0 OFF).

    ON: within ``THETA_ON_DEG[bin]`` of ``on_position`` (default the Crab). OFF: the same declination
    band (the ON declination +- theta_on), more than 1 deg from the ON position and from the Crab, 0.1 deg
    inside the file's RA range. In a drift scan the zenith angles a declination is seen at do not depend
    on RA, so ON and OFF background share their zenith mix and a classifier cannot tell them apart by
    zenith-dependent features. ``alpha`` per bin: expected background in ON / in OFF, from HAWC's
    background map. ``on_position`` elsewhere than the Crab gives a null test (ON holds background only).
    Files: ``<root>/events/EventList_Crab_fHitbin<b><est>.fits.gz`` and ``<root>/background/...`` (root
    default ``$SKYFIT_DATA/hawc/crab_events_pass4``)."""
    from astropy.table import Table

    root = Path(root) if root is not None else data_dir("hawc", "crab_events_pass4")
    crab = unit_vectors(*CRAB)
    center = unit_vectors(*on_position)
    parts, alpha = [], {}
    for b in bins:
        path = root / "events" / f"EventList_Crab_fHitbin{b}{estimator}.fits.gz"
        if not path.exists():
            raise GHSepError(f"{path}: no such HAWC event list; set SKYFIT_DATA to the folder holding hawc/ "
                             "(HAWC's public Crab data, Abeysekara et al. 2017)")  # fmt: skip
        try:
            t = Table.read(path, hdu="EVENTS")
        except (OSError, ValueError, KeyError) as exc:
            raise GHSepError(f"{path}: not a readable event list ({exc}); download it again") from None
        ra, dec = np.asarray(t["RA"], float), np.asarray(t["DEC"], float)
        th = THETA_ON_DEG[b]
        ra_lim = (float(ra.min()) + 0.1, float(ra.max()) - 0.1)
        dec_lim = (on_position[1] - th, on_position[1] + th)

        def sel_on(r, d, th=th):
            return np.degrees(np.arccos(np.clip(unit_vectors(r, d) @ center, -1, 1))) < th

        def sel_off(r, d, ra_lim=ra_lim, dec_lim=dec_lim):
            v = unit_vectors(r, d)
            far = (np.degrees(np.arccos(np.clip(v @ center, -1, 1))) > OFF_EXCLUSION_DEG) & (
                np.degrees(np.arccos(np.clip(v @ crab, -1, 1))) > OFF_EXCLUSION_DEG
            )
            return far & (r > ra_lim[0]) & (r < ra_lim[1]) & (d > dec_lim[0]) & (d < dec_lim[1])

        on, off = sel_on(ra, dec), sel_off(ra, dec)
        alpha[b] = _background_ratio(root / "background" / f"BackgroundMap_Crab_fHitbin{b}{estimator}.fits.gz",
                                     ra_lim, dec_lim, sel_on, sel_off)  # fmt: skip
        keep = on | off
        cols = {c: np.asarray(t[c])[keep] for c in t.colnames if t[c].ndim == 1}
        cols["ON"] = on[keep].astype(np.int8)
        cols["FHIT_BIN"] = np.full(keep.sum(), b, np.int16)
        parts.append(cols)
    common = set.intersection(*(set(p) for p in parts))
    table = {c: np.concatenate([p[c] for p in parts]) for c in common}
    return {"table": table, "alpha": alpha, "estimator": estimator, "on_position": tuple(on_position)}


def _significance(table, passed, alpha) -> float:
    """Li & Ma significance of the summed bins: N_on and N_off added over bins, with the effective alpha
    sum(alpha_b N_off,b) / sum(N_off,b) (the bins' alphas differ)."""
    n_on = n_bkg = n_off_eff = 0.0
    for b, a in alpha.items():
        sel = (table["FHIT_BIN"] == b) & passed
        on = float(np.sum(table["ON"][sel] == 1))
        off = float(np.sum(table["ON"][sel] == 0))
        n_on += on
        n_bkg += a * off
        n_off_eff += off
    if n_off_eff == 0:
        return 0.0
    return li_ma(n_on, n_off_eff, n_bkg / n_off_eff)


def _frac(mask) -> float:
    return float(np.mean(mask)) if mask.size else float("nan")


def _cross_fit(t, x, y, alpha, epochs, seed, min_on_fraction, split):
    """One cross-fit: per half of the runs, train and choose the cut, apply to the other half.
    Returns (passed mask, thresholds)."""
    half = ((np.asarray(t["runID"]) // split) % 2).astype(int)
    passed = np.zeros(len(y), bool)
    thresholds = {}
    for h in (0, 1):
        tr = half == h
        # class balance per bin: ON and OFF of each bin weigh the same in training
        w = np.zeros(tr.sum())
        for b in alpha:
            for lab in (0, 1):
                m = (t["FHIT_BIN"][tr] == b) & (y[tr] == lab)
                if m.any():
                    w[m] = 1.0 / m.sum()
        model = train_classifier(x[tr], y[tr], w, FEATURES["HAWC"], "HAWC", kind="mlp", epochs=epochs,
                                 hyper={"width": 32, "depth": 2}, batch=512, seed=seed + h)  # fmt: skip
        sub = {c: v[tr] for c, v in t.items()}
        s_tr = model.score(sub)
        best_t, best_s = -np.inf, _significance(sub, np.ones(tr.sum(), bool), alpha)
        n_on_all = np.sum(y[tr] == 1)
        for thr in np.unique(np.quantile(s_tr[y[tr] == 1], np.linspace(0, 1 - min_on_fraction, 60))):
            p = s_tr >= thr
            if np.sum(p & (y[tr] == 1)) < min_on_fraction * n_on_all:
                continue
            sig = _significance(sub, p, alpha)
            if sig > best_s:
                best_t, best_s = float(thr), sig
        te = ~tr
        passed[te] = model.score({c: v[te] for c, v in t.items()}) >= best_t
        thresholds[h] = best_t
    return passed, thresholds


def weak_supervision_gain(onoff: dict, n_boot: int = 200, epochs: int = 30, seed: int = 0,
                          min_on_fraction: float = 0.3, n_repeats: int = 1) -> dict:  # fmt: skip
    """Cross-fitted significance gain of an ON-vs-OFF classifier; see the module docstring.

    The cut on each half is the score threshold that maximises that half's Li & Ma significance while
    keeping at least ``min_on_fraction`` of its ON events. With ``n_repeats`` > 1 the cross-fit is
    repeated with other training seeds and other run splits (``(runID // k) % 2``, k = 1..n_repeats);
    the gain is the median over repeats. The intervals come from a bootstrap over runs in which each
    replica also draws one of the repeats, so they hold the training's scatter as well as the data's.

    Also returned: ``on_kept_over_off_kept``, the fraction of ON events kept over that of OFF events; on
    a null ON position (background only) it must be 1 within its error, or the cut would bias alpha.
    """
    t = onoff["table"]
    alpha = onoff["alpha"]
    x = feature_matrix(t, FEATURES["HAWC"], "HAWC event list")
    y = t["ON"].astype(float)
    fits = [_cross_fit(t, x, y, alpha, epochs, seed + 10 * k, min_on_fraction, k + 1) for k in range(n_repeats)]
    before = _significance(t, np.ones(len(y), bool), alpha)
    gains = [_significance(t, p, alpha) / before if before > 0 else float("nan") for p, _ in fits]
    k_med = int(np.argsort(gains)[len(gains) // 2])
    passed = fits[k_med][0]
    runs = np.unique(t["runID"])
    rng = np.random.default_rng(seed)
    by_run = {r: np.flatnonzero(t["runID"] == r) for r in runs}
    boot = []
    for _ in range(n_boot):
        idx = np.concatenate([by_run[r] for r in rng.choice(runs, runs.size)])
        p = fits[rng.integers(len(fits))][0]
        sub = {c: v[idx] for c, v in t.items()}
        sb = _significance(sub, np.ones(idx.size, bool), alpha)
        if sb > 0:
            boot.append(_significance(sub, p[idx], alpha) / sb)
    boot = np.asarray(boot) if boot else np.array([np.nan])
    per_bin = {}
    for b, a in alpha.items():
        sel = t["FHIT_BIN"] == b
        sub = {c: v[sel] for c, v in t.items()}
        sb = _significance(sub, np.ones(sel.sum(), bool), {b: a})
        sa = _significance(sub, passed[sel], {b: a})
        per_bin[int(b)] = {"signif_before": sb, "signif_after": sa, "on_kept": _frac(passed[sel][y[sel] == 1]),
                           "off_kept": _frac(passed[sel][y[sel] == 0]), "alpha": a}  # fmt: skip
    on_kept, off_kept = _frac(passed[y == 1]), _frac(passed[y == 0])
    n_on = int(np.sum(y == 1))
    return {
        "signif_before": before,
        "signif_after": _significance(t, passed, alpha),
        "gain": float(np.median(gains)),
        "gain_repeats": [float(g) for g in gains],
        "gain_lo68": float(np.nanquantile(boot, 0.16)),
        "gain_hi68": float(np.nanquantile(boot, 0.84)),
        "gain_lo95": float(np.nanquantile(boot, 0.025)),
        "gain_hi95": float(np.nanquantile(boot, 0.975)),
        "on_kept_over_off_kept": on_kept / off_kept if off_kept > 0 else float("nan"),
        "on_kept_over_off_kept_err": float(np.sqrt(on_kept * (1 - on_kept) / max(n_on, 1)) / max(off_kept, 1e-12)),
        "n_on": n_on,
        "n_off": int(np.sum(y == 0)),
        "thresholds": fits[k_med][1],
        "per_bin": per_bin,
        "n_boot": int(boot.size),
    }

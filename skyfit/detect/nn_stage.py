"""The neural-network prior's stage in the detection of one ROI: its proposals become components.

The network (:mod:`skyfit.detect.prior`) reads the residuals of the model before its fit; its confident
proposals are fitted together, the others added where the residual TS exceeds ``ts_add`` (greedily:
:func:`_accept_unsure`), and the turned-down members of close pairs in one more joint fit
(:func:`_pair_members`); see :func:`nn_stage`.
"""

from __future__ import annotations

from dataclasses import replace

import healpy as hp
import numpy as np

from ..likelihood import Likelihood
from ..maps import HealpixROI
from ..models import Models
from ._skies import counts_per_amplitude, psf68
from .components import RoiFitter, add_and_fit, components, seed_component, separation_deg, share_data
from .config import DetectionConfig
from .network import propose
from .tsmap import DEFAULT_INDEX, REFERENCE_TEV, ts_map

__all__ = ["nn_stage"]


def _nn_seeds(datasets, fitter: RoiFitter, model: Models, prior_model, cfg: DetectionConfig, names: dict):
    """Components proposed by the network on the residuals of ``model`` (one per proposal and detector),
    with their Gaussian priors {key: (mean, sigma)} on position and r39."""
    npreds = fitter.lk.npred(fitter.lk.vector(model.values()))
    proposals = propose(datasets, npreds, prior_model, cfg.nn_threshold, edge_deg=cfg.nn_edge_deg)
    by_inst = {names[d.name]: d for d in datasets}
    seeds, priors = [], {}
    for k, pr in enumerate(sorted(proposals, key=lambda p: -p["score"])):
        ds = by_inst.get(pr["detector"])
        if ds is None:
            continue
        inst = names[ds.name]
        index, ref = DEFAULT_INDEX.get(inst, 2.6), REFERENCE_TEV.get(inst, 1.0)
        per_amp = float(np.sum(counts_per_amplitude(ds.response, pr["dec"], index, ref, pr.get("ra"))))
        amplitude = 10.0 ** pr["log10_counts"] / max(per_amp, 1e-300)
        r39 = float(np.clip(pr["r39"], cfg.min_r39_deg, 1.5))
        seed = seed_component(f"n{k + 1:03d}_{ds.name}", pr["ra"], pr["dec"], ds.name, inst, amplitude, cfg, r39)
        cos_dec = max(np.cos(np.radians(pr["dec"])), 0.05)
        w = cfg.prior_scale
        priors[f"{seed.name}.lon_0"] = (pr["ra"], w * pr["sigma_pos"] / cos_dec)
        priors[f"{seed.name}.lat_0"] = (pr["dec"], w * pr["sigma_pos"])
        priors[f"{seed.name}.sigma"] = (pr["r39"], w * pr["sigma_r39"])
        seeds.append((seed, pr))
    return seeds, priors


def _residual_ts(ds, baseline, proposals, cfg: DetectionConfig) -> list[float]:
    """Residual TS at each proposal: the larger of a point and a Gaussian test source over baseline
    ``baseline``, at the proposal's pixel or one of its neighbours."""
    roi = ds.roi
    pix = [hp.ang2pix(roi.nside, pr["ra"], pr["dec"], nest=roi.nest, lonlat=True) for _, pr in proposals]
    near = [np.concatenate([[p], hp.get_all_neighbours(roi.nside, p, nest=roi.nest)]) for p in pix]
    cand = np.unique(np.concatenate(near))
    cand = cand[(cand >= 0) & (roi.index_of(cand) >= 0)]
    if cand.size == 0:
        return [0.0] * len(proposals)
    test_roi = HealpixROI(roi.nside, roi.nest, cand)
    best = np.zeros(len(cand))
    for kernel, sigma in (("point", 0.0), ("gaussian", cfg.extended_kernel_deg)):
        tsm = ts_map(ds, baseline, kernel, sigma_deg=sigma if sigma > 0 else 0.2, test_roi=test_roi)
        best = np.maximum(best, tsm.ts)
    return [float(np.max(best[np.isin(test_roi.pixels, nb)], initial=0.0)) for nb in near]


def _accept_unsure(datasets, npreds, unsure, cfg: DetectionConfig) -> list:
    """The unsure proposals worth a component, chosen greedily without fits, as the TS-map finder's
    iterations choose peaks: per detector, the one with the largest residual TS (above ``ts_add``) over
    the current model's predicted counts ``npreds`` (one array per dataset) is accepted, its component
    (the network's position, r39 and counts) is added to the baseline, and the residual TS of the
    proposals near it is measured again. A second proposal on an excess that an accepted one already
    explains is then not added; on crowded fields such extra components cost pruning rounds of fits
    each (issue #6)."""
    seeds = tuple(sd for sd, _ in unsure)
    lk = Likelihood(Models(seeds), datasets, cutout_margin_deg=1.0)  # the seeds' counts alone
    values = {f"{sd.name}.amplitude": 0.0 for sd in seeds}
    zero = lk.npred(lk.vector(values))
    kept = []
    for i, ds in enumerate(datasets):
        mine = [(sd, pr) for sd, pr in unsure if sd.applies_to(ds.name)]
        if not mine:
            continue
        base = np.asarray(npreds[i], float)
        on = np.asarray(ds.mask, bool)
        ts_now = dict(enumerate(_residual_ts(ds, base, mine, cfg)))
        while ts_now:
            j = max(ts_now, key=ts_now.get)
            if ts_now.pop(j) <= cfg.ts_add:
                break
            sd, pr = mine[j]
            kept.append((sd, pr))
            # the component as the network proposed it (its position, r39 and counts): an amplitude
            # fitted to the residuals would take in the excess of its neighbours too and explain away
            # real sources next to it (seen on 'wide' field 2: a 0.58 deg Gaussian's fit hid a
            # component of TS 7300 0.5 deg away)
            amp = {q.name: q.value for q in sd.spectral.parameters}["amplitude"]
            shape = np.asarray(lk.npred(lk.vector({**values, f"{sd.name}.amplitude": amp}))[i], float) - zero[i]
            base = base + np.where(on, np.clip(shape, 0.0, None), 0.0)
            near = [k for k in ts_now if separation_deg(mine[k][0], sd) <= cfg.local_radius_deg]
            if near:
                ts_now.update(zip(near, _residual_ts(ds, base, [mine[k] for k in near], cfg), strict=True))
    return kept


def _pair_members(datasets, npreds, model: Models, turned, cfg: DetectionConfig) -> list:
    """The turned-down proposals (``turned``) that may be the other member of a pair: within 2 PSF68 of
    a fitted component of their detector, and with a residual TS above ``cfg.nn_pair_ts`` over the fitted
    model (``npreds``), chosen greedily as :func:`_accept_unsure` does (each chosen one's counts added to
    the baseline before its neighbours are measured again) and none within ``min_separation_deg`` of
    a stronger one, so that two guesses at one excess give one component.

    Why: the greedy acceptance adds the network's first proposal of a pair as the network drew it,
    which then explains part of its neighbour's excess, and the neighbour's residual TS falls below
    ``ts_add`` although a joint fit keeps both (issue #6). The ones chosen here go into one more joint
    fit; the TS tests decide."""
    comps = components(model)
    beside = []
    for ds in datasets:
        radius = 2.0 * psf68(ds.response)
        beside += [(sd, pr) for sd, pr in turned if sd.applies_to(ds.name)
                   and any(c.applies_to(ds.name) and separation_deg(c, sd) < radius for c in comps)]  # fmt: skip
    chosen = []
    for sd, pr in _accept_unsure(datasets, npreds, beside, replace(cfg, ts_add=cfg.nn_pair_ts)) if beside else []:
        # in the order accepted (the strongest first): none within min_separation_deg of another new one
        if all(not share_data(sd, c) or separation_deg(sd, c) >= cfg.min_separation_deg for c, _ in chosen):
            chosen.append((sd, pr))
    return chosen


def nn_stage(datasets, fitter: RoiFitter, model: Models, prior_model, cfg: DetectionConfig, names: dict, log):
    """Seed the network's proposals in two fits, or three (below). The network reads the residuals of
    ``model`` (background and diffuse emission at their given values) *before* any fit: a fit of the
    diffuse band alone would absorb the sources (on a bright field its normalisation grew 180-fold) and
    leave residuals, negative along the plane, that the network never saw in training; its proposals
    were then useless (issue #6).
    The confident proposals (score >= ``nn_confident``, none within ``min_separation_deg`` of a surer
    one) are fitted first, with the diffuse normalisation; each other proposal is then added only where
    the residual TS of a test source at its position (point or Gaussian kernel, the larger, within a
    pixel) exceeds ``ts_add``, the seeding rule of the TS-map finder, taken greedily (strongest first,
    each accepted one explaining its excess for the next: :func:`_accept_unsure`): a second guess at a
    source already fitted or accepted is not added and never costs the fits of its TS test. The
    greedy rule also turns down the second member of a close pair (the first, as the network drew it,
    explains part of its excess): the turned-down proposals that :func:`_pair_members` picks go into a
    third joint fit, unless ``cfg.nn_pair_ts`` is None.
    Returns (result, fitter, priors, history rows, fits run)."""
    seeds, priors = _nn_seeds(datasets, fitter, model, prior_model, cfg, names)
    use_priors = priors if cfg.prior_terms else {}
    # confident: sure enough, and not within min_separation_deg of a surer one of the same detector (the
    # network can split a bright or extended source into several sure peaks; like the TS-map finder's
    # peaks of one iteration, close ones wait); the others are tested on the residuals of the first fit
    confident, unsure = [], []
    for sd, pr in seeds:  # by decreasing score
        close = any(pr["detector"] == q["detector"] and separation_deg(sd, c) < cfg.min_separation_deg
                    for c, q in confident)  # fmt: skip
        (confident if pr["score"] >= cfg.nn_confident and not close else unsure).append((sd, pr))
    log(f"  network: {len(seeds)} proposal(s), {len(confident)} confident")
    fits = 0

    def add(model, new):
        nonlocal fits
        result, fitter, n = add_and_fit(model, [sd for sd, _ in new], datasets, use_priors, cfg)
        fits += n
        return result, fitter

    if confident:
        result, fitter = add(model, confident)
    else:
        result = fitter.run(model)
        fits += 1
    kept = []
    if unsure:
        npreds = fitter.lk.npred(fitter.lk.vector(result.model.values()))
        kept = _accept_unsure(datasets, npreds, unsure, cfg)
        log(f"  {len(kept)} of {len(unsure)} other proposal(s) with residual TS > {cfg.ts_add:g}")
        if kept:
            result, fitter = add(result.model, kept)
    pair = []
    if unsure and cfg.nn_pair_ts is not None:
        taken = {sd.name for sd, _ in kept}
        npreds = fitter.lk.npred(fitter.lk.vector(result.model.values()))
        pair = _pair_members(datasets, npreds, result.model, [u for u in unsure if u[0].name not in taken], cfg)
        log(f"  {len(pair)} turned-down proposal(s) beside a component with residual TS > {cfg.nn_pair_ts:g}")
        if pair:
            result, fitter = add(result.model, pair)
    kept = kept + pair
    used = {sd.name for sd, _ in confident + kept}
    history = [{"iteration": 0, "component": sd.name, "proposer": "nn", "seeded": sd.name in used, **pr}
               for sd, pr in seeds]  # fmt: skip
    return result, fitter, use_priors, history, fits

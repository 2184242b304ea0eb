"""Seeding of one ROI's components: the TS-map peaks of an iteration (step 2 of :mod:`._roi`'s procedure)
and the split test, which tries each elongated extended component as two."""

from __future__ import annotations

import numpy as np

from ..detect.components import ReplacementTrial, RoiFitter, components, instrument_of, seed_component
from ..detect.config import DetectionConfig
from ..detect.tsmap import ts_map
from ..fit import FitResult
from ..maps import unit_vectors
from ..models import Models, Source


def _interior(roi, margin_deg: float) -> np.ndarray:
    """Pixels of ``roi`` at least ``margin_deg`` from its edge (erosion by HEALPix neighbours)."""
    import healpy as hp

    inside = np.zeros(hp.nside2npix(roi.nside), bool)
    inside[roi.pixels] = True
    steps = int(np.ceil(margin_deg / np.degrees(np.sqrt(roi.pixel_area_sr))))
    for _ in range(steps):
        nb = hp.get_all_neighbours(roi.nside, roi.pixels, nest=roi.nest)
        keep = inside[roi.pixels] & np.all(np.where(nb >= 0, inside[np.maximum(nb, 0)], False), axis=0)
        inside[:] = False
        inside[roi.pixels[keep]] = True
    return inside[roi.pixels]


def _grown(roi, deg: float):
    """``roi`` with every pixel within about ``deg`` of it added (dilation by HEALPix neighbours)."""
    import healpy as hp

    if deg <= 0:
        return roi
    inside = np.zeros(hp.nside2npix(roi.nside), bool)
    inside[roi.pixels] = True
    for _ in range(int(np.ceil(deg / np.degrees(np.sqrt(roi.pixel_area_sr))))):
        nb = hp.get_all_neighbours(roi.nside, np.flatnonzero(inside), nest=roi.nest).ravel()
        inside[nb[nb >= 0]] = True
    return type(roi)(roi.nside, roi.nest, np.flatnonzero(inside), meta=dict(roi.meta))


def _tsmap_peaks(ds, npred, cfg: DetectionConfig) -> list[dict]:
    """One iteration's new seeds in ``ds`` over the current model's predicted counts ``npred``: the peaks
    above ``cfg.ts_add`` of a point-source TS map and of a map for extended residuals (Gaussian kernel of
    ``cfg.extended_kernel_deg``), the stronger of two peaks closer than ``min_separation_deg`` kept, at most
    ``max_new_per_iteration``; each with the r39 of its seed (``seed_r39``)."""
    # test positions: the ROI's pixels at least edge_deg inside its edge, and those up to beyond_deg
    # outside it (their kernels reach into the data)
    test_roi = _grown(ds.roi, cfg.beyond_deg)
    in_roi = ds.roi.index_of(test_roi.pixels)
    interior = in_roi < 0  # beyond the ROI (only there when beyond_deg > 0)
    interior[in_roi >= 0] = _interior(ds.roi, cfg.edge_deg)[in_roi[in_roi >= 0]]
    peaks = []
    for kernel, sigma in (("point", 0.0), ("gaussian", cfg.extended_kernel_deg)):
        if kernel == "gaussian" and not sigma > 0:
            continue
        tsm = ts_map(ds, npred, kernel, sigma_deg=sigma, test_roi=test_roi)
        peaks += [{**p, "seed_r39": max(sigma, cfg.seed_sigma_deg)}
                  for p in tsm.peaks(cfg.ts_add, cfg.min_separation_deg, inside=interior)]  # fmt: skip
    chosen = []
    for p in sorted(peaks, key=lambda p: -p["ts"]):
        v = unit_vectors(p["ra"], p["dec"])
        if all(v @ unit_vectors(c["ra"], c["dec"]) < np.cos(np.radians(cfg.min_separation_deg)) for c in chosen):
            chosen.append(p)
    return chosen[: cfg.max_new_per_iteration]


def _principal_axis(datasets, fitter: RoiFitter, model: Models, s: Source, radius_deg: float):
    """Unit vector (tangent plane at ``s``) along which the excess attributed to ``s`` is most elongated,
    and the ratio of the two second moments (1 for a round excess)."""
    ds_index = next(i for i, d in enumerate(datasets) if s.applies_to(d.name))
    ds = datasets[ds_index]
    without = model.with_values({f"{s.name}.amplitude": 0.0})
    npred0 = fitter.lk.npred(fitter.lk.vector(without.values()))[ds_index]
    excess = np.sum(np.asarray(ds.counts.data, float) - npred0, axis=0)
    center = unit_vectors(*s.spatial.position())
    v = ds.roi.unit_vectors()
    near = v @ center > np.cos(np.radians(radius_deg))
    w = np.clip(excess[near], 0.0, None)
    if w.sum() <= 0:
        return None, 1.0
    # tangent-plane coordinates: east and north unit vectors at the centre
    ra, dec = np.radians(s.spatial.position())
    east = np.array([-np.sin(ra), np.cos(ra), 0.0])
    north = np.array([-np.sin(dec) * np.cos(ra), -np.sin(dec) * np.sin(ra), np.cos(dec)])
    xy = np.stack([v[near] @ east, v[near] @ north], axis=1)
    mean = np.average(xy, axis=0, weights=w)
    cov = np.cov((xy - mean).T, aweights=w)
    val, vec = np.linalg.eigh(cov)
    return vec[:, 1], float(val[1] / max(val[0], 1e-30))


def _split_test(result: FitResult, fitter: RoiFitter, datasets, cfg: DetectionConfig, log):
    """Try each extended component as two: two sources within a PSF are otherwise fitted as one
    Gaussian between them (the TS map shows no residual peak once it is there). The pair replaces the
    Gaussian when it improves the fit by more than ``ts_add``. Returns (result, fitter, fits run)."""
    fits = 0
    for s in components(result.model):
        if s.spatial.tag != "GaussianSpatialModel" or s.spatial.extent_deg() < cfg.split_min_r39_deg:
            continue
        r39 = s.spatial.extent_deg()
        axis, ratio = _principal_axis(datasets, fitter, result.model, s, 2.0 * r39 + 0.3)
        if axis is None or ratio < cfg.split_min_elongation:
            continue
        ra, dec = s.spatial.position()
        d = 0.8 * r39  # each half at the inflexion point of the one Gaussian
        p = {q.name: q.value for q in s.spectral.parameters}
        inst = instrument_of(next(ds for ds in datasets if s.applies_to(ds.name)))
        halves = []
        for k, sign in enumerate((1.0, -1.0)):
            h_ra = ra + sign * d * axis[0] / max(np.cos(np.radians(dec)), 0.05)
            h_dec = dec + sign * d * axis[1]
            half = seed_component(f"{s.name}{'ab'[k]}", h_ra, h_dec, s.datasets[0], inst, 0.5 * p["amplitude"],
                                  cfg, max(0.5 * r39, cfg.seed_sigma_deg / 2))  # fmt: skip
            halves.append(half)
        trial = ReplacementTrial(result, fitter, s, halves, datasets, cfg)
        fits += 1
        log(f"  split test {s.name} (r39 {r39:.2f}, elongation {ratio:.1f}): delta TS {trial.gain:.1f}")
        if trial.gain > cfg.ts_add:
            result, fitter, n = trial.accept()
            fits += n
    return result, fitter, fits

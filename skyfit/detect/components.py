"""The components of a ROI's model and their fits: seeding, neighbourhoods, cleanup, and the fitter that
compiles the likelihood of one model structure once (used by the network's stage and the catalogue)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..fit import FitResult, position_bounds, release, robust_fit, settle
from ..likelihood import Likelihood
from ..maps import unit_vectors
from ..models import GaussianSpatialModel, Models, PointSpatialModel, PowerLaw, Source
from ._skies import instrument_of
from .config import DetectionConfig
from .tsmap import DEFAULT_INDEX, REFERENCE_TEV

__all__ = [
    "RoiFitter",
    "seed_component",
    "components",
    "separation_deg",
    "share_data",
    "neighbours",
    "freeze_far",
    "to_point",
    "outside_deg",
    "outside_roi_deg",
    "cleanup",
    "add_and_fit",
    "instrument_of",
    "ReplacementTrial",
]


def seed_component(name, ra, dec, det_name, instrument, amplitude, cfg: DetectionConfig, r39=None) -> Source:
    """A new component: a Gaussian of r39 ``r39`` (default ``cfg.seed_sigma_deg``) at (ra, dec), seen by the
    dataset ``det_name`` only, with the power law of its ``instrument`` (index 2.6 or 3.0 at 1LHAASO's
    reference energy) of amplitude ``amplitude``; its position bounded to ``cfg.max_shift_deg`` around the seed."""
    spatial = GaussianSpatialModel.create(ra, dec, sigma=cfg.seed_sigma_deg if r39 is None else r39)
    # a component may move up to max_shift_deg from its seed in one fit (far beyond, it would describe
    # another source); one stopped at that bound is released (:meth:`RoiFitter.release`)
    bounds = {"sigma": (0.0, 2.0), **position_bounds(ra, dec, cfg.max_shift_deg)}
    spatial = replace(spatial, parameters=tuple(
        replace(q, min=bounds[q.name][0], max=bounds[q.name][1]) for q in spatial.parameters))  # fmt: skip
    ref = REFERENCE_TEV.get(instrument, 1.0)
    spectral = PowerLaw.create(amplitude=max(amplitude, 1e-22), index=DEFAULT_INDEX.get(instrument, 2.6), reference=ref)
    spectral = replace(spectral, parameters=tuple(
        replace(q, min=1.0, max=5.0) if q.name == "index" else q for q in spectral.parameters))  # fmt: skip
    return Source(name, spatial, spectral, datasets=(det_name,))


class RoiFitter:
    """Fits of one model structure, compiled once (reuses the Likelihood for fixed-parameter variants), by
    the robust recipe of :mod:`skyfit.fit` (:func:`~skyfit.fit.robust_fit`, :func:`~skyfit.fit.settle`,
    :func:`~skyfit.fit.release`). ``priors`` (Gaussian terms) that name parameters of other models are
    left out."""

    def __init__(self, model: Models, datasets, priors: dict | None = None):
        self.datasets = datasets
        keys = model.parameters()
        priors = {k: v for k, v in (priors or {}).items() if k in keys}
        self.lk = Likelihood(model, datasets, cutout_margin_deg=1.0, priors=priors)
        self.fits = 0
        self.settled = 0  # fits that :meth:`settle` found short of their minimum

    def run(self, model: Models, hesse: bool = False) -> FitResult:
        """:func:`skyfit.fit.robust_fit` of ``model``."""
        self.fits += 1
        return robust_fit(self.lk, model, hesse)

    def data_stat(self, model: Models, stat: float) -> float:
        """``stat`` (of ``model``'s values) without the Gaussian prior terms: the likelihood alone, which
        the TS tests compare. With the prior in it, fixing r39 at 0 in the extension test would add the
        prior's penalty of r39 = 0 to TS_ext (the prior on a tested parameter must not vote)."""
        if not self.lk.priors:
            return stat
        return stat - self.lk.prior_stat(self.lk.vector(model.values()))

    def stat_of(self, model: Models) -> float:
        """The likelihood alone (no prior terms) of ``model``'s values, no fit."""
        return self.data_stat(model, self.lk.stat(self.lk.vector(model.values())))

    def settle(self, res: FitResult, gain: float = 0.1) -> FitResult:
        """:func:`skyfit.fit.settle`: ``res`` continued to its minimum where MIGRAD stopped short of it
        (counted in ``settled``)."""
        res, short = settle(self.lk, res, gain)
        self.settled += short
        return res

    def release(self, res: FitResult, cfg: DetectionConfig) -> tuple[FitResult, int]:
        """:func:`skyfit.fit.release` with ``cfg.max_releases`` and ``cfg.max_shift_deg``, each refit by
        :meth:`run`. The full-model fits are released; the TS null fits are not (there the bounds keep the
        neighbours of the tested component on their own sources). Returns (result, refits run)."""
        return release(self.lk, res, cfg.max_releases, cfg.max_shift_deg, refit=self.run)

    def run_released(self, model: Models, cfg: DetectionConfig) -> tuple[FitResult, int]:
        """A full-model fit: :meth:`run`, then :meth:`release`. Returns (result, fits run)."""
        res, n = self.release(self.run(model), cfg)
        return res, 1 + n

    def fit_stat(self, model: Models) -> float:
        """The likelihood alone (no prior terms) at the fit of ``model`` (priors in the fit), checked by
        :meth:`settle`: the null fits of the TS tests."""
        res = self.settle(self.run(model))
        return self.data_stat(res.model, res.stat)


def components(model: Models) -> list[Source]:
    """The sources of ``model`` that are components (the diffuse template aside)."""
    return [s for s in model.sources if not s.spatial.per_pixel_exposure]


def separation_deg(a: Source, b: Source) -> float:
    return float(np.degrees(np.arccos(np.clip(unit_vectors(*a.spatial.position()) @ unit_vectors(*b.spatial.position()),
                                              -1, 1))))  # fmt: skip


def share_data(a: Source, b: Source) -> bool:
    """Whether two components predict counts in a common dataset. Components of different detectors
    cannot stand in for each other: they share only the diffuse normalisation."""
    return a.datasets is None or b.datasets is None or bool(set(a.datasets) & set(b.datasets))


def neighbours(a: Source, b: Source, radius_deg: float) -> bool:
    """Whether ``b`` can take over (part of) what ``a`` describes: same data, within ``radius_deg``."""
    return share_data(a, b) and separation_deg(a, b) <= radius_deg


def freeze_far(model: Models, center: Source, radius_deg: float) -> Models:
    """Freeze every parameter of the components farther than ``radius_deg`` from ``centre``."""
    far = []
    for s in components(model):
        if s.name != center.name and separation_deg(s, center) > radius_deg:
            far += [f"{s.name}.{q.name}" for q in s.parameters if not q.frozen]
    return model.with_frozen(far) if far else model


def to_point(s: Source) -> Source:
    """``s`` as a point source at its position, keeping the position's bounds."""
    point = PointSpatialModel.create(*s.spatial.position())
    limits = {q.name: q for q in s.spatial.parameters}
    return replace(s, spatial=replace(point, parameters=tuple(limits[q.name] for q in point.parameters)))


def outside_deg(roi, ra: float, dec: float) -> float:
    """How far (deg) the direction (ra, dec) lies outside ``roi`` (0 within a pixel of its pixels)."""
    size = np.degrees(np.sqrt(roi.pixel_area_sr))
    nearest = np.degrees(np.arccos(np.clip(np.max(roi.unit_vectors() @ unit_vectors(ra, dec)), -1.0, 1.0)))
    return float(max(nearest - size, 0.0))


def outside_roi_deg(datasets, s: Source) -> float:
    """How far (deg) the component's position lies outside its dataset's ROI."""
    for d in datasets:
        if s.applies_to(d.name):
            return outside_deg(d.roi, *s.spatial.position())
    return float("inf")


def cleanup(model: Models, cfg: DetectionConfig, datasets) -> tuple[Models, list]:
    """Drop components with zero amplitude or farther than ``beyond_deg + max_shift_deg`` outside the ROI;
    Gaussians at the r39 lower limit become points."""
    keep, dropped = [], []
    for s in model.sources:
        if s.spatial.per_pixel_exposure:
            keep.append(s)
            continue
        amp = {q.name: q.value for q in s.spectral.parameters}["amplitude"]
        if amp <= 1e-25 or outside_roi_deg(datasets, s) > cfg.beyond_deg + cfg.max_shift_deg:
            dropped.append(s.name)
            continue
        if s.spatial.tag == "GaussianSpatialModel" and s.spatial.extent_deg() < cfg.min_r39_deg:
            s = to_point(s)  # keeps the position bounds
        keep.append(s)
    return Models(keep, model.backgrounds), dropped


def add_and_fit(model: Models, seeds, datasets, priors: dict, cfg: DetectionConfig):
    """``model`` with ``seeds`` added, fitted, cleaned up (and refitted if that changed it).
    Returns (result, fitter, fits run)."""
    model = Models(model.sources + tuple(seeds), model.backgrounds)
    fitter = RoiFitter(model, datasets, priors)
    result, n = fitter.run_released(model, cfg)
    cleaned, dropped = cleanup(result.model, cfg, datasets)
    if not dropped and cleaned.parameters().keys() == result.model.parameters().keys():
        return result, fitter, n
    fitter = RoiFitter(cleaned, datasets, priors)
    result, m = fitter.run_released(cleaned, cfg)
    return result, fitter, n + m


class ReplacementTrial:
    """Component ``s`` of ``result``'s model replaced by ``parts`` (which take its spectral index), fitted with
    the components within ``cfg.local_radius_deg`` of the first part (the others frozen): the split test of
    extended components and the multiplicity network's trials. ``gain`` is the fit's improvement in
    -2 ln L (the likelihood alone); :meth:`accept` refits the whole model, everything free again."""

    def __init__(self, result: FitResult, fitter: RoiFitter, s: Source, parts, datasets, cfg: DetectionConfig):
        index = {q.name: q.value for q in s.spectral.parameters}["index"]
        sources = []
        for src in result.model.sources:
            sources += list(parts) if src.name == s.name else [src]
        self.trial = Models(sources, result.model.backgrounds).with_values({f"{q.name}.index": index for q in parts})
        self.fitter = RoiFitter(self.trial, datasets, fitter.lk.priors)
        self.result = self.fitter.run(freeze_far(self.trial, parts[0], cfg.local_radius_deg))
        self.gain = fitter.data_stat(result.model, result.stat) - self.fitter.data_stat(
            self.result.model, self.result.stat
        )
        self.cfg = cfg

    def accept(self) -> tuple[FitResult, RoiFitter, int]:
        """The trial's model refitted with the parameters ``freeze_far`` froze free again: (result, fitter,
        fits run)."""
        was_free = {k for k, q in self.trial.parameters().items() if not q.frozen}
        refreeze = [k for k, q in self.result.model.parameters().items() if q.frozen and k in was_free]
        result, n = self.fitter.run_released(self.result.model.with_frozen(refreeze, frozen=False), self.cfg)
        return result, self.fitter, n

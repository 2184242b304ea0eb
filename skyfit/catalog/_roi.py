"""One ROI of the catalogue: classic iterative detection and the joint multi-source fit.

The procedure follows 1LHAASO (Cao et al. 2024, ApJS 271 25, section 3):

1. Start from the background and the Galactic diffuse band (its normalisation free); fit.
2. Per detector, a TS map of a point source (power law of index 2.6 for WCDA, 3.0 for KM2A) over the
   current model; every local maximum with TS > ``ts_add`` (25) seeds a component: a Gaussian of
   sigma = r39 = 0.2 deg at the peak, seen by that detector only. A second map with a Gaussian kernel
   (r39 0.5 deg) catches extended residuals that a point kernel spreads below threshold; its peaks
   seed Gaussians of that width (an addition to 1LHAASO's recipe). The test positions reach the ROI's
   edge and ``beyond_deg`` (0.5 deg) beyond it: a source in the ROI's margin or just outside it puts
   counts in the data, and left out of the model it would be absorbed by the diffuse normalisation and
   its neighbours (issue #26). All components are then fitted together (positions, r39, amplitudes,
   indices, diffuse normalisation); repeat until no peak is left.
3. Components whose amplitude went to zero, or that moved farther than ``beyond_deg +
   max_shift_deg`` outside the ROI, are dropped; a Gaussian whose r39 went to its lower limit becomes
   a point source. A component may move ``max_shift_deg`` from its seed in one fit; one
   that stops at that bound is refitted with the bound centred where it stopped (``max_releases``).
4. Each component's TS: the fit with its amplitude fixed to zero (nearby components refitted) against
   the full fit; components with TS < ``ts_add`` are dropped, and the rest refitted.
5. Extension: TS_ext = the fit with r39 fixed to zero against the Gaussian fit; below ``ts_ext`` the
   component is a point source.
6. Position errors: the 95 % radius is the circle that holds 95 % of the HESSE error ellipse, scaled up
   by the sandwich factor (:func:`_sandwich_scale`) where the data scatter the position more than the
   Hessian says (an extended source fitted as a point).

With ``proposer="nn"`` step 2 is replaced by the neural-network prior (:mod:`skyfit.detect.prior`),
which reads the residuals of step 1's model before its fit (background and diffuse template as given):
its confident proposals are fitted together, then the others where the residual TS exceeds ``ts_add``,
with the network's position and r39 uncertainties as Gaussian priors; then, in one more joint fit,
the turned-down proposals beside a fitted component whose residual TS over the fit exceeds
``nn_pair_ts`` (9): the other members of close pairs; steps 3-5 are the same.
Before step 4, components whose TS with their neighbours frozen (an upper bound of the refitted TS) is
below ``ts_add`` are dropped without a fit each.

Fixing a parameter instead of removing a component keeps the model's structure, so the jitted
likelihood is compiled once per structure, not once per test.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..detect.tsmap import DEFAULT_INDEX, REFERENCE_TEV, ts_map
from ..fit import Fit, FitResult
from ..likelihood import Likelihood
from ..maps import unit_vectors
from ..models import GaussianSpatialModel, PointSpatialModel, PowerLaw, SkyModel, Source
from ._sky import galactic_diffuse

__all__ = ["DetectionConfig", "detect_and_fit", "component_table"]


@dataclass(frozen=True)
class DetectionConfig:
    ts_add: float = 25.0  # add a component when its TS-map peak exceeds this [1LHAASO]
    ts_ext: float = 16.0  # a component is extended when TS_ext exceeds this
    seed_sigma_deg: float = 0.2  # r39 of a new component [1LHAASO]
    extended_kernel_deg: float = 0.5  # a second TS map with this Gaussian kernel finds extended residuals
    max_iterations: int = 6
    max_new_per_iteration: int = 4  # per detector
    min_separation_deg: float = 0.4  # between peaks added in one iteration
    local_radius_deg: float = 2.0  # components within this of a tested one are refitted with it
    max_prune_rounds: int = 8  # backward elimination of components below ts_add
    min_r39_deg: float = 0.02  # below: a point source
    max_shift_deg: float = 0.5  # how far a component may move from its seed (in one fit; see max_releases)
    # a component whose fitted position sits at that bound is released: its bounds are centred again on
    # where it stopped and the model refitted, at most this many times per fit (0: never)
    max_releases: int = 2
    split_min_r39_deg: float = 0.15  # extended components at least this large are tried as two
    split_min_elongation: float = 1.3  # ... when their excess is at least this elongated
    # TS-map seeds: no closer than edge_deg to the ROI's edge, and test positions up to beyond_deg beyond
    # its pixels (a source just outside the data still puts counts in it; unmodelled, the diffuse term and
    # its neighbours absorb them). A component stays in the model while it is within beyond_deg +
    # max_shift_deg of the ROI; the catalogue keeps only those in the tile an ROI owns
    edge_deg: float = 0.0
    beyond_deg: float = 0.5
    nn_edge_deg: float = 0.6  # the network's proposals: no closer than this to the edge of its image
    # components of one detector closer than this (+ their r39) are tested for standing in for each other:
    # when removing both costs more than ts_add beyond their two TS, each one's TS is taken with the other
    # held where it is (position and r39 fixed, its spectrum refitted); None: no such test
    blend_deg: float | None = 1.0
    proposer: str = "tsmap"  # what seeds components: "tsmap" (classic), "nn" (the network prior) or "both"
    prior_weights: str | None = None  # the prior network's file (None: the weights shipped with skyfit)
    prior_terms: bool = True  # the network's uncertainties as Gaussian priors in the fit (position, r39)
    # the network reads the same counts as the fit, so its estimate is no independent measurement: its
    # widths enter the fit multiplied by this, a weak prior that guides without counting the data twice
    prior_scale: float = 5.0
    nn_threshold: float | None = None  # heat-map threshold of a proposal (None: the network's own)
    nn_confident: float = 0.5  # proposals at least this sure seed the first fit; the others need TS > ts_add
    # turned-down proposals within 2 PSF68 of a fitted component with a residual TS above this over the
    # fitted model go into one more joint fit (None: not tried); the TS tests decide whether they stay
    nn_pair_ts: float | None = 9.0
    progress: bool = False
    extra: dict = field(default_factory=dict)


def _instrument(ds) -> str:
    return str(ds.meta.get("instrument", ds.name)).upper()


def _position_bounds(ra: float, dec: float, shift_deg: float) -> dict:
    """Bounds of (lon_0, lat_0) that let a component move up to ``shift_deg`` from (ra, dec)."""
    d_ra = shift_deg / max(np.cos(np.radians(dec)), 0.05)
    return {"lon_0": (ra - d_ra, ra + d_ra), "lat_0": (max(dec - shift_deg, -90.0), min(dec + shift_deg, 90.0))}


def _seed(name, ra, dec, det_name, instrument, amplitude, cfg, r39=None) -> Source:
    spatial = GaussianSpatialModel.create(ra, dec, sigma=cfg.seed_sigma_deg if r39 is None else r39)
    # a component may move up to max_shift_deg from its seed in one fit (far beyond, it would describe
    # another source); one stopped at that bound is released (:meth:`_Fitter.release`)
    bounds = {"sigma": (0.0, 2.0), **_position_bounds(ra, dec, cfg.max_shift_deg)}
    spatial = replace(spatial, parameters=tuple(
        replace(q, min=bounds[q.name][0], max=bounds[q.name][1]) for q in spatial.parameters))  # fmt: skip
    ref = REFERENCE_TEV.get(instrument, 1.0)
    spectral = PowerLaw.create(amplitude=max(amplitude, 1e-22), index=DEFAULT_INDEX.get(instrument, 2.6), reference=ref)
    spectral = replace(spectral, parameters=tuple(
        replace(q, min=1.0, max=5.0) if q.name == "index" else q for q in spectral.parameters))  # fmt: skip
    return Source(name, spatial, spectral, datasets=(det_name,))


class _Fitter:
    """Fits of one model structure, compiled once (reuses the Likelihood for fixed-parameter variants)."""

    def __init__(self, model: SkyModel, datasets, priors: dict | None = None):
        self.datasets = datasets
        keys = model.parameters()
        priors = {k: v for k, v in (priors or {}).items() if k in keys}
        self.lk = Likelihood(model, datasets, cutout_margin_deg=1.0, priors=priors)
        self.fits = 0
        self.settled = 0  # fits that :meth:`settle` found short of their minimum

    def run(self, model: SkyModel, hesse: bool = False) -> FitResult:
        # MIGRAD seeded by Minuit's own estimate: far from the minimum (new seeds) the Hessian is
        # not positive definite, which a supplied Hessian cannot be given as. HESSE at the minimum
        # uses central differences of the exact gradient.
        self.fits += 1
        res = Fit(self.lk, strategy=0, hessian="minuit").run(model, hesse=False)
        if any("did not converge" in m for m in res.messages):
            # strategy 0 stops early on hard many-source problems: continue from there, more carefully;
            # a component tested against an unconverged fit would be pruned by mistake
            res = Fit(self.lk, strategy=1, hessian="minuit").run(res.model, hesse=False)
        if hesse:
            res = Fit(self.lk, strategy=0, hessian="fd").run(res.model, hesse=True, migrad=False)
            if any("not positive definite" in m for m in res.messages):
                # a saddle that strategy 0 took for the minimum (seen on a 94-parameter ROI): continue
                # more carefully from there, then the errors again
                res = Fit(self.lk, strategy=1, hessian="minuit").run(res.model, hesse=False)
                res = Fit(self.lk, strategy=0, hessian="fd").run(res.model, hesse=True, migrad=False)
        return res

    def data_stat(self, model: SkyModel, stat: float) -> float:
        """``stat`` (of ``model``'s values) without the Gaussian prior terms: the likelihood alone, which
        the TS tests compare. With the prior in it, fixing r39 at 0 in the extension test would add the
        prior's penalty of r39 = 0 to TS_ext (the prior on a tested parameter must not vote)."""
        if not self.lk.priors:
            return stat
        return stat - self.lk.prior_stat(self.lk.vector(model.values()))

    def stat_of(self, model: SkyModel) -> float:
        """The likelihood alone (no prior terms) of ``model``'s values, no fit."""
        return self.data_stat(model, self.lk.stat(self.lk.vector(model.values())))

    def settle(self, res: FitResult, gain: float = 0.1) -> FitResult:
        """``res`` continued to its minimum where MIGRAD (strategy 0) stopped short of it without saying so.

        A second strategy-0 MIGRAD from ``res`` costs less than the first where ``res`` is at the minimum
        (45.8 s over the built-in ROI's 38 null fits and refits, whose catalogue took 273 s); where it
        still lowers -2 ln L by more than ``gain``, the first one had stopped short and a strategy-1
        MIGRAD continues from there (a strategy-1 continuation of every fit took 175 s). A null fit left short
        inflates the TS it enters: on the built-in ROI one of 38 (J1908+0615's KM2A component) stopped
        45.96 short, so its TS read 703 instead of 657; the second MIGRAD found 38.5 of it, strategy 1
        the rest. Minuit's EDM does not show it (strategy 0's approximate covariance), nor does one
        from the exact Hessian (nonzero gradients of parameters at their limits swamp it)."""
        again = Fit(self.lk, strategy=0, hessian="minuit").run(res.model, hesse=False)
        if again.stat < res.stat - gain:
            self.settled += 1
            again = Fit(self.lk, strategy=1, hessian="minuit").run(again.model, hesse=False)
        return again if again.stat < res.stat else res

    def release(self, res: FitResult, cfg: DetectionConfig) -> tuple[FitResult, int]:
        """``res`` refitted with the position bounds of its pinned components (:func:`_pinned`) centred
        again where they stopped, until none is pinned or ``cfg.max_releases`` refits were run.

        The bounds keep a component from wandering off its seed in one fit; one that stops at them is
        still short of its best position, and the pinned parameter makes the fit invalid (its gradient
        is not zero, so the EDM is above maximum). On the built-in ROI c003_WCDA (TS 248, r39 0.67)
        stopped at both bounds, 0.5 deg from its seed in RA and Dec; on benchmark field wide:1 the
        bounds stopped the WCDA and KM2A components of a network proposal 0.5-0.6 deg from their true
        sources 0.02 and 0.08 deg from them. The full-model fits are released; the TS null fits are not
        (there the bounds keep the neighbours of the tested component on their own sources).
        Returns (result, refits run)."""
        n = 0
        while n < cfg.max_releases:
            pinned = _pinned(res.model)
            if not pinned:
                break
            res = self.run(_recentred(res.model, pinned, cfg.max_shift_deg))
            n += 1
        return res, n

    def run_released(self, model: SkyModel, cfg: DetectionConfig) -> tuple[FitResult, int]:
        """A full-model fit: :meth:`run`, then :meth:`release`. Returns (result, fits run)."""
        res, n = self.release(self.run(model), cfg)
        return res, 1 + n

    def fit_stat(self, model: SkyModel) -> float:
        """The likelihood alone (no prior terms) at the fit of ``model`` (priors in the fit), checked by
        :meth:`settle`: the null fits of the TS tests."""
        res = self.settle(self.run(model))
        return self.data_stat(res.model, res.stat)


def _components(model: SkyModel):
    return [s for s in model.sources if not s.spatial.per_pixel_exposure]


def _pinned(model: SkyModel, tol_deg: float = 1e-3) -> list[str]:
    """Components with a free position parameter within ``tol_deg`` of one of its bounds."""
    out = []
    for s in _components(model):
        if any(q.name in ("lon_0", "lat_0") and not q.frozen
               and any(np.isfinite(b) and abs(q.value - b) <= tol_deg for b in (q.min, q.max))
               for q in s.spatial.parameters):  # fmt: skip
            out.append(s.name)
    return out


def _recentred(model: SkyModel, names, shift_deg: float) -> SkyModel:
    """``model`` with the position bounds of the components ``names`` centred on their positions."""
    sources = []
    for s in model.sources:
        if s.name in names:
            bounds = _position_bounds(*s.spatial.position(), shift_deg)
            s = replace(s, spatial=replace(s.spatial, parameters=tuple(
                replace(q, min=bounds[q.name][0], max=bounds[q.name][1]) if q.name in bounds else q
                for q in s.spatial.parameters)))  # fmt: skip
        sources.append(s)
    return SkyModel(sources, model.backgrounds)


def _separation_deg(a: Source, b: Source) -> float:
    return float(np.degrees(np.arccos(np.clip(unit_vectors(*a.spatial.position()) @ unit_vectors(*b.spatial.position()),
                                              -1, 1))))  # fmt: skip


def _share_data(a: Source, b: Source) -> bool:
    """Whether two components predict counts in a common dataset. Components of different detectors
    cannot stand in for each other: they share only the diffuse normalisation."""
    return a.datasets is None or b.datasets is None or bool(set(a.datasets) & set(b.datasets))


def _neighbours(a: Source, b: Source, radius_deg: float) -> bool:
    """Whether ``b`` can take over (part of) what ``a`` describes: same data, within ``radius_deg``."""
    return _share_data(a, b) and _separation_deg(a, b) <= radius_deg


def _stand_ins(result: FitResult, fitter: _Fitter, ts: dict, cfg: DetectionConfig) -> tuple[list, int]:
    """Pairs of components that stand in for each other: same detector, closer than ``cfg.blend_deg`` + both
    r39, and removing both costs more than ``cfg.ts_add`` beyond the sum of their TS (each one's TS only
    measures what the other cannot take over: a bright source fitted by two components can leave both
    below the catalogue threshold). Returns ``([(a, b, ts_group), ...], fits run)``."""
    comps = _components(result.model)
    full = fitter.data_stat(result.model, result.stat)
    found, n = [], 0
    for i, a in enumerate(comps):
        for b in comps[i + 1 :]:
            r39 = sum(float(dict((q.name, q.value) for q in c.spatial.parameters).get("sigma", 0.0)) for c in (a, b))
            if not (_share_data(a, b) and _separation_deg(a, b) <= cfg.blend_deg + r39):
                continue
            local = _freeze_far(result.model, a, cfg.local_radius_deg)
            null = local.with_values({f"{a.name}.amplitude": 0.0, f"{b.name}.amplitude": 0.0}).with_frozen(
                [f"{c.name}.{q.name}" for c in (a, b) for q in c.parameters]
            )
            free = [k for k, q in null.parameters().items() if not q.frozen]
            ts_group = max((fitter.fit_stat(null) if free else fitter.stat_of(null)) - full, 0.0)
            n += 1
            if ts_group > ts.get(a.name, 0.0) + ts.get(b.name, 0.0) + cfg.ts_add:
                found.append((a.name, b.name, float(ts_group)))
    return found, n


def _to_drop(weak: list, comps: dict, radius_deg: float) -> list:
    """The components of ``weak`` (names, weakest first) dropped in one round of backward elimination:
    the weakest of each neighbourhood, per detector (a WCDA and a KM2A component never stand in for
    each other, so both can go in the same round)."""
    drop = []
    for k in weak:
        if not any(_neighbours(comps[k], comps[d], radius_deg) for d in drop):
            drop.append(k)
    return drop


def _freeze_far(model: SkyModel, centre: Source, radius_deg: float) -> SkyModel:
    """Freeze every parameter of the components farther than ``radius_deg`` from ``centre``."""
    far = []
    for s in _components(model):
        if s.name != centre.name and _separation_deg(s, centre) > radius_deg:
            far += [f"{s.name}.{q.name}" for q in s.parameters if not q.frozen]
    return model.with_frozen(far) if far else model


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


def outside_deg(roi, ra: float, dec: float) -> float:
    """How far (deg) the direction (ra, dec) lies outside ``roi`` (0 within a pixel of its pixels)."""
    size = np.degrees(np.sqrt(roi.pixel_area_sr))
    nearest = np.degrees(np.arccos(np.clip(np.max(roi.unit_vectors() @ unit_vectors(ra, dec)), -1.0, 1.0)))
    return float(max(nearest - size, 0.0))


def _outside_deg(datasets, s: Source) -> float:
    """How far (deg) the component's position lies outside its dataset's ROI."""
    for d in datasets:
        if s.applies_to(d.name):
            return outside_deg(d.roi, *s.spatial.position())
    return float("inf")


def _cleanup(model: SkyModel, cfg: DetectionConfig, datasets) -> tuple[SkyModel, list]:
    """Drop components with zero amplitude or farther than ``beyond_deg + max_shift_deg`` outside the ROI;
    Gaussians at the r39 lower limit become points."""
    keep, dropped = [], []
    for s in model.sources:
        if s.spatial.per_pixel_exposure:
            keep.append(s)
            continue
        amp = {q.name: q.value for q in s.spectral.parameters}["amplitude"]
        if amp <= 1e-25 or _outside_deg(datasets, s) > cfg.beyond_deg + cfg.max_shift_deg:
            dropped.append(s.name)
            continue
        if s.spatial.tag == "GaussianSpatialModel" and s.spatial.extent_deg() < cfg.min_r39_deg:
            point = PointSpatialModel.create(*s.spatial.position())
            limits = {q.name: q for q in s.spatial.parameters}  # keep the position bounds
            s = replace(s, spatial=replace(point, parameters=tuple(limits[q.name] for q in point.parameters)))
        keep.append(s)
    return SkyModel(keep, model.backgrounds), dropped


def _principal_axis(datasets, fitter: _Fitter, model: SkyModel, s: Source, radius_deg: float):
    """Unit vector (tangent plane at ``s``) along which the excess attributed to ``s`` is most elongated,
    and the ratio of the two second moments (1 for a round excess)."""
    ds_index = next(i for i, d in enumerate(datasets) if s.applies_to(d.name))
    ds = datasets[ds_index]
    without = model.with_values({f"{s.name}.amplitude": 0.0})
    npred0 = fitter.lk.npred(fitter.lk.vector(without.values()))[ds_index]
    excess = np.sum(np.asarray(ds.counts.data, float) - npred0, axis=0)
    centre = unit_vectors(*s.spatial.position())
    v = ds.roi.unit_vectors()
    near = v @ centre > np.cos(np.radians(radius_deg))
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


def _split_test(result: FitResult, fitter: _Fitter, datasets, cfg: DetectionConfig, log):
    """Try each extended component as two: two sources within a PSF are otherwise fitted as one
    Gaussian between them (the TS map shows no residual peak once it is there). The pair replaces the
    Gaussian when it improves the fit by more than ``ts_add``. Returns (result, fitter, fits run)."""
    fits = 0
    for s in _components(result.model):
        if s.spatial.tag != "GaussianSpatialModel" or s.spatial.extent_deg() < cfg.split_min_r39_deg:
            continue
        r39 = s.spatial.extent_deg()
        axis, ratio = _principal_axis(datasets, fitter, result.model, s, 2.0 * r39 + 0.3)
        if axis is None or ratio < cfg.split_min_elongation:
            continue
        ra, dec = s.spatial.position()
        d = 0.8 * r39  # each half at the inflexion point of the one Gaussian
        p = {q.name: q.value for q in s.spectral.parameters}
        inst = _instrument(next(ds for ds in datasets if s.applies_to(ds.name)))
        halves = []
        for k, sign in enumerate((1.0, -1.0)):
            h_ra = ra + sign * d * axis[0] / max(np.cos(np.radians(dec)), 0.05)
            h_dec = dec + sign * d * axis[1]
            half = _seed(f"{s.name}{'ab'[k]}", h_ra, h_dec, s.datasets[0], inst, 0.5 * p["amplitude"], cfg,
                         max(0.5 * r39, cfg.seed_sigma_deg / 2))  # fmt: skip
            halves.append(half)
        sources = []
        for src in result.model.sources:
            sources += halves if src.name == s.name else [src]
        trial = SkyModel(sources, result.model.backgrounds).with_values({f"{h.name}.index": p["index"] for h in halves})
        local = _freeze_far(trial, halves[0], cfg.local_radius_deg)
        split_fitter = _Fitter(trial, datasets, fitter.lk.priors)
        res2 = split_fitter.run(local)
        fits += 1
        gain = fitter.data_stat(result.model, result.stat) - split_fitter.data_stat(res2.model, res2.stat)
        log(f"  split test {s.name} (r39 {r39:.2f}, elongation {ratio:.1f}): delta TS {gain:.1f}")
        if gain > cfg.ts_add:
            was_free = {k for k, q in trial.parameters().items() if not q.frozen}
            refreeze = [k for k, q in res2.model.parameters().items() if q.frozen and k in was_free]
            thawed = res2.model.with_frozen(refreeze, frozen=False)
            fitter = split_fitter
            result, n = fitter.run_released(thawed, cfg)
            fits += n
    return result, fitter, fits


def _screen(result: FitResult, fitter: _Fitter, cfg: DetectionConfig) -> tuple[list, dict]:
    """Components that cannot pass the TS test, found by likelihood evaluations instead of fits.

    A component's TS with its neighbours frozen (no refit) is an upper bound of its TS with them
    refitted, so one below ``ts_add`` fails the test for sure. Neighbours that could stand in for each
    other are dropped together only when their joint no-refit TS is below ``ts_add`` too: then no
    source that the group describes together is lost. Returns (names to drop, no-refit TS)."""
    values = result.model.values()
    lk = fitter.lk
    stat_full = lk.stat(lk.vector(values))
    comps = {s.name: s for s in _components(result.model)}
    ts0 = {k: lk.stat(lk.vector({**values, f"{k}.amplitude": 0.0})) - stat_full for k in comps}
    weak = [k for k in comps if ts0[k] < cfg.ts_add]
    clusters, seen = [], set()
    for k in weak:  # groups of weak components linked by separations within local_radius_deg
        if k in seen:
            continue
        group, todo = [], [k]
        seen.add(k)
        while todo:
            a = todo.pop()
            group.append(a)
            for b in weak:
                if b not in seen and _separation_deg(comps[a], comps[b]) <= cfg.local_radius_deg:
                    seen.add(b)
                    todo.append(b)
        clusters.append(group)
    drop = []
    for group in clusters:
        joint = lk.stat(lk.vector({**values, **{f"{k}.amplitude": 0.0 for k in group}})) - stat_full
        if joint < cfg.ts_add:
            drop += group
        else:  # together they may describe a source: the fitted tests decide (the weakest goes if it adds
            weakest = min(group, key=ts0.get)  # nothing even with its neighbours frozen)
            if ts0[weakest] < 1.0:
                drop.append(weakest)
    return drop, ts0


def _nn_seeds(datasets, fitter: _Fitter, model: SkyModel, prior_model, cfg: DetectionConfig, names: dict):
    """Components proposed by the network on the residuals of ``model`` (one per proposal and detector),
    with their Gaussian priors {key: (mean, sigma)} on position and r39."""
    from ..detect._skies import counts_per_amplitude
    from ..detect.prior import propose

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
        per_amp = float(np.sum(counts_per_amplitude(ds.response, pr["dec"], index, ref)))
        amplitude = 10.0 ** pr["log10_counts"] / max(per_amp, 1e-300)
        r39 = float(np.clip(pr["r39"], cfg.min_r39_deg, 1.5))
        seed = _seed(f"n{k + 1:03d}_{ds.name}", pr["ra"], pr["dec"], ds.name, inst, amplitude, cfg, r39)
        cos_dec = max(np.cos(np.radians(pr["dec"])), 0.05)
        w = cfg.prior_scale
        priors[f"{seed.name}.lon_0"] = (pr["ra"], w * pr["sigma_pos"] / cos_dec)
        priors[f"{seed.name}.lat_0"] = (pr["dec"], w * pr["sigma_pos"])
        priors[f"{seed.name}.sigma"] = (pr["r39"], w * pr["sigma_r39"])
        seeds.append((seed, pr))
    return seeds, priors


def _add_and_fit(model: SkyModel, seeds, datasets, priors: dict, cfg: DetectionConfig):
    """``model`` with ``seeds`` added, fitted, cleaned up (and refitted if that changed it).
    Returns (result, fitter, fits run)."""
    model = SkyModel(model.sources + tuple(seeds), model.backgrounds)
    fitter = _Fitter(model, datasets, priors)
    result, n = fitter.run_released(model, cfg)
    cleaned, dropped = _cleanup(result.model, cfg, datasets)
    if not dropped and cleaned.parameters().keys() == result.model.parameters().keys():
        return result, fitter, n
    fitter = _Fitter(cleaned, datasets, priors)
    result, m = fitter.run_released(cleaned, cfg)
    return result, fitter, n + m


def _residual_ts(ds, baseline, proposals, cfg: DetectionConfig) -> list[float]:
    """Residual TS at each proposal: the larger of a point and a Gaussian test source over baseline
    ``baseline``, at the proposal's pixel or one of its neighbours."""
    import healpy as hp

    from ..maps import HealpixROI

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
    lk = Likelihood(SkyModel(seeds), datasets, cutout_margin_deg=1.0)  # the seeds' counts alone
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
            near = [k for k in ts_now if _separation_deg(mine[k][0], sd) <= cfg.local_radius_deg]
            if near:
                ts_now.update(zip(near, _residual_ts(ds, base, [mine[k] for k in near], cfg), strict=True))
    return kept


def _pair_members(datasets, npreds, model: SkyModel, turned, cfg: DetectionConfig) -> list:
    """The turned-down proposals (``turned``) that may be the other member of a pair: within 2 PSF68 of
    a fitted component of their detector, and with a residual TS above ``cfg.nn_pair_ts`` over the fitted
    model (``npreds``), chosen greedily as :func:`_accept_unsure` does (each chosen one's counts added to
    the baseline before its neighbours are measured again) and none within ``min_separation_deg`` of
    a stronger one, so that two guesses at one excess give one component.

    Why: the greedy acceptance adds the network's first proposal of a pair as the network drew it,
    which then explains part of its neighbour's excess, and the neighbour's residual TS falls below
    ``ts_add`` although a joint fit keeps both (issue #6). The ones chosen here go into one more joint
    fit; the TS tests decide."""
    from ..detect._skies import psf68

    comps = _components(model)
    beside = []
    for ds in datasets:
        radius = 2.0 * psf68(ds.response)
        beside += [(sd, pr) for sd, pr in turned if sd.applies_to(ds.name)
                   and any(c.applies_to(ds.name) and _separation_deg(c, sd) < radius for c in comps)]  # fmt: skip
    chosen = []
    for sd, pr in _accept_unsure(datasets, npreds, beside, replace(cfg, ts_add=cfg.nn_pair_ts)) if beside else []:
        # in the order accepted (the strongest first): none within min_separation_deg of another new one
        if all(not _share_data(sd, c) or _separation_deg(sd, c) >= cfg.min_separation_deg for c, _ in chosen):
            chosen.append((sd, pr))
    return chosen


def _nn_stage(datasets, fitter: _Fitter, model: SkyModel, prior_model, cfg: DetectionConfig, names: dict, log):
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
        close = any(pr["detector"] == q["detector"] and _separation_deg(sd, c) < cfg.min_separation_deg
                    for c, q in confident)  # fmt: skip
        (confident if pr["score"] >= cfg.nn_confident and not close else unsure).append((sd, pr))
    log(f"  network: {len(seeds)} proposal(s), {len(confident)} confident")
    fits = 0

    def add(model, new):
        nonlocal fits
        result, fitter, n = _add_and_fit(model, [sd for sd, _ in new], datasets, use_priors, cfg)
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


def detect_and_fit(datasets, cfg: DetectionConfig = DetectionConfig(), log=print) -> dict:
    """Run the iterative detection and the final tests on ``datasets`` (one ROI).

    ``cfg.proposer`` chooses what seeds the components: ``"tsmap"`` the iterative TS-map peaks above,
    ``"nn"`` the neural-network prior (:mod:`skyfit.detect.prior`) in one pass on the residuals of the
    background and the diffuse template (not fitted: see :func:`_nn_stage`), its position and r39
    uncertainties entering the fit as Gaussian priors (unless ``cfg.prior_terms`` is off), and ``"both"``
    the network's proposals, then TS-map iterations on what they leave. Every component must then pass
    the same tests (TS > ``ts_add``, and TS_ext > ``ts_ext`` for an extension), which compare the
    likelihood alone: the prior terms guide the fits but never enter a TS.

    Returns a dict with the final ``result`` (FitResult with HESSE errors), per-component ``ts`` and
    ``ts_ext``, the number of likelihood ``fits`` run (``fits_detect`` of them before the TS tests: the
    ones that built the model), and the ``history`` of additions.
    """
    if cfg.proposer not in ("tsmap", "nn", "both"):
        raise ValueError(f"proposer must be 'tsmap', 'nn' or 'both', got {cfg.proposer!r}")
    prior_model = None
    if cfg.proposer != "tsmap":  # a missing or bad network is an error here, never a silent TS-map run
        from ..detect.prior import load_prior

        prior_model = load_prior(cfg.prior_weights)
    names = {d.name: _instrument(d) for d in datasets}
    priors: dict = {}
    diffuse = galactic_diffuse()
    model = SkyModel([diffuse])
    fitter = _Fitter(model, datasets, priors)
    n_fits = 0
    counter = 0
    history = []
    if prior_model is not None:
        result, fitter, priors, added, fits = _nn_stage(datasets, fitter, model, prior_model, cfg, names, log)
        n_fits += fits
        counter = len(added)
        history += added
    else:
        result = fitter.run(model)
        n_fits += 1
    for iteration in range(cfg.max_iterations if cfg.proposer != "nn" else 0):
        npreds = fitter.lk.npred(fitter.lk.vector(result.model.values()))
        seeds = []
        for ds, npred in zip(datasets, npreds, strict=True):
            # test positions: the ROI's pixels at least edge_deg inside its edge, and those up to
            # beyond_deg outside it (their kernels reach into the data)
            test_roi = _grown(ds.roi, cfg.beyond_deg)
            in_roi = ds.roi.index_of(test_roi.pixels)
            interior = in_roi < 0  # beyond the ROI (only there when beyond_deg > 0)
            interior[in_roi >= 0] = _interior(ds.roi, cfg.edge_deg)[in_roi[in_roi >= 0]]
            # peaks of a point-source map and of a map for extended residuals (Gaussian kernel), the
            # stronger of two peaks closer than min_separation_deg kept
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
                if all(
                    v @ unit_vectors(c["ra"], c["dec"]) < np.cos(np.radians(cfg.min_separation_deg)) for c in chosen
                ):
                    chosen.append(p)
            for p in chosen[: cfg.max_new_per_iteration]:
                counter += 1
                seeds.append(_seed(f"c{counter:03d}_{ds.name}", p["ra"], p["dec"], ds.name, names[ds.name],
                                   p["amplitude"], cfg, p["seed_r39"]))  # fmt: skip
                history.append({"iteration": iteration, "component": seeds[-1].name, "dataset": ds.name, **p})
        if not seeds:
            break
        log(f"  iteration {iteration + 1}: {len(seeds)} new component(s), {len(_components(result.model)) + len(seeds)}"
            " in the model")  # fmt: skip
        result, fitter, n = _add_and_fit(result.model, seeds, datasets, priors, cfg)
        n_fits += n

    if cfg.proposer != "nn":  # the network proposes close pairs itself
        result, fitter, n_split = _split_test(result, fitter, datasets, cfg, log)
        n_fits += n_split

    # components that fail the TS test even with their neighbours frozen: dropped without a fit each
    drop, _ = _screen(result, fitter, cfg)
    if drop:
        log(f"  screened out {len(drop)} component(s) (no-refit TS < {cfg.ts_add:g}): {drop}")
        model = SkyModel([s for s in result.model.sources if s.name not in drop], result.model.backgrounds)
        fitter = _Fitter(model, datasets, priors)
        result, n = fitter.run_released(model, cfg)
        n_fits += n

    # per-component TS: amplitude fixed at zero, neighbours refitted (stand-in partners held in place)
    extra_fits = [0]
    partners: dict = {}

    def component_ts(res: FitResult, fitter: _Fitter, only=None):
        out, stat0 = {}, {}
        full = fitter.data_stat(res.model, res.stat)
        present = {s.name: s for s in _components(res.model)}
        for s in _components(res.model):
            if only is not None and s.name not in only:
                continue
            key = f"{s.name}.amplitude"
            local = _freeze_far(res.model, s, cfg.local_radius_deg)
            held = [f"{p}.{q.name}" for p in partners.get(s.name, ()) if p in present
                    for q in present[p].spatial.parameters]  # fmt: skip
            null = local.with_values({key: 0.0}).with_frozen([f"{s.name}.{q.name}" for q in s.parameters] + held)
            free = [k for k, q in null.parameters().items() if not q.frozen]
            stat0[s.name] = fitter.fit_stat(null) if free else fitter.stat_of(null)
            out[s.name] = max(stat0[s.name] - full, 0.0)
        weak = [k for k, v in out.items() if v < cfg.ts_add]
        if weak:
            # about to be pruned: check that the full fit is at its minimum (a many-source MIGRAD can
            # stop short, and a null fit would then gain what the full one left, hiding a real source);
            # one refit of the whole model from its minimum serves every weak component
            stat1 = fitter.fit_stat(res.model)
            extra_fits[0] += 1
            if stat1 < full - 0.1:
                log(f"  a refit lowers the full fit by {full - stat1:.2f}")
                for k in weak:
                    out[k] = max(stat0[k] - stat1, 0.0)
        return out

    log(f"  full fit: stat {result.stat:.2f}, valid {result.valid}, {list(result.messages)}")
    n_detect = n_fits  # the fits that built the model; the tests below are the same for every proposer
    ts = component_ts(result, fitter)
    n_fits += len(ts)
    log("  component TS: " + ", ".join(f"{k} {v:.1f}" for k, v in ts.items()))
    if cfg.blend_deg is not None:
        found, n = _stand_ins(result, fitter, ts, cfg)
        n_fits += n
        for a, b, ts_group in found:
            partners.setdefault(a, set()).add(b)
            partners.setdefault(b, set()).add(a)
            log(f"  {a} and {b} stand in for each other (TS {ts[a]:.1f}, {ts[b]:.1f}; together {ts_group:.1f}): "
                "each is tested with the other held in place")  # fmt: skip
        if found:
            retest = {k for pair in found for k in pair[:2]}
            ts.update(component_ts(result, fitter, only=retest))
            n_fits += len(retest)
            log("  held-partner TS: " + ", ".join(f"{k} {ts[k]:.1f}" for k in sorted(retest)))
    # backward elimination: weak components that are neighbours can each stand in for the other, so
    # each looks unnecessary while the others are there; drop the weakest of each such group only,
    # refit, and test its neighbours again
    stale = set()
    for _ in range(cfg.max_prune_rounds):
        weak = sorted((k for k, v in ts.items() if v < cfg.ts_add), key=ts.get)
        if not weak:
            break
        comps = {s.name: s for s in _components(result.model)}
        drop = _to_drop(weak, comps, cfg.local_radius_deg)
        log(f"  dropping {len(drop)} component(s) with TS < {cfg.ts_add:g}: {drop}")
        # components of another detector keep their TS like far ones do: only the diffuse normalisation
        # links them to a dropped component (on 'wide' field 2 their TS moved by at most 0.1 across five
        # rounds of retests before this rule)
        near = {s for s in comps if s not in drop
                and any(_neighbours(comps[s], comps[d], cfg.local_radius_deg) for d in drop)}  # fmt: skip
        model = SkyModel([s for s in result.model.sources if s.name not in drop], result.model.backgrounds)
        fitter = _Fitter(model, datasets, priors)
        result, n = fitter.run_released(model, cfg)
        n_fits += n
        # components near a dropped one are retested (their TS can change by far: a component that shared
        # a source with the dropped one gets all of it); the others keep their TS (their neighbourhood is
        # unchanged) unless the list of weak ones says otherwise. Dropping D lowers a neighbour X's TS
        # by at most TS_D: the new full fit is at most TS_D worse than before (the fit without D was
        # tried in D's test), and the null of X without D cannot be better than with D. So X, whose TS
        # minus what its dropped neighbours had still exceeds ts_add, passes for sure: it keeps that
        # lower bound as its TS until the refresh after pruning, one fit instead of one per round.
        sure = set()
        for k in near:
            lost = sum(ts[d] for d in drop if _neighbours(comps[k], comps[d], cfg.local_radius_deg))
            if ts[k] - lost >= cfg.ts_add:
                ts[k] -= lost
                sure.add(k)
        stale |= sure
        retest = (near - sure) | {k for k in weak if k not in drop}
        stale -= retest
        ts = {k: v for k, v in ts.items() if k not in drop}
        ts.update(component_ts(result, fitter, only=retest))
        n_fits += len(retest)
        log("  retested: " + ", ".join(f"{k} {ts[k]:.1f}" for k in sorted(retest) if k in ts)
            + (f"; {len(sure)} pass for sure (retested once, after pruning)" if sure else ""))  # fmt: skip
    if stale:  # the components that kept a lower bound: their TS now, with the final neighbourhood
        ts.update(component_ts(result, fitter, only=stale))
        n_fits += len(stale)
        log("  after pruning: " + ", ".join(f"{k} {ts[k]:.1f}" for k in sorted(stale)))

    # extension: r39 fixed to zero (the Gaussian kernel then equals the point kernel)
    ts_ext = {}
    to_point = []
    for s in _components(result.model):
        if s.spatial.tag != "GaussianSpatialModel":
            ts_ext[s.name] = 0.0
            continue
        key = f"{s.name}.sigma"
        pt = _freeze_far(result.model, s, cfg.local_radius_deg).with_values({key: 0.0}).with_frozen([key])
        ts_ext[s.name] = max(fitter.fit_stat(pt) - fitter.data_stat(result.model, result.stat), 0.0)
        n_fits += 1
        if ts_ext[s.name] < cfg.ts_ext:
            to_point.append(s.name)
    if to_point:
        sources = []
        for s in result.model.sources:
            if s.name in to_point:
                point = PointSpatialModel.create(*s.spatial.position())
                limits = {q.name: q for q in s.spatial.parameters}
                s = replace(s, spatial=replace(point, parameters=tuple(limits[q.name] for q in point.parameters)))
            sources.append(s)
        model = SkyModel(sources, result.model.backgrounds)
        fitter = _Fitter(model, datasets, priors)
        result, n = fitter.run_released(model, cfg)
        n_fits += n
    final = fitter.run(result.model, hesse=True)
    n_fits += 1
    # a component made point-like is tested again as it now is, and every component that a shape change
    # or a drop touches must still pass ts_add: drop the weakest failing one, refit, retest its neighbours
    retest = set(to_point)
    for _ in range(cfg.max_prune_rounds):
        if not retest:
            break
        ts.update(component_ts(final, fitter, only=retest))
        n_fits += len(retest)
        weak = sorted((k for k in retest if ts[k] < cfg.ts_add), key=ts.get)
        if not weak:
            break
        comps = {s.name: s for s in _components(final.model)}
        drop = _to_drop(weak, comps, cfg.local_radius_deg)
        log(f"  after the shape change, dropping {drop} (TS < {cfg.ts_add:g})")
        model = SkyModel([s for s in final.model.sources if s.name not in drop], final.model.backgrounds)
        fitter = _Fitter(model, datasets, priors)
        result, n = fitter.run_released(model, cfg)
        final = fitter.run(result.model, hesse=True)
        n_fits += n + 1
        for k in drop:
            ts.pop(k, None)
            ts_ext.pop(k, None)
        retest = {k for k in comps if k not in drop
                  and any(_neighbours(comps[k], comps[d], cfg.local_radius_deg) for d in drop)}  # fmt: skip
    n_fits += extra_fits[0]
    position_scale = {c.name: _sandwich_scale(fitter, final, c) for c in _components(final.model)}
    return {"result": final, "ts": ts, "ts_ext": ts_ext, "fits": n_fits, "fits_detect": n_detect, "history": history,
            "position_scale": position_scale}  # fmt: skip


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


def _sandwich_scale(fitter: _Fitter, result: FitResult, s: Source) -> float:
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
    for s in _components(res.model):
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

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
   by the sandwich factor (:func:`._errors._sandwich_scale`) where the data scatter the position more than the
   Hessian says (an extended source fitted as a point).

With ``proposer="nn"`` step 2 is replaced by the neural-network prior (:mod:`skyfit.detect.prior`, its stage
:mod:`skyfit.detect.nn_stage`),
which reads the residuals of step 1's model before its fit (background and diffuse template as given):
its confident proposals are fitted together, then the others where the residual TS exceeds ``ts_add``,
with the network's position and r39 uncertainties as Gaussian priors; then, in one more joint fit,
the turned-down proposals beside a fitted component whose residual TS over the fit exceeds
``nn_pair_ts`` (9): the other members of close pairs; steps 3-5 are the same.
Before step 4, components whose TS with their neighbours frozen (an upper bound of the refitted TS) is
below ``ts_add`` are dropped without a fit each.

Fixing a parameter instead of removing a component keeps the model's structure, so the jitted
likelihood is compiled once per structure, not once per test.

:func:`detect_and_fit` runs these as named steps over one :class:`_Roi` (the data, the current fit and
its fitter, the fit count): :func:`_start` (step 1, or the network's stage), :func:`_seed_components`
(step 2 and the split test), :func:`_screen_out`, :func:`_component_ts` and :func:`_prune` (step 4),
:func:`_test_extension` (step 5), :func:`_final_ts` (the shape change's retests, errors); each model
that loses or changes components is refitted by :meth:`_Roi.refit`. The TS tests are in :mod:`._ts`,
the seeding in :mod:`._seeding`, the errors (step 6) in :mod:`._errors`; the components, their fitter
and :class:`DetectionConfig` in :mod:`skyfit.detect`, the robust-fit recipe in :mod:`skyfit.fit`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields

from ..detect.components import (
    RoiFitter,
    add_and_fit,
    components,
    freeze_far,
    instrument_of,
    neighbours,
    outside_deg,
    seed_component,
    to_point,
)
from ..detect.config import DetectionConfig
from ..detect.multiplicity import load_multiplicity, multiplicity_stage
from ..detect.network import load_prior
from ..detect.nn_stage import nn_stage
from ..fit import FitResult
from ..models import BackgroundNorm, Models
from ..skies import galactic_diffuse
from ._errors import _sandwich_scale, component_table, radius95
from ._seeding import _split_test, _tsmap_peaks
from ._ts import _ComponentTS, _screen, _stand_ins, _to_drop

__all__ = ["DetectionConfig", "RoiResult", "detect_and_fit", "component_table", "radius95", "outside_deg"]


@dataclass(frozen=True, eq=False)
class RoiResult(Mapping):
    """What :func:`detect_and_fit` found in one ROI. Also a read-only mapping of its field names
    (``out["ts"]`` is ``out.ts``), as the dict it used to be.

    Attributes
    ----------
    result : FitResult
        The final fit, with HESSE errors.
    ts, ts_ext : dict
        Per component: its TS, and its TS_ext (0 for a point source).
    fits : int
        Likelihood fits run, ``fits_detect`` of them before the TS tests (the ones that built the model).
    history : list
        The additions: one dict per seed (TS-map peak or network proposal).
    position_scale : dict
        Per component, the sandwich factor of its position errors (>= 1).
    """

    result: FitResult
    ts: dict
    ts_ext: dict
    fits: int
    fits_detect: int
    history: list
    position_scale: dict

    def __getitem__(self, key: str):
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self):
        return iter(f.name for f in fields(self))

    def __len__(self) -> int:
        return len(fields(self))


@dataclass
class _Roi:
    """What the steps of :func:`detect_and_fit` share: the data and settings, the current fit and the
    fitter of its model, the seeds' history and the count of fits."""

    datasets: list
    cfg: DetectionConfig
    log: Callable
    names: dict  # dataset name -> instrument
    fitter: RoiFitter
    result: FitResult | None = None
    priors: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    fits: int = 0
    multiplicity: object = None  # the multiplicity network, read once (DetectionConfig.multiplicity)

    def refit(self, model: Models) -> None:
        """A new fitter for ``model`` (its structure changed) and its full fit, released."""
        self.fitter = RoiFitter(model, self.datasets, self.priors)
        self.result, n = self.fitter.run_released(model, self.cfg)
        self.fits += n


def _without(model: Models, drop) -> Models:
    return Models([s for s in model.sources if s.name not in drop], model.backgrounds)


def detect_and_fit(datasets, cfg: DetectionConfig | None = None, log=print, seeds=None) -> RoiResult:
    """Run the iterative detection and the final tests on ``datasets`` (one ROI).

    ``cfg.proposer`` chooses what seeds the components: ``"tsmap"`` the iterative TS-map peaks above,
    ``"nn"`` the neural-network prior (:mod:`skyfit.detect.prior`) in one pass on the residuals of the
    background and the diffuse template (not fitted: see :func:`skyfit.detect.nn_stage.nn_stage`), its
    position and r39 uncertainties entering the fit as Gaussian priors (unless ``cfg.prior_terms`` is off),
    and ``"both"`` the network's proposals, then TS-map iterations on what they leave. Every component must
    then pass the same tests (TS > ``ts_add``, and TS_ext > ``ts_ext`` for an extension), which compare the
    likelihood alone: the prior terms guide the fits but never enter a TS.

    ``seeds`` (Sources, e.g. from :func:`skyfit.detect.components.seed_component`) start the model with the
    background and the diffuse band: known sources, or the true components of a simulation (the oracle of
    ``benchmarks/crowded_fields.py``); the proposer then adds what they leave, or nothing with
    ``proposer="none"``. Each seed faces the same tests as a found component.

    Returns a :class:`RoiResult`: the final ``result`` (FitResult with HESSE errors), per-component ``ts``
    and ``ts_ext``, the number of likelihood ``fits`` run (``fits_detect`` of them before the TS tests: the
    ones that built the model), the ``history`` of additions and the sandwich factors ``position_scale``.
    ``cfg`` None: the default :class:`DetectionConfig`.
    """
    cfg = DetectionConfig() if cfg is None else cfg
    roi = _start(datasets, cfg, log, tuple(seeds or ()))
    if cfg.proposer not in ("nn", "none"):  # the network proposes close pairs itself
        _seed_components(roi)
    if cfg.multiplicity and cfg.proposer in ("nn", "both"):
        _multiplicity(roi)
    _screen_out(roi)
    tests = _ComponentTS(cfg, log)
    log(f"  full fit: stat {roi.result.stat:.2f}, valid {roi.result.valid}, {list(roi.result.messages)}")
    fits_detect = roi.fits  # the fits that built the model; the tests below are the same for every proposer
    ts = _component_ts(roi, tests)
    ts = _prune(roi, tests, ts)
    ts_ext, made_point = _test_extension(roi)
    final = _final_ts(roi, tests, ts, ts_ext, made_point)
    fits = roi.fits + tests.extra_fits
    position_scale = {c.name: _sandwich_scale(roi.fitter, final, c) for c in components(final.model)}
    return RoiResult(final, ts, ts_ext, fits, fits_detect, roi.history, position_scale)


def _start(datasets, cfg: DetectionConfig, log, seeds: tuple = ()) -> _Roi:
    """Step 1: the background and the diffuse band (or the background's norm) and the given ``seeds`` fitted;
    or, with the network, its stage."""
    if cfg.proposer not in ("tsmap", "nn", "both", "none"):
        raise ValueError(f"proposer must be 'tsmap', 'nn', 'both' or 'none' (seeds only), got {cfg.proposer!r}")
    if cfg.proposer == "none" and not seeds:
        raise ValueError("proposer='none' adds no component: give the components to test as seeds=")
    prior_model = multiplicity = None
    if cfg.proposer in ("nn", "both"):  # a missing or bad network is an error here, never a silent TS-map run
        prior_model = load_prior(cfg.prior_weights)
        if cfg.multiplicity:  # the same: its file is checked before any fit
            multiplicity = load_multiplicity(cfg.multiplicity_weights)
    names = {d.name: instrument_of(d) for d in datasets}
    if cfg.diffuse not in ("band", "background_norm"):
        raise ValueError(f"diffuse must be 'band' or 'background_norm', got {cfg.diffuse!r}")
    if cfg.diffuse == "band":
        base = Models([galactic_diffuse()])
    else:  # the background holds the diffuse emission: its norm is free instead
        base = Models([], [BackgroundNorm.create(d.name, 1, mode="global") for d in datasets])
    model = Models(base.sources + seeds, base.backgrounds)
    roi = _Roi(datasets, cfg, log, names, RoiFitter(model, datasets, {}), multiplicity=multiplicity)
    if prior_model is not None:
        roi.result, roi.fitter, roi.priors, roi.history, roi.fits = nn_stage(
            datasets, roi.fitter, model, prior_model, cfg, names, log
        )
    elif seeds:  # released and cleaned up as every added component is
        roi.result, roi.fitter, roi.fits = add_and_fit(base, seeds, datasets, {}, cfg)
        roi.history = [{"iteration": 0, "component": sd.name, "proposer": "given"} for sd in seeds]
    else:
        roi.result = roi.fitter.run(model)
        roi.fits += 1
    return roi


def _seed_components(roi: _Roi) -> None:
    """Step 2: TS-map iterations (each one's peaks seeded and fitted with the model), then the split test."""
    cfg, datasets = roi.cfg, roi.datasets
    counter = len(roi.history)  # one history row per seed so far (the network's proposals included)
    for iteration in range(cfg.max_iterations):
        npreds = roi.fitter.lk.npred(roi.fitter.lk.vector(roi.result.model.values()))
        seeds = []
        for ds, npred in zip(datasets, npreds, strict=True):
            for p in _tsmap_peaks(ds, npred, cfg):
                counter += 1
                seeds.append(seed_component(f"c{counter:03d}_{ds.name}", p["ra"], p["dec"], ds.name,
                                            roi.names[ds.name], p["amplitude"], cfg, p["seed_r39"]))  # fmt: skip
                roi.history.append({"iteration": iteration, "component": seeds[-1].name, "dataset": ds.name, **p})
        if not seeds:
            break
        roi.log(f"  iteration {iteration + 1}: {len(seeds)} new component(s), "
                f"{len(components(roi.result.model)) + len(seeds)} in the model")  # fmt: skip
        roi.result, roi.fitter, n = add_and_fit(roi.result.model, seeds, datasets, roi.priors, cfg)
        roi.fits += n
    roi.result, roi.fitter, n = _split_test(roi.result, roi.fitter, datasets, cfg, roi.log)
    roi.fits += n


def _multiplicity(roi: _Roi) -> None:
    """The multiplicity network's trials: components it calls blends, tried as the sources it sees."""
    roi.result, roi.fitter, n, trials = multiplicity_stage(
        roi.result, roi.fitter, roi.datasets, roi.cfg, roi.log, roi.multiplicity
    )
    roi.fits += n
    roi.history += [{"iteration": "multiplicity", "proposer": "multiplicity", **t} for t in trials]


def _screen_out(roi: _Roi) -> None:
    """Components that fail the TS test even with their neighbours frozen: dropped without a fit each."""
    drop, _ = _screen(roi.result, roi.fitter, roi.cfg)
    if drop:
        roi.log(f"  screened out {len(drop)} component(s) (no-refit TS < {roi.cfg.ts_add:g}): {drop}")
        roi.refit(_without(roi.result.model, drop))


def _component_ts(roi: _Roi, tests: _ComponentTS) -> dict:
    """Step 4's TS of every component (amplitude fixed at zero, neighbours refitted), and again for the pairs
    that stand in for each other, each with its partner held in place."""
    cfg = roi.cfg
    ts = tests(roi.result, roi.fitter)
    roi.fits += len(ts)
    roi.log("  component TS: " + ", ".join(f"{k} {v:.1f}" for k, v in ts.items()))
    if cfg.blend_deg is not None:
        found, n = _stand_ins(roi.result, roi.fitter, ts, cfg)
        roi.fits += n
        for a, b, ts_group in found:
            tests.hold(a, b)
            roi.log(f"  {a} and {b} stand in for each other (TS {ts[a]:.1f}, {ts[b]:.1f}; together {ts_group:.1f}): "
                    "each is tested with the other held in place")  # fmt: skip
        if found:
            retest = {k for pair in found for k in pair[:2]}
            ts.update(tests(roi.result, roi.fitter, only=retest))
            roi.fits += len(retest)
            roi.log("  held-partner TS: " + ", ".join(f"{k} {ts[k]:.1f}" for k in sorted(retest)))
    return ts


def _prune(roi: _Roi, tests: _ComponentTS, ts: dict) -> dict:
    """Backward elimination: weak components that are neighbours can each stand in for the other, so each
    looks unnecessary while the others are there; drop the weakest of each such group only, refit, and
    test its neighbours again. Returns the TS of the components left."""
    cfg = roi.cfg
    stale = set()
    for _ in range(cfg.max_prune_rounds):
        weak = sorted((k for k, v in ts.items() if v < cfg.ts_add), key=ts.get)
        if not weak:
            break
        comps = {s.name: s for s in components(roi.result.model)}
        drop = _to_drop(weak, comps, cfg.local_radius_deg)
        roi.log(f"  dropping {len(drop)} component(s) with TS < {cfg.ts_add:g}: {drop}")
        # components of another detector keep their TS like far ones do: only the diffuse normalisation
        # links them to a dropped component (on 'wide' field 2 their TS moved by at most 0.1 across five
        # rounds of retests before this rule)
        near = {s for s in comps if s not in drop
                and any(neighbours(comps[s], comps[d], cfg.local_radius_deg) for d in drop)}  # fmt: skip
        roi.refit(_without(roi.result.model, drop))
        # components near a dropped one are retested (their TS can change by far: a component that shared
        # a source with the dropped one gets all of it); the others keep their TS (their neighbourhood is
        # unchanged) unless the list of weak ones says otherwise. Dropping D lowers a neighbour X's TS
        # by at most TS_D: the new full fit is at most TS_D worse than before (the fit without D was
        # tried in D's test), and the null of X without D cannot be better than with D. So X, whose TS
        # minus what its dropped neighbours had still exceeds ts_add, passes for sure: it keeps that
        # lower bound as its TS until the refresh after pruning, one fit instead of one per round.
        sure = set()
        for k in near:
            lost = sum(ts[d] for d in drop if neighbours(comps[k], comps[d], cfg.local_radius_deg))
            if ts[k] - lost >= cfg.ts_add:
                ts[k] -= lost
                sure.add(k)
        stale |= sure
        retest = (near - sure) | {k for k in weak if k not in drop}
        stale -= retest
        ts = {k: v for k, v in ts.items() if k not in drop}
        ts.update(tests(roi.result, roi.fitter, only=retest))
        roi.fits += len(retest)
        roi.log("  retested: " + ", ".join(f"{k} {ts[k]:.1f}" for k in sorted(retest) if k in ts)
                + (f"; {len(sure)} pass for sure (retested once, after pruning)" if sure else ""))  # fmt: skip
    if stale:  # the components that kept a lower bound: their TS now, with the final neighbourhood
        ts.update(tests(roi.result, roi.fitter, only=stale))
        roi.fits += len(stale)
        roi.log("  after pruning: " + ", ".join(f"{k} {ts[k]:.1f}" for k in sorted(stale)))
    return ts


def _test_extension(roi: _Roi) -> tuple[dict, list]:
    """Step 5: TS_ext of each Gaussian, r39 fixed to zero (the Gaussian kernel then equals the point kernel);
    those below ``ts_ext`` become point sources and the model is refitted. Returns (TS_ext, made point)."""
    cfg = roi.cfg
    ts_ext = {}
    made_point = []
    for s in components(roi.result.model):
        if s.spatial.tag != "GaussianSpatialModel":
            ts_ext[s.name] = 0.0
            continue
        key = f"{s.name}.sigma"
        pt = freeze_far(roi.result.model, s, cfg.local_radius_deg).with_values({key: 0.0}).with_frozen([key])
        ts_ext[s.name] = max(roi.fitter.fit_stat(pt) - roi.fitter.data_stat(roi.result.model, roi.result.stat), 0.0)
        roi.fits += 1
        if ts_ext[s.name] < cfg.ts_ext:
            made_point.append(s.name)
    if made_point:
        sources = [to_point(s) if s.name in made_point else s for s in roi.result.model.sources]
        roi.refit(Models(sources, roi.result.model.backgrounds))
    return ts_ext, made_point


def _final_ts(roi: _Roi, tests: _ComponentTS, ts: dict, ts_ext: dict, made_point: list) -> FitResult:
    """The fit with HESSE errors. A component made point-like is tested again as it now is, and every
    component that a shape change or a drop touches must still pass ts_add: drop the weakest failing one,
    refit, retest its neighbours (``ts`` and ``ts_ext`` updated). Returns the final fit."""
    cfg = roi.cfg
    final = roi.fitter.run(roi.result.model, hesse=True)
    roi.fits += 1
    retest = set(made_point)
    for _ in range(cfg.max_prune_rounds):
        if not retest:
            break
        ts.update(tests(final, roi.fitter, only=retest))
        roi.fits += len(retest)
        weak = sorted((k for k in retest if ts[k] < cfg.ts_add), key=ts.get)
        if not weak:
            break
        comps = {s.name: s for s in components(final.model)}
        drop = _to_drop(weak, comps, cfg.local_radius_deg)
        roi.log(f"  after the shape change, dropping {drop} (TS < {cfg.ts_add:g})")
        roi.refit(_without(final.model, drop))
        final = roi.fitter.run(roi.result.model, hesse=True)
        roi.fits += 1
        for k in drop:
            ts.pop(k, None)
            ts_ext.pop(k, None)
        retest = {k for k in comps if k not in drop
                  and any(neighbours(comps[k], comps[d], cfg.local_radius_deg) for d in drop)}  # fmt: skip
    return final

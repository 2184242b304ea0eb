"""Significance of faint sources before and after a gamma/hadron cut, on LHAASO-like simulated data.

The LHAASO-like WCDA and KM2A of :mod:`skyfit.response.lhaaso` describe the data after the traditional
cut. A new cut changes, per analysis bin, the gamma efficiency by ``r_gamma = eff_gamma(new) /
eff_gamma(traditional)`` and the background by ``r_bkg = eff_bkg(new) / eff_bkg(traditional)``; the
"after" dataset has its exposure times ``r_gamma`` and its background rate times ``r_bkg``
(the background as rate x efficiency).

Each realisation is a Poisson draw of one year of counts; the test source's amplitude is fitted with
iminuit (shape and position fixed, background normalisation per detector free; in the Galactic plane
also the diffuse normalisation and the amplitudes of the 1LHAASO components within 1.5 deg; the
components farther out are fixed at their true values, their counts added to the background) and
TS = 2 (ln L(fit) - ln L(no source)); significance sqrt(TS) (one-sided, one parameter).

The prediction: for a source well below the background the per-bin TS scales as r_gamma^2 / r_bkg
(the square of eps_gamma / sqrt(eps_bkg)); ``ratio_q_limit`` = sqrt(sum_bins TS_A,before Q^2 / sum_bins
TS_A,before) weights the bins' Q as the data weight them. Where the source is not far below the
background (a 0.01-Crab point source in the highest WCDA bins, KM2A) the TS grows more slowly than
s^2 / b; ``ratio_predicted`` = sqrt(sum_bins TS_A,after / sum_bins TS_A,before) uses the Asimov TS of
each bin after and before (expected counts as data), which holds there too.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..dataset import Dataset
from ..fit import Fit
from ..likelihood import Likelihood
from ..maps import HealpixMaps, HealpixROI, unit_vectors
from ..models import GaussianSpatialModel, LogParabola, Models, PointSpatialModel, Source
from ..models.sky import BackgroundNorm
from ..simulate import lhaaso_dataset
from ._samples import CRAB_LOGPARABOLA

__all__ = [
    "scaled_dataset",
    "class_dataset",
    "significance_study",
    "class_significance_study",
    "plane_position",
    "CRAB_LOGPARABOLA",
]


def scaled_dataset(ds: Dataset, r_gamma, r_bkg, name: str | None = None) -> Dataset:
    """``ds`` with its exposure times ``r_gamma`` and its background times ``r_bkg`` per bin."""
    r_gamma = np.asarray(r_gamma, float)
    r_bkg = np.asarray(r_bkg, float)
    if r_gamma.shape != (ds.n_bins,) or r_bkg.shape != (ds.n_bins,):
        raise ValueError(f"need one efficiency ratio per bin ({ds.n_bins}), got {r_gamma.shape}, {r_bkg.shape}")
    resp = replace(ds.response, counts_matrix=ds.response.counts_matrix * r_gamma[None, :, None])
    bkg = HealpixMaps(ds.background.data * r_bkg[:, None], ds.background.roi, ds.background.bin_names)
    return Dataset(name or ds.name, ds.counts, bkg, resp, meta=dict(ds.meta))


def plane_position(sky: Models, l_range=(26.0, 44.0), b_range=(-0.5, 0.5), min_neighbours: int = 3):
    """A Galactic-plane test position among the components of ``sky`` (e.g. :func:`catalog_sky`): the
    grid point (0.25 deg steps) farthest from every component that still has ``min_neighbours``
    components within 2 deg. Returns (l, b)."""
    from astropy.coordinates import SkyCoord

    cv = np.array([unit_vectors(*s.spatial.position()) for s in sky.sources if not s.spatial.per_pixel_exposure])
    best, best_d = None, -1.0
    for lon in np.arange(l_range[0], l_range[1] + 1e-9, 0.25):
        for lat in np.arange(b_range[0], b_range[1] + 1e-9, 0.25):
            c = SkyCoord(lon, lat, unit="deg", frame="galactic").icrs
            d = np.degrees(np.arccos(np.clip(cv @ unit_vectors(c.ra.deg, c.dec.deg), -1, 1)))
            if np.sum(d < 2.0) >= min_neighbours and d.min() > best_d:
                best, best_d = (float(lon), float(lat)), float(d.min())
    return best


def _test_source(ra, dec, sigma_deg, crab_fraction):
    a, alpha, beta, ref = CRAB_LOGPARABOLA
    spatial = GaussianSpatialModel.create(ra, dec, sigma_deg) if sigma_deg > 0 else PointSpatialModel.create(ra, dec)
    spatial = replace(spatial, parameters=tuple(replace(q, frozen=True) for q in spatial.parameters))
    spec = LogParabola.create(a * crab_fraction, alpha, beta, ref)
    spec = replace(spec, parameters=tuple(q if q.name == "amplitude" else replace(q, frozen=True)
                                          for q in spec.parameters))  # fmt: skip
    return Source("test", spatial, spec)


def _asimov_ts(lk: Likelihood, truth: Models, null: Models) -> np.ndarray:
    """Per dataset and bin, the Asimov TS of the test source (expected counts as data)."""
    mu1 = lk.npred(lk.vector(truth.values()))
    mu0 = lk.npred(lk.vector(null.values()))
    out = []
    for a, b in zip(mu1, mu0, strict=True):
        b = np.maximum(b, 1e-300)
        out.append(2.0 * np.sum(a * np.log(np.maximum(a, 1e-300) / b) - (a - b), axis=1))
    return out


def class_dataset(ds: Dataset, r_gamma, r_bkg, psf_scale, name: str) -> Dataset | None:
    """One event class of ``ds``: exposure x ``r_gamma``, background x ``r_bkg``, PSF widths x ``psf_scale``
    per bin; bins the class does not hold (r_gamma and r_bkg 0) are left out (None: it holds none)."""
    from ..response import GaussianMixturePSF

    rg, rb, ps = (np.asarray(a, float) for a in (r_gamma, r_bkg, psf_scale))
    out = scaled_dataset(ds, rg, rb, name)
    if np.any(ps != 1.0):
        if ds.response.psf_table is not None:
            raise ValueError(f"{ds.name}: PSF classes scale a Gaussian-mixture PSF; this response has a tabulated one")
        if np.any(~np.isfinite(ps) | (ps <= 0)):
            raise ValueError(f"{name}: PSF scales must be finite and positive, got {ps}")
        psf = GaussianMixturePSF(ds.response.psf.weights, ds.response.psf.sigma_deg * ps[:, None])
        out = Dataset(out.name, out.counts, out.background, replace(out.response, psf=psf), meta=dict(out.meta))
    keep = (rg > 0) | (rb > 0)
    if not keep.any():
        return None
    return out if keep.all() else out.select_bins(keep)


def _datasets(schemes: dict, ra, dec, radius_deg, nside, livetime_days, roi_cache: dict) -> list:
    """The datasets of one method: per instrument, one per event class of its :class:`ClassScheme`."""
    datasets = []
    for inst, sch in schemes.items():
        if inst not in roi_cache:
            roi_cache[inst] = HealpixROI.from_disc((ra, dec), radius_deg, nside, True)
        base = lhaaso_dataset(inst, roi=roi_cache[inst], livetime_days=livetime_days)
        for c in range(sch.n_classes):
            name = inst if sch.n_classes == 1 else f"{inst}_{sch.names[c]}"
            ds = class_dataset(base, sch.r_gamma[c], sch.r_bkg[c], sch.psf_scale[c], name)
            if ds is not None:
                datasets.append(ds)
    return datasets


def _setup(datasets, test, ra, dec, radius_deg, neighbours, diffuse):
    """The likelihood, the truth and the null model of one method's datasets: neighbours within 1.5 deg
    of the test source free in amplitude, those farther out (within the ROI + 1 deg) fixed at the truth
    with their counts added to the background, the diffuse amplitude free."""
    sources, free, fixed = [test], set(), []
    center = unit_vectors(ra, dec)
    for s in neighbours or ():
        d = np.degrees(np.arccos(np.clip(unit_vectors(*s.spatial.position()) @ center, -1, 1)))
        if d < 1.5:
            sources.append(s)
            free.add(f"{s.name}.amplitude")
        elif d < radius_deg + 1.0:
            fixed.append(s)  # fixed at the truth: its counts join the background
    if fixed:
        from ..likelihood import npred as source_npred

        with_fixed = []
        for ds in datasets:
            m = Models(fixed).for_datasets([ds.name])
            extra = source_npred(m, ds) if m.sources else 0.0
            bkg = HealpixMaps(ds.background.data + extra, ds.background.roi, ds.background.bin_names)
            with_fixed.append(Dataset(ds.name, ds.counts, bkg, ds.response, meta=dict(ds.meta)))
        datasets = with_fixed
    if diffuse is not None:
        sources.append(diffuse)
        free.add(f"{diffuse.name}.amplitude")
    bkgs = [BackgroundNorm.create(d.name, d.n_bins, "global") for d in datasets]
    truth = Models(sources, bkgs).for_datasets([d.name for d in datasets])
    # neighbours: everything but the amplitudes near the test source frozen
    fix = [k for k, q in truth.parameters().items()
           if not q.frozen and not k.startswith("test.") and not k.startswith(tuple(b.name for b in bkgs))
           and k not in free]  # fmt: skip
    truth = truth.with_frozen(fix)
    lk = Likelihood(truth, datasets, cutout_margin_deg=1.0)
    null_model = truth.with_values({"test.amplitude": 0.0}).with_frozen(["test.amplitude"])
    return lk, truth, null_model


def _realisations(lk, truth, null_model, amp_true, n_realisations, seed, desc=None) -> tuple:
    """TS and fitted amplitude / true in ``n_realisations`` Poisson draws; realisation k draws from
    ``default_rng([seed, k])``, so every method sees the same random stream."""
    mu = lk.npred(lk.vector(truth.values()))
    ts, amp = np.zeros(n_realisations), np.zeros(n_realisations)
    it = range(n_realisations)
    if desc is not None:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=desc)
    for k in it:
        rng = np.random.default_rng([seed, k])
        lk_k = lk.with_counts([rng.poisson(m) for m in mu])
        fitter = Fit(lk_k, strategy=0)
        alt = fitter.run(truth, hesse=False)
        null = fitter.run(null_model, hesse=False)
        ts[k] = max(null.stat - alt.stat, 0.0) if alt.model.values()["test.amplitude"] > 0 else 0.0
        amp[k] = alt.model.values()["test.amplitude"] / amp_true
    return ts, amp


def class_significance_study(methods: dict, ra: float, dec: float, sigma_deg: float = 0.0, crab_fraction: float = 0.01,
                             n_realisations: int = 100, livetime_days: float = 365.0, radius_deg: float = 2.5,
                             nside: int = 512, neighbours=None, diffuse=None, seed: int = 0,
                             progress: bool = False) -> dict:  # fmt: skip
    """TS of a ``crab_fraction`` Crab source at (ra, dec) (a Gaussian of ``sigma_deg``, or a point) in
    ``n_realisations`` simulated years for each method of ``methods``: ``{label: {instrument:
    ClassScheme}}`` (:class:`skyfit.ghsep.ClassScheme`; every event class is its own dataset, fitted
    jointly). ``neighbours``, ``diffuse``: as in :func:`significance_study`. Realisation k of every method
    uses the random stream ``(seed, k)``. Returns ``{label: {"ts", "amplitude_over_true",
    "ts_asimov_per_dataset", "n_datasets"}}``."""
    test = _test_source(ra, dec, sigma_deg, crab_fraction)
    amp_true = test.spectral.parameters[0].value
    roi_cache, out = {}, {}
    kind = "point" if sigma_deg <= 0 else f"{sigma_deg:g} deg"
    for label, schemes in methods.items():
        datasets = _datasets(schemes, ra, dec, radius_deg, nside, livetime_days, roi_cache)
        lk, truth, null_model = _setup(datasets, test, ra, dec, radius_deg, neighbours, diffuse)
        ts_asimov = _asimov_ts(lk, truth, null_model)
        desc = f"{kind} source, {label}" if progress else None
        ts, amp = _realisations(lk, truth, null_model, amp_true, n_realisations, seed, desc)
        out[label] = {
            "ts": ts,
            "amplitude_over_true": amp,
            "n_datasets": len(datasets),
            "ts_asimov_per_dataset": {d.name: t for d, t in zip(lk.datasets, ts_asimov, strict=True)},
        }
    return out


def significance_study(ratios: dict, ra: float, dec: float, sigma_deg: float = 0.0, crab_fraction: float = 0.01,
                       n_realisations: int = 100, livetime_days: float = 365.0, radius_deg: float = 2.5,
                       nside: int = 512, neighbours=None, diffuse=None, seed: int = 0,
                       progress: bool = False) -> dict:  # fmt: skip
    """TS of a ``crab_fraction`` Crab source at (ra, dec) (a Gaussian of ``sigma_deg``, or a point) in
    ``n_realisations`` simulated years, with the traditional cut ("before") and a new cut ("after").

    ``ratios``: ``{"WCDA": (r_gamma, r_bkg), "KM2A": (...)}`` per analysis bin of the LHAASO-like
    instruments; ``neighbours``: other sources (1LHAASO components) in the truth and the fit, their
    amplitudes free within 1.5 deg; ``diffuse``: a diffuse source (its amplitude free).
    Returns per-realisation TS arrays, medians and the prediction (the special case of
    :func:`class_significance_study` with one class per method).
    """
    from ._classes import ClassScheme

    methods = {"before": {}, "after": {}}
    for inst, (rg, rb) in ratios.items():
        rg, rb = np.atleast_2d(np.asarray(rg, float)), np.atleast_2d(np.asarray(rb, float))
        methods["before"][inst] = ClassScheme.traditional(rg.shape[1])
        methods["after"][inst] = ClassScheme(rg, rb, np.ones_like(rg), ("after",))
    res = class_significance_study(methods, ra, dec, sigma_deg, crab_fraction, n_realisations, livetime_days,
                                   radius_deg, nside, neighbours, diffuse, seed, progress)  # fmt: skip
    out = {}
    for label in ("before", "after"):
        per_bin = res[label]["ts_asimov_per_dataset"]
        out[label] = {"ts": res[label]["ts"], "amplitude_over_true": res[label]["amplitude_over_true"],
                      "ts_asimov_per_bin": per_bin}  # fmt: skip
    ta_b = sum(float(np.sum(t)) for t in out["before"]["ts_asimov_per_bin"].values())
    ta_a = sum(float(np.sum(t)) for t in out["after"]["ts_asimov_per_bin"].values())
    # the background-dominated limit: each bin's TS scales by Q^2 = r_gamma^2 / r_bkg
    q_lim = sum(float(np.sum(out["before"]["ts_asimov_per_bin"][inst] * np.asarray(rg) ** 2 / np.asarray(rb)))
                for inst, (rg, rb) in ratios.items())  # fmt: skip
    sb, sa = np.sqrt(out["before"]["ts"]), np.sqrt(out["after"]["ts"])
    out["summary"] = {
        "signif_before_median": float(np.median(sb)),
        "signif_after_median": float(np.median(sa)),
        "ratio_after_before": float(np.median(sa) / max(np.median(sb), 1e-12)),
        "ratio_predicted": float(np.sqrt(ta_a / ta_b)) if ta_b > 0 else float("nan"),
        "ratio_q_limit": float(np.sqrt(q_lim / ta_b)) if ta_b > 0 else float("nan"),
        "asimov_signif_before": float(np.sqrt(ta_b)),
        "asimov_signif_after": float(np.sqrt(ta_a)),
        "frac_5sigma_before": float(np.mean(sb >= 5.0)),
        "frac_5sigma_after": float(np.mean(sa >= 5.0)),
        "n_realisations": int(n_realisations),
    }
    return out

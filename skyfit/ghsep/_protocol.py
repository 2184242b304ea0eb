"""The event-class significance protocol of issue #29, seed by seed, resumable.

Per sample seed ``s``: WCDA and KM2A training, tuning and test samples (seeds ``s``, ``s + 1``,
``s + 2``; KM2A ``s + 5``, ``s + 6``, ``s + 7``), the protons' leading pion importance-sampled; an MLP
classifier (:func:`build_model`: cuts on the tuning sample) and an angular-error estimator on the
training gammas (:func:`train_psf_estimator`); class edges on the tuning sample, ratios on the test
sample (:func:`class_schemes`) at each value of the leading-pion constant; then per case (dec 22 deg
and the Galactic plane, point and 0.3 deg Gaussian, 0.01 Crab) ``n_realisations`` one-year Poisson
draws fitted with each method: the traditional cut, the single ML cut, gammaness classes and
gammaness x PSF classes, the same random stream for every method (:func:`class_significance_study`).

Every (seed, constant, case) result is written to ``outdir`` as JSON when done, and read back instead of
recomputed: a run that stops resumes where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ._classes import class_schemes
from ._pipeline import build_model
from ._psfnet import train_psf_estimator
from ._samples import labelled_sample
from ._significance import class_significance_study, plane_position

__all__ = ["LEADING_PI0_FACTORS", "PROTOCOL_CASES", "PROTOCOL_METHODS", "protocol_cases", "seed_schemes",
           "run_protocol_seed", "summarise_protocol", "read_seed_schemes", "noise_corrected_asimov"]  # fmt: skip

PROTOCOL_METHODS = ("traditional", "single_cut", "classes", "classes_psf")
PROTOCOL_CASES = ("dec22_point", "dec22_gauss0.3", "plane_point", "plane_gauss0.3")
LEADING_PI0_FACTORS = (1.0, 0.3, 3.0)  # the leading-pion constant's central value and systematic band


def protocol_cases() -> dict:
    """The four cases: ``{name: dict(ra, dec, sigma_deg, neighbours, diffuse)}``."""
    from astropy.coordinates import SkyCoord

    from ..skies import catalog_sky, galactic_diffuse, read_1lhaaso

    sky = catalog_sky(read_1lhaaso())
    lon, lat = plane_position(sky)
    c = SkyCoord(lon, lat, unit="deg", frame="galactic").icrs
    plane = {"ra": float(c.ra.deg), "dec": float(c.dec.deg), "neighbours": sky.sources, "diffuse": galactic_diffuse()}
    dec22 = {"ra": 120.0, "dec": 22.0, "neighbours": None, "diffuse": None}
    return {
        "dec22_point": {**dec22, "sigma_deg": 0.0},
        "dec22_gauss0.3": {**dec22, "sigma_deg": 0.3},
        "plane_point": {**plane, "sigma_deg": 0.0, "l_b": (lon, lat)},
        "plane_gauss0.3": {**plane, "sigma_deg": 0.3, "l_b": (lon, lat)},
    }


def seed_schemes(seed: int, sizes: dict, factors, cache_dir=None, sampling: float = 0.05, epochs: int = 40,
                 log=print) -> tuple[dict, dict]:  # fmt: skip
    """Per leading-pion factor, ``{method: {instrument: ClassScheme}}`` for sample seed ``seed``, and a
    record of the models (cuts, PSF estimator's fit). ``sizes``: ``{instrument: (n_gamma, n_background)}``."""
    per_factor = {f: {m: {} for m in PROTOCOL_METHODS} for f in factors}
    record = {}
    for inst, (ng, nb) in sizes.items():
        s = seed if inst == "WCDA" else seed + 5
        model, tune = build_model(inst, ng, nb, seed=s, epochs=epochs, log=log, cache_dir=cache_dir,
                                  leading_pi0_sampling=sampling)  # fmt: skip
        train = labelled_sample(inst, ng, nb, seed=s, cache_dir=cache_dir, leading_pi0_sampling=sampling)
        test = labelled_sample(inst, ng, nb, seed=s + 2, cache_dir=cache_dir, leading_pi0_sampling=sampling)
        psf = train_psf_estimator(train["gamma"], inst, seed=s)
        record[inst] = {"seeds": [s, s + 1, s + 2], "ml_cut_bins": sorted(model.cuts),
                        "psf_validation_mse": psf.meta["validation_mse"][-1],
                        "psf_target_variance": psf.meta["target_variance"]}  # fmt: skip
        for f in factors:
            for m, sch in class_schemes(model, tune, test, psf, f).items():
                per_factor[f][m][inst] = sch
        del train, test, tune
    return per_factor, record


def _scheme_json(sch) -> dict:
    return {
        "r_gamma": sch.r_gamma.tolist(),
        "r_bkg": sch.r_bkg.tolist(),
        "psf_scale": sch.psf_scale.tolist(),
        "n_eff_bkg": None if sch.n_eff_bkg is None else sch.n_eff_bkg.tolist(),
        "bkg_bound": None if sch.bkg_bound is None else sch.bkg_bound.tolist(),
        "names": list(sch.names),
        "meta": sch.meta,
    }


def read_seed_schemes(outdir, seed: int) -> dict | None:
    """A seed's classes, ``{factor: {method: {instrument: ClassScheme}}}``, from ``outdir`` (None if absent)."""
    path = Path(outdir) / f"seed{seed}_schemes.json"
    return _read_schemes(path) if path.exists() else None


def _read_schemes(path) -> dict:
    """``{factor: {method: {instrument: ClassScheme}}}`` from a ``seed*_schemes.json``."""
    from ._classes import ClassScheme

    raw = json.loads(Path(path).read_text())["schemes"]
    out = {}
    for f, per in raw.items():
        out[float(f)] = {
            m: {i: ClassScheme(*(np.asarray(d[k]) for k in ("r_gamma", "r_bkg", "psf_scale")), tuple(d["names"]),
                               np.asarray(d["n_eff_bkg"]), np.asarray(d["bkg_bound"]), d.get("meta", {}))
                for i, d in insts.items()}
            for m, insts in per.items()
        }  # fmt: skip
    return out


def run_protocol_seed(
    seed: int,
    outdir,
    sizes: dict,
    factors=LEADING_PI0_FACTORS,
    n_realisations: int = 100,
    cache_dir=None,
    cases: dict | None = None,
    log=print,
    progress: bool = False,
) -> dict:
    """One sample seed of the protocol at the leading-pion ``factors``; results per (constant, case) in
    ``outdir/seed{seed}_f{f}_{case}.json`` (read back when present). The seed's classes at every constant
    are computed once and kept in ``outdir/seed{seed}_schemes.json``. Returns ``{factor: {case: result}}``."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)

    def path(f, case):
        return outdir / f"seed{seed}_f{f:g}_{case}.json"

    cases = protocol_cases() if cases is None else cases
    todo = [(f, c) for f in factors for c in cases if not path(f, c).exists()]
    schemes = None
    spath = outdir / f"seed{seed}_schemes.json"
    setup = {"sizes": {k: list(v) for k, v in sizes.items()}, "n_realisations": n_realisations,
             "leading_pi0_sampling": 0.05}  # fmt: skip
    if todo and spath.exists():  # the classes of an earlier run of this seed: no retraining
        have = json.loads(spath.read_text()).get("setup")
        if have != setup:
            raise ValueError(f"{spath}: made with {have}, this run asks {setup}; use another outdir or the same "
                             "settings (a protocol's seeds must share them)")  # fmt: skip
        schemes = _read_schemes(spath)
    if todo and (schemes is None or any(f not in schemes for f in factors)):
        log(f"seed {seed}: samples, classifiers and classes ({len(todo)} of {len(factors) * len(cases)} results to do)")
        every = tuple(sorted(set(LEADING_PI0_FACTORS) | set(factors)))
        schemes, record = seed_schemes(seed, sizes, every, cache_dir or outdir / "samples", log=log)
        tmp = spath.with_name(spath.name + ".tmp")
        tmp.write_text(json.dumps({
            "setup": setup, "record": record, "schemes": {f"{f!r}": {m: {i: _scheme_json(s) for i, s in per.items()}
                                                     for m, per in schemes[f].items()} for f in every}}))  # fmt: skip
        tmp.replace(spath)
    out = {}
    for f in factors:
        out[f] = {}
        for ci, (name, case) in enumerate(cases.items()):
            p = path(f, name)
            if p.exists():
                out[f][name] = json.loads(p.read_text())
                continue
            log(f"seed {seed}, leading-pion constant x{f:g}, {name}: {n_realisations} realisations of each method")
            res = class_significance_study(schemes[f], case["ra"], case["dec"], case["sigma_deg"], 0.01, n_realisations,
                                           neighbours=case["neighbours"], diffuse=case["diffuse"],
                                           seed=1000 * seed + ci, progress=progress)  # fmt: skip
            # the Asimov TS per dataset and bin too: each class-bin's share, for checks against its n_eff
            row = {}
            for m, r in res.items():
                per = r["ts_asimov_per_dataset"]
                row[m] = {"ts": np.asarray(r["ts"]).tolist(), "n_datasets": r["n_datasets"],
                          "asimov_ts": float(sum(np.sum(t) for t in per.values())),
                          "asimov_ts_per_dataset": {k: np.asarray(t).tolist() for k, t in per.items()}}  # fmt: skip
            tmp = p.with_name(p.name + ".tmp")
            tmp.write_text(json.dumps(row))
            tmp.replace(p)
            out[f][name] = row
    return out


def noise_corrected_asimov(row_m: dict, schemes_m: dict) -> float:
    """A method's Asimov TS with each class-bin's share scaled by n / (n + 1), n its background's Kish
    effective count on the test sample: the ratios are estimates, and a faint source's TS goes as
    1 / r_bkg, whose mean over a noisy estimate exceeds 1 / (its mean) by about 1 + 1 / n (exact for a
    background-dominated bin and a gamma-distributed estimate; too strong where the source dominates).
    A diagnostic of how much of a method's gain could be the test sample's noise; bins at the upper limit
    (no background event) and the traditional cut (exact) keep their share."""
    per = row_m.get("asimov_ts_per_dataset")
    if per is None:
        return float("nan")
    total = 0.0
    for inst, sch in schemes_m.items():
        for c, name in enumerate(sch.names):
            key = inst if sch.n_classes == 1 else f"{inst}_{name}"
            if key not in per:
                continue
            kept = np.flatnonzero((sch.r_gamma[c] > 0) | (sch.r_bkg[c] > 0))
            ts = np.asarray(per[key], float)
            n = np.asarray(sch.n_eff_bkg[c], float)[kept] if sch.n_eff_bkg is not None else np.full(kept.size, np.inf)
            exact = (np.asarray(sch.bkg_bound[c], bool)[kept] if sch.bkg_bound is not None else False) | (n <= 0)
            exact = exact | ((sch.r_gamma[c][kept] == 1.0) & (sch.r_bkg[c][kept] == 1.0))
            total += float(np.sum(np.where(exact, ts, ts * n / (n + 1.0))))
    return total


def _ratios(row: dict, schemes: dict | None = None) -> dict:
    """Median significance of each method over the traditional cut's, and of classes over the single cut;
    the Asimov ratios, and with the seed's ``schemes`` their noise-corrected values."""
    med = {m: float(np.median(np.sqrt(np.maximum(row[m]["ts"], 0.0)))) for m in PROTOCOL_METHODS}
    base = max(med["traditional"], 1e-12)
    r = {f"ratio_{m}": med[m] / base for m in PROTOCOL_METHODS[1:]}
    r["gain_classes_over_single"] = med["classes"] / max(med["single_cut"], 1e-12)
    for m in PROTOCOL_METHODS[1:]:
        r[f"asimov_ratio_{m}"] = float(np.sqrt(row[m]["asimov_ts"] / row["traditional"]["asimov_ts"]))
        if schemes is not None:
            r[f"asimov_ratio_{m}_noise_corrected"] = float(
                np.sqrt(noise_corrected_asimov(row[m], schemes[m]) / row["traditional"]["asimov_ts"])
            )
    return r


def summarise_protocol(results: dict, n_boot: int = 10000, boot_seed: int = 0, schemes: dict | None = None) -> dict:
    """``results``: ``{seed: {factor: {case: row}}}``. Per factor, per case and for the median over the
    cases: the mean over seeds of each per-seed ratio, with its 68 % interval from a bootstrap over seeds.
    ``schemes``: ``{seed: {factor: {method: {instrument: ClassScheme}}}}`` (:func:`read_seed_schemes`)
    adds the noise-corrected Asimov ratios (:func:`noise_corrected_asimov`)."""
    seeds = sorted(results)
    factors = sorted({f for s in seeds for f in results[s]})
    rng = np.random.default_rng(boot_seed)
    out = {}
    for f in factors:
        have = [s for s in seeds if f in results[s] and all(c in results[s][f] for c in PROTOCOL_CASES)]
        if not have:
            continue
        sch = {s: (schemes or {}).get(s, {}).get(f) for s in have}
        per = {s: {c: _ratios(results[s][f][c], sch[s]) for c in PROTOCOL_CASES} for s in have}
        keys = sorted(set.intersection(*(set(per[s][c]) for s in have for c in PROTOCOL_CASES)))
        block = {}
        for label in (*PROTOCOL_CASES, "median"):
            vals = {k: np.array([per[s][label][k] if label != "median" else
                                 np.median([per[s][c][k] for c in PROTOCOL_CASES]) for s in have])
                    for k in keys}  # fmt: skip
            idx = rng.integers(0, len(have), (n_boot, len(have)))
            block[label] = {}
            for k, v in vals.items():
                boot = v[idx].mean(axis=1)
                block[label][k] = float(v.mean())
                block[label][f"{k}_lo"], block[label][f"{k}_hi"] = (float(x) for x in np.percentile(boot, [16, 84]))
        out[f"x{f:g}"] = {"seeds": have, **block}
    return out

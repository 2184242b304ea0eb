"""The whole before/after study of issue #7 as one function (used by `skyfit ghsep report` and the benchmark),
and the report of a trained model on an independent test sample (:func:`model_report`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..response.lhaaso import _spec
from ._features import GHSepError
from ._pipeline import evaluate
from ._plots import plot_roc, plot_significance
from ._samples import labelled_sample
from ._significance import plane_position, significance_study

__all__ = ["ratio_arrays", "run_significance", "equal_efficiency_summary", "independent_seed", "model_report"]


def ratio_arrays(ratios: dict, instrument: str) -> tuple[np.ndarray, np.ndarray]:
    """Per bin of the LHAASO-like instrument, (r_gamma, r_bkg); bins with no figure keep the traditional
    cut (1, 1)."""
    n = len(_spec(instrument)["bin_names"])
    rg, rb = np.ones(n), np.ones(n)
    for k, v in ratios.items():
        if 0 <= int(k) < n:
            rg[int(k)], rb[int(k)] = v["r_gamma"], v["r_bkg"]
    return rg, rb


def equal_efficiency_summary(evals: dict, min_events: int = 3) -> dict:
    """Background reduction at equal gamma efficiency per instrument and bin, and the median over the
    bins below 100 TeV where it was measured (at least ``min_events`` simulated background events passing
    each cut, the gamma efficiencies matched)."""
    per_bin, below = {}, []
    for inst, ev in evals.items():
        for row in ev["equal_efficiency"]:
            key = f"{inst}_{row['bin']}"
            per_bin[key] = None if row["reduction"] is None else round(float(row["reduction"]), 3)
            hi_edge = np.inf
            if inst == "KM2A":
                hi_edge = 10 ** (1.4 + 0.2 * (row["bin"] + 1))
            measured = (row["reduction"] is not None and row["efficiency_matched"]
                        and min(row["n_bkg_pass_trad"], row["n_bkg_pass_ml"]) >= min_events)  # fmt: skip
            if measured and (inst == "WCDA" or hi_edge <= 100.0):
                below.append(row["reduction"])
    return {"per_bin": per_bin, "median": float(np.median(below)) if below else None, "n_bins_measured": len(below)}


def run_significance(ratios: dict, n_realisations: int = 100, seed: int = 0, progress: bool = False,
                     log=print) -> dict:  # fmt: skip
    """0.01-Crab point and 0.3 deg Gaussian sources at declination 22 deg and in the Galactic plane among
    1LHAASO components; returns {case: study}."""
    from astropy.coordinates import SkyCoord

    from ..skies import catalog_sky, galactic_diffuse, read_1lhaaso

    arrays = {inst: ratio_arrays(r, inst) for inst, r in ratios.items()}
    studies = {}
    for sigma in (0.0, 0.3):
        name = f"dec 22, {'point' if sigma == 0 else f'{sigma:g} deg Gaussian'}"
        log(f"significance study: {name}")
        studies[name] = significance_study(arrays, 120.0, 22.0, sigma, 0.01, n_realisations, seed=seed,
                                           progress=progress)  # fmt: skip
    sky = catalog_sky(read_1lhaaso())
    lon, lat = plane_position(sky)
    c = SkyCoord(lon, lat, unit="deg", frame="galactic").icrs
    diffuse = galactic_diffuse()
    for sigma in (0.0, 0.3):
        name = f"plane l={lon:g} b={lat:g}, {'point' if sigma == 0 else f'{sigma:g} deg Gaussian'}"
        log(f"significance study: {name}")
        studies[name] = significance_study(arrays, float(c.ra.deg), float(c.dec.deg), sigma, 0.01, n_realisations,
                                           neighbours=sky.sources, diffuse=diffuse, seed=seed + 1,
                                           progress=progress)  # fmt: skip
    return studies


def independent_seed(model, seed: int | None = None) -> int:
    """The seed of an independent test sample for ``model``: ``seed``, by default the training seed + 2
    (the training and tuning samples used the training seed and the next one: those are refused)."""
    train_seed = int(model.meta.get("samples", {}).get("training_seed", 0))
    seed = train_seed + 2 if seed is None else seed
    if seed in (train_seed, train_seed + 1):
        raise GHSepError(f"test seed {seed} would regenerate the model's training or tuning sample (seeds {train_seed} "
                         f"and {train_seed + 1}); a test sample needs another seed")  # fmt: skip
    return seed


def _log_equal_efficiency(rows, log) -> None:
    log(" bin  gamma eff  bkg trad   bkg ML     reduction at equal efficiency")
    for r in rows:
        red = "—" if r["reduction"] is None else f"{r['reduction']:.2f} ± {r['reduction_err']:.2f}"
        log(f"{r['bin']:4d} {r['gamma_eff_trad']:10.3f} {r['bkg_eff_trad']:9.2e} {r['bkg_eff_ml']:9.2e}  {red}")


def model_report(
    model,
    outdir,
    n_gamma: int | None = None,
    n_background: int | None = None,
    seed: int | None = None,
    realisations: int = 20,
    source=None,
    log=print,
) -> tuple[Path, list]:
    """A trained ``model`` on an independent test sample (seed: :func:`independent_seed`; ``n_gamma`` /
    ``n_background`` showers thrown, by default as many as for its training): ROC curves, the background at
    equal gamma efficiency per bin, and with ``realisations`` > 0 the significance of faint sources before and after
    its cuts (:func:`run_significance`, that many simulated years per source). Writes ``report.json`` and
    the plots under ``outdir``; ``source`` (the model file) is recorded in the report. Returns (the
    report's path, the plots' paths)."""
    seed = independent_seed(model, seed)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    inst = model.instrument
    samples = model.meta.get("samples", {})
    ng = n_gamma or int(samples.get("n_gamma_thrown", 20000))
    nb = n_background or int(samples.get("n_background_thrown", 60000))
    log(f"simulating an independent {inst} test sample (seed {seed})")
    test = labelled_sample(inst, ng, nb, seed=seed, hits=model.kind == "pointcloud")
    ev = evaluate(model, test)
    files = [plot_roc(ev, test, inst, outdir)]
    report = {"model": str(source), "instrument": inst, "test_seed": seed,
              "equal_efficiency": ev["equal_efficiency"], "traditional": ev["traditional"], "ml": ev["ml"],
              "ratios": {str(k): v for k, v in ev["ratios"].items()},
              "bkg_reduction_at_equal_eff": equal_efficiency_summary({inst: ev})}  # fmt: skip
    _log_equal_efficiency(ev["equal_efficiency"], log)
    if realisations > 0:
        studies = run_significance({inst: ev["ratios"]}, realisations, seed=seed, log=log)
        files.append(plot_significance(studies, outdir))
        report["significance"] = {k: v["summary"] for k, v in studies.items()}
        for k, v in report["significance"].items():
            log(f"{k}: significance {v['signif_before_median']:.2f} -> {v['signif_after_median']:.2f} "
                f"(ratio {v['ratio_after_before']:.3f}, predicted {v['ratio_predicted']:.3f})")  # fmt: skip
    path = outdir / "report.json"
    path.write_text(json.dumps(report, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    return path, files

"""The whole before/after study of issue #7 as one function (used by `skyfit ghsep report` and the benchmark)."""

from __future__ import annotations

import numpy as np

from ..response.lhaaso import _spec
from ._significance import plane_position, significance_study

__all__ = ["ratio_arrays", "run_significance", "equal_efficiency_summary"]


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

    from ..catalog._sky import catalog_sky, galactic_diffuse, read_1lhaaso

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

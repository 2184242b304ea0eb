"""Labelled training and evaluation samples from skyfit's air-shower simulation, with physical weights.

Each sample is drawn from an E^-2 spectrum (enough events at high energy) and weighted back:

- gammas to the Crab's spectrum (HAWC's log-parabola, Abeysekara et al. 2019, ApJ 881 134);
- protons to 9.5e-5 (E/TeV)^-2.7 per GeV m^2 s sr (PDG); for WCDA two more proton samples (1-20 TeV,
  5-150 TeV) fill the high nHit bins;
- for WCDA, cosmic-ray electrons (gamma-like showers, part of any real residual background) to
  1.5e-7 (E/TeV)^-3.1 below 0.9 TeV and ^-3.9 above (H.E.S.S. 2008; DAMPE 2017).

Only events that pass the quality cut (core in the array, a reconstructed direction) are kept. Helium
and heavier nuclei are not simulated (approximate: protons dominate the residual background at these
energies, and heavier nuclei are easier to reject).
"""

from __future__ import annotations

import numpy as np

from ..showers.detectors import km2a_layouts, wcda_layout
from ..showers.pipeline import hits_table, simulate_shower_events
from ._features import GHSepError, hit_cloud

__all__ = ["labelled_sample", "reweight_leading_pi0", "TRADITIONAL", "traditional_score", "analysis_bin",
           "energy_calibration", "KM2A_LOG10E_EDGES", "simulation_revision"]  # fmt: skip

# KM2A analysis bins of the LHAASO-like instrument (skyfit.response.lhaaso): log10(E/TeV) 1.4-3.2, 0.2 wide
KM2A_LOG10E_EDGES = np.round(np.arange(1.4, 3.2 + 1e-9, 0.2), 1)

# the traditional single-variable cut per instrument: (column, higher is gamma, gamma efficiency kept)
TRADITIONAL = {"WCDA": ("COMPACTNESS", True, 0.5), "KM2A": ("MU_E_RATIO", False, 0.9)}

_RANGES = {
    # instrument: [(particle, fraction of n_background, e_min, e_max)], gamma range
    # WCDA: the 1-20 TeV protons are there for the high nHit bins, where the few background events that
    # pass a cut are mostly 0.5-5 TeV gamma-like protons; drawn from the wide range alone, each weighs
    # ten times a 5-150 TeV one and three or four of them made a bin's figure (Kish n_eff about 4); the
    # 0.3-3 TeV ones for the bins near 1 TeV, where the background surviving a tight cut is ordinary
    # protons of 0.5-3 TeV (their effective number was about 100 in five seeds without them)
    "WCDA": (
        [
            ("proton", 0.3, 0.3, 100.0),
            ("proton", 0.15, 0.3, 3.0),
            ("proton", 0.2, 1.0, 20.0),
            ("proton", 0.25, 5.0, 150.0),
            ("electron", 0.1, 0.3, 30.0),
        ],
        (0.3, 30.0),
    ),
    "KM2A": ([("proton", 1.0, 20.0, 2000.0)], (10.0, 1000.0)),
}
# changes to the shower simulation that alter an instrument's samples (for the cache key)
_SIMULATION_REVISION = {"KM2A": "+muon detectors see the electromagnetic array's showers"}


def simulation_revision(instrument: str) -> str:
    """The revision of the shower simulation behind ``instrument``'s samples (model files record it)."""
    from ..showers.physics import SIMULATION_REVISION

    rev = _SIMULATION_REVISION.get(instrument.upper(), "")
    return SIMULATION_REVISION + (f"; {rev}" if rev else "")


def traditional_score(table: dict, instrument: str) -> np.ndarray:
    """The traditional discriminant, signed so that higher is more gamma-like."""
    col, higher, _ = TRADITIONAL[instrument.upper()]
    v = np.asarray(table[col], float)
    v = np.log10(np.maximum(v, 1e-6)) if col == "MU_E_RATIO" else v
    return v if higher else -v


# HAWC's Crab log-parabola (Abeysekara et al. 2019, ApJ 881 134): amplitude at 7 TeV, alpha, beta (ln)
CRAB_LOGPARABOLA = (2.31e-13, 2.73, 0.06, 7.0)


def _crab_dnde(e):
    a, alpha, beta, ref = CRAB_LOGPARABOLA
    x = np.log(e / ref)
    return a * np.exp(-(alpha + beta * x) * x)


def _e2_density(e, lo, hi):
    return np.where((e >= lo) & (e <= hi), e**-2.0 / (1.0 / lo - 1.0 / hi), 0.0)


def _flux(particle, e):
    if particle == "proton":
        return 9.5e-5 * e**-2.7
    if particle == "electron":
        return 1.5e-7 * np.where(e < 0.9, e**-3.1, 0.9**0.8 * e**-3.9)
    return _crab_dnde(e)


def labelled_sample(instrument: str, n_gamma: int, n_background: int, seed: int = 0, hits: bool = False,
                    k_hits: int = 48, throw_radius_m: float | None = None, chunk: int = 20_000,
                    progress=None, cache_dir=None, leading_pi0_sampling: float | None = None) -> dict:  # fmt: skip
    """Simulate and reconstruct gammas and cosmic rays for ``instrument``; returns
    ``{"gamma": table, "background": table}`` where each table has a physical ``WEIGHT`` column (its
    sum is arbitrary per class: only ratios within a class matter) and, with ``hits``, a ``CLOUD``
    entry (:func:`hit_cloud`, the ``k_hits`` largest hits). Cores are thrown within ``throw_radius_m``
    (default: 200 m for WCDA, whose pond is 300 m x 260 m; 600 m for KM2A); showers whose core is
    farther out rarely pass the quality cut, which needs the reconstructed core 40 m inside the array.
    ``leading_pi0_sampling``: draw the protons' leading neutral pion (gamma-like showers) with this
    probability and fold the importance weight into ``WEIGHT`` (the survivors of a tight cut are mostly
    such showers: sampling them often makes the figures behind a cut worth many more events;
    :func:`reweight_leading_pi0` moves the physical constant afterwards)."""
    instrument = instrument.upper()
    cache = None
    if cache_dir is not None:  # a sample is a pure function of these arguments: reuse it
        import hashlib
        from pathlib import Path

        # the energy ranges drawn from and the simulation's revision are part of the key: a sample drawn
        # from other ranges, or simulated before a change that alters it, is redrawn
        key = repr(_RANGES.get(instrument)) + simulation_revision(instrument)
        if leading_pi0_sampling is not None:
            key += f"lead{leading_pi0_sampling!r}"
        tag = hashlib.sha256(key.encode()).hexdigest()[:8]
        cache = Path(cache_dir) / (f"{instrument}_g{n_gamma}_b{n_background}_s{seed}_h{int(hits)}{k_hits}"
                                   f"_r{throw_radius_m}_{tag}.npz")  # fmt: skip
        if cache.exists():
            return _load_cache(cache)
    if instrument not in _RANGES:
        raise GHSepError(f"instrument must be 'WCDA' or 'KM2A', got {instrument!r}")
    layout = wcda_layout() if instrument == "WCDA" else km2a_layouts()[0]
    throw = throw_radius_m or (200.0 if instrument == "WCDA" else 600.0)
    bkg_parts, (g_lo, g_hi) = _RANGES[instrument]
    jobs = [("gamma", n_gamma, g_lo, g_hi)] + [(p, int(round(f * n_background)), lo, hi) for p, f, lo, hi in bkg_parts]
    out = {"gamma": [], "background": []}
    drawn = {"gamma": [], "background": []}  # (particle, lo, hi, n thrown) per job, events passing or not
    for k, (particle, n, lo, hi) in enumerate(jobs):
        if n <= 0:
            continue
        cls = "gamma" if particle == "gamma" else "background"
        drawn[cls].append((particle, lo, hi, n))
        chunks = []
        for c, start in enumerate(range(0, n, chunk)):
            m = min(chunk, n - start)
            rec = [] if hits else None
            t = simulate_shower_events(instrument, particle, m, e_min_tev=lo, e_max_tev=hi, index=2.0,
                                       seed=seed * 100_000 + k * 1000 + c, throw_radius_m=throw,
                                       hits_out=rec, leading_pi0_sampling=leading_pi0_sampling)  # fmt: skip
            if hits:
                h = hits_table(rec)
                t["CLOUD"] = hit_cloud(t, h, layout, k_hits)
                del h, rec
            keep = t["CORE_IN_ARRAY"] & (t["BIN"] >= 0)
            chunks.append({col: v[keep] for col, v in t.items()})
        t = {col: np.concatenate([ch[col] for ch in chunks]) for col in chunks[0]}
        t["PARTICLE"] = np.full(len(t["BIN"]), particle)
        out[cls].append(t)
        if progress is not None:
            progress(f"{n} {particle} showers ({lo:g}-{hi:g} TeV) simulated, {len(t['BIN'])} pass the quality cut")
    res = {}
    for cls, parts in out.items():
        table = {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}
        e = table["TRUE_ENERGY"]
        # the density each event was drawn from: the sum over the samples of its particle that cover e
        dens = np.zeros_like(e)
        for particle, lo, hi, n in drawn[cls]:
            dens += np.where(table["PARTICLE"] == particle, n * _e2_density(e, lo, hi), 0.0)
        flux = np.zeros_like(e)
        for particle in np.unique(table["PARTICLE"]):
            sel = table["PARTICLE"] == particle
            flux[sel] = _flux(particle, e[sel])
        table["WEIGHT"] = flux / np.maximum(dens, 1e-300) * table.get("LEAD_WEIGHT", 1.0)
        res[cls] = table
    if cache is not None:
        _save_cache(cache, res)
    return res


def reweight_leading_pi0(table: dict, factor: float) -> np.ndarray:
    """``WEIGHT`` of a sample as if the leading-pion probability were ``factor`` times
    :data:`skyfit.showers.physics.LEADING_PI0_PROBABILITY` (a systematic band without re-simulating): a
    proton event with a leading neutral pion scales by ``factor``, one without by
    ``(1 - factor p) / (1 - p)``; other particles keep theirs."""
    from ..showers.physics import LEADING_PI0_PROBABILITY as p
    from ..showers.simulate import leading_pi0_weight

    if not (factor > 0 and factor * p < 1):
        raise GHSepError(f"leading-pion factor must be in (0, {1 / p:g}), got {factor}")
    # the importance weight of a sample drawn at p, taken to the physical rate factor * p
    scale = leading_pi0_weight(table["Z"], table["TRUE_LEADING_PI0"], sampled=p, probability=factor * p)
    return np.asarray(table["WEIGHT"], float) * scale


def _save_cache(path, res):
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{cls}__{c}": v for cls, t in res.items() for c, v in t.items()}
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    tmp.replace(path)


def _load_cache(path):
    res = {"gamma": {}, "background": {}}
    with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
        for k in z.files:
            cls, c = k.split("__", 1)
            res[cls][c] = z[k]
    return res


def energy_calibration(gammas: dict, instrument: str) -> list:
    """KM2A: coefficients of log10(E_true / TeV) as a quadratic in log10 N_E, fitted to ``gammas`` (the
    simulation's energy estimator); WCDA: [] (its bins are nHit segments)."""
    if instrument.upper() != "KM2A":
        return []
    x = np.log10(np.maximum(np.asarray(gammas["N_E"], float), 1.0))
    y = np.log10(np.asarray(gammas["TRUE_ENERGY"], float))
    return [float(c) for c in np.polyfit(x, y, 2)]


def analysis_bin(table: dict, instrument: str, calibration=None) -> np.ndarray:
    """The analysis bin of each event as in the LHAASO-like instruments: WCDA's nHit segment (``BIN``);
    KM2A's reconstructed-energy bin from ``calibration`` (:func:`energy_calibration`); -1 outside."""
    if instrument.upper() == "WCDA":
        return np.asarray(table["BIN"], int)
    if not calibration:
        raise GHSepError("KM2A analysis bins need the energy calibration (energy_calibration(gammas, 'KM2A'))")
    est = np.polyval(calibration, np.log10(np.maximum(np.asarray(table["N_E"], float), 1.0)))
    b = np.searchsorted(KM2A_LOG10E_EDGES, est, side="right") - 1
    return np.where((b >= 0) & (b < KM2A_LOG10E_EDGES.size - 1), b, -1)

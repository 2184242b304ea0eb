"""Labelled event tables from the shower simulation, the traditional gamma/hadron cut, and figures.

:func:`simulate_shower_events` runs primaries -> hits -> reconstruction in batches and returns a table
(dict of columns) with truth (``TRUE_*``, ``Z``, ``SPECIES``) and reconstructed columns, plus ``TIME``,
``RA``, ``DEC``, ``AZ``, ``ZEN`` and ``BIN`` so that :mod:`skyfit.stream` bins it like any event file
(write it with :func:`skyfit.events.write_events`). (Not to be confused with
:func:`skyfit.simulate.simulate_events`, events drawn from a sky model.)
"""

from __future__ import annotations

import warnings

import numpy as np

import skyfit.showers.physics as ph

from .cuts import traditional_cut
from .detectors import km2a_layouts, wcda_layout
from .reconstruct import noise_filter_performance, reconstruct
from .simulate import sample_primaries, simulate_hits

__all__ = [
    "simulate_shower_events",
    "simulate_events",
    "hits_table",
    "traditional_cut",
    "derive_response",
    "reconstruct_table",
    "angular_error_deg",
    "WCDA_NHIT_EDGES",
    "KM2A_LOG10NE_EDGES",
]

# nHit segments of the WCDA analysis (approximately those of the WCDA part of 1LHAASO)
WCDA_NHIT_EDGES = np.array([60, 100, 200, 300, 500, 800, np.inf])
# KM2A: bins in log10 of the reconstructed size Ne (a proxy for log10 E; calibrate with gammas)
KM2A_LOG10NE_EDGES = np.array([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, np.inf])


def angular_error_deg(zen1, az1, zen2, az2):
    t1, p1, t2, p2 = (np.radians(v) for v in (zen1, az1, zen2, az2))
    c = np.cos(t1) * np.cos(t2) + np.sin(t1) * np.sin(t2) * np.cos(p1 - p2)
    return np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))


def _instrument_setup(instrument, noise_rate_hz, e_min_tev, e_max_tev, throw_radius_m, batch) -> tuple:
    """(layout, muon layout or None, e_min, e_max, throw radius, batch) with the instrument's defaults."""
    if instrument == "WCDA":
        layout = wcda_layout() if noise_rate_hz is None else wcda_layout(noise_rate_hz=noise_rate_hz)
        return layout, None, e_min_tev or 0.3, e_max_tev or 30.0, throw_radius_m or 300.0, batch
    layout, muon_layout = km2a_layouts() if noise_rate_hz is None else km2a_layouts(noise_rate_hz=noise_rate_hz)
    return layout, muon_layout, e_min_tev or 10.0, e_max_tev or 1000.0, throw_radius_m or 600.0, min(batch, 500)


def _hit_records(hits, mh, start: int) -> list[dict]:
    """The hit-level record of one batch (for `skyfit showers reconstruct`): the main layout's hits, then
    the muon layout's (``MUON_LAYOUT`` 0 and 1); event ids offset by the batch's ``start``."""
    out = []
    for h, kind in ((hits, 0), (mh, 1)):
        if h is not None:
            record = {"EVENT_ID": (h.shower + start).astype(np.int64), "DETECTOR": h.detector.astype(np.int32)}
            record.update(SIGNAL=h.signal, TIME_NS=h.time, NOISE=h.noise)
            record["MUON_LAYOUT"] = np.full(h.shower.size, kind, np.int8)
            out.append(record)
    return out


def hits_table(records: list[dict]) -> dict:
    """One hit table from the per-batch records that ``simulate_shower_events(..., hits_out=records)``
    appends (write it with :func:`skyfit.events.write_events`; :func:`reconstruct_table` reads it)."""
    return {k: np.concatenate([r[k] for r in records]) for k in records[0]}


def _simulate_batch(p: dict, layout, muon_layout, rng, start: int, hits_out: list | None,
                    leading_pi0_sampling: float | None = None, muon_scale: float = 1.0) -> tuple:  # fmt: skip
    """Hits and reconstruction of one batch of primaries ``p``: (columns, (kept signal, kept, signal) hits)."""
    truth: dict = {}
    hits = simulate_hits(p, layout, rng, truth, leading_pi0_sampling=leading_pi0_sampling, muon_scale=muon_scale)
    # the muon detectors see the same showers as the electromagnetic ones
    mh = None
    if muon_layout is not None:
        mh = simulate_hits(p, muon_layout, rng, shower=truth["SHOWER"], muon_scale=muon_scale)
    rec = reconstruct(hits, layout, muon_hits=mh, muon_layout=muon_layout)
    kept = rec.pop("KEPT")
    if hits_out is not None:  # hit-level record for `skyfit showers reconstruct`
        hits_out.extend(_hit_records(hits, mh, start))
    counts = (int(np.sum(kept & ~hits.noise)), int(np.sum(kept)), int(np.sum(~hits.noise)))
    row = {
        "TRUE_ENERGY": p["ENERGY"],
        "TRUE_ZENITH": p["ZENITH"],
        "TRUE_AZIMUTH": p["AZIMUTH"],
        "TRUE_CORE_X": p["CORE_X"],
        "TRUE_CORE_Y": p["CORE_Y"],
        "Z": p["Z"],
        "TRUE_X1": truth["X1"],
        "TRUE_N_MU": truth["N_MU"],
        "TRUE_LEADING_PI0": truth["LEADING_PI0"],
        "TRUE_LEAD_X": truth["SHOWER"].get("LEAD_X", np.zeros(len(truth["LEADING_PI0"]))),
        "LEAD_WEIGHT": truth["LEAD_WEIGHT"],
        **rec,
    }
    return row, counts


def _analysis_columns(table: dict, layout, instrument: str) -> None:
    """Adds the quality cut ``CORE_IN_ARRAY``, ``SPECIES``, ``ANGULAR_ERROR`` and the analysis ``BIN``."""
    x0, x1_, y0, y1_ = layout.extent()
    margin = 40.0  # quality cut: reconstructed core inside the array, 40 m from its edge
    table["CORE_IN_ARRAY"] = (
        (table["REC_CORE_X"] > x0 + margin) & (table["REC_CORE_X"] < x1_ - margin)
        & (table["REC_CORE_Y"] > y0 + margin) & (table["REC_CORE_Y"] < y1_ - margin)
        if instrument == "WCDA"
        else np.hypot(table["REC_CORE_X"], table["REC_CORE_Y"]) < 575.0 - 60.0
    )  # fmt: skip
    table["SPECIES"] = np.array([ph.SPECIES[int(zz)][2] for zz in table["Z"]])
    table["ANGULAR_ERROR"] = angular_error_deg(
        table["TRUE_ZENITH"], table["TRUE_AZIMUTH"], table["REC_ZENITH"], table["REC_AZIMUTH"]
    )
    if instrument == "WCDA":
        b = np.searchsorted(WCDA_NHIT_EDGES, table["NHIT"], side="right") - 1
    else:
        b = np.searchsorted(KM2A_LOG10NE_EDGES, np.log10(np.maximum(table["N_E"], 1e-3)), side="right") - 1
    table["BIN"] = np.where(np.isfinite(table["REC_ZENITH"]), b, -1).astype(np.int16)


def _arrival_times_and_sky(table: dict, rng, start_mjd: float, days: float) -> dict:
    """The table in random time order with ``TIME`` (uniform over ``days``), ``AZ``, ``ZEN``, ``RA``, ``DEC``."""
    from ..coords import LHAASO_SITE, SiteFrame

    t = np.sort(start_mjd + rng.uniform(0, days, table["BIN"].size))
    order = np.argsort(rng.uniform(size=t.size))  # showers in random order in time
    table = {k: v[order] for k, v in table.items()}
    table["TIME"] = t
    frame = SiteFrame(LHAASO_SITE, start_mjd, start_mjd + days)
    zen = np.nan_to_num(table["REC_ZENITH"], nan=0.0)
    table["AZ"], table["ZEN"] = table["REC_AZIMUTH"] % 360.0, zen
    table["RA"], table["DEC"] = frame.local_to_icrs(table["AZ"], table["ZEN"], t)
    return table


def simulate_shower_events(
    instrument: str = "WCDA",
    particle="gamma",
    n: int = 10_000,
    e_min_tev: float | None = None,
    e_max_tev: float | None = None,
    index: float = 2.6,
    max_zenith_deg: float = 40.0,
    throw_radius_m: float | None = None,
    noise_rate_hz: float | None = None,
    seed: int = 0,
    batch: int = 2000,
    start_mjd: float = 59639.0,
    days: float = 1.0,
    with_report: bool = False,
    hits_out: list | None = None,
    leading_pi0_sampling: float | None = None,
    muon_scale: float = 1.0,
):
    """Simulate and reconstruct ``n`` air showers; returns the event table (and a report if asked).

    Defaults per instrument: WCDA 0.3-30 TeV, cores within 300 m; KM2A 10-1000 TeV, cores within
    600 m. Arrival times are uniform over ``days`` from ``start_mjd``; RA/Dec follow from the
    reconstructed local direction at the LHAASO site. ``hits_out``: a list that receives the hit
    records (:func:`hits_table` joins them). ``leading_pi0_sampling``: the probability with which proton
    showers' leading neutral pion is drawn (default: the physical one); ``LEAD_WEIGHT`` is each event's
    importance weight (1 at the default). ``muon_scale``: the muon number of nuclear showers times this
    (the hadronic-model band, e.g. 0.8 and 1.2; 1 reproduces the default bit for bit).
    """
    instrument = instrument.upper()
    if instrument not in ("WCDA", "KM2A"):
        raise ValueError(f"instrument must be 'WCDA' or 'KM2A', got {instrument!r}")
    rng = np.random.default_rng(seed)
    layout, muon_layout, e_min_tev, e_max_tev, throw, batch = _instrument_setup(
        instrument, noise_rate_hz, e_min_tev, e_max_tev, throw_radius_m, batch
    )
    cols: dict = {}
    kept_signal = kept_all = signal_all = 0
    for start in range(0, n, batch):
        m = min(batch, n - start)
        p = sample_primaries(m, particle, e_min_tev, e_max_tev, index, max_zenith_deg, throw, rng)
        row, (ks, ka, sa) = _simulate_batch(
            p, layout, muon_layout, rng, start, hits_out, leading_pi0_sampling, muon_scale
        )
        kept_signal, kept_all, signal_all = kept_signal + ks, kept_all + ka, signal_all + sa
        for k, v in row.items():
            cols.setdefault(k, []).append(np.asarray(v))
    table = {k: np.concatenate(v) for k, v in cols.items()}
    table["EVENT_ID"] = np.arange(n, dtype=np.int64)
    _analysis_columns(table, layout, instrument)
    table = _arrival_times_and_sky(table, rng, start_mjd, days)
    if with_report:
        purity = kept_signal / max(kept_all, 1)
        eff = kept_signal / max(signal_all, 1)
        return table, {"noise_filter_purity": purity, "noise_filter_efficiency": eff}
    return table


def simulate_events(*args, **kwargs):
    """Deprecated alias of :func:`simulate_shower_events` (to be removed in the next release: the name
    is :func:`skyfit.simulate.simulate_events`'s, events from a sky model)."""
    warnings.warn(
        "skyfit.showers.pipeline.simulate_events is renamed simulate_shower_events (simulate_events is "
        "skyfit.simulate's, events from a sky model); the old name goes in the next release",
        FutureWarning,
        stacklevel=2,
    )
    return simulate_shower_events(*args, **kwargs)


def derive_response(
    gammas: dict,
    background: dict,
    throw_radius_m: float,
    n_thrown_gamma: int,
    n_thrown_background: int,
    gamma_spectrum=(0.3, 30.0, 2.0),
    background_spectrum=(0.5, 100.0, 2.0),
    cuts: dict | None = None,
    energy_edges_tev=None,
) -> dict:
    """Instrument response per analysis bin from simulated (quality-cut) events.

    Effective area ``A(E) = A_throw N_selected(E) / N_thrown(E)`` per bin and true-energy band (the
    thrown numbers follow from the power-law spectra given as ``(e_min, e_max, index)``), the PSF68,
    the 16-84 % range of log10 true energy, and the residual cosmic-ray rate per sr: the background
    sample weighted to the all-particle flux ``I(>E) = 0.18 (E/TeV)^-1.7 m^-2 s^-1 sr^-1`` [PDG, as in
    :mod:`skyfit.response.lhaaso`], per sr at the zenith. ``cuts`` (from
    :func:`traditional_cut`) are applied when given.
    """
    edges = np.geomspace(0.3, 100.0, 15) if energy_edges_tev is None else np.asarray(energy_edges_tev)
    a_throw = np.pi * throw_radius_m**2

    def thrown_fraction(spec, lo, hi):
        e0, e1, g = spec
        lo, hi = max(lo, e0), min(hi, e1)
        if hi <= lo:
            return 0.0
        if abs(g - 1) < 1e-9:
            return np.log(hi / lo) / np.log(e1 / e0)
        k = 1 - g
        return (hi**k - lo**k) / (e1**k - e0**k)

    def passes(t, b):
        sel = (t["BIN"] == b) & t["CORE_IN_ARRAY"].astype(bool)
        if cuts and b in cuts:
            sel &= t["COMPACTNESS"] >= cuts[b][0]
        return sel

    out = {"energy_edges_tev": edges, "bins": {}}
    e0, e1, g = background_spectrum
    flux_integral = 0.18 * (e0**-1.7 - e1**-1.7)  # m^-2 s^-1 sr^-1 between e0 and e1
    # importance weights: target dN/dE ~ E^-2.7 over the sampled E^-g, as fractions of the flux
    w = background["TRUE_ENERGY"] ** (g - 2.7)
    w = w / np.sum(w)
    for b in sorted(set(np.unique(gammas["BIN"])) - {-1}):
        sel = passes(gammas, b)
        area = []
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            n_thr = n_thrown_gamma * thrown_fraction(gamma_spectrum, lo, hi)
            n_sel = np.sum(sel & (gammas["TRUE_ENERGY"] >= lo) & (gammas["TRUE_ENERGY"] < hi))
            area.append(a_throw * n_sel / n_thr if n_thr > 0 else np.nan)
        le = np.log10(gammas["TRUE_ENERGY"][sel])
        selb = passes(background, b)
        # rate per sr at the zenith (s^-1 sr^-1): flux integral x throw area x weighted fraction selected
        rate_sr = flux_integral * a_throw * np.sum(w[selb])
        out["bins"][int(b)] = {
            "effective_area_m2": np.array(area),
            "psf68_deg": float(np.nanpercentile(gammas["ANGULAR_ERROR"][sel], 68)) if sel.any() else np.nan,
            "log10_energy_16_50_84": tuple(np.percentile(le, [16, 50, 84])) if le.size else (np.nan,) * 3,
            "background_rate_per_sr": float(rate_sr),
            "n_gamma": int(sel.sum()),
            "n_background": int(selb.sum()),
        }
    return out


RECONSTRUCTED_COLUMNS = ("REC_ZENITH", "REC_AZIMUTH", "REC_CORE_X", "REC_CORE_Y", "NHIT", "CXPE40", "COMPACTNESS",
                         "PINCNESS", "DISPERSION", "SUM_SIGNAL", "N_MU", "N_E", "MU_E_RATIO")  # fmt: skip


def reconstruct_table(table: dict, hits: dict, instrument: str = "WCDA", window_ns: float = 20.0) -> tuple:
    """Re-run the reconstruction on stored hits (from ``simulate_shower_events(..., hits_out=...)``) and
    return the table with its reconstructed columns replaced, and the noise-filter report."""
    from .simulate import Hits

    instrument = instrument.upper()
    if instrument == "WCDA":
        layout, muon_layout = wcda_layout(), None
    elif instrument == "KM2A":
        layout, muon_layout = km2a_layouts()
    else:
        raise ValueError(f"instrument must be 'WCDA' or 'KM2A', got {instrument!r}")
    for c in ("EVENT_ID", "DETECTOR", "SIGNAL", "TIME_NS", "NOISE", "MUON_LAYOUT"):
        if c not in hits:
            raise KeyError(f"hit table lacks column {c!r}; write it with `skyfit showers simulate --hits`")
    n = int(table["EVENT_ID"].max()) + 1
    if hits["DETECTOR"].size and hits["DETECTOR"][hits["MUON_LAYOUT"] == 0].max(initial=0) >= layout.n:
        raise ValueError(f"hit table detector indices exceed the {instrument} layout ({layout.n} detectors)")

    def make(kind):
        s = hits["MUON_LAYOUT"] == kind
        o = np.argsort(hits["EVENT_ID"][s], kind="stable")
        return Hits(hits["EVENT_ID"][s][o], hits["DETECTOR"][s][o].astype(np.int64), hits["SIGNAL"][s][o].astype(float),
                    hits["TIME_NS"][s][o].astype(float), hits["NOISE"][s][o].astype(bool), n)  # fmt: skip

    main = make(0)
    rec = reconstruct(main, layout, window_ns=window_ns, muon_hits=make(1) if muon_layout else None,
                      muon_layout=muon_layout)  # fmt: skip
    kept = rec.pop("KEPT")
    purity, efficiency = noise_filter_performance(main, kept)
    out = dict(table)
    idx = table["EVENT_ID"]
    for k, v in rec.items():
        out[k] = v[idx]
    out["ANGULAR_ERROR"] = angular_error_deg(
        out["TRUE_ZENITH"], out["TRUE_AZIMUTH"], out["REC_ZENITH"], out["REC_AZIMUTH"]
    )
    return out, {"noise_filter_purity": purity, "noise_filter_efficiency": efficiency}

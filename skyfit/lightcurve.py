"""Light curves: a source's flux in time blocks, written in the format gammapy's ``FluxPoints.read`` opens.

In each block the source's amplitude is fitted on that block's datasets with its spectral shape and
position held at a fit of the whole period (the method of :mod:`skyfit.fluxpoints`, one energy band of
all the analysis bins): ``norm`` relative to that fit, ``dnde`` at ``e_ref``, asymmetric errors from the
profile, an upper limit where ``ts < ul_ts``. :func:`light_curve` takes datasets per block;
:func:`light_curve_from_events` makes them from event files with times (a LHAASO-like event stream:
counts and a direct-integration background per block, the instrument's response for the block's
livetime).

The table has gammapy's light-curve columns (``time_min``, ``time_max``: days since the header's
``MJDREFI`` + ``MJDREFF``, 51910 = 2001-01-01 UTC; ``e_ref``, ``e_min``,
``e_max``, ``dnde``, ``dnde_err``, ``dnde_errn``, ``dnde_errp``, ``dnde_ul``, ``ts``, ``sqrt_ts``,
``is_ul``, ``norm*`` as (n_blocks, 1) columns), so ``FluxPoints.read(path, format="lightcurve")`` opens it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats

from .fluxpoints import _DNDE_UNIT, FluxPoints, FluxPointsError, _norm_fit, _scale_key

__all__ = ["light_curve", "light_curve_from_events"]

_MJDREF = 51910.0  # 2001-01-01 00:00 UTC


def light_curve(model, source: str, blocks, ul_ts: float = 4.0, cl: float = 0.95) -> FluxPoints:
    """The flux of ``source`` in time blocks.

    Parameters
    ----------
    model : Models
        The model (e.g. a fit of the whole period); only ``source``'s amplitude is fitted per block.
    source : str
        The source's name.
    blocks : list of (t_min, t_max, datasets)
        Per block its start and stop (MJD, or astropy ``Time``) and its datasets.
    ul_ts, cl : float
        Below ``ul_ts`` a block is reported as an upper limit at confidence ``cl``.

    Returns
    -------
    FluxPoints
        With ``time_min``, ``time_max`` (MJD) columns: ``write`` it and gammapy's
        ``FluxPoints.read(path, format="lightcurve")`` opens it.
    """
    from astropy.table import Table

    from .likelihood import Likelihood

    key, best = _scale_key(model, source)
    base = model.with_frozen(list(model.parameters())).with_frozen([key], frozen=False)
    delta_ul = float(stats.chi2.ppf(2 * cl - 1, 1))
    rows, energies = [], []
    if not blocks:
        raise FluxPointsError("a light curve needs at least one time block")
    for t_min, t_max, datasets in blocks:
        t_min, t_max = (float(getattr(t, "mjd", t)) for t in (t_min, t_max))
        if not t_max > t_min:
            raise FluxPointsError(f"time block {t_min}-{t_max} (MJD): the stop must follow the start")
        datasets = list(datasets) if isinstance(datasets, list | tuple) else [datasets]
        if not datasets:
            raise FluxPointsError(f"time block {t_min}-{t_max} (MJD) has no dataset")
        lk = Likelihood(base.for_datasets([d.name for d in datasets]), datasets)
        fitted = _norm_fit(lk, lk.model, key, best, False, delta_ul)
        rows.append((t_min, t_max, *fitted[:5], sum(fitted[5]), sum(fitted[7])))
        # the band the block's bins cover: their reconstructed energies, else (bins of nHit alone) the
        # response's true energies
        edges = [d.response.energy_reco_edges_tev if d.response.energy_reco_edges_tev is not None
                 else np.array([[d.response.energy_true_tev.min(), d.response.energy_true_tev.max()]])
                 for d in datasets]  # fmt: skip
        energies.append((min(e[:, 0].min() for e in edges), max(e[:, 1].max() for e in edges)))
    r, e = np.array(rows), np.array(energies)
    e_ref = np.sqrt(e[:, 0] * e[:, 1])
    dnde_ref = np.asarray(model.source(source).spectral.evaluate(e_ref))
    norm, errn, errp, ul, ts = (r[:, i] for i in range(2, 7))
    t = Table()
    # days since MJDREF (the FITS time standard; 2001-01-01 UTC, gammapy's own reference for light curves)
    t["time_min"], t["time_max"] = r[:, 0] - _MJDREF, r[:, 1] - _MJDREF
    t["time_min"].unit = t["time_max"].unit = "d"
    for name, v in (("e_ref", e_ref), ("e_min", e[:, 0]), ("e_max", e[:, 1])):
        t[name] = v[:, None]
        t[name].unit = "TeV"
    for name, v in (("dnde", norm), ("dnde_err", 0.5 * (errn + errp)), ("dnde_errn", errn), ("dnde_errp", errp),
                    ("dnde_ul", ul)):  # fmt: skip
        t[name] = (v * dnde_ref)[:, None]
        t[name].unit = _DNDE_UNIT
    t["ts"], t["sqrt_ts"], t["is_ul"] = ts[:, None], (np.sign(norm) * np.sqrt(ts))[:, None], (ts < ul_ts)[:, None]
    for name, v in (("norm", norm), ("norm_err", 0.5 * (errn + errp)), ("norm_errn", errn), ("norm_errp", errp),
                    ("norm_ul", ul), ("counts", r[:, 7]), ("npred_excess", r[:, 8])):  # fmt: skip
        t[name] = v[:, None]
    t.meta["TIMESYS"], t.meta["MJDREFI"], t.meta["MJDREFF"], t.meta["TIMEUNIT"] = "utc", int(_MJDREF), 0.0, "d"
    meta = {"method": "amplitude per time block, spectral shape and position fixed", "ul_cl": float(cl),
            "ul_ts": float(ul_ts)}  # fmt: skip
    return FluxPoints(t, source, meta)


def light_curve_from_events(files, roi, model, source: str, blocks_mjd, instrument: str, bins=None, di_config=None,
                            exclusions=None, progress: bool = False, **kwargs):  # fmt: skip
    """The light curve of ``source`` from event files with times (``skyfit bin``'s event streams): per
    time block ``[t_k, t_k+1)`` of ``blocks_mjd`` (edges, MJD), counts and a direct-integration background
    (:func:`skyfit.stream.bin_event_files` with ``time_range``), and the parametric ``instrument``'s
    response (``"WCDA"`` or ``"KM2A"``) for the block's length (the daily average over the source's transits:
    blocks are whole days); then :func:`light_curve`. ``bins``: the instrument's analysis bins the events
    hold (indices; default all). ``exclusions``
    (:class:`skyfit.background.Exclusions`, e.g. a disc around the source) keep the source out of its own
    background; ``kwargs`` go to :func:`light_curve`."""
    from .dataset import Dataset
    from .simulate import lhaaso_dataset
    from .stream import bin_event_files

    edges = np.asarray([float(getattr(t, "mjd", t)) for t in blocks_mjd])
    if edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise FluxPointsError(f"blocks_mjd must be at least two increasing times (MJD), got {edges}")
    days = np.diff(edges)
    if np.any(np.abs(days - np.round(days)) > 0.01 * days) or np.any(days < 0.99):
        raise FluxPointsError(f"time blocks of {days} d: a drift-scan array's response is a daily average over "
                              "the source's transits, so blocks must be whole days")  # fmt: skip
    files = [Path(f) for f in files] if isinstance(files, list | tuple) else files
    blocks = []
    for t0, t1 in zip(edges[:-1], edges[1:], strict=True):
        template = lhaaso_dataset(instrument, roi=roi, livetime_days=t1 - t0)
        res = bin_event_files(files, roi, template.n_bins, background="di", di_config=di_config,
                              exclusions=exclusions, time_range=(t0, t1), block_hours=(t1 - t0) * 24,
                              progress=progress)  # fmt: skip
        names = template.bin_names
        ds = Dataset(template.name, type(res.counts)(res.counts.data, roi, names),
                     type(res.background)(res.background.data, roi, names), template.response,
                     meta={"time_min_mjd": t0, "time_max_mjd": t1})  # fmt: skip
        blocks.append((t0, t1, [ds if bins is None else ds.select_bins(list(bins))]))
    return light_curve(model, source, blocks, **kwargs)

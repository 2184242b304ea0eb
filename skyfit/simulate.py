"""Simulation: Poisson realisations of datasets, LHAASO-like datasets, and event lists.

Every random draw takes an explicit seed (``numpy.random.default_rng(seed)``).
"""

from __future__ import annotations

import healpy as hp
import numpy as np

from ._units import to_value
from .dataset import Dataset
from .likelihood import npred
from .maps import HealpixMaps, HealpixROI
from .models import Models
from .response.lhaaso import background_counts_per_sr, km2a_response, wcda_response

__all__ = ["simulate_dataset", "lhaaso_dataset", "simulate_events", "npred"]


def simulate_dataset(model: Models, dataset: Dataset, seed) -> Dataset:
    """A copy of ``dataset`` whose counts are a Poisson realisation of ``model`` (plus background)."""
    rng = np.random.default_rng(seed)
    mu = np.where(dataset.mask, npred(model, dataset), 0.0)
    return dataset.with_counts(rng.poisson(mu).astype(float))


def lhaaso_dataset(
    instrument: str,
    center=None,
    radius_deg=None,
    nside: int = 512,
    livetime_days=365.0,
    nest: bool = True,
    name: str | None = None,
    roi: HealpixROI | None = None,
) -> Dataset:
    """A LHAASO-like (WCDA or KM2A) dataset over a disc ROI (``center``, ``radius_deg``) or a given
    ``roi``, with the parametric response and the residual cosmic-ray background of
    :mod:`skyfit.response.lhaaso`; counts are zero (simulate them with :func:`simulate_dataset`).

    Parameters
    ----------
    instrument : {"WCDA", "KM2A"}
    center : SkyCoord or (ra, dec), optional
        Disc centre: a scalar SkyCoord in any frame, or ICRS (ra, dec) as numbers in deg or angle Quantities.
    radius_deg : float or Quantity, optional
        Disc radius: deg, or any angle Quantity.
    nside, nest : int, bool
        HEALPix pixelisation of the disc.
    livetime_days : float or Quantity
        Livetime: days, or any time Quantity (``1 * u.yr`` is 365.25 days).
    name : str, optional
        Dataset name (default the instrument).
    roi : HealpixROI, optional
        The pixels, instead of the disc (``center``, ``radius_deg``, ``nside`` and ``nest`` are then ignored).

    Raises
    ------
    ValueError
        An unknown instrument, no ROI, or a Quantity in a unit of the wrong kind (the message names the argument).
    """
    instrument = instrument.upper()
    livetime_days = to_value(livetime_days, "day", "livetime_days")
    makers = {"WCDA": wcda_response, "KM2A": km2a_response}
    if instrument not in makers:
        raise ValueError(f"instrument must be 'WCDA' or 'KM2A', got {instrument!r}")
    if roi is None:
        if center is None or radius_deg is None:
            raise ValueError("give either center and radius_deg, or roi")
        roi = HealpixROI.from_disc(center, radius_deg, nside, nest)
    _, dec_all = roi.radec()
    dec_nodes = np.arange(np.floor(dec_all.min()) - 1.0, dec_all.max() + 1.01, 1.0)
    response = makers[instrument](livetime_days=livetime_days, dec_nodes_deg=dec_nodes)
    _, dec = roi.radec()
    # background per sr depends on declination only (drift scan); tabulate and interpolate
    bkg_nodes = background_counts_per_sr(instrument, dec_nodes, livetime_days)  # (n_dec, n_bins)
    bkg = np.stack([np.interp(dec, dec_nodes, bkg_nodes[:, b]) for b in range(response.n_bins)]) * roi.pixel_area_sr
    names = response.bin_names
    return Dataset(
        name or instrument,
        HealpixMaps(np.zeros_like(bkg), roi, names),
        HealpixMaps(bkg, roi, names),
        response,
        meta={"instrument": instrument, "livetime_days": livetime_days},
    )


def simulate_events(model: Models, dataset: Dataset, seed) -> dict:
    """Event list drawn from ``model`` in ``dataset``: RA, DEC (deg) and analysis-bin index.

    Counts are drawn per pixel (Poisson of the predicted counts) and each event is placed uniformly
    at random inside its HEALPix pixel, so binning the events back gives the same counts map.
    """
    rng = np.random.default_rng(seed)
    mu = np.where(dataset.mask, npred(model, dataset), 0.0)
    counts = rng.poisson(mu)
    b_idx, p_idx = np.nonzero(counts)
    reps = counts[b_idx, p_idx]
    bins = np.repeat(b_idx, reps)
    pix = dataset.roi.pixels[np.repeat(p_idx, reps)]
    nside, nest = dataset.roi.nside, dataset.roi.nest
    ra, dec = hp.pix2ang(nside, pix, nest=nest, lonlat=True)
    ra, dec = np.array(ra), np.array(dec)
    todo = np.ones(pix.size, bool)
    size = np.degrees(hp.nside2resol(nside))
    while todo.any():  # rejection sampling inside each pixel
        n = int(todo.sum())
        z0 = np.sin(np.radians(dec[todo])) + rng.uniform(-1, 1, n) * np.radians(size) * np.cos(np.radians(dec[todo]))
        r_ra = ra[todo] + rng.uniform(-1, 1, n) * size / np.maximum(np.cos(np.radians(dec[todo])), 1e-3)
        r_dec = np.degrees(np.arcsin(np.clip(z0, -1, 1)))
        ok = hp.ang2pix(nside, r_ra, r_dec, nest=nest, lonlat=True) == pix[todo]
        idx = np.nonzero(todo)[0][ok]
        ra[idx], dec[idx] = r_ra[ok] % 360.0, r_dec[ok]
        todo[idx] = False
        if n == todo.sum():
            ra_c, dec_c = hp.pix2ang(nside, pix[todo], nest=nest, lonlat=True)
            ra[todo], dec[todo] = ra_c, dec_c  # pathological pixel: keep the centre
            break
    return {"RA": ra, "DEC": dec, "BIN": bins, "bin_names": dataset.bin_names}


# --- event streams seen from the site -----------------------------------------------------------


def _vmf_offsets(rng, kappa, center_vectors):
    """Directions drawn from von Mises-Fisher densities of concentration ``kappa`` about ``centre_vectors``.

    The same density the likelihood uses for a PSF Gaussian (and a Gaussian source convolved with it).
    """
    n = kappa.size
    u = rng.uniform(size=n)
    w = 1.0 + np.log(u + (1.0 - u) * np.exp(-2.0 * kappa)) / kappa  # cos(theta), exact inversion
    phi = rng.uniform(0, 2 * np.pi, n)
    s = np.sqrt(np.clip(1.0 - w * w, 0.0, None))
    c = center_vectors
    # an orthonormal basis (e1, e2) perpendicular to each centre
    helper = np.where(np.abs(c[:, 2:3]) < 0.9, np.array([[0.0, 0.0, 1.0]]), np.array([[1.0, 0.0, 0.0]]))
    e1 = np.cross(helper, c)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(c, e1)
    return w[:, None] * c + s[:, None] * (np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2)


def simulate_event_stream(
    instrument: str = "WCDA",
    start_mjd: float = 59639.0,
    days: float = 1.0,
    sources=(),
    block_hours: float = 24.0,
    rate_scale: float = 1.0,
    bins=None,
    daily_modulation: float = 0.02,
    azimuth_modulation: float = 0.02,
    max_zenith_deg: float = 50.0,
    seed: int = 0,
    site=None,
    source_step_s: float = 60.0,
):
    """Simulate a LHAASO-like event stream: isotropic cosmic rays plus gamma-ray sources.

    Yields one block at a time, ``(block_start_mjd, block_stop_mjd, events)``, with ``events`` a dict of
    columns ``TIME`` (UTC MJD), ``RA``, ``DEC``, ``AZ``, ``ZEN`` (deg), ``BIN``, ``SOURCE`` (-1 cosmic
    ray, else the index in ``sources``), sorted by time. Memory is bounded by one block.

    Cosmic rays arrive at the all-sky rate of each analysis bin (``background_rate_per_s_sr`` x
    ``pi sin^2 max_zenith``, times ``rate_scale``), modulated in time by ``1 + daily_modulation
    cos(2 pi t / 1 d)`` (e.g. atmospheric tides), with a local acceptance ``cos z`` (projected area)
    times ``1 + azimuth_modulation cos(az - 30 deg)`` (e.g. the geomagnetic field) for ``z <
    max_zenith_deg``. Sources (point or Gaussian :class:`~skyfit.models.Source`) arrive at the
    instantaneous rate of :func:`~skyfit.response.lhaaso.source_rate_per_s` at their zenith angle (zero
    above ``max_zenith_deg``), so that the time-averaged counts equal those of the parametric response
    used in fits; each event is displaced by the bin's PSF (Gaussian mixture, as von Mises-Fisher draws)
    and, for a Gaussian source, its extension.

    Each block has its own random stream derived from ``seed`` and the block index, so blocks can be
    simulated in any order or in parallel and are reproducible.

    Parameters
    ----------
    instrument : {"WCDA", "KM2A"}
    start_mjd, days : float
        Start (UTC MJD) and length of the stream.
    sources : sequence of Source
    block_hours : float
        Length of the yielded blocks (h).
    rate_scale : float
        Factor on the cosmic-ray rate (to size a simulation; sources are not scaled).
    bins : sequence of int, optional
        Analysis bins to simulate (default all); ``BIN`` keeps the instrument's bin index.
    """
    from .coords import LHAASO_SITE, SiteFrame
    from .models.spatial import GaussianSpatialModel, PointSpatialModel
    from .response.lhaaso import _psf, _spec, background_rate_per_s_sr, source_rate_per_s

    instrument = instrument.upper()
    if instrument not in ("WCDA", "KM2A"):
        raise ValueError(f"instrument must be 'WCDA' or 'KM2A', got {instrument!r}")
    if not days > 0 or not block_hours > 0:
        raise ValueError(f"days ({days}) and block_hours ({block_hours}) must be positive")
    site = site or LHAASO_SITE
    spec = _spec(instrument)
    n_bins = len(spec["bin_names"])
    bins = np.arange(n_bins) if bins is None else np.asarray(bins, dtype=int)
    if bins.size == 0 or bins.min() < 0 or bins.max() >= n_bins:
        raise ValueError(f"bins must be indices in 0..{n_bins - 1}, got {list(bins)}")
    for s in sources:
        if not isinstance(s.spatial, PointSpatialModel | GaussianSpatialModel):
            raise ValueError(f"source {s.name!r}: stream simulation supports point and Gaussian shapes only")
    zmax = np.radians(max_zenith_deg)
    cr_rate = background_rate_per_s_sr(instrument, max_zenith_deg) * np.pi * np.sin(zmax) ** 2 * rate_scale
    psf, _ = _psf(spec)
    cos_grid = np.linspace(np.cos(zmax), 1.0, 401)
    src_tables = []
    for s in sources:
        p = {q.name: q.value for q in s.spectral.parameters}
        table = source_rate_per_s(instrument, lambda e, p=p, s=s: np.asarray(s.spectral.dnde(e, p)), cos_grid)
        ra, dec = s.spatial.position_icrs()
        ext = {q.name: q.value for q in s.spatial.parameters}.get("sigma", 0.0)
        src_tables.append((table, ra, dec, ext))
    stop_mjd = start_mjd + days
    frame = SiteFrame(site, start_mjd, stop_mjd)
    n_blocks = int(np.ceil(days * 24.0 / block_hours - 1e-9))
    seeds = np.random.SeedSequence(seed).spawn(n_blocks)
    for ib in range(n_blocks):
        rng = np.random.default_rng(seeds[ib])
        t0 = start_mjd + ib * block_hours / 24.0
        t1 = min(stop_mjd, t0 + block_hours / 24.0)
        cols = {k: [] for k in ("TIME", "AZ", "ZEN", "BIN", "SOURCE")}
        _stream_cosmic_rays(cols, rng, t0, t1, start_mjd, bins, cr_rate, daily_modulation, azimuth_modulation, zmax)
        src_ra, src_dec = _stream_source_events(cols, rng, t0, t1, frame, src_tables, bins, n_bins, cos_grid,
                                                max_zenith_deg, psf, source_step_s)  # fmt: skip
        yield t0, t1, _stream_block(cols, src_ra, src_dec, frame)


def _stream_cosmic_rays(cols, rng, t0, t1, start_mjd, bins, cr_rate, daily_modulation, azimuth_modulation, zmax):
    """Append one block's cosmic rays to the columns ``cols`` (lists of arrays), bin after bin."""
    duration_s = (t1 - t0) * 86400.0
    amp = abs(daily_modulation)
    for b in bins:
        n = rng.poisson(cr_rate[b] * (1 + amp) * duration_s)
        t = t0 + rng.uniform(0, t1 - t0, n)
        keep = rng.uniform(size=n) * (1 + amp) < 1 + daily_modulation * np.cos(2 * np.pi * (t - start_mjd))
        t = t[keep]
        n = t.size
        zen = np.degrees(np.arccos(np.sqrt(rng.uniform(np.cos(zmax) ** 2, 1.0, n))))  # pdf ~ cos z sin z
        az = rng.uniform(0, 360.0, n)
        ok = rng.uniform(size=n) * (1 + abs(azimuth_modulation)) < 1 + azimuth_modulation * np.cos(
            np.radians(az - 30.0)
        )
        cols["TIME"].append(t[ok])
        cols["AZ"].append(az[ok])
        cols["ZEN"].append(zen[ok])
        cols["BIN"].append(np.full(ok.sum(), b, np.int16))
        cols["SOURCE"].append(np.full(ok.sum(), -1, np.int16))


def _stream_source_events(cols, rng, t0, t1, frame, src_tables, bins, n_bins, cos_grid, max_zenith_deg, psf,
                          source_step_s):  # fmt: skip
    """Append one block's source events to ``cols``, source after source and bin after bin; return their
    right ascensions and declinations (lists of arrays)."""
    from .coords import radec_to_vector, vector_to_radec

    duration_s = (t1 - t0) * 86400.0
    src_ra, src_dec = [], []
    n_steps = max(1, int(np.ceil(duration_s / source_step_s)))
    edges = np.linspace(t0, t1, n_steps + 1)
    mids = 0.5 * (edges[1:] + edges[:-1])
    step_s = (t1 - t0) * 86400.0 / n_steps
    for isrc, (table, ra, dec, ext) in enumerate(src_tables):
        _, z = frame.icrs_to_local(np.full(mids.size, ra), np.full(mids.size, dec), mids)
        cz = np.cos(np.radians(z))
        rate = np.stack([np.interp(cz, cos_grid, table[:, b]) for b in range(n_bins)], axis=1)
        rate[z >= max_zenith_deg] = 0.0
        for b in bins:
            counts = rng.poisson(rate[:, b] * step_s)
            n = int(counts.sum())
            if n == 0:
                continue
            step_of = np.repeat(np.arange(n_steps), counts)
            t = edges[step_of] + rng.uniform(size=n) * (edges[1] - edges[0])
            comp = rng.choice(psf.weights.shape[1], size=n, p=psf.weights[b] / psf.weights[b].sum())
            sig = np.radians(np.hypot(psf.sigma_deg[b][comp], ext))
            v = _vmf_offsets(rng, 1.0 / sig**2, np.repeat(radec_to_vector(ra, dec)[None, :], n, axis=0))
            r_, d_ = vector_to_radec(v)
            a_, z_ = frame.icrs_to_local(r_, d_, t)
            cols["TIME"].append(t)
            cols["AZ"].append(a_)
            cols["ZEN"].append(z_)
            cols["BIN"].append(np.full(n, b, np.int16))
            cols["SOURCE"].append(np.full(n, isrc, np.int16))
            src_ra.append(r_)
            src_dec.append(d_)
    return src_ra, src_dec


def _stream_block(cols, src_ra, src_dec, frame) -> dict:
    """One block's events, sorted by time: the cosmic rays (first in ``cols``) placed on the sky, the
    source events with their drawn positions."""
    ev = {k: np.concatenate(v) if v else np.empty(0) for k, v in cols.items()}
    n_src = sum(len(x) for x in src_ra)
    n_cr = ev["TIME"].size - n_src
    ra_all, dec_all = np.empty(ev["TIME"].size), np.empty(ev["TIME"].size)
    order_cr = np.argsort(ev["TIME"][:n_cr], kind="stable")  # sorted times: long frame segments
    r_cr, d_cr = frame.local_to_icrs(ev["AZ"][:n_cr][order_cr], ev["ZEN"][:n_cr][order_cr], ev["TIME"][:n_cr][order_cr])
    ra_all[order_cr], dec_all[order_cr] = r_cr, d_cr
    if n_src:
        ra_all[n_cr:], dec_all[n_cr:] = np.concatenate(src_ra), np.concatenate(src_dec)
    ev["RA"], ev["DEC"] = ra_all, dec_all
    order = np.argsort(ev["TIME"], kind="stable")
    return {k: v[order] for k, v in ev.items()}

"""HAWC pass-4 public Crab data as a skyfit :class:`Dataset` (events, background maps, IRFs).

The analysis bins are (fHit bin, reconstructed-energy band) pairs. Bins that the release leaves
empty (no PSF or no exposure) and, by default, bands below the ``aeff-max`` safe threshold (exposure
under 10 % of its maximum, after gammapy's rule) are left out; every event they hold is counted in
``dataset.meta["dropped"]`` and in the log, never dropped silently. The default threshold is the centre
of the first true-energy bin above 10 %, which drops fHit7 5.62-10 TeV and fHit9 17.8-31.6 TeV of the
Crab data that gammapy keeps; ``safe_mask="gammapy"`` applies gammapy's exact rules (TS 554 -> 634 vs
gammapy's 644: ``benchmarks/crab_ts_vs_gammapy.py``).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits

from ._data import data_dir
from ._units import to_value
from .dataset import BackgroundNaNWarning, Dataset
from .maps import HealpixMaps, HealpixROI, bin_events
from .response import GaussianMixturePSF, Response, TabulatedPSF
from .response.hawc import HAWCFileError, car_pixel_solid_angle_sr, hawc_response, read_car_cube, sample_car

__all__ = ["hawc_dataset", "read_hawc_events", "aeff_max_threshold_gammapy", "CRAB_RA_DEG", "CRAB_DEC_DEG"]

log = logging.getLogger(__name__)

# Crab position as used by the HAWC IRF grid (CRVAL of the release's IRF maps)
CRAB_RA_DEG, CRAB_DEC_DEG = 83.633083, 22.0145


def read_hawc_events(path) -> dict:
    """RA, DEC (deg) and ENERGY (TeV) columns of a HAWC DL3 event list, with file-naming errors."""
    path = Path(path)
    if not path.exists():
        raise HAWCFileError(f"event list {path} does not exist: check SKYFIT_DATA")
    try:
        with fits.open(path) as hdul:
            ev = hdul["EVENTS"].data
            out = {k: np.asarray(ev[k], dtype=float) for k in ("RA", "DEC", "ENERGY")}
            out["LIVETIME"] = float(hdul["EVENTS"].header.get("LIVETIME", np.nan))
    except (OSError, KeyError, ValueError, TypeError, EOFError) as exc:
        raise HAWCFileError(
            f"{path} is not a readable DL3 event list ({type(exc).__name__}: {exc}); "
            "the file may be corrupt or truncated: download it again"
        ) from exc
    return out


def _background_on_roi(path, roi: HealpixROI, transits_file) -> tuple[np.ndarray, np.ndarray]:
    """Background counts per HEALPix pixel (all transits) and the band edges of the file."""
    bkg, wcs, bands = read_car_cube(path, 0, "PRIMARY_BANDS")
    density = bkg / car_pixel_solid_angle_sr(wcs, bkg.shape[-2:])  # counts per sr per transit
    ra, dec = roi.radec()
    # counts are conserved as in gammapy's interp_to_geom(preserve_counts=True): density x pixel area
    values = sample_car(density, wcs, ra, dec) * roi.pixel_area_sr
    transits, t_wcs, _ = read_car_cube(transits_file, 0)
    values = values * sample_car(transits, t_wcs, ra, dec)
    n_nan = int(np.sum(~np.isfinite(values)))
    if n_nan:
        bad = [
            f"{lo:.3g}-{hi:.3g} TeV"
            for (lo, hi), row in zip(zip(bands["E_MIN"], bands["E_MAX"], strict=False), values, strict=False)
            if not np.all(np.isfinite(row))
        ]
        warnings.warn(
            f"{path.name}: {n_nan} of {values.size} background pixels in the ROI are NaN "
            f"(bands {bad}); they are masked from the likelihood",
            BackgroundNaNWarning,
            stacklevel=3,
        )
    return values, np.stack([bands["E_MIN"], bands["E_MAX"]], axis=1)


def aeff_max_threshold_gammapy(aeff_path, ra_deg: float, dec_deg: float, percent: float = 10.0) -> float:
    """Lower safe energy (TeV) by gammapy's ``aeff-max`` rule, as gammapy 2.1 computes it.

    The exposure map (``EffectiveAreaMap``) is sampled at (``ra_deg``, ``dec_deg``) at the centres of its
    true-energy bins; the threshold is the lowest energy where the log-log interpolation of these values
    crosses ``percent`` % of their maximum (``SafeMaskMaker.make_mask_energy_aeff_max``:
    ``TemplateSpectralModel.inverse``), or the first positive centre when it never does. A band passes
    when its lower edge is at or above the threshold.
    """
    aeff, wcs, bands = read_car_cube(aeff_path, "AEFF", "AEFF_BANDS")
    values = sample_car(aeff, wcs, ra_deg, dec_deg)[:, 0]
    centers = np.sqrt(bands["ENERGY_TRUE_MIN"] * bands["ENERGY_TRUE_MAX"])
    positive = values > 0
    if not positive.any():
        return np.inf
    log_e, diff = np.log(centers[positive]), np.log(values[positive] / (percent / 100 * values.max()))
    crossing = np.nonzero((diff[:-1] == 0) | (np.sign(diff[:-1]) != np.sign(diff[1:])))[0]
    if not len(crossing):
        return float(centers[positive][0])
    k = crossing[0]
    return float(np.exp(log_e[k] - diff[k] * (log_e[k + 1] - log_e[k]) / (diff[k + 1] - diff[k])))


def _roi_and_dec_nodes(roi, center, radius_deg: float, nside: int, nest: bool) -> tuple:
    """(ROI, its centre's RA and Dec, declination nodes of the response) of :func:`hawc_dataset`'s arguments."""
    if roi is None:
        roi = HealpixROI.from_disc(center, radius_deg, nside, nest)
        ra_c, dec_c = roi.center()
        dec_nodes = np.arange(dec_c - radius_deg - 0.5, dec_c + radius_deg + 0.51, 0.5)
    else:
        ra_c, dec_c = roi.center()
        dec = roi.radec()[1]
        half = np.ceil(2 * max(dec_c - dec.min(), dec.max() - dec_c)) / 2  # node grid centred on dec_c
        dec_nodes = np.arange(dec_c - half - 0.5, dec_c + half + 0.51, 0.5)
    return roi, ra_c, dec_c, dec_nodes


def _usable_bands(response, threshold, bands, cts, safe_mask, base: Path, tag: str, ra_c, dec_c, dropped) -> np.ndarray:
    """Bands of one fHit bin with a response and, with a safe mask, above the threshold; the events of the
    others are noted in ``dropped``."""
    ok = response.meta["valid_bins"].copy()
    if safe_mask == "gammapy":
        threshold = aeff_max_threshold_gammapy(base / "irfs" / f"EffectiveAreaMap_{tag}.fits.gz", ra_c, dec_c)
    if safe_mask:
        ok &= bands[:, 0] >= threshold * (1 - 1e-6)
    for i in np.nonzero(~ok)[0]:
        n = int(cts[i].sum())
        if n:
            why = "below the safe threshold" if response.meta["valid_bins"][i] else "has no response"
            dropped.append(f"{response.bin_names[i]}: {n} events (band {why})")
    return ok


def _usable_pixels(bkg, cts, ok, safe_mask, fhit, dropped) -> np.ndarray:
    """Pixels that enter the fit: all, or with ``safe_mask="gammapy"`` those without a zero background."""
    pix_ok = np.ones(bkg.shape, bool)
    if safe_mask == "gammapy":
        pix_ok = ~(np.isfinite(bkg) & (bkg <= 0))
        zero = ~pix_ok & ok[:, None]
        if zero.any():
            dropped.append(f"fHit{fhit}: {int(zero.sum())} pixels with zero background ({int(cts[zero].sum())} events)")
    return pix_ok


def hawc_dataset(
    estimator: str = "NN",
    fhit_bins=(5, 6, 7, 8, 9),
    center=(CRAB_RA_DEG, CRAB_DEC_DEG),
    radius_deg=3.0,
    nside: int = 1024,
    nest: bool = True,
    safe_mask: bool | str = True,
    path=None,
    roi: HealpixROI | None = None,
) -> Dataset:
    """Bin the HAWC Crab events into a HEALPix :class:`Dataset` with background and response.

    Parameters
    ----------
    estimator : {"NN", "GP"}
        Energy estimator (the two releases share events: never fit them jointly).
    fhit_bins : sequence of int
        fHit bins to use (5-9 are public).
    center : SkyCoord or (ra, dec)
        Centre of the disc ROI: a scalar SkyCoord in any frame (transformed to ICRS), or ICRS (ra, dec) as
        numbers in deg or angle Quantities.
    radius_deg : float or Quantity
        Radius of the disc ROI: deg, or any angle Quantity.
    nside, nest : int, bool
        HEALPix pixelisation (nside 1024: 0.057 deg pixels).
    safe_mask : bool or "gammapy"
        ``True``: drop bands whose lower edge is below the 10 %-of-maximum exposure threshold, taken
        as the centre of the first true-energy bin above it. ``"gammapy"``: the two rules of gammapy's
        ``SafeMaskMaker(methods=["aeff-max"])`` exactly: the threshold is where the log-log
        interpolation of the exposure at the ROI centre (values at the true-bin centres) first crosses
        10 % of its maximum (between bins, so a band can pass that the default drops), and pixels
        whose background is zero are masked (gammapy's ``bkg-invalid`` rule). ``False``: keep all.
    path : path, optional
        The ``crab_events_pass4`` folder (default: ``$SKYFIT_DATA/hawc/crab_events_pass4``).
    roi : HealpixROI, optional
        Use these pixels instead of the disc (``center``, ``radius_deg``, ``nside`` and ``nest`` are then
        ignored), e.g. the footprint of another tool's map geometry; the response is tabulated around
        ``roi.center()`` over the ROI's declination range.
    """
    if safe_mask not in (True, False, "gammapy"):
        raise ValueError(f"safe_mask must be True, False or 'gammapy', got {safe_mask!r}")
    radius_deg = to_value(radius_deg, "deg", "radius_deg") if radius_deg is not None else None
    base = Path(path) if path is not None else data_dir("hawc", "crab_events_pass4")
    roi, ra_c, dec_c, dec_nodes = _roi_and_dec_nodes(roi, center, radius_deg, nside, nest)
    transits_file = base / "irfs" / "TransitsMap_Crab.fits.gz"
    counts, background, masks, responses, keep, dropped, livetime = [], [], [], [], [], [], None
    for fhit in fhit_bins:
        tag = f"Crab_fHitbin{fhit}{estimator.upper()}"
        bkg, bands = _background_on_roi(base / "background" / f"BackgroundMap_{tag}.fits.gz", roi, transits_file)
        events = read_hawc_events(base / "events" / f"EventList_{tag}.fits.gz")
        livetime = events["LIVETIME"]
        band = np.searchsorted(bands[:, 1], events["ENERGY"], side="right")
        band[(events["ENERGY"] < bands[0, 0]) | (events["ENERGY"] >= bands[-1, 1])] = -1
        cts, report = bin_events(events["RA"], events["DEC"], band, roi, len(bands))
        if report["n_outside_bins"]:
            dropped.append(
                f"fHit{fhit}: {report['n_outside_bins']} events outside {bands[0, 0]:.3g}-{bands[-1, 1]:.3g} TeV"
            )
        response, threshold = hawc_response(base, fhit, estimator, ra_c, dec_nodes, transits_file, bands)
        ok = _usable_bands(response, threshold, bands, cts, safe_mask, base, tag, ra_c, dec_c, dropped)
        pix_ok = _usable_pixels(bkg, cts, ok, safe_mask, fhit, dropped)
        counts.append(cts[ok])
        background.append(bkg[ok])
        masks.append(pix_ok[ok])
        responses.append(response.select(ok))
        keep.append(ok)
    for line in dropped:
        log.info("not used: %s", line)
    response = _concatenate(responses)
    counts_map = HealpixMaps(np.concatenate(counts), roi, response.bin_names)
    bkg_map = HealpixMaps(np.concatenate(background), roi, response.bin_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BackgroundNaNWarning)  # already reported per file above
        return Dataset(
            f"hawc-{estimator.upper()}",
            counts_map,
            bkg_map,
            response,
            mask=np.concatenate(masks),
            meta={
                "livetime_s": livetime,
                "dropped": dropped,
                "data": str(base),
                "background_file": f"HAWC {estimator} background maps",
                "safe_mask": safe_mask,
            },
        )


def _concatenate(responses) -> Response:
    first = responses[0]
    return Response(
        bin_names=sum((r.bin_names for r in responses), ()),
        energy_true_tev=first.energy_true_tev,
        dec_nodes_deg=first.dec_nodes_deg,
        counts_matrix=np.concatenate([r.counts_matrix for r in responses], axis=1),
        psf=GaussianMixturePSF(
            np.concatenate([r.psf.weights for r in responses]), np.concatenate([r.psf.sigma_deg for r in responses])
        ),
        energy_reco_edges_tev=np.concatenate([r.energy_reco_edges_tev for r in responses]),
        psf_table=TabulatedPSF(first.psf_table.rad_deg, np.concatenate([r.psf_table.density_deg2 for r in responses])),
        meta={
            "instrument": "HAWC",
            "reference": first.meta["reference"],
            "psf_fit_max_containment_error": np.concatenate(
                [r.meta["psf_fit_max_containment_error"] for r in responses]
            ),
        },
    )

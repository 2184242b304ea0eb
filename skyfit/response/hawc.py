"""Reader for HAWC's public pass-4 DL3 instrument response (gammapy's map-IRF layout).

Per fHit bin and energy estimator (GP or NN) the release holds, on a 10x10 CAR grid of 1 deg
pixels around the Crab: ``EffectiveAreaMap`` (exposure per transit, cm^2 s, 140 true-energy bins),
``EDispKernelMap`` (migration into 12 reconstructed-energy bands) and ``PSFMap`` (radial PSF in
reconstructed energy, 500 radii); ``TransitsMap_Crab`` gives the number of transits (Abeysekara et
al. 2017, ApJ 843 39; HAWC pass-4 public Crab data release, 2022).

The true-energy bins are integrated with Simpson's rule in log E (exposure and dispersion constant
within a bin, as gammapy treats them), the dispersion and exposure are tabulated at declination
nodes through the ROI, and each tabulated PSF is fitted by a three-Gaussian mixture whose
containment is checked against the table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from scipy.ndimage import map_coordinates
from scipy.optimize import least_squares

from ._types import GaussianMixturePSF, Response, TabulatedPSF, log_simpson_bin_weights

# three Gaussians reproduce HAWC's tabulated containment to < 1e-4 (two: ~1e-3, and no faster here)
PSF_COMPONENTS = 3

__all__ = ["HAWCFileError", "read_car_cube", "hawc_response", "fit_gaussian_mixture_psf", "sample_car"]


class HAWCFileError(OSError):
    """A HAWC DL3 file is missing, corrupt or not of the expected layout."""


def read_car_cube(path, hdu: str | int, bands_hdu: str | None = None):
    """Read a CAR image cube and its band table, with errors that name the file and the fix."""
    path = Path(path)
    if not path.exists():
        raise HAWCFileError(
            f"{path} does not exist: check SKYFIT_DATA (the HAWC pass-4 Crab release layout is "
            "hawc/crab_events_pass4/{events,irfs,background}/)"
        )
    try:
        with fits.open(path) as hdul:
            image = hdul[hdu]
            data = np.asarray(image.data, dtype=float)
            wcs = WCS(image.header).celestial
            bands = None if bands_hdu is None else hdul[bands_hdu].data.copy()
    except (OSError, KeyError, ValueError, TypeError, EOFError) as exc:
        raise HAWCFileError(
            f"{path} could not be read as a HAWC map ({type(exc).__name__}: {exc}); the file may be "
            "corrupt or truncated: download it again"
        ) from exc
    return data, wcs, bands


def sample_car(cube, wcs, ra_deg, dec_deg, order: int = 1):
    """Linear interpolation of a (..., ny, nx) CAR cube at sky positions (pixel coordinates).

    Positions beyond the outermost pixel centres take the edge value; NaN propagates.
    """
    x, y = wcs.world_to_pixel_values(np.atleast_1d(ra_deg), np.atleast_1d(dec_deg))
    lead = cube.shape[:-2]
    flat = cube.reshape((-1,) + cube.shape[-2:])
    out = np.stack([map_coordinates(plane, [y, x], order=order, mode="nearest") for plane in flat])
    return out.reshape(lead + np.shape(x))


def car_pixel_solid_angle_sr(wcs, shape) -> np.ndarray:
    """Exact solid angle of each pixel of a (ny, nx) celestial grid (two spherical triangles each)."""
    ny, nx = shape
    yy, xx = np.mgrid[-0.5:ny:1.0, -0.5:nx:1.0]
    ra, dec = wcs.pixel_to_world_values(xx, yy)
    ra, dec = np.radians(ra), np.radians(dec)
    v = np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)

    def tri(a, b, c):  # Van Oosterom & Strackee (1983)
        num = np.abs(np.einsum("...i,...i", a, np.cross(b, c)))
        den = 1 + np.einsum("...i,...i", a, b) + np.einsum("...i,...i", b, c) + np.einsum("...i,...i", c, a)
        return 2 * np.arctan2(num, den)

    a, b, c, d = v[:-1, :-1], v[:-1, 1:], v[1:, 1:], v[1:, :-1]
    return tri(a, b, c) + tri(a, c, d)


def fit_gaussian_mixture_psf(rad_deg, density_deg2, n_components: int = 3):
    """Fit a normalised Gaussian mixture to a tabulated radial PSF through its containment curve.

    Returns ``(weights, sigma_deg, max_containment_error)``.
    """
    r = np.asarray(rad_deg, float)
    integrand = 2 * np.pi * r * density_deg2
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (integrand[1:] + integrand[:-1]) * np.diff(r))])
    cum /= cum[-1]
    r68 = np.interp(0.68, cum, r)
    grid = np.interp(np.linspace(0.005, 0.995, 200), cum, r)  # radii spread evenly in containment
    target = np.interp(grid, r, cum)

    def model(theta):
        sig = np.exp(theta[:n_components])
        logits = np.concatenate([[0.0], theta[n_components:]])
        w = np.exp(logits - logits.max())
        w /= w.sum()
        return w, sig, np.sum(w * (1 - np.exp(-0.5 * (grid[:, None] / sig) ** 2)), axis=1)

    # start widths: three spread about r68 (HAWC's and the DL3 PSFs); more for cuspy, long-tailed PSFs
    # (Fermi-LAT's King profile), spread geometrically from the core to the tail
    scale = np.array([0.6, 1.2, 3.0])[:n_components] if n_components <= 3 else np.geomspace(0.25, 6.0, n_components)
    start = np.concatenate([np.log(r68 / 1.5 * scale), np.zeros(n_components - 1)])
    sol = least_squares(lambda t: model(t)[2] - target, start, method="lm", max_nfev=4000 * max(1, n_components - 2))
    w, sig, fitted = model(sol.x)
    order = np.argsort(sig)
    return w[order], sig[order], float(np.max(np.abs(fitted - target)))


def _band_index(bands, reco_lo, reco_hi, tag: str) -> np.ndarray:
    """Per analysis band, its index among the dispersion's reconstructed bands (which it must match to 1 %)."""
    band_index = []
    for lo, hi in bands:
        j = np.nonzero((np.abs(np.log(reco_lo / lo)) < 0.01) & (np.abs(np.log(reco_hi / hi)) < 0.01))[0]
        if len(j) != 1:
            raise HAWCFileError(
                f"{tag}: band {lo:.3g}-{hi:.3g} TeV is not a reconstructed-energy band of the "
                f"dispersion file (bands: {np.round(reco_lo, 3).tolist()} ...)"
            )
        band_index.append(int(j[0]))
    return np.asarray(band_index)


def _fit_psfs(psf_rad, psf_table, band_index, counts_matrix) -> tuple:
    """(weights, sigma_deg, max containment error, valid) of the mixture fitted to each band's tabulated PSF."""
    weights_psf, sigma_psf, psf_err, valid = [], [], [], []
    for j in band_index:
        table = psf_table[j]
        ok = np.all(np.isfinite(table)) and np.max(table) > 0
        valid.append(bool(ok and counts_matrix[:, len(valid)].sum() > 0))
        if ok:
            w, s, err = fit_gaussian_mixture_psf(psf_rad, table, n_components=PSF_COMPONENTS)
        else:  # no PSF tabulated: the release has no events of this fHit bin in this band
            w, s, err = np.eye(PSF_COMPONENTS)[0], np.arange(1.0, PSF_COMPONENTS + 1), np.nan
        weights_psf.append(w)
        sigma_psf.append(s)
        psf_err.append(err)
    return weights_psf, sigma_psf, psf_err, valid


def _aeff_threshold(exp_center, true_edges) -> float:
    """Lowest true energy (TeV) where the exposure exceeds 10% of its maximum: its bin's log centre."""
    above = np.nonzero(exp_center > 0.1 * exp_center.max())[0]
    return float(np.sqrt(true_edges[above[0]] * true_edges[above[0] + 1])) if len(above) else np.inf


def hawc_response(
    data_dir, fhit: int, estimator: str, ra_deg: float, dec_nodes_deg, transits_path=None, analysis_band_edges_tev=None
):
    """Response of one HAWC fHit bin, tabulated at ``dec_nodes_deg`` along ``ra_deg``.

    Parameters
    ----------
    data_dir : path
        The ``crab_events_pass4`` folder.
    fhit : int
        fHit bin (5-9 in the public release).
    estimator : {"NN", "GP"}
    ra_deg : float
        Right ascension (deg) of the ROI centre, where the IRF grid is sampled.
    dec_nodes_deg : array_like
        Declinations (deg) at which exposure and dispersion are tabulated.
    analysis_band_edges_tev : array_like, shape (n_bands, 2), optional
        Reconstructed-energy bands to use (default: those of the background map, 1-316 TeV).

    Returns
    -------
    response : Response
        One analysis bin per band, named ``fHit{f}{est}_E{lo:.3g}-{hi:.3g}``; bins with no PSF or no
        exposure in the release are kept, with zero counts_matrix rows and a flag in ``meta``.
    aeff_threshold_tev : float
        Lowest true energy where the exposure at the ROI centre exceeds 10% of its maximum
        (gammapy's ``aeff-max`` safe-mask rule), for the caller's safe energy range.
    """
    data_dir = Path(data_dir)
    estimator = estimator.upper()
    if estimator not in ("NN", "GP"):
        raise ValueError(f"HAWC energy estimator must be 'NN' or 'GP', got {estimator!r}")
    tag = f"Crab_fHitbin{fhit}{estimator}"
    dec_nodes = np.asarray(dec_nodes_deg, float)
    ras = np.full_like(dec_nodes, ra_deg)

    aeff, aeff_wcs, aeff_bands = read_car_cube(
        data_dir / "irfs" / f"EffectiveAreaMap_{tag}.fits.gz", "AEFF", "AEFF_BANDS"
    )
    edisp, edisp_wcs, edisp_bands = read_car_cube(
        data_dir / "irfs" / f"EDispKernelMap_{tag}.fits.gz", "EDISP", "EDISP_BANDS"
    )
    psf, psf_wcs, psf_bands = read_car_cube(data_dir / "irfs" / f"PSFMap_{tag}.fits.gz", "PSF", "PSF_BANDS")
    transits_path = transits_path or data_dir / "irfs" / "TransitsMap_Crab.fits.gz"
    transits, transits_wcs, _ = read_car_cube(transits_path, 0)

    e_lo, e_hi = aeff_bands["ENERGY_TRUE_MIN"], aeff_bands["ENERGY_TRUE_MAX"]
    n_true = len(e_lo)
    if aeff.shape[0] != n_true or edisp.shape[0] != n_true:
        raise HAWCFileError(
            f"{tag}: effective area ({aeff.shape[0]}) and dispersion ({edisp.shape[0]}) true-energy "
            "axes differ: the IRF files do not belong together"
        )
    true_edges = np.append(e_lo, e_hi[-1])
    n_reco = edisp.shape[1]
    reco_lo = edisp_bands["E_MIN"][:n_reco]  # the band table runs over reco energy fastest
    reco_hi = edisp_bands["E_MAX"][:n_reco]
    if analysis_band_edges_tev is None:
        analysis_band_edges_tev = np.stack([reco_lo, reco_hi], axis=1)[2:]
    bands = np.asarray(analysis_band_edges_tev, float)
    band_index = _band_index(bands, reco_lo, reco_hi, tag)

    exposure = sample_car(aeff, aeff_wcs, ras, dec_nodes)  # (n_true, n_dec) cm2 s per transit
    migration = sample_car(edisp, edisp_wcs, ras, dec_nodes)  # (n_true, n_reco, n_dec)
    n_transits = sample_car(transits, transits_wcs, ras, dec_nodes)  # (n_dec,)
    weights = log_simpson_bin_weights(true_edges)  # (n_true, n_nodes)
    nodes = np.empty(2 * n_true + 1)
    nodes[0::2], nodes[1::2] = true_edges, np.sqrt(true_edges[1:] * true_edges[:-1])
    per_bin = exposure.T[:, None, :] * migration[:, band_index, :].transpose(2, 1, 0)  # (n_dec, n_band, n_true)
    counts_matrix = np.einsum("dbk,kn->dbn", per_bin * n_transits[:, None, None], weights)

    center = np.array([len(dec_nodes) // 2])
    psf_rad = psf_bands["RAD"][: psf.shape[1]]
    psf_table = sample_car(psf, psf_wcs, ras[center], dec_nodes[center])[..., 0]  # (n_reco, n_rad)
    weights_psf, sigma_psf, psf_err, valid = _fit_psfs(psf_rad, psf_table, band_index, counts_matrix)

    aeff_threshold = _aeff_threshold(exposure[:, center[0]], true_edges)

    names = tuple(f"fHit{fhit}{estimator}_E{lo:.3g}-{hi:.3g}" for lo, hi in bands)
    response = Response(
        bin_names=names,
        energy_true_tev=nodes,
        dec_nodes_deg=dec_nodes,
        counts_matrix=counts_matrix,
        psf=GaussianMixturePSF(np.asarray(weights_psf), np.asarray(sigma_psf)),
        energy_reco_edges_tev=bands,
        psf_table=TabulatedPSF(psf_rad, psf_table[band_index]),
        meta={
            "instrument": "HAWC",
            "fhit": fhit,
            "estimator": estimator,
            "valid_bins": np.asarray(valid),
            "psf_fit_max_containment_error": np.asarray(psf_err),
            "transits": n_transits,
            "reference": "Abeysekara et al. 2017, ApJ 843 39; HAWC pass-4 Crab public data (2022)",
        },
    )
    return response, aeff_threshold

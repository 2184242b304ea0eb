"""Responses of a drift-scan array (HAWC, LHAASO, SWGO, ...) from standard GADF DL3 IRFs.

The input is a full-enclosure IRF in the GADF DL3 layout (Deil et al. 2017, "Open high-level data
formats and software for gamma-ray astronomy", AIP Conf. Proc. 1792, 070006; the "gamma-astro-data-
formats" specification): ``EFFECTIVE AREA`` (``AEFF_2D``), ``ENERGY DISPERSION`` (``EDISP_2D``) and a
``PSF`` (``PSF_TABLE``, ``PSF_3GAUSS`` or ``PSF_KING``). gammapy's IRF classes parse the tables
(axes, units, the FITS axis order); everything after that is NumPy on plain arrays.

For a ground array the field-of-view offset ``THETA`` of the IRF is the zenith angle: the array
always points to the zenith, and a source's zenith angle follows its hour angle ``h`` through the
day (drift scan). For a site at geodetic latitude ``phi`` and a source at declination ``dec``::

    cos z(h) = sin(phi) sin(dec) + cos(phi) cos(dec) cos(h)

and the source is used while ``z < z_max`` (the IRF's largest ``THETA_HI``, or a smaller cut), that
is for ``|h| < H`` with ``cos H = (cos z_max - sin(phi) sin(dec)) / (cos(phi) cos(dec))`` (``H = pi``
for a source that never leaves the cut, no ``H`` for one never inside it). The sky turns at a
uniform rate, one sidereal day ``T_sid = 86164.0905 s`` per ``2 pi`` of hour angle, so the exposure
(cm^2 s) of ``N`` transits is::

    exposure(E, dec) = N * (T_sid / 2 pi) * integral_{-H}^{H} A(E, z(h)) dh

and the response into the reconstructed-energy bin ``[E1, E2]`` is::

    counts_matrix[d, b, k] = w_k * N * (T_sid / 2 pi) * integral_{-H}^{H} A(E_k, z(h)) P_b(E_k, z(h)) dh
    P_b(E, z) = integral_{E1/E}^{E2/E} M(mu; E, z) dmu

with ``M`` the migration density of ``EDISP_2D`` (``mu = E_reco / E_true``) and ``w_k`` the Simpson
weight in log E (TeV) of true-energy node ``E_k``: the dispersion is averaged over zenith with the
exposure of each zenith as weight, as the events themselves are. A livetime ``T`` spread uniformly
over sidereal time is ``N = T / T_sid`` transits.

Interpolation of the tables, which GADF gives at bin centres: linear in zenith angle and linear in
log E between the centres, held constant from the outermost centres to the outermost edges; the
effective area is zero outside the true-energy edges; ``M`` is constant within each migration bin
(so ``P_b`` is exact for the binned table). The hour-angle integral is composite Gauss-Legendre with
break points wherever the zenith angle crosses a table node, so that the integrand is smooth in each
piece: exact to rounding for a table constant in zenith (checked by the tests), and far below the
tables' own interpolation error otherwise.

PSF per analysis bin (``psf_dec_deg``, by default the middle declination node): the mixture over
zenith and true energy of the tabulated PSF, each (z, E) weighted by the counts it gives in the bin
for a power law of index ``psf_spectral_index`` (default 2.6, about the Crab's and the Galactic
sources' index at TeV energies)::

    rho_b(r) ∝ sum_k w_k E_k^-index integral dh A(E_k, z(h)) P_b(E_k, z(h)) psf(r; E_k, z(h))

each node's PSF normalised to unit integral first. ``rho_b`` is kept as ``psf_table`` and fitted with
:func:`skyfit.response.hawc.fit_gaussian_mixture_psf` (three Gaussians by default; fewer, split into
equal parts, when they already reproduce the containment curve to 3e-4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._dl3_irf import DL3IRF, DL3FileError, _normalise_profiles, read_dl3_irfs
from ._types import GaussianMixturePSF, Response, TabulatedPSF, log_simpson_nodes
from .hawc import fit_gaussian_mixture_psf

__all__ = [
    "SIDEREAL_DAY_S",
    "DL3FileError",
    "DL3IRF",
    "read_dl3_irfs",
    "hour_angle_quadrature",
    "dl3_response",
]

SIDEREAL_DAY_S = 86164.0905  # mean sidereal day (s): one transit of every source
_N_GAUSS = 8  # Gauss-Legendre nodes per hour-angle piece
_TRUE_BINS_PER_DECADE = 24  # default true-energy Simpson bins: ~1e-5 for a 12% migration width (12: ~1e-4)
_PSF_FIT_TOLERANCE = 3e-4  # fewer Gaussians are kept when they reproduce the containment this well


# --------------------------------------------------------------------------------------------------
# drift-scan quadrature and interpolation
# --------------------------------------------------------------------------------------------------


def _half_arc(lat, dec, cos_z):
    """Hour angle (rad, in [0, pi]) where a source at ``dec`` reaches ``arccos(cos_z)`` (clipped)."""
    den = np.cos(lat) * np.cos(dec)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = (cos_z - np.sin(lat) * np.sin(dec)) / den
    c = np.where(np.abs(den) < 1e-15, np.where(cos_z <= np.sin(lat) * np.sin(dec), -1.0, 1.0), c)
    return np.arccos(np.clip(c, -1.0, 1.0))


def hour_angle_quadrature(
    site_latitude_deg: float, dec_deg: float, max_zenith_deg: float, zenith_breaks_deg=(), n_per_piece: int = _N_GAUSS
):
    """Nodes and weights for the time a source spends at each zenith angle during one transit.

    ``sum(weights * f(zenith))`` approximates ``(T_sid / 2 pi) * integral_{-H}^{H} f(z(h)) dh``: the
    time integral (s) of ``f`` over one sidereal day while ``z < max_zenith_deg``. The half-arc
    ``[0, H]`` is split where ``z`` crosses each of ``zenith_breaks_deg`` (e.g. the nodes of a table
    interpolated linearly in zenith) and each piece gets ``n_per_piece`` Gauss-Legendre nodes.

    Parameters
    ----------
    site_latitude_deg, dec_deg : float
        Site latitude and source declination (deg).
    max_zenith_deg : float
        Zenith-angle cut (deg).
    zenith_breaks_deg : array_like
        Zenith angles (deg) where the integrand may have a kink.
    n_per_piece : int
        Gauss-Legendre nodes per piece.

    Returns
    -------
    zenith_deg : ndarray, shape (n,)
    weights_s : ndarray, shape (n,)
        Seconds per transit; they sum to ``2 H T_sid / (2 pi)``. Empty when the source never
        reaches ``z < max_zenith_deg``.
    """
    lat, dec = np.radians(site_latitude_deg), np.radians(dec_deg)
    z_top = abs(site_latitude_deg - dec_deg)  # zenith angle at upper culmination
    h_max = float(_half_arc(lat, dec, np.cos(np.radians(max_zenith_deg))))
    if z_top >= max_zenith_deg or h_max <= 0.0:
        return np.empty(0), np.empty(0)
    breaks = np.asarray(zenith_breaks_deg, dtype=float)
    breaks = breaks[(breaks > z_top) & (breaks < max_zenith_deg)]
    h_breaks = _half_arc(lat, dec, np.cos(np.radians(breaks)))
    knots = np.unique(np.concatenate([[0.0, h_max], h_breaks[h_breaks < h_max]]))
    x, w = np.polynomial.legendre.leggauss(n_per_piece)
    a, b = knots[:-1, None], knots[1:, None]
    h = (0.5 * (b - a) * (x + 1.0) + a).ravel()
    wh = (0.5 * (b - a) * w).ravel()
    cos_z = np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(h)
    zenith = np.degrees(np.arccos(np.clip(cos_z, -1.0, 1.0)))
    return zenith, 2.0 * wh * SIDEREAL_DAY_S / (2.0 * np.pi)  # both halves of the arc


def _interp_matrix(x, xp) -> np.ndarray:
    """Dense (len(x), len(xp)) matrix of linear-interpolation weights, clamped at the ends."""
    x, xp = np.asarray(x, float), np.asarray(xp, float)
    m = np.zeros((x.size, xp.size))
    if xp.size == 1:
        m[:, 0] = 1.0
        return m
    xc = np.clip(x, xp[0], xp[-1])
    i = np.clip(np.searchsorted(xp, xc, side="right") - 1, 0, xp.size - 2)
    t = (xc - xp[i]) / (xp[i + 1] - xp[i])
    rows = np.arange(x.size)
    m[rows, i] += 1.0 - t
    m[rows, i + 1] += t
    return m


def _centers(edges):
    return 0.5 * (edges[1:] + edges[:-1])


def _log_centers(edges):
    return 0.5 * (np.log(edges[1:]) + np.log(edges[:-1]))


def _bin_probability(irf: DL3IRF, energy_tev, bands) -> np.ndarray:
    """P(E_reco in band b | E_true, zenith node), shape (n_zen_e, n_true, n_bins)."""
    edges = irf.migra_edges
    dmu = np.diff(edges)
    cdf = np.concatenate(
        [np.zeros(irf.edisp_density.shape[:2] + (1,)), np.cumsum(irf.edisp_density * dmu, axis=-1)], axis=-1
    )  # (zen, e_irf, n_mu + 1), piecewise linear in mu (constant density per migra bin)
    lo = bands[None, :, 0] / energy_tev[:, None]  # (n_true, n_bins)
    hi = bands[None, :, 1] / energy_tev[:, None]
    le = _interp_matrix(np.log(energy_tev), _log_centers(irf.edisp_energy_edges_tev))  # (n_true, n_e_irf)
    prob = np.zeros((cdf.shape[0], energy_tev.size, bands.shape[0]))
    for ie in range(cdf.shape[1]):  # each IRF energy row serves the (at most) few nodes next to it
        ks = np.nonzero(le[:, ie])[0]
        if ks.size == 0:
            continue
        for iz in range(cdf.shape[0]):
            c = cdf[iz, ie]
            prob[iz, ks] += le[ks, ie, None] * (np.interp(hi[ks], edges, c) - np.interp(lo[ks], edges, c))
    return np.clip(prob, 0.0, None)


def _aeff_at_nodes(irf: DL3IRF, energy_tev) -> np.ndarray:
    """Effective area (cm^2) at the table's zenith nodes and the true-energy nodes, (n_zen_a, n_true)."""
    edges = irf.aeff_energy_edges_tev
    le = _interp_matrix(np.log(energy_tev), _log_centers(edges))
    inside = (energy_tev >= edges[0] * (1 - 1e-12)) & (energy_tev <= edges[-1] * (1 + 1e-12))
    return (irf.aeff_cm2 @ le.T) * inside[None, :]


def _as_bands(analysis_bins) -> np.ndarray:
    b = np.asarray(analysis_bins, dtype=float)
    if b.ndim == 1:
        if b.size < 2 or np.any(np.diff(b) <= 0):
            raise ValueError(f"analysis_bins edges must be increasing, at least two values; got {b.tolist()}")
        b = np.stack([b[:-1], b[1:]], axis=1)
    if b.ndim != 2 or b.shape[1] != 2 or b.shape[0] == 0:
        raise ValueError(f"analysis_bins must be edges (n+1,) or (n_bins, 2) in TeV; got shape {b.shape}")
    if not np.all(np.isfinite(b)) or np.any(b[:, 0] <= 0) or np.any(b[:, 1] <= b[:, 0]):
        raise ValueError("analysis_bins must be finite, positive, with lo < hi in every bin")
    return b


def _fit_psf(rad_deg, density_deg2, n_components: int):
    """Gaussian mixture of ``n_components`` fitted to a radial profile: ``(weights, sigma_deg, max_error)``.

    Mixtures of 1, 2, ... Gaussians are tried in turn and the first that reproduces the containment
    curve to ``_PSF_FIT_TOLERANCE`` is kept (a profile that is one Gaussian makes a three-component
    fit degenerate and slow); it is brought to ``n_components`` by splitting its heaviest component
    into equal parts of the same width, which leaves the mixture unchanged.
    """
    for k in range(1, n_components + 1):
        w, s, err = fit_gaussian_mixture_psf(rad_deg, density_deg2, n_components=k)
        if err <= _PSF_FIT_TOLERANCE or k == n_components:
            break
    w, s = list(w), list(s)
    while len(w) < n_components:
        i = int(np.argmax(w))
        w[i] *= 0.5
        w.insert(i + 1, w[i])
        s.insert(i + 1, s[i])
    return np.asarray(w), np.asarray(s), err


# --------------------------------------------------------------------------------------------------
# the response
# --------------------------------------------------------------------------------------------------


def dl3_response(
    irf_file=None,
    *,
    site_latitude_deg: float,
    dec_nodes_deg,
    analysis_bins,
    n_transits: float | None = None,
    livetime_days: float | None = None,
    aeff_file=None,
    edisp_file=None,
    psf_file=None,
    hdu_names=None,
    energy_true_edges_tev=None,
    max_zenith_deg: float | None = None,
    psf_dec_deg: float | None = None,
    psf_spectral_index: float = 2.6,
    psf_components: int = 3,
    instrument: str | None = None,
    bin_prefix: str = "",
) -> Response:
    """Response of a drift-scan array from full-enclosure GADF DL3 IRFs (see the module docstring).

    Parameters
    ----------
    irf_file : path, optional
        GADF IRF file with ``EFFECTIVE AREA``, ``ENERGY DISPERSION`` and ``PSF`` HDUs.
    site_latitude_deg : float
        Geodetic latitude of the array (deg), e.g. ``skyfit.coords.HAWC_SITE.lat_deg``.
    dec_nodes_deg : array_like
        Increasing declinations (deg) at which the response is tabulated.
    analysis_bins : array_like
        Reconstructed-energy bins (TeV): edges ``(n_bins + 1,)`` or ``(n_bins, 2)`` ranges.
    n_transits : float, optional
        Number of transits (sidereal days of full uptime). Give this or ``livetime_days``.
    livetime_days : float, optional
        Livetime in days of 86400 s, spread uniformly over sidereal time (``n_transits = livetime_days
        * 86400 / 86164.0905``).
    aeff_file, edisp_file, psf_file : path, optional
        Separate component files (each defaults to ``irf_file``).
    hdu_names : dict, optional
        HDU names, keys ``"aeff"``, ``"edisp"``, ``"psf"`` (see :func:`read_dl3_irfs`).
    energy_true_edges_tev : array_like, optional
        True-energy edges (TeV) for the Simpson nodes; default the IRF's true-energy range with 24 bins
        per decade (log-Simpson error ~1e-5 of the counts for a 12% energy resolution).
    max_zenith_deg : float, optional
        Zenith cut (deg); default and upper limit the effective area's largest ``THETA_HI``.
    psf_dec_deg : float, optional
        Declination (deg) whose zenith distribution weights the PSF; default the middle node.
    psf_spectral_index : float
        Power-law index of the spectrum weighting the PSF over true energy.
    psf_components : int
        Gaussians in the fitted PSF mixture.
    instrument : str, optional
        Name for ``meta["instrument"]``; default the file's ``TELESCOP``/``INSTRUME``.
    bin_prefix : str
        Prefix of the bin names ``f"{bin_prefix}E{lo:.3g}-{hi:.3g}"``.

    Returns
    -------
    Response
        ``counts_matrix[d, b, k]`` in counts per (cm^-2 s^-1 TeV^-1), Simpson weight (TeV) included;
        ``meta["exposure_cm2_s"]`` (n_dec, n_true) holds the exposure (all transits) at the nodes,
        ``meta["valid_bins"]`` flags bins with counts and a PSF.

    Raises
    ------
    DL3FileError
        Missing file, missing HDU, a file of another format, or a declination node (or
        ``psf_dec_deg``) that never comes within the zenith cut at this site.
    ValueError
        Inconsistent arguments (no or both of ``n_transits``/``livetime_days``, unsorted nodes, ...).
    """
    transits, dec_nodes, bands = _checked(n_transits, livetime_days, site_latitude_deg, dec_nodes_deg, analysis_bins)
    irf = read_dl3_irfs(irf_file, aeff_file=aeff_file, edisp_file=edisp_file, psf_file=psf_file, hdu_names=hdu_names)
    z_cut = _zenith_cut(irf, max_zenith_deg)
    nodes, simpson_w = _true_energy_nodes(irf, energy_true_edges_tev)
    drift = _drift_tables(irf, nodes, bands, site_latitude_deg, z_cut)
    counts, exposure = _counts_and_exposure(drift, dec_nodes, bands.shape[0], nodes, simpson_w, transits)
    psf_dec = float(dec_nodes[dec_nodes.size // 2] if psf_dec_deg is None else psf_dec_deg)
    rad, dens, w_psf, s_psf, err_psf, valid = _psf_mixtures(
        drift, irf, psf_dec, nodes, simpson_w, psf_spectral_index, counts, psf_components
    )
    name = instrument or irf.header.get("INSTRUME") or irf.header.get("TELESCOP") or "DL3"
    meta = _meta(irf, name, site_latitude_deg, transits, livetime_days, z_cut, psf_dec, psf_spectral_index,
                 psf_components, err_psf, valid, exposure)  # fmt: skip
    return Response(
        bin_names=tuple(f"{bin_prefix}E{lo:.3g}-{hi:.3g}" for lo, hi in bands),
        energy_true_tev=nodes,
        dec_nodes_deg=dec_nodes,
        counts_matrix=counts,
        psf=GaussianMixturePSF(np.asarray(w_psf), np.asarray(s_psf)),
        energy_reco_edges_tev=bands,
        psf_table=TabulatedPSF(rad, dens),
        meta=meta,
    )


def _checked(n_transits, livetime_days, site_latitude_deg, dec_nodes_deg, analysis_bins) -> tuple:
    """(transits, declination nodes, analysis bands) of :func:`dl3_response`'s arguments, checked."""
    if (n_transits is None) == (livetime_days is None):
        raise ValueError("give exactly one of n_transits and livetime_days")
    transits = float(n_transits) if n_transits is not None else float(livetime_days) * 86400.0 / SIDEREAL_DAY_S
    if not np.isfinite(transits) or transits < 0:
        raise ValueError(f"the number of transits must be finite and non-negative, got {transits}")
    if not -90.0 <= site_latitude_deg <= 90.0:
        raise ValueError(f"site_latitude_deg must lie in [-90, 90], got {site_latitude_deg}")
    dec_nodes = np.atleast_1d(np.asarray(dec_nodes_deg, dtype=float))
    if dec_nodes.ndim != 1 or np.any(np.abs(dec_nodes) > 90) or np.any(np.diff(dec_nodes) <= 0):
        raise ValueError("dec_nodes_deg must be strictly increasing declinations within [-90, 90]")
    bands = _as_bands(analysis_bins)
    return transits, dec_nodes, bands


def _zenith_cut(irf: DL3IRF, max_zenith_deg) -> float:
    """The zenith cut (deg): ``max_zenith_deg``, by default the effective area's largest zenith angle."""
    aeff_path = irf.files["aeff"][0]
    z_irf = irf.max_zenith_deg
    z_cut = z_irf if max_zenith_deg is None else float(max_zenith_deg)
    if z_cut > z_irf + 1e-9 or z_cut <= 0:
        raise ValueError(f"max_zenith_deg={z_cut} must lie in (0, {z_irf}] (the effective area of {aeff_path})")
    return z_cut


def _true_energy_nodes(irf: DL3IRF, energy_true_edges_tev) -> tuple:
    """Simpson nodes and weights (TeV) in true energy, by default over the effective area's range."""
    if energy_true_edges_tev is None:
        e0, e1 = irf.aeff_energy_edges_tev[0], irf.aeff_energy_edges_tev[-1]
        n = max(int(np.ceil(_TRUE_BINS_PER_DECADE * np.log10(e1 / e0) - 1e-9)), 1)
        energy_true_edges_tev = np.geomspace(e0, e1, n + 1)
    return log_simpson_nodes(np.asarray(energy_true_edges_tev, dtype=float))


@dataclass(frozen=True)
class _DriftTables:
    """The IRF tables at the true-energy nodes, and what the hour-angle quadrature at one declination needs."""

    site_latitude_deg: float
    z_cut: float
    aeff_path: str
    a_nodes: np.ndarray  # (n_zen_a, n_true)
    p_nodes: np.ndarray  # (n_zen_e, n_true, n_bins)
    za: np.ndarray  # zenith nodes (deg) of the effective area, dispersion and PSF tables
    ze: np.ndarray
    zp: np.ndarray
    breaks: np.ndarray

    def fold(self, dec):
        """Per-zenith-node area (n_h, n_true) and bin probability (n_h, n_true, n_bins) and time weights."""
        site_latitude_deg, z_cut = self.site_latitude_deg, self.z_cut
        zen, wt = hour_angle_quadrature(site_latitude_deg, dec, z_cut, self.breaks)
        if zen.size == 0:
            lo, hi = site_latitude_deg - z_cut, site_latitude_deg + z_cut
            raise DL3FileError(
                f"{self.aeff_path}: a source at declination {dec:g} deg never comes within the IRF's zenith cut "
                f"({z_cut:g} deg) at site latitude {site_latitude_deg:g} deg, so it has no exposure: keep "
                f"dec_nodes_deg (and psf_dec_deg) inside ({max(lo, -90):g}, {min(hi, 90):g}) deg, or use an "
                "IRF file covering larger zenith angles"
            )
        area = _interp_matrix(zen, self.za) @ self.a_nodes
        prob = np.einsum("hz,zkb->hkb", _interp_matrix(zen, self.ze), self.p_nodes, optimize=True)
        return zen, wt, area, prob


def _drift_tables(irf: DL3IRF, nodes, bands, site_latitude_deg: float, z_cut: float) -> _DriftTables:
    a_nodes = _aeff_at_nodes(irf, nodes)  # (n_zen_a, n_true)
    p_nodes = _bin_probability(irf, nodes, bands)  # (n_zen_e, n_true, n_bins)
    za, ze, zp = (
        _centers(e) for e in (irf.aeff_zenith_edges_deg, irf.edisp_zenith_edges_deg, irf.psf_zenith_edges_deg)
    )
    breaks = np.unique(np.concatenate([za, ze, zp]))
    return _DriftTables(site_latitude_deg, z_cut, irf.files["aeff"][0], a_nodes, p_nodes, za, ze, zp, breaks)


def _counts_and_exposure(drift: _DriftTables, dec_nodes, n_bins: int, nodes, simpson_w, transits: float) -> tuple:
    """``counts_matrix`` (n_dec, n_bins, n_true) and the exposure (n_dec, n_true) of all transits."""
    counts = np.empty((dec_nodes.size, n_bins, nodes.size))
    exposure = np.empty((dec_nodes.size, nodes.size))
    for d, dec in enumerate(dec_nodes):
        _, wt, area, prob = drift.fold(dec)
        exposure[d] = transits * (wt @ area)
        counts[d] = transits * np.einsum("h,hk,hkb->bk", wt, area, prob) * simpson_w[None, :]
    return counts, exposure


def _psf_mixtures(drift: _DriftTables, irf: DL3IRF, psf_dec: float, nodes, simpson_w, psf_spectral_index: float,
                  counts, psf_components: int) -> tuple:  # fmt: skip
    """(radii, per-bin PSF density, mixture weights, widths, fit errors, valid bins) at ``psf_dec``.

    PSF: counts-weighted mixture over (zenith, true energy) for a power law, at ``psf_dec``.
    """
    zen, wt, area, prob = drift.fold(psf_dec)
    weight = wt[:, None, None] * area[..., None] * prob * (simpson_w * nodes**-psf_spectral_index)[None, :, None]
    mz = _interp_matrix(zen, drift.zp)  # (n_h, n_zen_p)
    me = _interp_matrix(np.log(nodes), _log_centers(irf.psf_energy_edges_tev))  # (n_true, n_e_p)
    v = np.einsum("bzk,ke->bze", np.einsum("hkb,hz->bzk", weight, mz, optimize=True), me, optimize=True)
    dens = np.einsum("bze,zer->br", v, irf.psf_density_deg2, optimize=True)
    total = weight.sum(axis=(0, 1))
    rad = irf.psf_rad_deg
    dens = _normalise_profiles(rad, dens)
    w_psf, s_psf, err_psf, valid = [], [], [], []
    for b in range(counts.shape[1]):
        ok = total[b] > 0 and np.max(dens[b]) > 0
        valid.append(bool(ok and counts[:, b].sum() > 0))
        if ok:
            w, s, err = _fit_psf(rad, dens[b], psf_components)
        else:  # no events of this bin in the IRF: placeholder PSF, flagged in meta["valid_bins"]
            w, s, err = np.eye(psf_components)[0], np.arange(1.0, psf_components + 1), np.nan
        w_psf.append(w)
        s_psf.append(s)
        err_psf.append(err)
    return rad, dens, w_psf, s_psf, err_psf, valid


def _meta(irf: DL3IRF, name, site_latitude_deg, transits, livetime_days, z_cut, psf_dec, psf_spectral_index,
          psf_components, err_psf, valid, exposure) -> dict:  # fmt: skip
    """``Response.meta`` of :func:`dl3_response`."""
    return {
        "instrument": str(name),
        "files": {k: {"file": f, "hdu": h} for k, (f, h) in irf.files.items()},
        "psf_format": irf.psf_format,
        "site_latitude_deg": float(site_latitude_deg),
        "n_transits": transits,
        "livetime_days": None if livetime_days is None else float(livetime_days),
        "max_zenith_deg": z_cut,
        "psf_dec_deg": psf_dec,
        "psf_spectral_index": float(psf_spectral_index),
        "psf_fit_max_containment_error": np.asarray(err_psf),
        "valid_bins": np.asarray(valid),
        "exposure_cm2_s": exposure,
        "method": (
            "drift scan: exposure = n_transits * (T_sid/2pi) * int A(E, z(h)) dh over z < max_zenith "
            "(GADF THETA = zenith angle; T_sid = 86164.0905 s); dispersion into each reco bin integrated "
            "from EDISP_2D MIGRA and averaged over zenith with the exposure weight; PSF = counts-weighted "
            f"mixture over zenith and true energy for E^-{psf_spectral_index:g} at dec {psf_dec:g} deg, "
            f"fitted by {psf_components} Gaussians; true energy: Simpson in log E"
        ),
    }

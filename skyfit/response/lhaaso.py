"""Parametric LHAASO-like instrument responses (WCDA and KM2A) for simulations and tests.

These are *not* the collaboration's instrument response files: every curve is a smooth parametric
form whose anchor numbers come from the public LHAASO performance papers (cited where each number is
used), and which is otherwise approximate. References, abbreviated below:

* [WCDA21] Aharonian et al. 2021, Chinese Phys. C 45, 085002, doi:10.1088/1674-1137/ac041b,
  arXiv:2101.03508 (WCDA-1 performance with the Crab).
* [KM2A21] Aharonian et al. 2021, Chinese Phys. C 45, 025002, doi:10.1088/1674-1137/abd01b,
  arXiv:2010.06205 (KM2A half-array performance with the Crab).
* [KM2A24] Cao et al. 2024, Chinese Phys. C, doi:10.1088/1674-1137/ad2e82 (KM2A full array, Crab).
* [1LHAASO] Cao et al. 2024, ApJS 271, 25 (first LHAASO catalogue).
* [BOOK] Cao et al. 2019, arXiv:1905.02773 (LHAASO science book).
* [PDG] Particle Data Group, Review of Particle Physics, "Cosmic rays" (all-particle spectrum).

Exposure model (drift scan): a source at declination ``dec`` moves uniformly in hour angle ``h``;
its zenith angle obeys ``cos z = sin(lat) sin(dec) + cos(lat) cos(dec) cos(h)``. Only ``z <
max_zenith_deg`` is used (50 deg as in [1LHAASO]). The effective area at zenith ``z`` is
``A(E, z) = cos(z) * A0(E * cos(z)**2)``: projected array area times the vertical curve evaluated
at a lower "equivalent vertical" energy, i.e. the threshold rises as sec^2(z) because of the longer
slant depth (an approximation chosen here, not a fit to LHAASO numbers). The exposure per unit
livetime is the hour-angle average of ``A(E, z(h))`` over the visible arc, integrated with
Gauss-Legendre nodes.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from ._types import GaussianMixturePSF, Response, log_simpson_nodes

__all__ = [
    "LHAASO_LATITUDE_DEG",
    "wcda_response",
    "km2a_response",
    "background_counts_per_sr",
    "bin_exposure_cm2_s",
    "default_energy_edges_tev",
    "background_rate_per_s_sr",
    "source_rate_per_s",
]

# Haizi Mountain, Daocheng, 4410 m a.s.l.; [KM2A24] quotes (100.01 E, 29.35 N), other LHAASO papers
# round to 29.36 N. The 0.01 deg difference is irrelevant at the precision of this model.
LHAASO_LATITUDE_DEG = 29.36

_SECONDS_PER_DAY = 86400.0
_N_HOUR_ANGLE = 48  # Gauss-Legendre nodes over the visible half-arc
_TAIL_WEIGHT, _TAIL_RATIO = 0.25, 1.8  # PSF: core Gaussian + 1.8x wider tail holding 25% of events


def _spec(instrument: str) -> dict:
    """Parameters of one instrument (a fresh dict on each call; nothing is cached)."""
    key = instrument.upper()
    if key == "WCDA":
        # Six nHit analysis segments as in the WCDA part of [1LHAASO]; nHit is modelled through a
        # pseudo reconstructed log10(E/TeV) with these (approximate) boundaries, last bin open-ended.
        lo = np.array([-0.4, 0.0, 0.3, 0.5, 0.75, 1.0])
        hi = np.array([0.0, 0.3, 0.5, 0.75, 1.0, np.inf])
        return dict(
            name="WCDA",
            bin_names=tuple(f"WCDA_nHit{i + 1}" for i in range(6)),
            reco_lo=lo,
            reco_hi=hi,
            nominal_hi=np.array([0.0, 0.3, 0.5, 0.75, 1.0, np.log10(25.0)]),  # WCDA range ~1-25 TeV
            # nHit is a coarse energy proxy: sigma(log10 E) 0.30 at <=1 TeV to 0.18 at >=10 TeV,
            # wider than the 33% energy resolution at 6 TeV of the dedicated estimator in [WCDA21].
            sigma_log10=((0.0, 1.0), (0.30, 0.18)),
            # A0 = a_max / (1 + (e50/E)**slope): ~9e3 m^2 at 1 TeV, ~6e4 m^2 at 10 TeV. The pond is
            # 78,000 m^2 [BOOK]; ~50% photon acceptance of the g/h cut [WCDA21] plus showers with
            # cores just outside the pond give the ~6e4 m^2 plateau (approximate).
            a_max_m2=6.0e4,
            e50_tev=2.0,
            slope=2.5,
            # R68 = 0.45 deg at 1 TeV and <0.2 deg above 6 TeV [WCDA21]; extended linearly in
            # log10(E) below 1 TeV and floored at 0.15 deg at ~15 TeV (approximate).
            psf68=((-0.4, 0.0, np.log10(6.0), 1.2), (0.58, 0.45, 0.20, 0.15)),
            # Residual cosmic rays: survival 2.3% at 1 TeV, 0.2% at 6 TeV after the compactness cut
            # [WCDA21]; power law between them, held at 0.2% above 6 TeV (no number quoted there).
            survival=(1.0, 0.023, 6.0, 0.002, 0.002, 0.1),
            cr_area_m2=7.8e4,  # pond area [BOOK]
            cr_energy_factor=2.0,  # a CR of energy ~2E mimics a photon of energy E (approximate)
        )
    if key == "KM2A":
        # Reconstructed-energy bins 0.2 wide in log10(E/TeV), 25 TeV - 1.6 PeV, as in [KM2A21].
        lo = np.round(np.arange(1.4, 3.2 - 1e-9, 0.2), 1)
        return dict(
            name="KM2A",
            bin_names=tuple(f"KM2A_logE{a:.1f}-{a + 0.2:.1f}" for a in lo),
            reco_lo=lo,
            reco_hi=lo + 0.2,
            nominal_hi=lo + 0.2,
            # Energy resolution 24% at 20 TeV and 13% at 100 TeV [KM2A21], linear in log10(E),
            # held at 13% above 100 TeV (conservative); sigma(log10 E) = (dE/E) / ln 10.
            sigma_log10=((np.log10(20.0), 2.0), (0.24 / np.log(10), 0.13 / np.log(10))),
            # ~0.8 km^2 after cuts above 100 TeV (KM2A covers 1.3 km^2 [KM2A24]; the papers show
            # 0.5-1 km^2 after cuts), falling to ~half at 25 TeV (approximate shape).
            a_max_m2=8.0e5,
            e50_tev=20.0,
            slope=2.5,
            # R68 ~0.5-0.8 deg near 20-25 TeV and ~0.25-0.3 deg at 100 TeV [KM2A21]; full-array
            # values are somewhat better [KM2A24]; 0.15-0.18 deg near 1 PeV (approximate).
            psf68=((1.4, 2.0, 2.6, 3.2), (0.60, 0.28, 0.18, 0.15)),
            # Muon-detector cut: CR survival ~1e-3 at 25 TeV and ~1e-4 at 100 TeV [KM2A21]
            # (approximate read-off); power law, floored at 1e-5 (nearly background-free > 100 TeV).
            survival=(25.0, 1e-3, 100.0, 1e-4, 1e-5, 1e-2),
            cr_area_m2=1.3e6,  # KM2A array area [KM2A24]
            cr_energy_factor=2.0,
        )
    raise ValueError(f"unknown instrument {instrument!r}; expected 'WCDA' or 'KM2A'")


def default_energy_edges_tev() -> np.ndarray:
    """True-energy bin edges (TeV): 0.1 TeV - 3.16 PeV, 12 log-bins per decade.

    Twelve bins per decade keep the log-Simpson quadrature of ``counts_matrix`` within ~2e-4 of
    the exact integral even for the sharp KM2A energy dispersion (8 per decade gives ~1e-3).
    """
    return np.logspace(-1.0, 3.5, 55)


def _sigma_log10(spec: dict, energy_tev) -> np.ndarray:
    x, y = spec["sigma_log10"]
    return np.interp(np.log10(energy_tev), x, y)


def _area_vertical_m2(spec: dict, energy_tev) -> np.ndarray:
    e = np.asarray(energy_tev, dtype=float)
    return spec["a_max_m2"] / (1.0 + (spec["e50_tev"] / e) ** spec["slope"])


def _hour_angle_nodes(dec_deg, max_zenith_deg: float):
    """cos(zenith) and weights at Gauss-Legendre nodes on the visible arc, per declination.

    Returns ``(cos_z, w)``, each of shape (n_dec, n_nodes), with ``sum(w * f(cos_z))`` equal to the
    fraction-of-time average of ``f`` over a sidereal day (zero weight when never visible).
    """
    lat = np.radians(LHAASO_LATITUDE_DEG)
    dec = np.radians(np.atleast_1d(np.asarray(dec_deg, dtype=float)))[:, None]
    c = (np.cos(np.radians(max_zenith_deg)) - np.sin(lat) * np.sin(dec)) / (np.cos(lat) * np.cos(dec))
    h_max = np.arccos(np.clip(c, -1.0, 1.0))  # 0 when never below max zenith, pi when always
    x, w = np.polynomial.legendre.leggauss(_N_HOUR_ANGLE)
    h = 0.5 * (x + 1.0) * h_max
    cos_z = np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(h)
    # symmetric arc [-h_max, h_max], normalised by the full 2 pi of a day
    return np.clip(cos_z, 0.0, 1.0), (0.5 * w * h_max) * 2.0 / (2.0 * np.pi)


def _reco_probability(spec: dict, energy_tev) -> np.ndarray:
    """P(reconstructed in bin b | E_true), shape (n_bins, n_E); Gaussian in log10(E)."""
    x = np.log10(np.asarray(energy_tev, dtype=float))[None, :]
    s = _sigma_log10(spec, energy_tev)[None, :]
    return ndtr((spec["reco_hi"][:, None] - x) / s) - ndtr((spec["reco_lo"][:, None] - x) / s)


def bin_exposure_cm2_s(
    instrument: str, energy_tev, dec_deg, livetime_days: float = 365.0, max_zenith_deg: float = 50.0
) -> np.ndarray:
    """Exposure (cm^2 s) into each analysis bin for a point source of true energy ``energy_tev``.

    Parameters
    ----------
    instrument : {"WCDA", "KM2A"}
    energy_tev : array_like, shape (n_E,)
        True photon energies (TeV).
    dec_deg : float or array_like, shape (n_dec,)
        Source declination(s) (deg).
    livetime_days : float
        Detector livetime (days of 86400 s), spread uniformly over sidereal time.
    max_zenith_deg : float
        Events above this zenith angle (deg) are discarded.

    Returns
    -------
    ndarray, shape (n_bins, n_E) for scalar ``dec_deg``, else (n_dec, n_bins, n_E)
        ``livetime * <A(E, z(h))>_h * P(bin | E)`` in cm^2 s; multiplying by a differential flux
        (cm^-2 s^-1 TeV^-1) and integrating over E (TeV) gives expected counts.
    """
    spec = _spec(instrument)
    e = np.atleast_1d(np.asarray(energy_tev, dtype=float))
    cos_z, w = _hour_angle_nodes(dec_deg, max_zenith_deg)
    area = cos_z[..., None] * _area_vertical_m2(spec, e[None, None, :] * cos_z[..., None] ** 2)
    mean_area_cm2 = 1e4 * np.sum(w[..., None] * area, axis=1)  # (n_dec, n_E)
    out = livetime_days * _SECONDS_PER_DAY * mean_area_cm2[:, None, :] * _reco_probability(spec, e)[None]
    return out[0] if np.ndim(dec_deg) == 0 else out


def _psf(spec: dict) -> tuple[GaussianMixturePSF, np.ndarray]:
    """Two-Gaussian PSF per bin, scaled so its 68% containment matches the tabulated R68."""
    lo, hi = spec["reco_lo"], spec["nominal_hi"]
    r68 = np.interp(0.5 * (lo + hi), *spec["psf68"])  # at the bin's log-centre energy
    # 68% radius of the mixture with unit core width, by bisection on the analytic containment
    a, b = 0.5, 5.0
    for _ in range(60):
        m = 0.5 * (a + b)
        frac = (1 - _TAIL_WEIGHT) * (1 - np.exp(-0.5 * m * m)) + _TAIL_WEIGHT * (
            1 - np.exp(-0.5 * (m / _TAIL_RATIO) ** 2)
        )
        a, b = (m, b) if frac < 0.68 else (a, m)
    core = r68 / (0.5 * (a + b))
    weights = np.tile([1 - _TAIL_WEIGHT, _TAIL_WEIGHT], (len(r68), 1))
    return GaussianMixturePSF(weights, np.stack([core, _TAIL_RATIO * core], axis=1)), r68


def _response(instrument, livetime_days, dec_nodes_deg, max_zenith_deg, energy_edges_tev) -> Response:
    spec = _spec(instrument)
    dec = np.arange(-20.0, 80.1, 2.5) if dec_nodes_deg is None else np.atleast_1d(dec_nodes_deg)
    edges = default_energy_edges_tev() if energy_edges_tev is None else np.asarray(energy_edges_tev)
    nodes, weights = log_simpson_nodes(edges)
    expo = bin_exposure_cm2_s(instrument, nodes, np.asarray(dec, dtype=float), livetime_days, max_zenith_deg)
    psf, r68 = _psf(spec)
    return Response(
        bin_names=spec["bin_names"],
        energy_true_tev=nodes,
        dec_nodes_deg=np.asarray(dec, dtype=float),
        counts_matrix=expo * weights[None, None, :],
        psf=psf,
        energy_reco_edges_tev=np.stack([10.0 ** spec["reco_lo"], 10.0 ** spec["nominal_hi"]], axis=1),
        meta=dict(
            instrument=f"LHAASO-{spec['name']} (parametric approximation)",
            site_latitude_deg=LHAASO_LATITUDE_DEG,
            livetime_days=float(livetime_days),
            max_zenith_deg=float(max_zenith_deg),
            exposure_model="A(E,z) = cos(z) * A0(E cos(z)^2), hour-angle average over z < max_zenith",
            psf68_deg=tuple(float(r) for r in r68),
            energy_reco_edges_note=(
                "approximate true-energy range of each nHit bin (last bin open-ended in the model)"
                if spec["name"] == "WCDA"
                else "reconstructed-energy bin edges"
            ),
            references=(
                "Aharonian et al. 2021, Chinese Phys. C 45, 085002 (WCDA performance, Crab)",
                "Aharonian et al. 2021, Chinese Phys. C 45, 025002 (KM2A half array, Crab)",
                "Cao et al. 2024, Chinese Phys. C, doi:10.1088/1674-1137/ad2e82 (KM2A full array)",
                "Cao et al. 2024, ApJS 271, 25 (1LHAASO catalogue)",
                "Cao et al. 2019, arXiv:1905.02773 (LHAASO science book)",
            ),
        ),
    )


def wcda_response(
    livetime_days: float = 365.0, dec_nodes_deg=None, max_zenith_deg: float = 50.0, energy_edges_tev=None
) -> Response:
    """Parametric LHAASO-WCDA response: six nHit bins, ~0.3-30 TeV.

    Parameters
    ----------
    livetime_days : float
        Livetime (days of 86400 s), uniform in sidereal time.
    dec_nodes_deg : array_like, optional
        Declination nodes (deg, increasing); default ``np.arange(-20, 80.1, 2.5)``.
    max_zenith_deg : float
        Zenith-angle cut (deg); 50 deg as in 1LHAASO.
    energy_edges_tev : array_like, optional
        True-energy edges (TeV) for the log-Simpson nodes; default :func:`default_energy_edges_tev`.

    Returns
    -------
    Response
        ``counts_matrix[d, b, k]`` in counts per (cm^-2 s^-1 TeV^-1), Simpson weight (TeV) included.
    """
    return _response("WCDA", livetime_days, dec_nodes_deg, max_zenith_deg, energy_edges_tev)


def km2a_response(
    livetime_days: float = 365.0, dec_nodes_deg=None, max_zenith_deg: float = 50.0, energy_edges_tev=None
) -> Response:
    """Parametric LHAASO-KM2A (full array) response: nine log10(E_reco) bins, 25 TeV - 1.6 PeV.

    Parameters and return value as in :func:`wcda_response`; ``energy_reco_edges_tev`` holds the
    reconstructed-energy edges (TeV) of each bin.
    """
    return _response("KM2A", livetime_days, dec_nodes_deg, max_zenith_deg, energy_edges_tev)


def background_counts_per_sr(
    instrument: str, dec_deg, livetime_days: float = 365.0, max_zenith_deg: float = 50.0
) -> np.ndarray:
    """Expected residual cosmic-ray counts per steradian of sky in each analysis bin.

    The rate at zenith is ``survival(E_b) * A_cr * [I(>k E_lo) - I(>k E_hi)]`` with the all-particle
    integral flux ``I(>E) = 0.18 (E/TeV)^-1.7 m^-2 s^-1 sr^-1`` (approximate, differential index
    ~2.7 below the knee, [PDG]), ``k`` the CR-to-photon energy ratio giving the same reconstructed
    energy / nHit, ``A_cr`` the array area and ``survival`` the g/h-cut survival fraction (see the
    instrument parameters). It is weighted by ``cos(z)`` and hour-angle averaged like the signal.
    Order-of-magnitude only.

    Parameters
    ----------
    instrument : {"WCDA", "KM2A"}
    dec_deg : float or array_like
        Declination(s) (deg).
    livetime_days : float
        Livetime (days of 86400 s).
    max_zenith_deg : float
        Zenith-angle cut (deg).

    Returns
    -------
    ndarray, shape (n_bins,) for scalar ``dec_deg``, else (n_dec, n_bins)
        Counts per sr (multiply by a pixel solid angle in sr to get counts per pixel).
    """
    rate = background_rate_per_s_sr(instrument, max_zenith_deg)  # s^-1 sr^-1 at zenith
    cos_z, w = _hour_angle_nodes(dec_deg, max_zenith_deg)
    out = livetime_days * _SECONDS_PER_DAY * np.sum(w * cos_z, axis=1)[:, None] * rate[None, :]
    return out[0] if np.ndim(dec_deg) == 0 else out


def background_rate_per_s_sr(instrument: str, max_zenith_deg: float = 50.0) -> np.ndarray:
    """Residual cosmic-ray rate per steradian of the sky at the zenith (s^-1 sr^-1), per bin.

    The same model as :func:`background_counts_per_sr` before its hour-angle average: at zenith
    angle ``z`` the rate per sr is this times ``cos z`` (projected area); the all-sky rate of a bin
    is this times ``pi sin^2(max_zenith)``.
    """
    spec = _spec(instrument)
    e_lo, e_hi = 10.0 ** spec["reco_lo"], 10.0 ** spec["reco_hi"]
    e_mid = np.sqrt(e_lo * 10.0 ** spec["nominal_hi"])
    e1, s1, e2, s2, s_min, s_max = spec["survival"]
    survival = np.clip(s1 * (e_mid / e1) ** (np.log(s2 / s1) / np.log(e2 / e1)), s_min, s_max)
    k = spec["cr_energy_factor"]
    flux_sr = 0.18 * ((k * e_lo) ** -1.7 - (k * e_hi) ** -1.7)  # m^-2 s^-1 sr^-1
    return survival * spec["cr_area_m2"] * flux_sr


def source_rate_per_s(instrument: str, dnde, cos_zenith, energy_edges_tev=None) -> np.ndarray:
    """Instantaneous rate (s^-1) of a point source into each analysis bin at zenith ``arccos(cos_zenith)``.

    ``dnde`` is a callable: differential flux (cm^-2 s^-1 TeV^-1) of true energy (TeV). The
    effective area is the exposure model's ``cos(z) A0(E cos^2 z)``, so that averaging this rate over
    hour angle reproduces :func:`bin_exposure_cm2_s` (and hence the response used in fits).

    Returns
    -------
    ndarray, shape (n_z, n_bins)
    """
    spec = _spec(instrument)
    edges = default_energy_edges_tev() if energy_edges_tev is None else np.asarray(energy_edges_tev)
    nodes, weights = log_simpson_nodes(edges)
    cz = np.clip(np.atleast_1d(np.asarray(cos_zenith, dtype=float)), 0.0, 1.0)[:, None]
    area_cm2 = 1e4 * cz * _area_vertical_m2(spec, nodes[None, :] * cz**2)  # (n_z, n_E)
    per_e = area_cm2 * (weights * np.asarray(dnde(nodes), dtype=float))[None, :]
    return per_e @ _reco_probability(spec, nodes).T

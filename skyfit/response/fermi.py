"""Fermi-LAT inputs of a response: the PSF table of ``gtpsf`` and the exposure cube of ``gtexpcube2``.

A space telescope's response is not a function of declination: its exposure is tabulated per sky pixel and
true energy, and its PSF (a King-like profile, cuspier than a Gaussian) per true energy. This module reads
both from the Fermi Science Tools' files and turns the PSF table into what skyfit's likelihood uses:

* :func:`read_gtpsf` → :class:`PSFTable`: ``Energy`` (MeV), ``Exposure`` (cm2 s) and ``Psf`` (sr-1) per
  true energy against ``Theta`` (deg). gtpsf writes no units; these are its documented ones.
* :func:`read_exposure_cube` → :class:`ExposureCube`: cm2 s per true-energy plane (``ENERGIES``, MeV) and
  sky pixel (a celestial WCS in Galactic or equatorial coordinates).
* :func:`bin_psf` → :class:`~skyfit.response.TabulatedPSF`: the profile averaged over each reconstructed-
  energy bin, weighted by exposure x E^-index over the bin (energy dispersion taken as diagonal: above
  10 GeV the LAT's 68 % energy resolution, 5-15 %, is well below the bins' width).
* :func:`fermi_response`: a :class:`~skyfit.response.Response` on a sky grid (exposure per position and true
  energy, diagonal dispersion) with that PSF;
* :func:`fermi_psf`: that table fitted by a mixture of ``n_components`` Gaussians (four by default: their
  containment curve matches the table to better than 1 % at every radius in every bin of the 3FHL
  Galactic-centre data; three leave up to 1.8 %); the largest containment error per bin is returned.

Every array is checked: a PSF with negative, NaN or all-zero values, an exposure that is negative or not
finite, energies that do not increase, raise :class:`FermiFileError` naming the file and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._dl3_irf import _normalise_profiles
from ._types import GaussianMixturePSF, Response, SkyGrid, TabulatedPSF, log_simpson_bin_weights, log_simpson_nodes

__all__ = [
    "FERMI_PSF_COMPONENTS",
    "FermiFileError",
    "PSFTable",
    "ExposureCube",
    "read_gtpsf",
    "grid_response",
    "interp_planes_loglog",
    "read_exposure_cube",
    "bin_psf",
    "fermi_psf",
    "fermi_response",
]

FERMI_PSF_COMPONENTS = 4
MEV_PER_TEV = 1e6
_SUB_BINS = 8  # log-Simpson sub-bins per reconstructed-energy bin when averaging the PSF over it


class FermiFileError(ValueError):
    """A Fermi-LAT file (gtpsf table, exposure cube, event list, map cube) is missing, of another layout, or
    holds values no response can have."""


def _open(path, what: str):
    from astropy.io import fits

    path = Path(path)
    if not path.is_file():
        raise FermiFileError(f"{path}: no such file; pass the {what}")
    try:
        hdul = fits.open(path, memmap=False)
        _ = [h.name for h in hdul]
    except (OSError, ValueError, TypeError, EOFError) as exc:
        raise FermiFileError(
            f"{path} is not a readable FITS file ({type(exc).__name__}: {exc}); pass the {what} "
            "(download it again if it is truncated)"
        ) from exc
    return path, hdul


def _increasing(values, path: Path, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or len(values) < 2 or not np.all(np.isfinite(values)) or np.any(np.diff(values) <= 0):
        raise FermiFileError(f"{path}: {what} must be finite and strictly increasing, got {values[:6]} ...")
    return values


# ---- the PSF table ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PSFTable:
    """A radial PSF per true energy (gtpsf's table), in skyfit's units.

    Parameters
    ----------
    energy_tev : ndarray, shape (n_e,)
        True energies (TeV), increasing.
    rad_deg : ndarray, shape (n_rad,)
        Angular distances (deg) from the source, increasing from 0.
    density_sr : ndarray, shape (n_e, n_rad)
        PSF density (sr-1): the probability per solid angle of an event at that distance.
    exposure_cm2s : ndarray, shape (n_e,)
        Exposure (cm2 s) at the position the table was made for, per true energy.
    """

    energy_tev: np.ndarray
    rad_deg: np.ndarray
    density_sr: np.ndarray
    exposure_cm2s: np.ndarray
    meta: dict = field(default_factory=dict)

    def density_deg2(self) -> np.ndarray:
        """The density per square degree, shape (n_e, n_rad)."""
        return self.density_sr * np.radians(1.0) ** 2

    def normalisation(self) -> np.ndarray:
        """Integral of the density over the tabulated radii (2 pi sin(theta) d theta), per energy."""
        theta = np.radians(self.rad_deg)
        integrand = 2 * np.pi * np.sin(theta) * self.density_sr
        return np.sum(0.5 * (integrand[:, 1:] + integrand[:, :-1]) * np.diff(theta), axis=1)

    def profile_at(self, energy_tev) -> np.ndarray:
        """Density (sr-1) at true energies ``energy_tev`` (n,) by linear interpolation in log E, shape
        (n, n_rad); outside the table's energies the first or last profile."""
        e = np.log(np.asarray(energy_tev, dtype=float))
        x = np.log(self.energy_tev)
        hi = np.clip(np.searchsorted(x, e), 1, len(x) - 1)
        t = np.clip((e - x[hi - 1]) / (x[hi] - x[hi - 1]), 0.0, 1.0)[:, None]
        return (1 - t) * self.density_sr[hi - 1] + t * self.density_sr[hi]


def read_gtpsf(path) -> PSFTable:
    """Read a ``gtpsf`` output file (HDUs ``PSF``: Energy, Exposure, Psf; ``THETA``: Theta).

    gtpsf writes no units: Energy is in MeV, Exposure in cm2 s, Psf in sr-1 and Theta in deg (the Fermi
    Science Tools' conventions). Raises :class:`FermiFileError` on a missing HDU or column, and on a
    table with negative, NaN or all-zero values.
    """
    path, hdul = _open(path, "PSF table written by gtpsf (HDUs PSF and THETA)")
    with hdul:
        names = [h.name for h in hdul]
        if "PSF" not in names or "THETA" not in names:
            raise FermiFileError(f"{path}: HDUs {names}, a gtpsf table has PSF and THETA; make it with gtpsf")
        psf, theta = hdul["PSF"].data, hdul["THETA"].data
        for hdu, cols in (("PSF", ("Energy", "Exposure", "Psf")), ("THETA", ("Theta",))):
            have = hdul[hdu].columns.names
            missing = [c for c in cols if c not in have]
            if missing:
                raise FermiFileError(f"{path}: HDU {hdu} lacks column(s) {missing} (it has {have}); make it with gtpsf")
        energy = _increasing(psf["Energy"], path, "the PSF's energies (HDU PSF, column Energy)") / MEV_PER_TEV
        rad = _increasing(theta["Theta"], path, "the PSF's angles (HDU THETA, column Theta)")
        density = np.asarray(psf["Psf"], dtype=float)
        exposure = np.asarray(psf["Exposure"], dtype=float)
    _check_psf(density, exposure, energy, rad, path)
    return PSFTable(energy, rad, density, exposure, meta={"file": str(path)})


def _check_psf(density, exposure, energy, rad, path) -> None:
    if density.shape != (len(energy), len(rad)):
        raise FermiFileError(f"{path}: Psf has shape {density.shape}, expected (n_energy, n_theta) = "
                             f"({len(energy)}, {len(rad)})")  # fmt: skip
    if rad[0] < 0:
        raise FermiFileError(f"{path}: the PSF's angles start at {rad[0]} deg; they must be >= 0")
    bad = ~np.isfinite(density) | (density < 0)
    if bad.any():
        e, r = np.argwhere(bad)[0]
        raise FermiFileError(
            f"{path}: the PSF table has {int(bad.sum())} negative or NaN value(s) (first at {energy[e] * 1e3:.4g} "
            f"GeV, {rad[r]:.4g} deg: {density[e, r]}); a PSF is a probability density: make the table again "
            "with gtpsf, or mend it before use"
        )
    empty = ~np.any(density > 0, axis=1)
    if empty.any():
        raise FermiFileError(f"{path}: the PSF is zero at every angle at {energy[empty] * 1e3} GeV; make the "
                             "table again with gtpsf (is the position inside the exposure?)")  # fmt: skip
    if not np.all(np.isfinite(exposure)) or np.any(exposure < 0):
        raise FermiFileError(f"{path}: the PSF table's Exposure column has negative or NaN values")


def bin_psf(table: PSFTable, reco_edges_tev, spectral_index: float = 2.5, exposure_cm2s=None) -> TabulatedPSF:
    """The PSF averaged over each reconstructed-energy bin of ``reco_edges_tev``: true energies across the
    bin weighted by exposure x E^-``spectral_index`` (a diagonal energy dispersion), each profile
    normalised to unit integral over its radii. ``exposure_cm2s(E)`` defaults to the table's own
    exposure, interpolated in log-log. Returns a :class:`~skyfit.response.TabulatedPSF` (deg-2)."""
    edges = np.asarray(reco_edges_tev, dtype=float)
    if np.any(edges < table.energy_tev[0] * (1 - 1e-6)) or np.any(edges > table.energy_tev[-1] * (1 + 1e-6)):
        raise FermiFileError(
            f"{table.meta.get('file', 'PSF table')}: bins {edges[0]:.4g}-{edges[-1]:.4g} TeV reach beyond the "
            f"PSF table's energies {table.energy_tev[0]:.4g}-{table.energy_tev[-1]:.4g} TeV; choose bins inside "
            "them, or make the table over a wider range with gtpsf"
        )
    if exposure_cm2s is None:
        positive = table.exposure_cm2s > 0
        if positive.sum() < 2:
            raise FermiFileError(f"{table.meta.get('file', 'PSF table')}: its Exposure column is zero; pass "
                                 "exposure_cm2s")  # fmt: skip
        xe, ye = np.log(table.energy_tev[positive]), np.log(table.exposure_cm2s[positive])

        def exposure_cm2s(e):
            return np.exp(np.interp(np.log(e), xe, ye))

    density = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        nodes, w = log_simpson_nodes(np.geomspace(lo, hi, _SUB_BINS + 1))
        weight = w * exposure_cm2s(nodes) * nodes ** (-spectral_index)
        density.append(weight @ table.profile_at(nodes) / weight.sum())
    # per square degree, normalised over the table's radii in the small-angle measure 2 pi r dr that
    # TabulatedPSF and the mixture fit use (at the table's last radius, 9.9 deg, sin differs by 0.5 %)
    density = _normalise_profiles(table.rad_deg, np.asarray(density) * np.radians(1.0) ** 2)
    return TabulatedPSF(table.rad_deg.copy(), density)


def fermi_psf(table: PSFTable, reco_edges_tev, spectral_index: float = 2.5,
              n_components: int = FERMI_PSF_COMPONENTS, exposure_cm2s=None) -> tuple:  # fmt: skip
    """``(GaussianMixturePSF, TabulatedPSF, max_containment_error)`` per reconstructed-energy bin: the
    bin-averaged table (:func:`bin_psf`) and a mixture of ``n_components`` Gaussians fitted to its
    containment curve; the error is the largest difference of the two curves per bin (a fraction)."""
    from .dl3 import _fit_psf  # fewer Gaussians first (a profile that is one Gaussian makes four degenerate)

    tab = bin_psf(table, reco_edges_tev, spectral_index, exposure_cm2s)
    fits = [_fit_psf(tab.rad_deg, d, n_components) for d in tab.density_deg2]
    psf = GaussianMixturePSF(np.array([f[0] for f in fits]), np.array([f[1] for f in fits]))
    return psf, tab, np.array([f[2] for f in fits])


# ---- the exposure cube ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExposureCube:
    """Exposure (cm2 s) per true energy and sky pixel of a celestial WCS.

    Parameters
    ----------
    energy_tev : ndarray, shape (n_true,)
        True energies (TeV) of the planes, increasing.
    data_cm2s : ndarray, shape (n_true, ny, nx)
        Exposure per plane and pixel.
    wcs : astropy.wcs.WCS
        The celestial WCS of a plane.
    frame : str
        ``"galactic"`` or ``"icrs"``.
    """

    energy_tev: np.ndarray
    data_cm2s: np.ndarray
    wcs: object
    frame: str
    meta: dict = field(default_factory=dict)

    def at(self, lon_deg, lat_deg, energy_tev) -> np.ndarray:
        """Exposure (cm2 s) at sky positions (n,) in the cube's frame and true energies (m,), shape (m, n):
        the pixel holding each position, log-log interpolation between planes. A position outside the cube
        raises :class:`FermiFileError`."""
        x, y = self.wcs.world_to_pixel_values(np.atleast_1d(lon_deg), np.atleast_1d(lat_deg))
        ix, iy = np.round(x).astype(int), np.round(y).astype(int)
        ny, nx = self.data_cm2s.shape[1:]
        outside = (ix < 0) | (ix >= nx) | (iy < 0) | (iy >= ny)
        if outside.any():
            raise FermiFileError(f"{self.meta.get('file', 'exposure cube')}: {int(outside.sum())} position(s) "
                                 f"outside the cube (first: {np.atleast_1d(lon_deg)[outside][0]:.4g}, "
                                 f"{np.atleast_1d(lat_deg)[outside][0]:.4g} deg, {self.frame})")  # fmt: skip
        planes = self.data_cm2s[:, iy, ix]  # (n_true, n)
        e = np.log(np.atleast_1d(np.asarray(energy_tev, dtype=float)))
        x_e = np.log(self.energy_tev)
        if np.any(e < x_e[0] - 1e-9) or np.any(e > x_e[-1] + 1e-9):
            raise FermiFileError(
                f"{self.meta.get('file', 'exposure cube')}: true energies {np.exp(e.min()):.4g}-"
                f"{np.exp(e.max()):.4g} TeV reach beyond the cube's {self.energy_tev[0]:.4g}-"
                f"{self.energy_tev[-1]:.4g} TeV; keep the analysis inside them"
            )
        return interp_planes_loglog(planes, self.energy_tev, np.exp(e))


def interp_planes_loglog(planes, nodes_tev, energy_tev) -> np.ndarray:
    """Planes ``(n_nodes, ...)`` tabulated at energies ``nodes_tev`` (increasing), at ``energy_tev`` (m,):
    linear in log(value) against log(E), clamped at the first and last node; 0 where either neighbouring
    plane is 0. Shape ``(m, ...)``."""
    planes = np.asarray(planes, dtype=float)
    x = np.log(np.asarray(nodes_tev, dtype=float))
    e = np.log(np.atleast_1d(np.asarray(energy_tev, dtype=float)))
    hi = np.clip(np.searchsorted(x, e), 1, len(x) - 1)
    t = np.clip((e - x[hi - 1]) / (x[hi] - x[hi - 1]), 0.0, 1.0).reshape(-1, *([1] * (planes.ndim - 1)))
    with np.errstate(divide="ignore"):
        lo_v, hi_v = np.log(planes[hi - 1]), np.log(planes[hi])
    out = np.exp((1 - t) * lo_v + t * hi_v)
    return np.where((planes[hi - 1] > 0) & (planes[hi] > 0), out, 0.0)


def celestial_wcs(header):
    """The celestial WCS of an image header. astropy's notes on fixing date keywords (``datfix``: the
    Science Tools write MJDREF, not DATEREF) concern the time axis, not the sky, and are not shown."""
    import warnings

    from astropy.wcs import WCS, FITSFixedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(header).celestial


def celestial_frame(wcs, path) -> str:
    """``"galactic"`` or ``"icrs"`` from a WCS's axis types; anything else is refused with the fix."""
    types = [str(t).upper() for t in list(wcs.wcs.ctype)[:2]]
    if types[0].startswith("GLON") and types[1].startswith("GLAT"):
        return "galactic"
    if types[0].startswith("RA") and types[1].startswith("DEC"):
        return "icrs"
    raise FermiFileError(
        f"{path}: sky axes {types} are neither Galactic (GLON/GLAT) nor equatorial (RA/DEC); skyfit cannot "
        "tell where the map lies: write the map with CTYPE1/2 GLON-xxx/GLAT-xxx or RA---xxx/DEC--xxx"
    )


def read_exposure_cube(path) -> ExposureCube:
    """Read a ``gtexpcube2`` exposure cube: primary image (n_true, ny, nx) in cm2 s, HDU ``ENERGIES``
    (column ``Energy``, MeV: gtexpcube2 writes no unit). Raises :class:`FermiFileError` on negative or
    non-finite exposure, an unknown frame or a missing energy table."""
    path, hdul = _open(path, "exposure cube written by gtexpcube2 (HDU ENERGIES)")
    with hdul:
        if "ENERGIES" not in [h.name for h in hdul] or "Energy" not in hdul["ENERGIES"].columns.names:
            raise FermiFileError(f"{path}: no ENERGIES table with an Energy column; pass the exposure cube "
                                 "written by gtexpcube2")  # fmt: skip
        energy = _increasing(hdul["ENERGIES"].data["Energy"], path, "the exposure's energies") / MEV_PER_TEV
        data = np.asarray(hdul[0].data, dtype=float)
        wcs = celestial_wcs(hdul[0].header)
    if data.ndim != 3 or data.shape[0] != len(energy):
        raise FermiFileError(f"{path}: image of shape {data.shape}, expected ({len(energy)}, ny, nx): one plane "
                             "per row of ENERGIES")  # fmt: skip
    bad = ~np.isfinite(data) | (data < 0)
    if bad.any():
        raise FermiFileError(f"{path}: {int(bad.sum())} negative or non-finite exposure value(s); make the cube "
                             "again with gtexpcube2")  # fmt: skip
    return ExposureCube(energy, data, wcs, celestial_frame(wcs, path), meta={"file": str(path)})


# ---- the response ----------------------------------------------------------------------------------------


def fermi_response(exposure: ExposureCube, psf_table: PSFTable, reco_edges_tev, lon_range, lat_range,
                   grid_step_deg: float = 1.0, spectral_index: float = 2.5,
                   n_components: int = FERMI_PSF_COMPONENTS, name: str = "FERMI") -> Response:  # fmt: skip
    """A :class:`~skyfit.response.Response` of the LAT over a box of the exposure cube's frame.

    The exposure is taken at the nodes of a ``grid_step_deg`` grid over ``lon_range`` x ``lat_range``
    (bilinear in between; the LAT's exposure varies by a few per cent over 20 deg), at the log-Simpson
    true-energy nodes of ``reco_edges_tev`` (log-log between the cube's planes); the dispersion is
    diagonal (each reconstructed bin takes the true energies inside it: above 10 GeV the LAT's energy
    resolution, 5-15 %, is well below the bins' width). The PSF is :func:`fermi_psf`'s mixture; its
    largest containment error per bin is in ``meta["psf_containment_error"]``.
    """
    lon = _grid_axis(lon_range, grid_step_deg, "lon_range")
    lat = _grid_axis(lat_range, grid_step_deg, "lat_range")
    meta = {"exposure_file": exposure.meta.get("file"), "psf_file": psf_table.meta.get("file")}
    return grid_response(exposure.at, SkyGrid(exposure.frame, lon, lat), psf_table, reco_edges_tev,
                         spectral_index=spectral_index, n_components=n_components, name=name, meta=meta)  # fmt: skip


def grid_response(exposure_at, grid: SkyGrid, psf_table: PSFTable, reco_edges_tev, true_edges_tev=None,
                  edisp=None, spectral_index: float = 2.5, n_components: int = FERMI_PSF_COMPONENTS,
                  name: str = "FERMI", meta: dict | None = None, psf_blur_deg: float = 0.0) -> Response:  # fmt: skip
    """A :class:`~skyfit.response.Response` tabulated on ``grid`` from an exposure and a radial PSF table.

    ``exposure_at(lon, lat, energy_tev)``: the exposure (cm2 s) at grid positions (n,) in the grid's frame
    and true energies (m,), shape (m, n) (e.g. :meth:`ExposureCube.at`). Without ``edisp`` the dispersion is
    diagonal: each reconstructed bin integrates the true energies inside it (log-Simpson nodes of
    ``reco_edges_tev``). With ``edisp`` (n_true, n_reco), the probability of reconstructed bin ``b`` for
    true bin ``k`` of ``true_edges_tev`` (gammapy's ``EDispKernel`` layout), the exposure is that at
    each true bin's log-centre, constant across the bin (gammapy's convention), and the flux is
    integrated over each true bin by log-Simpson nodes. ``psf_blur_deg``: a spread of the events' positions
    (e.g. counts moved to pixel centres) combined in quadrature with each Gaussian of the PSF.
    """
    edges = np.asarray(reco_edges_tev, dtype=float)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise FermiFileError(f"reco_edges_tev must increase, got {edges}")
    lon_n, lat_n = np.meshgrid(grid.lon_deg, grid.lat_deg)  # node i_lat * n_lon + i_lon
    if edisp is None:
        nodes, _ = log_simpson_nodes(edges)
        exp = np.asarray(exposure_at(lon_n.ravel(), lat_n.ravel(), nodes), dtype=float)  # (n_true, n_nodes)
        matrix = exp.T[:, None, :] * log_simpson_bin_weights(edges)[None, :, :]  # (n_nodes, n_bins, n_true)
        dispersion = "diagonal"
    else:
        true_edges = np.asarray(true_edges_tev, dtype=float)
        edisp = np.asarray(edisp, dtype=float)
        if edisp.shape != (len(true_edges) - 1, len(edges) - 1):
            raise FermiFileError(f"edisp has shape {edisp.shape}; expected (n_true, n_reco) = "
                                 f"({len(true_edges) - 1}, {len(edges) - 1})")  # fmt: skip
        nodes, _ = log_simpson_nodes(true_edges)
        centres = np.sqrt(true_edges[1:] * true_edges[:-1])
        planes = np.asarray(exposure_at(lon_n.ravel(), lat_n.ravel(), centres), dtype=float)  # (n_true_bins, n_nodes)
        matrix = np.einsum("kg,kb,kt->gbt", planes, edisp, log_simpson_bin_weights(true_edges))
        dispersion = "kernel (n_true, n_reco) given"
    if not np.all(np.isfinite(matrix)) or np.any(matrix < 0):
        raise FermiFileError(f"{name}: the exposure is NaN or negative at some response node; give an exposure that "
                             "covers the region")  # fmt: skip
    psf, table, err = fermi_psf(psf_table, edges, spectral_index, n_components)
    if psf_blur_deg:
        psf = GaussianMixturePSF(psf.weights, np.hypot(psf.sigma_deg, psf_blur_deg))
    names = tuple(f"E{lo * 1e3:.1f}-{hi * 1e3:.1f}GeV" for lo, hi in zip(edges[:-1], edges[1:], strict=True))
    meta = {
        "instrument": name,
        **(meta or {}),
        "psf_blur_deg": float(psf_blur_deg),
        "psf_spectral_index": float(spectral_index),
        "psf_containment_error": [float(e) for e in err],
        "energy_dispersion": dispersion,
        "grid_step_deg": float(np.diff(grid.lon_deg).mean()) if len(grid.lon_deg) > 1 else 0.0,
    }
    return Response(names, nodes, lat_n.ravel(), matrix, psf, np.stack([edges[:-1], edges[1:]], axis=1), table, meta,
                    sky_grid=grid)  # fmt: skip


def _grid_axis(bounds, step: float, what: str) -> np.ndarray:
    lo, hi = (float(v) for v in bounds)
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo and step > 0):
        raise FermiFileError(f"{what} {bounds} must be (low, high) with low < high, and the grid step positive")
    n = max(int(np.ceil((hi - lo) / step)), 1)
    return np.linspace(lo, hi, n + 1)

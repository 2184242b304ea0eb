"""Instrument-response containers: what the likelihood needs, as plain arrays.

A response is precomputed per analysis bin (an fHit/nHit bin, a reconstructed-energy band, or both):

* ``counts_matrix[dec, bin, k]``: expected counts in analysis bin ``bin`` per unit differential
  flux (cm^-2 s^-1 TeV^-1) at true-energy node ``k``, for a source at declination node ``dec``.
  It already holds exposure (effective area x time, transits included), energy dispersion into the
  bin, and the quadrature weight of node ``k`` in TeV, so that
  ``expected_counts[bin] = counts_matrix[dec, bin, :] @ dnde(energy_true_tev)``.
  A space telescope's exposure is not a function of declination: with ``sky_grid`` (:class:`SkyGrid`),
  the first axis runs over the nodes of a (lon, lat) grid in a frame instead (latitude-major), and the
  matrix between them is interpolated bilinearly (:meth:`Response.node_weights`).
* ``psf``: a Gaussian mixture per bin (weights and widths), which convolves analytically with point
  and Gaussian sources; ``psf_table`` optionally keeps the tabulated radial profile it was fitted to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from ._files import (
    DatasetFileError,
    _hdu,
    _json_hdu,
    _open,
    _primary,
    _provenance,
    _read_json_hdu,
    _reading,
)

__all__ = ["GaussianMixturePSF", "TabulatedPSF", "Response", "SkyGrid", "log_simpson_nodes"]


def _interp_weights(x, nodes) -> np.ndarray:
    """Linear-interpolation weights (n, n_nodes) of ``x`` (n,) between increasing ``nodes``, clamped."""
    nodes = np.asarray(nodes, dtype=float)
    if nodes.size == 1:
        return np.ones((np.size(x), 1))
    eye = np.eye(nodes.size)
    return np.stack([np.interp(np.atleast_1d(x), nodes, eye[i]) for i in range(nodes.size)], axis=1)


@dataclass(frozen=True)
class SkyGrid:
    """The nodes at which a response is tabulated over the sky: longitudes x latitudes (deg, increasing)
    in ``frame`` (``"galactic"`` or ``"icrs"``); node ``i_lat * n_lon + i_lon``. Longitudes may run through
    0 (e.g. -10 ... 10); positions are wrapped to within 180 deg of the grid's middle."""

    frame: str
    lon_deg: np.ndarray
    lat_deg: np.ndarray

    def __post_init__(self):
        if self.frame not in ("galactic", "icrs"):
            raise ValueError(f"SkyGrid frame must be 'galactic' or 'icrs', got {self.frame!r}")
        for name in ("lon_deg", "lat_deg"):
            v = np.atleast_1d(np.asarray(getattr(self, name), dtype=float))
            if not np.all(np.isfinite(v)) or np.any(np.diff(v) <= 0):
                raise ValueError(f"SkyGrid {name} must be finite and strictly increasing")
            object.__setattr__(self, name, v)

    @property
    def n_nodes(self) -> int:
        return len(self.lon_deg) * len(self.lat_deg)

    def lonlat(self, ra_deg, dec_deg) -> tuple[np.ndarray, np.ndarray]:
        """(lon, lat) in the grid's frame of ICRS positions, lon wrapped to the grid's middle +- 180 deg."""
        ra, dec = np.atleast_1d(np.asarray(ra_deg, float)), np.atleast_1d(np.asarray(dec_deg, float))
        if self.frame == "galactic":
            from astropy.coordinates import SkyCoord

            g = SkyCoord(ra, dec, unit="deg", frame="icrs").galactic
            lon, lat = g.l.deg, g.b.deg
        else:
            lon, lat = ra, dec
        mid = 0.5 * (self.lon_deg[0] + self.lon_deg[-1])
        return (lon - mid + 180.0) % 360.0 - 180.0 + mid, lat

    def weights(self, ra_deg, dec_deg) -> np.ndarray:
        """Bilinear weights (n, n_nodes) of ICRS positions over the nodes (clamped at the grid's edge)."""
        lon, lat = self.lonlat(ra_deg, dec_deg)
        wl, wb = _interp_weights(lon, self.lon_deg), _interp_weights(lat, self.lat_deg)
        return (wb[:, :, None] * wl[:, None, :]).reshape(len(lon), -1)


@dataclass(frozen=True)
class GaussianMixturePSF:
    """PSF as a normalised mixture of 2D Gaussians in angle, per analysis bin.

    Parameters
    ----------
    weights : ndarray, shape (n_bins, n_components)
        Fraction of events in each component; each row sums to 1.
    sigma_deg : ndarray, shape (n_bins, n_components)
        Gaussian width (deg) of each component.
    """

    weights: np.ndarray
    sigma_deg: np.ndarray

    def __post_init__(self):
        w = np.asarray(self.weights, dtype=float)
        s = np.asarray(self.sigma_deg, dtype=float)
        if w.shape != s.shape or w.ndim != 2:
            raise ValueError(f"PSF weights {w.shape} and sigma_deg {s.shape} must both be (n_bins, n_components)")
        if np.any(s <= 0) or not np.all(np.isfinite(s)):
            raise ValueError("PSF sigma_deg must be finite and positive")
        if not np.allclose(w.sum(axis=1), 1.0, atol=1e-6):
            raise ValueError("PSF mixture weights must sum to 1 in every analysis bin")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "sigma_deg", s)

    @property
    def n_bins(self) -> int:
        return self.weights.shape[0]

    def containment(self, rad_deg, bin_index: int) -> np.ndarray:
        """Fraction of a point source's events within ``rad_deg`` (small-angle formula)."""
        r = np.asarray(rad_deg, dtype=float)[..., None]
        w, s = self.weights[bin_index], self.sigma_deg[bin_index]
        return np.sum(w * (1.0 - np.exp(-0.5 * (r / s) ** 2)), axis=-1)

    def containment_radius(self, fraction: float, bin_index: int) -> float:
        """Radius (deg) containing ``fraction`` of a point source's events (root of the containment curve;
        a very wide component of negligible weight does not coarsen it)."""
        from scipy.optimize import brentq

        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"containment fraction must be in [0, 1), got {fraction}")
        if fraction == 0.0:
            return 0.0
        hi = float(self.sigma_deg[bin_index].min())
        while self.containment(hi, bin_index) < fraction:
            hi *= 2.0
        return float(brentq(lambda r: self.containment(r, bin_index) - fraction, 0.0, hi, xtol=1e-12, rtol=1e-12))

    def select(self, bins) -> GaussianMixturePSF:
        return GaussianMixturePSF(self.weights[bins], self.sigma_deg[bins])


@dataclass(frozen=True)
class TabulatedPSF:
    """Tabulated radial PSF profile per analysis bin.

    Parameters
    ----------
    rad_deg : ndarray, shape (n_rad,)
        Radii (deg) at which the profile is given.
    density_deg2 : ndarray, shape (n_bins, n_rad)
        PSF density (deg^-2), normalised so that its integral over the plane is 1.
    """

    rad_deg: np.ndarray
    density_deg2: np.ndarray

    def containment(self, rad_deg, bin_index: int) -> np.ndarray:
        r = self.rad_deg
        dens = self.density_deg2[bin_index]
        integrand = 2 * np.pi * r * dens
        cumulative = np.concatenate([[0.0], np.cumsum(0.5 * (integrand[1:] + integrand[:-1]) * np.diff(r))])
        return np.interp(rad_deg, r, cumulative)

    def select(self, bins) -> TabulatedPSF:
        return TabulatedPSF(self.rad_deg, self.density_deg2[bins])


@dataclass(frozen=True)
class Response:
    """Per-bin instrument response of one detector for one region of the sky.

    Parameters
    ----------
    bin_names : tuple of str
        One name per analysis bin (e.g. ``"fHit5_E1.00-1.78"``).
    energy_true_tev : ndarray, shape (n_true,)
        True-energy nodes (TeV) at which spectra are evaluated.
    dec_nodes_deg : ndarray, shape (n_dec,)
        Declinations (deg) at which ``counts_matrix`` is tabulated; linear interpolation between. With
        ``sky_grid``: the latitude of each grid node in the grid's frame (n_nodes,), for reference.
    counts_matrix : ndarray, shape (n_dec, n_bins, n_true)
        Expected counts per unit differential flux (cm^-2 s^-1 TeV^-1); see the module docstring.
    psf : GaussianMixturePSF
        Per-bin PSF used by the likelihood.
    energy_reco_edges_tev : ndarray, shape (n_bins, 2), optional
        Reconstructed-energy range of each bin, where the bins are energy bands (for spectra).
    psf_table : TabulatedPSF, optional
        The tabulated profile the mixture was fitted to, for checks and plots.
    sky_grid : SkyGrid, optional
        Tabulated over a (lon, lat) grid instead of declinations (exposure per sky position: space
        telescopes); ``counts_matrix``'s first axis runs over its nodes.
    meta : dict
        Provenance (instrument, files, citations).
    """

    bin_names: tuple
    energy_true_tev: np.ndarray
    dec_nodes_deg: np.ndarray
    counts_matrix: np.ndarray
    psf: GaussianMixturePSF
    energy_reco_edges_tev: np.ndarray | None = None
    psf_table: TabulatedPSF | None = None
    meta: dict = field(default_factory=dict)
    sky_grid: SkyGrid | None = None

    def __post_init__(self):
        cm = np.asarray(self.counts_matrix, dtype=float)
        n_dec, n_true = len(self.dec_nodes_deg), len(self.energy_true_tev)
        if cm.shape != (n_dec, len(self.bin_names), n_true):
            raise ValueError(
                f"counts_matrix has shape {cm.shape}, expected (n_dec, n_bins, n_true) = "
                f"({n_dec}, {len(self.bin_names)}, {n_true})"
            )
        if not np.all(np.isfinite(cm)) or np.any(cm < 0):
            raise ValueError("counts_matrix must be finite and non-negative")
        if self.sky_grid is not None:
            if n_dec != self.sky_grid.n_nodes:
                raise ValueError(f"counts_matrix has {n_dec} nodes, the sky grid {self.sky_grid.n_nodes}")
        elif n_dec > 1 and np.any(np.diff(self.dec_nodes_deg) <= 0):
            raise ValueError("dec_nodes_deg must be strictly increasing")
        if self.psf.n_bins != len(self.bin_names):
            raise ValueError(f"PSF has {self.psf.n_bins} bins, response has {len(self.bin_names)}")
        object.__setattr__(self, "counts_matrix", cm)
        object.__setattr__(self, "bin_names", tuple(self.bin_names))

    @property
    def n_bins(self) -> int:
        return len(self.bin_names)

    def node_weights(self, ra_deg, dec_deg) -> np.ndarray:
        """Interpolation weights (n, n_nodes) of ICRS positions over the nodes ``counts_matrix`` is
        tabulated at: linear in declination, or bilinear on the sky grid; clamped at the edges."""
        if self.sky_grid is not None:
            return self.sky_grid.weights(ra_deg, dec_deg)
        return _interp_weights(dec_deg, self.dec_nodes_deg)

    def counts_matrix_toward(self, ra_deg: float, dec_deg: float) -> np.ndarray:
        """The (n_bins, n_true) matrix toward one sky position (ICRS, deg)."""
        if self.sky_grid is None:
            return self.counts_matrix_at(dec_deg)
        return np.einsum("d,dbt->bt", self.node_weights(ra_deg, dec_deg)[0], self.counts_matrix)

    def counts_matrix_at(self, dec_deg: float) -> np.ndarray:
        """The (n_bins, n_true) matrix at one declination (linear interpolation, clamped); a response on a
        sky grid needs the position: :meth:`counts_matrix_toward`."""
        if self.sky_grid is not None:
            raise ValueError("this response is tabulated over a sky grid: use counts_matrix_toward(ra, dec)")
        if len(self.dec_nodes_deg) == 1:
            return self.counts_matrix[0]
        d = np.clip(dec_deg, self.dec_nodes_deg[0], self.dec_nodes_deg[-1])
        i = int(np.clip(np.searchsorted(self.dec_nodes_deg, d) - 1, 0, len(self.dec_nodes_deg) - 2))
        t = (d - self.dec_nodes_deg[i]) / (self.dec_nodes_deg[i + 1] - self.dec_nodes_deg[i])
        return (1 - t) * self.counts_matrix[i] + t * self.counts_matrix[i + 1]

    def write(self, path, overwrite: bool = False, how: str | None = None):
        """Write this response alone to a FITS file (see :mod:`skyfit.io`)."""
        return write_response(self, path, overwrite=overwrite, how=how)

    @classmethod
    def read(cls, path) -> Response:
        """Read the response of a response or dataset file."""
        return read_response(path)

    def select(self, bins) -> Response:
        """A response restricted to the analysis bins ``bins`` (indices or boolean mask)."""
        idx = np.arange(self.n_bins)[bins]
        return Response(
            bin_names=tuple(self.bin_names[i] for i in idx),
            energy_true_tev=self.energy_true_tev,
            dec_nodes_deg=self.dec_nodes_deg,
            counts_matrix=self.counts_matrix[:, idx],
            psf=self.psf.select(idx),
            energy_reco_edges_tev=None if self.energy_reco_edges_tev is None else self.energy_reco_edges_tev[idx],
            psf_table=None if self.psf_table is None else self.psf_table.select(idx),
            meta=dict(self.meta),
            sky_grid=self.sky_grid,
        )


def log_simpson_nodes(edges_tev) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (TeV) for Simpson's rule in log(E) over each bin of ``edges_tev``.

    Returns ``(nodes, weights)`` with ``2 n + 1`` nodes (edges and log-centres) such that
    ``sum(weights * f(nodes))`` approximates ``integral f(E) dE`` over the whole range, and per bin
    ``bin_weights[i]`` (shape (n, 2n+1)) can be obtained from :func:`log_simpson_bin_weights`.
    """
    edges = np.asarray(edges_tev, dtype=float)
    centers = np.sqrt(edges[1:] * edges[:-1])
    nodes = np.empty(2 * len(centers) + 1)
    nodes[0::2] = edges
    nodes[1::2] = centers
    return nodes, log_simpson_bin_weights(edges).sum(axis=0)


def log_simpson_bin_weights(edges_tev) -> np.ndarray:
    """Per-bin Simpson weights (TeV), shape (n_bins, 2 n_bins + 1); see :func:`log_simpson_nodes`."""
    edges = np.asarray(edges_tev, dtype=float)
    n = len(edges) - 1
    centers = np.sqrt(edges[1:] * edges[:-1])
    h = np.log(edges[1:] / edges[:-1])
    w = np.zeros((n, 2 * n + 1))
    # integral f dE = integral f E dlnE; Simpson in ln E with the factor E folded into the weight
    w[np.arange(n), 2 * np.arange(n)] = h / 6 * edges[:-1]
    w[np.arange(n), 2 * np.arange(n) + 1] = 4 * h / 6 * centers
    w[np.arange(n), 2 * np.arange(n) + 2] = h / 6 * edges[1:]
    return w


# ---- the response in a skyfit FITS file (layout: ._files) ---------------------------------------------------


def _response_hdus(response: Response) -> list:
    n = response.n_bins
    given = response.energy_reco_edges_tev
    edges = np.full((n, 2), np.nan) if given is None else np.asarray(given, float)
    n_comp = response.psf.weights.shape[1]
    width = max(len(s) for s in response.bin_names)
    matrix = fits.ImageHDU(np.asarray(response.counts_matrix, dtype=np.float64), name="RESP_MATRIX")
    matrix.header["BUNIT"] = "cm2 s TeV"
    matrix.header["COMMENT"] = "expected counts per unit dN/dE (cm-2 s-1 TeV-1) at each true-energy node"
    hdus = [
        matrix,
        fits.BinTableHDU.from_columns(
            [fits.Column("ENERGY_TRUE", "D", unit="TeV", array=response.energy_true_tev)], name="RESP_AXES"
        ),
        fits.BinTableHDU.from_columns(
            [fits.Column("DEC", "D", unit="deg", array=np.asarray(response.dec_nodes_deg, float))], name="RESP_DEC"
        ),
        fits.BinTableHDU.from_columns(
            [
                fits.Column("NAME", f"{width}A", array=np.array(response.bin_names)),
                fits.Column("E_MIN", "D", unit="TeV", array=edges[:, 0]),
                fits.Column("E_MAX", "D", unit="TeV", array=edges[:, 1]),
                fits.Column("PSF_WEIGHT", f"{n_comp}D", array=response.psf.weights),
                fits.Column("PSF_SIGMA", f"{n_comp}D", unit="deg", array=response.psf.sigma_deg),
            ],
            name="RESP_BINS",
        ),
    ]
    hdus[-1].header["HASEDGES"] = response.energy_reco_edges_tev is not None
    if response.sky_grid is not None:
        g = response.sky_grid
        for axis, values in (("LON", g.lon_deg), ("LAT", g.lat_deg)):
            h = fits.BinTableHDU.from_columns(
                [fits.Column(axis, "D", unit="deg", array=values)], name=f"RESP_GRID_{axis}"
            )
            h.header["FRAME"] = g.frame
            hdus.append(h)
    if response.psf_table is not None:
        t = response.psf_table
        hdus.append(
            fits.BinTableHDU.from_columns(
                [
                    fits.Column("RAD_DEG", "D", unit="deg", array=np.asarray(t.rad_deg, float)),
                    fits.Column(
                        "DENSITY", f"{n}D", unit="deg-2", array=np.asarray(t.density_deg2, float).T.reshape(-1, n)
                    ),
                ],
                name="RESP_PSF_TABLE",
            )
        )
    return hdus


def _read_response_hdus(hdul, path: Path, meta: dict) -> Response:
    bins = _hdu(hdul, "RESP_BINS", path)
    names = tuple(str(s).strip() for s in bins.data["NAME"])
    edges = None
    if bins.header.get("HASEDGES", False):
        edges = np.stack([np.asarray(bins.data["E_MIN"], float), np.asarray(bins.data["E_MAX"], float)], axis=1)
    psf = GaussianMixturePSF(np.asarray(bins.data["PSF_WEIGHT"], float), np.asarray(bins.data["PSF_SIGMA"], float))
    psf_table = None
    if "RESP_PSF_TABLE" in hdul:
        t = hdul["RESP_PSF_TABLE"].data
        psf_table = TabulatedPSF(np.asarray(t["RAD_DEG"], float), np.asarray(t["DENSITY"], float).T.copy())
    matrix = np.asarray(_hdu(hdul, "RESP_MATRIX", path).data, dtype=np.float64)
    grid = None
    if "RESP_GRID_LON" in hdul:
        lon, lat = hdul["RESP_GRID_LON"], _hdu(hdul, "RESP_GRID_LAT", path)
        grid = SkyGrid(str(lon.header["FRAME"]), np.asarray(lon.data["LON"], float), np.asarray(lat.data["LAT"], float))
    try:
        return Response(
            bin_names=names,
            energy_true_tev=np.asarray(_hdu(hdul, "RESP_AXES", path).data["ENERGY_TRUE"], float),
            dec_nodes_deg=np.asarray(_hdu(hdul, "RESP_DEC", path).data["DEC"], float),
            counts_matrix=matrix,
            psf=psf,
            energy_reco_edges_tev=edges,
            psf_table=psf_table,
            meta=meta,
            sky_grid=grid,
        )
    except ValueError as exc:
        raise DatasetFileError(f"{path}: the response in this file is inconsistent ({exc})") from None


def write_response(response: Response, path, overwrite: bool = False, how: str | None = None) -> Path:
    """Write a :class:`~skyfit.response.Response` alone (see :mod:`skyfit.response._files` for the layout)."""
    path = Path(path)
    hdus = [_primary("skyfit-response", "", response.meta), *_response_hdus(response)]
    hdus.append(_json_hdu(_provenance(None, response, how), "PROVENANCE"))
    fits.HDUList(hdus).writeto(path, overwrite=overwrite)
    return path


def read_response(path) -> Response:
    """Read the response of a response or dataset file."""
    path = Path(path)
    with _reading(path, "skyfit response"), _open(path, "skyfit-response") as hdul:
        prov = _read_json_hdu(_hdu(hdul, "PROVENANCE", path))
        return _read_response_hdus(hdul, path, prov.get("response_meta") or {})

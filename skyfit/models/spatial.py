"""Spatial models, evaluated PSF-convolved on the exact sphere at HEALPix pixel centres.

The PSF is a mixture of Gaussians. Each Gaussian of width sigma is represented on the sphere by the
von Mises-Fisher density ``kappa / (2 pi (1 - exp(-2 kappa))) exp(-kappa (1 - cos theta))`` with
``kappa = 1 / sigma^2`` (sigma in radians), which is normalised exactly on the sphere and equals a
2D Gaussian of width sigma for small angles. Hence:

* ``PointSpatialModel``: the PSF itself;
* ``GaussianSpatialModel`` (``sigma`` = r39, the 39.3 % containment radius, as in 1LHAASO): a Gaussian of
  width sqrt(sigma^2 + sigma_psf^2) per PSF component (analytic convolution);
* ``DiskSpatialModel`` (radius ``r_0``): the disk convolved with each PSF Gaussian by Gauss-Legendre
  quadrature over the disk radius (small-angle form, with the Bessel-I0 ring kernel);
* ``GalacticDiffuseSpatialModel``: a band along the Galactic plane (Gaussian in latitude), a
  diffuse template with a free normalisation;
* ``ConstantSpatialModel``: an isotropic sky (per pixel: its solid angle);
* ``TemplateSpatialModel``: a map cube (e.g. the LAT's Galactic diffuse model), folded with the exposure
  and PSF beforehand (:mod:`skyfit.io.template`).

All kernels return the probability for an event of the source to fall in each pixel,
shape (n_bins, n_pix).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import i0e

from .._units import lonlat, to_value
from ._parameter import ModelError, Parameter

__all__ = [
    "SpatialModel",
    "PointSpatialModel",
    "GaussianSpatialModel",
    "DiskSpatialModel",
    "GalacticDiffuseSpatialModel",
    "ConstantSpatialModel",
    "TemplateSpatialModel",
    "SPATIAL_MODELS",
]

_GALACTIC_TO_ICRS = None


def _galactic_to_icrs_matrix() -> np.ndarray:
    global _GALACTIC_TO_ICRS  # constant rotation, computed once from astropy
    if _GALACTIC_TO_ICRS is None:
        from astropy.coordinates import CartesianRepresentation, SkyCoord

        basis = SkyCoord(CartesianRepresentation([1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]), frame="galactic")
        icrs = basis.icrs.cartesian  # column j: the ICRS vector of Galactic axis j
        _GALACTIC_TO_ICRS = np.stack([icrs.x.value, icrs.y.value, icrs.z.value], axis=0)
    return _GALACTIC_TO_ICRS


def source_unit_vector(lon_deg, lat_deg, frame: str = "icrs"):
    """Unit vector (ICRS) of a model position given in ``frame``."""
    lon, lat = jnp.deg2rad(lon_deg), jnp.deg2rad(lat_deg)
    v = jnp.stack([jnp.cos(lat) * jnp.cos(lon), jnp.cos(lat) * jnp.sin(lon), jnp.sin(lat)])
    if frame == "galactic":
        v = jnp.asarray(_galactic_to_icrs_matrix()) @ v
    return v


def one_minus_cos(pixel_vectors, source_vector):
    """1 - cos(angular distance), computed as half the squared chord: smooth and exact."""
    d = pixel_vectors - source_vector
    return 0.5 * jnp.sum(d * d, axis=-1)


def _vmf(kappa, omc):
    return kappa / (2 * jnp.pi * (-jnp.expm1(-2 * kappa))) * jnp.exp(-kappa * omc)


@dataclass(frozen=True)
class SpatialModel:
    """Base class. ``frame`` is ``"icrs"`` or ``"galactic"``; ``lon_0``/``lat_0`` are in deg."""

    parameters: tuple
    frame: str = "icrs"

    tag = "base"
    parameter_names: ClassVar[tuple] = ()
    per_pixel_exposure: ClassVar[bool] = False  # True: the exposure is evaluated per pixel, not at lon_0/lat_0
    precomputed: ClassVar[bool] = False  # True: folded with the response beforehand (a map-cube template)

    def __post_init__(self):
        if self.frame not in ("icrs", "galactic"):
            raise ModelError(f"frame must be 'icrs' or 'galactic', got {self.frame!r}")

    @classmethod
    def from_parts(cls, parameters, d: dict):
        """The model from its parameters and its YAML mapping ``d`` (frame, and what else a type keeps)."""
        return cls(parameters, d.get("frame", "icrs"))

    def extra_dict(self) -> dict:
        """Keys besides type, frame and parameters in the model's YAML mapping."""
        return {}

    @classmethod
    def _position(cls, lon_0, lat_0, frame="icrs"):
        """The ``lon_0``, ``lat_0`` parameters (deg) of numbers, angle Quantities or a SkyCoord (``lat_0`` None)."""
        lon_0, lat_0 = lonlat(lon_0, lat_0, frame, names=("lon_0", "lat_0"))
        return (
            Parameter("lon_0", lon_0, "deg", scale=1.0),
            Parameter("lat_0", lat_0, "deg", min=-90, max=90, scale=1.0),
        )

    @staticmethod
    def kernel(p, pixel_vectors, pixel_area_sr, psf_weights, psf_sigma_rad, frame="icrs"):
        raise NotImplementedError

    def position(self) -> tuple[float, float]:
        p = {q.name: q.value for q in self.parameters}
        return p["lon_0"], p["lat_0"]

    def position_icrs(self) -> tuple[float, float]:
        lon, lat = self.position()
        if self.frame == "icrs":
            return lon, lat
        from astropy.coordinates import SkyCoord

        c = SkyCoord(lon, lat, unit="deg", frame="galactic").icrs
        return float(c.ra.deg), float(c.dec.deg)

    def extent_deg(self) -> float:
        return 0.0


def _mixture_terms(omc, kappa, norm):
    """K = sum_m norm_m exp(-kappa_m omc) and D = dK/d(omc), sharing the exponentials."""
    k_sum, d_sum = 0.0, 0.0
    for m in range(kappa.shape[1]):  # a few components: an explicit sum fuses elementwise
        term = norm[:, m, None] * jnp.exp(-kappa[:, m, None] * omc[None, :])
        k_sum = k_sum + term
        d_sum = d_sum - kappa[:, m, None] * term
    return k_sum, d_sum


@jax.custom_vjp
def psf_mixture(omc, kappa, norm):
    """``sum_m norm[b, m] exp(-kappa[b, m] omc[p])``, shape (n_bins, n_pix), with a hand-written VJP.

    The reverse pass reuses dK/d(omc) from the forward pass (no second set of exponentials for the
    position gradient) and does its reductions as matrix-vector products, which XLA's CPU backend
    runs about 3x faster than the generic autodiff of the same expression. The cotangents for
    ``kappa`` and ``norm`` (needed only when a source extension is free) recompute the exponentials;
    when nothing depends on them XLA drops that work.
    """
    return _mixture_terms(omc, kappa, norm)[0]


def _psf_mixture_fwd(omc, kappa, norm):
    k_sum, d_sum = _mixture_terms(omc, kappa, norm)
    return k_sum, (omc, kappa, norm, d_sum)


def _psf_mixture_bwd(residuals, cotangent):
    omc, kappa, norm, d_sum = residuals
    d_omc = jnp.ones(cotangent.shape[0], cotangent.dtype) @ (cotangent * d_sum)
    d_norm, d_kappa = [], []
    for m in range(kappa.shape[1]):
        weighted = jnp.exp(-kappa[:, m, None] * omc[None, :]) * cotangent
        d_norm.append(weighted @ jnp.ones(weighted.shape[1], weighted.dtype))
        d_kappa.append(-norm[:, m] * (weighted @ omc))
    return d_omc, jnp.stack(d_kappa, axis=1), jnp.stack(d_norm, axis=1)


psf_mixture.defvjp(_psf_mixture_fwd, _psf_mixture_bwd)


def _mixture(kappa_fn, p, pixel_vectors, pixel_area_sr, psf_weights, psf_sigma_rad, frame):
    omc = one_minus_cos(pixel_vectors, source_unit_vector(p["lon_0"], p["lat_0"], frame))
    kappa = kappa_fn(p, psf_sigma_rad)  # (n_bins, n_comp)
    norm = psf_weights * kappa / (2 * jnp.pi * (-jnp.expm1(-2 * kappa))) * pixel_area_sr
    return psf_mixture(omc, kappa, norm)


@dataclass(frozen=True)
class PointSpatialModel(SpatialModel):
    tag = "PointSpatialModel"
    parameter_names = ("lon_0", "lat_0")

    @classmethod
    def create(cls, lon_0, lat_0=None, frame="icrs"):
        """A point source at (``lon_0``, ``lat_0``).

        ``PointSpatialModel.create(83.63, 22.01)``, ``create(83.63 * u.deg, 22.01 * u.deg)`` and
        ``create(SkyCoord(83.63, 22.01, unit="deg"))`` are the same model.

        Parameters
        ----------
        lon_0 : float, Quantity or SkyCoord
            Longitude of the centre in ``frame`` (RA or Galactic l): deg, or any angle Quantity. Or the whole
            position as a scalar SkyCoord in any frame (transformed to ``frame``); ``lat_0`` is then omitted
            and further arguments are given by keyword.
        lat_0 : float or Quantity
            Latitude of the centre in ``frame`` (Dec or Galactic b): deg, or any angle Quantity.
        frame : {"icrs", "galactic"}
            Frame of the model's position parameters.

        Raises
        ------
        ValueError
            A Quantity whose unit is not an angle (the message names the argument), or a SkyCoord with
            ``lat_0`` also given.
        """
        return cls(cls._position(lon_0, lat_0, frame), frame)

    @staticmethod
    def kernel(p, pixel_vectors, pixel_area_sr, psf_weights, psf_sigma_rad, frame="icrs"):
        return _mixture(lambda p, s: 1.0 / s**2, p, pixel_vectors, pixel_area_sr, psf_weights, psf_sigma_rad, frame)


@dataclass(frozen=True)
class GaussianSpatialModel(SpatialModel):
    tag = "GaussianSpatialModel"
    parameter_names = ("lon_0", "lat_0", "sigma")

    @classmethod
    def create(cls, lon_0, lat_0=None, sigma=0.2, frame="icrs"):
        """A Gaussian source of width ``sigma`` (r39) at (``lon_0``, ``lat_0``).

        Parameters
        ----------
        lon_0 : float, Quantity or SkyCoord
            Longitude of the centre in ``frame`` (RA or Galactic l): deg, or any angle Quantity. Or the whole
            position as a scalar SkyCoord in any frame (transformed to ``frame``); ``lat_0`` is then omitted
            and further arguments are given by keyword.
        lat_0 : float or Quantity
            Latitude of the centre in ``frame`` (Dec or Galactic b): deg, or any angle Quantity.
        sigma : float or Quantity
            Width (r39, the 39.3 % containment radius): deg, or any angle Quantity (e.g. ``12 * u.arcmin``).
        frame : {"icrs", "galactic"}
            Frame of the model's position parameters.

        Raises
        ------
        ValueError
            A Quantity whose unit is not an angle (the message names the argument), or a SkyCoord with
            ``lat_0`` also given.
        """
        sigma = to_value(sigma, "deg", "sigma")
        return cls(
            cls._position(lon_0, lat_0, frame) + (Parameter("sigma", sigma, "deg", min=0.0, max=5.0, scale=0.1),),
            frame,
        )

    @staticmethod
    def kernel(p, pixel_vectors, pixel_area_sr, psf_weights, psf_sigma_rad, frame="icrs"):
        def kappa(p, s):
            return 1.0 / (s**2 + jnp.deg2rad(p["sigma"]) ** 2)

        return _mixture(kappa, p, pixel_vectors, pixel_area_sr, psf_weights, psf_sigma_rad, frame)

    def extent_deg(self) -> float:
        return {q.name: q.value for q in self.parameters}["sigma"]


_GL_X, _GL_W = np.polynomial.legendre.leggauss(48)
_DISK_GRID = 2048  # distances at which a disk's convolved profile is evaluated before interpolation


def _catmull_rom(u, f):
    """Values (n_bins, n_pix) at fractional grid positions ``u`` (n_pix,) of profiles ``f`` (n_bins, n)
    tabulated at 0, 1, ..., n - 1: the Catmull-Rom cubic (continuous slope), even about 0, zero beyond n - 1."""
    n = f.shape[1]
    padded = jnp.concatenate([f[:, 1:2], f, jnp.zeros((f.shape[0], 3))], axis=1)  # index j: grid j - 1
    i = jnp.clip(jnp.floor(u), 0, n - 1).astype(jnp.int32)
    t = (u - i)[None, :]
    p0, p1, p2, p3 = (padded[:, i + k] for k in range(4))
    value = 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (3 * (p1 - p2) + p3 - p0) * t**3)
    return jnp.where(u[None, :] < n - 1, value, 0.0)


@dataclass(frozen=True)
class DiskSpatialModel(SpatialModel):
    tag = "DiskSpatialModel"
    parameter_names = ("lon_0", "lat_0", "r_0")

    @classmethod
    def create(cls, lon_0, lat_0=None, r_0=0.5, frame="icrs"):
        """A uniform disk of radius ``r_0`` centred on (``lon_0``, ``lat_0``).

        Parameters
        ----------
        lon_0 : float, Quantity or SkyCoord
            Longitude of the centre in ``frame`` (RA or Galactic l): deg, or any angle Quantity. Or the whole
            position as a scalar SkyCoord in any frame (transformed to ``frame``); ``lat_0`` is then omitted
            and further arguments are given by keyword.
        lat_0 : float or Quantity
            Latitude of the centre in ``frame`` (Dec or Galactic b): deg, or any angle Quantity.
        r_0 : float or Quantity
            Radius: deg, or any angle Quantity.
        frame : {"icrs", "galactic"}
            Frame of the model's position parameters.

        Raises
        ------
        ValueError
            A Quantity whose unit is not an angle (the message names the argument), or a SkyCoord with
            ``lat_0`` also given.
        """
        r_0 = to_value(r_0, "deg", "r_0")
        return cls(
            cls._position(lon_0, lat_0, frame) + (Parameter("r_0", r_0, "deg", min=1e-3, max=5.0, scale=0.1),),
            frame,
        )

    @staticmethod
    def kernel(p, pixel_vectors, pixel_area_sr, psf_weights, psf_sigma_rad, frame="icrs"):
        omc = one_minus_cos(pixel_vectors, source_unit_vector(p["lon_0"], p["lat_0"], frame))
        theta = jnp.sqrt(2 * omc + omc**2 / 3 + 1e-18)  # arccos(1 - x) to O(x^2), smooth at 0
        radius = jnp.deg2rad(p["r_0"])
        # the convolved disk depends on the distance alone: evaluated on _DISK_GRID distances out to the
        # radius plus 6 widths of the widest PSF Gaussian (beyond: < 1e-8 of the peak), then interpolated
        # at each pixel by a Catmull-Rom cubic, smooth in the distance so gradients match finite differences
        # (spacing (r_0 + 6 sigma_max) / 2047: 0.002 deg for the LAT's W28; against the exact sum at each
        # pixel: 3e-4 of the counts at most, r_0 0.03-0.64 deg, the LAT's PSF)
        grid = jnp.linspace(0.0, 1.0, _DISK_GRID) * (radius + 6 * jnp.max(psf_sigma_rad))
        rho = 0.5 * radius * (jnp.asarray(_GL_X) + 1.0)  # Gauss-Legendre nodes on [0, r_0]
        ring_weight = jnp.asarray(_GL_W) * rho / radius  # 2 rho w_j (r_0/2) / r_0^2
        s2 = psf_sigma_rad[:, :, None, None] ** 2
        t = grid[None, None, None, :]
        r = rho[None, None, :, None]
        # uniform ring of radius rho convolved with a 2D Gaussian: Rice-like kernel, i0e for stability
        ring = jnp.exp(-((t - r) ** 2) / (2 * s2)) * i0e(t * r / s2) / (2 * jnp.pi * s2)
        profile = jnp.einsum("bm,bmg->bg", psf_weights, jnp.einsum("j,bmjg->bmg", ring_weight, ring))
        return _catmull_rom(theta / grid[1], profile) * pixel_area_sr

    def extent_deg(self) -> float:
        return {q.name: q.value for q in self.parameters}["r_0"]


def _galactic_pole_icrs() -> np.ndarray:
    return _galactic_to_icrs_matrix()[:, 2]


@dataclass(frozen=True)
class GalacticDiffuseSpatialModel(SpatialModel):
    """Galactic diffuse emission: a band uniform in longitude with a Gaussian latitude profile
    (centre ``b_0``, width ``sigma_b``, deg), of surface brightness 1 sr^-1 on its centre line, so the
    spectral amplitude is the intensity (per sr) there. Each PSF Gaussian convolves the profile
    analytically (small-angle, across the band). The exposure changes across such a wide component,
    so the likelihood weights it per pixel (``per_pixel_exposure``). Both parameters are frozen by
    default: the free parameter of a diffuse template is its normalisation (the spectral amplitude).
    """

    tag = "GalacticDiffuseSpatialModel"
    parameter_names = ("b_0", "sigma_b")
    per_pixel_exposure: ClassVar[bool] = True

    @classmethod
    def create(cls, b_0=0.0, sigma_b=1.5):
        """The band, centred on Galactic latitude ``b_0`` with width ``sigma_b`` (both frozen).

        Parameters
        ----------
        b_0 : float or Quantity
            Galactic latitude of the centre line: deg, or any angle Quantity.
        sigma_b : float or Quantity
            Gaussian width in latitude: deg, or any angle Quantity.

        Raises
        ------
        ValueError
            A Quantity whose unit is not an angle (the message names the argument).
        """
        b_0, sigma_b = to_value(b_0, "deg", "b_0"), to_value(sigma_b, "deg", "sigma_b")
        return cls(
            (
                Parameter("b_0", b_0, "deg", min=-10.0, max=10.0, frozen=True, scale=1.0),
                Parameter("sigma_b", sigma_b, "deg", min=0.1, max=20.0, frozen=True, scale=1.0),
            ),
            "galactic",
        )

    @staticmethod
    def kernel(p, pixel_vectors, pixel_area_sr, psf_weights, psf_sigma_rad, frame="galactic"):
        b = jnp.arcsin(jnp.clip(pixel_vectors @ jnp.asarray(_galactic_pole_icrs()), -1.0, 1.0))
        width2 = jnp.deg2rad(p["sigma_b"]) ** 2
        s2 = (width2 + psf_sigma_rad**2)[:, :, None]  # (n_bins, n_comp, 1)
        profile = jnp.sqrt(width2 / s2) * jnp.exp(-0.5 * (b[None, None, :] - jnp.deg2rad(p["b_0"])) ** 2 / s2)
        return jnp.einsum("bm,bmp->bp", psf_weights, profile) * pixel_area_sr

    def position(self) -> tuple[float, float]:
        return 0.0, {q.name: q.value for q in self.parameters}["b_0"]

    def extent_deg(self) -> float:
        return 180.0


@dataclass(frozen=True)
class ConstantSpatialModel(SpatialModel):
    """An isotropic sky: surface brightness 1 sr^-1 everywhere, so the spectral amplitude is the intensity
    (per sr; e.g. the LAT's isotropic emission). Exact on HEALPix: each pixel takes its solid angle times
    its own exposure (``per_pixel_exposure``); the PSF leaves a uniform sky unchanged."""

    tag = "ConstantSpatialModel"
    parameter_names = ()
    per_pixel_exposure: ClassVar[bool] = True

    @classmethod
    def create(cls):
        return cls((), "icrs")

    @staticmethod
    def kernel(p, pixel_vectors, pixel_area_sr, psf_weights, psf_sigma_rad, frame="icrs"):
        return jnp.ones((psf_weights.shape[0], pixel_vectors.shape[0])) * pixel_area_sr

    def position(self) -> tuple[float, float]:
        return 0.0, 0.0

    def extent_deg(self) -> float:
        return 180.0


@dataclass(frozen=True)
class TemplateSpatialModel(SpatialModel):
    """A spatial-spectral template: a map cube of intensity per energy and pixel (e.g. the LAT's Galactic
    diffuse model ``gll_iem``), in ``filename``, its unit from the file's ``BUNIT`` or ``unit`` (the LAT's
    files carry none: ``"cm-2 s-1 MeV-1 sr-1"``). Its spectral model scales it: ``PowerLawNorm``'s
    ``norm`` and ``tilt``. The likelihood folds it with each dataset's exposure and PSF once, on the
    template's grid, and integrates it over the HEALPix pixels (:mod:`skyfit.io.template`); it has no
    parameters of its own. Written to YAML as gammapy's ``TemplateSpatialModel`` (``filename``)."""

    filename: str = ""
    unit: str | None = None

    tag = "TemplateSpatialModel"
    parameter_names = ()
    per_pixel_exposure: ClassVar[bool] = True
    precomputed: ClassVar[bool] = True

    @classmethod
    def create(cls, filename, unit=None, frame: str = "galactic"):
        """The template in ``filename``.

        Parameters
        ----------
        filename : str or path
            The map cube (FITS).
        unit : str or astropy.units.Unit, optional
            The cube's unit when the file carries none (e.g. ``"cm-2 s-1 MeV-1 sr-1"``); a Unit is kept as
            its string.
        frame : {"icrs", "galactic"}
            The cube's frame.
        """
        if unit is not None and not isinstance(unit, str):
            import astropy.units as u

            unit = u.Unit(unit).to_string()
        return cls((), frame, str(filename), unit)

    @classmethod
    def from_parts(cls, parameters, d: dict):
        if not d.get("filename"):
            raise ModelError("a TemplateSpatialModel needs 'filename' (its map cube)")
        return cls(parameters, d.get("frame", "galactic"), str(d["filename"]), d.get("unit"))

    def extra_dict(self) -> dict:
        return {"filename": self.filename, "normalize": False, **({"unit": self.unit} if self.unit else {})}

    @staticmethod
    def kernel(p, pixel_vectors, pixel_area_sr, psf_weights, psf_sigma_rad, frame="icrs"):
        raise ModelError("a TemplateSpatialModel is folded with the response beforehand (skyfit.io.template)")

    def position(self) -> tuple[float, float]:
        return 0.0, 0.0

    def extent_deg(self) -> float:
        return 180.0


SPATIAL_MODELS = {
    cls.tag: cls
    for cls in (
        PointSpatialModel,
        GaussianSpatialModel,
        DiskSpatialModel,
        GalacticDiffuseSpatialModel,
        ConstantSpatialModel,
        TemplateSpatialModel,
    )  # fmt: skip
}
SPATIAL_MODELS.update({"point": PointSpatialModel, "gauss": GaussianSpatialModel, "disk": DiskSpatialModel})

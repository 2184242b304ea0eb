"""GADF DL3 full-enclosure IRFs (effective area, energy dispersion, PSF) read into plain arrays.

The response built from them is in :mod:`skyfit.response.dl3`, which also exports everything here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_PSF_HDUS = ("PSF", "POINT SPREAD FUNCTION", "PSF_2D_TABLE", "PSF_2D_GAUSS", "PSF_2D_KING")
_PSF_MAX_RAD_DEG = 30.0  # parametric PSFs are tabulated out to their 99.9% radius, at most this
_PSF_N_RAD = 1000


class DL3FileError(OSError):
    """A DL3 IRF file is missing, of another format, lacks an HDU, or cannot serve a declination."""


@dataclass(frozen=True)
class DL3IRF:
    """A full-enclosure DL3 IRF as plain arrays (zenith angle = field-of-view offset).

    Parameters
    ----------
    aeff_cm2 : ndarray, shape (n_zen_a, n_e_a)
        Effective area (cm^2) at the bin centres of ``aeff_zenith_edges_deg`` x ``aeff_energy_edges_tev``.
    aeff_energy_edges_tev, aeff_zenith_edges_deg : ndarray
        Bin edges of the effective-area table (true energy in TeV, zenith in deg).
    edisp_density : ndarray, shape (n_zen_e, n_e_e, n_migra)
        Migration probability density ``dP/dmu`` (``mu = E_reco / E_true``), constant in each migra bin.
    edisp_energy_edges_tev, edisp_zenith_edges_deg, migra_edges : ndarray
        Bin edges of the dispersion table.
    psf_density_deg2 : ndarray, shape (n_zen_p, n_e_p, n_rad)
        Radial PSF density (deg^-2), each (zenith, energy) profile normalised to unit integral (rows
        with no content stay zero).
    psf_rad_deg : ndarray, shape (n_rad,)
        Radii (deg) of the profiles, starting at 0.
    psf_energy_edges_tev, psf_zenith_edges_deg : ndarray
        Bin edges of the PSF table.
    psf_format : str
        ``"PSF_TABLE"``, ``"PSF_3GAUSS"`` or ``"PSF_KING"``.
    files : dict
        File and HDU of each component.
    header : dict
        ``TELESCOP``/``INSTRUME`` and other keywords of the effective-area HDU.
    """

    aeff_cm2: np.ndarray
    aeff_energy_edges_tev: np.ndarray
    aeff_zenith_edges_deg: np.ndarray
    edisp_density: np.ndarray
    edisp_energy_edges_tev: np.ndarray
    edisp_zenith_edges_deg: np.ndarray
    migra_edges: np.ndarray
    psf_density_deg2: np.ndarray
    psf_rad_deg: np.ndarray
    psf_energy_edges_tev: np.ndarray
    psf_zenith_edges_deg: np.ndarray
    psf_format: str
    files: dict = field(default_factory=dict)
    header: dict = field(default_factory=dict)

    @property
    def max_zenith_deg(self) -> float:
        """Largest zenith angle (deg) the effective area covers (its last ``THETA_HI``)."""
        return float(self.aeff_zenith_edges_deg[-1])


# --------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------


def _open(path: Path, what: str):
    from astropy.io import fits

    if not path.exists():
        raise DL3FileError(
            f"{path} does not exist: pass the path of a GADF DL3 IRF file holding the {what} "
            "(irf_file=..., or aeff_file/edisp_file/psf_file)"
        )
    try:
        hdul = fits.open(path, memmap=False)
        _ = [h.name for h in hdul]  # reads every header: a truncated or non-FITS file fails here
    except (OSError, ValueError, TypeError, EOFError) as exc:
        raise DL3FileError(
            f"{path} is not a readable FITS file ({type(exc).__name__}: {exc}); a GADF DL3 IRF file "
            "(FITS with EFFECTIVE AREA / ENERGY DISPERSION / PSF tables) is needed: check the path, "
            "or download the file again if it is truncated"
        ) from exc
    return hdul


def _hdu(hdul, path: Path, names, what: str, key: str):
    """The first HDU of ``names`` present in ``hdul``, with errors that name the file and the fix."""
    from astropy.io import fits

    present = [h.name for h in hdul]
    for name in names:
        if name.upper() in present:
            hdu = hdul[name]
            if not isinstance(hdu, fits.BinTableHDU):
                raise DL3FileError(
                    f"{path}: HDU {name!r} is a {type(hdu).__name__}, not a GADF binary table: this is "
                    "not a GADF DL3 IRF file (map IRFs, e.g. HAWC's public EffectiveAreaMap files, are "
                    "read by skyfit.response.hawc.hawc_response)"
                )
            return name.upper(), hdu
    if not any(n in present for n in ("EFFECTIVE AREA", "ENERGY DISPERSION", *_PSF_HDUS)):
        hint = (
            " It looks like a gammapy map IRF (as in HAWC's public release): use "
            "skyfit.response.hawc.hawc_response for those."
            if any(n in present for n in ("AEFF", "EDISP", "PSF_BANDS", "AEFF_BANDS"))
            else ""
        )
        raise DL3FileError(
            f"{path} is not a GADF DL3 IRF file: it has no HDU {names[0]!r} (its HDUs: {present}).{hint} "
            "Pass a full-enclosure GADF IRF file (AEFF_2D, EDISP_2D, PSF tables)."
        )
    raise DL3FileError(
        f"{path} has no {what} HDU {' or '.join(repr(n) for n in names)} (its HDUs: {present}): pass the "
        f"file that holds it ({key}_file=...) or the HDU's name (hdu_names={{{key!r}: ...}})"
    )


def _parse(cls, hdul, hdu_name: str, path: Path, kind: str):
    try:
        irf = cls.from_hdulist(hdul, hdu=hdu_name)
    except (KeyError, ValueError, TypeError, IndexError, OSError, EOFError) as exc:
        raise DL3FileError(
            f"{path}: HDU {hdu_name!r} is not a GADF {kind} table ({type(exc).__name__}: {exc}); the "
            "file is of another format or corrupt: pass a full-enclosure GADF DL3 IRF file"
        ) from exc
    if getattr(irf, "is_pointlike", False):
        raise DL3FileError(
            f"{path}: HDU {hdu_name!r} is a POINT-LIKE IRF (a direction cut is folded in); a sky-map "
            "likelihood needs FULL-ENCLOSURE IRFs: pass those"
        )
    return irf


def _edges(irf, name: str, unit: str) -> np.ndarray:
    return np.asarray(irf.axes[name].edges.to_value(unit), dtype=float)


def _normalise_profiles(rad_deg, density):
    """Normalise each radial profile (last axis) to unit integral 2 pi r dr (trapezoid); zero rows stay."""
    integrand = 2 * np.pi * rad_deg * density
    norm = np.sum(0.5 * (integrand[..., 1:] + integrand[..., :-1]) * np.diff(rad_deg), axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(norm > 0, density / norm, 0.0)
    return np.nan_to_num(out)


def _psf_arrays(psf, fmt: str):
    """(density_deg2 (n_zen, n_e, n_rad), rad_deg) of a gammapy PSF, profiles normalised."""
    if fmt == "PSF_TABLE":
        rad_edges = _edges(psf, "rad", "deg")
        rad = 0.5 * (rad_edges[1:] + rad_edges[:-1])
        dens = np.asarray(psf.quantity.to_value("deg-2"), dtype=float).transpose(1, 0, 2)  # (zen, e, rad)
        if rad[0] > 0:  # start the profile at r = 0 (value of the innermost bin)
            rad = np.concatenate([[0.0], rad])
            dens = np.concatenate([dens[..., :1], dens], axis=-1)
        return _normalise_profiles(rad, np.clip(np.nan_to_num(dens), 0.0, None)), rad
    q = {name: psf.quantity[name] for name in psf.required_parameters}
    if fmt == "PSF_3GAUSS":
        sig = [np.asarray(q[f"sigma_{i}"].to_value("deg"), float).T for i in (1, 2, 3)]  # (zen, e)
        amp = [np.ones_like(sig[0]), np.asarray(q["ampl_2"].value, float).T, np.asarray(q["ampl_3"].value, float).T]
        live = [np.where((s > 0) & (a > 0), s, 0.0) for s, a in zip(sig, amp, strict=True)]
        r_max = min(_PSF_MAX_RAD_DEG, 6.0 * float(np.max(live)))
        rad = np.linspace(0.0, r_max, _PSF_N_RAD)
        dens = np.zeros(sig[0].shape + (rad.size,))
        for s, a in zip(sig, amp, strict=True):
            ok = (s > 0) & (a > 0)
            safe = np.where(ok, s, 1.0)[..., None]
            dens += np.where(ok[..., None], a[..., None] * np.exp(-0.5 * (rad / safe) ** 2), 0.0)
    else:  # PSF_KING: dP/dOmega = (1 - 1/g) / (2 pi s^2) (1 + r^2 / (2 g s^2))^-g
        s = np.asarray(q["sigma"].to_value("deg"), float).T
        g = np.asarray(q["gamma"].value, float).T
        ok = (s > 0) & (g > 1)
        s, g = np.where(ok, s, 1.0), np.where(ok, g, 2.0)
        r999 = s * np.sqrt(2 * g * (1e-3 ** (1.0 / (1.0 - g)) - 1.0))
        rad = np.linspace(0.0, min(_PSF_MAX_RAD_DEG, float(np.max(np.where(ok, r999, 0.0)))), _PSF_N_RAD)
        s, g = s[..., None], g[..., None]
        dens = np.where(ok[..., None], (1 - 1 / g) / (2 * np.pi * s**2) * (1 + rad**2 / (2 * g * s**2)) ** -g, 0.0)
    return _normalise_profiles(rad, dens), rad


def _paths_and_hdu_names(irf_file, aeff_file, edisp_file, psf_file, hdu_names) -> tuple:
    """({component: file}, {component: HDU names to look for}) of :func:`read_dl3_irfs`'s arguments."""
    paths = {k: (v if v is not None else irf_file) for k, v in (("aeff", aeff_file), ("edisp", edisp_file))}
    paths["psf"] = psf_file if psf_file is not None else irf_file
    for key, p in paths.items():
        if p is None:
            raise ValueError(f"no file for the {key} IRF: pass irf_file=... (or {key}_file=...)")
    paths = {k: Path(v) for k, v in paths.items()}
    hdu_names = dict(hdu_names or {})
    names = {
        "aeff": (hdu_names.get("aeff", "EFFECTIVE AREA"),),
        "edisp": (hdu_names.get("edisp", "ENERGY DISPERSION"),),
        "psf": (hdu_names["psf"],) if "psf" in hdu_names else _PSF_HDUS,
    }
    return paths, names


def _psf_format(psf_hdu, hdu_name: str, path: Path) -> str:
    """``"PSF_TABLE"``, ``"PSF_3GAUSS"`` or ``"PSF_KING"``: the GADF format of a PSF HDU."""
    cls4 = str(psf_hdu.header.get("HDUCLAS4", "")).upper()
    columns = [c.upper() for c in psf_hdu.columns.names]
    if cls4 == "PSF_TABLE" or (not cls4 and "RPSF" in columns):
        return "PSF_TABLE"
    if cls4 == "PSF_3GAUSS" or (not cls4 and "SIGMA_1" in columns):
        return "PSF_3GAUSS"
    if cls4 == "PSF_KING" or (not cls4 and "GAMMA" in columns):
        return "PSF_KING"
    raise DL3FileError(
        f"{path}: PSF HDU {hdu_name!r} is neither PSF_TABLE, PSF_3GAUSS nor PSF_KING "
        f"(HDUCLAS4={cls4!r}, columns {columns}): pass a GADF full-enclosure PSF"
    )


def _irf_arrays(aeff, edisp, psf, fmt: str, paths: dict, found: dict, header: dict) -> DL3IRF:
    """The gammapy IRFs as a :class:`DL3IRF`; :class:`DL3FileError` for unexpected units or axes."""
    try:
        aeff_cm2 = np.asarray(aeff.quantity.to_value("cm2"), dtype=float).T  # (zen, e)
        edisp_density = np.asarray(edisp.quantity.to_value(""), dtype=float).transpose(2, 0, 1)  # (zen, e, mu)
        psf_density, psf_rad = _psf_arrays(psf, fmt)
        out = DL3IRF(
            aeff_cm2=np.clip(np.nan_to_num(aeff_cm2), 0.0, None),
            aeff_energy_edges_tev=_edges(aeff, "energy_true", "TeV"),
            aeff_zenith_edges_deg=_edges(aeff, "offset", "deg"),
            edisp_density=np.clip(np.nan_to_num(edisp_density), 0.0, None),
            edisp_energy_edges_tev=_edges(edisp, "energy_true", "TeV"),
            edisp_zenith_edges_deg=_edges(edisp, "offset", "deg"),
            migra_edges=_edges(edisp, "migra", ""),
            psf_density_deg2=psf_density,
            psf_rad_deg=psf_rad,
            psf_energy_edges_tev=_edges(psf, "energy_true", "TeV"),
            psf_zenith_edges_deg=_edges(psf, "offset", "deg"),
            psf_format=fmt,
            files={k: (str(paths[k]), found[k][0]) for k in ("aeff", "edisp", "psf")},
            header=header,
        )
    except (ValueError, TypeError, KeyError, IndexError) as exc:  # units (e.g. an area in sr), axes
        raise DL3FileError(
            f"{paths['aeff']}: the IRF tables have unexpected units or axes ({type(exc).__name__}: {exc}); "
            "GADF needs areas (m2/cm2), energies, angles (deg) and PSF densities (sr-1 or deg-2)"
        ) from exc
    return out


def read_dl3_irfs(irf_file=None, *, aeff_file=None, edisp_file=None, psf_file=None, hdu_names=None) -> DL3IRF:
    """Read a full-enclosure GADF DL3 IRF (effective area, energy dispersion, PSF) into plain arrays.

    Parameters
    ----------
    irf_file : path, optional
        One file holding all three HDUs (the usual layout).
    aeff_file, edisp_file, psf_file : path, optional
        Files of the separate components; each defaults to ``irf_file``.
    hdu_names : dict, optional
        HDU names to use, keys ``"aeff"``, ``"edisp"``, ``"psf"``; defaults ``"EFFECTIVE AREA"``,
        ``"ENERGY DISPERSION"``, and the first of ``"PSF"``, ``"POINT SPREAD FUNCTION"``,
        ``"PSF_2D_TABLE"``, ``"PSF_2D_GAUSS"``, ``"PSF_2D_KING"``.

    Returns
    -------
    DL3IRF

    Raises
    ------
    DL3FileError
        A file is missing or not FITS, an HDU is missing or not a GADF table, or the IRF is point-like.
    """
    from gammapy.irf import (
        PSF3D,
        EffectiveAreaTable2D,
        EnergyDependentMultiGaussPSF,
        EnergyDispersion2D,
        PSFKing,
    )

    paths, names = _paths_and_hdu_names(irf_file, aeff_file, edisp_file, psf_file, hdu_names)
    what = {"aeff": "effective area", "edisp": "energy dispersion", "psf": "PSF"}

    opened = {}
    try:
        for key in ("aeff", "edisp", "psf"):
            if paths[key] not in opened:
                opened[paths[key]] = _open(paths[key], what[key])
        found = {key: _hdu(opened[paths[key]], paths[key], names[key], what[key], key) for key in names}

        aeff = _parse(EffectiveAreaTable2D, opened[paths["aeff"]], found["aeff"][0], paths["aeff"], "AEFF_2D")
        edisp = _parse(EnergyDispersion2D, opened[paths["edisp"]], found["edisp"][0], paths["edisp"], "EDISP_2D")

        fmt = _psf_format(found["psf"][1], found["psf"][0], paths["psf"])
        cls = {"PSF_TABLE": PSF3D, "PSF_3GAUSS": EnergyDependentMultiGaussPSF, "PSF_KING": PSFKing}[fmt]
        psf = _parse(cls, opened[paths["psf"]], found["psf"][0], paths["psf"], fmt)
        header = {
            k: found["aeff"][1].header[k]
            for k in ("TELESCOP", "INSTRUME", "TELLIST", "HDUCLAS3", "HDUCLAS4", "CREATOR")
            if k in found["aeff"][1].header
        }
    finally:
        for hdul in opened.values():
            hdul.close()

    return _irf_arrays(aeff, edisp, psf, fmt, paths, found, header)

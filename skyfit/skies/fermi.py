"""The Fermi-LAT 3FHL catalogue (Ajello et al. 2017, ApJS 232 18; sources above 10 GeV) as a skyfit model.

Each 3FHL source in a region becomes a :class:`~skyfit.models.Source` with 3FHL's power law
(``Flux_Density`` at ``Pivot_Energy``, ``PowerLaw_Index``), at its position; an extended source takes the
shape of 3FHL's ``ExtendedSources`` table: ``RadialDisk`` a disk of radius ``Model_SemiMajor``,
``RadialGaussian`` a Gaussian whose 68 % radius is ``Model_SemiMajor`` (sigma = r68 / 1.5096), and a
template (``SpatialMap``) a Gaussian of the same 68 % radius (said in the source's log entry). Their sizes
are frozen, as 3FHL held them (its extended sources are fixed templates); positions and spectra are free.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from .._data import data_dir
from ..models import DiskSpatialModel, GaussianSpatialModel, Models, PointSpatialModel, PowerLaw, Source
from . import CatalogError, Region

__all__ = ["read_3fhl", "fermi_3fhl_sky", "FHL_COLUMNS"]

FHL_COLUMNS = ("Source_Name", "RAJ2000", "DEJ2000", "GLON", "GLAT", "Flux_Density", "Pivot_Energy",
               "PowerLaw_Index", "Signif_Avg", "Extended_Source_Name")  # fmt: skip
R68_OVER_SIGMA = 1.5096  # a 2D Gaussian's 68 % containment radius in units of its sigma


def read_3fhl(path=None) -> tuple:
    """(point-source table, extended-source table) of 3FHL (default:
    ``$SKYFIT_DATA/catalogs/fermi/gll_psch_v13.fit.gz``)."""
    from astropy.table import Table

    path = Path(path or data_dir("catalogs", "fermi", "gll_psch_v13.fit.gz"))
    if not path.exists():
        raise CatalogError(f"3FHL catalogue file {path} does not exist")
    try:
        points = Table.read(path, hdu="LAT_Point_Source_Catalog")
        extended = Table.read(path, hdu="ExtendedSources")
    except Exception as exc:  # astropy raises many kinds for a corrupt file
        raise CatalogError(f"3FHL catalogue file {path}: {exc}; it needs the HDUs LAT_Point_Source_Catalog and "
                           "ExtendedSources (gll_psch_v13.fit)") from None  # fmt: skip
    missing = [c for c in FHL_COLUMNS if c not in points.colnames]
    if missing:
        raise CatalogError(f"3FHL catalogue file {path} lacks the columns {missing}")
    return points, extended


def _text(value) -> str:
    if np.ma.is_masked(value):
        return ""
    return (value.decode() if isinstance(value, bytes) else str(value)).strip()


def _shape(row, extended, ra: float, dec: float, log):
    ext_name = _text(row["Extended_Source_Name"])
    if not ext_name:
        return PointSpatialModel.create(ra, dec)
    match = [e for e in extended if _text(e["Source_Name"]) == ext_name]
    if not match:
        raise CatalogError(f"3FHL source {_text(row['Source_Name'])}: extended source {ext_name!r} is not in the "
                           "ExtendedSources table")  # fmt: skip
    e = match[0]
    size, function = float(e["Model_SemiMajor"]), _text(e["Spatial_Function"])
    if function == "RadialDisk":
        disk = DiskSpatialModel.create(ra, dec, r_0=size)
        return replace(disk, parameters=tuple(replace(q, frozen=q.name == "r_0") for q in disk.parameters))
    if function != "RadialGaussian":
        log(f"3FHL {ext_name}: spatial template {function} taken as a Gaussian of 68 % radius {size:.3f} deg")
    gauss = GaussianSpatialModel.create(ra, dec, sigma=size / R68_OVER_SIGMA)
    return replace(gauss, parameters=tuple(replace(q, frozen=q.name == "sigma") for q in gauss.parameters))


def fermi_3fhl_sky(region: Region | str, catalog=None, margin_deg: float = 0.0, min_significance: float = 0.0,
                   datasets=None, log=None) -> Models:  # fmt: skip
    """The 3FHL sources within ``region`` (a :class:`~skyfit.skies.Region` or ``"l0,l1,b0,b1"``) grown by
    ``margin_deg``, with ``Signif_Avg >= min_significance``, as sources named ``3FHL_J...`` with their power
    laws in skyfit's units (TeV). ``catalog``: the tables of :func:`read_3fhl` (default: read them).
    ``datasets``: the dataset names the sources apply to (default all)."""
    log = log or (lambda *a: None)
    region = Region.parse(region) if isinstance(region, str) else region
    points, extended = catalog if catalog is not None else read_3fhl()
    sources = []
    for row in points:
        lon = (float(row["GLON"]) + 180.0) % 360.0 - 180.0
        if not region.contains(lon, float(row["GLAT"]), margin_deg) or float(row["Signif_Avg"]) < min_significance:
            continue
        ra, dec = float(row["RAJ2000"]), float(row["DEJ2000"])
        pivot_tev = float(row["Pivot_Energy"]) * 1e-3  # GeV
        amplitude = float(row["Flux_Density"]) * 1e3  # cm-2 s-1 GeV-1 -> TeV-1
        index = float(row["PowerLaw_Index"])
        if not all(np.isfinite([ra, dec, pivot_tev, amplitude, index])):
            raise CatalogError(f"3FHL source {_text(row['Source_Name'])}: position or power law not finite")
        name = _text(row["Source_Name"]).replace(" ", "_")
        spectral = PowerLaw.create(amplitude, index, pivot_tev)
        sources.append(Source(name, _shape(row, extended, ra, dec, log), spectral,
                              tuple(datasets) if datasets else None))  # fmt: skip
    if not sources:
        raise CatalogError(f"no 3FHL source in {region} (margin {margin_deg} deg, Signif_Avg >= {min_significance})")
    return Models(sources)

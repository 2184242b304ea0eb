"""Simulated Galactic-plane skies from the 1LHAASO catalogue, and reading public catalogues.

1LHAASO (Cao et al. 2024, ApJS 271 25) lists per source up to two components, one per detector:
``Model_a``/``Model_b`` name the detector (WCDA: 1-25 TeV, E0 = 3 TeV; KM2A: > 25 TeV, E0 = 50 TeV),
with position, ``r39`` (the 39 % containment radius, i.e. the sigma of a 2D Gaussian; absent or an upper
limit for point-like components), and a power law ``N0 (E/E0)^-gamma``. A simulated sky takes each
component as a source seen only by its detector, plus a Galactic diffuse band with a free
normalisation, so the simulated counts resemble what 1LHAASO fitted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .._data import DataNotFoundError, data_dir
from .._units import to_value
from ..dataset import Dataset
from ..maps import HealpixROI
from ..models import GalacticDiffuseSpatialModel, GaussianSpatialModel, Models, PointSpatialModel, PowerLaw, Source
from ..simulate import lhaaso_dataset, simulate_dataset

__all__ = [
    "CatalogError",
    "Region",
    "read_1lhaaso",
    "read_3hwc",
    "catalog_sky",
    "galactic_diffuse",
    "simulate_plane",
    "LHAASO_COLUMNS",
    "BUILTIN_COVERAGE",
    "builtin_catalog_file",
]

LHAASO_COLUMNS = ("Source_Name", "Model_a", "RAJ2000", "DECJ2000", "r39", "N0", "gamma", "E0", "TS",
                  "Model_b", "RAJ2000_b", "DECJ2000_b", "r39_b", "N0_b", "gamma_b", "E0_b", "TS_b")  # fmt: skip
# Galactic diffuse emission assumed for the simulations: intensity on the plane's centre line
# 1e-13 (E / 10 TeV)^-2.7 TeV^-1 cm^-2 s^-1 sr^-1, Gaussian in latitude with sigma_b = 1.5 deg. An
# assumption of the order of magnitude measured (LHAASO WCDA/KM2A diffuse papers), not a fit to them.
DIFFUSE_AMPLITUDE, DIFFUSE_INDEX, DIFFUSE_REFERENCE_TEV, DIFFUSE_SIGMA_B = 1e-13, 2.7, 10.0, 1.5


# The published rows of 1LHAASO and 3HWC in this box ship inside the package (skyfit/skies/data/), so the
# built-in field (l 35-45 deg) is simulated and cross-matched with no reference data at all.
_BUILTIN_FILES = {"1lhaaso": "1lhaaso_l20-60.ecsv", "3hwc": "3hwc_l20-60.ecsv"}


class CatalogError(ValueError):
    """A catalogue file or region is unusable (names the file or region and the fix)."""


@dataclass(frozen=True)
class Region:
    """A box in Galactic coordinates (deg): ``l_min <= l <= l_max``, ``b_min <= b <= b_max``.

    Parameters
    ----------
    l_min, l_max, b_min, b_max : float or Quantity
        The bounds: deg, or angle Quantities (kept as floats in deg).
    """

    l_min: float
    l_max: float
    b_min: float
    b_max: float

    def __post_init__(self):
        for key in ("l_min", "l_max", "b_min", "b_max"):
            try:
                object.__setattr__(self, key, to_value(getattr(self, key), "deg", key))
            except ValueError as exc:
                raise CatalogError(f"region bound {exc}") from None
        vals = (self.l_min, self.l_max, self.b_min, self.b_max)
        if not all(np.isfinite(v) for v in vals):
            raise CatalogError(f"region bounds must be finite numbers, got {vals}")
        if not (self.b_min < self.b_max and -90 <= self.b_min and self.b_max <= 90):
            raise CatalogError(f"region needs -90 <= b_min < b_max <= 90, got b {self.b_min}..{self.b_max}")
        if not 0 < self.l_max - self.l_min <= 360:
            raise CatalogError(f"region needs l_min < l_max (l may be negative), got l {self.l_min}..{self.l_max}")

    @classmethod
    def parse(cls, text) -> Region:
        """``"l_min,l_max,b_min,b_max"`` (deg), e.g. ``"25,45,-5,5"``; or a Region, or 4 numbers (deg) or angle
        Quantities (or one Quantity of 4 values)."""
        if isinstance(text, Region):
            return text
        if isinstance(text, str):
            parts = text.replace(" ", "").split(",")
            try:
                vals = [float(p) for p in parts]
            except ValueError:
                vals = []
            if len(vals) != 4:
                raise CatalogError(
                    f"unknown region string {text!r}: write 'l_min,l_max,b_min,b_max' in Galactic degrees, "
                    "e.g. '25,45,-5,5'"
                )
            return cls(*vals)
        vals = list(text)
        if len(vals) != 4:
            raise CatalogError(f"a region needs 4 numbers (l_min, l_max, b_min, b_max), got {text!r}")
        return cls(*vals)

    def contains(self, l_deg, b_deg, margin_deg: float = 0.0) -> np.ndarray:
        l_deg, b_deg = np.asarray(l_deg, float), np.asarray(b_deg, float)
        dl = (l_deg - (self.l_min - margin_deg)) % 360.0
        in_b = np.abs(b_deg - self.center[1]) <= self.height / 2 + margin_deg
        return (dl <= self.l_max - self.l_min + 2 * margin_deg) & in_b

    def covers(self, other: Region) -> bool:
        """Whether ``other`` lies wholly inside this region (longitudes compared modulo 360 deg)."""
        start = (other.l_min - self.l_min) % 360.0
        return bool(start + other.width <= self.width + 1e-9 and self.b_min <= other.b_min
                    and other.b_max <= self.b_max)  # fmt: skip

    @property
    def center(self) -> tuple[float, float]:
        return ((self.l_min + self.l_max) / 2) % 360.0, (self.b_min + self.b_max) / 2

    @property
    def width(self) -> float:
        return self.l_max - self.l_min

    @property
    def height(self) -> float:
        return self.b_max - self.b_min

    @property
    def area_deg2(self) -> float:
        """Solid angle of the box in deg^2 (exact on the sphere)."""
        band = np.sin(np.radians(self.b_max)) - np.sin(np.radians(self.b_min))
        return float(np.degrees(1) ** 2 * np.radians(self.width) * band)

    def grown(self, margin_deg) -> Region:
        """The region grown by ``margin_deg`` (deg or an angle Quantity) on every side (b within +-90 deg)."""
        margin_deg = to_value(margin_deg, "deg", "margin_deg")
        return Region(self.l_min - margin_deg, self.l_max + margin_deg, max(self.b_min - margin_deg, -90),
                      min(self.b_max + margin_deg, 90))  # fmt: skip

    def roi(self, nside: int, margin_deg: float = 0.0, nest: bool = True) -> HealpixROI:
        g = self.grown(margin_deg)
        return HealpixROI.from_galactic_box((g.l_min, g.l_max), (g.b_min, g.b_max), nside, nest)

    def as_tuple(self) -> tuple:
        return (self.l_min, self.l_max, self.b_min, self.b_max)

    def __str__(self) -> str:
        return f"l {self.l_min:g}..{self.l_max:g}, b {self.b_min:g}..{self.b_max:g}"


def _read_table(path, what: str, columns):
    from astropy.table import Table

    path = Path(path)
    if not path.exists():
        raise CatalogError(f"{what} file {path} does not exist")
    try:
        table = Table.read(path)
    except Exception as exc:  # astropy raises many kinds for a corrupt file
        raise CatalogError(f"{what} file {path} could not be read ({exc}); is it a FITS or ECSV table?") from None
    missing = [c for c in columns if c not in table.colnames]
    if missing:
        raise CatalogError(
            f"{what} file {path} lacks the columns {missing}; it needs {list(columns)} "
            f"(found {table.colnames[:12]}{' ...' if len(table.colnames) > 12 else ''})"
        )
    return table


BUILTIN_COVERAGE = Region(20.0, 60.0, -10.0, 10.0)


def builtin_catalog_file(name: str) -> Path:
    """The shipped subset (sources in :data:`BUILTIN_COVERAGE`) of the catalogue ``"1lhaaso"`` or ``"3hwc"``."""
    return Path(__file__).with_name("data") / _BUILTIN_FILES[name]


def _sky_table(region: Region, margin_deg: float):
    """The 1LHAASO rows a simulated sky of ``region`` needs: the shipped subset when it covers the region
    grown by ``margin_deg``, else the whole catalogue from the reference data."""
    if BUILTIN_COVERAGE.covers(region.grown(margin_deg)):
        return read_1lhaaso(builtin_catalog_file("1lhaaso"))
    try:
        return read_1lhaaso()
    except DataNotFoundError as exc:
        raise CatalogError(
            f"region {region} (+{margin_deg:g} deg) is outside the 1LHAASO subset shipped with skyfit "
            f"({BUILTIN_COVERAGE}), and the whole catalogue was not found: {exc}"
        ) from None


def read_1lhaaso(path=None):
    """The 1LHAASO catalogue as an astropy Table (default: ``$SKYFIT_DATA/catalogs/1LHAASO_catalog.fits``)."""
    return _read_table(path or data_dir("catalogs", "1LHAASO_catalog.fits"), "1LHAASO catalogue", LHAASO_COLUMNS)


def read_3hwc(path=None):
    """The 3HWC catalogue (name, RA, Dec, TS) as an astropy Table, read through gammapy's reader."""
    from gammapy.catalog import SourceCatalog3HWC

    path = Path(path or data_dir("catalogs", "3HWC.ecsv"))
    _read_table(path, "3HWC catalogue", ("source_name", "ra", "dec", "search_ts"))
    return SourceCatalog3HWC(filename=str(path)).table


def _value(row, col):
    v = row[col]
    if np.ma.is_masked(v):
        return None
    v = float(v)
    return v if np.isfinite(v) else None


def catalog_sky(table, region: Region | None = None, margin_deg: float = 1.0, detectors=("WCDA", "KM2A"),
                dataset_names: dict | None = None) -> Models:  # fmt: skip
    """Sources (one per 1LHAASO component) within ``region`` grown by ``margin_deg``.

    Component names are ``<Source_Name>_<detector>``; each applies only to its detector's dataset
    (``dataset_names`` maps a detector to its dataset name, default the detector name). ``r39`` gives a
    Gaussian; components with no r39 (or only an upper limit) are point sources. ``margin_deg``: deg, or an
    angle Quantity.
    """
    from astropy.coordinates import SkyCoord

    margin_deg = to_value(margin_deg, "deg", "margin_deg")
    names = dataset_names or {}
    sources = []
    for row in table:
        for suffix in ("", "_b"):
            det = row["Model_a" if suffix == "" else "Model_b"]
            det = det.decode() if isinstance(det, bytes) else str(det)
            det = det.strip()
            if det not in detectors:
                continue
            ra, dec = _value(row, "RAJ2000" + suffix), _value(row, "DECJ2000" + suffix)
            n0, index, e0 = _value(row, "N0" + suffix), _value(row, "gamma" + suffix), _value(row, "E0" + suffix)
            if None in (ra, dec, n0, index, e0):
                continue  # no measured component for this detector
            g = SkyCoord(ra, dec, unit="deg").galactic
            if region is not None and not region.contains(g.l.deg, g.b.deg, margin_deg):
                continue
            r39 = _value(row, "r39" + suffix)
            spatial = GaussianSpatialModel.create(ra, dec, sigma=r39) if r39 else PointSpatialModel.create(ra, dec)
            spectral = PowerLaw.create(amplitude=n0, index=index, reference=e0)
            name = row["Source_Name"]
            name = (name.decode() if isinstance(name, bytes) else str(name)).strip().replace(" ", "_")
            sources.append(Source(f"{name}_{det}", spatial, spectral, datasets=(names.get(det, det),)))
    return Models(sources)


def galactic_diffuse(amplitude: float = DIFFUSE_AMPLITUDE, index: float = DIFFUSE_INDEX,
                     sigma_b: float = DIFFUSE_SIGMA_B, name: str = "diffuse") -> Source:  # fmt: skip
    """The Galactic diffuse band (see :data:`DIFFUSE_AMPLITUDE`); only its amplitude is free.

    Parameters
    ----------
    amplitude : float or Quantity
        Intensity on the band's centre line at 10 TeV: cm-2 s-1 TeV-1 sr-1, or any Quantity convertible to it.
    index : float or dimensionless Quantity
        Spectral index.
    sigma_b : float or Quantity
        Gaussian width in latitude: deg, or any angle Quantity.
    name : str
    """
    amplitude = to_value(amplitude, "cm-2 s-1 TeV-1 sr-1", "amplitude")
    spectral = PowerLaw.create(amplitude=amplitude, index=index, reference=DIFFUSE_REFERENCE_TEV)
    params = tuple(q if q.name == "amplitude" else replace(q, frozen=True) for q in spectral.parameters)
    spectral = replace(spectral, parameters=params)
    return Source(name, GalacticDiffuseSpatialModel.create(0.0, sigma_b), spectral)


def simulate_plane(region: Region | str, livetime_days: float = 365.0, nside: int = 512, seed: int = 0,
                   margin_deg: float = 1.5, catalog=None, with_sources: bool = True, with_diffuse: bool = True,
                   detectors=("WCDA", "KM2A")) -> tuple[list[Dataset], Models]:  # fmt: skip
    """Simulated LHAASO-like datasets over ``region`` (grown by ``margin_deg``, so sources near the edge
    are seen whole) and the true sky: 1LHAASO components, diffuse emission and the residual
    cosmic-ray background, ``livetime_days`` of data. Returns ``(datasets, truth)``.
    ``with_sources=False`` simulates background (and diffuse) only: the null hypothesis. ``catalog``: a
    1LHAASO-format table (default: the real catalogue), or a :class:`Models` of the sources to simulate.
    ``livetime_days``: days, or any time Quantity; ``margin_deg``: deg, or an angle Quantity.
    """
    livetime_days = to_value(livetime_days, "day", "livetime_days")
    margin_deg = to_value(margin_deg, "deg", "margin_deg")
    region = Region.parse(region)
    roi = region.roi(nside, margin_deg)
    truth_sources = []
    if with_sources:
        if isinstance(catalog, Models):  # a sky drawn elsewhere (e.g. skyfit.detect._skies.draw_sky)
            truth_sources += [s for s in catalog.sources if any(s.applies_to(d) for d in detectors)]
        else:
            table = _sky_table(region, margin_deg) if catalog is None else catalog
            truth_sources += list(catalog_sky(table, region, margin_deg, detectors).sources)
    if with_diffuse:
        truth_sources.append(galactic_diffuse())
    truth = Models(truth_sources)
    rng = np.random.default_rng(seed)
    datasets = []
    for det in detectors:
        ds = lhaaso_dataset(det, roi=roi, livetime_days=livetime_days, name=det)
        datasets.append(simulate_dataset(truth.for_datasets([det]), ds, rng.integers(2**63)))
    return datasets, truth

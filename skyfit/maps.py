"""Partial-sky HEALPix maps with analysis bins: ROIs, event binning, FITS I/O and plots.

A map is a ``(n_bins, n_pix)`` array over the pixels of a :class:`HealpixROI` (explicit pixel ids
of one nside and ordering). Files use the GADF/gammapy ``EXPLICIT`` HEALPix layout (a ``PIX`` column
and one ``CHANNEL<i>`` column per analysis bin), which gammapy reads as a ``HpxNDMap`` (for disc
ROIs, through the ``HPX_REG`` keyword) and healpy reads with ``read_map(..., partial=True)``; an
``ANALYSIS_BINS`` table keeps the bin names.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import healpy as hp
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits

from ._units import is_pair, lonlat, to_value
from .coords import radec_to_vector

__all__ = [
    "HealpixROI",
    "HealpixMaps",
    "MapFormatError",
    "EmptyRegionError",
    "bin_events",
    "unit_vectors",
]


class MapFormatError(ValueError):
    """A map file or array does not have the layout, nside or ordering that was expected."""


class EmptyRegionError(ValueError):
    """A region of interest holds no HEALPix pixel."""


unit_vectors = radec_to_vector  # one function for (ra, dec) in deg -> unit vectors (..., 3)


def _radec(position, name: str = "center") -> tuple[float, float]:
    """ICRS (ra, dec) in deg of a scalar SkyCoord (any frame) or an (ra, dec) pair of numbers (deg) or angle
    Quantities."""
    from astropy.coordinates import BaseCoordinateFrame

    if isinstance(position, SkyCoord | BaseCoordinateFrame):
        return lonlat(position, frame="icrs", names=(name, name))
    if not is_pair(position):
        raise ValueError(f"{name} must be a SkyCoord or an (ra, dec) pair (deg or angle Quantities), got {position!r}")
    ra, dec = position
    return lonlat(ra, dec, frame="icrs", names=(f"{name} ra", f"{name} dec"))


@dataclass(frozen=True, eq=False)
class HealpixROI:
    """A set of HEALPix pixels (equatorial ICRS coordinates) forming a region of interest.

    Parameters
    ----------
    nside : int
        HEALPix resolution parameter (a power of 2).
    nest : bool
        ``True`` for NESTED ordering, ``False`` for RING.
    pixels : ndarray of int64
        Sorted, unique pixel ids in that ordering.
    """

    nside: int
    nest: bool
    pixels: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if not hp.isnsideok(self.nside, nest=True):
            raise MapFormatError(f"nside={self.nside} is not a valid HEALPix nside (a power of 2)")
        pix = np.asarray(self.pixels, dtype=np.int64)
        if pix.size == 0:
            raise EmptyRegionError(
                f"the region holds no HEALPix pixel at nside={self.nside}: enlarge it or raise nside"
            )
        if pix.min() < 0 or pix.max() >= hp.nside2npix(self.nside):
            raise MapFormatError(f"pixel ids outside [0, {hp.nside2npix(self.nside)}) for nside={self.nside}")
        pix = np.unique(pix)
        object.__setattr__(self, "pixels", pix)

    @classmethod
    def from_disc(cls, center, radius_deg, nside: int, nest: bool = True) -> HealpixROI:
        """Pixels whose centres lie within ``radius_deg`` of ``center``.

        Parameters
        ----------
        center : SkyCoord or (ra, dec)
            A scalar SkyCoord in any frame (transformed to ICRS), or ICRS (ra, dec) as numbers in deg or as
            angle Quantities.
        radius_deg : float or Quantity
            Disc radius: deg, or any angle Quantity (e.g. ``30 * u.arcmin``).
        nside : int
            HEALPix resolution parameter.
        nest : bool
            NESTED (``True``) or RING ordering.

        Raises
        ------
        ValueError
            A Quantity whose unit is not an angle (the message names the argument), or a malformed ``center``;
            :class:`EmptyRegionError` for a declination outside [-90, 90] deg, a non-positive radius or a disc
            holding no pixel centre.
        """
        ra, dec = _radec(center)
        radius_deg = to_value(radius_deg, "deg", "radius_deg")
        if not -90.0 <= dec <= 90.0:
            raise EmptyRegionError(f"ROI centre declination {dec} deg is outside [-90, 90]: give (ra, dec) in degrees")
        if not radius_deg > 0:
            raise EmptyRegionError(f"ROI radius must be positive, got {radius_deg}")
        vec = unit_vectors(ra, dec)
        pix = hp.query_disc(nside, vec, np.radians(radius_deg), nest=nest, inclusive=False)
        return cls(nside, nest, pix, meta={"center_ra": ra, "center_dec": dec, "radius_deg": float(radius_deg)})

    @classmethod
    def from_galactic_box(cls, l_range, b_range, nside: int, nest: bool = True) -> HealpixROI:
        """Pixels whose centres satisfy ``l_min <= l <= l_max`` and ``b_min <= b <= b_max`` (Galactic; ``l`` may
        wrap, e.g. (350, 10) or (-10, 10)).

        Parameters
        ----------
        l_range, b_range : (float, float) or Quantity
            ``(l_min, l_max)`` and ``(b_min, b_max)``: numbers in deg, angle Quantities, or an angle Quantity
            of two values (e.g. ``[-10, 10] * u.deg``).
        nside : int
            HEALPix resolution parameter.
        nest : bool
            NESTED (``True``) or RING ordering.
        """
        l0, l1 = (to_value(v, "deg", "l_range") for v in l_range)
        b0, b1 = (to_value(v, "deg", "b_range") for v in b_range)
        width = (l1 - l0) % 360.0 if l1 != l0 else 0.0
        if not (width > 0 and -90 <= b0 < b1 <= 90):
            raise EmptyRegionError(f"empty Galactic box l {l_range}, b {b_range}: need l_min != l_max, b_min < b_max")
        if nside > 64 and width < 356:  # candidates: children of a covering at nside 64 (0.9 deg pixels)
            wide = cls.from_galactic_box((l0 - 1.5, l1 + 1.5), (max(b0 - 1.5, -90), min(b1 + 1.5, 90)), 64, True)
            ratio = (nside // 64) ** 2
            pix = (wide.pixels[:, None] * ratio + np.arange(ratio)[None, :]).ravel()  # nested children
            if not nest:
                pix = hp.nest2ring(nside, pix)
        else:
            pix = np.arange(hp.nside2npix(nside))
        theta, phi = hp.pix2ang(nside, pix, nest=nest)
        g = SkyCoord(np.degrees(phi), 90 - np.degrees(theta), unit="deg", frame="icrs").galactic
        dl = (g.l.deg - l0) % 360.0
        inside = (dl <= width) & (g.b.deg >= b0) & (g.b.deg <= b1)
        meta = {"l_range": (l0, l1), "b_range": (b0, b1)}
        c = SkyCoord((l0 + width / 2) % 360.0, (b0 + b1) / 2, unit="deg", frame="galactic").icrs
        meta.update(center_ra=float(c.ra.deg), center_dec=float(c.dec.deg))
        return cls(nside, nest, pix[inside], meta=meta)

    @classmethod
    def from_region(cls, region, nside: int, nest: bool = True) -> HealpixROI:
        """Pixels whose centres fall inside a ``regions`` sky region (e.g. ``CircleSkyRegion``)."""
        from astropy.wcs import WCS

        center = region.center.icrs
        # a local tangent-plane WCS only to test containment; the sky pixels stay HEALPix
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crval = [center.ra.deg, center.dec.deg]
        wcs.wcs.cdelt = [-0.01, 0.01]
        wcs.wcs.crpix = [0.0, 0.0]
        extent = max(
            getattr(region, a).to_value("deg")
            for a in ("radius", "width", "height", "outer_radius")
            if hasattr(region, a)
        )
        candidates = hp.query_disc(
            nside, unit_vectors(center.ra.deg, center.dec.deg), np.radians(extent * 1.01), nest=nest, inclusive=True
        )
        theta, phi = hp.pix2ang(nside, candidates, nest=nest)
        coords = SkyCoord(np.degrees(phi), 90 - np.degrees(theta), unit="deg", frame="icrs")
        inside = region.contains(coords, wcs)
        return cls(nside, nest, candidates[inside], meta={"center_ra": center.ra.deg, "center_dec": center.dec.deg})

    @property
    def n_pix(self) -> int:
        return self.pixels.size

    @property
    def pixel_area_sr(self) -> float:
        return hp.nside2pixarea(self.nside)

    def radec(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre right ascension and declination (deg)."""
        theta, phi = hp.pix2ang(self.nside, self.pixels, nest=self.nest)
        return np.degrees(phi), 90.0 - np.degrees(theta)

    def unit_vectors(self) -> np.ndarray:
        """Pixel-centre unit vectors, shape (n_pix, 3)."""
        return np.stack(hp.pix2vec(self.nside, self.pixels, nest=self.nest), axis=-1)

    def center(self) -> tuple[float, float]:
        """ROI centre (ra, dec) in deg: the disc centre, or the mean pixel direction."""
        if "center_ra" in self.meta:
            return self.meta["center_ra"], self.meta["center_dec"]
        v = self.unit_vectors().mean(axis=0)
        theta, phi = hp.vec2ang(v)
        return float(np.degrees(phi[0])), float(90 - np.degrees(theta[0]))

    def contains(self, ra_deg, dec_deg) -> np.ndarray:
        """Whether positions fall in a pixel of the ROI."""
        pix = hp.ang2pix(self.nside, ra_deg, dec_deg, nest=self.nest, lonlat=True)
        return np.isin(pix, self.pixels)

    def index_of(self, pixel_ids) -> np.ndarray:
        """Position of ``pixel_ids`` in the ROI's pixel list, -1 where absent."""
        pixel_ids = np.asarray(pixel_ids, dtype=np.int64)
        pos = np.searchsorted(self.pixels, pixel_ids)
        pos = np.clip(pos, 0, self.n_pix - 1)
        return np.where(self.pixels[pos] == pixel_ids, pos, -1)

    def same_as(self, other: HealpixROI) -> bool:
        return self.nside == other.nside and self.nest == other.nest and np.array_equal(self.pixels, other.pixels)


def disc_sums(values, roi: HealpixROI, radius_deg: float) -> np.ndarray:
    """For each ROI pixel, the sum of ``values`` (shape (..., n_pix)) over the ROI pixels within
    ``radius_deg`` of it (a top-hat smoothing; one disc query per pixel)."""
    values = np.asarray(values, dtype=float)
    out = np.empty_like(values)
    for i, v in enumerate(roi.unit_vectors()):
        idx = roi.index_of(hp.query_disc(roi.nside, v, np.radians(radius_deg), nest=roi.nest))
        out[..., i] = values[..., idx[idx >= 0]].sum(axis=-1)
    return out


def _roi_bounds(roi: HealpixROI):
    """(dec_lo, dec_hi, ra_lo, ra_width) enclosing every ROI pixel (ra_width None: no RA cut)."""
    cached = roi.__dict__.get("_bounds_cache")  # the ROI is immutable: computed once per instance
    if cached is not None:
        return cached
    ra, dec = roi.radec()
    margin = np.degrees(hp.max_pixrad(roi.nside)) * 1.01
    dec_lo, dec_hi = dec.min() - margin, dec.max() + margin
    # smallest RA arc holding all pixel centres: the complement of the largest gap
    r = np.sort(ra % 360.0)
    gaps = np.diff(np.concatenate([r, [r[0] + 360.0]]))
    g = int(np.argmax(gaps))
    ra_lo, width = r[(g + 1) % r.size], 360.0 - gaps[g]
    cos_min = np.cos(np.radians(min(max(abs(dec_lo), abs(dec_hi)), 90.0)))
    pad = margin / cos_min if cos_min > 1e-3 else 360.0
    if dec_hi >= 90.0 - margin or dec_lo <= -90.0 + margin or width + 2 * pad >= 360.0:
        bounds = (dec_lo, dec_hi, 0.0, None)
    else:
        bounds = (dec_lo, dec_hi, (ra_lo - pad) % 360.0, width + 2 * pad)
    object.__setattr__(roi, "_bounds_cache", bounds)
    return bounds


def bin_events(ra_deg, dec_deg, bin_index, roi: HealpixROI, n_bins: int) -> tuple[np.ndarray, dict]:
    """Histogram events into a ``(n_bins, n_pix)`` counts map over ``roi``.

    Parameters
    ----------
    ra_deg, dec_deg : array_like
        Event directions (ICRS, deg).
    bin_index : array_like of int
        Analysis bin of each event; values outside ``[0, n_bins)`` are counted as outside.
    roi : HealpixROI
    n_bins : int

    Returns
    -------
    counts : ndarray, shape (n_bins, n_pix)
    report : dict
        How many events were binned, fell outside the ROI, or outside the analysis bins:
        nothing is dropped silently.
    """
    ra_deg, dec_deg = np.asarray(ra_deg, float), np.asarray(dec_deg, float)
    bin_index = np.asarray(bin_index)
    # cheap bounding-box test first: in an all-sky stream most events are far from the ROI
    dec_lo, dec_hi, ra_lo, ra_width = _roi_bounds(roi)
    near = (dec_deg >= dec_lo) & (dec_deg <= dec_hi)
    if ra_width is not None:
        near &= (ra_deg - ra_lo) % 360.0 <= ra_width
    idx = np.flatnonzero(near)
    pos = np.full(ra_deg.size, -1, dtype=np.int64)
    pos[idx] = roi.index_of(hp.ang2pix(roi.nside, ra_deg[idx], dec_deg[idx], nest=roi.nest, lonlat=True))
    in_bins = (bin_index >= 0) & (bin_index < n_bins)
    keep = (pos >= 0) & in_bins
    flat = bin_index[keep].astype(np.int64) * roi.n_pix + pos[keep]
    counts = np.bincount(flat, minlength=n_bins * roi.n_pix).reshape(n_bins, roi.n_pix).astype(float)
    report = {
        "n_events": int(ra_deg.size),
        "n_binned": int(keep.sum()),
        "n_outside_roi": int(np.sum(pos < 0)),
        "n_outside_bins": int(np.sum(~in_bins & (pos >= 0))),
    }
    return counts, report


def _gammapy_disc_region(roi: HealpixROI) -> str | None:
    """``HPX_REG`` string ``DISK(ra,dec,radius)`` if gammapy rebuilds exactly ``roi.pixels`` from it."""
    try:
        ra, dec, radius = (float(roi.meta[k]) for k in ("center_ra", "center_dec", "radius_deg"))
    except (KeyError, TypeError, ValueError):
        return None
    # the pixel list as gammapy's HpxGeom.get_index_list computes it for a DISK region
    theta, phi = np.pi / 2 - np.radians(dec), np.radians(ra)
    vec = np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)])
    pix = hp.query_disc(roi.nside, vec, np.radians(radius), inclusive=False, nest=roi.nest)
    if not np.array_equal(np.sort(pix), roi.pixels):
        return None
    return f"DISK({ra!r},{dec!r},{radius!r})"


@dataclass(frozen=True, eq=False)
class HealpixMaps:
    """Per-analysis-bin values over the pixels of a :class:`HealpixROI`.

    Parameters
    ----------
    data : ndarray, shape (n_bins, n_pix)
    roi : HealpixROI
    bin_names : tuple of str
    unit : str
        e.g. ``""`` for counts.
    """

    data: np.ndarray
    roi: HealpixROI
    bin_names: tuple
    unit: str = ""

    def __post_init__(self):
        data = np.asarray(self.data, dtype=float)
        if data.ndim == 1:
            data = data[None]
        if data.shape != (len(self.bin_names), self.roi.n_pix):
            raise MapFormatError(
                f"map data has shape {data.shape}, expected (n_bins, n_pix) = ({len(self.bin_names)}, {self.roi.n_pix})"
            )
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "bin_names", tuple(self.bin_names))

    @property
    def n_bins(self) -> int:
        return len(self.bin_names)

    def to_full_sky(self, bin_index=None) -> np.ndarray:
        """A full-sky healpy array (``UNSEEN`` outside the ROI) of one bin, or of the sum over bins."""
        values = self.data.sum(axis=0) if bin_index is None else self.data[bin_index]
        full = np.full(hp.nside2npix(self.roi.nside), hp.UNSEEN)
        full[self.roi.pixels] = values
        return full

    def write(self, path, overwrite: bool = False) -> None:
        """Write in the GADF ``EXPLICIT`` HEALPix layout (readable by gammapy and healpy).

        healpy reads any ROI (``read_map(path, partial=True, field=i)``). gammapy rebuilds an explicit
        geometry only from the ``HPX_REG`` region string, which is written for disc ROIs
        (:meth:`HealpixROI.from_disc`); other ROIs are not readable by ``gammapy.maps.Map.read``.
        """
        path = Path(path)
        cols = [fits.Column("PIX", "K", array=self.roi.pixels)]
        cols += [fits.Column(f"CHANNEL{i + 1}", "D", array=self.data[i]) for i in range(self.n_bins)]
        hdu = fits.BinTableHDU.from_columns(cols, name="SKYMAP")
        h = hdu.header
        h["PIXTYPE"], h["ORDERING"] = "HEALPIX", "NESTED" if self.roi.nest else "RING"
        h["INDXSCHM"], h["COORDSYS"], h["HPX_CONV"] = "EXPLICIT", "CEL", "GADF"
        h["NSIDE"], h["ORDER"] = self.roi.nside, int(np.log2(self.roi.nside))
        h["FIRSTPIX"], h["LASTPIX"] = 0, hp.nside2npix(self.roi.nside) - 1
        h["BANDSHDU"], h["BUNIT"] = "SKYMAP_BANDS", self.unit
        h["SKYFITMT"] = json.dumps({k: v for k, v in self.roi.meta.items() if np.isscalar(v)})
        region = _gammapy_disc_region(self.roi)
        if region is not None:  # gammapy rebuilds an EXPLICIT geometry from HPX_REG, not from PIX
            h["HPX_REG"] = region
        edges = np.arange(self.n_bins + 1, dtype=float)
        bands = fits.BinTableHDU.from_columns(
            [
                fits.Column("CHANNEL", "K", array=np.arange(self.n_bins)),
                fits.Column("BIN_MIN", "D", array=edges[:-1]),
                fits.Column("BIN_MAX", "D", array=edges[1:]),
            ],
            name="SKYMAP_BANDS",
        )
        bands.header["AXCOLS1"], bands.header["INTERP1"] = "BIN_MIN,BIN_MAX", "lin"
        names = fits.BinTableHDU.from_columns(
            [fits.Column("NAME", "64A", array=np.array(self.bin_names, dtype="U64"))], name="ANALYSIS_BINS"
        )
        fits.HDUList([fits.PrimaryHDU(), hdu, bands, names]).writeto(path, overwrite=overwrite)

    @classmethod
    def read(cls, path, nside: int | None = None, nest: bool | None = None) -> HealpixMaps:
        """Read a file written by :meth:`write` (or any GADF ``EXPLICIT`` HEALPix map).

        ``nside`` and ``nest``, when given, are checked against the file: a mismatch raises
        :class:`MapFormatError` naming the file, rather than silently mixing pixelisations.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"map file {path} does not exist")
        try:
            with fits.open(path) as hdul:
                hdu = hdul["SKYMAP"]
                h = hdu.header
                file_nside = int(h["NSIDE"])
                file_nest = str(h["ORDERING"]).upper().startswith("NEST")
                if str(h.get("INDXSCHM", "EXPLICIT")).upper() != "EXPLICIT":
                    raise MapFormatError(f"{path}: only INDXSCHM=EXPLICIT partial-sky maps are supported")
                pix = np.asarray(hdu.data["PIX"], dtype=np.int64)
                chans = sorted((c for c in hdu.columns.names if c.startswith("CHANNEL")), key=lambda c: int(c[7:]))
                data = np.stack([np.asarray(hdu.data[c], dtype=float) for c in chans])
                if "SKYFITMT" in h and "ANALYSIS_BINS" not in hdul:  # skyfit always writes it
                    raise MapFormatError(
                        f"{path} lacks its ANALYSIS_BINS table: the file is truncated or "
                        "corrupt; re-create it with skyfit (HealpixMaps.write)"
                    )
                names = (
                    tuple(str(n).strip() for n in hdul["ANALYSIS_BINS"].data["NAME"])
                    if "ANALYSIS_BINS" in hdul
                    else tuple(f"bin{i}" for i in range(len(chans)))
                )
                unit = str(h.get("BUNIT", ""))
                meta = json.loads(h.get("SKYFITMT", "{}"))
        except MapFormatError:
            raise
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise MapFormatError(
                f"{path} is not a readable HEALPix map file ({type(exc).__name__}: {exc}); "
                "re-create it with skyfit (HealpixMaps.write) or check the download"
            ) from exc
        if nside is not None and nside != file_nside:
            raise MapFormatError(
                f"{path} has nside={file_nside}, but nside={nside} was expected: "
                "re-bin the events at the analysis nside or use healpy.ud_grade"
            )
        if nest is not None and nest != file_nest:
            raise MapFormatError(
                f"{path} is in {'NESTED' if file_nest else 'RING'} ordering, but "
                f"{'NESTED' if nest else 'RING'} was expected: convert with healpy.reorder"
            )
        order = np.argsort(pix)
        roi = HealpixROI(file_nside, file_nest, pix[order], meta=meta)
        return cls(data[:, order], roi, names, unit)

    def check_compatible(self, other: HealpixMaps, what: str = "map") -> None:
        """Raise :class:`MapFormatError` unless ``other`` has the same pixels and bins."""
        if other.roi.nside != self.roi.nside or other.roi.nest != self.roi.nest:
            raise MapFormatError(
                f"{what} has nside={other.roi.nside} ({'NESTED' if other.roi.nest else 'RING'}), the counts "
                f"have nside={self.roi.nside} ({'NESTED' if self.roi.nest else 'RING'}): use the same pixelisation"
            )
        if not np.array_equal(other.roi.pixels, self.roi.pixels):
            raise MapFormatError(f"{what} covers other pixels than the counts: build both on one HealpixROI")
        if other.n_bins != self.n_bins:
            raise MapFormatError(f"{what} has {other.n_bins} analysis bins, the counts have {self.n_bins}")

    def plot(self, bin_index=None, ax=None, kind: str = "zoom", title: str | None = None, **kwargs):
        """Plot one bin (or the sum): ``kind="zoom"`` (gnomonic around the ROI) or ``"mollweide"``."""
        import matplotlib.pyplot as plt

        full = self.to_full_sky(bin_index)
        title = title or (self.bin_names[bin_index] if bin_index is not None else "all bins")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if kind == "mollweide":
                hp.mollview(full, nest=self.roi.nest, title=title, hold=ax is not None, **kwargs)
            else:
                ra, dec = self.roi.center()
                radius = self.roi.meta.get("radius_deg", 3.0)
                reso = 2.2 * radius * 60 / 200
                hp.gnomview(
                    full,
                    nest=self.roi.nest,
                    rot=(ra, dec),
                    xsize=200,
                    reso=reso,
                    title=title,
                    hold=ax is not None,
                    notext=True,
                    **kwargs,
                )
                hp.graticule(dpar=1, dmer=1)
        return plt.gcf()

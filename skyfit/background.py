"""Background by direct integration (DI) from the event stream, with exclusion regions.

A ground array's cosmic-ray background is estimated from its own events. Within a time window (1-4 h)
the detector's acceptance in local coordinates is assumed constant in shape while the all-sky rate may
vary, so the expected number of events in local cell ``c`` during time step ``k`` is ``r_k a_c``
(Atkins et al. 2003, ApJ 595 803; Abdo et al. 2012 for HAWC; Wang, Zha, Hu et al. 2022, JINST 17
P12003 for LHAASO). Here:

* local cells are a grid in (hour angle, declination of date) of ``cell_deg`` (the local frame
  rotated to the equator, so that the sky's drift is a shift along one axis), and time steps are bins of
  the local sidereal angle of the same width; the sky cell of an event is ``hour-angle cell + step``
  (or the next one, with probability 1/2 for uniform arrival within a step, which the prediction
  includes exactly);
* events inside exclusion regions are left out, and ``r`` and ``a`` are their joint Poisson
  maximum-likelihood estimate given which (step, cell) pairs were excluded (a few fixed-point
  iterations; with no exclusion the estimate is the classic ``r_k = n_k``, ``a_c = m_c / N``);
* the predicted background in sky cell ``s`` is ``sum_k r_k a_{s-k}``: a circular convolution along
  right ascension, done with FFTs, accumulated over the windows of a time block and interpolated
  (bilinear in density) to the ROI's HEALPix pixel centres, converted to CIRS at the block's mid-time.

Everything is per analysis bin.

Each event also enters its own pixel's background estimate (through the rate and the acceptance), so
``(n - b) / sqrt(b)`` has a width slightly below 1, about ``sqrt(1 - 2 / K)`` with ``K`` the number of
grid cells a sky cell crosses in one window (120 for 2 h at 0.25 deg; measured 0.981 for 2 h windows
and 0.99 for 4 h on a month-long background-only stream, see ``benchmarks/di_validation.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import healpy as hp
import numpy as np

from .coords import SiteFrame
from .maps import HealpixROI, bin_events, disc_sums

__all__ = ["DIConfig", "Exclusions", "direct_integration_block", "DIError", "grow_exclusions"]


class DIError(ValueError):
    """Bad input or configuration for direct integration."""


@dataclass(frozen=True)
class DIConfig:
    """Direct-integration settings.

    Parameters
    ----------
    window_hours : float
        Length of the windows in which the acceptance shape is held constant (1-4 h is usual).
    cell_deg : float
        Grid spacing in hour angle / right ascension and declination (deg).
    max_zenith_deg : float
        Events above this zenith angle are not used (they must not be in the stream either).
    n_iter : int
        Fixed-point iterations of the rate x acceptance estimate when exclusions are present.
    """

    window_hours: float = 2.0
    cell_deg: float = 0.25
    max_zenith_deg: float = 50.0
    n_iter: int = 8

    def __post_init__(self):
        if not (0 < self.window_hours <= 24):
            raise DIError(f"window_hours must be in (0, 24], got {self.window_hours}")
        n = 360.0 / self.cell_deg
        if not (0.02 <= self.cell_deg <= 2.0) or abs(n - round(n)) > 1e-9:
            raise DIError(f"cell_deg must divide 360 and lie in [0.02, 2], got {self.cell_deg}")
        if not (0 < self.max_zenith_deg < 90):
            raise DIError(f"max_zenith_deg must be in (0, 90), got {self.max_zenith_deg}")
        if self.n_iter < 1:
            raise DIError(f"n_iter must be at least 1, got {self.n_iter}")


@dataclass
class Exclusions:
    """Sky regions whose events do not enter the background estimate, as a HEALPix mask.

    Build with :meth:`from_discs`, :meth:`from_catalog`, :meth:`from_regions` and/or a Galactic latitude
    band, and combine with ``|``.
    """

    nside: int = 256
    mask: np.ndarray = field(default=None)  # RING ordering, bool, full sky
    description: list = field(default_factory=list)

    def __post_init__(self):
        if self.mask is None:
            self.mask = np.zeros(hp.nside2npix(self.nside), bool)

    def __or__(self, other: Exclusions) -> Exclusions:
        if other.nside != self.nside:
            other = Exclusions(self.nside, hp.ud_grade(other.mask.astype(float), self.nside) > 0, other.description)
        return Exclusions(self.nside, self.mask | other.mask, self.description + other.description)

    @property
    def empty(self) -> bool:
        return not self.mask.any()

    def contains(self, ra_deg, dec_deg) -> np.ndarray:
        return self.mask[hp.ang2pix(self.nside, ra_deg, dec_deg, lonlat=True)]

    def fraction_of_sky(self) -> float:
        return float(self.mask.mean())

    @classmethod
    def from_discs(cls, ra_deg, dec_deg, radius_deg, nside: int = 256) -> Exclusions:
        ra, dec, rad = np.broadcast_arrays(np.atleast_1d(ra_deg), np.atleast_1d(dec_deg), np.atleast_1d(radius_deg))
        mask = np.zeros(hp.nside2npix(nside), bool)
        for r, d, a in zip(ra, dec, rad, strict=True):
            if not a > 0:
                raise DIError(f"exclusion radius must be positive, got {a} deg at ({r}, {d})")
            mask[hp.query_disc(nside, hp.ang2vec(r, d, lonlat=True), np.radians(a), inclusive=True)] = True
        return cls(nside, mask, [f"{len(ra)} disc(s)"])

    @classmethod
    def galactic_band(cls, b_deg: float, nside: int = 256) -> Exclusions:
        if not b_deg > 0:
            raise DIError(f"Galactic latitude band half-width must be positive, got {b_deg}")
        theta, phi = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)))
        rot = hp.Rotator(coord=["C", "G"])
        th_g, _ = rot(theta, phi)
        b = 90.0 - np.degrees(th_g)
        return cls(nside, np.abs(b) <= b_deg, [f"|b| <= {b_deg} deg"])

    @classmethod
    def from_regions(cls, regions, nside: int = 256) -> Exclusions:
        """From ``regions`` sky shapes (anything with ``contains(SkyCoord, wcs)``), rasterised at ``nside``."""
        mask = np.zeros(hp.nside2npix(nside), bool)
        for reg in regions if isinstance(regions, list | tuple) else [regions]:
            mask[HealpixROI.from_region(reg, nside, nest=False).pixels] = True
        return cls(nside, mask, [f"{len(regions) if isinstance(regions, list | tuple) else 1} region(s)"])

    @classmethod
    def from_catalog(cls, table, radius_deg: float = 1.0, extension_factor: float = 2.0, nside: int = 256):
        """Discs around catalogue sources: ``radius_deg + extension_factor * r39`` (an astropy Table or
        path with columns ``RA``/``DEC`` (or ``ra``/``dec``) in deg and optional ``r39``)."""
        from astropy.table import Table

        t = Table.read(table) if not isinstance(table, Table) else table
        cols = {c.lower(): c for c in t.colnames}
        ra_col = next((cols[c] for c in ("ra", "raj2000", "ra_j2000") if c in cols), None)
        dec_col = next((cols[c] for c in ("dec", "decj2000", "dej2000", "dec_j2000") if c in cols), None)
        if ra_col is None or dec_col is None:
            raise DIError(f"catalogue needs RA and DEC columns (deg; RA/RAJ2000, DEC/DECJ2000); it has {t.colnames}")
        ext = np.nan_to_num(np.asarray(t[cols["r39"]], float)) if "r39" in cols else 0.0
        radius = radius_deg + extension_factor * ext
        out = cls.from_discs(np.asarray(t[ra_col], float), np.asarray(t[dec_col], float), radius, nside)
        out.description = [f"{len(t)} catalogue source(s), radius {radius_deg} deg + {extension_factor} r39"]
        return out


@dataclass(frozen=True)
class _Grid:
    cell: float
    n_ra: int
    dec_lo: float
    n_dec: int

    @classmethod
    def for_site(cls, lat_deg, config: DIConfig) -> _Grid:
        lo = max(-90.0, np.floor(lat_deg - config.max_zenith_deg - 1.0))
        hi = min(90.0, np.ceil(lat_deg + config.max_zenith_deg + 1.0))
        n_dec = int(np.ceil((hi - lo) / config.cell_deg))
        return cls(config.cell_deg, int(round(360.0 / config.cell_deg)), lo, n_dec)

    def cell_solid_angle(self) -> np.ndarray:
        edges = np.radians(self.dec_lo + self.cell * np.arange(self.n_dec + 1))
        return np.radians(self.cell) * np.diff(np.sin(np.clip(edges, -np.pi / 2, np.pi / 2)))


def _corr(fa, b_real, n):
    """Circular correlation along axis 0: sum_i a[i] b[i + k] given rfft(a) (``fa``)."""
    return np.fft.irfft(np.conj(fa) * np.fft.rfft(b_real, axis=0), n=n, axis=0)


def _exclusion_fraction(grid: _Grid, frame: SiteFrame, exclusions: Exclusions, t_mid: float):
    """The rows of the CIRS grid (at the block's mid-time) that hold an excluded cell, the exclusion
    fraction ``X~`` on them (averaged over the two sky cells an event can land in), and its FFT."""
    n_ra, n_dec, cell = grid.n_ra, grid.n_dec, grid.cell
    ra_c = (np.arange(n_ra) + 0.5) * cell
    dec_c = grid.dec_lo + (np.arange(n_dec) + 0.5) * cell
    # only rows near excluded declinations (CIRS and ICRS differ by < 1 deg for decades)
    _, ex_dec = hp.pix2ang(exclusions.nside, np.flatnonzero(exclusions.mask), lonlat=True)
    pad = 1.0 + np.degrees(hp.max_pixrad(exclusions.nside))
    near = np.flatnonzero((dec_c >= ex_dec.min() - pad) & (dec_c <= ex_dec.max() + pad))
    x = np.zeros((n_ra, n_dec))
    if near.size:
        rr, dd = np.meshgrid(ra_c, np.clip(dec_c[near], -89.999, 89.999), indexing="ij")
        ri, di = frame.cirs_to_icrs(rr.ravel(), dd.ravel(), t_mid)
        x[:, near] = exclusions.contains(ri, di).reshape(n_ra, near.size)
    ex_rows = np.flatnonzero(x.any(axis=0))
    x_t = 0.5 * (x + np.roll(x, -1, axis=0))[:, ex_rows]
    return ex_rows, x_t, np.fft.rfft(x_t, axis=0)


def _rate_and_acceptance(n_k, m, ex_rows, x_t, fx_t, n_iter: int):
    """The rate ``r_k`` and acceptance ``a_c`` of one window and bin from the step counts ``n_k`` and the
    local-cell counts ``m``; with excluded rows (``ex_rows``), their joint Poisson ML estimate."""
    n_ra = m.shape[0]
    a = m / m.sum()
    r = n_k
    if ex_rows is not None and ex_rows.size:
        # joint Poisson ML of E[M_kc] = r_k a_c U_kc: alternate the two closed-form updates
        m_ex = m[:, ex_rows]
        for _ in range(n_iter):
            a_sum = a.sum()
            d_k = a_sum - _corr(np.fft.rfft(a[:, ex_rows], axis=0), x_t, n_ra).sum(axis=1)
            r = np.divide(n_k, d_k, out=np.zeros_like(n_k), where=d_k > 1e-12)
            f_ex = r.sum() - np.fft.irfft(np.conj(np.fft.rfft(r))[:, None] * fx_t, n=n_ra, axis=0)
            a = m / r.sum()
            a[:, ex_rows] = np.divide(m_ex, f_ex, out=np.zeros_like(m_ex), where=f_ex > 1e-12)
            a /= a.sum()
    return r, a


def _grid_to_roi(sky, grid: _Grid, rows, rc, y, y0, roi: HealpixROI) -> np.ndarray:
    """To HEALPix: density on the CIRS grid (``rows`` of it), bilinear at the ROI pixel centres (CIRS
    right ascension ``rc`` and fractional row ``y`` at mid-time, ``y0`` its lower row)."""
    n_ra, cell = grid.n_ra, grid.cell
    density = sky / grid.cell_solid_angle()[None, None, rows]
    x = rc / cell - 0.5
    x0 = np.floor(x).astype(np.int64)
    fx, fy = x - x0, np.clip(y - y0, 0.0, 1.0)
    x0 %= n_ra
    x1 = (x0 + 1) % n_ra
    y0 = y0 - rows[0]
    return (
        density[:, x0, y0] * (1 - fx) * (1 - fy)
        + density[:, x1, y0] * fx * (1 - fy)
        + density[:, x0, y0 + 1] * (1 - fx) * fy
        + density[:, x1, y0 + 1] * fx * fy
    ) * roi.pixel_area_sr


def direct_integration_block(
    events: dict,
    t_start: float,
    t_stop: float,
    roi: HealpixROI,
    n_bins: int,
    frame: SiteFrame,
    config: DIConfig = DIConfig(),
    exclusions: Exclusions | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Counts and DI background (each ``(n_bins, n_pix)``) over ``roi`` from the events of one time block.

    ``events`` holds ``TIME``, ``RA``, ``DEC``, ``AZ``, ``ZEN``, ``BIN`` for ``t_start <= TIME < t_stop``,
    sorted by time; the block is cut into windows of ``config.window_hours`` (the last one may be
    shorter). Returns ``(counts, background, report)``; the report counts the events used, excluded,
    outside the zenith cut or the bins, and the windows with no events.
    """
    t = np.asarray(events["TIME"], float)
    if t.size and (t[0] < t_start or t[-1] >= t_stop):
        raise DIError(f"events from {t[0]:.6f} to {t[-1]:.6f} MJD fall outside the block [{t_start:.6f}, {t_stop:.6f})")
    grid = _Grid.for_site(frame.site.lat_deg, config)
    n_ra, n_dec, cell = grid.n_ra, grid.n_dec, grid.cell
    b_idx = np.asarray(events["BIN"]).astype(np.int64)
    zen = np.asarray(events["ZEN"], float)
    in_bins = (b_idx >= 0) & (b_idx < n_bins)
    in_zen = zen < config.max_zenith_deg
    h, dec_d = frame.local_to_hadec(np.asarray(events["AZ"], float), zen)
    i_h = np.minimum((h / cell).astype(np.int64), n_ra - 1)
    j = np.floor((dec_d - grid.dec_lo) / cell).astype(np.int64)
    in_grid = (j >= 0) & (j < n_dec)
    lst = np.degrees(frame.local_sidereal_angle(t))
    k = np.minimum((lst / cell).astype(np.int64), n_ra - 1)
    excluded = (
        exclusions.contains(events["RA"], events["DEC"]) if exclusions is not None and not exclusions.empty else None
    )
    use = in_bins & in_zen & in_grid
    if excluded is not None:
        use_acc = use & ~excluded
    else:
        use_acc = use
    window_days = config.window_hours / 24.0
    n_win = max(1, int(np.ceil((t_stop - t_start) / window_days - 1e-9)))
    w = np.minimum(((t - t_start) / window_days).astype(np.int64), n_win - 1)
    t_mid = 0.5 * (t_start + t_stop)

    # ROI pixel centres in CIRS at mid-time: only the grid rows they touch need the sky convolution
    ra_p, dec_p = roi.radec()
    rc, dc = frame.icrs_to_cirs(ra_p, dec_p, t_mid)
    y = (dc - grid.dec_lo) / cell - 0.5
    y0 = np.clip(np.floor(y).astype(np.int64), 0, n_dec - 2)
    rows = np.arange(y0.min(), y0.max() + 2)
    # exclusion fraction per sky cell (CIRS grid at the block's mid-time), averaged over the two sky
    # cells an event of hour-angle cell i and step k can land in: X~[i + k] = (X[i+k] + X[i+k+1]) / 2;
    # only rows holding an excluded cell enter the corrections (U = 1 - X~ elsewhere)
    ex_rows = x_t = fx_t = None
    if excluded is not None:
        ex_rows, x_t, fx_t = _exclusion_fraction(grid, frame, exclusions, t_mid)
    sky = np.zeros((n_bins, n_ra, rows.size))
    empty_windows = 0
    for wi in range(n_win):
        in_w = w == wi
        for b in range(n_bins):
            sel = use_acc & in_w & (b_idx == b)
            if not sel.any():
                empty_windows += int(b == 0 and not (use & in_w).any())
                continue
            n_k = np.bincount(k[sel], minlength=n_ra).astype(float)
            m = np.bincount(i_h[sel] * n_dec + j[sel], minlength=n_ra * n_dec).reshape(n_ra, n_dec).astype(float)
            r, a = _rate_and_acceptance(n_k, m, ex_rows, x_t, fx_t, config.n_iter)
            conv = np.fft.irfft(np.fft.rfft(r)[:, None] * np.fft.rfft(a[:, rows], axis=0), n=n_ra, axis=0)
            conv = np.maximum(conv, 0.0)  # a convolution of rates and acceptances: >= 0 but for FFT rounding (1e-17)
            sky[b] += 0.5 * (conv + np.roll(conv, 1, axis=0))
    bkg = _grid_to_roi(sky, grid, rows, rc, y, y0, roi)
    counts, binned = bin_events(events["RA"], events["DEC"], np.where(use, b_idx, -1), roi, n_bins)
    report = {
        "n_events": int(t.size),
        "n_used_for_background": int(use_acc.sum()),
        "n_excluded": int((use & ~use_acc).sum()),
        "n_above_zenith_cut": int((~in_zen).sum()),
        "n_outside_bins": int((~in_bins).sum()),
        "n_binned": binned["n_binned"],
        "n_windows": n_win,
        "n_empty_windows": empty_windows,
    }
    return counts, bkg, report


def grow_exclusions(
    exclusions: Exclusions | None,
    counts: np.ndarray,
    background: np.ndarray,
    roi: HealpixROI,
    threshold: float = 5.0,
    smooth_deg: float = 0.5,
    pad_deg: float = 0.5,
) -> tuple[Exclusions, int]:
    """Add to ``exclusions`` discs around excesses found in a first DI pass (the iteration step).

    Counts and background are summed over bins and within ``smooth_deg`` of each pixel; pixels whose
    Li & Ma-like significance ``(n - b) / sqrt(b)`` exceeds ``threshold`` are excluded with a margin of
    ``pad_deg``. Returns the new exclusions and the number of pixels that triggered.
    """
    exclusions = exclusions or Exclusions()
    sn, sb = disc_sums(np.stack([counts.sum(axis=0), background.sum(axis=0)]), roi, smooth_deg)
    sig = np.divide(sn - sb, np.sqrt(np.maximum(sb, 0.0)), out=np.zeros_like(sn), where=sb > 0)
    hot = roi.pixels[sig > threshold]
    if hot.size == 0:
        return exclusions, 0
    ra, dec = hp.pix2ang(roi.nside, hot, nest=roi.nest, lonlat=True)
    grown = Exclusions.from_discs(ra, dec, smooth_deg + pad_deg, exclusions.nside)
    grown.description = [f"{len(hot)} pixel(s) above {threshold} sigma in a first pass"]
    return exclusions | grown, len(hot)

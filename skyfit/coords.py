"""Fast, vectorised transforms between ICRS and a ground array's local frame (azimuth, zenith).

A year of events is 10^10-10^11 directions; astropy's ``AltAz`` transform, exact but of order a
microsecond per direction with per-time setup, is too slow for that. :class:`SiteFrame` does the same
chain as astropy (and ERFA's ``atciqz`` + ``atioq``) in NumPy:

ICRS direction → light deflection by the Sun → aberration (observer's barycentric velocity, diurnal
motion included) → bias-precession-nutation to CIRS → Earth rotation angle (from UT1) and longitude →
polar motion → local horizon (azimuth from north through east, zenith angle; no refraction).

The slowly varying quantities (observer velocity, Sun position, the CIRS matrix, polar motion) are
taken from astropy at time nodes (default every 10 min; offline: the IERS table bundled with astropy,
never a download) and held constant within +-5 min of a node; UT1 - UTC is interpolated and the Earth
rotation angle computed per event. Agreement with astropy's ``AltAz`` (pressure 0) is checked by the
tests to better than 0.05 arcsec (measured: about 0.01 arcsec), against a requirement of 1 arcsec.

Times are UTC Modified Julian Dates (float64: 0.5 microsecond resolution, 7 milliarcseconds of
rotation, over decades).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Site", "LHAASO_SITE", "HAWC_SITE", "SiteFrame", "radec_to_vector", "vector_to_radec"]

_SRS = 1.97412574336e-8  # Schwarzschild radius of the Sun / 2 / au (ERFA's ERFA_SRS)
_DAY_S = 86400.0


@dataclass(frozen=True)
class Site:
    """Geodetic position of an array (deg, deg, m)."""

    name: str
    lat_deg: float
    lon_deg: float
    height_m: float

    def earth_location(self):
        import astropy.units as u
        from astropy.coordinates import EarthLocation

        return EarthLocation(lon=self.lon_deg * u.deg, lat=self.lat_deg * u.deg, height=self.height_m * u.m)


# LHAASO: Haizi Mountain, Daocheng (29.36 N, 100.14 E, 4410 m; issue #4 and the LHAASO papers).
LHAASO_SITE = Site("LHAASO", 29.36, 100.14, 4410.0)
# HAWC: Sierra Negra (18.99 N, 97.31 W, 4100 m; Abeysekara et al. 2017, ApJ 843 39).
HAWC_SITE = Site("HAWC", 18.99, -97.31, 4100.0)


def radec_to_vector(ra_deg, dec_deg) -> np.ndarray:
    """Unit vectors (..., 3) of equatorial positions in degrees (``skyfit.maps.unit_vectors`` is this one)."""
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    c = np.cos(dec)
    return np.stack([c * np.cos(ra), c * np.sin(ra), np.sin(dec)], axis=-1)


def vector_to_radec(v) -> tuple[np.ndarray, np.ndarray]:
    ra = np.degrees(np.arctan2(v[..., 1], v[..., 0])) % 360.0
    dec = np.degrees(np.arctan2(v[..., 2], np.hypot(v[..., 0], v[..., 1])))
    return ra, dec


def _normalise(v):
    return v / np.sqrt(np.sum(v * v, axis=-1, keepdims=True))


class SiteFrame:
    """ICRS ↔ local (azimuth, zenith) at ``site`` for times in ``[mjd_start, mjd_stop]`` (UTC MJD).

    Parameters
    ----------
    site : Site
    mjd_start, mjd_stop : float
        Time span the frame serves; times outside raise ``ValueError``.
    node_s : float
        Spacing of the astropy time nodes (s). 600 s keeps the interpolation error below 1e-3 arcsec.
    """

    def __init__(self, site: Site, mjd_start: float, mjd_stop: float, node_s: float = 600.0):
        from astropy.coordinates import AltAz
        from astropy.coordinates.erfa_astrom import erfa_astrom
        from astropy.time import Time
        from astropy.utils import iers

        if not mjd_stop >= mjd_start:
            raise ValueError(f"mjd_stop ({mjd_stop}) must not precede mjd_start ({mjd_start})")
        self.site, self.mjd_start, self.mjd_stop = site, float(mjd_start), float(mjd_stop)
        step = node_s / _DAY_S
        self.nodes = np.arange(mjd_start - step, mjd_stop + 2 * step, step)
        with iers.conf.set_temp("auto_download", False):  # offline and reproducible: bundled IERS table
            t = Time(self.nodes, format="mjd", scale="utc")
            astrom = erfa_astrom.get().apco(AltAz(obstime=t, location=site.earth_location()))
            self._dut1 = (t.ut1.mjd - t.utc.mjd) * _DAY_S  # UT1 - UTC (s) at the nodes
        self._v = np.asarray(astrom["v"])  # observer barycentric velocity / c
        self._bm1 = np.asarray(astrom["bm1"])
        self._eh = np.asarray(astrom["eh"])  # Sun -> observer unit vector
        self._em = np.asarray(astrom["em"])  # Sun -> observer distance (au)
        self._bpn = np.asarray(astrom["bpn"])  # ICRS -> CIRS (GCRS-like) matrix
        self._along = float(astrom["along"][0])
        self._xpl, self._ypl = np.asarray(astrom["xpl"]), np.asarray(astrom["ypl"])
        self._sphi, self._cphi = float(astrom["sphi"][0]), float(astrom["cphi"][0])
        if np.any(astrom["diurab"] != 0) or np.any(astrom["refa"] != 0):
            raise RuntimeError("unexpected astrom: diurnal aberration or refraction set by astropy")

    # --- helpers --------------------------------------------------------------------------------
    def _check_times(self, mjd):
        mjd = np.asarray(mjd, dtype=float)
        if mjd.size and (mjd.min() < self.mjd_start - 1e-9 or mjd.max() > self.mjd_stop + 1e-9):
            raise ValueError(
                f"times {mjd.min():.6f}-{mjd.max():.6f} MJD lie outside this frame's span "
                f"{self.mjd_start:.6f}-{self.mjd_stop:.6f}; build a SiteFrame covering them"
            )
        return mjd

    def _node(self, mjd):
        """Index of the nearest time node."""
        k = np.rint((np.asarray(mjd) - self.nodes[0]) / (self.nodes[1] - self.nodes[0]))
        return np.clip(k, 0, self.nodes.size - 1).astype(np.int64)

    def _segments(self, mjd):
        """(node index, index array) per node interval: the slowly varying quantities are taken
        at the nearest node, constant over +-node_s/2 (error below 0.01 arcsec)."""
        k = self._node(mjd)
        if mjd.size > 1 and np.any(np.diff(k) < 0):
            order = np.argsort(k, kind="stable")
        else:
            order = np.arange(mjd.size)
        ks = k[order]
        cuts = np.flatnonzero(np.diff(ks)) + 1
        for idx in np.split(order, cuts):
            if idx.size:
                yield int(k[idx[0]]), idx

    def local_sidereal_angle(self, mjd) -> np.ndarray:
        """Earth rotation angle plus the site's longitude (rad): CIRS hour angle = this - CIRS RA."""
        mjd = np.asarray(mjd, dtype=float)
        dut1 = np.interp(mjd, self.nodes, self._dut1)
        # ERA (IAU 2000): 2 pi (0.7790572732640 + 1.00273781191135448 Tu), Tu = JD(UT1) - 2451545
        tu = (mjd - 51544.5) + dut1 / _DAY_S
        frac = np.mod(tu, 1.0) + np.mod(0.7790572732640 + 0.00273781191135448 * tu, 1.0)
        return np.mod(2 * np.pi * frac + self._along, 2 * np.pi)

    def _apparent(self, p, k):
        """ICRS unit vectors -> aberrated, deflected directions (ERFA ldsun + ab), ICRS axes."""
        v, bm1, eh, em = self._v[k], self._bm1[k], self._eh[k], self._em[k]
        # ERFA ldsun / ld: deflection by the Sun
        pe = p @ eh
        w = _SRS / em / np.maximum(1.0 + pe, 1e-6 / max(em * em, 1.0))
        pnat = p + w[:, None] * (eh[None, :] - pe[:, None] * p)  # p x (eh x p)
        # ERFA ab: relativistic aberration
        pdv = pnat @ v
        w1 = 1.0 + pdv / (1.0 + bm1)
        w2 = _SRS / em
        return _normalise(pnat * (bm1 - w2 * pdv)[:, None] + (w1 + w2)[:, None] * v[None, :])

    def _unapparent(self, target, k):
        """Inverse of :meth:`_apparent`: first-order inverse aberration, then fixed-point steps
        (residual below 1e-12 rad)."""
        v = self._v[k]
        p = _normalise(target - v[None, :] + (target @ v)[:, None] * target)
        for _ in range(2):
            p = _normalise(p + (target - self._apparent(p, k)))
        return p

    def _polar_matrix(self, k):
        """Matrix taking Cartesian -HA,Dec of date to polar-motion-corrected axes (ERFA atioq)."""
        sx, cx, sy, cy = np.sin(self._xpl[k]), np.cos(self._xpl[k]), np.sin(self._ypl[k]), np.cos(self._ypl[k])
        return np.array([[cx, 0.0, sx], [sx * sy, cy, -cx * sy], [-sx * cy, sy, cx * cy]])

    def _horizon_matrix(self):
        sp, cp = self._sphi, self._cphi
        return np.array([[sp, 0.0, -cp], [0.0, 1.0, 0.0], [cp, 0.0, sp]])

    # --- public ---------------------------------------------------------------------------------
    def icrs_to_local(self, ra_deg, dec_deg, mjd) -> tuple[np.ndarray, np.ndarray]:
        """(azimuth, zenith) in deg, azimuth from north through east, for ICRS (ra, dec) at ``mjd``."""
        shape = np.shape(ra_deg)
        mjd = np.broadcast_to(self._check_times(mjd), shape).ravel()
        p_all = radec_to_vector(np.ravel(ra_deg), np.ravel(dec_deg))
        eral_all = self.local_sidereal_angle(mjd)
        az, zen = np.empty(mjd.size), np.empty(mjd.size)
        horizon = self._horizon_matrix()
        for k, idx in self._segments(mjd):
            c = self._apparent(p_all[idx], k) @ self._bpn[k].T  # CIRS
            h = np.arctan2(c[:, 1], c[:, 0]) - eral_all[idx]  # -HA
            cd = np.hypot(c[:, 0], c[:, 1])
            xyz = np.stack([np.cos(h) * cd, np.sin(h) * cd, c[:, 2]], axis=1)
            aet = xyz @ (horizon @ self._polar_matrix(k)).T
            az[idx] = np.degrees(np.arctan2(aet[:, 1], -aet[:, 0])) % 360.0
            zen[idx] = np.degrees(np.arctan2(np.hypot(aet[:, 0], aet[:, 1]), aet[:, 2]))
        return az.reshape(shape), zen.reshape(shape)

    def local_to_icrs(self, az_deg, zen_deg, mjd) -> tuple[np.ndarray, np.ndarray]:
        """ICRS (ra, dec) in deg of local (azimuth, zenith) directions at ``mjd``."""
        shape = np.shape(az_deg)
        mjd = np.broadcast_to(self._check_times(mjd), shape).ravel()
        az, zd = np.radians(np.ravel(az_deg)), np.radians(np.ravel(zen_deg))
        s = np.sin(zd)
        aet_all = np.stack([-np.cos(az) * s, np.sin(az) * s, np.cos(zd)], axis=1)
        eral_all = self.local_sidereal_angle(mjd)
        out = np.empty((mjd.size, 3))
        horizon = self._horizon_matrix()
        for k, idx in self._segments(mjd):
            xyz = aet_all[idx] @ (horizon @ self._polar_matrix(k))  # inverse = transpose
            ri = np.arctan2(xyz[:, 1], xyz[:, 0]) + eral_all[idx]
            cd = np.hypot(xyz[:, 0], xyz[:, 1])
            c = np.stack([np.cos(ri) * cd, np.sin(ri) * cd, xyz[:, 2]], axis=1)
            out[idx] = self._unapparent(c @ self._bpn[k], k)  # inverse BPN, then inverse aberration
        ra, dec = vector_to_radec(out)
        return ra.reshape(shape), dec.reshape(shape)

    def icrs_to_cirs(self, ra_deg, dec_deg, mjd: float) -> tuple[np.ndarray, np.ndarray]:
        """CIRS (apparent, of date) RA, Dec (deg) of ICRS directions at one time ``mjd``."""
        k = int(self._node(self._check_times(mjd)))
        c = self._apparent(radec_to_vector(np.ravel(ra_deg), np.ravel(dec_deg)), k) @ self._bpn[k].T
        ra, dec = vector_to_radec(c)
        return ra.reshape(np.shape(ra_deg)), dec.reshape(np.shape(dec_deg))

    def cirs_to_icrs(self, ra_deg, dec_deg, mjd: float) -> tuple[np.ndarray, np.ndarray]:
        """Inverse of :meth:`icrs_to_cirs`."""
        k = int(self._node(self._check_times(mjd)))
        ra, dec = vector_to_radec(
            self._unapparent(radec_to_vector(np.ravel(ra_deg), np.ravel(dec_deg)) @ self._bpn[k], k)
        )
        return ra.reshape(np.shape(ra_deg)), dec.reshape(np.shape(dec_deg))

    def local_to_hadec(self, az_deg, zen_deg) -> tuple[np.ndarray, np.ndarray]:
        """Local (azimuth, zenith) -> (-hour angle, declination) of date, deg (a fixed rotation at the
        site; polar motion, below 0.5 arcsec, left out). CIRS RA = this -HA + local sidereal angle."""
        az, zd = np.radians(az_deg), np.radians(zen_deg)
        s = np.sin(zd)
        xaet, yaet, zaet = -np.cos(az) * s, np.sin(az) * s, np.cos(zd)
        x = self._sphi * xaet + self._cphi * zaet
        z = -self._cphi * xaet + self._sphi * zaet
        return np.degrees(np.arctan2(yaet, x)) % 360.0, np.degrees(np.arcsin(np.clip(z, -1, 1)))

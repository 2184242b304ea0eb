"""Units at the edges: public constructors take astropy ``Quantity`` and ``SkyCoord`` as well as plain numbers.

Plain numbers keep skyfit's units (deg for angles, TeV for energies, ``cm-2 s-1 TeV-1`` for amplitudes,
days for livetimes); a Quantity is converted to them with astropy. Inside JAX every value is a plain float.
"""

from __future__ import annotations

import numpy as np

__all__ = ["to_value", "lonlat", "is_pair"]


def _is_quantity(x) -> bool:
    import astropy.units as u

    return isinstance(x, u.Quantity)


def _is_coordinate(x) -> bool:
    from astropy.coordinates import BaseCoordinateFrame, SkyCoord

    return isinstance(x, SkyCoord | BaseCoordinateFrame)


def _unit_text(unit) -> str:
    """The unit as written (``cm-2 s-1 TeV-1``), or ``dimensionless``."""
    import astropy.units as u

    text = unit if isinstance(unit, str) else u.Unit(unit).to_string()
    return text if text.strip() else "dimensionless"


def is_pair(x) -> bool:
    """Whether ``x`` is a sequence of two values (a tuple of Quantities, a Quantity of shape (2,), ...)."""
    if isinstance(x, str) or _is_coordinate(x):
        return False
    try:
        return len(x) == 2
    except TypeError:  # a scalar, or a scalar Quantity
        return False


def to_value(x, unit, name: str):
    """``x`` as a plain float (an ndarray of floats for an array) in ``unit``.

    Parameters
    ----------
    x : float, array_like or astropy.units.Quantity
        A plain number is taken to be in ``unit`` already and passed through as a float; a Quantity is
        converted to ``unit``.
    unit : str or astropy.units.Unit
        The unit the value is wanted in (``""`` for a dimensionless value).
    name : str
        The argument's name, for the error message.

    Raises
    ------
    ValueError
        If the Quantity's unit does not convert to ``unit`` (the message names the argument, the unit
        given and the unit expected), or ``x`` is not a number.
    """
    import astropy.units as u

    expected = _unit_text(unit)
    if _is_quantity(x):
        try:
            value = x.to_value(u.Unit(unit))
        except u.UnitConversionError:
            hint = (
                "a dimensionless Quantity or a plain number"
                if expected == "dimensionless"
                else f"a Quantity convertible to {expected}, or a plain number in {expected}"
            )
            raise ValueError(
                f"{name} was given in {_unit_text(x.unit)}, which does not convert to {expected} (the unit "
                f"expected): give {hint}"
            ) from None
    elif _is_coordinate(x):
        raise ValueError(f"{name} must be a number (in {expected}) or a Quantity, not a sky coordinate")
    else:
        try:
            if x is None:
                raise TypeError
            value = np.asarray(x, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number (in {expected}) or a Quantity, got {x!r}") from None
    value = np.asarray(value, dtype=float)
    return float(value) if value.ndim == 0 else value


def lonlat(lon, lat=None, frame: str = "icrs", names=("lon", "lat")) -> tuple[float, float]:
    """A sky position as (longitude, latitude) in deg in ``frame`` (``"icrs"`` or ``"galactic"``).

    Parameters
    ----------
    lon : float, Quantity, SkyCoord, astropy frame or (lon, lat) pair
        The longitude (deg or an angle Quantity), or the whole position as a scalar ``SkyCoord`` (or
        coordinate frame with data) in any frame, transformed to ``frame``; or a ``(lon, lat)`` pair of
        numbers or Quantities when ``lat`` is omitted.
    lat : float or Quantity, optional
        The latitude (deg or an angle Quantity); must be omitted when ``lon`` is a SkyCoord.
    frame : {"icrs", "galactic"}
        The frame of the values returned (plain numbers are taken to be in it already).
    names : (str, str)
        The arguments' names, for the error messages.

    Returns
    -------
    lon, lat : float
        In deg.
    """
    lon_name, lat_name = names
    if _is_coordinate(lon):
        from astropy.coordinates import SkyCoord, UnitSphericalRepresentation

        if lat is not None:
            raise ValueError(
                f"{lon_name} is a SkyCoord, which holds the whole position: omit {lat_name} (got {lat!r}), "
                "and pass any further argument by keyword"
            )
        coord = lon if isinstance(lon, SkyCoord) else SkyCoord(lon)
        if not coord.isscalar:
            raise ValueError(f"{lon_name} must be one position, got a SkyCoord of shape {coord.shape}")
        if frame not in ("icrs", "galactic"):
            raise ValueError(f"frame must be 'icrs' or 'galactic', got {frame!r}")
        sph = coord.transform_to(frame).represent_as(UnitSphericalRepresentation)
        return float(sph.lon.to_value("deg")), float(sph.lat.to_value("deg"))
    if lat is None:
        if not is_pair(lon):
            raise ValueError(
                f"give {lon_name} and {lat_name} (deg or angle Quantities), a SkyCoord, or a ({lon_name}, "
                f"{lat_name}) pair; got {lon_name}={lon!r} and no {lat_name}"
            )
        lon, lat = lon
    lon_value, lat_value = to_value(lon, "deg", lon_name), to_value(lat, "deg", lat_name)
    if np.ndim(lon_value) or np.ndim(lat_value):
        raise ValueError(f"{lon_name} and {lat_name} must be single values, got {lon!r} and {lat!r}")
    return lon_value, lat_value

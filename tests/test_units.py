"""Units at the edges (issue #31): public constructors take astropy Quantity and SkyCoord as well as plain
numbers, which keep skyfit's units (deg, TeV, cm-2 s-1 TeV-1, days); the values stored are the same."""

from __future__ import annotations

import re

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import FK5, SkyCoord

from skyfit._units import lonlat, to_value
from skyfit.maps import HealpixROI
from skyfit.models import (
    DiskSpatialModel,
    ExpCutoffPowerLaw,
    GalacticDiffuseSpatialModel,
    GaussianSpatialModel,
    LogParabola,
    PointSpatialModel,
    PowerLaw,
    PowerLawNorm,
    TemplateSpatialModel,
)
from skyfit.models.spectral import FLUX_UNIT
from skyfit.skies import CatalogError, Region, builtin_catalog_file, catalog_sky, galactic_diffuse, read_1lhaaso

CRAB_ICRS = SkyCoord(83.6, 22.0, unit="deg", frame="icrs")
# the Crab's Galactic position computed once by astropy, independently of skyfit's code path
CRAB_GAL = CRAB_ICRS.galactic
FLUX = u.Unit(FLUX_UNIT)


def assert_same_parameters(a, b, rtol=0.0, atol=0.0):
    """Two models hold the same parameters: names, units, bounds, frozen, scale equal; values to rtol/atol."""
    assert type(a) is type(b)
    assert getattr(a, "frame", None) == getattr(b, "frame", None)
    assert [q.name for q in a.parameters] == [q.name for q in b.parameters]
    for p, q in zip(a.parameters, b.parameters, strict=True):
        assert (p.unit, p.frozen, p.scale) == (q.unit, q.frozen, q.scale), p.name
        np.testing.assert_array_equal([p.min, p.max], [q.min, q.max])
        assert type(p.value) is float, (p.name, type(p.value))
        if rtol == 0.0 and atol == 0.0:
            assert p.value == q.value, (p.name, p.value, q.value)
        else:
            np.testing.assert_allclose(p.value, q.value, rtol=rtol, atol=atol, err_msg=p.name)


def raises_naming(*words):
    """pytest.raises(ValueError) whose message contains every one of ``words``."""
    return pytest.raises(ValueError, match="(?s)" + "".join(f"(?=.*{re.escape(w)})" for w in words))


# --- the helpers --------------------------------------------------------------------------------------------


def test_to_value_converts_and_passes_numbers_through():
    assert to_value(7000 * u.GeV, "TeV", "reference") == pytest.approx(7.0, rel=1e-15)
    assert to_value(30 * u.arcmin, "deg", "sigma") == pytest.approx(0.5, rel=1e-15)
    assert to_value(2.5, "TeV", "reference") == 2.5 and type(to_value(2, "deg", "x")) is float
    assert to_value(np.float32(1.5), "deg", "x") == 1.5
    np.testing.assert_allclose(to_value([1.0, 2.0] * u.deg, "rad", "x"), np.radians([1.0, 2.0]), rtol=1e-15)
    assert to_value(u.Quantity(2.6), "", "index") == 2.6  # a dimensionless Quantity for a pure number


@pytest.mark.parametrize(
    "value, unit, name, words",
    [
        (1.0 * u.TeV, "deg", "lon_0", ["lon_0", "TeV", "deg"]),
        (2.0 * u.deg, "cm-2 s-1 TeV-1", "amplitude", ["amplitude", "deg", "cm-2 s-1 TeV-1"]),
        (2.0 * u.deg, "", "index", ["index", "deg", "dimensionless"]),
        (None, "deg", "sigma", ["sigma", "deg", "None"]),
        ("abc", "TeV", "reference", ["reference", "TeV", "'abc'"]),
        (CRAB_ICRS, "deg", "radius_deg", ["radius_deg", "sky coordinate"]),
    ],
)
def test_to_value_errors_name_the_argument_and_units(value, unit, name, words):
    with raises_naming(*words):
        to_value(value, unit, name)


def test_lonlat_forms():
    assert lonlat(83.6, 22.0) == (83.6, 22.0)
    assert lonlat((83.6, 22.0)) == (83.6, 22.0)
    assert lonlat(CRAB_ICRS) == (83.6, 22.0)
    assert lonlat(CRAB_ICRS.frame) == (83.6, 22.0)  # a coordinate frame with data
    lon, lat = lonlat(np.radians(83.6) * u.rad, 22.0 * 60 * u.arcmin)
    assert lon == pytest.approx(83.6, rel=1e-14) and lat == pytest.approx(22.0, rel=1e-14)
    # another frame: transformed
    np.testing.assert_allclose(lonlat(CRAB_GAL), (83.6, 22.0), rtol=0, atol=1e-10)
    np.testing.assert_allclose(lonlat(CRAB_ICRS, frame="galactic"), (CRAB_GAL.l.deg, CRAB_GAL.b.deg), atol=1e-10)
    fk5 = CRAB_ICRS.transform_to(FK5(equinox="J1975"))
    assert abs(fk5.ra.deg - 83.6) > 0.1  # a different frame indeed
    np.testing.assert_allclose(lonlat(fk5), (83.6, 22.0), rtol=0, atol=1e-8)


def test_lonlat_errors():
    with raises_naming("lat_0", "SkyCoord"):
        lonlat(CRAB_ICRS, 22.0, names=("lon_0", "lat_0"))
    with raises_naming("lon_0", "lat_0"):
        lonlat(83.6, names=("lon_0", "lat_0"))
    with raises_naming("one position", "(2,)"):
        lonlat(SkyCoord([1.0, 2.0], [3.0, 4.0], unit="deg"))
    with raises_naming("lat_0", "TeV", "deg"):
        lonlat(83.6, 22 * u.TeV, names=("lon_0", "lat_0"))


# --- spatial models -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda *pos, frame="icrs": PointSpatialModel.create(*pos, frame=frame),
        lambda *pos, frame="icrs": GaussianSpatialModel.create(*pos, sigma=0.3, frame=frame),
        lambda *pos, frame="icrs": DiskSpatialModel.create(*pos, r_0=0.4, frame=frame),
    ],
    ids=["point", "gauss", "disk"],
)
def test_position_forms(make):
    plain = make(83.6, 22.0)
    assert_same_parameters(make(CRAB_ICRS), plain)
    assert_same_parameters(make(83.6 * u.deg, 22.0 * u.deg), plain)
    assert_same_parameters(make(CRAB_ICRS.ra, CRAB_ICRS.dec), plain)  # Longitude/Latitude are Quantities
    assert_same_parameters(make(np.radians(83.6) * u.rad, 1320.0 * u.arcmin), plain, rtol=1e-14)
    # a Galactic SkyCoord given to an ICRS model: the ICRS numbers
    assert_same_parameters(make(CRAB_GAL), plain, atol=1e-10)
    # an ICRS SkyCoord given to a Galactic model: the Galactic numbers
    assert_same_parameters(
        make(CRAB_ICRS, frame="galactic"), make(CRAB_GAL.l.deg, CRAB_GAL.b.deg, frame="galactic"), atol=1e-10
    )
    assert make(CRAB_ICRS, frame="galactic").frame == "galactic"
    with raises_naming("lat_0", "SkyCoord"):
        make(CRAB_ICRS, 22.0)
    with raises_naming("lon_0", "TeV", "deg"):
        make(83.6 * u.TeV, 22.0 * u.deg)
    with raises_naming("lat_0", "s", "deg"):
        make(83.6, 22.0 * u.s)


def test_extension_forms():
    assert_same_parameters(
        GaussianSpatialModel.create(CRAB_ICRS, sigma=12 * u.arcmin), GaussianSpatialModel.create(83.6, 22.0, 0.2),
        rtol=1e-14,
    )  # fmt: skip
    assert_same_parameters(
        DiskSpatialModel.create(83.6, 22.0, r_0=np.radians(0.7) * u.rad), DiskSpatialModel.create(83.6, 22.0, 0.7),
        rtol=1e-14,
    )  # fmt: skip
    with raises_naming("sigma", "TeV", "deg"):
        GaussianSpatialModel.create(83.6, 22.0, sigma=0.2 * u.TeV)
    with raises_naming("r_0", "m", "deg"):
        DiskSpatialModel.create(83.6, 22.0, r_0=1 * u.m)


def test_galactic_diffuse_and_template_forms():
    assert_same_parameters(
        GalacticDiffuseSpatialModel.create(b_0=-30 * u.arcmin, sigma_b=np.radians(2.0) * u.rad),
        GalacticDiffuseSpatialModel.create(-0.5, 2.0),
        rtol=1e-14,
    )
    with raises_naming("sigma_b", "TeV", "deg"):
        GalacticDiffuseSpatialModel.create(0.0, 1.5 * u.TeV)
    t = TemplateSpatialModel.create("cube.fits", unit=u.Unit("cm-2 s-1 MeV-1 sr-1"))
    assert u.Unit(t.unit) == u.Unit("cm-2 s-1 MeV-1 sr-1") and isinstance(t.unit, str)
    assert TemplateSpatialModel.create("cube.fits", unit="cm-2 s-1 MeV-1 sr-1").unit == "cm-2 s-1 MeV-1 sr-1"


# --- spectral models ----------------------------------------------------------------------------------------


def test_amplitude_in_any_differential_flux_unit():
    plain = PowerLaw.create(amplitude=1e-11, index=2.6, reference=1.0)
    assert_same_parameters(PowerLaw.create(amplitude=1e-11 * u.Unit("1 / (cm2 s TeV)"), index=2.6), plain)
    assert_same_parameters(PowerLaw.create(amplitude=1e-11 * FLUX, index=2.6), plain)
    # 1e-10 m-2 s-1 GeV-1 = 1e-10 * 1e-4 cm-2 * 1e3 TeV-1
    assert_same_parameters(PowerLaw.create(amplitude=1e-10 * u.Unit("1 / (m2 s GeV)"), index=2.6), plain, rtol=1e-14)
    assert_same_parameters(PowerLaw.create(amplitude=1e-11 * u.Unit("cm-2 s-1 TeV-1"), index=2.6), plain)
    assert plain.parameters[0].unit == FLUX_UNIT


def test_reference_in_any_energy_unit():
    assert_same_parameters(
        LogParabola.create(amplitude=3e-13, alpha=2.5, beta=0.1, reference=7000 * u.GeV),
        LogParabola.create(amplitude=3e-13, alpha=2.5, beta=0.1, reference=7.0),
        rtol=1e-15,
    )
    assert_same_parameters(
        PowerLaw.create(reference=u.Quantity(1.0, "PeV")), PowerLaw.create(reference=1000.0), rtol=1e-15
    )
    assert_same_parameters(PowerLawNorm.create(2.0, 0.1, reference=10 * u.TeV), PowerLawNorm.create(2.0, 0.1, 10.0))


def test_exp_cutoff_forms():
    plain = ExpCutoffPowerLaw.create(amplitude=4e-13, index=2.1, lambda_=0.02, alpha=0.8, reference=1.0)
    given = ExpCutoffPowerLaw.create(
        amplitude=4e-13 * u.Unit("cm-2 s-1 TeV-1"),
        index=2.1 * u.dimensionless_unscaled,
        lambda_=1 / (50 * u.TeV),
        alpha=u.Quantity(0.8),
        reference=1e6 * u.MeV,
    )
    assert_same_parameters(given, plain, rtol=1e-15)
    assert_same_parameters(
        ExpCutoffPowerLaw.create(amplitude=4e-13, index=2.1, lambda_=2e-5 / u.GeV, alpha=0.8), plain, rtol=1e-14
    )
    assert plain.parameters[2].unit == "TeV-1"


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: PowerLaw.create(amplitude=1e-12 * u.TeV), ["amplitude", "TeV", FLUX_UNIT]),
        # a per-sr intensity is not a flux: the message says so rather than dropping the sr
        (lambda: PowerLaw.create(amplitude=1e-12 * u.Unit("cm-2 s-1 TeV-1 sr-1")), ["amplitude", "sr", FLUX_UNIT]),
        (lambda: PowerLaw.create(reference=1 * u.deg), ["reference", "deg", "TeV"]),
        (lambda: PowerLaw.create(index=2 * u.deg), ["index", "deg", "dimensionless"]),
        (lambda: LogParabola.create(beta=0.1 * u.TeV), ["beta", "TeV", "dimensionless"]),
        (lambda: ExpCutoffPowerLaw.create(lambda_=50 * u.TeV), ["lambda_", "TeV", "TeV-1"]),
        (lambda: PowerLawNorm.create(tilt=0.1 * u.s), ["tilt", "s", "dimensionless"]),
    ],
)
def test_spectral_wrong_units(make, words):
    with raises_naming(*words):
        make()


# --- regions of interest and datasets -----------------------------------------------------------------------


def test_from_disc_forms():
    plain = HealpixROI.from_disc((83.6, 22.0), 2.0, 64)
    for center, radius in [
        (CRAB_ICRS, 2.0),
        ((83.6 * u.deg, 22.0 * u.deg), 120 * u.arcmin),
        ([83.6, 22.0] * u.deg, 2.0 * u.deg),
        (CRAB_GAL, np.radians(2.0) * u.rad),
    ]:
        roi = HealpixROI.from_disc(center, radius, 64)
        assert roi.same_as(plain)
        np.testing.assert_allclose(
            [roi.meta[k] for k in ("center_ra", "center_dec", "radius_deg")], [83.6, 22.0, 2.0], rtol=0, atol=1e-10
        )
        assert all(type(roi.meta[k]) is float for k in ("center_ra", "center_dec", "radius_deg"))
    with raises_naming("radius_deg", "TeV", "deg"):
        HealpixROI.from_disc(CRAB_ICRS, 2.0 * u.TeV, 64)
    with raises_naming("center dec", "m", "deg"):
        HealpixROI.from_disc((83.6 * u.deg, 22.0 * u.m), 2.0, 64)
    with raises_naming("center", "(ra, dec) pair"):
        HealpixROI.from_disc(83.6, 2.0, 64)


def test_from_galactic_box_forms():
    plain = HealpixROI.from_galactic_box((-5.0, 5.0), (-1.0, 1.0), 32)
    roi = HealpixROI.from_galactic_box([-5.0, 5.0] * u.deg, (-60 * u.arcmin, 60 * u.arcmin), 32)
    assert roi.same_as(plain) and roi.meta["l_range"] == plain.meta["l_range"]
    with raises_naming("b_range", "TeV", "deg"):
        HealpixROI.from_galactic_box((-5.0, 5.0), [-1.0, 1.0] * u.TeV, 32)


def test_lhaaso_dataset_forms():
    from skyfit.simulate import lhaaso_dataset

    plain = lhaaso_dataset("WCDA", (83.6, 22.0), 2.0, nside=64, livetime_days=365.25)
    given = lhaaso_dataset("WCDA", CRAB_GAL, 2 * u.deg, nside=64, livetime_days=1 * u.yr)  # julian year
    assert given.roi.same_as(plain.roi)
    assert given.meta["livetime_days"] == pytest.approx(365.25, rel=1e-15)
    np.testing.assert_allclose(given.background.data, plain.background.data, rtol=1e-13)
    np.testing.assert_allclose(given.response.counts_matrix, plain.response.counts_matrix, rtol=1e-13)
    hours = lhaaso_dataset("KM2A", CRAB_ICRS, 2.0, nside=64, livetime_days=365.25 * 24 * u.h)
    np.testing.assert_allclose(hours.background.data.sum(), lhaaso_dataset(
        "KM2A", CRAB_ICRS, 2.0, nside=64, livetime_days=365.25).background.data.sum(), rtol=1e-13)  # fmt: skip
    with raises_naming("livetime_days", "TeV", "d"):
        lhaaso_dataset("WCDA", CRAB_ICRS, 2.0, nside=64, livetime_days=1 * u.TeV)


def test_hawc_dataset_forms(monkeypatch, tmp_path):
    """hawc_dataset hands the disc, in deg, to the ROI builder (stopped there: no data needed)."""
    import skyfit.hawc as hawc

    seen = []

    class Stop(Exception):
        pass

    def record(roi, center, radius_deg, nside, nest):
        seen.append((HealpixROI.from_disc(center, radius_deg, nside, nest), radius_deg))
        raise Stop

    monkeypatch.setattr(hawc, "_roi_and_dec_nodes", record)
    for center, radius in [((83.6, 22.0), 3.0), (CRAB_GAL, 180 * u.arcmin)]:
        with pytest.raises(Stop):
            hawc.hawc_dataset(center=center, radius_deg=radius, nside=64, path=tmp_path)
    (plain, r_plain), (given, r_given) = seen
    assert given.same_as(plain) and type(r_given) is float and r_given == pytest.approx(r_plain, rel=1e-15)
    with raises_naming("radius_deg", "TeV", "deg"):
        hawc.hawc_dataset(radius_deg=3 * u.TeV, path=tmp_path)


# --- catalogue regions and skies ----------------------------------------------------------------------------


def test_region_forms():
    plain = Region(35.0, 45.0, -2.0, 2.0)
    assert Region(35 * u.deg, 45 * u.deg, -120 * u.arcmin, 2 * u.deg) == plain
    assert Region.parse([35.0, 45.0, -2.0, 2.0] * u.deg) == plain
    assert Region.parse("35,45,-2,2") == plain and all(type(v) is float for v in Region(35, 45, -2, 2).as_tuple())
    assert plain.grown(30 * u.arcmin) == plain.grown(0.5)
    with pytest.raises(CatalogError, match=re.escape("b_max was given in TeV")):
        Region(35, 45, -2, 2 * u.TeV)
    with pytest.raises(CatalogError, match="b_min < b_max"):  # checks still apply after conversion
        Region(35 * u.deg, 45 * u.deg, 2 * u.deg, 60 * u.arcmin)


def test_catalog_sky_and_diffuse_forms():
    table = read_1lhaaso(builtin_catalog_file("1lhaaso"))
    region = Region(38.0, 42.0, -1.0, 1.0)
    plain = catalog_sky(table, region, margin_deg=0.5)
    assert len(plain.sources) > 0
    assert catalog_sky(table, region, margin_deg=30 * u.arcmin).to_dict() == plain.to_dict()
    assert len(catalog_sky(table, region, margin_deg=5 * u.deg).sources) > len(plain.sources)  # the margin counts
    diffuse = galactic_diffuse(amplitude=1e-13, index=2.7, sigma_b=1.5)
    given = galactic_diffuse(amplitude=1e-9 * u.Unit("1 / (m2 s TeV sr)"), index=2.7, sigma_b=90 * u.arcmin)
    assert_same_parameters(given.spatial, diffuse.spatial, rtol=1e-14)
    assert_same_parameters(given.spectral, diffuse.spectral, rtol=1e-14)
    with raises_naming("amplitude", "cm-2 s-1 TeV-1", "sr-1"):
        galactic_diffuse(amplitude=1e-13 * FLUX)  # per sr: a flux without it is refused
    with raises_naming("margin_deg", "TeV"):
        catalog_sky(table, region, margin_deg=1 * u.TeV)


def test_simulate_plane_wrong_units_fail_first():
    from skyfit.skies import simulate_plane

    with raises_naming("livetime_days", "deg", "d"):
        simulate_plane("38,42,-1,1", livetime_days=1 * u.deg)
    with raises_naming("margin_deg", "s", "deg"):
        simulate_plane("38,42,-1,1", margin_deg=1 * u.s)

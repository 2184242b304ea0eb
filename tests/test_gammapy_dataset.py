"""A gammapy MapDataset as a skyfit dataset (skyfit.io.gammapy): exact on ICRS HEALPix, counts kept on a WCS,
the predicted counts of a point source as gammapy's, and on the Fermi-LAT Galactic centre the same fit as
binning the events."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from skyfit import BackgroundNorm, Fit, Likelihood, Models, PointSpatialModel, PowerLaw, Source
from skyfit.io.gammapy import GammapyDatasetError, from_map_dataset
from skyfit.maps import disc_sums

CENTRE = (83.6, 22.0)


def _gammapy_dataset(geom_kind="wcs", sigma_deg=0.3, seed=2):
    """A synthetic gammapy MapDataset: 2 reco bins 10-100 GeV, 6 true bins 5-200 GeV, exposure 1e11 cm2 s,
    a Gaussian PSF, diagonal dispersion, background 0.2 per pixel, a point source's Poisson counts."""
    from gammapy.datasets import MapDataset
    from gammapy.irf import EDispKernelMap, PSFMap
    from gammapy.maps import HpxGeom, MapAxis, WcsGeom
    from gammapy.modeling.models import Models as GModels
    from gammapy.modeling.models import PointSpatialModel as GPoint
    from gammapy.modeling.models import PowerLawSpectralModel, SkyModel

    energy = MapAxis.from_energy_bounds("10 GeV", "100 GeV", nbin=2, name="energy")
    etrue = MapAxis.from_energy_bounds("5 GeV", "200 GeV", nbin=6, name="energy_true")
    if geom_kind == "wcs":
        geom = WcsGeom.create(skydir=CENTRE, frame="icrs", binsz=0.1, width=(6, 5), axes=[energy], proj="CAR")
    else:
        geom = HpxGeom.create(nside=256, frame="icrs", region=f"DISK({CENTRE[0]},{CENTRE[1]},3)", axes=[energy],
                              nest=True)  # fmt: skip
    ds = MapDataset.create(geom, energy_axis_true=etrue, name="syn")
    ds.exposure.quantity = np.full(ds.exposure.data.shape, 1e11) * u.Unit("cm2 s")
    ds.background.data[...] = 0.2
    ds.mask_safe.data[...] = True
    rad = MapAxis.from_bounds(0, 7 * sigma_deg, 300, name="rad", unit="deg")  # gammapy's default stops at 0.66 deg
    ds.psf = PSFMap.from_gauss(etrue, rad_axis=rad, sigma=sigma_deg * u.deg)
    ds.edisp = EDispKernelMap.from_diagonal_response(energy_axis_true=etrue, energy_axis=energy)
    spectral = PowerLawSpectralModel(index=2.5, amplitude="3e-8 cm-2 s-1 TeV-1", reference="30 GeV")
    ds.models = GModels([SkyModel(spectral, GPoint(lon_0=f"{CENTRE[0]} deg", lat_0=f"{CENTRE[1]} deg"), name="s")])
    npred_signal = ds.npred_signal()
    ds.counts.data = np.random.default_rng(seed).poisson(ds.npred().data).astype(float)
    return ds, npred_signal


def _skyfit_source():
    return Source("s", PointSpatialModel.create(*CENTRE), PowerLaw.create(3e-8, 2.5, 0.03))


def test_icrs_healpix_is_copied_pixel_for_pixel():
    gds, _ = _gammapy_dataset("healpix")
    ds = from_map_dataset(gds, name="syn", psf_oversample=1)
    assert ds.roi.nside == 256 and ds.meta["conversion"] == "exact" and ds.meta["psf_blur_deg"] == 0.0
    sky = SkyCoord(*ds.roi.radec(), unit="deg")
    image = gds.counts.geom.to_image()
    (idx,) = image.global_to_local(image.coord_to_idx(sky))
    assert np.all(idx >= 0)
    np.testing.assert_array_equal(ds.counts.data, gds.counts.data[:, idx])
    np.testing.assert_array_equal(ds.background.data, gds.background.data[:, idx])
    # the region is the disc's pixels (all of them wholly inside it: same nside)
    assert ds.roi.n_pix == gds.counts.geom.to_image().npix[0]


def test_a_wcs_dataset_keeps_its_counts_and_predicts_what_gammapy_predicts():
    """Counts stay integers and are all accounted for (in the region or outside it); the background's total
    over the region is the WCS background over the same area; a point source's predicted counts per bin
    (exposure, dispersion, spectral integral) within 1 % of gammapy's, and its PSF's containment within
    0.5 deg within 2 % of gammapy's."""
    gds, signal = _gammapy_dataset("wcs")
    ds = from_map_dataset(gds, name="syn", psf_oversample=1)
    assert ds.roi.nside == 512  # pixels closest to the WCS's 0.1 deg
    c = ds.counts.data
    assert np.all(c == np.round(c))
    assert c.sum() + ds.meta["counts_outside_region"] == gds.counts.data.sum()
    area = ds.roi.n_pix * ds.roi.pixel_area_sr
    per_sr = 0.2 / gds.counts.geom.to_image().solid_angle().to_value("sr").mean()
    np.testing.assert_allclose(ds.background.data.sum(axis=1), per_sr * area, rtol=2e-3)

    model = Models([_skyfit_source()], [BackgroundNorm.create("syn", 1, mode="global")])
    mu = Likelihood(model, [ds]).npred()[0] - ds.background.data
    np.testing.assert_allclose(mu.sum(axis=1), signal.data.sum(axis=(1, 2)), rtol=0.01)
    # containment within 0.5 deg: skyfit's discs against gammapy's pixels within 0.5 deg
    sep = gds.counts.geom.to_image().get_coord().skycoord.separation(SkyCoord(*CENTRE, unit="deg")).deg
    gp_frac = signal.data[:, sep < 0.5].sum(axis=1) / signal.data.sum(axis=(1, 2))
    centre_pix = int(np.argmax(mu.sum(axis=0)))
    sky_frac = disc_sums(mu, ds.roi, 0.5)[:, centre_pix] / mu.sum(axis=1)
    np.testing.assert_allclose(sky_frac, gp_frac, rtol=0.02)


def test_a_dataset_without_what_skyfit_needs_is_refused_by_name(tmp_path):
    gds, _ = _gammapy_dataset("wcs")
    gds.mask_safe.data[...] = False
    with pytest.raises(GammapyDatasetError, match="safe mask is empty"):
        from_map_dataset(gds)
    with pytest.raises(GammapyDatasetError, match="no such file"):
        from_map_dataset(tmp_path / "missing.fits")
    bad = tmp_path / "bad.fits"
    bad.write_text("not a FITS file")
    with pytest.raises(GammapyDatasetError, match="bad.fits"):
        from_map_dataset(bad)
    gds, _ = _gammapy_dataset("wcs")
    gds.psf = None
    with pytest.raises(GammapyDatasetError, match="no PSF"):
        from_map_dataset(gds)


def _icrs(l_deg, b_deg):
    c = SkyCoord(l_deg, b_deg, unit="deg", frame="galactic").icrs
    return float(c.ra.deg), float(c.dec.deg)


@pytest.mark.data
def test_the_fermi_cube_converted_and_the_events_binned_give_the_same_fit(fermi_gc):
    """Sgr A* and 3FHL J1746.2-2852 (0.2 deg apart) over the background cube, fitted on the events binned by
    skyfit and on gammapy's stored MapDataset converted (both with a diagonal dispersion): the background
    norm within 1 sigma, the pair's summed flux at 30 GeV within 3 %, each index within 1 sigma and each
    position within one cube pixel (0.05 deg: the cube moved every event to its pixel's centre, and the
    positions' statistical errors, 0.005-0.017 deg, are smaller than that)."""
    from skyfit.io.fermi import fermi_dataset

    f = {k: fermi_gc / f"fermi-3fhl-gc-{k}.fits.gz" for k in ("events", "exposure-cube", "psf-cube", "background-cube")}
    binned = fermi_dataset(f["events"], f["exposure-cube"], f["psf-cube"], f["background-cube"], lon_range=(-9, 9),
                           lat_range=(-4, 4), nside=1024)  # fmt: skip
    converted = from_map_dataset(fermi_gc / "fermi-3fhl-gc.fits.gz", name="FERMI", edisp="diagonal")
    assert converted.roi.nside == 1024 and converted.meta["psf_blur_deg"] == pytest.approx(0.05 / np.sqrt(12), 1e-3)
    sources = {"gc": (-0.058, -0.050, 3e-8), "j1746": (0.122, -0.088, 1e-8)}
    results = []
    for ds in (binned, converted):
        model = Models([Source(n, PointSpatialModel.create(*_icrs(lon, lat)), PowerLaw.create(a, 2.7, 0.03))
                        for n, (lon, lat, a) in sources.items()],
                       [BackgroundNorm.create("FERMI", 1, mode="global")])  # fmt: skip
        result = Fit(Likelihood(model, [ds], cutout_margin_deg=0.3)).run()
        assert result.valid
        results.append(result)
    a, b = results
    assert abs(a.value("FERMI-bkg.norm") - b.value("FERMI-bkg.norm")) < a.errors["FERMI-bkg.norm"]
    total = [r.value("gc.amplitude") + r.value("j1746.amplitude") for r in results]
    assert total[1] == pytest.approx(total[0], rel=0.03)
    for n in sources:
        assert abs(a.value(f"{n}.index") - b.value(f"{n}.index")) < a.errors[f"{n}.index"], n
        sep = SkyCoord(a.value(f"{n}.lon_0"), a.value(f"{n}.lat_0"), unit="deg").separation(
            SkyCoord(b.value(f"{n}.lon_0"), b.value(f"{n}.lat_0"), unit="deg")).deg  # fmt: skip
        assert sep < 0.05, n


def test_skyfit_bin_converts_a_gammapy_file_and_skyfit_fit_fits_it(tmp_path, capsys):
    """`skyfit bin FILE --response gammapy` writes a dataset file that `skyfit fit` fits (exit 0) to the
    injected source; a file gammapy cannot read is a usage error (exit 2) naming it."""
    from skyfit import Dataset
    from skyfit.cli import main

    gds, _ = _gammapy_dataset("wcs")
    gds.write(tmp_path / "gp.fits")
    assert main(["bin", str(tmp_path / "gp.fits"), "--response", "gammapy", "--name", "syn", "--psf-oversample",
                 "1", "--outdir", str(tmp_path)]) == 0  # fmt: skip
    ds = Dataset.read(tmp_path / "counts.fits")
    assert ds.name == "syn" and ds.roi.nside == 512 and ds.response.meta["converted_from"] == "gammapy MapDataset"
    (tmp_path / "fit.yaml").write_text(f"""datasets:
  - {{type: file, path: {tmp_path / "counts.fits"}}}
model:
  components:
    - name: s
      spatial: {{type: PointSpatialModel, parameters: [{{name: lon_0, value: 83.65}}, {{name: lat_0, value: 21.95}}]}}
      spectral: {{type: PowerLawSpectralModel, parameters: [{{name: amplitude, value: 2.0e-8}},
                 {{name: index, value: 2.3}}, {{name: reference, value: 0.03, frozen: true}}]}}
    - name: syn-bkg
      type: BackgroundNorm
      dataset: syn
      mode: global
      parameters: [{{name: norm, value: 1.0}}]
""")
    assert main(["fit", str(tmp_path / "fit.yaml"), "--outdir", str(tmp_path / "fit")]) == 0
    capsys.readouterr()
    (tmp_path / "junk.fits").write_text("not a dataset")
    assert main(["bin", str(tmp_path / "junk.fits"), "--response", "gammapy", "--outdir", str(tmp_path)]) == 2
    assert "junk.fits" in capsys.readouterr().err

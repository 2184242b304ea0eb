"""Map-cube templates (TemplateSpatialModel, folded with the response by skyfit.io.template) and the isotropic
component (ConstantSpatialModel): exact on HEALPix, gradients, YAML, refusals; on the Fermi-LAT Galactic
centre, the Galactic diffuse model plus an isotropic term reproduce the Science Tools' gtmodel cube."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from test_sky_grid_response import _grid_response

from skyfit import (
    ConstantSpatialModel,
    Dataset,
    Fit,
    HealpixMaps,
    Likelihood,
    Models,
    PowerLaw,
    PowerLawNorm,
    Source,
    TemplateSpatialModel,
)
from skyfit.maps import HealpixROI
from skyfit.response.fermi import FermiFileError

I0 = 3e-6  # cm-2 s-1 TeV-1 sr-1 at 30 GeV


def _cube(path, shape=(60, 80), step=0.1, bunit="cm-2 s-1 MeV-1 sr-1", ctype=("GLON-CAR", "GLAT-CAR"), bump=False):
    """A CAR template over l -4..4, b -3..3: intensity I0 (E / 30 GeV)^-2.5 (in MeV-1), optionally with a
    bright 0.5 x 0.5 deg square at l, b = 0.5, 0.3."""
    energies_mev = np.geomspace(5e3, 2e5, 9)
    spectrum = I0 * 1e-6 * (energies_mev / 3e4) ** -2.5
    data = np.ones((len(energies_mev), *shape)) * spectrum[:, None, None]
    h = fits.Header()
    h.update(CTYPE1=ctype[0], CTYPE2=ctype[1], CRPIX1=(shape[1] + 1) / 2, CRPIX2=(shape[0] + 1) / 2, CRVAL1=0.0,
             CRVAL2=0.0, CDELT1=-step, CDELT2=step, CUNIT1="deg", CUNIT2="deg", BUNIT=bunit)  # fmt: skip
    if bump:
        lon = -(np.arange(shape[1]) + 1 - h["CRPIX1"]) * step
        lat = (np.arange(shape[0]) + 1 - h["CRPIX2"]) * step
        inside = (np.abs(lat[:, None] - 0.3) < 0.25) & (np.abs(lon[None, :] - 0.5) < 0.25)
        data[:, inside] *= 20
    energies = fits.BinTableHDU.from_columns([fits.Column("ENERGY", "D", unit="MeV", array=energies_mev)],
                                             name="ENERGIES")  # fmt: skip
    fits.HDUList([fits.PrimaryHDU(data, h), energies]).writeto(path, overwrite=True)
    return path


def _dataset(nside=256, l_range=(-2.5, 2.5), b_range=(-1.5, 1.5)):
    r = _grid_response()
    roi = HealpixROI.from_galactic_box(l_range, b_range, nside=nside)
    zeros = np.zeros((r.n_bins, roi.n_pix))
    return Dataset("sat", HealpixMaps(zeros, roi, r.bin_names), HealpixMaps(zeros.copy(), roi, r.bin_names), r)


def test_a_uniform_template_predicts_what_the_isotropic_component_does(tmp_path):
    """The same intensity as a uniform map cube and as the isotropic component: the predicted counts agree in
    every pixel to 1e-3 (the log-log interpolation of the cube's planes against the exact power law), so
    nothing is lost or counted twice between the template's pixels and the HEALPix pixels."""
    path = _cube(tmp_path / "uniform.fits")
    ds = _dataset()
    template = Likelihood(Models([Source("t", TemplateSpatialModel.create(path), PowerLawNorm.create(1, 0, 0.03))]),
                          [ds]).npred()[0]  # fmt: skip
    iso = Likelihood(Models([Source("i", ConstantSpatialModel.create(), PowerLaw.create(I0, 2.5, 0.03))]),
                     [ds]).npred()[0]  # fmt: skip
    assert iso.sum() > 100
    np.testing.assert_allclose(template, iso, rtol=1e-3)


def test_norm_and_tilt_are_fitted_with_exact_gradients(tmp_path):
    """A template with a bright square: gradients of norm and tilt against finite differences; a fit to
    counts simulated at norm 1.3, tilt 0.2 recovers both within 3 sigma."""
    path = _cube(tmp_path / "bump.fits", bump=True)
    ds = _dataset()
    model = Models([Source("t", TemplateSpatialModel.create(path), PowerLawNorm.create(1.3, 0.2, 0.03))])
    truth = Likelihood(model, [ds]).npred()[0]
    counts = np.random.default_rng(4).poisson(truth).astype(float)
    lk = Likelihood(model.with_values({"t.norm": 1.0, "t.tilt": 0.0}), [ds.with_counts(counts)])
    x = np.asarray(lk.vector({"t.norm": 1.1, "t.tilt": 0.05}))
    _, grad = lk.value_and_grad(x)
    for key in ("t.norm", "t.tilt"):
        i, h = lk.keys.index(key), 1e-5
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        assert float(grad[i]) == pytest.approx((lk.stat(xp) - lk.stat(xm)) / (2 * h), rel=1e-5), key
    result = Fit(lk).run()
    assert result.valid
    assert abs(result.value("t.norm") - 1.3) < 3 * result.errors["t.norm"]
    assert abs(result.value("t.tilt") - 0.2) < 3 * result.errors["t.tilt"]


def test_a_template_round_trips_yaml_as_gammapy_writes_it(tmp_path):
    path = _cube(tmp_path / "uniform.fits")
    model = Models([Source("diffuse", TemplateSpatialModel.create(path, unit="cm-2 s-1 MeV-1 sr-1"),
                           PowerLawNorm.create(1.1, 0.05, 0.03)),
                    Source("iso", ConstantSpatialModel.create(), PowerLaw.create(I0, 2.5, 0.03))])  # fmt: skip
    text = model.to_yaml()
    assert "filename:" in text and "TemplateSpatialModel" in text and "PowerLawNormSpectralModel" in text
    back = Models.from_yaml(text)
    assert back.source("diffuse").spatial.filename == str(path) and back.values() == model.values()


def test_templates_that_cannot_be_used_are_refused_by_name(tmp_path):
    ds = _dataset()

    def npred(path, unit=None):
        model = Models([Source("t", TemplateSpatialModel.create(path, unit=unit), PowerLawNorm.create(1, 0, 0.03))])
        return Likelihood(model, [ds]).npred()

    with pytest.raises(FermiFileError, match=r"nounit.fits.*no unit"):
        npred(_cube(tmp_path / "nounit.fits", bunit=""))
    with pytest.raises(FermiFileError, match=r"counts.fits.*not an intensity"):
        npred(_cube(tmp_path / "counts.fits", bunit="ct"))
    with pytest.raises(FermiFileError, match=r"ecliptic.fits"):
        npred(_cube(tmp_path / "ecliptic.fits", ctype=("ELON-CAR", "ELAT-CAR")))
    with pytest.raises(Exception, match=r"small.fits.*beyond the map"):
        npred(_cube(tmp_path / "small.fits", shape=(20, 20)))


@pytest.mark.data
def test_the_galactic_diffuse_model_and_an_isotropic_term_reproduce_gtmodel(fermi_gc):
    """On |l| < 7, |b| < 3.5 (inside the diffuse model's cut-out), nside 256: the LAT's Galactic diffuse model
    (gll_iem_v06, norm and tilt free) plus an isotropic power law, fitted to the background cube that gtmodel
    made of the same two (as if it were counts), give norm 1.02 +- 0.02 and tilt 0.00 +- 0.02, and every
    bin's total within 1.5 % of gtmodel's (measured 0.2-0.8 %)."""
    from skyfit.io.fermi import fermi_dataset

    f = {k: fermi_gc / f"fermi-3fhl-gc-{k}.fits.gz" for k in ("events", "exposure-cube", "psf-cube", "background-cube")}
    ds = fermi_dataset(f["events"], f["exposure-cube"], f["psf-cube"], f["background-cube"], lon_range=(-7, 7),
                       lat_range=(-3.5, 3.5), nside=256, psf_oversample=1)  # fmt: skip
    gtmodel = ds.background.data
    empty = Dataset(ds.name, ds.counts, HealpixMaps(np.zeros_like(gtmodel), ds.roi, ds.bin_names), ds.response)
    diffuse = TemplateSpatialModel.create(fermi_gc / "gll_iem_v06_gc.fits.gz", unit="cm-2 s-1 MeV-1 sr-1")
    model = Models([Source("diffuse", diffuse, PowerLawNorm.create(1.0, 0.0, 0.03)),
                    Source("iso", ConstantSpatialModel.create(), PowerLaw.create(7.5e-7, 2.5, 0.03))])  # fmt: skip
    lk = Likelihood(model, [empty]).with_counts([gtmodel])
    result = Fit(lk).run()
    assert result.valid
    assert result.value("diffuse.norm") == pytest.approx(1.02, abs=0.02)
    assert abs(result.value("diffuse.tilt")) < 0.02
    mu = lk.npred(lk.vector(result.model.values()))[0]
    np.testing.assert_allclose(mu.sum(axis=1), gtmodel.sum(axis=1), rtol=0.015)

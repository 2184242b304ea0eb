"""The 3FHL model of the Fermi-LAT Galactic centre (skyfit.skies.fermi) and `skyfit fit` of it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skyfit.skies import CatalogError
from skyfit.skies.fermi import fermi_3fhl_sky, read_3fhl


@pytest.fixture(scope="module")
def fhl(fermi_gc):
    from skyfit import data_dir

    return read_3fhl(data_dir("catalogs", "fermi", "gll_psch_v13.fit.gz"))


@pytest.mark.data
def test_the_3fhl_model_of_the_field(fhl):
    """|l| <= 9, |b| <= 4: 20 sources, the three extended ones as 3FHL's disks (W28 0.638 deg, W30 0.378 deg,
    HESS J1745-303 0.528 deg), power laws in TeV units (Sgr A*: 3FHL's Flux_Density at its pivot)."""
    model = fermi_3fhl_sky("-9,9,-4,4", catalog=fhl)
    assert len(model.sources) == 20
    disks = {s.name: round(s.spatial.extent_deg(), 3) for s in model.sources if s.spatial.tag == "DiskSpatialModel"}
    assert disks == {"3FHL_J1745.8-3028e": 0.528, "3FHL_J1800.5-2343e": 0.638, "3FHL_J1804.7-2144e": 0.378}
    sgra = model.source("3FHL_J1745.6-2900")
    points, _ = fhl
    row = points[[str(n).strip() == "3FHL J1745.6-2900" for n in points["Source_Name"]]][0]
    assert sgra.spectral.evaluate(row["Pivot_Energy"] * 1e-3) == pytest.approx(row["Flux_Density"] * 1e3, rel=1e-6)
    with pytest.raises(CatalogError, match="no 3FHL source"):
        fermi_3fhl_sky("100,101,-0.1,0.1", catalog=fhl)


@pytest.mark.data
def test_skyfit_fit_of_the_3fhl_model_of_the_galactic_centre(fermi_gc, fhl, tmp_path, capsys):
    """`skyfit bin --response fermi` of |l| <= 1.5, b -1.2..1.0, then `skyfit fit` of 3FHL's sources there (with
    cut-outs) and the background norm: a valid fit (exit 0); Sgr A*'s and J1746.2-2852's integral fluxes
    (10 GeV - 1 TeV) within 20 % of 3FHL's."""
    from skyfit import BackgroundNorm, Models
    from skyfit.cli import main

    files = {"--exposure": "exposure-cube", "--psf-table": "psf-cube", "--background": "background-cube"}
    args = ["bin", str(fermi_gc / "fermi-3fhl-gc-events.fits.gz"), "--response", "fermi"]
    args += [a for opt, f in files.items() for a in (opt, str(fermi_gc / f"fermi-3fhl-gc-{f}.fits.gz"))]
    assert main(args + ["--galactic-box", "-1.5", "1.5", "-1.2", "1.0", "--outdir", str(tmp_path)]) == 0
    sky = fermi_3fhl_sky("-1.5,1.5,-1.2,1.0", catalog=fhl)
    model = Models(sky.sources, [BackgroundNorm.create("FERMI", 1, mode="global")])
    model.to_yaml(tmp_path / "model.yaml")
    (tmp_path / "fit.yaml").write_text(f"datasets:\n  - {{type: file, path: {tmp_path / 'counts.fits'}}}\n"
                                       "model: model.yaml\ncutout_margin_deg: 0.3\n")  # fmt: skip
    assert main(["fit", str(tmp_path / "fit.yaml"), "--outdir", str(tmp_path / "fit")]) == 0
    capsys.readouterr()
    params = json.loads((tmp_path / "fit" / "fit_result.json").read_text())["parameters"]
    values = {k: v["value"] for k, v in params.items()}
    points, _ = fhl
    for name in ("3FHL_J1745.6-2900", "3FHL_J1746.2-2852"):
        a, g, e0 = (values[f"{name}.{k}"] for k in ("amplitude", "index", "reference"))
        flux = a * e0 / (g - 1) * ((0.01 / e0) ** (1 - g) - (1.0 / e0) ** (1 - g))
        row = points[[str(n).strip() == name.replace("_", " ") for n in points["Source_Name"]]][0]
        assert flux == pytest.approx(float(row["Flux"]), rel=0.2), name
    assert np.isfinite(values["FERMI-bkg.norm"])

"""Dataset and response files: exact round trips, gammapy reads them, fits from files equal fits in memory,
every command on files, and bad input named clearly."""

import json
import warnings

import numpy as np
import pytest
from astropy.io import fits

from skyfit import Dataset, Fit, Likelihood, LogParabola, Models, PointSpatialModel, PowerLaw, Source
from skyfit.cli import main
from skyfit.dataset import EmptyCountsError, require_counts
from skyfit.io import DatasetFileError, file_format, read_response
from skyfit.maps import HealpixMaps, HealpixROI, MapFormatError
from skyfit.response import Response
from skyfit.simulate import lhaaso_dataset, simulate_dataset

CRAB = (83.633, 22.0145)


def _crab_model(amplitude=2.31e-13):
    return Models([Source("crab", PointSpatialModel.create(*CRAB), LogParabola.create(amplitude, 2.73, 0.06, 7.0))])


@pytest.fixture(scope="module")
def km2a():
    """A simulated KM2A dataset (reconstructed-energy bins: an energy axis) with a Crab-like source."""
    return simulate_dataset(_crab_model(), lhaaso_dataset("KM2A", CRAB, 2.0, nside=128, livetime_days=200), seed=3)


@pytest.fixture(scope="module")
def wcda():
    """A simulated WCDA dataset (nHit bins: a labelled axis) on a Galactic box ROI (not a disc)."""
    roi = HealpixROI.from_galactic_box((183.5, 186.5), (-7.0, -4.5), 128)
    return simulate_dataset(_crab_model(), lhaaso_dataset("WCDA", roi=roi, livetime_days=30), seed=4)


def _assert_same(a: Dataset, b: Dataset):
    assert a.name == b.name and a.bin_names == b.bin_names
    assert a.roi.nside == b.roi.nside and a.roi.nest == b.roi.nest
    assert np.array_equal(a.roi.pixels, b.roi.pixels)
    for x, y in ((a.counts.data, b.counts.data), (a.background.data, b.background.data), (a.mask, b.mask)):
        assert x.dtype == y.dtype and np.array_equal(x, y)
    ra, rb = a.response, b.response
    assert ra.bin_names == rb.bin_names
    for x, y in ((ra.counts_matrix, rb.counts_matrix), (ra.energy_true_tev, rb.energy_true_tev),
                 (ra.dec_nodes_deg, rb.dec_nodes_deg), (ra.psf.weights, rb.psf.weights),
                 (ra.psf.sigma_deg, rb.psf.sigma_deg)):  # fmt: skip
        assert np.array_equal(np.asarray(x), np.asarray(y))
    if ra.energy_reco_edges_tev is None:
        assert rb.energy_reco_edges_tev is None
    else:
        assert np.array_equal(ra.energy_reco_edges_tev, rb.energy_reco_edges_tev)


@pytest.mark.parametrize("which", ["km2a", "wcda"])
def test_dataset_round_trip_is_bit_identical_and_keeps_the_likelihood(which, request, tmp_path):
    ds = request.getfixturevalue(which)
    path = ds.write(tmp_path / "ds.fits", how="test")
    assert file_format(path) == "skyfit-dataset"
    back = Dataset.read(path)
    _assert_same(ds, back)
    assert back.meta["instrument"] == ds.meta["instrument"] and back.meta["livetime_days"] == ds.meta["livetime_days"]
    # response metadata survives, arrays as arrays
    assert set(ds.response.meta) <= set(back.response.meta)
    model = _crab_model(2.0e-13)
    before, after = Likelihood(model, [ds]).stat(), Likelihood(model, [back]).stat()
    assert abs(after - before) <= 1e-12 * abs(before)
    # a second write of what was read gives the same arrays again
    _assert_same(back, Dataset.read(back.write(tmp_path / "again.fits")))


def test_response_round_trip_is_bit_identical(km2a, tmp_path):
    resp = km2a.response
    path = resp.write(tmp_path / "resp.fits")
    assert file_format(path) == "skyfit-response"
    back = Response.read(path)
    assert back.bin_names == resp.bin_names
    for x, y in ((resp.counts_matrix, back.counts_matrix), (resp.psf.sigma_deg, back.psf.sigma_deg),
                 (resp.energy_reco_edges_tev, back.energy_reco_edges_tev)):  # fmt: skip
        assert np.array_equal(x, y)
    # a dataset file holds a response too
    assert np.array_equal(read_response(km2a.write(tmp_path / "ds.fits")).counts_matrix, resp.counts_matrix)


def test_gammapy_reads_counts_and_background_with_the_right_axis(km2a, wcda, tmp_path):
    from gammapy.maps import Map

    path = km2a.write(tmp_path / "km2a.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        counts = Map.read(path, hdu="COUNTS")
        background = Map.read(path, hdu="BACKGROUND")
    axis = counts.geom.axes["energy"]
    assert axis.unit == "TeV"
    assert np.allclose(axis.edges.to_value("TeV")[:-1], km2a.response.energy_reco_edges_tev[:, 0], rtol=1e-12)
    assert np.allclose(axis.edges.to_value("TeV")[-1], km2a.response.energy_reco_edges_tev[-1, 1], rtol=1e-12)
    # the maps' values at the ROI's pixels are skyfit's, bin by bin (gammapy holds them in float32)
    idx = counts.geom.to_image().global_to_local((km2a.roi.pixels,))[0]
    assert np.array_equal(counts.data[:, idx], km2a.counts.data)
    assert np.allclose(background.data[:, idx], km2a.background.data, rtol=1e-6, atol=0)
    assert counts.data.sum() == km2a.counts.data.sum()
    # nHit bins: a labelled axis; a box ROI: written over the disc that holds it, outside pixels empty
    path = wcda.write(tmp_path / "wcda.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        counts = Map.read(path, hdu="COUNTS")
    assert list(counts.geom.axes["analysis_bin"].center) == list(wcda.bin_names)
    assert counts.data.sum() == wcda.counts.data.sum() and counts.data.shape[1] > wcda.roi.n_pix


def test_fit_from_a_file_equals_the_fit_in_memory(km2a, tmp_path):
    back = Dataset.read(km2a.write(tmp_path / "ds.fits"))
    start = _crab_model().with_values({"crab.amplitude": 1.5e-13, "crab.alpha": 2.5, "crab.beta": 0.1})
    a = Fit(Likelihood(start, [km2a])).run()
    b = Fit(Likelihood(start, [back])).run()
    assert a.valid and b.valid
    for k in a.free_keys:
        assert b.value(k) == pytest.approx(a.value(k), rel=1e-8, abs=1e-12)


def test_bad_dataset_files_are_named_with_the_problem(km2a, tmp_path):
    # a file of another format: counts maps alone, a text file, a ROOT-like file
    maps = tmp_path / "counts.fits"
    km2a.counts.write(maps)
    with pytest.raises(DatasetFileError, match="counts.fits is not a skyfit-dataset file.*HealpixMaps.read"):
        Dataset.read(maps)
    text = tmp_path / "notes.fits"
    text.write_text("hello")
    with pytest.raises(DatasetFileError, match="notes.fits is not a skyfit-dataset file"):
        Dataset.read(text)
    root = tmp_path / "tree.root"
    root.write_bytes(b"root\x00\x00\xf4\x42" + bytes(100))
    with pytest.raises(DatasetFileError, match="ROOT file: a HAL maptree"):
        Dataset.read(root)
    with pytest.raises(DatasetFileError, match="does not exist"):
        Dataset.read(tmp_path / "missing.fits")
    good = km2a.write(tmp_path / "good.fits")
    # a missing HDU is named
    with fits.open(good) as hdul:
        fits.HDUList([h for h in hdul if h.name != "BACKGROUND"]).writeto(tmp_path / "nobkg.fits")
    with pytest.raises(DatasetFileError, match="nobkg.fits has no BACKGROUND HDU"):
        Dataset.read(tmp_path / "nobkg.fits")
    # a truncated file
    raw = good.read_bytes()
    (tmp_path / "cut.fits").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetFileError, match="cut.fits"):
        Dataset.read(tmp_path / "cut.fits")
    # maps of another nside or ordering than the ROI
    with fits.open(good) as hdul:
        hdul["BACKGROUND"].header["ORDERING"] = "RING"
        hdul.writeto(tmp_path / "ring.fits")
    with pytest.raises(DatasetFileError, match="BACKGROUND map has nside=128 \\(RING\\).*NESTED"):
        Dataset.read(tmp_path / "ring.fits")
    # response bins that do not match the maps' bins
    with fits.open(good) as hdul:
        hdul["RESP_BINS"].data["NAME"][0] = "other"
        hdul.writeto(tmp_path / "bins.fits")
    with pytest.raises(DatasetFileError, match="response's analysis bins .*other.* do not match the maps'"):
        Dataset.read(tmp_path / "bins.fits")
    # writing over an existing file needs overwrite
    with pytest.raises(DatasetFileError, match="exists"):
        km2a.write(good)


def test_counts_and_background_of_different_pixelisations_are_refused(km2a):
    ring = HealpixROI(km2a.roi.nside, False, np.sort(__import__("healpy").nest2ring(128, km2a.roi.pixels)))
    with pytest.raises(MapFormatError, match="RING"):
        Dataset("x", km2a.counts, HealpixMaps(km2a.background.data, ring, km2a.bin_names), km2a.response)


def test_an_empty_lhaaso_template_is_refused_not_fitted(tmp_path, capsys):
    template = lhaaso_dataset("WCDA", CRAB, 1.0, nside=64, livetime_days=10)
    with pytest.raises(EmptyCountsError, match="no counts.*simulate it"):
        require_counts(template)
    cfg = tmp_path / "fit.yaml"
    model = """
model:
  components:
    - name: crab
      spatial: {type: PointSpatialModel, parameters: [{name: lon_0, value: 83.633}, {name: lat_0, value: 22.0145}]}
      spectral: {type: PowerLawSpectralModel, parameters: [{name: amplitude, value: 2.0e-13},
                 {name: index, value: 2.6}, {name: reference, value: 7.0, frozen: true}]}
ts: [crab]
"""
    cfg.write_text("datasets:\n  - {type: wcda, center: [83.633, 22.0145], radius_deg: 1.0, nside: 64}\n" + model)
    out = tmp_path / "out"
    assert main(["fit", str(cfg), "--outdir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "datasets[0] (wcda): the dataset has no counts" in err and "simulate it" in err
    assert not out.exists()  # nothing written
    # simulate: true draws the counts from the config's model, and the fit runs
    cfg.write_text("datasets:\n  - {type: wcda, center: [83.633, 22.0145], radius_deg: 1.0, nside: 64, "
                   "livetime_days: 60, simulate: true}\nseed: 2\n" + model)  # fmt: skip
    assert main(["fit", str(cfg), "--outdir", str(out)]) == 0
    assert json.loads((out / "fit_result.json").read_text())["ts"]["crab"]["ts"] > 25


def test_bin_writes_a_dataset_file_and_fit_takes_it(tmp_path, capsys):
    """simulate -> events -> `skyfit bin --response km2a` -> dataset file -> `skyfit fit` with type: file; the
    fit equals the one of the same dataset in memory."""
    model = """
model:
  components:
    - name: src
      spatial: {type: PointSpatialModel, parameters: [{name: lon_0, value: 83.633}, {name: lat_0, value: 22.0145}]}
      spectral: {type: PowerLawSpectralModel, parameters: [{name: amplitude, value: 1.0e-13},
                 {name: index, value: 2.7}, {name: reference, value: 50.0, frozen: true}]}
ts: [src]
"""
    sim = tmp_path / "sim.yaml"
    sim.write_text("datasets:\n  - {type: km2a, center: [83.633, 22.0145], radius_deg: 1.5, nside: 128, "
                   "livetime_days: 300}\nseed: 7\n" + model)  # fmt: skip
    events = tmp_path / "events.fits"
    assert main(["simulate", str(sim), "--outdir", str(tmp_path)]) == 0
    path = tmp_path / "counts.fits"
    args = ["bin", str(events), "--center", "83.633", "22.0145", "--radius", "1.5", "--nside", "128", "--response",
            "km2a", "--livetime-days", "300", "--background", "instrument", "--outdir", str(tmp_path)]  # fmt: skip
    assert main(args) == 0
    ds = Dataset.read(path)
    assert ds.name == "KM2A" and ds.counts.data.sum() > 0 and ds.meta["livetime_days"] == 300
    fit_cfg = tmp_path / "fit.yaml"
    fit_cfg.write_text(f"datasets:\n  - {{type: file, path: {path.name}}}\n" + model)
    out = tmp_path / "fit"
    assert main(["fit", str(fit_cfg), "--outdir", str(out)]) == 0
    result = json.loads((out / "fit_result.json").read_text())
    in_memory = Fit(Likelihood(Models([Source("src", PointSpatialModel.create(*CRAB),
                                                PowerLaw.create(1e-13, 2.7, 50.0))]), [ds])).run()  # fmt: skip
    for k in in_memory.free_keys:
        assert result["parameters"][k]["value"] == pytest.approx(in_memory.value(k), rel=1e-8)
    # a response of another binning is refused with both counts named
    args[args.index("km2a")] = "wcda"
    assert main(args) == 2
    assert "analysis bins" in capsys.readouterr().err


def test_catalog_of_dataset_files_equals_the_built_in_path(tmp_path, monkeypatch):
    """A simulated field written to files and catalogued with --datasets gives the built-in path's catalogue
    (same seed); the checkpoint fingerprint covers the files' content."""
    from skyfit.catalog import CatalogConfig, run
    from skyfit.skies import simulate_plane

    monkeypatch.setenv("SKYFIT_DATA", str(tmp_path / "no-reference-data"))  # the shipped sky alone
    settings = dict(
        region="40,42,-1.5,1.5",
        nside=128,
        tile_deg=2.0,
        overlap_deg=1.0,
        livetime_days=365.0,
        seed=1,
        detectors=("KM2A",),
    )
    quiet = dict(progress=False, plots=False, log=lambda *a: None)
    builtin = run(CatalogConfig(**settings), out_dir=tmp_path / "builtin", **quiet)
    paths = []
    datasets, _ = simulate_plane(
        settings["region"],
        settings["livetime_days"],
        settings["nside"],
        settings["seed"],
        margin_deg=settings["overlap_deg"],
        detectors=settings["detectors"],
    )
    for ds in datasets:
        paths.append(str(ds.write(tmp_path / f"{ds.name}.fits")))
    cfg = CatalogConfig(**{k: v for k, v in settings.items() if k not in ("nside", "livetime_days", "seed")},
                        datasets=paths)  # fmt: skip
    assert len(paths) == 1
    files = run(cfg, out_dir=tmp_path / "files", **quiet)
    assert len(builtin["table"]) >= 1
    cols = ["name", "ra", "dec", "ts", "r39", "components", "assoc_1lhaaso"]
    assert files["table"][cols].pformat(max_lines=-1, max_width=-1) == builtin["table"][cols].pformat(
        max_lines=-1, max_width=-1
    )
    assert np.array_equal(files["table"]["ts"], builtin["table"]["ts"])
    # another file content under the same name is another catalogue: its checkpoints are not reused
    before = cfg.fingerprint()
    ds = Dataset.read(paths[0])
    ds.with_counts(ds.counts.data + 1).write(paths[0], overwrite=True)
    assert CatalogConfig(**{**settings, "region": settings["region"]}, datasets=paths).fingerprint() != before
    # no footprint given: the data's, shrunk by the ROI margin
    assert CatalogConfig(datasets=paths, overlap_deg=1.0, detectors=("KM2A",)).region != settings["region"]


def test_the_built_in_field_needs_no_reference_data(tmp_path, monkeypatch):
    from skyfit import DataNotFoundError, data_dir
    from skyfit.catalog import simulate_plane
    from skyfit.skies import CatalogError

    monkeypatch.setenv("SKYFIT_DATA", str(tmp_path))  # set: it alone is searched, ../shared/data is not
    with pytest.raises(DataNotFoundError, match="SKYFIT_DATA"):
        data_dir("catalogs", "1LHAASO_catalog.fits")
    _, truth = simulate_plane("39,41,-1,1", livetime_days=10, nside=64, seed=0)
    names = {s.name for s in truth.sources}
    assert "1LHAASO_J1908+0615u_KM2A" in names and "diffuse" in names
    with pytest.raises(CatalogError, match="outside the 1LHAASO subset shipped"):
        simulate_plane("100,110,-1,1", livetime_days=10, nside=64, seed=0)


@pytest.mark.data
def test_the_shipped_catalogue_rows_are_the_published_ones(catalogs_dir):
    from astropy.coordinates import SkyCoord
    from astropy.table import Table

    from skyfit.skies import BUILTIN_COVERAGE, builtin_catalog_file

    for key, filename, lon, lat, frame in (("1lhaaso", "1LHAASO_catalog.fits", "RAJ2000", "DECJ2000", "fk5"),
                                           ("3hwc", "3HWC.ecsv", "ra", "dec", "icrs")):  # fmt: skip
        full = Table.read(catalogs_dir / filename)
        g = SkyCoord(full[lon], full[lat], unit="deg", frame=frame).galactic
        inside = full[BUILTIN_COVERAGE.contains(g.l.deg, g.b.deg)]
        shipped = Table.read(builtin_catalog_file(key))
        assert len(shipped) == len(inside) > 10
        for col in shipped.colnames:
            a, b = shipped[col], inside[col]
            if a.dtype.kind == "f":
                assert np.array_equal(np.ma.filled(a, np.nan), np.ma.filled(b, np.nan).astype(float), equal_nan=True)
            else:
                assert [str(x).strip() for x in a] == [(x.decode() if isinstance(x, bytes) else str(x)).strip()
                                                       for x in b]  # fmt: skip


def test_psf_containment_radius_ignores_a_wide_component_of_negligible_weight():
    from skyfit.response import GaussianMixturePSF

    sigma = 0.3
    exact = sigma * np.sqrt(-2 * np.log(1 - 0.68))
    psf = GaussianMixturePSF(np.array([[1 - 1e-9, 1e-9]]), np.array([[sigma, 3e4]]))
    assert psf.containment_radius(0.68, 0) == pytest.approx(exact, rel=1e-6)
    assert psf.containment(psf.containment_radius(0.95, 0), 0) == pytest.approx(0.95, abs=1e-9)


@pytest.mark.data
def test_a_maptree_and_hal_response_fit_through_the_command_line(tmp_path, hal_response):
    """Simulated HAWC-like counts written as a HAL maptree (ROOT) + the public HAL response -> `skyfit fit` with
    type: maptree recovers the injected source; `skyfit bin --response hal:` builds the same response."""
    from skyfit.io import read_hal_response, write_maptree

    response_path = hal_response
    transits = 500.0
    roi = HealpixROI.from_disc(CRAB, 3.0, 256, nest=False)
    response = read_hal_response(response_path, dec_deg=CRAB[1], n_transits=transits)
    bkg = np.outer(np.geomspace(40.0, 0.05, response.n_bins), np.ones(roi.n_pix))
    empty = HealpixMaps(np.zeros_like(bkg), roi, response.bin_names)
    template = Dataset("hawc", empty, HealpixMaps(bkg, roi, response.bin_names), response)
    truth = _crab_model(2.3e-13)
    sim = simulate_dataset(truth, template, seed=11)
    maptree = write_maptree(tmp_path / "maptree.root", sim.counts, sim.background, n_transits=transits)
    cfg = tmp_path / "fit.yaml"
    cfg.write_text(f"""
datasets:
  - {{type: maptree, maptree: {maptree.name}, response: {response_path},
     roi: {{center: [83.633, 22.0145], radius: 3.0, nside: 256}}}}
model:
  components:
    - name: crab
      spatial: {{type: PointSpatialModel, parameters: [{{name: lon_0, value: 83.633, frozen: true}},
                {{name: lat_0, value: 22.0145, frozen: true}}]}}
      spectral: {{type: LogParabolaSpectralModel, parameters: [{{name: amplitude, value: 1.0e-13, min: 0}},
                 {{name: alpha, value: 2.5}}, {{name: beta, value: 0.1}},
                 {{name: reference, value: 7.0, frozen: true}}]}}
ts: [crab]
""")
    out = tmp_path / "fit"
    assert main(["fit", str(cfg), "--outdir", str(out)]) == 0
    result = json.loads((out / "fit_result.json").read_text())
    assert result["valid"] and result["ts"]["crab"]["ts"] > 100
    amp = result["parameters"]["crab.amplitude"]
    assert abs(amp["value"] - 2.3e-13) < 3 * amp["error"]
    # events binned by `skyfit bin --response hal:` with a background map: the dataset holds the events and the
    # same response as read_hal_response
    from skyfit.simulate import simulate_events

    ev = simulate_events(truth, template, seed=12)
    columns = [fits.Column("RA", "D", array=ev["RA"]), fits.Column("DEC", "D", array=ev["DEC"]),
               fits.Column("BIN", "K", array=ev["BIN"])]  # fmt: skip
    hdu = fits.BinTableHDU.from_columns(columns, name="EVENTS")
    hdu.header["BINNAMES"] = ",".join(response.bin_names)
    hdu.writeto(tmp_path / "events.fits")
    sim.background.write(tmp_path / "bkg.fits")
    path = tmp_path / "counts.fits"
    assert main(["bin", str(tmp_path / "events.fits"), "--center", "83.633", "22.0145", "--radius", "3", "--nside",
                 "256", "--ring", "--response", f"hal:{response_path}", "--transits", str(transits), "--background",
                 str(tmp_path / "bkg.fits"), "--outdir", str(tmp_path)]) == 0  # fmt: skip
    binned = Dataset.read(path)
    assert binned.counts.data.sum() == len(ev["RA"]) and binned.bin_names == response.bin_names
    assert np.array_equal(binned.response.counts_matrix, response.counts_matrix)
    assert np.array_equal(binned.background.data, sim.background.data)

"""Galactic-plane skies, TS maps, the multi-source pipeline and `skyfit catalog` (issue #5)."""

import numpy as np
import pytest

from skyfit import Likelihood, Models, PointSpatialModel, PowerLaw, Source, fit, ts_of_source
from skyfit.catalog import (
    CatalogConfig,
    CatalogError,
    DetectionConfig,
    Region,
    component_table,
    detect_and_fit,
    galactic_diffuse,
    radius95,
    read_1lhaaso,
    run,
)
from skyfit.cli import main
from skyfit.detect import ts_map
from skyfit.maps import HealpixROI, unit_vectors
from skyfit.simulate import lhaaso_dataset, npred, simulate_dataset
from skyfit.skies import catalog_sky, simulate_plane

needs_data = pytest.mark.data


def test_region_strings_and_bad_regions_are_refused_clearly():
    r = Region.parse("25,45,-5,5")
    assert (r.width, r.height) == (20, 10) and r.area_deg2 == pytest.approx(199.75, rel=1e-4)
    assert r.contains(30.0, 0.0) and not r.contains(50.0, 0.0) and r.contains(46.0, 0.0, margin_deg=1.5)
    assert Region.parse("-10,10,-1,1").contains(355.0, 0.0)  # wraps through l = 0
    with pytest.raises(CatalogError, match="unknown region string 'cygnus'"):
        Region.parse("cygnus")
    with pytest.raises(CatalogError, match="b_min < b_max"):
        Region.parse("25,45,5,-5")
    with pytest.raises(CatalogError, match="unknown detection settings"):
        CatalogConfig(detection={"ts_treshold": 3})
    with pytest.raises(CatalogError, match="simulate must be"):
        CatalogConfig(simulate="fermi")


def test_galactic_box_roi_matches_a_brute_force_selection():
    import healpy as hp
    from astropy.coordinates import SkyCoord

    roi = HealpixROI.from_galactic_box((-3, 3), (-1, 2), 256, nest=False)
    pix = np.arange(hp.nside2npix(256))
    th, ph = hp.pix2ang(256, pix)
    g = SkyCoord(np.degrees(ph), 90 - np.degrees(th), unit="deg").galactic
    lw = (g.l.deg + 180) % 360 - 180
    inside = (lw >= -3) & (lw <= 3) & (g.b.deg >= -1) & (g.b.deg <= 2)
    assert np.array_equal(roi.pixels, pix[inside])


def test_catalogue_file_with_missing_columns_names_the_file_and_columns(tmp_path):
    from astropy.table import Table

    path = tmp_path / "broken.fits"
    Table({"Source_Name": ["x"], "RAJ2000": [1.0]}).write(path)
    with pytest.raises(CatalogError, match=r"broken.fits lacks the columns \['Model_a'"):
        read_1lhaaso(path)
    with pytest.raises(CatalogError, match="does not exist"):
        read_1lhaaso(tmp_path / "nothing.fits")
    (tmp_path / "garbage.fits").write_bytes(b"not a fits file at all")
    with pytest.raises(CatalogError, match="could not be read"):
        read_1lhaaso(tmp_path / "garbage.fits")


@needs_data
def test_1lhaaso_components_become_detector_restricted_sources(catalogs_dir):
    sky = catalog_sky(read_1lhaaso(), Region.parse("35,45,-3,3"))
    names = [s.name for s in sky.sources]
    assert "1LHAASO_J1908+0615u_WCDA" in names and "1LHAASO_J1908+0615u_KM2A" in names
    wcda = sky.source("1LHAASO_J1908+0615u_WCDA")
    assert wcda.datasets == ("WCDA",) and wcda.spatial.extent_deg() == pytest.approx(0.43)
    assert {q.name: q.value for q in wcda.spectral.parameters}["reference"] == 3.0
    # each detector's view keeps only its components
    assert all(s.datasets == ("KM2A",) for s in sky.for_datasets(["KM2A"]).sources)


def test_diffuse_band_counts_match_an_independent_integral():
    # the band's predicted counts (exposure per pixel, PSF-convolved) against a NumPy sum of
    # intensity x solid angle x expected counts at each pixel's declination, far from the ROI edge
    from astropy.coordinates import SkyCoord

    roi = HealpixROI.from_galactic_box((30, 50), (-8, 8), 128)
    ds = lhaaso_dataset("KM2A", roi=roi, livetime_days=100.0)
    src = galactic_diffuse(amplitude=1e-13, sigma_b=2.0)
    mu = npred(Models([src]), ds) - ds.background.data
    ra, dec = roi.radec()
    b = SkyCoord(ra, dec, unit="deg").galactic.b.deg
    r = ds.response
    dnde = np.asarray(src.spectral.evaluate(r.energy_true_tev))
    per_dec = np.asarray(r.counts_matrix) @ dnde
    expected = np.stack([np.interp(dec, r.dec_nodes_deg, per_dec[:, k]) for k in range(r.n_bins)])
    direct = expected * np.exp(-0.5 * (b / 2.0) ** 2) * roi.pixel_area_sr
    inner = np.abs(b) < 5
    assert mu[:, inner].sum() == pytest.approx(direct[:, inner].sum(), rel=0.01)
    # and the band is brighter on the plane than off it
    assert mu[:, np.abs(b) < 0.5].mean() > 10 * mu[:, np.abs(b) > 6].mean()


def test_ts_map_peak_equals_the_likelihood_fit_of_a_point_source():
    roi_center = (287.05, 6.26)
    ds = lhaaso_dataset("WCDA", roi_center, 2.5, nside=256, livetime_days=365.0)
    truth = Models([Source("src", PointSpatialModel.create(*roi_center), PowerLaw.create(4e-14, 2.6, 3.0))])
    ds = simulate_dataset(truth, ds, 3)
    tsm = ts_map(ds, None, "point")
    peaks = tsm.peaks(25.0)
    assert peaks, "the injected source must be found"
    best = peaks[0]
    sep = np.degrees(np.arccos(np.clip(unit_vectors(best["ra"], best["dec"]) @ unit_vectors(*roi_center), -1, 1)))
    assert sep < 0.15
    # the TS map's value at the peak is the TS of a fit with the position fixed there and index 2.6
    model = Models([Source("src", PointSpatialModel.create(best["ra"], best["dec"]),
                             PowerLaw.create(best["amplitude"], 2.6, 3.0))])  # fmt: skip
    model = model.with_frozen(["src.lon_0", "src.lat_0", "src.index"])
    res = fit(model, ds)
    ts, _ = ts_of_source(res, ds, "src")
    assert best["ts"] == pytest.approx(ts, rel=0.02)
    assert best["amplitude"] == pytest.approx(res.model.values()["src.amplitude"], rel=0.02)
    # no peak where nothing was injected: the strongest other peak is weak
    assert all(p["ts"] < 25 for p in tsm.peaks(0.0, 1.0)[1:])


def test_ts_map_refuses_a_non_positive_baseline():
    ds = lhaaso_dataset("WCDA", (287.05, 6.26), 1.0, nside=128, livetime_days=10.0)
    with pytest.raises(ValueError, match="baseline must be positive"):
        ts_map(ds, np.zeros_like(ds.counts.data))
    with pytest.raises(ValueError, match="kernel must be"):
        ts_map(ds, kernel="disk")


def test_unreachable_scheduler_is_a_clear_error_and_writes_no_catalogue(tmp_path):
    cfg = CatalogConfig(region="40,41,-1,1", nside=64, tile_deg=1.0, overlap_deg=0.5, simulate="background")
    with pytest.raises(CatalogError, match="cannot reach the dask scheduler"):
        run(cfg, out_dir=tmp_path, scheduler="tcp://127.0.0.1:9", progress=False, plots=False, log=lambda *a: None)
    assert not (tmp_path / "catalog.fits").exists()


def test_background_only_sky_gives_no_source(tmp_path):
    # the null hypothesis: background and diffuse emission only; the pipeline must add nothing at TS > 37
    cfg = CatalogConfig(region="40,44,-2,2", nside=128, tile_deg=4.0, overlap_deg=1.0, simulate="background", seed=3)
    datasets, truth = simulate_plane(cfg.region, nside=cfg.nside, seed=cfg.seed, margin_deg=1.0, with_sources=False)
    assert [s.name for s in truth.sources] == ["diffuse"] and np.isfinite(Likelihood(truth, datasets).stat())
    out = run(cfg, out_dir=tmp_path, progress=False, plots=False, log=lambda *a: None)
    assert len(out["table"]) == 0 and out["n_rois"] == 1


def test_cutouts_and_grouped_sources_agree_with_the_full_evaluation():
    # many sources of mixed shapes on a Galactic box: per-source cut-outs (vmapped groups) against the
    # plain evaluation on every pixel, value and gradient
    from skyfit.models import GaussianSpatialModel

    roi = HealpixROI.from_galactic_box((38, 44), (-2, 2), 128)
    ds = [lhaaso_dataset(d, roi=roi, livetime_days=30.0, name=d) for d in ("WCDA", "KM2A")]
    rng = np.random.default_rng(2)
    ra, dec = roi.radec()
    sources = [galactic_diffuse()]
    for k in range(7):
        j = rng.integers(ra.size)
        shape = (PointSpatialModel.create(ra[j], dec[j]) if k % 2 else
                 GaussianSpatialModel.create(ra[j], dec[j], sigma=0.1 + 0.1 * k))  # fmt: skip
        sources.append(Source(f"s{k}", shape, PowerLaw.create(1e-13, 2.5, 3.0), datasets=None if k < 3 else ("WCDA",)))
    model = Models(sources)
    full = Likelihood(model, ds)
    cut = Likelihood(model, ds, cutout_margin_deg=0.3)
    assert cut.cutouts  # some sources are on cut-outs
    v = full.vector()
    f_val, f_grad = full.value_and_grad(v)
    c_val, c_grad = cut.value_and_grad(v)
    assert float(c_val) == pytest.approx(float(f_val), rel=1e-9)
    np.testing.assert_allclose(np.asarray(c_grad), np.asarray(f_grad), rtol=1e-5, atol=1e-8 * np.abs(f_grad).max())


def test_catalog_cli_config_errors_are_clear(tmp_path, capsys):
    from skyfit.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("region: 40,41,-1,1\nnsde: 64\n")
    assert main(["catalog", "--config", str(bad), "--outdir", str(tmp_path / "o")]) == 2
    assert "unknown catalogue settings ['nsde']" in capsys.readouterr().err
    assert main(["catalog", "--region", "galactic-centre", "--outdir", str(tmp_path / "o")]) == 2
    assert "unknown region string 'galactic-centre'" in capsys.readouterr().err
    assert not (tmp_path / "o" / "catalog.fits").exists()


SKY = """
components:
  - name: user_src
    spatial: {type: PointSpatialModel, parameters: [{name: lon_0, value: 286.5}, {name: lat_0, value: 7.0}]}
    spectral: {type: PowerLawSpectralModel, parameters: [{name: amplitude, value: 3.0e-15},
               {name: index, value: 2.4}, {name: reference, value: 50.0, frozen: true}]}
    datasets: [KM2A]
"""


def test_a_sky_of_the_users_is_simulated_and_catalogued(tmp_path, capsys):
    """--simulate-sky: the user's source (and nothing of 1LHAASO) is found; the fingerprint covers the sky."""
    from astropy.coordinates import SkyCoord

    sky = tmp_path / "sky.yaml"
    sky.write_text(SKY)
    g = SkyCoord(286.5, 7.0, unit="deg").galactic
    region = f"{g.l.deg - 1:.2f},{g.l.deg + 1:.2f},{g.b.deg - 1:.2f},{g.b.deg + 1:.2f}"
    cfg = CatalogConfig(region=region, nside=128, tile_deg=2.0, overlap_deg=1.0, detectors=("KM2A",), sky=str(sky))
    assert cfg.simulate == "sky"
    out = run(cfg, out_dir=tmp_path / "cat", progress=False, plots=False, log=lambda *a: None)
    table = out["table"]
    assert len(table) == 1
    assert SkyCoord(table["ra"][0], table["dec"][0], unit="deg").separation(SkyCoord(286.5, 7.0, unit="deg")).deg < 0.1
    before = cfg.fingerprint()
    sky.write_text(SKY.replace("3.0e-15", "2.0e-15"))
    assert cfg.fingerprint() != before  # a rerun into the same folder does not reuse the other sky's ROIs
    with pytest.raises(CatalogError, match="does not exist"):
        CatalogConfig(sky=str(tmp_path / "missing.yaml"))
    with pytest.raises(CatalogError, match="excludes datasets"):
        CatalogConfig(sky=str(sky), simulate="background")
    assert main(["catalog", "--simulate-sky", str(tmp_path / "missing.yaml"), "--outdir", str(tmp_path / "x")]) == 2
    assert "missing.yaml does not exist" in capsys.readouterr().err


def test_a_component_made_point_like_must_pass_the_threshold_again():
    """An extended WCDA source forced to a point (ts_ext huge): as a Gaussian its TS is ~150, as a point ~32.
    With ts_add = 40 the point-like component fails the threshold after the shape change and is dropped; it
    used to stay with its point-like TS below ts_add (issue #26)."""
    from astropy.coordinates import SkyCoord

    from skyfit.models import GaussianSpatialModel

    c = SkyCoord(41, 0.0, unit="deg", frame="galactic").icrs
    truth = Models([Source("ext", GaussianSpatialModel.create(c.ra.deg, c.dec.deg, sigma=0.7),
                            PowerLaw.create(2e-13, 2.6, 3.0), datasets=("WCDA",)), galactic_diffuse()])  # fmt: skip
    roi = Region(39, 43, -2, 2).roi(128)
    ds = simulate_dataset(truth, lhaaso_dataset("WCDA", roi=roi, livetime_days=365), seed=3)
    lines = []
    out = detect_and_fit([ds], DetectionConfig(ts_ext=1e9, ts_add=40.0), log=lines.append)
    assert any("component TS" in line and float(line.split()[-1]) > 100 for line in lines)  # kept as a Gaussian
    assert any("after the shape change, dropping" in line for line in lines)
    assert all(v >= 40.0 for v in out["ts"].values())
    # at the usual threshold the point-like component stays, with the TS it has as a point
    out = detect_and_fit([ds], DetectionConfig(ts_ext=1e9), log=lambda *a: None)
    assert list(out["ts"]) and all(25.0 <= v < 40.0 for v in out["ts"].values())


def test_a_bright_source_split_with_a_faint_neighbour_keeps_its_own_ts():
    """A bright WCDA Gaussian (r39 0.3 deg) and a faint point source 0.2 deg away: the split test fits them as two
    components that each stand in for the other, so each one's plain TS is the split's gain alone (72.9 and 72.9
    before this test existed). With the partner held in place the bright one's TS reflects its own signal."""
    from astropy.coordinates import SkyCoord

    from skyfit.models import GaussianSpatialModel

    bright = SkyCoord(41, 0.0, unit="deg", frame="galactic").icrs
    faint = SkyCoord(41.2, 0.0, unit="deg", frame="galactic").icrs
    truth = Models([
        Source("bright", GaussianSpatialModel.create(bright.ra.deg, bright.dec.deg, sigma=0.3),
               PowerLaw.create(3e-13, 2.6, 3.0), datasets=("WCDA",)),
        Source("faint", PointSpatialModel.create(faint.ra.deg, faint.dec.deg), PowerLaw.create(5e-14, 2.6, 3.0),
               datasets=("WCDA",)),
        galactic_diffuse(),
    ])  # fmt: skip
    ds = simulate_dataset(truth, lhaaso_dataset("WCDA", roi=Region(39, 43, -2, 2).roi(256), livetime_days=365), seed=5)
    lines = []
    rows = component_table(detect_and_fit([ds], DetectionConfig(), log=lines.append))
    assert any("stand in for each other" in line for line in lines)
    sep = [SkyCoord(r["ra"], r["dec"], unit="deg").separation(bright).deg for r in rows]
    nearest = rows[int(np.argmin(sep))]
    assert min(sep) < 0.1 and nearest["ts"] > 300 and nearest["ts"] == max(r["ts"] for r in rows)
    # without the held-partner test both read the same split gain
    rows = component_table(detect_and_fit([ds], DetectionConfig(blend_deg=None), log=lambda *a: None))
    assert len(rows) == 2 and abs(rows[0]["ts"] - rows[1]["ts"]) < 0.5


def test_sources_in_the_margin_and_just_beyond_the_roi_are_modelled():
    """A bright WCDA point source 0.3 deg inside the ROI's edge, one 0.15 deg beyond it (only its PSF's tail in the
    data) and a fainter extended one in the middle (issue #26). Seeds are placed up to the edge and at TS-map test
    positions beyond it, so all three are fitted: every amplitude and the diffuse normalisation within 3 sigma of its
    truth. With seeds kept 0.6 deg inside the edge and none beyond (the old rule) the diffuse band absorbed the
    margin source: its normalisation came out 57 times its truth, 16 sigma off, and no component was found."""
    from astropy.coordinates import SkyCoord

    from skyfit.models import GaussianSpatialModel
    from skyfit.skies import DIFFUSE_AMPLITUDE

    def at(lon, lat):
        c = SkyCoord(lon, lat, unit="deg", frame="galactic").icrs
        return c.ra.deg, c.dec.deg

    true = {"inner": (41.0, 0.0, 1e-13), "margin": (42.7, 0.3, 3e-13), "outside": (43.15, -0.3, 3e-13)}
    truth = Models([
        Source("inner", GaussianSpatialModel.create(*at(41.0, 0.0), sigma=0.3), PowerLaw.create(1e-13, 2.6, 3.0),
               datasets=("WCDA",)),
        Source("margin", PointSpatialModel.create(*at(42.7, 0.3)), PowerLaw.create(3e-13, 2.6, 3.0),
               datasets=("WCDA",)),
        Source("outside", PointSpatialModel.create(*at(43.15, -0.3)), PowerLaw.create(3e-13, 2.6, 3.0),
               datasets=("WCDA",)),
        galactic_diffuse(),
    ])  # fmt: skip
    ds = simulate_dataset(truth, lhaaso_dataset("WCDA", roi=Region(39, 43, -2, 2).roi(256), livetime_days=365), seed=1)

    def diffuse_pull(out):
        res = out["result"]
        value = {q.name: q.value for q in res.model.source("diffuse").spectral.parameters}["amplitude"]
        return (value - DIFFUSE_AMPLITUDE) / res.errors["diffuse.amplitude"]

    out = detect_and_fit([ds], DetectionConfig(), log=lambda *a: None)
    rows = component_table(out)
    assert len(rows) == 3
    for name, (lon, lat, amplitude) in true.items():
        r = min(
            rows,
            key=lambda r: SkyCoord(r["ra"], r["dec"], unit="deg").separation(SkyCoord(*at(lon, lat), unit="deg")).deg,
        )
        assert SkyCoord(r["ra"], r["dec"], unit="deg").separation(SkyCoord(*at(lon, lat), unit="deg")).deg < 0.1, name
        assert abs(r["amplitude"] - amplitude) < 3 * r["amplitude_err"], name
    assert abs(diffuse_pull(out)) < 3
    old = detect_and_fit([ds], DetectionConfig(edge_deg=0.6, beyond_deg=0.0), log=lambda *a: None)
    assert diffuse_pull(old) > 10 and not component_table(old)


def test_radius95_holds_95_percent_of_any_error_ellipse():
    """pos_err95 is the radius of the circle holding 95 % of the 2D Gaussian error, round or elongated (the circle
    of the mean variance held 91.8 % of a 10:1 ellipse)."""
    rng = np.random.default_rng(0)
    for cov in (np.diag([1.0, 1.0]), np.diag([1.0, 0.01]), np.array([[2.0, 0.9], [0.9, 0.5]]), np.diag([1.0, 0.0])):
        x = rng.multivariate_normal([0.0, 0.0], cov, size=400_000)
        r = radius95(cov)
        assert np.mean(np.hypot(x[:, 0], x[:, 1]) <= r) == pytest.approx(0.95, abs=0.002)
    assert radius95(np.diag([1.0, 1.0])) == pytest.approx(np.sqrt(-2 * np.log(0.05)), rel=1e-6)


def test_the_progress_bar_shows_the_step_inside_an_roi(tmp_path, capsys):
    """In-process, the ROI bar shows the detection's current step (the main command used to sit at 0/1 for
    minutes with nothing moving)."""
    from astropy.coordinates import SkyCoord

    sky = tmp_path / "sky.yaml"
    sky.write_text(SKY)
    g = SkyCoord(286.5, 7.0, unit="deg").galactic
    region = f"{g.l.deg - 1:.2f},{g.l.deg + 1:.2f},{g.b.deg - 1:.2f},{g.b.deg + 1:.2f}"
    cfg = CatalogConfig(region=region, nside=128, tile_deg=2.0, overlap_deg=1.0, detectors=("KM2A",), sky=str(sky))
    run(cfg, out_dir=tmp_path / "cat", progress=True, plots=False, log=lambda *a: None)
    err = capsys.readouterr().err
    assert "ROI 1: " in err and "component TS" in err


def test_the_catalogue_table_has_columns_for_the_detectors_it_holds():
    """LHAASO's catalogues keep their WCDA and KM2A columns; another instrument's (the Fermi-LAT's dataset
    FERMI) components get their own columns instead of being refused."""
    from skyfit.catalog import catalog_table, merge_components

    def component(dataset, ts, ra=266.4):
        return {"dataset": dataset, "ra": ra, "dec": -29.0, "pos_err95": 0.01, "r39": 0.0, "r39_err": 0.0,
                "amplitude": 1e-9, "amplitude_err": 1e-10, "index": 2.6, "index_err": 0.1, "reference_tev": 0.03,
                "ts": ts, "ts_ext": 0.0}  # fmt: skip

    fermi = catalog_table(merge_components([component("FERMI", 900.0), component("FERMI", 10.0, 267.0)], 0.5), 25)
    assert len(fermi) == 1 and fermi["components"][0] == "FERMI" and fermi["FERMI_ts"][0] == 900.0
    assert not any(c.startswith(("WCDA_", "KM2A_")) for c in fermi.colnames)
    lhaaso = catalog_table(merge_components([component("WCDA", 100.0)], 0.5), 25)
    assert "KM2A_ts" in lhaaso.colnames and np.isnan(lhaaso["KM2A_ts"][0]) and lhaaso["WCDA_ts"][0] == 100.0


def test_a_background_holding_the_diffuse_emission_gets_a_free_norm_instead_of_the_band():
    """DetectionConfig(diffuse="background_norm"), for data whose background already holds the diffuse
    emission (the Fermi-LAT's gtmodel cube): no diffuse band in the ROI's model, the dataset's background norm
    free and fitted (here 1.2 times the given background), the source found."""
    from astropy.coordinates import SkyCoord

    c = SkyCoord(41, 0.0, unit="deg", frame="galactic").icrs
    template = lhaaso_dataset("WCDA", roi=Region(40, 42, -1, 1).roi(128), livetime_days=365)
    truth = Models([Source("src", PointSpatialModel.create(c.ra.deg, c.dec.deg), PowerLaw.create(3e-13, 2.6, 3.0))])
    expected = npred(truth, template) + 0.2 * template.background.data  # npred holds the background once
    ds = template.with_counts(np.random.default_rng(4).poisson(expected).astype(float))
    out = detect_and_fit([ds], DetectionConfig(diffuse="background_norm"), log=lambda *a: None)
    model = out["result"].model
    assert all(s.name != "diffuse" for s in model.sources) and [b.dataset for b in model.backgrounds] == ["WCDA"]
    assert model.values()["WCDA-bkg.norm"] == pytest.approx(1.2, rel=0.02)
    assert len(out["ts"]) >= 1 and max(out["ts"].values()) > 100
    with pytest.raises(ValueError, match="diffuse must be"):
        detect_and_fit([ds], DetectionConfig(diffuse="gll_iem"), log=lambda *a: None)


def test_detect_and_fit_from_given_seeds_with_no_proposer():
    """Seeds start the model (the oracle of benchmarks/crowded_fields.py): a true pair 0.25 deg apart seeded
    where it is keeps both members through the same TS tests, a seed on empty sky is dropped by them, and
    ``proposer="none"`` without seeds is an error."""
    from astropy.coordinates import SkyCoord

    from skyfit.detect.components import seed_component, to_point

    a, b, empty = (SkyCoord(lon, lat, unit="deg", frame="galactic").icrs for lon, lat in
                   ((41.0, 0.0), (41.25, 0.0), (42.2, 1.2)))  # fmt: skip
    truth = Models([Source(n, PointSpatialModel.create(c.ra.deg, c.dec.deg), PowerLaw.create(1.5e-13, 2.6, 3.0),
                           datasets=("WCDA",)) for n, c in (("a", a), ("b", b))] + [galactic_diffuse()])  # fmt: skip
    ds = simulate_dataset(truth, lhaaso_dataset("WCDA", roi=Region(39, 43, -2, 2).roi(128), livetime_days=365), seed=5)
    cfg = DetectionConfig(proposer="none")
    seeds = [to_point(seed_component(f"t{k}_WCDA", c.ra.deg, c.dec.deg, "WCDA", "WCDA", 1.5e-13, cfg))
             for k, c in enumerate((a, b, empty))]  # fmt: skip
    out = detect_and_fit([ds], cfg, log=lambda *x: None, seeds=seeds)
    assert sorted(out.ts) == ["t0_WCDA", "t1_WCDA"] and min(out.ts.values()) > 25.0
    assert [h["proposer"] for h in out.history] == ["given"] * 3
    with pytest.raises(ValueError, match="seeds="):
        detect_and_fit([ds], cfg, log=lambda *x: None)

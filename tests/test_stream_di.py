"""Site transforms, event streams, streaming binning and direct-integration background (issue #4)."""

import numpy as np
import pytest

from skyfit.background import DIConfig, DIError, Exclusions, direct_integration_block
from skyfit.coords import LHAASO_SITE, SiteFrame
from skyfit.events import EventFile, EventFileError, write_events
from skyfit.maps import HealpixROI
from skyfit.models import LogParabola, PointSpatialModel, Source
from skyfit.simulate import simulate_event_stream
from skyfit.stream import bin_event_files, write_event_stream

START = 59639.0  # 2022-03-01


def test_site_frame_matches_astropy_to_better_than_an_arcsecond():
    import astropy.units as u
    from astropy.coordinates import AltAz, SkyCoord
    from astropy.time import Time
    from astropy.utils import iers

    rng = np.random.default_rng(1)
    frame = SiteFrame(LHAASO_SITE, START, START + 30)
    n = 2000
    mjd = START + rng.uniform(0, 30, n)
    az = rng.uniform(0, 360, n)
    zen = np.degrees(np.arccos(rng.uniform(np.cos(np.radians(70)), 1, n)))
    ra, dec = frame.local_to_icrs(az, zen, mjd)
    with iers.conf.set_temp("auto_download", False):
        altaz = AltAz(obstime=Time(mjd, format="mjd", scale="utc"), location=LHAASO_SITE.earth_location())
        truth = SkyCoord(az=az * u.deg, alt=(90 - zen) * u.deg, frame=altaz)
        sep = truth.icrs.separation(SkyCoord(ra * u.deg, dec * u.deg)).arcsec
        a2, z2 = frame.icrs_to_local(truth.icrs.ra.deg, truth.icrs.dec.deg, mjd)
        back = SkyCoord(az=a2 * u.deg, alt=(90 - z2) * u.deg, frame=altaz).separation(truth).arcsec
    assert sep.max() < 0.05 and back.max() < 0.05, (sep.max(), back.max())  # requirement: 1 arcsec
    with pytest.raises(ValueError, match="outside this frame's span"):
        frame.local_to_icrs(az[:3], zen[:3], START + 31)


@pytest.fixture(scope="module")
def stream_dir(tmp_path_factory):
    crab = Source("crab", PointSpatialModel.create(83.63, 22.01), LogParabola.create(2 * 2.31e-13, 2.73, 0.06, 7.0))
    d = tmp_path_factory.mktemp("stream")
    blocks = simulate_event_stream("WCDA", START, 1.0, [crab], block_hours=12, rate_scale=0.01, bins=[1, 2], seed=3)
    write_event_stream(blocks, d, meta={"INSTRUME": "WCDA"})
    return d


def test_stream_is_time_sorted_reproducible_and_respects_the_zenith_cut(stream_dir):
    files = sorted(stream_dir.glob("*.parquet"))
    assert len(files) == 2
    ev = EventFile(files[0]).read(("TIME", "ZEN", "BIN", "SOURCE"))
    assert np.all(np.diff(ev["TIME"]) >= 0)
    assert ev["ZEN"][ev["SOURCE"] < 0].max() < 50.0
    assert set(np.unique(ev["BIN"])) == {1, 2}
    again = next(simulate_event_stream("WCDA", START, 1.0, block_hours=12, rate_scale=0.01, bins=[1, 2], seed=3))[2]
    assert again["TIME"].size == np.sum(ev["SOURCE"] < 0)  # same seed, same cosmic rays
    with pytest.raises(ValueError, match="bins must be"):
        next(simulate_event_stream("WCDA", START, 1.0, bins=[9]))


def test_di_background_is_unbiased_on_a_background_only_stream():
    roi = HealpixROI.from_disc((100.0, 20.0), 15.0, 64, True)
    frame = SiteFrame(LHAASO_SITE, START, START + 2)
    counts = bkg = 0.0
    for t0, t1, ev in simulate_event_stream("WCDA", START, 2.0, rate_scale=0.01, bins=[0], seed=11):
        c, b, rep = direct_integration_block(ev, t0, t1, roi, 6, frame, DIConfig())
        counts, bkg = counts + c, bkg + b
    n, b = counts[0], bkg[0]
    assert rep["n_empty_windows"] == 0 and rep["n_windows"] == 12
    # DI is unbiased to well below this test's statistical precision (about 0.3 %)
    assert abs(n.sum() - b.sum()) / np.sqrt(b.sum()) < 3.5
    sig = (n - b) / np.sqrt(b)
    assert abs(sig.mean()) < 4 / np.sqrt(sig.size) and abs(sig.std() - 1) < 0.03


def test_exclusion_removes_a_bright_source_from_the_background(stream_dir):
    roi = HealpixROI.from_disc((83.63, 22.01), 6.0, 128, True)
    excl = Exclusions.from_discs(83.63, 22.01, 2.0)
    plain = bin_event_files(stream_dir, roi, 6, background="di", block_hours=12, progress=False)
    masked = bin_event_files(stream_dir, roi, 6, background="di", block_hours=12, exclusions=excl, progress=False)
    assert masked.report["n_excluded"] > 0
    assert np.array_equal(plain.counts.data, masked.counts.data)
    # without exclusion the source's own events inflate the background along its declination band
    core = np.degrees(np.arccos(np.clip(roi.unit_vectors() @ _vec(83.63, 22.01), -1, 1))) < 1.0
    assert masked.background.data[:, core].sum() < plain.background.data[:, core].sum()


def _vec(ra, dec):
    from skyfit.coords import radec_to_vector

    return radec_to_vector(ra, dec)


def test_streaming_resumes_from_checkpoints_and_matches_in_memory_binning(stream_dir, tmp_path):
    from skyfit.maps import bin_events

    roi = HealpixROI.from_disc((83.63, 22.01), 8.0, 128, True)
    ck = tmp_path / "ck"
    first = bin_event_files(stream_dir, roi, 6, background="di", block_hours=12, checkpoint_dir=ck, progress=False)
    # simulate an interruption: one finished task is lost
    done = sorted(ck.glob("*.npz"))
    assert len(done) == 2
    done[0].unlink()
    resumed = bin_event_files(stream_dir, roi, 6, background="di", block_hours=12, checkpoint_dir=ck, progress=False)
    assert resumed.report["n_tasks_resumed"] == 1
    assert np.array_equal(resumed.counts.data, first.counts.data)
    # the tasks' maps are summed in task order, resumed or not: the same sums to the last bit
    assert np.array_equal(resumed.background.data, first.background.data)
    assert resumed.report == {**first.report, "n_tasks_resumed": 1}
    # a checkpoint torn mid-write (by an older writer without atomic rename) is redone, not trusted
    done[1].write_bytes(done[1].read_bytes()[:100])
    torn = bin_event_files(stream_dir, roi, 6, background="di", block_hours=12, checkpoint_dir=ck, progress=False)
    assert torn.report["n_tasks_resumed"] == 1 and np.array_equal(torn.background.data, first.background.data)
    assert sorted(ck.iterdir()) == done  # no temporary file left
    ev = [EventFile(p).read() for p in sorted(stream_dir.glob("*.parquet"))]
    ref, _ = bin_events(
        np.concatenate([e["RA"] for e in ev]),
        np.concatenate([e["DEC"] for e in ev]),
        np.concatenate([e["BIN"] for e in ev]),
        roi,
        6,
    )
    plain = bin_event_files(stream_dir, roi, 6, chunk_rows=5000, progress=False)
    assert np.array_equal(plain.counts.data, ref) and np.array_equal(first.counts.data, ref)


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_maps(stream_dir):
    roi = HealpixROI.from_disc((83.63, 22.01), 5.0, 128, True)
    local = bin_event_files(stream_dir, roi, 6, background="di", block_hours=12, progress=False)
    dask = bin_event_files(stream_dir, roi, 6, background="di", block_hours=12, scheduler="local", progress=False)
    assert np.array_equal(local.counts.data, dask.counts.data)
    assert np.allclose(local.background.data, dask.background.data, rtol=1e-12)


def test_fits_and_parquet_event_files_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    ev = {
        "TIME": START + np.sort(rng.uniform(0, 1, 100)),
        "RA": rng.uniform(0, 360, 100),
        "DEC": rng.uniform(-10, 60, 100),
        "BIN": rng.integers(0, 3, 100).astype(np.int16),
    }
    for name in ("e.parquet", "e.fits"):
        write_events(tmp_path / name, ev, {"TSTART": START, "TSTOP": START + 1, "BINNAMES": ["a", "b", "c"]})
        f = EventFile(tmp_path / name)
        back = f.read()
        assert f.n_rows == 100 and f.time_range == (START, START + 1)
        assert all(np.array_equal(back[k], ev[k]) for k in ev)
        assert [len(c["TIME"]) for c in f.iter_chunks(chunk_rows=40)] == [40, 40, 20]


# --- bad input ------------------------------------------------------------------------------------


def _events(n=50, t0=START, sort=True, seed=0):
    rng = np.random.default_rng(seed)
    t = t0 + rng.uniform(0, 0.5, n)
    return {
        "TIME": np.sort(t) if sort else t,
        "RA": rng.uniform(0, 360, n),
        "DEC": rng.uniform(0, 50, n),
        "AZ": rng.uniform(0, 360, n),
        "ZEN": rng.uniform(0, 40, n),
        "BIN": np.zeros(n, np.int16),
    }


def test_missing_columns_name_the_file_and_the_columns(tmp_path):
    ev = _events()
    del ev["AZ"]
    write_events(tmp_path / "x.parquet", ev)
    roi = HealpixROI.from_disc((100, 20), 5, 64, True)
    with pytest.raises(EventFileError, match=r"x\.parquet: missing column\(s\) \['AZ'\]"):
        bin_event_files(tmp_path / "x.parquet", roi, 1, background="di", block_hours=24, progress=False)


def test_unsorted_times_are_refused_for_direct_integration(tmp_path):
    write_events(tmp_path / "u.parquet", _events(sort=False))
    roi = HealpixROI.from_disc((100, 20), 5, 64, True)
    with pytest.raises(EventFileError, match="TIME is not sorted"):
        bin_event_files(tmp_path / "u.parquet", roi, 1, background="di", block_hours=24, progress=False)


def test_truncated_parquet_file_is_reported(tmp_path):
    path = write_events(tmp_path / "t.parquet", _events(500))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(EventFileError, match="cut short or corrupt"):
        EventFile(path)


def test_events_outside_the_time_range_are_counted_not_dropped_silently(tmp_path):
    write_events(tmp_path / "e.parquet", _events(100))
    roi = HealpixROI.from_disc((100, 20), 60, 16, True)
    res = bin_event_files(tmp_path / "e.parquet", roi, 1, time_range=(START, START + 0.25), progress=False)
    r = res.report
    assert r["n_outside_time_range"] > 0
    assert r["n_binned"] + r["n_outside_roi"] + r["n_outside_bins"] + r["n_outside_time_range"] == r["n_events"]


def test_window_with_no_events_is_counted():
    ev = _events(200, seed=2)  # events only in the first 12 h of a 24 h block
    roi = HealpixROI.from_disc((100, 20), 10, 32, True)
    frame = SiteFrame(LHAASO_SITE, START, START + 1)
    _, _, rep = direct_integration_block(ev, START, START + 1, roi, 1, frame, DIConfig(window_hours=2))
    assert rep["n_windows"] == 12 and rep["n_empty_windows"] == 6
    with pytest.raises(DIError, match="outside the block"):
        direct_integration_block(ev, START + 0.1, START + 1, roi, 1, frame)


def test_bad_di_config_and_block_length():
    with pytest.raises(DIError, match="window_hours"):
        DIConfig(window_hours=0)
    with pytest.raises(DIError, match="cell_deg"):
        DIConfig(cell_deg=0.33)
    with pytest.raises(DIError, match="radius must be positive"):
        Exclusions.from_discs(10, 10, -1)


def test_unreachable_scheduler_gives_a_clear_error(stream_dir):
    roi = HealpixROI.from_disc((83.63, 22.01), 5.0, 64, True)
    with pytest.raises(ConnectionError, match="cannot reach the dask scheduler"):
        bin_event_files(stream_dir, roi, 6, scheduler="tcp://127.0.0.1:1", progress=False)


def test_cli_simulate_events_then_bin_with_di(tmp_path, monkeypatch):
    from skyfit.cli import main

    monkeypatch.chdir(tmp_path)
    assert (
        main(
            [
                "simulate-events",
                "--days",
                "0.5",
                "--block-hours",
                "12",
                "--bins",
                "2",
                "--rate-scale",
                "0.01",
                "--source",
                "83.63",
                "22.01",
                "3",
                "--outdir",
                "ev",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "bin",
                "ev",
                "--n-bins",
                "6",
                "--background",
                "di",
                "--center",
                "83.63",
                "22.01",
                "--radius",
                "6",
                "--nside",
                "64",
                "--block-hours",
                "12",
                "--checkpoint",
                "ck",
                "--outdir",
                ".",
            ]
        )
        == 0
    )
    assert (tmp_path / "counts_background.fits").exists() and (tmp_path / "counts_significance.png").exists()
    assert (
        main(["bin", "ev", "--n-bins", "6", "--background", "di", "--center", "83.63", "22.01", "--block-hours", "5"])
        == 2
    )  # not a multiple of the 2 h window


@pytest.mark.data
def test_exclusions_from_catalogue_band_and_regions(catalogs_dir):
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from regions import CircleSkyRegion

    cat = Exclusions.from_catalog(catalogs_dir / "1LHAASO_catalog.fits")
    assert cat.contains(np.array([83.63]), np.array([22.01]))[0]  # the Crab, 1LHAASO J0534+2200u
    band = Exclusions.galactic_band(5.0)
    gc = SkyCoord(0.0, 0.0, unit="deg", frame="galactic").icrs
    assert band.contains(np.array([gc.ra.deg]), np.array([gc.dec.deg]))[0]
    assert not band.contains(np.array([gc.ra.deg]), np.array([gc.dec.deg + 30]))[0]
    assert 0.08 < band.fraction_of_sky() < 0.1  # sin(5 deg)
    reg = Exclusions.from_regions([CircleSkyRegion(SkyCoord(100, 20, unit="deg"), 1.5 * u.deg)])
    assert reg.contains(np.array([100.0, 100.0]), np.array([21.0, 22.0])).tolist() == [True, False]
    both = cat | band | reg
    assert both.mask.sum() >= max(cat.mask.sum(), band.mask.sum())
    with pytest.raises(DIError, match="RA and DEC"):
        from astropy.table import Table

        Exclusions.from_catalog(Table({"x": [1.0]}))


def test_di_time_range_counts_every_skipped_event(stream_dir):
    roi = HealpixROI.from_disc((83.63, 22.01), 5.0, 64, True)
    full = bin_event_files(stream_dir, roi, 6, background="di", block_hours=12, progress=False)
    part = bin_event_files(
        stream_dir, roi, 6, background="di", block_hours=4, time_range=(START + 0.25, START + 0.5), progress=False
    )
    r = part.report
    assert r["n_events"] == full.report["n_events"]
    assert 0 < r["n_outside_time_range"] < r["n_events"]
    used = r["n_events"] - r["n_outside_time_range"]
    assert used == r["n_used_for_background"] + r["n_excluded"] + r["n_above_zenith_cut"] + r["n_outside_bins"]

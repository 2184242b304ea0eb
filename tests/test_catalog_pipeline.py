"""The catalogue pipeline's own helpers (:mod:`skyfit.catalog._pipeline`): checkpoints and their fingerprint,
the data of one ROI."""

import json

import numpy as np
import pytest

import skyfit.catalog._pipeline as _pipeline
from skyfit.catalog import CatalogConfig, CatalogError, Region, run

needs_data = pytest.mark.data


@needs_data
def test_catalog_run_finds_the_bright_sources_and_resumes_from_checkpoints(tmp_path, catalogs_dir):
    cfg = CatalogConfig(region="39,43,-2,2", nside=256, tile_deg=2.0, overlap_deg=1.0)
    out = tmp_path / "cat"
    first = run(cfg, out_dir=out, progress=False, plots=False, log=lambda *a: None)
    table = first["table"]
    assert first["n_rois"] == 2 and len(table) >= 2
    # J1908+0615 (l 40.4, b -0.8), WCDA and KM2A components merged into one source
    l_, b_ = np.asarray(table["l"]), np.asarray(table["b"])
    i = int(np.argmin(np.hypot(l_ - 40.39, b_ + 0.80)))
    assert np.hypot(l_[i] - 40.39, b_[i] + 0.80) < 0.15 and table["components"][i] == "KM2A+WCDA"
    assert table["assoc_1lhaaso"][i] == "1LHAASO J1908+0615u"
    for name in ("catalog.fits", "catalog.ecsv", "catalog.reg", "run.json"):
        assert (out / name).exists()
    meta = json.loads((out / "run.json").read_text())
    assert meta["config"]["seed"] == 0 and meta["versions"]["jax"]
    # interrupted run: one ROI not finished; the rerun redoes only that one and gives the same catalogue
    done = (out / "rois" / "roi_000.json").stat().st_mtime_ns
    (out / "rois" / "roi_001.json").unlink()
    again = run(cfg, out_dir=out, progress=False, plots=True, log=lambda *a: None)
    assert (out / "rois" / "roi_000.json").stat().st_mtime_ns == done
    assert again["table"].pformat(max_lines=-1, max_width=-1) == table.pformat(max_lines=-1, max_width=-1)
    # the maps, as PNG and as FITS that gammapy opens with their axis; J1908's TS stands out
    from gammapy.maps import Map

    for det in ("WCDA", "KM2A"):
        assert (out / f"significance_{det}.png").exists() and (out / f"residual_{det}.png").exists()
        ts = Map.read(out / f"maps_{det}.fits", hdu="TS")
        assert ts.data.max() > 100
        excess = Map.read(out / f"maps_{det}.fits", hdu="EXCESS")
        assert excess.geom.axes[0].nbin > 1
    # a checkpoint torn mid-write (an older writer without atomic rename) is redone, not trusted
    (out / "rois" / "roi_000.json").write_text('{"index": 0, "compon')
    assert _pipeline._load_checkpoint(out / "rois" / "roi_000.json", cfg.fingerprint()) is None
    # a checkpoint of another configuration is not reused
    other = CatalogConfig(region="39,43,-2,2", nside=256, tile_deg=2.0, overlap_deg=1.0, seed=5)
    assert other.fingerprint() != cfg.fingerprint()
    # nor one written by other detection code (the fingerprint hashes the modules that make an ROI)
    before = cfg.fingerprint()
    _pipeline._code_fingerprint.cache_clear()
    original = _pipeline._CODE_EXCLUDED
    try:
        _pipeline._CODE_EXCLUDED = (*original, "catalog")  # as if the catalogue's code had changed
        assert cfg.fingerprint() != before
    finally:
        _pipeline._CODE_EXCLUDED = original
        _pipeline._code_fingerprint.cache_clear()
    assert cfg.fingerprint() == before


def test_an_roi_without_data_is_a_clear_error():
    cfg = CatalogConfig(region="40,41,-1,1", nside=64, simulate="background")
    with pytest.raises(CatalogError, match="holds no pixel of dataset 'WCDA'"):
        _pipeline._datasets_for(cfg, Region(100.0, 101.0, -1.0, 1.0))

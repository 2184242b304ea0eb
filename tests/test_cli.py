"""The command line: demo end to end, simulate -> bin round trip, and config errors."""

import json

import numpy as np

from skyfit.cli import main
from skyfit.maps import HealpixMaps


def test_demo_runs_and_writes_results(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--outdir", str(out), "--nside", "128", "--radius", "2", "--livetime-days", "60"]) == 0
    assert {
        "fit_result.ecsv",
        "fit_result.json",
        "best_fit_model.yaml",
        "residuals_WCDA.png",
        "residuals_KM2A.png",
    } <= {p.name for p in out.iterdir()}
    payload = json.loads((out / "fit_result.json").read_text())
    assert payload["valid"] and payload["ts"]["crab"]["ts"] > 100
    assert "pull" in capsys.readouterr().out


def test_simulate_then_bin_round_trip(tmp_path):
    cfg = tmp_path / "sim.yaml"
    cfg.write_text(
        """
datasets:
  - {type: km2a, center: [83.63, 22.01], radius_deg: 1.5, nside: 128, livetime_days: 100}
model:
  components:
    - name: src
      spatial: {type: PointSpatialModel, parameters: [{name: lon_0, value: 83.63}, {name: lat_0, value: 22.01}]}
      spectral: {type: PowerLawSpectralModel, parameters: [{name: amplitude, value: 1.0e-13},
                 {name: index, value: 2.7}, {name: reference, value: 10.0, frozen: true}]}
seed: 4
"""
    )
    events = tmp_path / "events.fits"
    assert main(["simulate", str(cfg), "--output", str(events)]) == 0
    counts = tmp_path / "counts.fits"
    assert (
        main(
            [
                "bin",
                str(events),
                "--center",
                "83.63",
                "22.01",
                "--radius",
                "1.5",
                "--nside",
                "128",
                "--output",
                str(counts),
            ]
        )
        == 0
    )
    maps = HealpixMaps.read(counts, nside=128, nest=True)
    assert maps.n_bins == 9 and maps.bin_names[0] == "KM2A_logE1.4-1.6"
    assert maps.data.sum() > 100 and np.all(maps.data == np.round(maps.data))


def test_bad_config_is_reported_with_the_file(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("datasets: []\nmodel: {components: []}\nbogus: 1\n")
    assert main(["fit", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "bogus" in err
    cfg.write_text("datasets: [{type: hawk}]\nmodel: {components: []}\n")
    assert main(["fit", str(cfg)]) == 2
    assert "type must be 'file', 'maptree', 'hawc', 'wcda' or 'km2a'" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err

"""The command line: demo end to end, simulate -> bin round trip, and config errors."""

import json
from pathlib import Path

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


def test_version_and_verbose_anywhere(capsys):
    """`skyfit --version`; -v before or after the subcommand (it used to be refused after it)."""
    import pytest

    import skyfit
    from skyfit.cli import build_parser

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"skyfit {skyfit.__version__}"
    parser = build_parser()
    assert parser.parse_args(["catalog", "-v"]).verbose is True
    assert parser.parse_args(["-v", "catalog"]).verbose is True
    assert parser.parse_args(["catalog"]).verbose is False


def test_the_command_line_imports_no_numerics_until_a_command_runs():
    """`skyfit --help` answers without importing JAX, healpy or astropy (the package's API loads on first use):
    it took about 4.6 s here because importing skyfit imported everything."""
    import subprocess
    import sys

    code = ("import sys, skyfit.cli; heavy = ('jax', 'healpy', 'astropy', 'iminuit');"
            "print(sorted(m for m in heavy if m in sys.modules));"
            "from skyfit import fit, PowerLaw; print(callable(fit), PowerLaw.__name__)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "True PowerLaw"


def test_a_centre_beyond_the_pole_is_refused(tmp_path, capsys):
    """`skyfit bin --center RA DEC` with |DEC| > 90 is a usage error (it used to bin nothing and exit 0)."""
    events = tmp_path / "events.fits"
    events.write_text("")
    assert main(["bin", str(events), "--center", "83.6", "122.0", "--radius", "2", "--output",
                 str(tmp_path / "c.fits")]) == 2  # fmt: skip
    assert "declination 122.0 deg is outside [-90, 90]" in capsys.readouterr().err


def test_an_invalid_fit_exits_3(tmp_path, monkeypatch, capsys):
    """Exit codes: a fit whose minimum is not valid writes its results and exits 3 (it used to exit 1, like a
    crash)."""
    from dataclasses import replace

    import skyfit.cli as cli

    real = cli._fit_and_report

    def invalid(*args, **kwargs):
        result, extra = real(*args, **kwargs)
        return replace(result, valid=False), extra

    monkeypatch.setattr(cli, "_fit_and_report", invalid)
    args = ["demo", "--outdir", str(tmp_path / "demo"), "--nside", "128", "--radius", "2", "--livetime-days", "60"]
    assert main(args) == cli.EXIT_INVALID_FIT == 3
    assert (tmp_path / "demo" / "fit_result.json").exists()


def test_prior_train_writes_a_new_file_unless_told(tmp_path, monkeypatch):
    """`skyfit prior train` writes prior_weights.npz in the current folder; the installed weights only with
    --replace-shipped (it used to overwrite them by default)."""
    import skyfit.detect.prior as prior

    written = []

    class Fake:
        meta, calibration, threshold = {"seed": 0}, {}, 0.5

        def save(self, path):
            written.append(path)
            path.write_bytes(b"weights")

    monkeypatch.setattr(prior, "train_prior", lambda **kw: Fake())
    monkeypatch.setattr(prior, "SHIPPED_WEIGHTS", tmp_path / "installed" / "prior_weights.npz")
    (tmp_path / "installed").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["prior", "train"]) == 0
    assert written == [Path("prior_weights.npz")] and (tmp_path / "prior_weights.json").exists()
    assert main(["prior", "train", "--replace-shipped"]) == 0
    assert written[-1] == tmp_path / "installed" / "prior_weights.npz"
    assert main(["prior", "train", "--replace-shipped", "--out", "x.npz"]) == 2

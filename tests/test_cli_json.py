"""`skyfit ... --json`: one JSON document on stdout per command (results, files written, errors), every key of
it described in docs/cli-json.md, the exit codes kept."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from skyfit.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli-json.md"
ENVELOPE = {"schema", "skyfit_version", "command", "exit_code", "ok", "outputs", "result", "warnings", "error"}
# mappings keyed by names (parameters, datasets, sources): their keys are not in the page, their values' keys are
BY_NAME = {"parameters", "ts", "simulated_counts", "truth", "pulls", "residuals_png", "n_events_per_dataset",
           "background_norms", "software", "maps_fits", "flux_points", "flux_points_fits", "sed_png"}  # fmt: skip
# described as a whole in the page (the training record, report.json's tables), not key by key
WHOLE = {"calibration", "training", "equal_efficiency", "traditional", "ml", "ratios", "bkg_reduction_at_equal_eff",
         "significance"}  # fmt: skip

MODEL = """
model:
  components:
    - name: src
      spatial: {type: PointSpatialModel, parameters: [{name: lon_0, value: 83.63}, {name: lat_0, value: 22.01}]}
      spectral: {type: PowerLawSpectralModel, parameters: [{name: amplitude, value: 1.0e-13},
                 {name: index, value: 2.7}, {name: reference, value: 10.0, frozen: true}]}
"""


def _section(command: str) -> str:
    """The text of docs/cli-json.md's section on ``skyfit COMMAND`` (its heading names it)."""
    sections = re.split(r"^## ", DOC.read_text(), flags=re.M)
    found = [s for s in sections if f"`skyfit {command}`" in s.split("\n", 1)[0]]
    assert len(found) == 1, f"docs/cli-json.md has no section `skyfit {command}`"
    return found[0]


def _keys(obj) -> set:
    """The fixed keys of a result or outputs mapping, at every depth."""
    keys = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            keys.add(k)
            if k in WHOLE:
                continue
            for item in v.values() if k in BY_NAME and isinstance(v, dict) else [v]:
                keys |= _keys(item)
    elif isinstance(obj, list):
        for item in obj:
            keys |= _keys(item)
    return keys


def _paths(outputs: dict) -> list:
    flat = []
    for v in outputs.values():
        flat += list(v.values()) if isinstance(v, dict) else v if isinstance(v, list) else [v]
    return flat


def run_json(argv, capsys, code: int = 0, files: bool = True):
    """``skyfit ARGV --json``: its exit code, one JSON document (one line) on stdout with the envelope, every key
    in the command's section of docs/cli-json.md, the files of ``outputs`` written. Returns (document, stderr)."""
    assert main([*argv, "--json"]) == code
    out, err = capsys.readouterr()
    doc = json.loads(out)  # a second document or any text would fail here
    assert out.count("\n") == 1 and set(doc) == ENVELOPE
    assert doc["schema"] == "skyfit-cli/1" and doc["exit_code"] == code and doc["ok"] is (code == 0)
    assert (doc["error"] is None) is (code == 0)
    section = _section(doc["command"])
    for key in sorted(_keys(doc["result"]) | _keys(doc["outputs"])):
        assert f"`{key}`" in section, f"docs/cli-json.md, `skyfit {doc['command']}`: no `{key}`"
    for path in _paths(doc["outputs"]):
        assert Path(path).is_absolute() and (Path(path).exists() or not files), path
    return doc, err


def test_the_page_describes_the_envelope_and_the_exit_codes():
    envelope = _section_titled("The envelope")
    for key in [*ENVELOPE, "type", "message"]:
        assert f"| `{key}` |" in envelope, key
    codes = _section_titled("Exit codes")
    assert all(f"| {c} |" in codes for c in range(4))
    assert DOC.read_text().startswith("# Command-line JSON output\n")


def _section_titled(title: str) -> str:
    return next(s for s in re.split(r"^## ", DOC.read_text(), flags=re.M) if s.startswith(title))


def test_fit_json(tmp_path, capsys):
    cfg = tmp_path / "fit.yaml"
    cfg.write_text("datasets:\n  - {type: km2a, center: [83.63, 22.01], radius_deg: 1.5, nside: 64, livetime_days: 100,"
                   " simulate: true}\nts: [src]\nseed: 4\nflux_points: src\n" + MODEL)  # fmt: skip
    doc, err = run_json(["fit", str(cfg), "--outdir", str(tmp_path / "fit")], capsys)
    res = doc["result"]
    assert doc["command"] == "fit" and res["valid"] and res["ts"]["src"]["ts"] > 25 and "FitResult" in err
    assert res["parameters"]["src.index"]["error"] > 0 and res["parameters"]["src.reference"]["error"] is None
    assert set(doc["outputs"]) == {"fit_result_ecsv", "fit_result_json", "best_fit_model_yaml", "residuals_png",
                                   "maps_fits", "flux_points_fits", "sed_png"}  # fmt: skip
    saved = json.loads(Path(doc["outputs"]["fit_result_json"]).read_text())
    assert saved["stat"] == res["stat"] and saved["provenance"]["config"]["seed"] == 4
    assert saved["provenance"]["datasets"][0]["name"] == "KM2A" and saved["provenance"]["software"]["skyfit"]
    assert list(doc["outputs"]["residuals_png"]) == ["KM2A"]
    # the files open in gammapy: the maps with their energy axis, the flux points, the model with its errors
    from gammapy.estimators import FluxPoints
    from gammapy.maps import Map
    from gammapy.modeling.models import Models

    assert Map.read(doc["outputs"]["maps_fits"]["KM2A"], hdu="EXCESS").geom.axes[0].name == "energy"
    points = FluxPoints.read(doc["outputs"]["flux_points_fits"]["src"])
    assert len(res["flux_points"]["src"]) == points.energy_axis.nbin > 3
    gp = Models.read(doc["outputs"]["best_fit_model_yaml"])
    assert gp["src"].parameters["index"].error == pytest.approx(res["parameters"]["src.index"]["error"])


def test_an_invalid_fit_exits_3(tmp_path, monkeypatch, capsys):
    """Exit codes: a fit whose minimum is not valid writes its results and exits 3 (it used to exit 1, like a
    crash); with --json its document says so (ok false, InvalidFit) and holds the results (skyfit demo)."""
    from dataclasses import replace

    import skyfit.cli as cli
    import skyfit.cli.fitting as fitting

    real = fitting._fit_and_report

    def invalid(*args, **kwargs):
        result, extra = real(*args, **kwargs)
        return replace(result, valid=False), extra

    monkeypatch.setattr(fitting, "_fit_and_report", invalid)
    args = ["demo", "--outdir", str(tmp_path / "demo"), "--nside", "128", "--radius", "2", "--livetime-days", "60"]
    doc, err = run_json(args, capsys, code=cli.EXIT_INVALID_FIT)
    assert (tmp_path / "demo" / "fit_result.json").exists() and "pull" in err
    assert doc["error"]["type"] == "InvalidFit" and doc["result"]["valid"] is False
    assert doc["result"]["ts"]["crab"]["ts"] > 100 and set(doc["result"]["pulls"]) == set(doc["result"]["truth"])
    assert set(doc["outputs"]["residuals_png"]) == {"WCDA", "KM2A"}


def test_simulate_and_bin_json(tmp_path, capsys):
    cfg = tmp_path / "sim.yaml"
    dataset = "{type: km2a, center: [83.63, 22.01], radius_deg: 1.0, nside: 64, livetime_days: 30}"
    cfg.write_text(f"datasets:\n  - {dataset}\n{MODEL}")
    doc, _ = run_json(["simulate", str(cfg), "--outdir", str(tmp_path / "sim")], capsys)
    assert doc["result"]["n_events"] == doc["result"]["n_events_per_dataset"]["KM2A"] > 0
    events = doc["outputs"]["events"]
    region = ["--center", "83.63", "22.01", "--radius", "1", "--nside", "64"]
    doc, err = run_json(["bin", events, *region, "--outdir", str(tmp_path / "c")], capsys)
    res = doc["result"]
    assert res["kind"] == "counts" and set(doc["outputs"]) == {"counts"} and res["nside"] == 64
    assert res["report"]["n_binned"] + res["report"]["n_outside_roi"] + res["report"]["n_outside_bins"] == \
        res["report"]["n_events"]  # fmt: skip
    assert json.loads(err.splitlines()[0]) == res["report"]  # the report line of the text mode, on stderr
    response = ["--response", "km2a", "--livetime-days", "30", "--background", "instrument", "--name", "K"]
    doc, _ = run_json(["bin", events, *region, *response, "--outdir", str(tmp_path / "d")], capsys)
    assert doc["result"]["kind"] == "dataset" and doc["result"]["name"] == "K"
    assert set(doc["outputs"]) == {"dataset", "maps_fits"}
    from gammapy.maps import Map

    assert Map.read(doc["outputs"]["maps_fits"], hdu="EXCESS").geom.axes[0].nbin > 1


def test_simulate_events_and_bin_a_stream_json(tmp_path, capsys):
    sim = ["simulate-events", "--days", "0.25", "--block-hours", "3", "--rate-scale", "0.0001", "--outdir",
           str(tmp_path / "ev")]  # fmt: skip
    doc, _ = run_json(sim, capsys)
    assert doc["result"]["n_files"] == len(doc["outputs"]["event_files"]) == 2 and doc["result"]["n_events"] > 0
    doc, _ = run_json(["bin", str(tmp_path / "ev"), "--n-bins", "6", "--center", "83.63", "22.01", "--radius", "2",
                       "--nside", "64", "--outdir", str(tmp_path / "b")], capsys)  # fmt: skip
    assert doc["result"]["report"]["n_files"] == 2 and doc["result"]["report"]["n_tasks"] >= 2


def test_catalog_json(tmp_path, capsys):
    """A cheap real run (one 1 x 1 deg ROI, KM2A, background only: no source) and an input error."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("detectors: [KM2A]\n")
    args = ["catalog", "--config", str(cfg), "--region", "40,41,-0.5,0.5", "--nside", "32", "--tile-deg", "1",
            "--overlap-deg", "0.5", "--null", "--no-plots", "--outdir", str(tmp_path / "cat")]  # fmt: skip
    doc, _ = run_json(args, capsys)
    assert doc["result"]["n_rois"] == 1 and doc["result"]["sources"] == [] and doc["result"]["n_sources"] == 0
    assert Path(doc["outputs"]["checkpoints"]).is_dir() and "plots_png" not in doc["outputs"]
    cfg.write_text("nsde: 64\n")
    doc, err = run_json(["catalog", "--config", str(cfg), "--outdir", str(tmp_path / "o")], capsys, code=2)
    assert doc["error"]["type"] == "ConfigError" and "nsde" in doc["error"]["message"] and "nsde" in err


def test_catalog_json_lists_the_sources(tmp_path, monkeypatch, capsys):
    """The sources' key columns, NaN as null (a fake run: the real one is above and in tests/test_catalog*.py)."""
    from astropy.table import Table

    import skyfit.catalog as catalog

    row = {"name": "SKYFIT J1905+0700", "ra": 286.5, "dec": 7.0, "l": 40.82, "b": -0.03, "pos_err95": 0.03,
           "r39": 0.0, "r39_err": np.nan, "ts": 1268.9, "components": "KM2A", "assoc_1lhaaso": "1LHAASO J1906+0712",
           "KM2A_ts_ext": 0.4}  # fmt: skip
    table = Table(rows=[row])
    summary = {"n_rois": 1, "n_components": 1, "n_sources": 1, "fits": 5, "fits_detect": 3, "wall_s": 1.0,
               "roi_wall_s": [1.0], "invalid_rois": [], "diffuse_amplitudes": [1e-13],
               "background_norms": {}}  # fmt: skip
    monkeypatch.setattr(catalog, "run", lambda cfg, out_dir, **kw: {**summary, "table": table, "components": [],
                                                                     "out_dir": str(out_dir)})  # fmt: skip
    doc, _ = run_json(["catalog", "--no-plots", "--outdir", str(tmp_path)], capsys, files=False)
    (source,) = doc["result"]["sources"]
    assert source == {**{k: v for k, v in row.items() if k != "KM2A_ts_ext"}, "r39_err": None}


def test_prior_train_json(tmp_path, monkeypatch, capsys):
    import skyfit.detect.prior as prior

    class Fake:
        meta, calibration, threshold = {"seed": 0, "steps": 4}, {"WCDA": {"pos": 1.1}}, 0.5

        def save(self, path):
            path.write_bytes(b"weights")

    monkeypatch.setattr(prior, "train_prior", lambda **kw: Fake())
    monkeypatch.chdir(tmp_path)
    doc, err = run_json(["prior", "train", "--out", "p.npz"], capsys)
    assert doc["command"] == "prior train" and doc["result"]["threshold"] == 0.5
    assert doc["outputs"] == {"weights": str(tmp_path / "p.npz"), "record_json": str(tmp_path / "p.json")}
    assert len(doc["warnings"]) == 1 and "--out FILE is deprecated" in doc["warnings"][0] in err


def test_showers_json(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    doc, _ = run_json(["showers", "simulate", "--n", "600", "--e-min", "1", "--e-max", "5", "--hits", "--outdir", "g"],
                      capsys)  # fmt: skip
    assert doc["result"]["n_showers"] == 600 and set(doc["outputs"]) == {"events", "hits"}
    assert 0 < doc["result"]["noise_filter_purity"] <= 1
    run_json(["showers", "simulate", "--particle", "proton", "--n", "600", "--e-min", "2", "--e-max", "12",
              "--outdir", "p"], capsys)  # fmt: skip
    doc, _ = run_json(["showers", "reconstruct", "g/showers.parquet", "--hits", "g/hits.parquet", "--outdir", "r"],
                      capsys)  # fmt: skip
    assert doc["result"]["window_ns"] == 20.0 and doc["outputs"]["events"] == str(tmp_path / "r" / "showers.parquet")
    doc, _ = run_json(["showers", "report", "g/showers.parquet", "p/showers.parquet", "--outdir", "rep"], capsys)
    assert doc["result"]["bins"] and set(doc["outputs"]) == {"cut_table_ecsv", "roc_png"}


def test_shower_network_json(tmp_path, monkeypatch, capsys):
    """A small noise network trained, applied and reported for real (the tasks' physics: tests/test_showerml.py)."""
    monkeypatch.chdir(tmp_path)
    run_json(["showers", "simulate", "--n", "400", "--e-min", "1", "--e-max", "5", "--hits", "--outdir", "g"], capsys)
    doc, _ = run_json(["showers", "train", "--task", "noise", "--n", "800", "--n-tune", "1500", "--epochs", "1",
                       "--outdir", "m"], capsys)  # fmt: skip
    assert doc["result"]["instrument"] == "WCDA" and doc["outputs"]["model"].endswith("shower_noise_WCDA.npz")
    doc, _ = run_json(["showers", "apply", "m/shower_noise_WCDA.npz", "g/showers.parquet", "--hits", "g/hits.parquet",
                       "--outdir", "a"], capsys)  # fmt: skip
    assert "NHIT_ML" in doc["result"]["columns"] and set(doc["outputs"]) == {"events", "hits"}
    doc, _ = run_json(["showers", "report", "m/shower_noise_WCDA.npz", "--n", "1500", "--outdir", "r"], capsys)
    assert doc["result"]["test_seed"] == 2 and doc["result"]["bins"][0]["bin"] == 0
    doc, _ = run_json(["showers", "report", "m/shower_noise_WCDA.npz", "--seed", "1", "--outdir", "r"], capsys, code=2)
    assert "training (0) or tuning (1) seed" in doc["error"]["message"]


def test_ghsep_json(tmp_path, monkeypatch, capsys):
    """The model and its work faked (the real runs: tests/test_ghsep.py, tests/test_cli.py): apply, train, report."""
    import skyfit.ghsep as ghsep
    from skyfit.events import write_events

    class Toy:
        kind, instrument = "mlp", "WCDA"

    write_events(tmp_path / "ev.parquet", {"NHIT": np.arange(50), "BIN": np.zeros(50, np.int16)}, {"INSTRUME": "WCDA"})
    monkeypatch.setattr(ghsep, "load_model", lambda path: Toy())
    scored = {"GH_SCORE": np.linspace(0, 1, 50), "GH_PASS": np.linspace(0, 1, 50) >= 0.5}
    monkeypatch.setattr(ghsep, "apply_model", lambda model, table, **kw: {**table, **scored})
    doc, _ = run_json(["ghsep", "apply", "toy.npz", str(tmp_path / "ev.parquet"), "--outdir", str(tmp_path / "s")],
                      capsys)  # fmt: skip
    assert doc["result"] == {"instrument": "WCDA", "n_events": 50, "n_pass": 25}
    assert doc["outputs"]["events"] == str(tmp_path / "s" / "ev.gh.parquet")

    class FakeModel:
        cuts = {2: 0.5, 0: 0.4}

        def save(self, path):
            Path(path).write_bytes(b"model")

    monkeypatch.setattr(ghsep, "build_model", lambda *a, **kw: (FakeModel(), None))
    doc, _ = run_json(["ghsep", "train", "--instrument", "KM2A", "--outdir", str(tmp_path / "m")], capsys)
    assert doc["result"]["ml_cut_bins"] == [0, 2] and doc["result"]["n_gamma"] == 20000

    def fake_report(model, outdir, **kw):  # report.json's keys, as skyfit.ghsep.model_report writes them
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        report = {"model": str(kw["source"]), "instrument": "WCDA", "test_seed": 2, "equal_efficiency": [{"bin": 0}],
                  "traditional": [], "ml": [], "ratios": {"0": {"q": 1.2}}, "significance": {"crab": {}},
                  "bkg_reduction_at_equal_eff": {"per_bin": {}, "median": None, "n_bins_measured": 0}}  # fmt: skip
        (outdir / "report.json").write_text(json.dumps(report))
        (outdir / "roc.png").write_bytes(b"png")
        return outdir / "report.json", [outdir / "roc.png"]

    monkeypatch.setattr(ghsep, "model_report", fake_report)
    doc, _ = run_json(["ghsep", "report", "toy.npz", "--outdir", str(tmp_path / "rep")], capsys)
    assert doc["result"]["test_seed"] == 2 and len(doc["outputs"]["plots_png"]) == 1


# ---- failures: still one document, the exit code kept ----------------------------------------------------


def test_a_bad_config_gives_ok_false_and_exit_2(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("datasets: []\nmodel: {components: []}\nbogus: 1\n")
    doc, err = run_json(["fit", str(cfg)], capsys, code=2)
    assert doc["error"]["type"] == "ConfigError" and "bogus" in doc["error"]["message"] and "bad.yaml" in err
    assert doc["result"] == {} and doc["outputs"] == {}


def test_a_usage_error_gives_its_document_and_exit_2(capsys):
    cases = ((["showers", "report", "--json"], "showers report"), (["showers", "--json"], "showers"),
             (["--json", "demo", "--nside", "x"], "demo"))  # fmt: skip
    for argv, command in cases:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        out, err = capsys.readouterr()
        doc = json.loads(out)
        assert exc.value.code == 2 and doc["exit_code"] == 2 and doc["ok"] is False and "usage:" in err
        assert doc["command"] == command and doc["error"]["type"] == "UsageError"
    with pytest.raises(SystemExit) as exc:  # --help and --version as usual
        main(["demo", "--json", "--help"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("usage: skyfit demo")


def test_an_unexpected_error_exits_1_with_its_document(monkeypatch, capfd):
    """A crash: exit 1, its traceback on stderr, the document on stdout; what the command wrote on file
    descriptor 1 (a C library, a child process) goes to stderr too."""
    import os

    import skyfit.cli.fitting as fitting

    def boom(args):
        print("text")
        os.write(1, b"from C\n")
        raise RuntimeError("boom")

    monkeypatch.setattr(fitting, "cmd_demo", boom)
    assert main(["demo", "--json"]) == 1
    out, err = capfd.readouterr()
    doc = json.loads(out)
    assert doc["error"] == {"type": "RuntimeError", "message": "boom"} and doc["exit_code"] == 1
    assert "Traceback" in err and "text\n" in err and "from C\n" in err

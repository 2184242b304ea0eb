"""The command line: demo end to end, simulate -> bin round trip, config errors, the shape of the commands
(sub-subcommands, --outdir, deprecated options) and a thin, split package."""

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from skyfit.cli import build_parser, main
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
    assert main(["simulate", str(cfg), "--outdir", str(tmp_path / "sim")]) == 0
    events = tmp_path / "sim" / "events.fits"
    assert events.exists()
    args = ["bin", str(events), "--center", "83.63", "22.01", "--radius", "1.5", "--nside", "128"]
    assert main([*args, "--outdir", str(tmp_path / "binned")]) == 0
    maps = HealpixMaps.read(tmp_path / "binned" / "counts.fits", nside=128, nest=True)
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
    import skyfit

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"skyfit {skyfit.__version__}"
    parser = build_parser()
    assert parser.parse_args(["catalog", "-v"]).verbose is True
    assert parser.parse_args(["-v", "catalog"]).verbose is True
    assert parser.parse_args(["catalog"]).verbose is False
    # and after a sub-subcommand, or between the command and its action
    assert parser.parse_args(["ghsep", "train", "-v"]).verbose is True
    assert parser.parse_args(["showers", "-v", "report", "g", "b"]).verbose is True
    assert parser.parse_args(["prior", "train"]).verbose is False


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


def test_a_center_beyond_the_pole_is_refused(tmp_path, capsys):
    """`skyfit bin --center RA DEC` with |DEC| > 90 is a usage error (it used to bin nothing and exit 0)."""
    events = tmp_path / "events.fits"
    events.write_text("")
    assert main(["bin", str(events), "--center", "83.6", "122.0", "--radius", "2", "--outdir",
                 str(tmp_path / "c")]) == 2  # fmt: skip
    assert "declination 122.0 deg is outside [-90, 90]" in capsys.readouterr().err


def test_an_unexpected_error_exits_1_with_its_traceback():
    """Exit codes: a crash (an error skyfit did not foresee) exits 1 with its traceback, not 2 (bad input)
    nor 3 (an invalid fit)."""
    import subprocess
    import sys

    code = (
        "import sys, skyfit.cli.fitting as f\n"
        "def boom(args):\n    raise RuntimeError('boom')\n"
        "f.cmd_demo = boom\n"
        "from skyfit.cli import main\n"
        "sys.exit(main(['demo']))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "Traceback" in run.stderr and "RuntimeError: boom" in run.stderr


def _fake_prior(monkeypatch, tmp_path):
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
    return written


def test_prior_train_writes_a_new_file_unless_told(tmp_path, monkeypatch, capsys):
    """`skyfit prior train` writes prior_weights.npz in the current folder (or --outdir); the installed weights
    only with --replace-shipped (it used to overwrite them by default)."""
    written = _fake_prior(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["prior", "train"]) == 0
    assert written == [Path("prior_weights.npz")] and (tmp_path / "prior_weights.json").exists()
    assert main(["prior", "train", "--outdir", "w"]) == 0
    assert written[-1] == Path("w/prior_weights.npz") and (tmp_path / "w" / "prior_weights.json").exists()
    assert main(["prior", "train", "--replace-shipped"]) == 0
    assert written[-1] == tmp_path / "installed" / "prior_weights.npz"
    capsys.readouterr()
    assert main(["prior", "train", "--replace-shipped", "--outdir", "w"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["prior", "train", "--replace-shipped", "--out", "x.npz"]) == 2


# ---- the shape of the command line -----------------------------------------------------------------------

# (command line, options its help lists, options of other actions it must not list)
HELP = [
    (["showers", "simulate"], ["--particle", "--n", "--hits", "--outdir", "--seed"], ["--window-ns", "--variable"]),
    (["showers", "reconstruct"], ["--hits", "--window-ns", "--outdir"], ["--particle", "--variable", "--efficiency"]),
    (["showers", "report"], ["--variable", "--lower-is-gamma", "--efficiency", "--outdir"], ["--particle", "--hits"]),
    (["ghsep", "train"], ["--kind", "--n-gamma", "--epochs", "--outdir"], ["--hits", "--realisations"]),
    (["ghsep", "apply"], ["--hits", "--outdir"], ["--epochs", "--kind", "--realisations", "--n-gamma"]),
    (["ghsep", "report"], ["--realisations", "--n-gamma", "--seed", "--outdir"], ["--epochs", "--kind", "--hits"]),
    (["prior", "train"], ["--n-fields", "--steps", "--replace-shipped", "--outdir"], []),
    (["simulate"], ["--seed", "--outdir"], []),
    (["bin"], ["--center", "--response", "--outdir"], []),
]


@pytest.mark.parametrize("argv, listed, absent", HELP, ids=[" ".join(h[0]) for h in HELP])
def test_each_action_lists_only_its_own_options(argv, listed, absent, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: skyfit {' '.join(argv)} ")
    for opt in listed:
        assert f"{opt} " in text or f"{opt}\n" in text, opt
    for opt in [*absent, "--output", "--out "]:  # nor the deprecated file options
        assert opt not in text, opt


def test_the_actions_are_listed_under_their_command(capsys):
    for command, actions in (("showers", ("simulate", "reconstruct", "report")),
                             ("ghsep", ("train", "apply", "report")), ("prior", ("train",))):  # fmt: skip
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert all(f"    {a} " in text for a in actions), (command, text)


@pytest.mark.parametrize(
    "argv",
    [
        ["ghsep", "apply", "m.npz", "ev.parquet", "--epochs", "3"],  # train's option
        ["ghsep", "train", "--realisations", "3"],  # report's
        ["ghsep", "report", "m.npz", "--kind", "mlp"],  # train's
        ["ghsep", "train", "extra.parquet"],  # train takes no files
        ["showers", "report", "g.parquet", "p.parquet", "--particle", "proton"],  # simulate's
        ["showers", "simulate", "--window-ns", "8"],  # reconstruct's
        ["showers", "reconstruct", "g.parquet"],  # --hits is required
        ["showers", "report"],  # two tables or one model file
        ["prior", "train", "--variable", "X"],
        ["showers"],  # an action is required
        ["ghsep", "evaluate"],  # no such action
    ],
)
def test_an_option_of_another_action_is_refused_with_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


# every command and action takes --outdir (the minimal arguments each needs, and its default folder)
OUTDIR = [
    (["demo"], "skyfit-demo"),
    (["fit", "c.yaml"], None),
    (["simulate", "c.yaml"], None),
    (["simulate-events"], "events"),
    (["bin", "ev.fits", "--center", "1", "2"], None),
    (["catalog"], "skyfit-catalog"),
    (["showers", "simulate"], None),
    (["showers", "reconstruct", "g.parquet", "--hits", "h.parquet"], None),
    (["showers", "report", "g.parquet", "p.parquet"], "shower-report"),
    (["ghsep", "train"], None),
    (["ghsep", "apply", "m.npz", "ev.parquet"], None),
    (["ghsep", "report", "m.npz"], "ghsep-report"),
    (["prior", "train"], None),
]


@pytest.mark.parametrize("argv, default", OUTDIR, ids=[" ".join(o[0][:2]) for o in OUTDIR])
def test_every_command_takes_outdir(argv, default):
    parser = build_parser()
    assert parser.parse_args(argv).outdir == default  # None: the current folder (fit: the config's 'output')
    assert parser.parse_args([*argv, "--outdir", "somewhere"]).outdir == "somewhere"


def test_files_go_under_outdir_with_their_default_names(tmp_path, monkeypatch):
    """showers simulate / reconstruct and ghsep train write under --outdir, under the names the old --output /
    --out defaulted to (simulate, bin, prior train: above; ghsep apply: below; showers and ghsep report:
    tests/test_showers.py, tests/test_ghsep.py)."""
    monkeypatch.chdir(tmp_path)
    assert main(["showers", "simulate", "--n", "300", "--e-min", "1", "--e-max", "5", "--hits", "--outdir", "g"]) == 0
    assert (tmp_path / "g" / "showers.parquet").exists() and (tmp_path / "g" / "hits.parquet").exists()
    assert main(["showers", "simulate", "--n", "300", "--e-min", "1", "--e-max", "5", "--hits", "h2.parquet"]) == 0
    assert (tmp_path / "showers.parquet").exists() and (tmp_path / "h2.parquet").exists()
    assert main(["showers", "reconstruct", "g/showers.parquet", "--hits", "g/hits.parquet", "--outdir", "r"]) == 0
    assert (tmp_path / "r" / "showers.parquet").exists()

    import skyfit.ghsep as ghsep

    class FakeModel:
        cuts = {0: 0.5}

        def save(self, path):
            Path(path).write_bytes(b"model")

    monkeypatch.setattr(ghsep, "build_model", lambda *a, **kw: (FakeModel(), None))
    assert main(["ghsep", "train", "--instrument", "KM2A", "--outdir", "m"]) == 0
    assert (tmp_path / "m" / "ghsep_KM2A.npz").read_bytes() == b"model"


@pytest.fixture(scope="module")
def toy_ghsep(tmp_path_factory):
    """A small WCDA model file and an event table it can score."""
    from skyfit.events import write_events
    from skyfit.ghsep import FEATURES, train_classifier

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(400, 3)), (rng.uniform(size=400) < 0.5).astype(float)
    model = train_classifier(x, y, np.ones(400), FEATURES["WCDA"][:3], "WCDA", epochs=1, hyper={"width": 8})
    model.cuts = {0: 0.5}
    path = tmp_path_factory.mktemp("ghsep")
    model.save(path / "toy.npz")
    table = {"NHIT": rng.integers(60, 100, 50), "COMPACTNESS": rng.uniform(1, 20, 50),
             "PINCNESS": rng.uniform(0, 3, 50), "BIN": np.zeros(50, np.int16)}  # fmt: skip
    write_events(path / "ev.parquet", table, {"INSTRUME": "WCDA"})
    return path


def test_ghsep_apply_writes_under_outdir(toy_ghsep, tmp_path):
    from skyfit.events import EventFile

    assert main(["ghsep", "apply", str(toy_ghsep / "toy.npz"), str(toy_ghsep / "ev.parquet"), "--outdir",
                 str(tmp_path / "scored")]) == 0  # fmt: skip
    t = EventFile(tmp_path / "scored" / "ev.gh.parquet").read(("GH_SCORE", "GH_PASS"))
    assert len(t["GH_SCORE"]) == 50 and np.array_equal(t["GH_PASS"], t["GH_SCORE"] >= 0.5)


def test_the_old_file_options_still_work_with_a_deprecation_note(tmp_path, monkeypatch, capsys, toy_ghsep):
    """--output (simulate, bin, showers simulate / reconstruct) and --out (ghsep train / apply, prior train) still
    name the file written, for one release, with a note on stderr; with --outdir as well they are refused."""
    monkeypatch.chdir(tmp_path)
    note = "FILE is deprecated and goes in the next release: use --outdir DIR, which writes DIR/"
    assert main(["showers", "simulate", "--n", "200", "--e-min", "1", "--e-max", "5", "--output", "g.fits",
                 "--hits", "h.parquet"]) == 0  # fmt: skip
    assert (tmp_path / "g.fits").exists() and (tmp_path / "h.parquet").exists()
    assert f"skyfit showers simulate: warning: --output {note}showers.parquet" in capsys.readouterr().err
    assert main(["showers", "reconstruct", "g.fits", "--hits", "h.parquet", "--output", "r.parquet"]) == 0
    assert (tmp_path / "r.parquet").exists() and "--output FILE is deprecated" in capsys.readouterr().err
    assert (
        main(["ghsep", "apply", str(toy_ghsep / "toy.npz"), str(toy_ghsep / "ev.parquet"), "--out", "s.parquet"]) == 0
    )
    assert (tmp_path / "s.parquet").exists()
    assert f"skyfit ghsep apply: warning: --out {note}EVENTS.gh.parquet" in capsys.readouterr().err
    written = _fake_prior(monkeypatch, tmp_path)
    assert main(["prior", "train", "--out", "p.npz"]) == 0
    assert written == [Path("p.npz")] and "--out FILE is deprecated" in capsys.readouterr().err
    assert main(["showers", "simulate", "--n", "10", "--output", "x.parquet", "--outdir", "d"]) == 2
    assert "not both" in capsys.readouterr().err
    args = build_parser().parse_args(["ghsep", "train", "--out", "m.npz"])
    assert args.out == "m.npz" and args.deprecations and args.outdir is None


def test_simulate_and_bin_still_take_output(tmp_path, capsys):
    cfg = tmp_path / "sim.yaml"
    cfg.write_text(
        """
datasets:
  - {type: km2a, center: [83.63, 22.01], radius_deg: 1.0, nside: 64, livetime_days: 30}
model:
  components:
    - name: src
      spatial: {type: PointSpatialModel, parameters: [{name: lon_0, value: 83.63}, {name: lat_0, value: 22.01}]}
      spectral: {type: PowerLawSpectralModel, parameters: [{name: amplitude, value: 1.0e-13},
                 {name: index, value: 2.7}, {name: reference, value: 10.0, frozen: true}]}
"""
    )
    assert main(["simulate", str(cfg), "--output", str(tmp_path / "ev.fits")]) == 0
    assert "skyfit simulate: warning: --output FILE is deprecated" in capsys.readouterr().err
    assert main(["bin", str(tmp_path / "ev.fits"), "--center", "83.63", "22.01", "--radius", "1", "--nside", "64",
                 "--output", str(tmp_path / "c.fits")]) == 0  # fmt: skip
    assert (tmp_path / "c.fits").exists() and "skyfit bin: warning: --output" in capsys.readouterr().err


# ---- a thin command line, in modules of a readable size --------------------------------------------------

CLI_DIR = Path(__file__).resolve().parents[1] / "skyfit" / "cli"


def _cli_modules():
    return sorted(CLI_DIR.glob("*.py"))


def test_the_command_line_imports_no_private_module():
    """The command line calls the packages' public API: no `skyfit.ghsep._pipeline`, `skyfit.catalog._roi` ...
    (its own `_common` and the version string aside)."""
    for path in _cli_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module != "__future__":
                private = [p for p in node.module.split(".") if p.startswith("_") and p not in ("_common", "_version")]
                private += [a.name for a in node.names if a.name.startswith("_") and not a.name.endswith("__")]
                assert not private, f"{path.name}:{node.lineno} imports {node.module}: {private}"


def test_the_command_line_modules_and_functions_are_short():
    for path in _cli_modules():
        text = path.read_text()
        assert text.count("\n") <= 600, path.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef):
                assert node.end_lineno - node.lineno + 1 <= 100, f"{path.name}: {node.name}"


def test_python_m_skyfit_cli_runs_the_command():
    import subprocess
    import sys

    import skyfit

    out = subprocess.run([sys.executable, "-m", "skyfit.cli", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"skyfit {skyfit.__version__}"

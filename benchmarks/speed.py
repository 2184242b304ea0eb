"""What a user waits for, cold and warm (issue #32): the HAWC Crab fit against gammapy, the main job, a
30-component fit and a 20 x 10 deg TS map, with JAX's compile time apart.

    python benchmarks/speed.py [--skip-main-job] [--skip-catalog-speed]

Each skyfit figure is taken in a fresh Python process (this script run again with ``--stage``), so that
nothing compiled earlier in this run is reused except through JAX's persistent compilation cache
(skyfit's default, ``SKYFIT_JAX_CACHE``):

- cold: an empty cache folder, what a first session pays; warm: the folder the cold run filled, what every
  later session pays (a second run of the same command);
- ``crab_fit_*_s``: the HAWC Crab (NN, fHit 5-9, position free) from building the ``Likelihood`` to the
  end of MIGRAD + HESSE (the events' binning, 10-15 s, is the same for both and not counted);
  ``crab_fit_only_s``: a second fit of the same ``Likelihood`` in that process (no compilation);
  ``crab_fit_new_likelihood_s``: then a new ``Likelihood`` of the same kind of model (the Crab elsewhere,
  other starting values) built and fitted in that process (its compiled functions are shared);
  ``gammapy_fit_s``: gammapy 2.x's ``Fit.run`` on the same events binned as in its HAWC tutorial, in this
  run; ``speedup_cold`` / ``speedup_warm``: gammapy's fit time over skyfit's cold / warm one;
- ``main_job_*_s``: the README's main command (``skyfit catalog``, the built-in field), wall time;
- ``fit30_s``, ``ts_map_s``: ``benchmarks/catalog_speed.py`` (30-component joint fit including compile;
  TS maps of l 60-80, |b| < 5 at nside 1024, WCDA + KM2A), with a cold cache;
- ``compile_s``: per stage, the seconds JAX spent tracing, lowering and compiling (its monitoring events).

Needs the public HAWC data for the Crab (SKYFIT_DATA); the last line is one JSON object.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
                   "/jax/core/compile/backend_compile_duration")  # fmt: skip


def _compile_clock() -> dict:
    import jax

    seconds = {"s": 0.0}

    def listener(event, duration, **_):
        if event in _COMPILE_EVENTS:
            seconds["s"] += duration

    jax.monitoring.register_event_duration_secs_listener(listener)
    return seconds


def stage_crab() -> dict:
    from skyfit import Fit, Likelihood, LogParabola, Models, PointSpatialModel, Source, hawc_dataset
    from skyfit.dataset import BackgroundNaNWarning
    from skyfit.hawc import CRAB_DEC_DEG, CRAB_RA_DEG

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BackgroundNaNWarning)
        ds = hawc_dataset("NN")
    clock = _compile_clock()
    crab = Source("crab", PointSpatialModel.create(CRAB_RA_DEG, CRAB_DEC_DEG), LogParabola.create(2.3e-13, 2.6, 0.1))
    t0 = time.perf_counter()
    lk = Likelihood(Models([crab]), [ds])
    first = Fit(lk).run()
    t1 = time.perf_counter()
    compile_s = clock["s"]
    again = Fit(lk).run()
    t2 = time.perf_counter()
    moved = Source("crab", PointSpatialModel.create(CRAB_RA_DEG + 0.05, CRAB_DEC_DEG - 0.03),
                   LogParabola.create(3e-13, 2.5, 0.1))  # fmt: skip
    other = Fit(Likelihood(Models([moved]), [ds])).run()  # a new Likelihood of the same kind of model
    t3 = time.perf_counter()
    return {"fit_s": t1 - t0, "fit_only_s": t2 - t1, "new_likelihood_s": t3 - t2, "compile_s": compile_s,
            "valid": first.valid and again.valid and other.valid, "ts_free_stat": first.stat}  # fmt: skip


def stage_main_job() -> dict:
    from skyfit.cli import main

    clock = _compile_clock()
    out = tempfile.mkdtemp(prefix="skyfit-main-job-")
    t0 = time.perf_counter()
    code = main(["catalog", "--outdir", out])
    return {"wall_s": time.perf_counter() - t0, "compile_s": clock["s"], "exit_code": code, "outdir": out}


def stage_catalog_speed() -> dict:
    clock = _compile_clock()
    sys.argv = ["catalog_speed.py"]
    import io
    from contextlib import redirect_stdout

    sys.path.insert(0, str(HERE))
    import catalog_speed

    buf = io.StringIO()
    with redirect_stdout(buf):
        catalog_speed.main()
    figures = json.loads(buf.getvalue().strip().splitlines()[-1])
    return {**figures, "compile_s": clock["s"]}


STAGES = {"crab": stage_crab, "main_job": stage_main_job, "catalog_speed": stage_catalog_speed}


def run_stage(name: str, cache: Path) -> dict:
    env = {**os.environ, "SKYFIT_JAX_CACHE": str(cache)}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    proc = subprocess.run([sys.executable, __file__, "--stage", name], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"stage {name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def gammapy_fit() -> dict:
    sys.path.insert(0, str(HERE))
    from _gammapy_peer import data_dir_default, fit_crab_gammapy, make_gammapy_datasets

    datasets = make_gammapy_datasets(data_dir_default(), "NN")
    result = fit_crab_gammapy(datasets, free_position=True)
    return {"fit_s": result["fit_s"], "success": bool(result.get("success", True))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    ap.add_argument("--skip-main-job", action="store_true")
    ap.add_argument("--skip-catalog-speed", action="store_true")
    args = ap.parse_args()
    if args.stage:
        print(json.dumps(STAGES[args.stage]()))
        return
    figures, compile_s = {}, {}
    with tempfile.TemporaryDirectory(prefix="skyfit-jax-cache-") as tmp:
        tmp = Path(tmp)
        cold = run_stage("crab", tmp / "crab")
        warm = run_stage("crab", tmp / "crab")
        gp = gammapy_fit()
        figures.update(crab_fit_cold_s=cold["fit_s"], crab_fit_warm_s=warm["fit_s"], crab_fit_only_s=warm["fit_only_s"],
                       crab_fit_new_likelihood_s=cold["new_likelihood_s"],
                       gammapy_fit_s=gp["fit_s"], gammapy_success=gp["success"],
                       speedup_cold=gp["fit_s"] / cold["fit_s"], speedup_warm=gp["fit_s"] / warm["fit_s"],
                       speedup_fit_only=gp["fit_s"] / warm["fit_only_s"],
                       crab_valid=cold["valid"] and warm["valid"])  # fmt: skip
        compile_s.update(crab_cold=cold["compile_s"], crab_warm=warm["compile_s"])
        print(f"HAWC Crab: skyfit cold {cold['fit_s']:.2f} s (compile {cold['compile_s']:.2f}), warm "
              f"{warm['fit_s']:.2f} s (compile {warm['compile_s']:.2f}), fit alone {warm['fit_only_s']:.3f} s; "
              f"gammapy {gp['fit_s']:.2f} s", file=sys.stderr)  # fmt: skip
        if not args.skip_main_job:
            mj_cold = run_stage("main_job", tmp / "main")
            mj_warm = run_stage("main_job", tmp / "main")
            figures.update(main_job_cold_s=mj_cold["wall_s"], main_job_warm_s=mj_warm["wall_s"])
            compile_s.update(main_job_cold=mj_cold["compile_s"], main_job_warm=mj_warm["compile_s"])
            print(f"main job: cold {mj_cold['wall_s']:.1f} s (compile {mj_cold['compile_s']:.1f}), warm "
                  f"{mj_warm['wall_s']:.1f} s (compile {mj_warm['compile_s']:.1f})", file=sys.stderr)  # fmt: skip
        if not args.skip_catalog_speed:
            cs = run_stage("catalog_speed", tmp / "catalog_speed")
            figures.update(fit30_s=cs["fit_total_s"], fit30_compile_s=cs["fit_compile_s"],
                           ts_map_s=cs.get("tsmap_total_s"))  # fmt: skip
            compile_s.update(catalog_speed=cs["compile_s"])
    import jax

    figures.update(compile_s=compile_s, device=str(jax.devices()[0]), cpu_count=os.cpu_count())
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

"""Each task end to end on simulated samples: train on ``seed``, tune on ``seed + 1`` (:func:`train_task`),
measure on an independent seed (:func:`task_report`). The command line and the benchmark call these."""

from __future__ import annotations

import time

import numpy as np

from ._common import ShowerMLError
from ._mass import mass_performance, train_mass_model
from ._modelfile import TASKS, ShowerModel
from ._noise import noise_performance, train_noise_model, tune_noise_thresholds
from ._reco import reco_performance, train_reco_model
from ._samples import check_test_seed, mass_sample, shower_sample

__all__ = ["DEFAULT_SIZES", "GAMMA_RANGES", "train_task", "task_report", "task_sample"]

# showers per sample (mass: per group): (train, tune, test)
DEFAULT_SIZES = {"mass": (3000, 1500, 1500), "noise": (6000, 10000, 20000), "reco": (30000, 15000, 15000)}
# gamma samples: (e_min, e_max) TeV, E^-2, per instrument
GAMMA_RANGES = {"WCDA": (0.3, 10.0), "KM2A": (10.0, 1000.0)}


def _check(task: str, instrument: str) -> str:
    if task not in TASKS:
        raise ShowerMLError(f"task must be one of {TASKS}, got {task!r}")
    instrument = str(instrument).upper()
    if task == "mass" and instrument != "KM2A":
        raise ShowerMLError("mass categorisation runs on KM2A (its muon detectors): use --instrument KM2A")
    if task == "noise" and instrument != "WCDA":
        raise ShowerMLError("the noise filter is built for WCDA (15 kHz dark rate per cell): use --instrument WCDA")
    return instrument


def task_sample(task: str, instrument: str, n: int, seed: int, muon_scale: float = 1.0,
                noise_rate_hz: float | None = None):  # fmt: skip
    """The simulated sample a task trains, tunes or is measured on."""
    if task == "mass":
        return mass_sample(n, seed, index=1.5, muon_scale=muon_scale)
    lo, hi = GAMMA_RANGES[instrument]
    return shower_sample(instrument, "gamma", n, seed, lo, hi, 2.0, noise_rate_hz=noise_rate_hz)


def train_task(task: str, instrument: str, seed: int = 0, n_train: int | None = None, n_tune: int | None = None,
               epochs: int | None = None, progress: bool = False) -> ShowerModel:  # fmt: skip
    """Simulate the training (``seed``) and tuning (``seed + 1``) samples, train and tune the task's model."""
    instrument = _check(task, instrument)
    d = DEFAULT_SIZES[task]
    n_train, n_tune = n_train or d[0], n_tune or d[1]
    t0 = time.perf_counter()
    train = task_sample(task, instrument, n_train, seed)
    tune = task_sample(task, instrument, n_tune, seed + 1)
    if progress:
        print(f"{task}: samples simulated in {time.perf_counter() - t0:.0f} s", flush=True)
    if task == "mass":
        model = train_mass_model(train, epochs=epochs or 30, seed=seed, progress=progress)
    elif task == "noise":
        model = train_noise_model(train, epochs=epochs or 8, seed=seed, progress=progress)
        tune_noise_thresholds(model, tune)
    else:
        model = train_reco_model(train, tune, epochs=epochs or 12, seed=seed, progress=progress)
    model.meta.update(seeds={"train": seed, "tune": seed + 1}, n_train_showers=n_train, n_tune_showers=n_tune)
    return model


def _as_rows(bins: dict) -> list:
    return [{"bin": int(k), **row} for k, row in bins.items()]


def _json_ready(value):
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def task_report(model: ShowerModel, seed: int | None = None, n_test: int | None = None, muon_scale: float = 1.0,
                noise_rate_hz: float | None = None, strong: bool = False) -> dict:  # fmt: skip
    """The model measured on an independent test sample (default seed: its training seed + 2); the mass
    task also re-simulates its tuning sample for the thresholds. ``strong``: the reco report also fits the
    strong classic (:func:`skyfit.showers.fit_showers`)."""
    train_seed = int(model.meta.get("seeds", {}).get("train", 0))
    seed = train_seed + 2 if seed is None else int(seed)
    check_test_seed(train_seed, seed)
    n_test = n_test or DEFAULT_SIZES[model.task][2]
    test = task_sample(model.task, model.instrument, n_test, seed, muon_scale, noise_rate_hz)
    out = {"task": model.task, "instrument": model.instrument, "test_seed": seed, "n_test_showers": n_test,
           "muon_scale": muon_scale, "noise_rate_hz": test.noise_rate_hz}  # fmt: skip
    if model.task == "mass":
        tune = task_sample("mass", "KM2A", int(model.meta.get("n_tune_showers", DEFAULT_SIZES["mass"][1])),
                           train_seed + 1)  # fmt: skip
        out["bins"] = _as_rows(mass_performance(model, tune, test, seed=seed))
    elif model.task == "noise":
        out.update(noise_performance(model, test))
        out["bins"] = _as_rows(out["bins"])
    else:
        ldf = None
        if strong:
            from ..showers import fit_showers
            from ..showers.reconstruct import reconstruct

            rec = reconstruct(test.main, test.layout)
            ldf = fit_showers(test.main, test.layout, rec, rec["KEPT"])
        out["bins"] = _as_rows(reco_performance(model, test, strong=ldf, seed=seed))
    return _json_ready(out)

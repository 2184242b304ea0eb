"""Machine learning on the hit-level air-shower simulation: LHAASO's other AI tasks, each against the
classic method of :mod:`skyfit.showers`.

- particle categorisation (KM2A): :func:`mass_sample`, :func:`train_mass_model`, :func:`mass_scores`,
  :func:`mass_performance` (light and proton purity per energy bin against the N_mu/N_e cut, with and
  without the shower age);
- noise-hit filtering (WCDA): :func:`train_noise_model`, :func:`tune_noise_thresholds`, :func:`noise_keep`,
  :func:`noise_performance` (noise kept at the plane filter's signal efficiency; PSF68 and nHit-bin
  migration downstream);
- learned reconstruction: :func:`train_reco_model`, :func:`reconstruct_learned`, :func:`reco_performance`
  (direction with calibrated per-event sigma, and energy);
- :class:`ShowerModel` / :func:`load_shower_model`: model files that refuse another array, task or
  simulation revision; :func:`event_hits` joins an event table to its hits and refuses hits without
  times or events without hits (:class:`ShowerMLError`).

Each task end to end (:func:`train_task`, :func:`task_report`); command line: ``skyfit showers train |
apply | report``; tutorial 09; ``benchmarks/shower_ml.py``.
"""

from .._precision import X64  # noqa: F401  (JAX in float64 before this package's code runs)
from ._common import EventHits, ShowerMLError, bootstrap_interval, event_hits, layout_for, train_mlp
from ._mass import (
    ENERGY_EDGES_LOG10_TEV,
    MASS_FEATURES,
    classic_age_score,
    classic_mass_score,
    energy_estimate,
    mass_features,
    mass_performance,
    mass_scores,
    selection_purity,
    train_mass_model,
)
from ._modelfile import TASKS, ShowerModel, layout_fingerprint, load_shower_model
from ._noise import (
    NOISE_FEATURES,
    noise_features,
    noise_keep,
    noise_performance,
    train_noise_model,
    tune_noise_thresholds,
)
from ._reco import ENERGY_FEATURES, HIT_FEATURES, reco_performance, reconstruct_learned, train_reco_model
from ._samples import MASS_GROUPS, check_test_seed, mass_sample, shower_sample, task_seeds
from ._tasks import DEFAULT_SIZES, task_report, train_task

__all__ = [
    "EventHits", "ShowerMLError", "bootstrap_interval", "event_hits", "layout_for", "train_mlp",
    "ENERGY_EDGES_LOG10_TEV", "MASS_FEATURES", "classic_age_score", "classic_mass_score", "energy_estimate",
    "mass_features", "mass_performance", "mass_scores", "selection_purity", "train_mass_model",
    "TASKS", "ShowerModel", "layout_fingerprint", "load_shower_model",
    "NOISE_FEATURES", "noise_features", "noise_keep", "noise_performance", "train_noise_model",
    "tune_noise_thresholds", "ENERGY_FEATURES", "HIT_FEATURES", "reco_performance", "reconstruct_learned",
    "train_reco_model", "MASS_GROUPS", "check_test_seed", "mass_sample", "shower_sample", "task_seeds",
    "DEFAULT_SIZES", "task_report", "train_task",
]  # fmt: skip

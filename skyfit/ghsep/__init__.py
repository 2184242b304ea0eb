"""Gamma/hadron separation: classifiers on simulated showers, cuts, and the significance they buy.

- :func:`labelled_sample`: gammas and cosmic rays from :mod:`skyfit.showers`, physically weighted, in the
  instruments' analysis bins (:func:`analysis_bin`, :func:`energy_calibration`);
- :func:`train_classifier` / :class:`GHModel` / :func:`load_model`: networks (MLP on event features,
  deep-sets on hit patterns) in equinox, trained with optax; model files that refuse the wrong input;
- :func:`compare_at_equal_efficiency`, :func:`optimise_cuts`, :func:`efficiency_table`: cuts per bin,
  with :func:`effective_count` and :func:`weighted_auc`;
- :func:`build_model` / :func:`evaluate`: train, tune and test on independent samples;
  :func:`apply_model`: score an event table; :func:`separability_after_cut`: what is left to separate
  after the traditional cut;
- :func:`model_report`: a model on an independent test sample (:func:`independent_seed`), with
  :func:`plot_roc`, :func:`equal_efficiency_summary` and, before/after its cuts, :func:`run_significance`
  and :func:`plot_significance`;
- :func:`significance_study`: a faint source's significance before and after a cut, fitted with iminuit;
- event classes (:func:`class_schemes`, :class:`ClassScheme`): gammaness classes and PSF classes
  (:func:`train_psf_estimator`), each its own analysis bin, fitted jointly
  (:func:`class_significance_study`); the single cut and the traditional cut are one-class cases;
- :mod:`skyfit.ghsep.hawc`: the same, weakly supervised, on HAWC's public Crab events.
"""

from .._precision import X64  # noqa: F401  (JAX in float64 before this package's code runs)
from ._classes import (
    GAMMANESS_EFFICIENCIES,
    PSF_QUANTILES,
    ClassScheme,
    assign_classes,
    check_scores,
    class_edges,
    class_ratios,
    class_schemes,
    weighted_quantile,
)
from ._cuts import (
    compare_at_equal_efficiency,
    effective_count,
    efficiency_table,
    optimise_cuts,
    roc_curve,
    threshold_at_efficiency,
    weighted_auc,
    weighted_efficiency,
)
from ._features import FEATURES, GHSepError, feature_matrix, hit_cloud
from ._network import GHModel, load_model, train_classifier
from ._pipeline import apply_model, balanced_weights, build_model, evaluate, separability_after_cut
from ._plots import plot_class_protocol, plot_roc, plot_significance
from ._protocol import (
    LEADING_PI0_FACTORS,
    PROTOCOL_CASES,
    PROTOCOL_METHODS,
    noise_corrected_asimov,
    read_seed_schemes,
    run_protocol_seed,
    summarise_protocol,
)
from ._psfnet import PSFEstimator, train_psf_estimator
from ._samples import (
    TRADITIONAL,
    analysis_bin,
    energy_calibration,
    labelled_sample,
    reweight_leading_pi0,
    simulation_revision,
    traditional_score,
)
from ._significance import (
    CRAB_LOGPARABOLA,
    class_dataset,
    class_significance_study,
    plane_position,
    scaled_dataset,
    significance_study,
)
from ._study import equal_efficiency_summary, independent_seed, model_report, ratio_arrays, run_significance

__all__ = [
    "FEATURES", "GHSepError", "feature_matrix", "hit_cloud", "GHModel", "load_model", "train_classifier",
    "TRADITIONAL", "labelled_sample", "reweight_leading_pi0", "traditional_score", "analysis_bin", "energy_calibration",
    "compare_at_equal_efficiency", "efficiency_table", "optimise_cuts", "roc_curve", "threshold_at_efficiency",
    "weighted_efficiency", "CRAB_LOGPARABOLA", "plane_position", "scaled_dataset", "significance_study",
    "effective_count", "weighted_auc", "build_model", "evaluate", "apply_model", "balanced_weights",
    "separability_after_cut", "plot_roc", "plot_significance", "equal_efficiency_summary", "independent_seed",
    "model_report", "ratio_arrays", "run_significance", "GAMMANESS_EFFICIENCIES", "PSF_QUANTILES", "ClassScheme",
    "assign_classes", "check_scores", "class_edges", "class_ratios", "class_schemes", "weighted_quantile",
    "simulation_revision", "PSFEstimator", "train_psf_estimator", "class_dataset", "class_significance_study",
    "plot_class_protocol", "run_protocol_seed", "summarise_protocol", "LEADING_PI0_FACTORS", "PROTOCOL_CASES",
    "PROTOCOL_METHODS", "noise_corrected_asimov", "read_seed_schemes",
]  # fmt: skip

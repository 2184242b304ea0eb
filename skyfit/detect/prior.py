"""The neural-network prior: a convolutional network that proposes the source components of a ROI.

It reads the ROI's residual maps (counts against background and the current model, per group of
analysis bins, both detectors: :func:`skyfit.detect._skies.residual_image`) on a Galactic grid of
0.1 deg cells, and returns per detector a set of components, each with a position, r39 and expected
counts, every one with a Gaussian uncertainty; how many there are is the number of peaks of its
heat map above a threshold (a CenterNet-style set prediction: no fixed number of slots, no matching).

Network: residual dilated 3x3 convolutions (dilations 1, 2, 4, 8, 16, 1: a 3.2 deg receptive field,
more than two PSFs at the lowest WCDA energies) and a 1x1 head with, per detector, 8 maps: heat
logit; cell offsets in l and b; log sigma of the position; r39 and its log sigma; log10 counts and its
log sigma. Loss: CenterNet's focal loss on the heat map, Gaussian negative log-likelihood of the
regressions at the true components' cells. After training, the widths are scaled on a validation set
(held out from training) so that its 68 % intervals hold 68 % of the truths.

Training data come from :func:`skyfit.detect._skies.draw_sky` (population ``"1lhaaso"``) simulated
with skyfit's simulator; ``skyfit prior train`` reproduces the shipped network from its seed.
The file format is the ``.npz`` of :mod:`skyfit._netfile` with a JSON header (format version, network
sizes, channel groups, calibration, training record).

This module gathers the network (:mod:`skyfit.detect.network`: architecture, file, proposals) and its
training (:mod:`skyfit.detect.training`); its stage in the catalogue is :mod:`skyfit.detect.nn_stage`.
"""

from __future__ import annotations

from .network import (
    DEFAULT_HYPER,
    MODEL_FORMAT,
    MODEL_VERSION,
    N_OUT,
    SHIPPED_WEIGHTS,
    PriorError,
    PriorModel,
    load_prior,
    propose,
)
from .training import (
    CHI2_2D_68,
    R39_FLOOR_DEG,
    RECALL_GOAL,
    THRESHOLDS,
    calibrate,
    coverage,
    finish_prior,
    interval_z,
    make_fields,
    match_proposals,
    simulate_field,
    train_prior,
)

__all__ = [
    "PriorModel",
    "PriorError",
    "load_prior",
    "train_prior",
    "propose",
    "SHIPPED_WEIGHTS",
    "MODEL_VERSION",
    "MODEL_FORMAT",
    "DEFAULT_HYPER",
    "N_OUT",
    "simulate_field",
    "make_fields",
    "match_proposals",
    "interval_z",
    "coverage",
    "calibrate",
    "finish_prior",
    "CHI2_2D_68",
    "THRESHOLDS",
    "RECALL_GOAL",
    "R39_FLOOR_DEG",
]

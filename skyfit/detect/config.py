"""The settings of the detection and joint fit of one ROI (:func:`skyfit.catalog.detect_and_fit`)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DetectionConfig"]


@dataclass(frozen=True)
class DetectionConfig:
    """The thresholds, limits and proposer of :func:`skyfit.catalog.detect_and_fit` (1LHAASO's values where
    marked); each field's comment says what it does."""

    ts_add: float = 25.0  # add a component when its TS-map peak exceeds this [1LHAASO]
    ts_ext: float = 16.0  # a component is extended when TS_ext exceeds this
    seed_sigma_deg: float = 0.2  # r39 of a new component [1LHAASO]
    extended_kernel_deg: float = 0.5  # a second TS map with this Gaussian kernel finds extended residuals
    max_iterations: int = 6
    max_new_per_iteration: int = 4  # per detector
    min_separation_deg: float = 0.4  # between peaks added in one iteration
    local_radius_deg: float = 2.0  # components within this of a tested one are refitted with it
    max_prune_rounds: int = 8  # backward elimination of components below ts_add
    min_r39_deg: float = 0.02  # below: a point source
    max_shift_deg: float = 0.5  # how far a component may move from its seed (in one fit; see max_releases)
    # a component whose fitted position sits at that bound is released: its bounds are centred again on
    # where it stopped and the model refitted, at most this many times per fit (0: never)
    max_releases: int = 2
    split_min_r39_deg: float = 0.15  # extended components at least this large are tried as two
    split_min_elongation: float = 1.3  # ... when their excess is at least this elongated
    # TS-map seeds: no closer than edge_deg to the ROI's edge, and test positions up to beyond_deg beyond
    # its pixels (a source just outside the data still puts counts in it; unmodelled, the diffuse term and
    # its neighbours absorb them). A component stays in the model while it is within beyond_deg +
    # max_shift_deg of the ROI; the catalogue keeps only those in the tile an ROI owns
    edge_deg: float = 0.0
    beyond_deg: float = 0.5
    nn_edge_deg: float = 0.6  # the network's proposals: no closer than this to the edge of its image
    # components of one detector closer than this (+ their r39) are tested for standing in for each other:
    # when removing both costs more than ts_add beyond their two TS, each one's TS is taken with the other
    # held where it is (position and r39 fixed, its spectrum refitted); None: no such test
    blend_deg: float | None = 1.0
    # what seeds components: "tsmap" (classic), "nn" (the network prior), "both", or "none" (only the seeds given
    # to detect_and_fit: known sources, or the truth for an oracle)
    proposer: str = "tsmap"
    # the large-scale emission under the components: "band" (the Galactic diffuse band of the LHAASO skies,
    # its normalisation free) or "background_norm" (no band: each dataset's background gets a free global
    # norm; for a background that already holds the diffuse emission, such as the Fermi-LAT's gtmodel cube)
    diffuse: str = "band"
    prior_weights: str | None = None  # the prior network's file (None: the weights shipped with skyfit)
    prior_terms: bool = True  # the network's uncertainties as Gaussian priors in the fit (position, r39)
    # the network reads the same counts as the fit, so its estimate is no independent measurement: its
    # widths enter the fit multiplied by this, a weak prior that guides without counting the data twice
    prior_scale: float = 5.0
    nn_threshold: float | None = None  # heat-map threshold of a proposal (None: the network's own)
    nn_confident: float = 0.5  # proposals at least this sure seed the first fit; the others need TS > ts_add
    # turned-down proposals within 2 PSF68 of a fitted component with a residual TS above this over the
    # fitted model go into one more joint fit (None: not tried); the TS tests decide whether they stay
    nn_pair_ts: float | None = 9.0
    # the multiplicity network (issue #30) after the network's proposals (proposer "nn" or "both"): a component
    # whose residual patch it calls a blend is tried as the 2 or 3 sources it sees; the fit decides (> ts_add)
    multiplicity: bool = False
    multiplicity_weights: str | None = None  # its file (None: the one shipped with skyfit)
    multiplicity_threshold: float | None = None  # on P(>= 2 sources) (None: the network's own)
    progress: bool = False
    extra: dict = field(default_factory=dict)

"""The TS tests of one ROI's components (:mod:`skyfit.catalog._ts`)."""

from skyfit.catalog._ts import _to_drop
from skyfit.models import PointSpatialModel, PowerLaw, Source


def test_backward_elimination_drops_one_weak_component_per_neighbourhood_and_detector():
    def comp(name, ra, det):
        return Source(name, PointSpatialModel.create(ra, 0.0), PowerLaw.create(1e-13, 2.6, 3.0), datasets=(det,))

    comps = {c.name: c for c in (comp("w1", 40.0, "WCDA"), comp("w2", 40.5, "WCDA"), comp("k1", 40.2, "KM2A"),
                                 comp("w3", 45.0, "WCDA"))}  # fmt: skip
    # w1 and w2 may stand in for each other: only the weaker goes; k1 (another detector) and w3 (far) go too
    assert _to_drop(["w1", "k1", "w2", "w3"], comps, 2.0) == ["w1", "k1", "w3"]

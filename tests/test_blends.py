"""The blend population of the crowded-field benchmark and the multiplicity network (issue #30)."""

import numpy as np

from skyfit.detect.blends import BENCHMARK_KINDS, N_PIX, TRAINING_KINDS, draw_blend, realise, roi_contains


def test_every_member_has_the_drawn_least_expected_ts_and_the_roi_a_fixed_pixel_count():
    for k, kind, n in ((0, "pair", 2), (3, "point_on_extended", 2), (4, "triple", 3)):
        blend = draw_blend(k, 9)
        assert blend["kind"] == kind == BENCHMARK_KINDS[k % 5]
        real = realise(blend)
        assert len(real["members"]) == n and real["roi"].n_pix == N_PIX
        assert abs(min(real["ts_true"]) - blend["ts_target"]) < 1e-6 * blend["ts_target"]
        assert min(real["ts_true"]) >= 37.0
        assert all(roi_contains(real["roi"], *_radec(m)) for m in real["members"])
        # separations as drawn, in the detector's PSF68
        ra0, dec0 = _radec(real["members"][0])
        for m, u in zip(real["members"][1:], blend["seps_psf"], strict=True):
            ra, dec = _radec(m)
            d = np.degrees(np.arccos(np.sin(np.radians(dec)) * np.sin(np.radians(dec0)) + np.cos(np.radians(dec))
                                     * np.cos(np.radians(dec0)) * np.cos(np.radians(ra - ra0))))  # fmt: skip
            assert abs(d / real["psf68"] - u) < 0.01


def test_training_kinds_come_in_both_detectors_and_singles_are_as_bright_as_blends():
    seen = {(draw_blend(k, 3, TRAINING_KINDS)["kind"], draw_blend(k, 3, TRAINING_KINDS)["det"]) for k in range(14)}
    assert seen == {(kind, det) for kind in set(TRAINING_KINDS) for det in ("WCDA", "KM2A")}
    single = next(draw_blend(k, 3, TRAINING_KINDS) for k in range(7) if TRAINING_KINDS[k] == "single")
    assert single["single_total"] > 2.0  # 1 plus a shadow member's 10^U(0, 1) at least


def _radec(m):
    from astropy.coordinates import SkyCoord

    c = SkyCoord(m["l"], m["b"], unit="deg", frame="galactic").icrs
    return float(c.ra.deg), float(c.dec.deg)

"""The benchmarks' truth matching (benchmarks/catalog_quality.py): a component merged from two true ones
recovers both under the usual radius match, one under the one-to-one assignment."""

import pytest
from conftest import load_benchmark

from skyfit.catalog import Region


@pytest.fixture(scope="module")
def cq():
    return load_benchmark("catalog_quality")


def _truth(name, ra, dataset="WCDA", r39=0.0, ts=100.0):
    return {"name": name, "dataset": dataset, "ra": ra, "dec": 10.0, "r39": r39, "amplitude": 1.0,
            "ts_true": ts, "inside": True}  # fmt: skip


def _comp(ra, dataset="WCDA", ts=80.0):
    return {"dataset": dataset, "ra": ra, "dec": 10.0, "ts": ts, "pos_err95": 0.05, "amplitude": 1.0}


def test_merged_pair_counts_once_one_to_one(cq):
    region = Region.parse("0,360,-90,90")
    truth = [_truth("a", 100.0), _truth("b", 100.25)]
    merged = [_comp(100.12)]
    radius = cq.evaluate(truth, merged, region)
    one = cq.evaluate(truth, merged, region, one_to_one=True)
    assert radius["n_recovered"] == 2 and sorted(radius["recovered"]) == ["a", "b"]
    assert one["n_recovered"] == 1 and one["n_true_ts37"] == 2
    assert one["recovered"] == ["a"]  # the nearer truth (0.12 vs 0.13 deg of RA at dec 10)
    split = cq.evaluate(truth, [_comp(100.02), _comp(100.24)], region, one_to_one=True)
    assert sorted(split["recovered"]) == ["a", "b"]


def test_one_to_one_prefers_more_matches_and_keeps_detectors_apart(cq):
    region = Region.parse("0,360,-90,90")
    # component x is nearest to truth a, but only giving x to b and y to a matches both
    truth = [_truth("a", 100.0), _truth("b", 100.28)]
    comps = [_comp(100.05), _comp(99.75)]
    one = cq.evaluate(truth, comps, region, one_to_one=True)
    assert sorted(one["recovered"]) == ["a", "b"]
    # another detector's component never matches, and a weak truth (TS < 37) is not evaluated
    truth = [_truth("a", 100.0), _truth("k", 100.0, dataset="KM2A"), _truth("w", 101.0, ts=20.0)]
    one = cq.evaluate(truth, [_comp(100.0, dataset="KM2A"), _comp(101.0)], region, one_to_one=True)
    assert one["recovered"] == ["k"] and one["n_true_ts37"] == 2

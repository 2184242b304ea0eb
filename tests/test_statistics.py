"""Injection-recovery on simulations (the CI-sized version of benchmarks/validate_statistics.py)."""

import numpy as np
import pytest

from skyfit.validate import null_ts_cdf, null_ts_study, pull_study


def test_pulls_are_unbiased_and_unit_width():
    result = pull_study(120, seed=7)
    assert result["n_invalid"] <= 3
    for key, p in result["parameters"].items():
        n = len(p["pulls"])
        # 3-sigma windows for n ~ 120 realisations (the 500-run script uses the issue's +-0.1)
        assert abs(p["mean"]) < 3 / np.sqrt(n), key
        assert abs(p["std"] - 1) < 3 / np.sqrt(2 * n), key
        assert 0.55 < p["coverage_1sigma"] < 0.81, key


def test_ts_under_the_null_follows_the_chernoff_mixture():
    result = null_ts_study(200, seed=3)
    assert result["ks_pvalue"] > 0.01
    assert 0.4 < result["fraction_zero"] < 0.6
    assert np.mean(result["ts"] > 2.71) == pytest.approx(0.05, abs=0.04)


def test_null_cdf_would_reject_a_wrong_distribution():
    # the KS machinery is able to fail: TS drawn from chi2 with 2 dof is rejected
    from scipy import stats

    rng = np.random.default_rng(0)
    ts = rng.chisquare(2, 300)
    u = null_ts_cdf(ts)
    assert stats.kstest(u, "uniform").pvalue < 0.01

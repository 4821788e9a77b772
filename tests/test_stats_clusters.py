"""Cluster bootstrap over sub-tests (issue 12, item 3), including a coverage simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from pytest_scylla.stats import cluster_bootstrap_mean, wilson_interval


def test_estimate_pools_runs_and_names_the_level() -> None:
    clusters = [[1, 1, 0], [0], [1, 0, 0, 0], [], [1, 1]]
    result = cluster_bootstrap_mean(clusters, level="subtest")
    assert result.estimate == pytest.approx(5 / 10)
    assert result.unit == "subtest" and "cluster" in result.method
    assert result.small_sample  # four non-empty clusters
    assert result.low <= result.estimate <= result.high


def test_single_run_clusters_are_the_ordinary_bootstrap_of_the_mean() -> None:
    values = np.array([0.2, 0.9, 0.4, 0.4, 1.0, 0.0, 0.7, 0.55, 0.3, 0.8])
    result = cluster_bootstrap_mean([[v] for v in values], resamples=20_000)
    expected = scipy_stats.bootstrap(
        (values,), np.mean, n_resamples=20_000, method="percentile", rng=np.random.default_rng(1)
    ).confidence_interval
    assert result.low == pytest.approx(expected.low, abs=0.02)
    assert result.high == pytest.approx(expected.high, abs=0.02)
    assert not result.small_sample


def test_errors_and_determinism() -> None:
    with pytest.raises(ValueError, match="at least one run"):
        cluster_bootstrap_mean([[], []])
    with pytest.raises(ValueError, match="finite"):
        cluster_bootstrap_mean([[1.0, float("nan")]])
    clusters = [[1, 0], [1, 1], [0, 0], [1, 0, 1], [0, 1]]
    assert cluster_bootstrap_mean(clusters, seed=3) == cluster_bootstrap_mean(clusters, seed=3)


@pytest.mark.slow
def test_coverage_simulation_cluster_bootstrap_versus_pooled_wilson() -> None:
    # 30 sub-tests with very different pass chances (Beta(0.5, 0.5)), 10 runs each. The true
    # tier pass rate is the mean chance, 0.5. Treating the 300 runs as independent (Wilson)
    # ignores that runs of one sub-test agree; resampling whole sub-tests does not.
    rng = np.random.default_rng(20)
    simulations, clusters, runs = 300, 30, 10
    covered_cluster = covered_wilson = 0
    for index in range(simulations):
        chances = rng.beta(0.5, 0.5, clusters)
        passes = rng.binomial(1, np.repeat(chances, runs)).reshape(clusters, runs)
        interval = cluster_bootstrap_mean(list(passes), resamples=1000, seed=index)
        covered_cluster += interval.low <= 0.5 <= interval.high
        low, high = wilson_interval(int(passes.sum()), passes.size)
        covered_wilson += low <= 0.5 <= high
    assert covered_cluster / simulations > 0.88
    assert covered_wilson / simulations < 0.7  # 0.60 with this seed; the cluster one 0.94

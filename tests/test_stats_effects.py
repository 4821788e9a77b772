"""Effect sizes with intervals against statsmodels, scipy and published values (issue 12)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.proportion import confint_proportions_2indep

from pytest_scylla.stats import (
    Interval,
    cliffs_delta,
    cliffs_delta_interval,
    cliffs_delta_intervals,
    cost_of_pass_interval,
    hodges_lehmann,
    mean_interval,
    pass_rate_difference,
)

# --- Newcombe ------------------------------------------------------------------------------


def test_newcombe_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, table II, example (a): 56/70 - 48/80.
    result = pass_rate_difference(56, 70, 48, 80)
    assert result.estimate == pytest.approx(0.2)
    assert (result.low, result.high) == (
        pytest.approx(0.0524, abs=5e-5),
        pytest.approx(0.3339, abs=5e-5),
    )


@pytest.mark.parametrize(
    ("passes_a", "n_a", "passes_b", "n_b"),
    [(9, 10, 4, 10), (0, 10, 0, 10), (10, 10, 0, 10), (3, 3, 0, 3), (1, 25, 7, 12)],
)
def test_newcombe_matches_statsmodels(passes_a: int, n_a: int, passes_b: int, n_b: int) -> None:
    result = pass_rate_difference(passes_a, n_a, passes_b, n_b)
    low, high = confint_proportions_2indep(passes_a, n_a, passes_b, n_b, method="newcomb")
    assert (result.low, result.high) == (pytest.approx(low), pytest.approx(high))
    assert -1 <= result.low <= result.estimate <= result.high <= 1
    assert result.small_sample == (min(n_a, n_b) < 5)


def test_newcombe_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError):
        pass_rate_difference(3, 2, 1, 2)
    with pytest.raises(ValueError):
        pass_rate_difference(0, 0, 1, 2)


# --- Hodges-Lehmann -------------------------------------------------------------------------


def test_hodges_lehmann_estimate_is_median_of_pairwise_differences() -> None:
    a, b = [1.2, 3.4, 2.2, 5.0, 4.1], [0.3, 2.9, 1.1, 0.8]
    expected = float(np.median(np.subtract.outer(a, b)))
    assert hodges_lehmann(a, b).estimate == pytest.approx(expected)


def test_hodges_lehmann_interval_is_the_set_of_shifts_scipy_does_not_reject() -> None:
    # Moses' interval inverts the exact Mann-Whitney test: a shift d lies inside exactly
    # when scipy's exact test of (a - d) vs b has p > alpha. Checked between the pairwise
    # differences, where no ties arise.
    rng = np.random.default_rng(11)
    a, b = np.round(rng.normal(1, 1, 9), 3), np.round(rng.normal(0, 1, 8), 3)
    result = hodges_lehmann(a, b, confidence=0.95)
    differences = np.unique(np.subtract.outer(a, b))
    for shift in (differences[:-1] + differences[1:]) / 2:
        p = scipy_stats.mannwhitneyu(a - shift, b, method="exact").pvalue
        assert (result.low <= shift <= result.high) == (p > 0.05), shift
    assert result.low in differences and result.high in differences


def test_hodges_lehmann_large_groups_select_without_all_pairs() -> None:
    rng = np.random.default_rng(12)
    a, b = rng.normal(0.3, 1, 1500), rng.normal(0, 1, 1000)
    result = hodges_lehmann(a, b)
    differences = np.subtract.outer(a, b).ravel()
    assert result.estimate == pytest.approx(float(np.median(differences)), abs=1e-9)
    # Normal-approximation depth (Hollander and Wolfe).
    pairs = a.size * b.size
    depth = math.floor(pairs / 2 - 1.959964 * math.sqrt(pairs * (a.size + b.size + 1) / 12))
    ordered = np.sort(differences)
    assert result.low == pytest.approx(ordered[depth - 1], abs=1e-9)
    assert result.high == pytest.approx(ordered[pairs - depth], abs=1e-9)


def test_hodges_lehmann_of_tied_scores_reads_order_statistics_of_all_pairs() -> None:
    # 400 x 300 tied runs (few distinct scores): the order statistics come from the distinct
    # differences and their multiplicities; they must be those of all 120,000 pairs.
    rng = np.random.default_rng(14)
    a, b = rng.integers(0, 9, 400) / 8, rng.integers(0, 7, 300) / 6
    result = hodges_lehmann(a, b)
    ordered = np.sort(np.subtract.outer(a, b).ravel())
    pairs = ordered.size
    assert result.estimate == (ordered[pairs // 2 - 1] + ordered[pairs // 2]) / 2
    depth = math.floor(pairs / 2 - 1.959964 * math.sqrt(pairs * (a.size + b.size + 1) / 12))
    assert (result.low, result.high) == (ordered[depth - 1], ordered[pairs - depth])
    odd = hodges_lehmann(a[:-1], b[:-1])  # 399 x 299 pairs: one middle difference
    assert odd.estimate == np.median(np.subtract.outer(a[:-1], b[:-1]))


def test_hodges_lehmann_too_few_runs_for_any_interval() -> None:
    # 2 vs 2 runs: the most extreme split has two-sided p = 2 / C(4, 2) = 1/3 > 0.05.
    result = hodges_lehmann([1.0, 2.0], [0.0, 0.5])
    assert (result.low, result.high) == (-math.inf, math.inf)
    assert result.note is not None and "too few runs" in result.note
    written = result.model_dump_json()
    assert json.loads(written)["low"] == "-Infinity"
    assert Interval.model_validate_json(written) == result


# --- Cliff's delta --------------------------------------------------------------------------


def _scipy_percentile_bootstrap(
    samples: tuple[np.ndarray, ...], statistic, seed: int = 0
) -> tuple[float, float]:
    result = scipy_stats.bootstrap(
        samples,
        statistic,
        n_resamples=20_000,
        method="percentile",
        vectorized=False,
        rng=np.random.default_rng(seed),
    )
    return (result.confidence_interval.low, result.confidence_interval.high)


@pytest.mark.slow
def test_cliffs_delta_interval_matches_scipy_bootstrap() -> None:
    a = np.array([1.0, 1.0, 0.75, 0.5, 1.0, 0.25, 1.0, 0.75])
    b = np.array([0.5, 0.25, 0.5, 1.0, 0.0, 0.5, 0.75])
    result = cliffs_delta_interval(a, b, resamples=20_000, seed=2)
    assert result.estimate == pytest.approx(cliffs_delta(a, b))
    low, high = _scipy_percentile_bootstrap((a, b), lambda x, y: cliffs_delta(x, y))
    # Two independent Monte Carlo runs of the same bootstrap.
    assert result.low == pytest.approx(low, abs=0.04)
    assert result.high == pytest.approx(high, abs=0.04)
    assert cliffs_delta_interval(a, b, resamples=20_000, seed=2) == result


def test_cliffs_delta_interval_small_groups_are_flagged() -> None:
    result = cliffs_delta_interval([1, 1, 1], [0, 0, 0])
    assert result.estimate == 1.0 and (result.low, result.high) == (1.0, 1.0)
    assert result.small_sample and result.note is not None


def test_cliffs_delta_interval_is_fast_on_ten_thousand_tied_runs() -> None:
    rng = np.random.default_rng(13)
    a, b = rng.integers(0, 5, 10_000) / 4, rng.integers(0, 5, 10_000) / 4
    result = cliffs_delta_interval(a, b, resamples=10_000)
    assert result.low <= result.estimate <= result.high


# --- Cost-of-Pass ---------------------------------------------------------------------------


def _cost_of_pass(costs: np.ndarray, passed: np.ndarray) -> float:
    return float(costs.mean() / passed.mean()) if passed.any() else math.inf


@pytest.mark.slow
def test_cost_of_pass_interval_matches_scipy_bootstrap() -> None:
    costs = np.array([0.5, 0.8, 1.2, 0.4, 0.9, 1.5, 0.7, 0.6, 1.1, 0.3, 0.5, 0.9])
    passed = np.array([1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1], dtype=float)
    result = cost_of_pass_interval(costs, passed.astype(bool), resamples=20_000, seed=4)
    assert result.estimate == pytest.approx(_cost_of_pass(costs, passed))
    low, high = scipy_stats.bootstrap(
        (costs, passed),
        _cost_of_pass,
        paired=True,
        vectorized=False,
        n_resamples=20_000,
        method="percentile",
        rng=np.random.default_rng(0),
    ).confidence_interval
    assert result.low == pytest.approx(low, rel=0.03)
    assert result.high == pytest.approx(high, rel=0.03)


def test_cost_of_pass_interval_infinite_when_passes_are_rare() -> None:
    none = cost_of_pass_interval([1.0, 2.0, 3.0], [False, False, False])
    assert none.estimate == math.inf and none.low == math.inf and none.high == math.inf
    # One pass in 10: about 35% of resamples pass nothing, so the upper bound is infinite.
    rare = cost_of_pass_interval([1.0] * 10, [True] + [False] * 9)
    assert rare.estimate == pytest.approx(10.0) and rare.high == math.inf
    assert math.isfinite(rare.low)
    with pytest.raises(ValueError, match="equal lengths"):
        cost_of_pass_interval([1.0], [True, False])


# --- one group ------------------------------------------------------------------------------


def test_mean_interval_flags_small_samples_and_matches_index_bootstrap() -> None:
    values = [0.2, 0.5, 0.5, 0.9, 1.0, 0.0, 0.5, 1.0]
    result = mean_interval(values, resamples=20_000)
    low, high = _scipy_percentile_bootstrap((np.array(values),), np.mean)
    assert (result.low, result.high) == (
        pytest.approx(low, abs=0.02),
        pytest.approx(high, abs=0.02),
    )
    assert not result.small_sample
    assert mean_interval([1.0, 0.0, 1.0]).small_sample


def test_cliffs_delta_intervals_draw_each_group_once_and_alone() -> None:
    # A group's resamples depend on the seed and its index only: a pair's interval is the
    # same whichever other groups (here one with 5,000 distinct values, which makes the
    # blocks small) and pairs share the call.
    rng = np.random.default_rng(21)
    a, b = rng.integers(0, 5, 40) / 4, rng.integers(1, 6, 30) / 5
    c = rng.normal(size=5_000)
    [alone] = cliffs_delta_intervals([a, b, c], [(0, 1)], resamples=3_000, seed=1)
    together = cliffs_delta_intervals([a, b, c], [(0, 1), (1, 2), (0, 2)], resamples=3_000, seed=1)
    assert together[0] == alone == cliffs_delta_interval(a, b, resamples=3_000, seed=1)
    for (i, j), interval in zip([(0, 1), (1, 2), (0, 2)], together, strict=True):
        groups = (a, b, c)
        assert interval.estimate == pytest.approx(cliffs_delta(groups[i], groups[j]))
        assert interval.low <= interval.estimate <= interval.high
    assert cliffs_delta_intervals([a, [], b], [(0, 2)], resamples=100) == [
        cliffs_delta_intervals([a, [0.0], b], [(0, 2)], resamples=100)[0]
    ]

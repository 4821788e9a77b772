"""Exact and permutation rank tests against brute-force enumeration and scipy (issue 12)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as scipy_stats

from pytest_scylla.stats import kruskal_wallis, rank_sum_test, rank_tests, signed_rank_test


def _brute_force_rank_sum_p(a: list[float], b: list[float]) -> float:
    """P(|W - E W| >= |w - E W|) over every split of the pooled runs, by enumeration."""
    pooled = np.array(a + b, dtype=float)
    ranks = scipy_stats.rankdata(pooled)
    n, k = pooled.size, len(a)
    centre = k * (n + 1) / 2
    observed = abs(ranks[:k].sum() - centre)
    splits = list(itertools.combinations(range(n), k))
    hits = sum(abs(ranks[list(s)].sum() - centre) >= observed - 1e-9 for s in splits)
    return hits / len(splits)


def test_issue_example_three_ones_vs_three_zeros_is_exact_0_1() -> None:
    # scipy's default (normal approximation) says 0.047: below .05 with 3 runs per tier.
    assert scipy_stats.mannwhitneyu([1, 1, 1], [0, 0, 0]).pvalue < 0.05
    result = rank_sum_test([1, 1, 1], [0, 0, 0])
    assert result.p == pytest.approx(0.1)  # 2 of C(6, 3) = 20 splits are as extreme
    assert result.method == "exact" and result.ties
    assert result.u == 9.0


def test_issue_example_binary_nine_vs_four_of_ten_is_exact_0_057() -> None:
    a, b = [1] * 9 + [0], [1] * 4 + [0] * 6
    assert scipy_stats.mannwhitneyu(a, b).pvalue == pytest.approx(0.025, abs=0.001)
    result = rank_sum_test(a, b)
    # On 0/1 data the rank-sum permutation test is Fisher's exact test.
    assert result.p == pytest.approx(scipy_stats.fisher_exact([[9, 1], [4, 6]]).pvalue)
    assert result.p == pytest.approx(0.057, abs=0.0005)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([1.0, 0.5, 0.5, 0.0], [0.5, 0.0, 0.0]),
        ([1.0, 1.0, 0.75, 0.5, 0.5], [0.25, 0.5, 0.5, 1.0, 0.0, 0.0]),
        ([0.2, 0.2, 0.2], [0.2, 0.9, 0.9, 0.9, 0.9, 0.2, 0.1]),
        ([3.0, 1.0, 2.0, 2.0, 5.0, 5.0, 5.0], [4.0, 4.0, 1.0]),
    ],
)
def test_rank_sum_with_ties_matches_enumeration(a: list[float], b: list[float]) -> None:
    result = rank_sum_test(a, b)
    assert result.method == "exact"
    assert result.p == pytest.approx(_brute_force_rank_sum_p(a, b), abs=1e-12)
    assert result.u == pytest.approx(scipy_stats.mannwhitneyu(a, b).statistic)


def test_rank_sum_without_ties_is_scipys_exact() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.5, 1, 12), rng.normal(0, 1, 9)
    result = rank_sum_test(a, b)
    expected = scipy_stats.mannwhitneyu(a, b, method="exact")
    assert (result.method, result.ties) == ("exact", False)
    assert result.p == pytest.approx(expected.pvalue)
    assert result.u == pytest.approx(expected.statistic)


def test_rank_sum_exact_dynamic_programme_matches_scipy_without_ties() -> None:
    # The tie-aware distribution, fed distinct ranks, is the classical exact one.
    ranks = np.arange(1, 16)
    probabilities = rank_tests._subset_sum_distribution(np.ones(15, int), 2 * ranks, 6)
    totals = np.arange(probabilities.size)
    observed_doubled = 2 * (1 + 2 + 4 + 5 + 9 + 10)
    centre = 6 * 16
    p = probabilities[np.abs(totals - centre) >= abs(observed_doubled - centre)].sum()
    a, b = [1, 2, 4, 5, 9, 10], [3, 6, 7, 8, 11, 12, 13, 14, 15]
    assert p == pytest.approx(scipy_stats.mannwhitneyu(a, b, method="exact").pvalue)


def test_rank_sum_large_tied_groups_use_a_seeded_permutation_close_to_exact() -> None:
    # 60 vs 60 binary runs: permutation p must agree with Fisher's exact test.
    a = [1.0] * 40 + [0.0] * 20
    b = [1.0] * 28 + [0.0] * 32
    result = rank_sum_test(a, b, resamples=20_000, seed=3)
    assert result.method == "permutation" and result.resamples == 20_000
    fisher = scipy_stats.fisher_exact([[40, 20], [28, 32]]).pvalue
    assert result.p == pytest.approx(fisher, abs=0.006)
    assert rank_sum_test(a, b, resamples=20_000, seed=3) == result


def test_rank_sum_large_continuous_groups_use_the_normal_approximation() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=400), rng.normal(0.2, 1, size=300)
    result = rank_sum_test(a, b)
    assert result.method == "asymptotic"
    assert result.p == pytest.approx(scipy_stats.mannwhitneyu(a, b).pvalue)


def test_rank_sum_all_tied_and_errors() -> None:
    result = rank_sum_test([1.0] * 5, [1.0] * 4)
    assert result.p == 1.0
    with pytest.raises(ValueError, match="empty"):
        rank_sum_test([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        rank_sum_test([float("nan")], [1.0])
    with pytest.raises(ValueError, match="resamples"):
        rank_sum_test([1.0], [2.0], resamples=0)


# --- Kruskal-Wallis -------------------------------------------------------------------------


def test_kruskal_h_matches_scipy_and_continuous_large_groups_use_chi_square() -> None:
    rng = np.random.default_rng(6)
    groups = [rng.normal(size=8), rng.normal(0.8, 1, size=9), rng.normal(size=7)]
    result = kruskal_wallis(groups)
    expected = scipy_stats.kruskal(*groups)
    assert result.h == pytest.approx(expected.statistic)
    assert (result.method, result.p) == ("asymptotic", pytest.approx(expected.pvalue))


def _brute_force_kruskal_p(groups: list[list[float]]) -> float:
    """Share of all assignments of runs to groups (of the same sizes) with H >= observed."""
    pooled = np.array([v for g in groups for v in g])
    ranks = scipy_stats.rankdata(pooled)
    sizes = [len(g) for g in groups]
    n = pooled.size

    def h_statistic(indices: list[list[int]]) -> float:
        # H without the tie factor: the factor is the same for every assignment.
        spread = sum(ranks[idx].sum() ** 2 / len(idx) for idx in indices)
        return 12 / (n * (n + 1)) * spread - 3 * (n + 1)

    everything = list(range(n))
    observed = h_statistic(
        [
            everything[: sizes[0]],
            everything[sizes[0] : sizes[0] + sizes[1]],
            everything[sizes[0] + sizes[1] :],
        ]
    )
    hits = total = 0
    for first in itertools.combinations(everything, sizes[0]):
        rest = [i for i in everything if i not in first]
        for second in itertools.combinations(rest, sizes[1]):
            third = [i for i in rest if i not in second]
            total += 1
            hits += h_statistic([list(first), list(second), third]) >= observed - 1e-9
    return hits / total


def test_kruskal_with_ties_is_a_permutation_p_close_to_enumeration() -> None:
    groups = [[1.0, 1.0, 0.5], [0.0, 0.5, 0.0], [1.0, 0.0, 0.5, 1.0]]
    result = kruskal_wallis(groups, resamples=20_000, seed=1)
    assert result.method == "permutation" and result.ties
    assert result.h == pytest.approx(scipy_stats.kruskal(*groups).statistic)
    assert result.p == pytest.approx(_brute_force_kruskal_p(groups), abs=0.01)
    assert kruskal_wallis(groups, resamples=20_000, seed=1) == result


def test_kruskal_permutation_of_many_tied_runs_matches_the_chi_square() -> None:
    # 1,200 runs on a 9-value grid: the permutation shuffles one array per resample (the path
    # for 1,000 runs and more). With groups this large the tie-corrected chi-square of scipy
    # is accurate, so the permutation p must agree with it within Monte Carlo error.
    rng = np.random.default_rng(5)
    groups = [
        list(np.minimum(rng.integers(0, 9, 400) + (rng.random(400) < bump), 8) / 8)
        for bump in (0.0, 0.0, 0.1)  # the third tier scores one step higher a tenth of the time
    ]
    result = kruskal_wallis(groups, resamples=4_000, seed=2)
    expected = scipy_stats.kruskal(*groups)
    assert result.method == "permutation" and result.ties and result.n == 1_200
    assert result.h == pytest.approx(expected.statistic)
    assert 0.01 < expected.pvalue < 0.1  # a p-value the comparison can resolve
    assert result.p == pytest.approx(expected.pvalue, abs=0.02)
    assert kruskal_wallis(groups, resamples=4_000, seed=2) == result


def test_kruskal_edge_cases() -> None:
    assert kruskal_wallis([[1.0, 1.0], [1.0]]).p == 1.0
    with pytest.raises(ValueError, match="two groups"):
        kruskal_wallis([[1.0, 2.0]])
    with pytest.raises(ValueError, match="empty"):
        kruskal_wallis([[1.0], []])


# --- Wilcoxon signed-rank -------------------------------------------------------------------


def _exact_permutation_wilcoxon(d: np.ndarray, zero_method: str) -> float:
    method = scipy_stats.PermutationMethod(n_resamples=np.inf)
    return float(scipy_stats.wilcoxon(d, zero_method=zero_method, method=method).pvalue)


@pytest.mark.parametrize("zero_method", ["wilcox", "pratt", "zsplit"])
def test_signed_rank_with_ties_and_zeros_matches_scipy_enumeration(zero_method: str) -> None:
    a = np.array([0.9, 0.5, 0.75, 0.5, 1.0, 0.25, 0.8, 0.6, 0.5, 0.9])
    b = np.array([0.5, 0.5, 0.5, 0.25, 0.5, 0.5, 0.3, 0.6, 0.25, 0.4])
    result = signed_rank_test(a, b, zero_method=zero_method)  # type: ignore[arg-type]
    assert result.method == "exact" and result.ties
    assert result.n_nonzero == 8
    assert result.p == pytest.approx(_exact_permutation_wilcoxon(a - b, zero_method))
    expected = scipy_stats.wilcoxon(a, b, zero_method=zero_method, method="asymptotic")
    assert result.statistic == pytest.approx(expected.statistic)


def test_signed_rank_without_ties_is_scipys_exact() -> None:
    rng = np.random.default_rng(8)
    a, b = rng.normal(0.3, 1, 30), rng.normal(0, 1, 30)
    result = signed_rank_test(a, b)
    expected = scipy_stats.wilcoxon(a, b, method="exact")
    assert result.p == pytest.approx(expected.pvalue)
    assert result.statistic == pytest.approx(expected.statistic)


def test_signed_rank_large_uses_normal_approximation_and_edges() -> None:
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=300), rng.normal(size=300)
    result = signed_rank_test(a, b)
    assert result.method == "asymptotic"
    assert result.p == pytest.approx(scipy_stats.wilcoxon(a, b, method="asymptotic").pvalue)
    same = signed_rank_test([0.5, 0.6], [0.5, 0.6])
    assert (same.p, same.n_nonzero) == (1.0, 0)
    with pytest.raises(ValueError, match="length"):
        signed_rank_test([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="zero_method"):
        signed_rank_test([1.0], [2.0], zero_method="drop")  # type: ignore[arg-type]

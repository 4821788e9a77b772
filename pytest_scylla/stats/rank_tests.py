"""Rank tests whose p-values stay honest with tied scores and few runs (issue 12, item 1).

Scores are heavily tied (1.0, or the few values command items allow), and scipy's default
Mann-Whitney p-value is then a normal approximation: [1, 1, 1] vs [0, 0, 0] gets p = 0.047
where the exact permutation p is 0.100. Here the null distribution of the rank statistic is
enumerated exactly over the observed tie pattern when the runs are few, sampled (seeded) when
they are many but take few distinct values, and approximated only when both the runs and their
distinct values are many, where the approximation is good.

Two-sided p-values are P(|T - E[T]| >= |t - E[T]|) under the permutation distribution (coin's
definition), which with ties need not be symmetric. Sampled p-values are (1 + hits) /
(1 + resamples) (Phipson and Smyth 2010), never 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pytest_scylla.stats._common import (
    RESAMPLES,
    SMALL_SAMPLE,
    as_nonempty,
    check_resamples,
)

TestMethod = Literal["exact", "permutation", "asymptotic"]
ZeroMethod = Literal["wilcox", "pratt", "zsplit"]

#: Up to this many pooled runs the rank-sum null distribution is enumerated exactly.
EXACT_MAX_RUNS = 100
#: Above EXACT_MAX_RUNS, a permutation sample is drawn when the runs take at most this many
#: distinct values (heavy ties); with more, ties are light and the normal approximation holds.
PERMUTATION_MAX_DISTINCT = 300
#: Kruskal-Wallis permutes ranks directly (cost runs x resamples); above this many runs it uses
#: the tie-corrected chi-square approximation.
KRUSKAL_PERMUTATION_MAX_RUNS = 2_000
#: From this many runs on, Kruskal-Wallis permutations shuffle one array per resample in a loop
#: instead of permuting blocks of rows.
_SHUFFLE_LOOP_MIN_RUNS = 1_000
#: Up to this many non-zero differences the signed-rank null distribution is exact.
SIGNED_RANK_EXACT_MAX_PAIRS = 200


class RankSumResult(BaseModel):
    """Two-sided Mann-Whitney U test; u is the U of the first sample (scipy's convention)."""

    model_config = ConfigDict(frozen=True)

    u: float
    p: float
    method: TestMethod
    n_a: int
    n_b: int
    ties: bool = Field(description="some value occurs more than once in the pooled runs")
    resamples: int | None = Field(
        default=None, description="permutations drawn (method permutation)"
    )


class KruskalWallisResult(BaseModel):
    """Kruskal-Wallis H test across groups (tie-corrected H); the omnibus before pairs."""

    model_config = ConfigDict(frozen=True)

    h: float
    p: float
    method: TestMethod
    groups: int
    n: int
    ties: bool
    resamples: int | None = None


class SignedRankResult(BaseModel):
    """Two-sided Wilcoxon signed-rank test of paired differences a[i] - b[i].

    `statistic` is min(r_plus, r_minus) as scipy reports it; under zero_method "zsplit" half of
    the zero differences' ranks is in each.
    """

    model_config = ConfigDict(frozen=True)

    statistic: float
    r_plus: float
    p: float
    method: TestMethod
    n_pairs: int
    n_nonzero: int
    zero_method: ZeroMethod
    ties: bool


def _tie_blocks(pooled: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per run its block index; per block its size and doubled midrank (an integer)."""
    _, inverse, sizes = np.unique(pooled, return_inverse=True, return_counts=True)
    ends = np.cumsum(sizes)
    doubled_midranks = (ends - sizes + 1) + ends  # first rank + last rank
    return inverse, sizes, doubled_midranks


def _subset_sum_distribution(sizes: np.ndarray, values: np.ndarray, take: int) -> np.ndarray:
    """Probability of each total when `take` of the items are drawn without replacement.

    Items come in blocks of equal integer value (block i: sizes[i] items worth values[i]);
    the result is indexed by the total. Dynamic programming over blocks, counting C(size, j)
    ways to take j items of a block: O(items x take x max total).
    """
    top = int(np.sort(np.repeat(values, sizes))[::-1][:take].sum())
    ways = np.zeros((take + 1, top + 1))
    ways[0, 0] = 1.0
    for size, value in zip(sizes.tolist(), values.tolist(), strict=True):
        updated = ways.copy()
        for j in range(1, min(size, take) + 1):
            shift = j * value
            if shift > top:
                break
            updated[j:, shift:] += math.comb(size, j) * ways[: take + 1 - j, : top + 1 - shift]
        ways = updated
    return ways[take] / math.comb(int(sizes.sum()), take)


def rank_sum_test(
    a: Sequence[float],
    b: Sequence[float],
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> RankSumResult:
    """Two-sided Mann-Whitney U test with an exact or permutation p-value.

    For comparing two tiers' per-run scores. Exact up to EXACT_MAX_RUNS pooled runs (scipy's
    exact distribution without ties, else the permutation distribution enumerated over the
    observed ties); above that a seeded permutation sample when the runs take at most
    PERMUTATION_MAX_DISTINCT distinct values, else scipy's tie-corrected normal
    approximation. All values tied gives p = 1.
    """
    check_resamples(resamples)
    xa, xb = as_nonempty("a", a), as_nonempty("b", b)
    pooled = np.concatenate([xa, xb])
    inverse, sizes, doubled = _tie_blocks(pooled)
    ties = bool(np.any(sizes > 1))
    doubled_sum_a = int(doubled[inverse[: xa.size]].sum())
    u = doubled_sum_a / 2 - xa.size * (xa.size + 1) / 2

    def result(p: float, method: TestMethod, resamples: int | None = None) -> RankSumResult:
        return RankSumResult(
            u=u, p=p, method=method, n_a=xa.size, n_b=xb.size, ties=ties, resamples=resamples
        )

    if sizes.size == 1:
        return result(1.0, "exact")
    n = pooled.size
    # The doubled rank sum of a group of size k has mean k (n + 1); test on the smaller group.
    small = min(xa.size, xb.size)
    observed = doubled_sum_a if small == xa.size else n * (n + 1) - doubled_sum_a
    centre = small * (n + 1)
    if n <= EXACT_MAX_RUNS and not ties:
        from scipy import stats as scipy_stats  # here: importing scipy costs over half a second

        # Without ties the null distribution is symmetric and scipy's exact p is ours.
        p = float(scipy_stats.mannwhitneyu(xa, xb, method="exact").pvalue)
        return result(p, "exact")
    if n <= EXACT_MAX_RUNS:
        probabilities = _subset_sum_distribution(sizes, doubled, small)
        totals = np.arange(probabilities.size)
        extreme = np.abs(totals - centre) >= abs(observed - centre)
        p = float(min(1.0, probabilities[extreme].sum()))
        return result(p, "exact")
    if sizes.size <= PERMUTATION_MAX_DISTINCT:
        rng = np.random.default_rng(seed)
        # numpy's two samplers: "marginals" costs a hypergeometric draw (~100 ns) per distinct
        # value, "count" a shuffle step (~10 ns) per drawn run.
        method: Literal["count", "marginals"] = "count" if small < 10 * sizes.size else "marginals"
        counts = rng.multivariate_hypergeometric(sizes, small, size=resamples, method=method)
        totals = counts @ doubled
        hits = int(np.count_nonzero(np.abs(totals - centre) >= abs(observed - centre)))
        p = (1 + hits) / (1 + resamples)
        return result(p, "permutation", resamples)
    from scipy import stats as scipy_stats  # here: importing scipy costs over half a second

    p = float(scipy_stats.mannwhitneyu(xa, xb, method="asymptotic").pvalue)
    return result(p, "asymptotic")


def _kruskal_h(rank_sums: np.ndarray, sizes: np.ndarray, n: int, tie_factor: float) -> np.ndarray:
    spread = (rank_sums**2 / sizes).sum(axis=-1)
    return (12 / (n * (n + 1)) * spread - 3 * (n + 1)) / tie_factor


def _permuted_group_sums(
    ranks: np.ndarray, starts: np.ndarray, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """resamples x groups: the groups' rank sums under random permutations of the runs."""
    n = ranks.size
    sums = np.empty((resamples, starts.size))
    if n >= _SHUFFLE_LOOP_MIN_RUNS:
        # One array shuffled again and again (each shuffle is a uniform permutation whatever
        # the order it starts from): numpy's 1-D shuffle costs a quarter less than
        # Generator.permuted on rows, which pays off once the ~5 us per row in Python is small.
        shuffled = ranks.copy()
        for row in sums:
            rng.shuffle(shuffled)
            row[:] = np.add.reduceat(shuffled, starts)
        return sums
    block = max(1, 1_000_000 // n)
    for done in range(0, resamples, block):
        rows = min(block, resamples - done)
        shuffled = rng.permuted(np.broadcast_to(ranks, (rows, n)), axis=1)
        sums[done : done + rows] = np.add.reduceat(shuffled, starts, axis=1)
    return sums


def kruskal_wallis(
    groups: Sequence[Sequence[float]],
    resamples: int = RESAMPLES,
    seed: int = 0,
    minimum_runs: int = SMALL_SAMPLE,
) -> KruskalWallisResult:
    """Kruskal-Wallis omnibus test that the groups (tiers) come from one distribution.

    For the "do tiers differ at all" line above the pairwise comparisons. The p-value is a
    seeded permutation p when scores are tied or a group has fewer than `minimum_runs` runs
    (up to KRUSKAL_PERMUTATION_MAX_RUNS pooled runs), else the chi-square approximation with
    tie correction. Needs at least two groups, none empty. All values tied gives H = 0, p = 1.
    """
    check_resamples(resamples)
    if len(groups) < 2:
        raise ValueError(f"need at least two groups, got {len(groups)}")
    arrays = [as_nonempty(f"group {i}", group) for i, group in enumerate(groups)]
    group_sizes = np.array([x.size for x in arrays], dtype=float)
    pooled = np.concatenate(arrays)
    n = pooled.size
    inverse, sizes, doubled = _tie_blocks(pooled)
    ties = bool(np.any(sizes > 1))

    def result(
        h: float, p: float, method: TestMethod, resamples: int | None = None
    ) -> KruskalWallisResult:
        return KruskalWallisResult(
            h=h, p=p, method=method, groups=len(arrays), n=n, ties=ties, resamples=resamples
        )

    tie_factor = 1 - float((sizes**3 - sizes).sum()) / (n**3 - n)
    if tie_factor == 0:
        return result(0.0, 1.0, "exact")
    ranks = doubled[inverse] / 2
    ends = np.cumsum(group_sizes).astype(int)
    starts = np.r_[0, ends[:-1]]
    observed_sums = np.add.reduceat(ranks, starts)
    h = float(_kruskal_h(observed_sums, group_sizes, n, tie_factor))
    small = group_sizes.min() < minimum_runs
    if (ties or small) and n <= KRUSKAL_PERMUTATION_MAX_RUNS:
        sums = _permuted_group_sums(ranks, starts, resamples, np.random.default_rng(seed))
        # A small tolerance so that permutations tying the observed H count as extreme.
        hits = int(np.count_nonzero(_kruskal_h(sums, group_sizes, n, tie_factor) >= h - 1e-9))
        p = (1 + hits) / (1 + resamples)
        return result(h, p, "permutation", resamples)
    from scipy import stats as scipy_stats  # here: importing scipy costs over half a second

    p = float(scipy_stats.chi2.sf(h, len(arrays) - 1))
    return result(h, p, "asymptotic")


def signed_rank_test(
    a: Sequence[float], b: Sequence[float], zero_method: ZeroMethod = "wilcox"
) -> SignedRankResult:
    """Two-sided Wilcoxon signed-rank test of a[i] - b[i], exact when small.

    For paired comparisons: one value per task (e.g. a tier's pass rate on each task) measured
    in two experiments or two tiers. Zero differences as scipy's `zero_method`: "wilcox" drops
    them before ranking, "pratt" ranks them and then drops them, "zsplit" ranks them and gives
    half their rank to each side. The null distribution (every non-zero difference equally
    likely positive or negative) is enumerated exactly over the observed ranks up to
    SIGNED_RANK_EXACT_MAX_PAIRS non-zero differences, ties included; beyond that scipy's normal
    approximation. No non-zero difference gives p = 1.
    """
    xa, xb = as_nonempty("a", a), as_nonempty("b", b)
    if xa.size != xb.size:
        raise ValueError(f"paired samples differ in length: {xa.size} vs {xb.size}")
    if zero_method not in ("wilcox", "pratt", "zsplit"):
        raise ValueError(f"zero_method must be wilcox, pratt or zsplit, got {zero_method!r}")
    differences = xa - xb
    nonzero = differences != 0
    ranked = differences[nonzero] if zero_method == "wilcox" else differences
    inverse, sizes, doubled_blocks = _tie_blocks(np.abs(ranked))
    doubled = doubled_blocks[inverse]
    signs = np.sign(ranked)
    ties = bool(np.any(sizes[np.unique(inverse[signs != 0])] > 1)) if ranked.size else False
    zero_half = float(doubled[signs == 0].sum()) / 4 if zero_method == "zsplit" else 0.0
    r_plus = float(doubled[signs > 0].sum()) / 2 + zero_half
    r_minus = float(doubled[signs < 0].sum()) / 2 + zero_half

    def result(p: float, method: TestMethod) -> SignedRankResult:
        return SignedRankResult(
            statistic=min(r_plus, r_minus),
            r_plus=r_plus,
            p=p,
            method=method,
            n_pairs=xa.size,
            n_nonzero=int(np.count_nonzero(nonzero)),
            zero_method=zero_method,
            ties=ties,
        )

    if not np.any(nonzero):
        return result(1.0, "exact")
    flipped = doubled[signs != 0].astype(int)
    if flipped.size <= SIGNED_RANK_EXACT_MAX_PAIRS:
        # Each non-zero difference adds its doubled rank to the positive side with chance 1/2.
        total = int(flipped.sum())
        distribution = np.zeros(total + 1)
        distribution[0] = 1.0
        for value in flipped.tolist():
            distribution[value:] = (distribution[value:] + distribution[:-value].copy()) / 2
            distribution[:value] /= 2
        observed = int(doubled[signs > 0].sum())
        sums = np.arange(total + 1)
        extreme = np.abs(2 * sums - total) >= abs(2 * observed - total)
        p = float(min(1.0, distribution[extreme].sum()))
        return result(p, "exact")
    from scipy import stats as scipy_stats  # here: importing scipy costs over half a second

    p = float(scipy_stats.wilcoxon(xa, xb, zero_method=zero_method, method="asymptotic").pvalue)
    return result(p, "asymptotic")

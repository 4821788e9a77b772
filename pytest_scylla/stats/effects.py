"""Effect sizes between two groups, each with an interval (issue 12, item 2).

For the tier comparison table: how large a difference is, not only whether it is there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from pytest_scylla.stats._common import (
    RESAMPLES,
    as_nonempty,
    check_confidence,
    check_resamples,
    percentile_bounds,
    resample_counts,
    resample_sums,
    z_quantile,
)
from pytest_scylla.stats.intervals import Interval, flagged

#: Pairwise differences are held in memory up to this many; beyond, order statistics of them
#: are found by bisection over counts.
_MAX_MATERIALISED_PAIRS = 1_000_000


def _wilson(passes: int, n: int, z: float) -> tuple[float, float]:
    p = passes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def pass_rate_difference(
    passes_a: int, n_a: int, passes_b: int, n_b: int, confidence: float = 0.95
) -> Interval:
    """Difference of pass rates a - b with Newcombe's hybrid score interval (method 10).

    For "tier B passes 20 points more than tier A". The interval combines the two Wilson
    intervals (Newcombe 1998), stays inside [-1, 1] and behaves at 0 and n passes, where the
    Wald interval collapses. Both groups need at least one run.
    """
    check_confidence(confidence)
    for passes, n in ((passes_a, n_a), (passes_b, n_b)):
        if n < 1 or not 0 <= passes <= n:
            raise ValueError(f"need n >= 1 and 0 <= passes <= n, got passes={passes}, n={n}")
    z = z_quantile(1 - (1 - confidence) / 2)
    rate_a, rate_b = passes_a / n_a, passes_b / n_b
    low_a, high_a = _wilson(passes_a, n_a, z)
    low_b, high_b = _wilson(passes_b, n_b, z)
    difference = rate_a - rate_b
    interval = Interval(
        estimate=difference,
        low=difference - math.sqrt((rate_a - low_a) ** 2 + (high_b - rate_b) ** 2),
        high=difference + math.sqrt((high_a - rate_a) ** 2 + (rate_b - low_b) ** 2),
        confidence=confidence,
        method="Newcombe hybrid score",
    )
    return flagged(interval, min(n_a, n_b))


def _count_at_most(a_sorted: np.ndarray, b_sorted: np.ndarray, threshold: float) -> int:
    """How many a[i] - b[j] are <= threshold."""
    return int((b_sorted.size - np.searchsorted(b_sorted, a_sorted - threshold, "left")).sum())


def _kth_difference(a_sorted: np.ndarray, b_sorted: np.ndarray, k: int) -> float:
    """The k-th smallest (1-based) of all a[i] - b[j]."""
    pairs = a_sorted.size * b_sorted.size
    if pairs <= _MAX_MATERIALISED_PAIRS:
        differences = (a_sorted[:, None] - b_sorted[None, :]).ravel()
        return float(np.partition(differences, k - 1)[k - 1])
    low = float(a_sorted[0] - b_sorted[-1]) - 1.0  # fewer than k at or below
    high = float(a_sorted[-1] - b_sorted[0])  # all at or below
    for _ in range(200):
        middle = (low + high) / 2
        if middle in (low, high):
            break
        if _count_at_most(a_sorted, b_sorted, middle) >= k:
            high = middle
        else:
            low = middle
    return high


def _moses_depth(n_a: int, n_b: int, confidence: float) -> int:
    """Largest c with P(U <= c - 1) <= (1 - confidence) / 2 under the no-ties null; 0 if none."""
    alpha = 1 - confidence
    if n_a + n_b <= 100:
        from pytest_scylla.stats.rank_tests import _subset_sum_distribution

        small = min(n_a, n_b)
        ranks = np.arange(1, n_a + n_b + 1)
        rank_sums = _subset_sum_distribution(np.ones_like(ranks), ranks, small)
        # The rank sum of the smaller group is U + small (small + 1) / 2; U is symmetric.
        u_distribution = rank_sums[small * (small + 1) // 2 :]
        cumulative = np.cumsum(u_distribution)
        return int(np.count_nonzero(cumulative <= alpha / 2 + 1e-12))
    pairs = n_a * n_b
    spread = math.sqrt(pairs * (n_a + n_b + 1) / 12)
    return max(0, math.floor(pairs / 2 - z_quantile(1 - alpha / 2) * spread))


def hodges_lehmann(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> Interval:
    """Hodges-Lehmann shift a - b (median of all pairwise differences) with Moses' interval.

    For "scores moved by this much", robust to outliers. The interval is the set of shifts the
    two-sided Mann-Whitney test does not reject: [D(c), D(mn + 1 - c)] of the sorted pairwise
    differences, c from the exact U distribution up to 100 runs, else its normal
    approximation (Hollander and Wolfe). The distribution assumes no ties; with heavily tied
    scores the interval is conservative or coarse. When no data this small can reach the
    confidence, the bounds are infinite and a note says so.
    """
    check_confidence(confidence)
    xa, xb = np.sort(as_nonempty("a", a)), np.sort(as_nonempty("b", b))
    pairs = xa.size * xb.size
    if pairs % 2:
        estimate = _kth_difference(xa, xb, pairs // 2 + 1)
    else:
        estimate = (
            _kth_difference(xa, xb, pairs // 2) + _kth_difference(xa, xb, pairs // 2 + 1)
        ) / 2
    depth = _moses_depth(xa.size, xb.size, confidence)
    note = None
    if depth == 0:
        low, high = -math.inf, math.inf
        note = f"too few runs for a {confidence:.0%} rank interval"
    else:
        low = _kth_difference(xa, xb, depth)
        high = _kth_difference(xa, xb, pairs + 1 - depth)
    interval = Interval(
        estimate=estimate,
        low=low,
        high=high,
        confidence=confidence,
        method="Hodges-Lehmann, Moses interval",
        note=note,
    )
    return interval if note else flagged(interval, min(xa.size, xb.size))


def cliffs_delta_interval(
    a: Sequence[float],
    b: Sequence[float],
    confidence: float = 0.95,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Cliff's delta P(a > b) - P(a < b) with a percentile bootstrap interval.

    For the effect-size column of tier comparisons. Each group is resampled on its own; a
    resample is drawn as counts over the pooled distinct values, so the cost grows with the
    distinct scores, not with the pairs of runs.
    """
    check_confidence(confidence)
    check_resamples(resamples)
    xa, xb = as_nonempty("a", a), as_nonempty("b", b)
    values = np.unique(np.concatenate([xa, xb]))
    weights_a = np.bincount(np.searchsorted(values, xa), minlength=values.size).astype(float)
    weights_b = np.bincount(np.searchsorted(values, xb), minlength=values.size).astype(float)
    rng = np.random.default_rng(seed)
    # The two groups' blocks differ in rows when their sizes differ (resample_counts sizes a
    # block by the group): all counts are drawn first (resamples x distinct values, small).
    counts_a = np.concatenate(list(resample_counts(rng, xa.size, weights_a, resamples)))
    counts_b = np.concatenate(list(resample_counts(rng, xb.size, weights_b, resamples)))
    below_b = np.cumsum(counts_b, axis=1) - counts_b  # b values smaller than each value
    above_b = xb.size - below_b - counts_b
    estimates = (counts_a * (below_b - above_b)).sum(axis=1) / (xa.size * xb.size)
    low, high = percentile_bounds(estimates, confidence)
    below = np.cumsum(weights_b) - weights_b
    estimate = float((weights_a * (below - (xb.size - below - weights_b))).sum()) / (
        xa.size * xb.size
    )
    interval = Interval(
        estimate=estimate,
        low=low,
        high=high,
        confidence=confidence,
        method="percentile bootstrap",
        resamples=resamples,
    )
    return flagged(interval, min(xa.size, xb.size))


def cost_of_pass_interval(
    costs: Sequence[float],
    passed: Sequence[bool],
    confidence: float = 0.95,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Cost-of-Pass (mean cost / pass rate) with a percentile bootstrap interval over runs.

    For the Cost-of-Pass column. A resample with no pass has an infinite Cost-of-Pass, so the
    upper bound is infinite when passes are rare; the estimate is infinite when nothing
    passed.
    """
    check_confidence(confidence)
    check_resamples(resamples)
    cost = as_nonempty("costs", costs)
    flags = np.asarray(passed, dtype=float)
    if flags.shape != cost.shape:
        raise ValueError("costs and passed must have equal lengths")
    if np.any(cost < 0):
        raise ValueError("costs must be >= 0")
    rng = np.random.default_rng(seed)
    estimates = []
    for sums in resample_sums(rng, np.column_stack([cost, flags]), resamples):
        total_cost, passes = sums[:, 0], sums[:, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            estimates.append(np.where(passes > 0, total_cost / passes, math.inf))
    low, high = percentile_bounds(np.concatenate(estimates), confidence)
    passes = flags.sum()
    interval = Interval(
        estimate=float(cost.sum() / passes) if passes else math.inf,
        low=low,
        high=high,
        confidence=confidence,
        method="percentile bootstrap",
        resamples=resamples,
    )
    return flagged(interval, cost.size)

"""Effect sizes between two groups, each with an interval (issue 12, item 2).

For the tier comparison table: how large a difference is, not only whether it is there.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from pytest_scylla.stats._common import (
    RESAMPLES,
    as_nonempty,
    check_confidence,
    check_resamples,
    percentile_bounds,
    resample_counts,
    resampled_sums,
    z_quantile,
)
from pytest_scylla.stats.intervals import Interval, flagged

#: Pairwise differences are held in memory up to this many; beyond, order statistics of them
#: are found by bisection over counts.
_MAX_MATERIALISED_PAIRS = 1_000_000
#: Cliff's delta draws each group's resamples in chunks of this many rows.
_CHUNK_ROWS = 500
#: Resample counts held at once per group (of int64): 2 MB.
_CLIFFS_CELLS = 250_000


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


def _kth_differences(a_sorted: np.ndarray, b_sorted: np.ndarray, ks: list[int]) -> list[float]:
    """The k-th smallest (1-based) of all a[i] - b[j], for each k in ks.

    Tied scores make few distinct differences: the differences of distinct values are
    sorted once with their multiplicities (how many pairs give each), and every k is read
    off the running count. Too many distinct pairs to hold: bisection over counts, per k.
    """
    values_a, counts_a = np.unique(a_sorted, return_counts=True)
    values_b, counts_b = np.unique(b_sorted, return_counts=True)
    if values_a.size * values_b.size > _MAX_MATERIALISED_PAIRS:
        return [_kth_difference(a_sorted, b_sorted, k) for k in ks]
    differences = (values_a[:, None] - values_b[None, :]).ravel()
    multiplicities = (counts_a[:, None] * counts_b[None, :]).ravel()
    order = np.argsort(differences, kind="stable")
    at_or_below = np.cumsum(multiplicities[order])
    return [float(differences[order[np.searchsorted(at_or_below, k)]]) for k in ks]


def _kth_difference(a_sorted: np.ndarray, b_sorted: np.ndarray, k: int) -> float:
    """The k-th smallest (1-based) of all a[i] - b[j], by bisection over counts."""
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
    depth = _moses_depth(xa.size, xb.size, confidence)
    ks = [pairs // 2 + 1, (pairs + 1) // 2]  # the middle one or two
    if depth:
        ks += [depth, pairs + 1 - depth]
    found = _kth_differences(xa, xb, ks)
    estimate = (found[0] + found[1]) / 2 if pairs % 2 == 0 else found[0]
    note = None
    if depth == 0:
        low, high = -math.inf, math.inf
        note = f"too few runs for a {confidence:.0%} rank interval"
    else:
        low, high = found[2], found[3]
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

    For one comparison; cliffs_delta_intervals([a, b], [(0, 1)]), so a tier comparison
    between the first two groups of that function gives the same interval.
    """
    return cliffs_delta_intervals([a, b], [(0, 1)], confidence, resamples, seed)[0]


def _value_counts(rng: np.random.Generator, weights: np.ndarray, rows: int) -> Iterator[np.ndarray]:
    """Chunks of _CHUNK_ROWS bootstrap resamples of one group, as counts over all values.

    `weights` counts the group's runs at each value. Drawn over the group's own values and
    spread into all columns; fixed chunks keep a group's draws the same whatever the other
    groups of the call (and so the block sizes) are.
    """
    own = np.flatnonzero(weights)
    size = int(weights.sum())
    for start in range(0, rows, _CHUNK_ROWS):
        chunk = min(_CHUNK_ROWS, rows - start)
        drawn = np.concatenate(list(resample_counts(rng, size, weights[own], chunk)))
        counts = np.zeros((chunk, weights.size), dtype=np.int64)
        counts[:, own] = drawn
        yield counts


def cliffs_delta_intervals(
    groups: Sequence[Sequence[float]],
    pairs: Sequence[tuple[int, int]],
    confidence: float = 0.95,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> list[Interval]:
    """Cliff's delta of groups[i] vs groups[j] for each pair (i, j), with percentile
    bootstrap intervals.

    For the effect-size column of tier comparisons. Each group is resampled once, from its own
    stream (seeded by the seed and the group's index), and every pair it belongs to uses those
    resamples: a tier in six comparisons is drawn once, not six times. Each interval is the
    usual two-sample bootstrap (each group resampled on its own); only intervals of pairs that
    share a group are correlated. A resample is drawn as counts over the distinct values, so
    the cost grows with the distinct scores, not with the pairs of runs. Groups in no pair may
    be empty.
    """
    check_confidence(confidence)
    check_resamples(resamples)
    used = sorted({index for pair in pairs for index in pair})
    data = {index: as_nonempty(f"group {index}", groups[index]) for index in used}
    values = np.unique(np.concatenate(list(data.values()))) if used else np.empty(0)
    weights = {
        index: np.bincount(np.searchsorted(values, x), minlength=values.size)
        for index, x in data.items()
    }
    draws = {
        index: _value_counts(np.random.default_rng([seed, index]), weights[index], resamples)
        for index in used
    }
    later = {j for _, j in pairs}
    estimates = {pair: np.empty(resamples) for pair in pairs}
    # Resamples are processed in blocks of whole chunks, so memory stays near _CLIFFS_CELLS
    # per group however many values there are.
    block = max(1, _CLIFFS_CELLS // max(1, values.size) // _CHUNK_ROWS) * _CHUNK_ROWS
    for start in range(0, resamples, block):
        rows = min(block, resamples - start)
        counts = {
            index: np.concatenate([next(draws[index]) for _ in range(0, rows, _CHUNK_ROWS)])
            for index in used
        }
        # Per resample of b and value v: (b runs below v) - (b runs above v).
        dominance = {j: 2 * np.cumsum(counts[j], axis=1) - counts[j] - data[j].size for j in later}
        for i, j in pairs:
            rowwise = np.einsum("rv,rv->r", counts[i], dominance[j])
            estimates[(i, j)][start : start + rows] = rowwise / (data[i].size * data[j].size)
    intervals = []
    for i, j in pairs:
        a_size, b_size = data[i].size, data[j].size
        below = np.cumsum(weights[j]) - weights[j]
        dominance_b = below - (b_size - below - weights[j])
        estimate = float((weights[i] * dominance_b).sum()) / (a_size * b_size)
        low, high = percentile_bounds(estimates[(i, j)], confidence)
        interval = Interval(
            estimate=estimate,
            low=low,
            high=high,
            confidence=confidence,
            method="percentile bootstrap",
            resamples=resamples,
        )
        intervals.append(flagged(interval, min(a_size, b_size)))
    return intervals


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
    total_cost, passes = resampled_sums(np.column_stack([cost, flags]), resamples, seed).T
    with np.errstate(divide="ignore", invalid="ignore"):
        estimates = np.where(passes > 0, total_cost / passes, math.inf)
    low, high = percentile_bounds(estimates, confidence)
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

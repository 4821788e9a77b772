"""Helpers shared by the statistics modules: argument checks, quantiles, resampling."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from statistics import NormalDist

import numpy as np

#: Below this many runs (or clusters) a percentile bootstrap interval carries a note: simulated
#: coverage of the nominal 95% interval was 0.70 at n = 3 and 0.81 at n = 5 (issue 12).
SMALL_SAMPLE = 5
#: Resamples drawn by the bootstrap and permutation functions unless told otherwise.
RESAMPLES = 10_000
# Resampled counts are drawn in blocks of at most this many cells, so 10,000 resamples of
# 10,000 runs never hold a 10^8 matrix at once.
_BLOCK_CELLS = 2_000_000
# Bootstrap draws of up to this many items x resamples (8 MB as floats) are cached, at most
# _CACHED_DRAWS of them: a 10,000-run regenerate needs a handful of distinct sizes.
_CACHED_CELLS = 1_000_000
_CACHED_DRAWS = 16


def z_quantile(quantile: float) -> float:
    return NormalDist().inv_cdf(quantile)


def check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")


def check_power(power: float) -> None:
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power}")


def check_resamples(resamples: int) -> None:
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")


def as_nonempty(name: str, values: Sequence[float]) -> np.ndarray:
    data = np.asarray(values, dtype=float)
    if data.ndim != 1 or data.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{name} must hold finite values")
    return data


def percentile_bounds(estimates: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of bootstrap estimates, which may hold +inf.

    Same linear interpolation as np.percentile; a bound whose neighbours include +inf is +inf
    (np.percentile would give NaN there, from inf * 0).
    """
    ordered = np.sort(estimates)
    tail = (1 - confidence) / 2
    bounds = []
    for quantile in (tail, 1 - tail):
        position = quantile * (ordered.size - 1)
        below, above = math.floor(position), math.ceil(position)
        weight = position - below
        if (math.isinf(ordered[above]) and weight > 0) or math.isinf(ordered[below]):
            bounds.append(math.inf)
        else:
            bounds.append(float(ordered[below] + (ordered[above] - ordered[below]) * weight))
    return (bounds[0], bounds[1])


def resample_counts(
    rng: np.random.Generator, size: int, weights: np.ndarray, resamples: int
) -> Iterator[np.ndarray]:
    """Blocks of bootstrap counts: how often each category appears in each resample.

    A resample of `size` items drawn with replacement is summarised without loss by how many
    times it took each category; `weights` are the categories' frequencies among the items
    (integers summing to `size`: distinct values and their counts, or ones for items).
    With few categories the counts are drawn as multinomials (cost per resample grows with
    the categories); with many, by drawing item indices and counting them (cost grows with
    the items), as numpy's multinomial costs a binomial draw per category.
    """
    frequencies = np.asarray(weights)
    categories = frequencies.size
    if not np.all(frequencies == np.round(frequencies)) or frequencies.sum() != size:
        raise ValueError("weights must be integer frequencies summing to size")
    by_multinomial = categories * 10 <= size
    rows = max(1, _BLOCK_CELLS // max(categories, size))
    probabilities = frequencies / size
    one_per_category = categories == size
    item_categories = np.repeat(np.arange(categories, dtype=np.int32), frequencies.astype(int))
    done = 0
    while done < resamples:
        block = min(rows, resamples - done)
        if by_multinomial:
            yield rng.multinomial(size, probabilities, size=block)
        else:
            # int32 draws cost a third less than int64; the offsets widen them for bincount.
            drawn = rng.integers(0, size, size=(block, size), dtype=np.int32)
            if not one_per_category:
                drawn = item_categories[drawn]
            offsets = np.arange(block, dtype=np.int64) * categories
            flat = np.bincount((drawn + offsets[:, None]).ravel(), minlength=block * categories)
            yield flat.reshape(block, categories)
        done += block


@functools.lru_cache(maxsize=_CACHED_DRAWS)
def _item_counts(seed: int, size: int, resamples: int) -> np.ndarray:
    """size x resamples: how often each of `size` items is drawn in each bootstrap resample.

    Cached: every bootstrap over the same number of items with the same seed (a sub-test's
    score, cost and Cost-of-Pass intervals; each tier's sub-test clusters) uses these same
    draws, so they are drawn once. Read-only, as it is shared.
    """
    rng = np.random.default_rng(seed)
    counts = np.concatenate(list(resample_counts(rng, size, np.ones(size), resamples)))
    # Items x resamples: the products below then run along contiguous resamples.
    matrix = np.ascontiguousarray(counts.T, dtype=float)
    matrix.flags.writeable = False
    return matrix


def _sum_products(counts: np.ndarray, table: np.ndarray) -> np.ndarray:
    """counts.T @ table (counts: items x resamples), one column at a time with einsum.

    Not BLAS: OpenBLAS runs these products on every core and, on a shared machine, its
    threads spin; CPU time was 20x the single-threaded product's. Column by column, a
    statistic's sums do not depend on the other columns it is computed with.
    """
    return np.column_stack([np.einsum("nr,n->r", counts, column) for column in table.T])


def resampled_sums(columns: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """resamples x d: the column sums of each bootstrap resample of the rows (items).

    `columns` is items x d. The draws depend only on the seed, the number of items and the
    resamples: up to _CACHED_CELLS drawn items they are cached and shared between statistics
    (a matrix product per statistic); beyond, rows that repeat (tied scores) are drawn as
    counts over the distinct rows, which is cheap when they are few.
    """
    table = np.asarray(columns, dtype=float)
    size = table.shape[0]
    if size * resamples <= _CACHED_CELLS:
        return _sum_products(_item_counts(seed, size, resamples), table)
    distinct, frequencies = np.unique(table, axis=0, return_counts=True)
    rng = np.random.default_rng(seed)
    blocks = resample_counts(rng, size, frequencies, resamples)
    return np.concatenate([_sum_products(counts.T, distinct) for counts in blocks])


def support(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and their counts."""
    distinct, counts = np.unique(values, return_counts=True)
    return distinct, counts.astype(float)

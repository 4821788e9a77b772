"""The resampling and percentile helpers behind every bootstrap (issue 12)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_scylla.stats._common import (
    _item_counts,
    percentile_bounds,
    resample_counts,
    resampled_sums,
)


@pytest.mark.parametrize(("weights", "size"), [(np.array([3.0, 1.0, 6.0]), 10), (np.ones(50), 50)])
def test_resample_counts_have_multinomial_moments(weights: np.ndarray, size: int) -> None:
    # Few categories go through numpy's multinomial, many through drawn indices.
    counts = np.concatenate(list(resample_counts(np.random.default_rng(1), size, weights, 20_000)))
    assert counts.shape == (20_000, weights.size)
    assert np.all(counts.sum(axis=1) == size)
    probabilities = weights / size
    assert counts.mean(axis=0) == pytest.approx(size * probabilities, abs=0.1)
    variance = size * probabilities * (1 - probabilities)
    assert counts.var(axis=0) == pytest.approx(variance, rel=0.06)


def test_resample_counts_rejects_weights_not_summing_to_size() -> None:
    with pytest.raises(ValueError, match="frequencies"):
        next(resample_counts(np.random.default_rng(0), 5, np.array([1.0, 2.0]), 10))


@pytest.mark.parametrize("resamples", [30_000, 3_000])
def test_resampled_sums_are_sums_of_draws_with_replacement(resamples: int) -> None:
    # 100 x 30,000 cells is beyond the cache: counts over distinct rows; 100 x 3,000 is cached.
    columns = np.column_stack([np.arange(1.0, 101.0), np.ones(100)])
    sums = resampled_sums(columns, resamples, seed=2)
    assert sums.shape == (resamples, 2) and np.all(sums[:, 1] == 100)
    # Sum of 100 draws from 1..100: mean 5050, variance 100 * (100^2 - 1) / 12.
    assert sums[:, 0].mean() == pytest.approx(5050, rel=0.002)
    assert sums[:, 0].var() == pytest.approx(100 * (100**2 - 1) / 12, rel=0.1)


def test_resampled_sums_share_draws_between_statistics_of_one_size() -> None:
    # Two statistics over the same 50 items and seed see the same resamples (drawn once);
    # another seed draws others. The shared matrix cannot be changed by a caller.
    values, flags = np.linspace(0.0, 1.0, 50), (np.arange(50) % 3 == 0).astype(float)
    together = resampled_sums(np.column_stack([values, flags]), 2_000, seed=4)
    assert np.array_equal(resampled_sums(values[:, None], 2_000, seed=4)[:, 0], together[:, 0])
    assert np.array_equal(resampled_sums(flags[:, None], 2_000, seed=4)[:, 0], together[:, 1])
    other = resampled_sums(values[:, None], 2_000, seed=5)[:, 0]
    assert np.abs(other - together[:, 0]).max() > 1.0
    with pytest.raises(ValueError, match="read-only"):
        _item_counts(4, 50, 2_000)[0, 0] = 1.0


def test_resampled_sums_of_many_tied_rows_have_multinomial_moments() -> None:
    # 5,000 rows of three distinct values, beyond the cache: drawn as multinomial counts.
    values = np.repeat([0.0, 0.5, 1.0], [1_000, 1_500, 2_500])
    means = resampled_sums(values[:, None], 4_000, seed=6)[:, 0] / values.size
    assert means.mean() == pytest.approx(values.mean(), abs=0.001)
    assert means.std() == pytest.approx(values.std() / np.sqrt(values.size), rel=0.06)


def test_percentile_bounds_match_numpy_and_handle_infinity() -> None:
    values = np.random.default_rng(3).normal(size=999)
    assert percentile_bounds(values, 0.9) == pytest.approx(tuple(np.percentile(values, [5, 95])))
    with_inf = np.array([1.0, 2.0, 3.0, math.inf])
    assert percentile_bounds(with_inf, 0.5) == (pytest.approx(1.75), math.inf)
    assert percentile_bounds(np.full(4, math.inf), 0.5) == (math.inf, math.inf)

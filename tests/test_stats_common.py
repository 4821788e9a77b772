"""The resampling and percentile helpers behind every bootstrap (issue 12)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_scylla.stats._common import percentile_bounds, resample_counts, resample_sums


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


def test_resample_sums_are_sums_of_draws_with_replacement() -> None:
    columns = np.column_stack([np.arange(1.0, 101.0), np.ones(100)])
    sums = np.concatenate(list(resample_sums(np.random.default_rng(2), columns, 30_000)))
    assert sums.shape == (30_000, 2) and np.all(sums[:, 1] == 100)
    # Sum of 100 draws from 1..100: mean 5050, variance 100 * (100^2 - 1) / 12.
    assert sums[:, 0].mean() == pytest.approx(5050, rel=0.002)
    assert sums[:, 0].var() == pytest.approx(100 * (100**2 - 1) / 12, rel=0.05)


def test_percentile_bounds_match_numpy_and_handle_infinity() -> None:
    values = np.random.default_rng(3).normal(size=999)
    assert percentile_bounds(values, 0.9) == pytest.approx(tuple(np.percentile(values, [5, 95])))
    with_inf = np.array([1.0, 2.0, 3.0, math.inf])
    assert percentile_bounds(with_inf, 0.5) == (pytest.approx(1.75), math.inf)
    assert percentile_bounds(np.full(4, math.inf), 0.5) == (math.inf, math.inf)

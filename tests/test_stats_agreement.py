"""Krippendorff's alpha against the krippendorff package and the textbook (issue 12, item 5)."""

from __future__ import annotations

import json

import krippendorff
import numpy as np
import pytest
from scipy import stats as scipy_stats

from pytest_scylla.stats import JudgeAgreement, krippendorff_alpha, score_ranges

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 observers, 12 units,
# missing values; the interval alpha of this table is 0.849.
TEXTBOOK = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def _as_array(ratings: list[list[float | None]]) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in ratings], dtype=float)


def test_textbook_interval_alpha() -> None:
    result = krippendorff_alpha(TEXTBOOK)
    assert result.alpha == pytest.approx(0.849, abs=5e-4)
    reference = krippendorff.alpha(
        reliability_data=_as_array(TEXTBOOK), level_of_measurement="interval"
    )
    assert result.alpha == pytest.approx(reference)
    # Unit 12 has a single value and does not count.
    assert (result.judges, result.items, result.scores) == (4, 11, 40)


@pytest.mark.parametrize("seed", range(5))
def test_random_judge_tables_match_the_krippendorff_package(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0, 1, 25)
    matrix = np.clip(truth + rng.normal(0, 0.2, (3, 25)), 0, 1)
    matrix[rng.uniform(size=matrix.shape) < 0.2] = np.nan
    ratings = [[None if np.isnan(v) else float(v) for v in row] for row in matrix]
    reference = krippendorff.alpha(reliability_data=matrix, level_of_measurement="interval")
    assert krippendorff_alpha(ratings).alpha == pytest.approx(reference)


@pytest.mark.slow
def test_item_bootstrap_matches_scipy_bootstrap_over_items() -> None:
    matrix = _as_array(TEXTBOOK)[:, :11]
    result = krippendorff_alpha(matrix.tolist(), resamples=4000, seed=5)
    assert result.interval is not None and result.interval.unit == "item"

    def alpha_of(items: np.ndarray) -> float:
        sample = matrix[:, items.astype(int)]
        return krippendorff.alpha(reliability_data=sample, level_of_measurement="interval")

    reference = scipy_stats.bootstrap(
        (np.arange(11),),
        alpha_of,
        n_resamples=4000,
        method="percentile",
        vectorized=False,
        rng=np.random.default_rng(0),
    ).confidence_interval
    assert result.interval.low == pytest.approx(reference.low, abs=0.05)
    assert result.interval.high == pytest.approx(reference.high, abs=0.02)


def test_no_variation_or_no_pairs_gives_no_alpha() -> None:
    assert krippendorff_alpha([[1.0, 1.0], [1.0, 1.0]]).alpha is None
    lonely = krippendorff_alpha([[1.0, None], [None, 0.5]])
    assert lonely.alpha is None and lonely.items == 0
    with pytest.raises(ValueError):
        krippendorff_alpha([[1.0, 2.0], [1.0]])
    result = krippendorff_alpha(TEXTBOOK, resamples=200)
    assert JudgeAgreement.model_validate(json.loads(result.model_dump_json())) == result


def test_score_ranges_per_run() -> None:
    ranges = score_ranges(TEXTBOOK)
    matrix = _as_array(TEXTBOOK)
    counts = (~np.isnan(matrix)).sum(axis=0)
    expected = np.nanmax(matrix, axis=0) - np.nanmin(matrix, axis=0)
    for got, want, count in zip(ranges, expected, counts, strict=True):
        assert got == (pytest.approx(want) if count >= 2 else None)

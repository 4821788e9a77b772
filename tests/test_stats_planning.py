"""Minimum detectable effect and runs needed at the corrected alpha (issue 12, item 2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from pytest_scylla.stats import (
    corrected_alpha,
    minimum_detectable_effect,
    minimum_detectable_pass_rate_difference,
    runs_needed_per_group,
)
from pytest_scylla.stats.core import _runs_from_delta


def _simulated_power(delta: float, n_a: int, n_b: int, alpha: float, reps: int = 2000) -> float:
    """Rejection rate of scipy's Mann-Whitney on normal groups with true Cliff's delta."""
    # For normal groups with unit variance, P(X > Y) = Phi(shift / sqrt(2)).
    shift = math.sqrt(2) * scipy_stats.norm.ppf((delta + 1) / 2)
    rng = np.random.default_rng(0)
    a = rng.normal(shift, 1.0, size=(reps, n_a))
    b = rng.normal(0.0, 1.0, size=(reps, n_b))
    p = scipy_stats.mannwhitneyu(a, b, axis=1, method="asymptotic").pvalue
    return float(np.mean(p < alpha))


def test_corrected_alpha_is_holms_first_step() -> None:
    assert corrected_alpha(0.05, 11) == pytest.approx(0.05 / 11)
    with pytest.raises(ValueError):
        corrected_alpha(0.05, 0)
    with pytest.raises(ValueError):
        corrected_alpha(1.5, 3)


def test_minimum_detectable_effect_by_hand_and_by_simulation() -> None:
    alpha = corrected_alpha(0.05, 11)
    effect = minimum_detectable_effect(30, 30, alpha)
    z_sum = scipy_stats.norm.ppf(1 - alpha / 2) + scipy_stats.norm.ppf(0.8)
    assert effect.cliffs_delta == pytest.approx(2 * z_sum / math.sqrt(12 * 30 * 30 / 60))
    assert effect.superiority == pytest.approx((effect.cliffs_delta + 1) / 2)  # type: ignore[operator]
    assert effect.alpha == alpha
    # The promise: a true effect of that size is found about 80% of the time at that alpha.
    assert 0.74 < _simulated_power(effect.cliffs_delta, 30, 30, alpha) < 0.88  # type: ignore[arg-type]


def test_minimum_detectable_effect_none_when_nothing_is_detectable() -> None:
    # 3 vs 3 runs at .05 / 11: even complete separation has exact p = 0.1.
    effect = minimum_detectable_effect(3, 3, corrected_alpha(0.05, 11))
    assert effect.cliffs_delta is None and effect.superiority is None
    # 5 vs 5 at .05: the formula asks for delta > 1.
    assert minimum_detectable_effect(5, 5, 0.05).cliffs_delta is None
    assert minimum_detectable_effect(10, 10, 0.05).cliffs_delta is not None
    with pytest.raises(ValueError):
        minimum_detectable_effect(0, 5, 0.05)


def test_runs_needed_at_corrected_alpha_by_simulation() -> None:
    alpha = corrected_alpha(0.05, 6)
    n = runs_needed_per_group(0.5, alpha)
    assert n is not None and n == _runs_from_delta(0.5, 0.8, alpha)
    assert n > runs_needed_per_group(0.5, 0.05)  # type: ignore[operator]
    assert 0.74 < _simulated_power(0.5, n, n, alpha) < 0.88
    assert runs_needed_per_group(0.0, alpha) is None
    # The exact floor: 2 / C(2n, n) <= alpha needs n >= 6 at .05 / 11.
    assert runs_needed_per_group(1.0, corrected_alpha(0.05, 11)) >= 6  # type: ignore[operator]
    with pytest.raises(ValueError):
        runs_needed_per_group(1.5, 0.05)


@pytest.mark.parametrize(
    ("baseline", "n_a", "n_b"), [(0.3, 10, 10), (0.5, 40, 25), (0.05, 200, 200)]
)
def test_detectable_pass_rate_difference_matches_statsmodels(
    baseline: float, n_a: int, n_b: int
) -> None:
    alpha = corrected_alpha(0.05, 3)
    difference = minimum_detectable_pass_rate_difference(baseline, n_a, n_b, alpha)
    assert difference is not None
    h = NormalIndPower().solve_power(
        effect_size=None, nobs1=n_a, alpha=alpha, power=0.8, ratio=n_b / n_a
    )
    assert proportion_effectsize(baseline + difference, baseline) == pytest.approx(h, rel=1e-4)


def test_detectable_pass_rate_difference_none_when_out_of_reach() -> None:
    assert minimum_detectable_pass_rate_difference(0.8, 5, 5, 0.01) is None
    with pytest.raises(ValueError):
        minimum_detectable_pass_rate_difference(1.2, 5, 5, 0.01)

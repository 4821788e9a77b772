"""pass^k against brute force, and the error sensitivity summary (issue 12, item 4)."""

from __future__ import annotations

import itertools

import pytest

from pytest_scylla.stats import error_sensitivity, pass_at_k, pass_hat_k, wilson_interval


def _pass_hat_k_brute_force(n: int, c: int, k: int) -> float:
    """Fraction of all k-subsets of n runs (c of them passing) in which every run passes."""
    runs = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(all(runs[i] for i in subset) for subset in subsets) / len(subsets)


@pytest.mark.parametrize(
    ("n", "c", "k"),
    [(n, c, k) for n in range(1, 8) for c in range(n + 1) for k in range(1, n + 1)],
)
def test_pass_hat_k_matches_brute_force(n: int, c: int, k: int) -> None:
    assert pass_hat_k(n, c, k) == pytest.approx(_pass_hat_k_brute_force(n, c, k), abs=1e-12)
    # Reliability never exceeds capability.
    assert pass_hat_k(n, c, k) <= pass_at_k(n, c, k) + 1e-12


def test_pass_hat_k_hand_values_and_errors() -> None:
    assert pass_hat_k(10, 7, 1) == pytest.approx(0.7)
    assert pass_hat_k(10, 7, 3) == pytest.approx(35 / 120)  # C(7,3) / C(10,3)
    assert 0.0 < pass_hat_k(2000, 1999, 1000) < 1.0
    with pytest.raises(ValueError, match="undefined"):
        pass_hat_k(3, 3, 5)
    with pytest.raises(ValueError):
        pass_hat_k(3, 4, 1)


def test_error_sensitivity_counts_errors_as_failures() -> None:
    result = error_sensitivity(passes=6, judged=8, errors=2)
    assert result.pass_rate is not None and result.errors_as_failures is not None
    assert result.pass_rate.estimate == pytest.approx(0.75)
    assert result.errors_as_failures.estimate == pytest.approx(0.6)
    assert (result.errors_as_failures.low, result.errors_as_failures.high) == pytest.approx(
        wilson_interval(6, 10)
    )
    only_errors = error_sensitivity(passes=0, judged=0, errors=3)
    assert only_errors.pass_rate is None
    assert only_errors.errors_as_failures is not None
    assert only_errors.errors_as_failures.estimate == 0.0
    assert error_sensitivity(0, 0, 0).errors_as_failures is None
    with pytest.raises(ValueError):
        error_sensitivity(passes=3, judged=2, errors=0)

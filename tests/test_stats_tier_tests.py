"""compare_tiers: the chain over empty tiers, exact p, gating and planning (issue 12)."""

from __future__ import annotations

import random

import pytest

from pytest_scylla.stats import (
    TierTests,
    cliffs_delta,
    compare_tiers,
    comparison_pairs,
    holm_correction,
    kruskal_wallis,
    minimum_detectable_effect,
    rank_sum_test,
    runs_needed_per_group,
)


def test_pairs_previous_with_runs_then_baseline() -> None:
    names = ["T0", "T1", "T2", "T3", "T4"]
    assert comparison_pairs(names, [True] * 5) == [
        (0, 1), (1, 2), (0, 2), (2, 3), (0, 3), (3, 4), (0, 4)
    ]  # fmt: skip
    # T2 without runs: T1 vs T3 is tested, the chain goes on over the gap.
    assert comparison_pairs(names, [True, True, False, True, True]) == [
        (0, 1), (1, 3), (0, 3), (3, 4), (0, 4)
    ]  # fmt: skip
    # No baseline runs: only the chain.
    assert comparison_pairs(names, [False, True, True, False, True]) == [(1, 2), (2, 4)]


def test_issue_example_empty_tier_no_longer_breaks_the_chain() -> None:
    groups = {
        "T0": [0.1, 0.2, 0.2, 0.3, 0.4, 0.1],
        "T1": [0.5, 0.6, 0.5, 0.7, 0.8, 0.6],
        "T2": [],
        "T3": [0.9, 1.0, 1.0, 0.9, 1.0, 1.0],
    }
    result = compare_tiers(groups)
    rows = [(c.group_a, c.group_b, c.previous, c.baseline) for c in result.comparisons]
    assert rows == [
        ("T0", "T1", True, True),
        ("T1", "T3", True, False),
        ("T0", "T3", False, True),
    ]
    assert result.empty_groups == ["T2"]
    assert result.corrected_alpha == pytest.approx(0.05 / 3)
    omnibus = kruskal_wallis([groups["T0"], groups["T1"], groups["T3"]])
    assert result.omnibus == omnibus


def test_rows_hold_exact_p_holm_effects_and_planning() -> None:
    groups = {
        "T0": [0.0, 0.5, 0.5, 0.25, 1.0, 0.0, 0.5],
        "T1": [1.0, 1.0, 0.75, 0.5, 1.0, 1.0],
        "T2": [1.0, 0.0, 1.0],
    }
    result = compare_tiers(groups, seed=4)
    tests = [rank_sum_test(groups[c.group_a], groups[c.group_b]) for c in result.comparisons]
    assert [c.p_value for c in result.comparisons] == [t.p for t in tests]
    assert [c.method for c in result.comparisons] == ["exact"] * 3
    adjusted = holm_correction([t.p for t in tests])
    assert [c.p_adjusted for c in result.comparisons] == pytest.approx(adjusted)
    alpha = 0.05 / 3
    for c in result.comparisons:
        a, b = groups[c.group_a], groups[c.group_b]
        assert c.cliffs_delta.estimate == pytest.approx(cliffs_delta(a, b))
        assert c.cliffs_delta.low <= c.cliffs_delta.estimate <= c.cliffs_delta.high
        assert c.detectable_delta == minimum_detectable_effect(len(a), len(b), alpha).cliffs_delta
        assert c.runs_needed == runs_needed_per_group(c.cliffs_delta.estimate, alpha)
        assert c.too_few_runs == (min(len(a), len(b)) < 5)
        assert c.significant == (c.p_adjusted < 0.05 and not c.too_few_runs)
    t1_t2 = result.comparisons[1]
    assert t1_t2.too_few_runs and t1_t2.cliffs_delta.small_sample
    assert t1_t2.note is not None and "6 vs 3" in t1_t2.note


def test_issue_tied_example_is_not_significant_and_small_is_never_significant() -> None:
    result = compare_tiers({"T0": [1, 1, 1], "T1": [0, 0, 0]})
    (row,) = result.comparisons
    assert row.p_value == pytest.approx(0.1) and not row.significant
    separated = compare_tiers({"T0": [0.0] * 4, "T1": [1.0] * 40})
    (row,) = separated.comparisons
    assert row.p_value < 0.001 and row.too_few_runs and not row.significant
    big = compare_tiers({"T0": [0.0] * 5 + [0.5], "T1": [1.0] * 6})
    assert big.comparisons[0].significant


def test_degenerate_inputs_and_json_round_trip() -> None:
    assert compare_tiers({}).comparisons == []
    lonely = compare_tiers({"T0": [1.0], "T1": []})
    assert lonely.comparisons == [] and lonely.omnibus is None and lonely.corrected_alpha is None
    result = compare_tiers({"T0": [0.2, 0.4, 0.4], "T1": [0.9, 0.4, 1.0, 1.0]}, seed=2)
    assert TierTests.model_validate_json(result.model_dump_json()) == result
    assert compare_tiers({"T0": [0.2, 0.4, 0.4], "T1": [0.9, 0.4, 1.0, 1.0]}, seed=2) == result


def test_the_omnibus_drawn_in_another_thread_gives_the_same_result() -> None:
    """compare_tiers(threads=2) draws the Kruskal-Wallis permutations beside the pairwise
    tests: each has its own seeded draws, so nothing changes but the time."""
    rng = random.Random(7)
    groups = {
        f"T{tier}": [rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]) for _ in range(40 + 10 * tier)]
        for tier in range(5)
    }
    groups["T2"] = []  # an empty tier in the chain
    alone = compare_tiers(groups, resamples=2_000, seed=3)
    beside = compare_tiers(groups, resamples=2_000, seed=3, threads=2)
    assert beside == alone
    assert alone.omnibus is not None and alone.omnibus.method == "permutation"
    assert compare_tiers({"T0": [1.0, 0.5]}, threads=2).omnibus is None  # one tier: none

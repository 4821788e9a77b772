"""Tests for pytest_scylla.stats: hand-computed values, scipy, and upstream's exports."""

from __future__ import annotations

import csv
import itertools
import json
import math

import numpy as np
import pytest
from conftest import UPSTREAM
from scipy import stats as scipy_stats

from pytest_scylla import stats
from pytest_scylla.stats import (
    SummaryStats,
    bootstrap_ci,
    cliffs_delta,
    cliffs_magnitude,
    compare_groups,
    cost_of_pass,
    holm_correction,
    mann_whitney,
    mann_whitney_power,
    pass_at_k,
    runs_needed_for_power,
    summarize,
    too_few_runs,
    too_few_runs_note,
    wilcoxon_paired,
    wilson_interval,
)

ANALYSIS = UPSTREAM / "dryrun-test-001-analysis"


# --- Wilson ---------------------------------------------------------------------------------


def test_wilson_seven_of_ten_matches_published_value() -> None:
    # 7/10 at 95%: (0.3968, 0.8922) in standard tables (e.g. Newcombe 1998, method 3).
    low, high = wilson_interval(7, 10)
    assert low == pytest.approx(0.39678, abs=1e-5)
    assert high == pytest.approx(0.89221, abs=1e-5)


def test_wilson_extremes_stay_in_unit_interval() -> None:
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.27753, abs=1e-5))
    assert wilson_interval(10, 10) == (pytest.approx(0.72247, abs=1e-5), 1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_wider_at_higher_confidence() -> None:
    low95, high95 = wilson_interval(5, 10, 0.95)
    low99, high99 = wilson_interval(5, 10, 0.99)
    assert low99 < low95 and high99 > high95


@pytest.mark.parametrize(("passes", "n"), [(-1, 5), (6, 5), (1, -1)])
def test_wilson_rejects_impossible_counts(passes: int, n: int) -> None:
    with pytest.raises(ValueError):
        wilson_interval(passes, n)


# --- bootstrap ------------------------------------------------------------------------------


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    values = [0.1, 0.4, 0.35, 0.8, 0.9, 0.2, 0.55]
    assert bootstrap_ci(values, seed=7) == bootstrap_ci(values, seed=7)
    assert bootstrap_ci(values, seed=7) != bootstrap_ci(values, seed=8)


@pytest.mark.parametrize("statistic", ["mean", "median"])
def test_bootstrap_interval_brackets_the_estimate(statistic: stats.Statistic) -> None:
    values = [0.1, 0.4, 0.35, 0.8, 0.9, 0.2, 0.55, 0.6]
    low, high = bootstrap_ci(values, statistic)
    point = np.mean(values) if statistic == "mean" else np.median(values)
    assert min(values) <= low <= point <= high <= max(values)


def test_bootstrap_degenerate_inputs() -> None:
    assert bootstrap_ci([0.7]) == (0.7, 0.7)
    assert bootstrap_ci([0.5, 0.5, 0.5], "median") == (0.5, 0.5)
    with pytest.raises(ValueError):
        bootstrap_ci([])
    with pytest.raises(ValueError):
        bootstrap_ci([1.0, math.nan])
    with pytest.raises(ValueError, match="statistic"):
        bootstrap_ci([1.0, 2.0], "mode")  # type: ignore[arg-type]


# --- pass@k ---------------------------------------------------------------------------------


def _pass_at_k_brute_force(n: int, c: int, k: int) -> float:
    """Fraction of all k-subsets of n runs (c of them passing) that contain a pass."""
    runs = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(runs[i] for i in subset) for subset in subsets) / len(subsets)


@pytest.mark.parametrize(
    ("n", "c", "k"),
    [(n, c, k) for n in range(1, 8) for c in range(n + 1) for k in range(1, n + 1)],
)
def test_pass_at_k_matches_brute_force(n: int, c: int, k: int) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(_pass_at_k_brute_force(n, c, k), abs=1e-12)


def test_pass_at_k_hand_values() -> None:
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    # 1 - C(2,2)/C(4,2) = 1 - 1/6
    assert pass_at_k(4, 2, 2) == pytest.approx(5 / 6)
    # Large n stays finite where C(n, k) would overflow a float.
    assert 0.0 < pass_at_k(2000, 1, 1000) <= 1.0


def test_pass_at_k_rejects_k_above_n() -> None:
    with pytest.raises(ValueError, match="undefined"):
        pass_at_k(3, 1, 5)


# --- Cost-of-Pass ---------------------------------------------------------------------------


def test_cost_of_pass() -> None:
    assert cost_of_pass(0.5, 0.25) == pytest.approx(2.0)
    assert cost_of_pass(0.5, 0.0) == math.inf
    with pytest.raises(ValueError):
        cost_of_pass(-1.0, 0.5)


# --- two-group tests ------------------------------------------------------------------------


def test_cliffs_delta_by_hand() -> None:
    # a=1: <,<,< (-3); a=2: =,=,< (-1); a=3: >,>,< (+1)  ->  -3 / 9
    assert cliffs_delta([1, 2, 3], [2, 2, 4]) == pytest.approx(-1 / 3)
    assert cliffs_delta([5, 6], [1, 2]) == 1.0
    assert cliffs_delta([1, 1], [1, 1]) == 0.0


@pytest.mark.parametrize(
    ("delta", "label"),
    [
        (0.0, "negligible"),
        (0.146, "negligible"),
        (-0.147, "small"),
        (0.329, "small"),
        (0.33, "medium"),
        (-0.473, "medium"),
        (0.474, "large"),
        (-1.0, "large"),
    ],
)
def test_cliffs_magnitude_romano_thresholds(delta: float, label: str) -> None:
    assert cliffs_magnitude(delta) == label


def test_holm_hand_example() -> None:
    # sorted: .005*4=.02, .01*3=.03, .03*2=.06, .04*1=.04 -> running max keeps .06
    adjusted = holm_correction([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_correction([0.5, 0.6]) == [1.0, 1.0]
    assert holm_correction([]) == []


def test_holm_is_monotone_and_capped() -> None:
    raw = list(np.random.default_rng(3).uniform(0, 1, 30))
    adjusted = holm_correction(raw)
    in_raw_order = [adjusted[i] for i in np.argsort(raw)]
    assert in_raw_order == sorted(in_raw_order)
    assert all(a >= r for a, r in zip(adjusted, raw, strict=True))
    assert max(adjusted) <= 1.0


def test_mann_whitney_agrees_with_scipy() -> None:
    a = [0.2, 0.5, 0.4, 0.9, 0.3, 0.35]
    b = [0.6, 0.7, 0.65, 0.95, 0.8]
    expected = scipy_stats.mannwhitneyu(a, b, alternative="two-sided")
    result = mann_whitney(a, b)
    assert result.u == pytest.approx(expected.statistic)
    assert result.p == pytest.approx(expected.pvalue)
    assert (result.n_a, result.n_b) == (6, 5)


def test_mann_whitney_all_equal_is_not_significant() -> None:
    result = mann_whitney([1.0] * 5, [1.0] * 5)
    assert result.p == 1.0
    with pytest.raises(ValueError):
        mann_whitney([], [1.0])


def test_wilcoxon_paired_agrees_with_scipy() -> None:
    a = [0.9, 0.8, 0.75, 0.6, 0.95, 0.7, 0.85]
    b = [0.7, 0.82, 0.5, 0.4, 0.9, 0.71, 0.6]
    expected = scipy_stats.wilcoxon(a, b)
    result = wilcoxon_paired(a, b)
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p == pytest.approx(expected.pvalue)
    assert (result.n_pairs, result.n_nonzero) == (7, 7)


def test_wilcoxon_paired_edge_cases() -> None:
    same = wilcoxon_paired([0.5, 0.6], [0.5, 0.6])
    assert (same.statistic, same.p, same.n_nonzero) == (0.0, 1.0, 0)
    with pytest.raises(ValueError, match="length"):
        wilcoxon_paired([1.0], [1.0, 2.0])


# --- power ----------------------------------------------------------------------------------


def test_runs_needed_for_power_noether_by_hand() -> None:
    z_sum = 1.959964 + 0.841621
    # Complete separation: delta = 1, |p' - 1/2| = 1/2 -> N = z^2 / (3/4), per group N/2.
    assert runs_needed_for_power([1, 2, 3], [4, 5, 6]) == math.ceil(z_sum**2 / 0.75 / 2)
    # No effect: 1 vs 2,2 (<,<), 3 vs 2,2 (>,>) -> delta 0 -> no finite answer.
    assert cliffs_delta([1, 3], [2, 2]) == 0.0
    assert runs_needed_for_power([1, 3], [2, 2]) is None
    # [2, 4] vs [1, 3]: >,<,>,> -> delta 0.5, |p' - 1/2| = 1/4 -> N = z^2 / (3/16).
    assert cliffs_delta([2, 4], [1, 3]) == 0.5
    assert runs_needed_for_power([2, 4], [1, 3]) == math.ceil(z_sum**2 / (3 / 16) / 2)


def test_runs_needed_respects_exact_test_floor() -> None:
    # With 3 runs per group the exact two-sided p can never go below 2/C(6,3) = 0.1.
    assert runs_needed_for_power([1], [2], alpha=0.05) >= 4  # type: ignore[operator]


def test_recommended_runs_give_about_80_percent_power_by_simulation() -> None:
    # Normal groups shifted so that the true P(X > Y) = 0.75 (delta = 0.5).
    shift = math.sqrt(2) * scipy_stats.norm.ppf(0.75)
    n = runs_needed_for_power([2, 4], [1, 3])
    assert n is not None
    rng = np.random.default_rng(0)
    a = rng.normal(shift, 1.0, size=(2000, n))
    b = rng.normal(0.0, 1.0, size=(2000, n))
    p = scipy_stats.mannwhitneyu(a, b, axis=1, alternative="two-sided").pvalue
    assert 0.75 < float(np.mean(p < 0.05)) < 0.88


def test_mann_whitney_power_matches_formula_and_null() -> None:
    # delta = 0.5 with n = 2 vs 2: lam = 0.25 * sqrt(12 * 4 / 4)
    lam = 0.25 * math.sqrt(12.0)
    expected = scipy_stats.norm.cdf(lam - 1.959964) + scipy_stats.norm.cdf(-lam - 1.959964)
    assert mann_whitney_power([2, 4], [1, 3]) == pytest.approx(expected, abs=1e-6)
    assert mann_whitney_power([1, 3], [2, 2]) == pytest.approx(0.05)


def test_too_few_runs() -> None:
    assert too_few_runs(4, 10)
    assert not too_few_runs(5, 5)
    assert too_few_runs_note(5, 6) is None
    note = too_few_runs_note(3, 2)
    assert note is not None and "3 vs 2" in note


# --- summarize ------------------------------------------------------------------------------


def test_summarize_typical_group() -> None:
    summary = summarize(
        scores=[0.9, 0.5, 0.7, 0.2, 0.8],
        passed=[True, False, True, False, True],
        costs=[0.10, 0.20, 0.30, 0.40, 0.50],
        durations=[10.0, 20.0, 30.0, 40.0, 50.0],
        tokens=[100, 200, 300, 400, 500],
    )
    assert (summary.n, summary.passes, summary.pass_rate) == (5, 3, 0.6)
    assert summary.pass_rate_ci == pytest.approx(wilson_interval(3, 5))
    assert summary.mean_score == pytest.approx(0.62)
    assert summary.median_score == pytest.approx(0.7)
    assert summary.score_std == pytest.approx(np.std([0.9, 0.5, 0.7, 0.2, 0.8], ddof=1))
    assert (summary.score_min, summary.score_max) == (0.2, 0.9)
    assert set(summary.pass_at_k) == {1, 3, 5}
    assert summary.pass_at_k[1] == pytest.approx(0.6)
    assert summary.pass_at_k[5] == 1.0
    assert summary.cost_of_pass == pytest.approx(0.30 / 0.6)
    assert summary.total_cost == pytest.approx(1.5)
    assert summary.median_cost == pytest.approx(0.3)
    assert (summary.mean_tokens, summary.total_tokens) == (300.0, 1500)
    assert (summary.mean_duration, summary.median_duration) == (30.0, 30.0)
    assert summary.mean_score_ci is not None
    assert summary.mean_score_ci[0] <= 0.62 <= summary.mean_score_ci[1]


def test_summarize_no_runs() -> None:
    summary = summarize([], [], [], [], [])
    assert summary.n == 0
    assert summary.pass_rate is None
    assert summary.pass_rate_ci == (0.0, 1.0)
    assert summary.mean_score is None and summary.mean_score_ci is None
    assert summary.pass_at_k == {}
    assert summary.cost_of_pass is None and not summary.cost_of_pass_infinite
    assert summary.total_cost == 0.0


def test_summarize_flags_small_sample_intervals() -> None:
    assert summarize([0.8], [True], [0.2], [5.0], [42]).small_sample_intervals
    assert not summarize([], [], [], [], []).small_sample_intervals
    five = summarize([0.5] * 5, [True] * 5, [0.1] * 5, [1.0] * 5, [1] * 5)
    assert not five.small_sample_intervals


def test_summarize_one_run() -> None:
    summary = summarize([0.8], [True], [0.2], [5.0], [42])
    assert summary.mean_score_ci == (0.8, 0.8)
    assert summary.score_std is None
    assert summary.pass_at_k == {1: 1.0}


def test_summarize_infinite_cost_of_pass_round_trips_through_json() -> None:
    summary = summarize([0.1, 0.2], [False, False], [1.0, 2.0], [1.0, 1.0], [1, 1])
    assert summary.cost_of_pass == math.inf
    assert summary.cost_of_pass_infinite
    written = json.loads(summary.model_dump_json())
    assert written["cost_of_pass"] is None and written["cost_of_pass_infinite"] is True
    assert SummaryStats.model_validate_json(summary.model_dump_json()) == summary


def test_summary_flag_must_match_value() -> None:
    data = summarize([0.9], [True], [1.0], [1.0], [1]).model_dump()
    with pytest.raises(ValueError):
        SummaryStats.model_validate({**data, "cost_of_pass_infinite": True})


def test_summarize_rejects_ragged_lists() -> None:
    with pytest.raises(ValueError, match="equal lengths"):
        summarize([0.1], [True, False], [0.1], [1.0], [1])


# --- compare_groups -------------------------------------------------------------------------


def test_compare_groups_pairs_and_holm() -> None:
    groups = {
        "T0": [0.1, 0.2, 0.3, 0.4, 0.5],
        "T1": [0.5, 0.6, 0.7, 0.8, 0.9],
        "T2": [0.2, 0.3],
        "T3": [0.6, 0.7, 0.8, 0.9, 1.0],
    }
    comparisons = compare_groups(groups)
    pairs = [(c.group_a, c.group_b) for c in comparisons]
    assert pairs == [("T0", "T1"), ("T1", "T2"), ("T2", "T3"), ("T0", "T2"), ("T0", "T3")]
    first = comparisons[0]
    assert first.consecutive and first.vs_first
    assert not comparisons[1].vs_first and not comparisons[3].consecutive
    raw = [c.p_value for c in comparisons]
    assert [c.p_adjusted for c in comparisons] == pytest.approx(holm_correction(raw))  # type: ignore[arg-type]
    assert first.u_statistic == mann_whitney(groups["T0"], groups["T1"]).u
    assert first.cliffs_delta == pytest.approx(cliffs_delta(groups["T0"], groups["T1"]))
    assert first.magnitude == "large"
    for c in comparisons:
        expected = c.p_adjusted is not None and c.p_adjusted < 0.05 and not c.too_few_runs
        assert c.significant == expected
    t2 = comparisons[1]
    assert t2.too_few_runs and t2.note is not None and "too few runs" in t2.note
    assert not first.too_few_runs and first.note is None
    assert first.runs_needed_for_power is not None and first.power is not None


def test_compare_groups_issue_12_tied_example_is_exact_and_not_significant() -> None:
    # Before: p = 0.047 from the normal approximation and "significant" beside "too few runs".
    (row,) = compare_groups({"T0": [1, 1, 1], "T1": [0, 0, 0]})
    assert row.p_value == pytest.approx(0.1) and row.method == "exact"
    assert row.too_few_runs and not row.significant


def test_compare_groups_never_significant_below_the_minimum() -> None:
    # 4 vs 20 completely separated runs: exact p = 2 / C(24, 4) = 0.0002, yet 4 runs < 5.
    (row,) = compare_groups({"T0": [0.0, 0.1, 0.2, 0.3], "T1": [0.5 + i / 100 for i in range(20)]})
    assert row.p_adjusted is not None and row.p_adjusted < 0.001
    assert row.too_few_runs and not row.significant


def test_compare_groups_plans_power_at_the_corrected_alpha() -> None:
    groups = {f"T{i}": [0.1 * i + 0.05 * k for k in range(6)] for i in range(4)}
    comparisons = compare_groups(groups)
    corrected = 0.05 / len(comparisons)
    for c in comparisons:
        assert c.cliffs_delta is not None
        assert c.runs_needed_for_power == runs_needed_for_power(
            groups[c.group_a], groups[c.group_b], alpha=corrected
        )
        assert c.power == pytest.approx(
            stats.core._power_from_delta(c.cliffs_delta, 6, 6, corrected)
        )
        assert c.detectable_delta is None or 0 < c.detectable_delta <= 1


def test_compare_groups_all_equal_and_empty() -> None:
    comparisons = compare_groups({"A": [1.0] * 5, "B": [1.0] * 5, "C": []})
    equal, empty_b, empty_c = comparisons
    assert equal.p_value == 1.0 and equal.cliffs_delta == 0.0
    assert equal.magnitude == "negligible" and equal.runs_needed_for_power is None
    assert not equal.significant
    assert empty_b.p_value is None and empty_b.p_adjusted is None
    assert empty_b.note is not None and "no runs" in empty_b.note
    assert empty_c.group_b == "C"
    assert compare_groups({"only": [1.0]}) == []


# --- cross-check against upstream's exported analysis ---------------------------------------

needs_upstream = pytest.mark.skipif(not ANALYSIS.is_dir(), reason="upstream data not present")


def _upstream_runs() -> list[dict[str, str]]:
    with (ANALYSIS / "runs.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _summarize_rows(rows: list[dict[str, str]]) -> SummaryStats:
    return summarize(
        scores=[float(r["score"]) for r in rows],
        passed=[r["passed"] == "True" for r in rows],
        costs=[float(r["cost_usd"]) for r in rows],
        # Upstream's mean_duration is over duration_seconds (agent + judge wall time).
        durations=[float(r["duration_seconds"]) for r in rows],
        tokens=[int(r["total_tokens"]) for r in rows],
    )


@needs_upstream
def test_summarize_matches_upstream_overall_stats() -> None:
    # summary.json is written with NaN literals, which json.loads accepts.
    summary = json.loads((ANALYSIS / "summary.json").read_text())
    (model_stats,) = summary["by_model"].values()
    ours = _summarize_rows(_upstream_runs())
    assert ours.n == model_stats["total_runs"]
    assert ours.pass_rate == pytest.approx(model_stats["pass_rate"])
    assert ours.mean_score == pytest.approx(model_stats["mean_score"])
    assert ours.median_score == pytest.approx(model_stats["median_score"])
    # Upstream's std_score is the sample standard deviation (ddof=1), as ours.
    assert ours.score_std == pytest.approx(model_stats["std_score"])
    assert ours.score_min == pytest.approx(model_stats["min_score"])
    assert ours.score_max == pytest.approx(model_stats["max_score"])
    assert ours.total_cost == pytest.approx(model_stats["total_cost"])
    assert ours.mean_cost == pytest.approx(model_stats["mean_cost_per_run"])
    assert ours.median_cost == pytest.approx(model_stats["median_cost"])
    # Upstream's "cop" is Cost-of-Pass with the same definition (mean cost / pass rate).
    assert ours.cost_of_pass == pytest.approx(model_stats["cop"])
    assert ours.total_tokens == model_stats["total_tokens"]
    assert ours.mean_duration == pytest.approx(model_stats["mean_duration"])


@needs_upstream
def test_summarize_matches_upstream_per_tier() -> None:
    summary = json.loads((ANALYSIS / "summary.json").read_text())
    descriptives = json.loads((ANALYSIS / "statistical_results.json").read_text())
    cop_by_tier = {d["tier"]: d["cop"] for d in descriptives["tier_descriptives"]}
    rows = _upstream_runs()
    for tier, expected in summary["by_tier"].items():
        ours = _summarize_rows([r for r in rows if r["tier"] == tier])
        assert ours.n == expected["total_runs"]
        assert ours.pass_rate == pytest.approx(expected["pass_rate"])
        assert ours.mean_score == pytest.approx(expected["mean_score"])
        assert ours.median_score == pytest.approx(expected["median_score"])
        assert ours.mean_cost == pytest.approx(expected["mean_cost"])
        assert ours.total_cost == pytest.approx(expected["total_cost"])
        assert ours.cost_of_pass == pytest.approx(expected["cop"])
        assert ours.cost_of_pass == pytest.approx(cop_by_tier[tier])
        # Upstream writes NaN for the std of one run; JSON cannot hold NaN, so ours is None.
        if math.isnan(expected["std_score"]):
            assert ours.score_std is None


@needs_upstream
def test_pairwise_tests_match_upstream() -> None:
    results = json.loads((ANALYSIS / "statistical_results.json").read_text())
    pairwise = [c for c in results["pairwise_comparisons"] if c["metric"] == "pass_rate"]
    rows = _upstream_runs()
    # Upstream's "pass_rate" metric compares the per-run pass flags (1/0) of two tiers.
    flags = {
        tier: [1.0 if r["passed"] == "True" else 0.0 for r in rows if r["tier"] == tier]
        for tier in {r["tier"] for r in rows}
    }
    for comparison in pairwise:
        ours = mann_whitney(flags[comparison["tier1"]], flags[comparison["tier2"]])
        assert (ours.n_a, ours.n_b) == (comparison["n1"], comparison["n2"])
        assert ours.p == pytest.approx(comparison["p_value_raw"])
        # U differs: with one run per tier and tied values upstream reports U = 0, while
        # scipy's (and our) U counts a tie as 1/2, giving 0.5. Only p is comparable here.
    # Upstream's adjusted p-values are Holm over the family of pairwise tests.
    adjusted = holm_correction([c["p_value_raw"] for c in pairwise])
    assert adjusted == pytest.approx([c["p_value"] for c in pairwise])

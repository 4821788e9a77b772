"""The aggregate's issue-12 statistics, checked against hand computations and the stats
functions they wire in (aggregate.py, aggregate_details.py, report/summary.py)."""

from __future__ import annotations

import math

import pytest
from report_factory import make_record

from pytest_scylla.aggregate import aggregate_experiment
from pytest_scylla.aggregate_details import (
    AGREEMENT_DRAW_BUDGET,
    MIN_AGREEMENT_RESAMPLES,
    RESAMPLES,
    agreement_resamples,
)
from pytest_scylla.report.summary import summarize_experiments
from pytest_scylla.stats import (
    cliffs_delta_interval,
    compare_tiers,
    hodges_lehmann,
    krippendorff_alpha,
    pass_rate_difference,
)


def test_tier_intervals_resample_sub_tests_and_fall_back_to_runs() -> None:
    records = [make_record("T0", "00", run, s) for run, s in enumerate((0.9, 0.8, 0.1), 1)]
    records += [make_record("T0", "01", run, s) for run, s in enumerate((0.7, 0.2), 1)]
    records += [make_record("T1", "00", run, s) for run, s in enumerate((0.9, 0.1), 1)]
    result = aggregate_experiment("exp", records, [])
    t0, t1 = result.tiers["T0"], result.tiers["T1"]
    assert t0.pass_rate_interval is not None and t0.pass_rate_interval.unit == "subtest"
    assert t0.pass_rate_interval.estimate == pytest.approx(3 / 5)  # pooled over runs
    assert t0.pass_rate_interval.small_sample  # two sub-tests: flagged
    assert t0.mean_score_interval is not None and t0.mean_score_interval.unit == "subtest"
    # One sub-test: nothing to resample at the cluster level; Wilson over its runs instead.
    assert t1.pass_rate_interval is not None and t1.pass_rate_interval.method == "Wilson score"
    assert t1.mean_score_interval is not None and t1.mean_score_interval.unit == "run"


def test_pass_hat_k_errors_as_failures_and_attempts() -> None:
    records = [make_record("T0", "00", run, s) for run, s in enumerate((0.9, 0.8, 0.7, 0.1), 1)]
    records.append(make_record("T0", "00", 5, None))
    records.append(make_record("T0", "00", 6, 0.95, earlier_attempt_cost=1.0))
    tier = aggregate_experiment("exp", records, []).tiers["T0"]
    # 4 passes of 5 judged runs: pass^3 = C(4,3)/C(5,3) = 4/10, pass^5 = 0.
    assert tier.pass_hat_k == {1: pytest.approx(0.8), 3: pytest.approx(0.4), 5: 0.0}
    assert tier.stats.pass_at_k[3] == pytest.approx(1.0)
    sensitivity = tier.errors_as_failures
    assert sensitivity is not None and sensitivity.errors == 1
    assert sensitivity.errors_as_failures is not None
    assert sensitivity.errors_as_failures.estimate == pytest.approx(4 / 6)
    assert tier.counts.earlier_attempts == 1
    # The earlier attempt's spend is in the run's cost: (4 x 0.25 + 1.25) / 5 judged runs.
    assert tier.cost is not None and tier.cost.mean_cost == pytest.approx(2.25 / 5)


def test_unknown_costs_and_tokens_are_left_out_and_counted() -> None:
    records = [
        make_record("T0", "00", 1, 0.9, cost=0.3),
        make_record("T0", "00", 2, 0.2, cost=None, tokens=False),
        make_record("T0", "00", 3, 0.8, cost=0.1),
    ]
    result = aggregate_experiment("exp", records, [])
    tier = result.tiers["T0"]
    assert tier.cost is not None
    assert (tier.cost.cost_known, tier.cost.tokens_known, tier.cost.runs) == (2, 2, 3)
    assert tier.cost.mean_cost == pytest.approx(0.2)  # (0.3 + 0.1) / 2, not / 3
    assert tier.stats.mean_cost == pytest.approx(0.2) and tier.stats.mean_tokens == 150
    cost_of_pass = tier.cost.cost_of_pass
    assert cost_of_pass is not None and cost_of_pass.estimate == pytest.approx(0.2)  # both passed
    assert tier.cost.mean_tokens_by_kind["output_tokens"] == 50
    run = tier.subtests["00"].runs[1]
    assert run.agent_cost_usd is None and run.tokens is None
    # Nothing known at all: n/a, not $0.
    nothing = [make_record("T0", "00", 1, 0.9, cost=None, tokens=False)]
    stats = aggregate_experiment("exp", nothing, []).tiers["T0"].stats
    assert stats.mean_cost is None and stats.cost_of_pass is None and stats.mean_tokens is None


def test_tier_cost_of_pass_resamples_sub_tests() -> None:
    records = [make_record("T0", "00", run, 0.9, cost=0.2) for run in (1, 2)]
    records += [make_record("T0", "01", run, s, cost=0.4) for run, s in enumerate((0.9, 0.1), 1)]
    tier = aggregate_experiment("exp", records, []).tiers["T0"]
    interval = tier.cost.cost_of_pass if tier.cost else None
    assert interval is not None and interval.unit == "subtest"
    # By hand: total 1.2 over 3 passes. A resample of sub-test 00 twice: 0.8 / 4 = 0.2; of
    # 01 twice: 1.6 / 2 = 0.8: the interval lies within [0.2, 0.8].
    assert interval.estimate == pytest.approx(0.4)
    assert 0.2 - 1e-12 <= interval.low <= interval.high <= 0.8 + 1e-12


def test_comparisons_wire_compare_tiers_and_the_effects() -> None:
    scores = {"T0": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "T1": [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]}
    records = [
        make_record(tier, "00", run, score)
        for tier, values in scores.items()
        for run, score in enumerate(values, 1)
    ]
    result = aggregate_experiment("exp", records, [])
    assert result.tier_tests == compare_tiers(scores)
    [effect] = result.effects
    assert effect.shift == hodges_lehmann(scores["T1"], scores["T0"])
    assert effect.pass_rate_difference == pass_rate_difference(5, 6, 1, 6)  # later - earlier
    [test] = result.tier_tests.comparisons
    assert test.cliffs_delta == cliffs_delta_interval(scores["T0"], scores["T1"])
    assert test.runs_needed is not None and test.detectable_delta is not None


def test_criteria_judges_and_agreement() -> None:
    records = [make_record("T0", "00", run, s) for run, s in enumerate((1.0, 0.5), 1)]
    records.append(make_record("T0", "00", 3, 0.5, failed_judge=True))
    result = aggregate_experiment("exp", records, [])
    tier = result.tiers["T0"]
    # functional = score; quality = mean over judges of Q1 (b scores 0.1 lower; b failed in
    # run 3): (0.95 + 0.45 + 0.5) / 3.
    assert tier.categories["functional"].mean == pytest.approx(2.0 / 3)
    assert tier.categories["quality"].mean == pytest.approx((0.95 + 0.45 + 0.5) / 3)
    assert tier.items["F1"].runs == 3 and tier.items["F1"].category == "functional"
    assert result.judges["judge-b"].failed == 1 and result.judges["judge-b"].asked == 3
    assert result.judges["judge-a"].mean_score == pytest.approx((1.0 + 0.5 + 0.5) / 3)
    # Agreement: judges x (run, item) fractions of max points, failed judge missing.
    ratings = [
        [1.0, 1.0, 0.5, 0.5, 0.5, 0.5],
        [1.0, 0.9, 0.5, 0.4, None, None],
    ]
    expected = krippendorff_alpha(ratings, resamples=agreement_resamples(6), seed=0)
    assert result.judge_agreement == expected
    assert tier.mean_judge_score_range == pytest.approx(0.05)


def test_agreement_resamples_stay_within_the_draw_budget() -> None:
    assert agreement_resamples(100) == RESAMPLES
    assert agreement_resamples(100_000) == max(
        MIN_AGREEMENT_RESAMPLES, AGREEMENT_DRAW_BUDGET // 100_000
    )
    assert agreement_resamples(10**9) == MIN_AGREEMENT_RESAMPLES


def test_cliffs_delta_interval_with_groups_of_different_sizes() -> None:
    # Regression: the two groups' resample blocks had different row counts above ~2,000 runs
    # and broadcasting failed (a 10,000-run regenerate crashed in compare_tiers).
    a = [round(i % 97 / 96, 2) for i in range(3401)]
    b = [round(i % 89 / 88, 2) for i in range(6779)]
    interval = cliffs_delta_interval(a, b, resamples=2_000)
    assert interval.low <= interval.estimate <= interval.high


def test_summary_across_experiments_pairs_tasks_with_wilcoxon() -> None:
    results = {}
    for task in range(6):
        records = [make_record("T0", "00", 1, 0.3 + 0.01 * task, experiment=f"task-{task}")]
        records.append(make_record("T1", "00", 1, 0.8 + 0.01 * task, experiment=f"task-{task}"))
        results[f"task-{task}"] = aggregate_experiment(f"task-{task}", records, [])
    summary = summarize_experiments(results)
    [comparison] = summary.comparisons
    # T1 higher on all 6 tasks: exact two-sided p = 2 / 2^6.
    assert comparison.test.p == pytest.approx(2 / 64) and comparison.test.method == "exact"
    assert comparison.significant and comparison.mean_difference == pytest.approx(0.5)
    assert summary.by_task["task-0"]["T0"].judged == 1
    five = {name: results[name] for name in list(results)[:4]}
    [few] = summarize_experiments(five).comparisons
    assert not few.significant and few.note and "too few tasks (4" in few.note
    assert math.isclose(few.test.p, 2 / 16)

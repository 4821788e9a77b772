"""CSV exports next to the reports: runs, judges, criteria, sub-tests and tiers.

Column names follow upstream's analysis CSVs where the meaning is the same (experiment,
agent_model, tier, subtest, run_number, score, passed, grade, cost_usd, ...); ours are added
after them. Unknown values are empty cells, never 0; an infinite Cost-of-Pass is "inf".
Numbers are written with Python's shortest round-trip repr, so regenerating gives the same
bytes.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence

from pytest_scylla.aggregate import ExperimentResult, SubTestResult, TierResult
from pytest_scylla.aggregate_details import cost_known, run_token_counts, tokens_known
from pytest_scylla.records import RunRecord
from pytest_scylla.stats import Interval

CSV_FILES = ("runs.csv", "judges.csv", "criteria.csv", "subtests.csv", "tiers.csv")
Cell = str | int | float | bool | None


def _csv(headers: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    """The csv module's own conversion is the format: None is an empty cell, a bool
    "True"/"False" (as upstream's pandas wrote them), a float its shortest round-trip repr
    ("inf" for an infinite Cost-of-Pass). A converter called per cell cost a second per
    10,000 runs."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buffer.getvalue()


def _agent_model(record: RunRecord) -> str | None:
    return record.model or (record.settings.model if record.settings else None)


RUN_HEADERS = (
    "experiment", "agent_model", "tier", "subtest", "run_number", "score", "passed", "grade",
    "cost_usd", "duration_seconds", "agent_duration_seconds", "judge_duration_seconds",
    "input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens",
    "total_tokens", "exit_code",
    # ours
    "outcome", "counted", "timed_out", "attempts", "judge_cost_usd", "judges_failed",
    "judge_score_range", "pass_threshold", "error",
)  # fmt: skip


def _run_row(record: RunRecord, counted: bool) -> list[Cell]:
    judged = record.outcome != "error" and record.result is not None
    tokens = run_token_counts(record) if tokens_known(record) else None
    durations = record.durations
    return [
        record.experiment_id,
        _agent_model(record),
        record.tier,
        record.subtest,
        record.run,
        record.result.score if judged and record.result else None,
        record.outcome == "passed" if judged else None,
        record.result.grade if judged and record.result else None,
        record.total_agent_cost_usd if cost_known(record) else None,
        durations.workspace_s + durations.agent_s + durations.checks_s + durations.judge_s,
        durations.agent_s,
        durations.judge_s,
        *(tokens if tokens else (None, None, None, None)),  # the four kinds, TOKEN_KINDS order
        sum(tokens) if tokens else None,
        record.exit_code,
        record.outcome,
        counted,
        record.timed_out,
        1 + len(record.attempts),
        record.total_judge_cost_usd,
        len(record.consensus.judges_failed) if record.consensus else None,
        record.consensus.score_range if record.consensus else None,
        record.result.pass_threshold if record.result else None,
        f"{record.error.stage}: {record.error.message}"
        if record.outcome == "error" and record.error
        else None,
    ]


JUDGE_HEADERS = (
    "experiment", "agent_model", "tier", "subtest", "run_number", "judge_model", "judge_number",
    "judge_score", "judge_passed", "judge_is_valid", "judge_reasoning",
    # ours
    "judge_status", "judge_error", "judge_cost_usd", "judge_cached", "judge_attempts",
)  # fmt: skip


def _judge_rows(record: RunRecord) -> list[list[Cell]]:
    threshold = record.result.pass_threshold if record.result else None
    rows = []
    for number, judge in enumerate(record.judges, start=1):
        rows.append(
            [
                record.experiment_id,
                _agent_model(record),
                record.tier,
                record.subtest,
                record.run,
                judge.model,
                number,
                judge.score,
                judge.score >= threshold
                if judge.score is not None and threshold is not None
                else None,
                judge.status == "ok",
                judge.overall_reasoning,
                judge.status,
                judge.error,
                judge.cost_usd,
                judge.cached,
                judge.attempts,
            ]
        )
    return rows


CRITERIA_HEADERS = (
    "experiment", "agent_model", "tier", "subtest", "run_number", "judge_model", "judge_number",
    "criterion", "criterion_score", "criterion_achieved", "criterion_max",
)  # fmt: skip


def _criteria_rows(record: RunRecord) -> list[list[Cell]]:
    """Per category: each judge's points (LLM items), then the consensus (judge_number 0)."""
    if record.result is None:
        return []
    categories: dict[str, list[tuple[str, float]]] = {}
    for item in record.result.items:
        categories.setdefault(item.category, []).append((item.item_id, item.max_points))
    prefix: list[Cell] = [
        record.experiment_id,
        _agent_model(record),
        record.tier,
        record.subtest,
        record.run,
    ]
    rows: list[list[Cell]] = []
    for number, judge in enumerate(record.judges, start=1):
        if judge.status != "ok":
            continue
        verdicts = judge.items
        for category, items in categories.items():
            achieved_points, maxima = [], []
            for item_id, maximum in items:
                verdict = verdicts.get(item_id)
                if verdict is not None and verdict.achieved is not None:
                    achieved_points.append(verdict.achieved)
                    maxima.append(maximum)
            if not maxima:
                continue
            achieved = math.fsum(achieved_points)
            maximum = math.fsum(maxima)
            rows.append(
                [*prefix, judge.model, number, category, achieved / maximum if maximum else None,
                 achieved, maximum]
            )  # fmt: skip
    by_category: dict[str, tuple[float, float]] = {}
    for item in record.result.items:
        if item.achieved is None:
            continue
        done, maximum = by_category.get(item.category, (0.0, 0.0))
        by_category[item.category] = (done + item.achieved, maximum + item.max_points)
    for category, score in record.result.category_scores.items():
        totals = by_category.get(category)
        rows.append(
            [*prefix, "consensus", 0, category, score, *(totals if totals else (None, None))]
        )
    return rows


def _bounds(interval: Interval | None) -> list[Cell]:
    if interval is None:
        return [None, None]
    return [interval.low, interval.high]


def _grades(result: SubTestResult) -> list[Cell]:
    grades = [run.grade for run in result.runs if run.grade]
    counts = [grades.count(grade) for grade in ("S", "A", "B", "C", "D", "F")]
    modal = max(sorted(set(grades)), key=grades.count) if grades else None
    return [*counts, modal]


SUBTEST_HEADERS = (
    "experiment", "agent_model", "tier", "subtest", "pass_rate", "mean_score", "median_score",
    "std_score", "mean_cost", "total_cost", "mean_duration", "cop",
    "grade_S", "grade_A", "grade_B", "grade_C", "grade_D", "grade_F", "modal_grade",
    # ours
    "runs", "passed", "failed", "timed_out", "errors", "pass_rate_low", "pass_rate_high",
    "mean_score_low", "mean_score_high", "cost_known_runs", "cop_low", "cop_high",
    "mean_tokens", "tokens_known_runs", "pass_at_1", "pass_at_3", "pass_at_5",
    "pass_hat_1", "pass_hat_3", "pass_hat_5",
)  # fmt: skip


def _subtest_row(model: str | None, subtest: SubTestResult) -> list[Cell]:
    s, cost, counts = subtest.stats, subtest.cost, subtest.counts
    cop = cost.cost_of_pass if cost else None
    low, high = s.pass_rate_ci if s.n else (None, None)
    return [
        subtest.experiment_id, model, subtest.tier, subtest.subtest,
        s.pass_rate, s.mean_score, s.median_score, s.score_std,
        cost.mean_cost if cost else None, cost.total_cost if cost else None,
        s.mean_duration, cop.estimate if cop else None,
        *_grades(subtest),
        counts.total, counts.passed, counts.failed, counts.timed_out, counts.error,
        low, high, *_bounds(subtest.score_interval),
        cost.cost_known if cost else 0, *_bounds(cop),
        cost.mean_tokens if cost else None, cost.tokens_known if cost else 0,
        *(s.pass_at_k.get(k) for k in (1, 3, 5)),
        *(subtest.pass_hat_k.get(k) for k in (1, 3, 5)),
    ]  # fmt: skip


TIER_HEADERS = (
    "experiment", "agent_model", "tier", "runs", "passed", "failed", "timed_out", "errors",
    "pass_rate", "pass_rate_low", "pass_rate_high", "interval_unit", "subtests",
    "pass_rate_errors_as_failures", "mean_score", "mean_score_low", "mean_score_high",
    "median_score", "mean_cost", "total_cost", "cost_known_runs", "cop", "cop_low", "cop_high",
    "mean_tokens", "tokens_known_runs", "judge_cost_usd", "mean_judge_score_range",
    "best_subtest",
)  # fmt: skip


def _tier_row(model: str | None, tier: TierResult) -> list[Cell]:
    s, cost, counts = tier.stats, tier.cost, tier.counts
    cop = cost.cost_of_pass if cost else None
    sensitivity = tier.errors_as_failures
    as_failures = sensitivity.errors_as_failures if sensitivity else None
    return [
        tier.experiment_id, model, tier.tier, counts.total, counts.passed, counts.failed,
        counts.timed_out, counts.error, s.pass_rate, *_bounds(tier.pass_rate_interval),
        tier.pass_rate_interval.unit if tier.pass_rate_interval else None, len(tier.subtests),
        as_failures.estimate if as_failures else None,
        s.mean_score, *_bounds(tier.mean_score_interval), s.median_score,
        cost.mean_cost if cost else None, cost.total_cost if cost else None,
        cost.cost_known if cost else 0, cop.estimate if cop else None, *_bounds(cop),
        cost.mean_tokens if cost else None, cost.tokens_known if cost else 0,
        tier.judge_cost_usd, tier.mean_judge_score_range, tier.best_subtest,
    ]  # fmt: skip


def render_csvs(result: ExperimentResult, records: Sequence[RunRecord]) -> dict[str, str]:
    """File name -> CSV text. `records`: every record loaded, counted or not (runs.csv says)."""
    counted = {
        (tier_id, subtest_id, run.run)
        for tier_id, tier in result.tiers.items()
        for subtest_id, subtest in tier.subtests.items()
        for run in subtest.runs
    }
    ordered = sorted(records, key=lambda r: (r.tier, r.subtest, r.run))
    model = ", ".join(result.settings.models or result.models) or None
    return {
        "runs.csv": _csv(
            RUN_HEADERS,
            (_run_row(r, (r.tier, r.subtest, r.run) in counted) for r in ordered),
        ),
        "judges.csv": _csv(JUDGE_HEADERS, (row for r in ordered for row in _judge_rows(r))),
        "criteria.csv": _csv(CRITERIA_HEADERS, (row for r in ordered for row in _criteria_rows(r))),
        "subtests.csv": _csv(
            SUBTEST_HEADERS,
            (
                _subtest_row(model, subtest)
                for tier in result.tiers.values()
                for subtest in tier.subtests.values()
            ),
        ),
        "tiers.csv": _csv(TIER_HEADERS, (_tier_row(model, tier) for tier in result.tiers.values())),
    }

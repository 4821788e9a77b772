"""Aggregates built from run records on disk: sub-test, tier and experiment `result.json`.

Built from the disk, never from memory, so a session that was killed and resumed, a
`--scylla-regenerate` and an uninterrupted session all produce the same files.

What counts (design section 1): every judged run (passed or failed, timed-out runs
included: the agent's timeout is its own failure) is in n, the pass rate, pass@k and
Cost-of-Pass; errored runs (harness or API) are counted beside them, never silently left
out. A run's cost is the spend of all its attempts. Records of a sub-test made with other
settings than the rest are named and left out: different setups are never pooled.
"""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, Field

from pytest_scylla.records import RunRecord
from pytest_scylla.results_layout import AGGREGATE_FILE, rewrite_derived_file, run_dir
from pytest_scylla.run_settings import RunSettings, differences, option_names
from pytest_scylla.stats import SummaryStats, TierComparison, compare_groups, summarize

__all__ = ["AGGREGATE_FILE", "aggregate_experiment", "write_aggregates"]


class RunSummary(BaseModel):
    run: int
    outcome: str
    score: float | None
    grade: str | None
    timed_out: bool = False
    exit_code: int | None = None
    attempts: int = 1  # executions of this run, this one included
    agent_cost_usd: float  # every attempt
    judge_cost_usd: float
    tokens: int
    duration_s: float
    judge_score_range: float | None = None
    error: str | None = None  # "stage: message" of an errored run


class OutcomeCounts(BaseModel):
    """Runs by outcome; `timed_out` counts the judged runs (passed or failed) that timed out."""

    passed: int = 0
    failed: int = 0
    error: int = 0
    timed_out: int = 0
    earlier_attempts: int = 0  # executions redone: spend counted, outcome superseded
    replaced_judged_runs: int = 0  # judged runs re-drawn on request (--scylla-rerun-failed)

    def add(self, record: RunRecord) -> None:
        setattr(self, record.outcome, getattr(self, record.outcome) + 1)
        if record.outcome != "error" and record.timed_out:
            self.timed_out += 1
        self.earlier_attempts += len(record.attempts)
        self.replaced_judged_runs += record.replaced_judged_run

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.error

    @property
    def judged(self) -> int:
        return self.passed + self.failed


class SubTestResult(BaseModel):
    experiment_id: str
    tier: str
    subtest: str
    counts: OutcomeCounts
    stats: SummaryStats
    agent_cost_usd: float
    judge_cost_usd: float
    mean_judge_score_range: float | None  # judge agreement: smaller is better
    runs: list[RunSummary]


class TierResult(BaseModel):
    experiment_id: str
    tier: str
    counts: OutcomeCounts
    stats: SummaryStats
    agent_cost_usd: float
    judge_cost_usd: float
    best_subtest: str | None
    subtests: dict[str, SubTestResult]

    @property
    def scores(self) -> list[float]:
        """Scores of the judged runs, sub-test by sub-test in run order: what tiers are
        compared on."""
        return [
            run.score
            for subtest in self.subtests.values()
            for run in subtest.runs
            if run.score is not None
        ]


class ExperimentResult(BaseModel):
    experiment_id: str
    judge_modes: list[str]
    agent_names: list[str]
    models: list[str]
    counts: OutcomeCounts
    agent_cost_usd: float
    judge_cost_usd: float
    tiers: dict[str, TierResult]
    comparisons: list[TierComparison] = Field(default_factory=list)
    damaged_records: list[str] = Field(default_factory=list)  # unreadable or misplaced
    # Records left out because their settings differ from the rest of their sub-test.
    excluded_records: list[str] = Field(default_factory=list)


def _judged(record: RunRecord) -> bool:
    """A run that was judged (passed or failed); errored runs are counted, not scored."""
    return record.outcome != "error" and record.result is not None


def _summary(record: RunRecord) -> RunSummary:
    result = record.result if _judged(record) else None
    return RunSummary(
        run=record.run,
        outcome=record.outcome,
        score=result.score if result else None,
        grade=result.grade if result else None,
        timed_out=record.timed_out,
        exit_code=record.exit_code,
        attempts=1 + len(record.attempts),
        agent_cost_usd=record.total_agent_cost_usd,
        judge_cost_usd=record.total_judge_cost_usd,
        tokens=record.total_tokens,
        duration_s=round(record.durations.agent_s, 3),
        judge_score_range=record.consensus.score_range if record.consensus else None,
        error=f"{record.error.stage}: {record.error.message}"
        if record.outcome == "error" and record.error
        else None,
    )


def _stats(records: list[RunRecord]) -> SummaryStats:
    judged = [record for record in records if _judged(record)]
    return summarize(
        scores=[record.result.score for record in judged if record.result],
        passed=[record.outcome == "passed" for record in judged],
        # Cost-of-Pass is about the agent setup under test; judging is the measurement's cost.
        # A run's cost is what all its attempts spent.
        costs=[record.total_agent_cost_usd for record in judged],
        durations=[record.durations.agent_s for record in judged],
        tokens=[record.total_tokens for record in judged],
    )


def _counts(records: list[RunRecord]) -> OutcomeCounts:
    counts = OutcomeCounts()
    for record in records:
        counts.add(record)
    return counts


def _best(subtests: dict[str, SubTestResult]) -> str | None:
    candidates = [result for result in subtests.values() if result.stats.n > 0]
    if not candidates:
        return None
    # Highest pass rate, then highest mean score, then cheapest: what a team would pick.
    return max(
        candidates,
        key=lambda result: (
            result.stats.pass_rate or 0.0,
            result.stats.mean_score or 0.0,
            -(result.stats.mean_cost or 0.0),
        ),
    ).subtest


def split_by_settings(
    runs: list[RunRecord], *, scope: str = "sub-test"
) -> tuple[list[RunRecord], list[str]]:
    """(the runs made with the prevailing settings, notes on the others).

    The prevailing settings are those of most runs, ties going to the most recent run.
    Across an experiment (`scope="experiment"`) the sub-test's own hash is left out of the
    comparison: sub-tests differ by design, the agent, model, panel or threshold may not.
    A record without settings (written before they were recorded) cannot be shown to
    differ and is kept.
    """
    ignored = {"plugin_version"} | ({"subtest_sha256"} if scope == "experiment" else set())
    keyed: list[tuple[str, RunRecord, RunSettings]] = [
        (record.settings.model_dump_json(exclude=ignored), record, record.settings)
        for record in runs
        if record.settings is not None
    ]
    if not keyed:
        return runs, []
    tally = Counter(key for key, _, _ in keyed)
    latest: dict[str, str] = {}
    for key, record, _ in keyed:
        latest[key] = max(latest.get(key, ""), record.finished_at)
    prevailing_key = max(tally, key=lambda key: (tally[key], latest[key]))
    prevailing = next(settings for key, _, settings in keyed if key == prevailing_key)
    different = {id(record): settings for key, record, settings in keyed if key != prevailing_key}
    kept, notes = [], []
    for record in runs:
        settings = different.get(id(record))
        if settings is None:
            kept.append(record)
            continue
        fields = [field for field in differences(settings, prevailing) if field not in ignored]
        what = ", ".join(option_names(fields)) if fields else "settings"
        folder = run_dir(Path(), record.experiment_id, record.tier, record.subtest, record.run)
        notes.append(f"{folder}: made with other {what} than the {scope}'s other runs; not counted")
    return kept, notes


def aggregate_experiment(
    experiment_id: str, records: list[RunRecord], damaged: list[str]
) -> ExperimentResult:
    pooled, excluded = split_by_settings(records, scope="experiment")
    by_tier: dict[str, dict[str, list[RunRecord]]] = {}
    for record in sorted(pooled, key=lambda r: (r.tier, r.subtest, r.run)):
        by_tier.setdefault(record.tier, {}).setdefault(record.subtest, []).append(record)
    tiers: dict[str, TierResult] = {}
    counted: list[RunRecord] = []
    for tier, subtests in sorted(by_tier.items()):
        subtest_results = {}
        tier_runs: list[RunRecord] = []
        for subtest, all_runs in subtests.items():
            runs, notes = split_by_settings(all_runs)
            excluded += notes
            tier_runs += runs
            ranges = [
                r.consensus.score_range
                for r in runs
                if r.consensus and r.consensus.score_range is not None
            ]
            subtest_results[subtest] = SubTestResult(
                experiment_id=experiment_id,
                tier=tier,
                subtest=subtest,
                counts=_counts(runs),
                stats=_stats(runs),
                agent_cost_usd=sum(r.total_agent_cost_usd for r in runs),
                judge_cost_usd=sum(r.total_judge_cost_usd for r in runs),
                mean_judge_score_range=statistics.fmean(ranges) if ranges else None,
                runs=[_summary(r) for r in runs],
            )
        counted += tier_runs
        tiers[tier] = TierResult(
            experiment_id=experiment_id,
            tier=tier,
            counts=_counts(tier_runs),
            stats=_stats(tier_runs),
            agent_cost_usd=sum(r.total_agent_cost_usd for r in tier_runs),
            judge_cost_usd=sum(r.total_judge_cost_usd for r in tier_runs),
            best_subtest=_best(subtest_results),
            subtests=subtest_results,
        )
    scores_by_tier = {tier: tier_result.scores for tier, tier_result in tiers.items()}
    return ExperimentResult(
        experiment_id=experiment_id,
        judge_modes=sorted({r.judge_mode for r in counted}),
        agent_names=sorted({r.agent_name for r in counted}),
        models=sorted({r.model for r in counted if r.model}),
        counts=_counts(counted),
        agent_cost_usd=sum(r.total_agent_cost_usd for r in counted),
        judge_cost_usd=sum(r.total_judge_cost_usd for r in counted),
        tiers=tiers,
        comparisons=compare_groups(scores_by_tier) if len(scores_by_tier) > 1 else [],
        damaged_records=damaged,
        excluded_records=excluded,
    )


def write_aggregates(experiment_dir: Path, result: ExperimentResult) -> list[str]:
    """Write every result.json of the experiment; warnings for damaged files rebuilt."""
    warnings: list[str] = []

    def write(path: Path, model: BaseModel) -> None:
        warning = rewrite_derived_file(path, model.model_dump_json(indent=2) + "\n")
        if warning:
            warnings.append(warning)

    for tier, tier_result in result.tiers.items():
        for subtest, subtest_result in tier_result.subtests.items():
            write(experiment_dir / tier / subtest / AGGREGATE_FILE, subtest_result)
        write(experiment_dir / tier / AGGREGATE_FILE, tier_result)
    write(experiment_dir / AGGREGATE_FILE, result)
    return warnings

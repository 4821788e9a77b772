"""Aggregates built from run records on disk: sub-test, tier and experiment `result.json`.

Built from the disk, never from memory, so a session that was killed and resumed, a
`--scylla-regenerate` and an uninterrupted session all produce the same files.
Statistics cover judged runs (passed or failed); errored runs are counted, not scored.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from pydantic import BaseModel, Field

from pytest_scylla.records import RUN_RECORD_FILE, RunRecord, write_json_if_changed
from pytest_scylla.stats import SummaryStats, TierComparison, compare_groups, summarize

AGGREGATE_FILE = "result.json"


class RunSummary(BaseModel):
    run: int
    outcome: str
    score: float | None
    grade: str | None
    agent_cost_usd: float
    judge_cost_usd: float
    tokens: int
    duration_s: float
    judge_score_range: float | None = None


class OutcomeCounts(BaseModel):
    passed: int = 0
    failed: int = 0
    error: int = 0

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.error


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
    damaged_records: list[str] = Field(default_factory=list)


def load_experiment_records(experiment_dir: Path) -> tuple[list[RunRecord], list[str]]:
    records: list[RunRecord] = []
    damaged: list[str] = []
    for path in sorted(experiment_dir.glob(f"T*/*/run-*/{RUN_RECORD_FILE}")):
        try:
            records.append(RunRecord.model_validate_json(path.read_bytes()))
        except ValueError:
            damaged.append(str(path))
    return records, damaged


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
        agent_cost_usd=record.agent_cost_usd,
        judge_cost_usd=record.judge_cost_usd,
        tokens=record.agent.tokens.total if record.agent else 0,
        duration_s=round(record.durations.agent_s, 3),
        judge_score_range=record.consensus.score_range if record.consensus else None,
    )


def _stats(records: list[RunRecord]) -> SummaryStats:
    judged = [record for record in records if _judged(record)]
    return summarize(
        scores=[record.result.score for record in judged if record.result],
        passed=[record.outcome == "passed" for record in judged],
        # Cost-of-Pass is about the agent setup under test; judging is the measurement's cost.
        costs=[record.agent_cost_usd for record in judged],
        durations=[record.durations.agent_s for record in judged],
        tokens=[record.agent.tokens.total if record.agent else 0 for record in judged],
    )


def _counts(records: list[RunRecord]) -> OutcomeCounts:
    counts = OutcomeCounts()
    for record in records:
        counts.add(record.outcome)
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


def aggregate_experiment(
    experiment_id: str, records: list[RunRecord], damaged: list[str]
) -> ExperimentResult:
    by_tier: dict[str, dict[str, list[RunRecord]]] = {}
    for record in sorted(records, key=lambda r: (r.tier, r.subtest, r.run)):
        by_tier.setdefault(record.tier, {}).setdefault(record.subtest, []).append(record)
    tiers: dict[str, TierResult] = {}
    for tier, subtests in sorted(by_tier.items()):
        subtest_results = {}
        for subtest, runs in subtests.items():
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
                agent_cost_usd=sum(r.agent_cost_usd for r in runs),
                judge_cost_usd=sum(r.judge_cost_usd for r in runs),
                mean_judge_score_range=statistics.fmean(ranges) if ranges else None,
                runs=[_summary(r) for r in runs],
            )
        tier_runs = [record for runs in subtests.values() for record in runs]
        tiers[tier] = TierResult(
            experiment_id=experiment_id,
            tier=tier,
            counts=_counts(tier_runs),
            stats=_stats(tier_runs),
            agent_cost_usd=sum(r.agent_cost_usd for r in tier_runs),
            judge_cost_usd=sum(r.judge_cost_usd for r in tier_runs),
            best_subtest=_best(subtest_results),
            subtests=subtest_results,
        )
    scores_by_tier = {tier: tier_result.scores for tier, tier_result in tiers.items()}
    return ExperimentResult(
        experiment_id=experiment_id,
        judge_modes=sorted({r.judge_mode for r in records}),
        agent_names=sorted({r.agent_name for r in records}),
        models=sorted({r.model for r in records if r.model}),
        counts=_counts(records),
        agent_cost_usd=sum(r.agent_cost_usd for r in records),
        judge_cost_usd=sum(r.judge_cost_usd for r in records),
        tiers=tiers,
        comparisons=compare_groups(scores_by_tier) if len(scores_by_tier) > 1 else [],
        damaged_records=damaged,
    )


def write_aggregates(experiment_dir: Path, result: ExperimentResult) -> None:
    for tier, tier_result in result.tiers.items():
        for subtest, subtest_result in tier_result.subtests.items():
            write_json_if_changed(experiment_dir / tier / subtest / AGGREGATE_FILE, subtest_result)
        write_json_if_changed(experiment_dir / tier / AGGREGATE_FILE, tier_result)
    write_json_if_changed(experiment_dir / AGGREGATE_FILE, result)

"""Turn an experiment aggregate into what the human reports render."""

from __future__ import annotations

import datetime as dt

from pytest_scylla.aggregate import ExperimentResult, OutcomeCounts
from pytest_scylla.report.model import ReportInput, RunCounts, SubtestReport, TierReport

TIER_NAMES = {
    "T0": "Prompts",
    "T1": "Skills",
    "T2": "Tooling",
    "T3": "Delegation",
    "T4": "Hierarchy",
    "T5": "Hybrid",
    "T6": "Everything",
}


def judge_mode_text(result: ExperimentResult) -> str:
    if result.judge_modes == ["commands-only"]:
        return "commands only (LLM judging off: only rubric command: items scored)"
    return ", ".join(result.judge_modes)


def run_counts(counts: OutcomeCounts) -> RunCounts:
    return RunCounts.model_validate(counts.model_dump())


def report_input(result: ExperimentResult, experiment_name: str = "") -> ReportInput:
    tiers = []
    for tier_id, tier in result.tiers.items():
        tiers.append(
            TierReport(
                tier_id=tier_id,
                name=TIER_NAMES.get(tier_id, ""),
                summary=tier.stats,
                counts=run_counts(tier.counts),
                subtests=[
                    SubtestReport(
                        subtest_id=subtest_id,
                        name=subtest_id,
                        summary=subtest.stats,
                        counts=run_counts(subtest.counts),
                    )
                    for subtest_id, subtest in tier.subtests.items()
                ],
                best_subtest=tier.best_subtest,
                scores=tier.scores,
            )
        )
    return ReportInput(
        experiment_id=result.experiment_id,
        experiment_name=experiment_name,
        judge_mode=judge_mode_text(result),
        tiers=tiers,
        comparisons=result.comparisons,
        agent_cost_usd=result.agent_cost_usd,
        judge_cost_usd=result.judge_cost_usd,
        generated_at=dt.datetime.now(dt.UTC),
        counts=run_counts(result.counts),
        notes=[*result.damaged_records, *result.excluded_records],
    )

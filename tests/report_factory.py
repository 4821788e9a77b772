"""Run records for the report and aggregate tests: judged by a panel, with criteria and costs."""

from __future__ import annotations

from pytest_scylla.records import (
    AgentRecord,
    AttemptRecord,
    ConsensusRecord,
    ItemJudgment,
    ItemScore,
    JudgeRecord,
    RunError,
    RunRecord,
    ScoreRecord,
    TokenUsage,
)
from pytest_scylla.run_settings import RunSettings

PANEL = ("judge-a", "judge-b")
# Rubric: F1 (functional, 2 points), Q1 (quality, 1 point); categories weigh equally.
ITEMS = (("F1", "functional", 2.0), ("Q1", "quality", 1.0))


def settings(threshold: float = 0.6, model: str = "claude-sonnet-4-6") -> RunSettings:
    return RunSettings(
        agent="claude-code",
        model=model,
        judge_mode="llm",
        judge_panel=list(PANEL),
        pass_threshold=threshold,
        pass_threshold_source="rubric",
        sandbox="local",
        fixture_sha256="f" * 64,
        subtest_sha256="s" * 64,
        plugin_version="0.1.0",
    )


def make_record(
    tier: str,
    subtest: str,
    run: int,
    score: float | None,
    *,
    cost: float | None = 0.25,
    tokens: bool = True,
    experiment: str = "exp",
    threshold: float = 0.6,
    timed_out: bool = False,
    failed_judge: bool = False,
    earlier_attempt_cost: float | None = None,
) -> RunRecord:
    """A run with consensus `score` (None: an errored run). Judge b scores 0.1 lower on Q1."""
    agent = AgentRecord(
        agent="claude-code",
        model="claude-sonnet-4-6",
        cli_version="2.1.0",
        timed_out=timed_out,
        exit_code=0,
        cost_usd=cost,
        tokens_by_model={"claude-sonnet-4-6": TokenUsage(input_tokens=100, output_tokens=50)}
        if tokens
        else {},
    )
    common = dict(
        experiment_id=experiment,
        tier=tier,
        subtest=subtest,
        run=run,
        node_id=f"{experiment}/test.yaml::{tier}::{subtest}[run-{run:02d}]",
        agent_name="claude-code",
        model="claude-sonnet-4-6",
        judge_mode="llm",
        judge_models=list(PANEL),
        agent=agent,
        started_at=f"2026-01-20T06:{run % 60:02d}:00+00:00",
        finished_at=f"2026-01-20T06:{run % 60:02d}:30+00:00",
        settings=settings(threshold),
    )
    if earlier_attempt_cost is not None:
        common["attempts"] = [
            AttemptRecord(
                attempt=1, outcome="error", stage="started", agent_cost_usd=earlier_attempt_cost,
                files="attempts/1",
            )
        ]  # fmt: skip
    if score is None:
        return RunRecord(
            outcome="error", error=RunError(stage="sandbox", message="container died"), **common
        )
    judges = []
    for index, model in enumerate(PANEL):
        if failed_judge and index == 1:
            judges.append(JudgeRecord(model=model, status="failed", error="no answer"))
            continue
        q1 = max(0.0, score - 0.1 * index)
        judges.append(
            JudgeRecord(
                model=model,
                status="ok",
                items={"F1": ItemJudgment(achieved=2.0 * score), "Q1": ItemJudgment(achieved=q1)},
                score=(score + q1) / 2,
                cost_usd=0.01,
                attempts=1,
            )
        )
    answered = [j for j in judges if j.status == "ok"]
    q1_mean = sum(j.items["Q1"].achieved or 0.0 for j in answered) / len(answered)
    result = ScoreRecord(
        score=score,
        grade="A" if score >= 0.8 else "C",
        passed=score >= threshold,
        pass_threshold=threshold,
        category_scores={"functional": score, "quality": q1_mean},
        items=[
            ItemScore(item_id="F1", category="functional", max_points=2.0,
                      achieved=2.0 * score, source="judges"),
            ItemScore(item_id="Q1", category="quality", max_points=1.0,
                      achieved=q1_mean, source="judges"),
        ],
    )  # fmt: skip
    scores = {j.model: j.score for j in answered if j.score is not None}
    consensus = ConsensusRecord(
        judges_used=list(scores),
        judges_failed=[j.model for j in judges if j.status == "failed"],
        judge_scores=scores,
        score_range=max(scores.values()) - min(scores.values()) if len(scores) > 1 else None,
    )
    return RunRecord(
        outcome="passed" if score >= threshold else "failed",
        judges=judges,
        consensus=consensus,
        result=result,
        **common,
    )

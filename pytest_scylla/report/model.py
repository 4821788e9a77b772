"""What the Markdown and HTML reports render: a small, self-contained input model.

Kept separate from the experiment aggregate so the renderers do not depend on how results are
stored; whoever builds the aggregate converts it into a ReportInput.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from pytest_scylla.stats import SummaryStats, TierComparison


class RunCounts(BaseModel):
    """Runs by outcome, shown beside every rate: errors are never silently left out.

    `timed_out` counts judged runs (inside passed + failed) whose agent ran out of time.
    """

    passed: int = 0
    failed: int = 0
    timed_out: int = 0
    error: int = 0
    earlier_attempts: int = 0
    replaced_judged_runs: int = 0


class SubtestReport(BaseModel):
    """One sub-test of a tier, summarized over its runs."""

    subtest_id: str
    name: str = ""
    summary: SummaryStats
    counts: RunCounts | None = None  # None: judged runs only, as the summary says


class TierReport(BaseModel):
    """One tier: its summary over all runs, its sub-tests, and the per-run scores for plots."""

    tier_id: str
    name: str = ""
    summary: SummaryStats
    counts: RunCounts | None = None  # None: judged runs only, as the summary says
    subtests: list[SubtestReport] = Field(default_factory=list)
    best_subtest: str | None = Field(default=None, description="subtest_id of the best sub-test")
    scores: list[float] = Field(default_factory=list, description="per-run scores, for plots")


class ReportInput(BaseModel):
    """Everything a human report shows for one experiment."""

    experiment_id: str
    experiment_name: str = ""
    judge_mode: str = Field(description='e.g. "llm: model-a, model-b" or "commands only"')
    tiers: list[TierReport]
    comparisons: list[TierComparison] = Field(default_factory=list)
    comparison_metric: str = Field(default="score", description="per-run value compared")
    agent_cost_usd: float
    judge_cost_usd: float
    generated_at: datetime
    counts: RunCounts = RunCounts()
    # Records not counted (damaged, misplaced, other settings), by path and reason.
    notes: list[str] = Field(default_factory=list)

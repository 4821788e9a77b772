"""What the Markdown and HTML reports render: a small, self-contained input model.

Kept separate from the experiment aggregate so the renderers do not depend on how results are
stored; whoever builds the aggregate converts it into a ReportInput.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from pytest_scylla.stats import SummaryStats, TierComparison


class SubtestReport(BaseModel):
    """One sub-test of a tier, summarized over its runs."""

    subtest_id: str
    name: str = ""
    summary: SummaryStats


class TierReport(BaseModel):
    """One tier: its summary over all runs, its sub-tests, and the per-run scores for plots."""

    tier_id: str
    name: str = ""
    summary: SummaryStats
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

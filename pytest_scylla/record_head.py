"""The part of a run record that reporting a finished run needs, read without the rest.

A resume of a finished study reports every run from its record: its outcome, its error,
its score against the threshold, what it cost over every attempt, and whether its panel
judged it. That is a few hundred bytes of a record of ten or more kilobytes; the rest
(objective checks and their output, every judge's verdict and reason per rubric item, the
score's items, the consensus) is evidence for aggregation and review. Validating the whole
record builds about forty kilobytes of objects per run; a `RunHead` skips the evidence
while parsing (pydantic ignores undeclared keys), about a sixth of the time and memory.

A head is only ever taken together with its file's text, which the controller keeps on
disk as it is: nothing is written from a head (results_layout.read_run_head).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pytest_scylla.records import (
    AgentRecord,
    AttemptRecord,
    Outcome,
    RunError,
    RunStage,
    RunTotals,
)


class _Head(BaseModel):
    model_config = ConfigDict(extra="ignore")


class JudgeHead(_Head):
    """A judge's entry without its per-item verdicts: who judged, and at what cost."""

    model: str
    status: Literal["ok", "failed"]
    cost_usd: float = 0.0
    cached: bool = False


class ScoreHead(_Head):
    """The verdict without the per-item and per-category points behind it."""

    score: float
    grade: str
    passed: bool
    pass_threshold: float


class RunHead(RunTotals, _Head):
    """A run record's identity, outcome, verdict and spend (see the module's docstring)."""

    schema_version: int
    experiment_id: str
    tier: str
    subtest: str
    run: int
    judge_mode: str
    outcome: Outcome
    error: RunError | None = None
    agent: AgentRecord | None = None
    judges: list[JudgeHead] = Field(default_factory=list)
    result: ScoreHead | None = None
    stage: RunStage = "judged"
    attempts: list[AttemptRecord] = Field(default_factory=list)

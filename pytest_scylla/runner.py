"""The run machinery's public names; the work lives in `pytest_scylla/run/`, one module per
phase: `resume` (what a run still needs), `agent_phase`, `judge_phase`, `rebuild` (a record
from saved output), `regenerate`, and `executor` (the order and the exception boundary)."""

from __future__ import annotations

from pytest_scylla.run.agent_phase import PASSTHROUGH_ENV
from pytest_scylla.run.executor import RunExecutor, now_iso
from pytest_scylla.run.plan import JudgeRunner, RunOutcome, RunPlan
from pytest_scylla.run.scoring import commands_only_result
from pytest_scylla.run.services import BaselineCache, SessionServices

__all__ = [
    "PASSTHROUGH_ENV",
    "BaselineCache",
    "JudgeRunner",
    "RunExecutor",
    "RunOutcome",
    "RunPlan",
    "SessionServices",
    "commands_only_result",
    "now_iso",
]

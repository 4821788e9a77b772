"""The judge phase of a run: score the saved agent work (command items, LLM judges)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_scylla.records import RunError, RunRecord
from pytest_scylla.run.plan import RunPlan
from pytest_scylla.run.scoring import commands_only_result

if TYPE_CHECKING:
    from pytest_scylla.run.services import SessionServices


def run_judge_phase(
    services: SessionServices, plan: RunPlan, run_dir: Path, record: RunRecord, *, rejudge: bool
) -> None:
    """Judge an agent-done record in place; an error (stage judge) when no judge succeeded."""
    started = time.monotonic()
    record.error = None
    if services.judge_runner is None:
        record.judges = []
        record.consensus = None
        record.result = commands_only_result(
            plan.experiment, record, services.settings.pass_threshold
        )
        return
    judges, result, consensus = services.judge_runner.judge(plan, record, run_dir, rejudge=rejudge)
    record.judges = judges
    record.result = result
    record.consensus = consensus
    record.durations.judge_s = round(record.durations.judge_s + time.monotonic() - started, 3)
    if result is None:
        failures = "; ".join(
            f"{judge.model}: {judge.error}" for judge in judges if judge.status == "failed"
        )
        record.error = RunError(
            stage="judge", message=f"no judge succeeded ({failures or 'no judge ran'})"
        )


def finalize_outcome(record: RunRecord) -> None:
    """The outcome from what the record holds: judged means passed or failed."""
    if record.error is not None or record.result is None:
        record.outcome = "error"
    else:
        record.outcome = "passed" if record.result.passed else "failed"
        record.stage = "judged"

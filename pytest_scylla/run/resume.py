"""What a run still needs, given what is on disk; and keeping an attempt that is redone.

- "reuse": the record is complete (judged by every judge the session wants): report it.
- "judge": the agent phase is on disk (stage agent-done, or a judged run to rejudge or to
  judge by a missing judge): judge the saved work again, no new agent run.
- "agent": the agent phase never finished, or `--scylla-rerun-failed` asks for a failed run
  again: a new attempt, with everything of the earlier one moved under `attempts/<k>/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pytest_scylla.record_head import RunHead
from pytest_scylla.records import AttemptRecord, RunError, RunRecord
from pytest_scylla.results_layout import (
    ATTEMPT_RECORD_FILE,
    ATTEMPTS_DIR,
    next_attempt_dir,
)
from pytest_scylla.settings import ScyllaSettings

Decision = Literal["reuse", "judge", "agent"]


def decide(existing: RunRecord | RunHead | None, settings: ScyllaSettings) -> Decision:
    if existing is None:
        return "agent"
    if existing.stage == "judged" and existing.outcome != "error":
        if existing.outcome == "failed" and settings.rerun_failed:
            return "agent"
        if settings.rejudge:
            return "judge"
        judged_by = {judge.model for judge in existing.judges if judge.status == "ok"}
        return "reuse" if set(settings.judge_models) <= judged_by else "judge"
    if existing.stage in ("agent-done", "judged"):
        return "judge"
    return "agent"


def archive_attempt(run_path: Path, previous: RunRecord | None) -> list[AttemptRecord]:
    """Move the run folder's files under `attempts/<k>/` and return the attempt history.

    The history is the previous record's own attempts plus the previous record itself; a
    folder with files but no readable record still becomes an attempt (its cost unknown).
    Nothing is deleted.
    """
    history = list(previous.attempts) if previous is not None else []
    entries = (
        [entry for entry in run_path.iterdir() if entry.name != ATTEMPTS_DIR]
        if run_path.is_dir()
        else []
    )
    if not entries:
        return history
    number, target = next_attempt_dir(run_path)
    target.mkdir(parents=True)
    for entry in entries:
        name = ATTEMPT_RECORD_FILE if entry.name == "run_result.json" else entry.name
        entry.rename(target / name)
    files = f"{ATTEMPTS_DIR}/{number}"
    if previous is not None:
        history.append(previous.as_attempt(number, files))
    else:
        history.append(
            AttemptRecord(
                attempt=number,
                outcome="error",
                stage="started",
                error=RunError(stage="harness", message="no readable run record"),
                files=files,
            )
        )
    return history

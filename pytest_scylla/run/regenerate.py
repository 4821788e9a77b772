"""`--scylla-regenerate` for one run: no agent, no judge, no network.

The agent record is re-read from the saved stream, and the score and consensus are rebuilt
from the judgments already in the record, in the run's own judging mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pytest_scylla.records import (
    RUN_RECORD_FILE,
    AgentRecord,
    RunError,
    RunRecord,
    dump_record,
    write_text_if_changed,
)
from pytest_scylla.results_layout import AGENT_DIR
from pytest_scylla.run.judge_phase import finalize_outcome
from pytest_scylla.run.plan import RunOutcome, RunPlan
from pytest_scylla.run.scoring import commands_only_result

if TYPE_CHECKING:
    from pytest_scylla.run.services import SessionServices


def regenerate(
    services: SessionServices,
    plan: RunPlan,
    existing: RunRecord | None,
    run_path: Path,
    notes: list[str],
    existing_text: str | None = None,
) -> RunOutcome:
    """`existing_text`: the record file's text when it holds exactly `existing`."""
    if existing is None:
        return RunOutcome(None, from_disk=True, notes=notes)
    # Shallow: every change below puts a new value in a top-level field and leaves the
    # objects it shares with `existing` alone (a deep copy cost 1 ms a run, profiled),
    # except each judge's own score, which rescoring sets: the judges are copied.
    record = existing.model_copy()
    record.judges = [judge.model_copy() for judge in existing.judges]
    agent_dir = run_path / AGENT_DIR
    if record.agent is not None and agent_dir.is_dir():
        record.agent = _reparse_agent(services, agent_dir, record.agent)
    if record.stage in ("agent-done", "judged"):
        record.error = None
        if record.judge_mode == "commands-only":
            record.result = commands_only_result(
                plan.experiment, record, services.settings.pass_threshold
            )
        elif services.judge_runner is not None:
            record.result, record.consensus = services.judge_runner.rescore(plan, record)
        if record.result is None:
            record.error = RunError(stage="judge", message="no judge succeeded")
        elif record.settings is not None:
            # A --pass-threshold given to regenerate re-decides the run: its settings say so,
            # and a later resume compares against that threshold.
            record.settings = record.settings.model_copy(
                update={
                    "pass_threshold": record.result.pass_threshold,
                    "pass_threshold_source": "command-line"
                    if services.settings.pass_threshold is not None
                    else record.settings.pass_threshold_source,
                }
            )
    finalize_outcome(record)
    if existing_text is not None and record == existing:
        # Nothing changed: the file stays as it is, and is neither dumped nor compared.
        # (Fields shared with `existing` compare by identity: only the rebuilt ones are
        # compared value by value.)
        return RunOutcome(record, from_disk=True, notes=notes, record_text=existing_text)
    text = dump_record(record)
    write_text_if_changed(run_path / RUN_RECORD_FILE, text)
    # The file's text now: the controller need not dump, compare or write the record again.
    return RunOutcome(record, from_disk=True, notes=notes, record_text=text)


def _reparse_agent(
    services: SessionServices, agent_dir: Path, previous: AgentRecord
) -> AgentRecord:
    if previous.agent != services.agent.name:
        return previous
    try:
        return services.agent.parse_saved(agent_dir, previous)
    except (OSError, ValueError):
        return previous

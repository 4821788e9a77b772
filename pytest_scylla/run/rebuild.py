"""A run record rebuilt from the files a run saved, when `run_result.json` is damaged or gone.

Upstream's `regenerate_agent_results.py` in the plugin: the agent record comes from the
saved stream (`agent/stdout.jsonl`, through the agent's `parse_saved`), the checks from
`checks.json`, the changes from `workspace.diff`, the sub-test files from
`config_manifest.json`, the judgments from `judges/*/judgment.json`, and earlier attempts
from `attempts/<k>/record.json`. A finished agent phase found this way is judged, never
paid for again.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from pytest_scylla.agents.base import Agent
from pytest_scylla.records import (
    AgentRecord,
    AttemptRecord,
    ChecksRecord,
    DamagedRecord,
    JudgeRecord,
    NewerSchema,
    RunError,
    RunRecord,
    WorkspaceRecord,
    parse_record,
)
from pytest_scylla.results_layout import (
    AGENT_DIR,
    ATTEMPT_RECORD_FILE,
    ATTEMPTS_DIR,
    CHECKS_FILE,
    DIFF_FILE,
    JUDGES_DIR,
    MANIFEST_FILE,
)
from pytest_scylla.run.plan import RunPlan
from pytest_scylla.run_settings import run_settings_for
from pytest_scylla.settings import ScyllaSettings
from pytest_scylla.workspace import ConfigManifest

JUDGMENT_FILE = "judgment.json"  # as judges/llm.py writes it (importing it loads the SDK)
ModelT = TypeVar("ModelT", bound=BaseModel)
_DIFF_HEADER = re.compile(r"^diff --git a/(.+) b/(.+)$")


def rebuild_record(
    agent: Agent, settings: ScyllaSettings, plan: RunPlan, run_path: Path
) -> RunRecord | None:
    """A record from the run folder's saved files; None when the agent saved nothing."""
    agent_dir = run_path / AGENT_DIR
    if not agent_dir.is_dir():
        return None
    used = [AGENT_DIR]
    checks = _read_model(run_path / CHECKS_FILE, ChecksRecord)
    if checks is not None:
        used.append(CHECKS_FILE)
    workspace = _workspace_from_diff(run_path / DIFF_FILE)
    if workspace is not None:
        used.append(DIFF_FILE)
    manifest = _read_model(run_path / MANIFEST_FILE, ConfigManifest)
    if manifest is not None:
        used.append(MANIFEST_FILE)
    # checks.json is written only after the agent ended and the checks ran.
    previous = AgentRecord(agent=agent.name, model=settings.model, finished=checks is not None)
    try:
        agent_record = agent.parse_saved(agent_dir, previous)
    except (OSError, ValueError):
        agent_record = previous
    judges = _saved_judgments(run_path / JUDGES_DIR)
    if judges:
        used.append(JUDGES_DIR)
    agent_done = agent_record.finished and checks is not None and workspace is not None
    stamp = _saved_at(agent_dir)
    return RunRecord(
        experiment_id=plan.experiment.id,
        tier=plan.subtest.tier,
        subtest=plan.subtest.id,
        run=plan.run_number,
        node_id=plan.node_id,
        agent_name=agent.name,
        model=settings.model if agent.name == "claude-code" else None,
        judge_mode=settings.judge_mode,
        judge_models=settings.judge_models,
        outcome="error",
        error=RunError(
            stage="judge" if agent_done else "agent",
            message="rebuilt from saved output: "
            + ("judging left" if agent_done else "the agent phase did not finish"),
        ),
        agent=agent_record,
        checks=checks,
        workspace=workspace,
        judges=judges,
        config_manifest_sha256=manifest.sha256() if manifest is not None else None,
        fixture_sha256=plan.experiment.fixture_hash,
        started_at=stamp,
        finished_at=stamp,
        stage="agent-done" if agent_done else "started",
        attempts=saved_attempts(run_path),
        rebuilt_from=used,
        # The session's settings: a session whose options differ from the run's other
        # records stops before its first run (settings_check), so they are the run's own.
        settings=run_settings_for(settings, plan.experiment, plan.subtest),
    )


def saved_attempts(run_path: Path) -> list[AttemptRecord]:
    """The earlier attempts' summaries, from their saved records (unreadable ones skipped)."""
    attempts: list[AttemptRecord] = []
    folders = sorted(
        (p for p in (run_path / ATTEMPTS_DIR).glob("*") if p.name.isdigit()),
        key=lambda p: int(p.name),
    )
    for folder in folders:
        try:
            record = parse_record((folder / ATTEMPT_RECORD_FILE).read_bytes(), folder)
        except (OSError, DamagedRecord, NewerSchema):
            continue
        attempts.append(record.as_attempt(int(folder.name), f"{ATTEMPTS_DIR}/{folder.name}"))
    return attempts


def _read_model(path: Path, model: type[ModelT]) -> ModelT | None:
    try:
        return model.model_validate_json(path.read_bytes())
    except (OSError, ValueError, ValidationError):
        return None


def _workspace_from_diff(path: Path) -> WorkspaceRecord | None:
    """What the diff shows; the full file list after the run is not saved, only changes."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    files: list[str] = []
    insertions = deletions = 0
    for line in text.splitlines():
        header = _DIFF_HEADER.match(line)
        if header:
            files.append(header.group(2))
        elif line.startswith("+") and not line.startswith("+++"):
            insertions += 1
        elif line.startswith("-") and not line.startswith("---"):
            deletions += 1
    return WorkspaceRecord(
        files=files, files_changed=len(files), insertions=insertions, deletions=deletions
    )


def _saved_judgments(judges_dir: Path) -> list[JudgeRecord]:
    judges = []
    for path in sorted(judges_dir.glob(f"*/{JUDGMENT_FILE}")):
        judge = _read_model(path, JudgeRecord)
        if judge is not None:
            judges.append(judge)
    return judges


def _saved_at(agent_dir: Path) -> str:
    try:
        seconds = agent_dir.stat().st_mtime
    except OSError:
        seconds = dt.datetime.now(dt.UTC).timestamp()
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds")

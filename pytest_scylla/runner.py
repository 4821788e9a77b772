"""One run, step by step: workspace, agent, checks, judges, score, record.

A run resumes from the step that failed: a finished agent is never paid for twice, a panel
missing one judge gets only that judge, and a complete run is reported from disk untouched.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pytest_scylla import records
from pytest_scylla.agents.base import PROMPT_FILE_NAME, Agent, AgentRequest, base_env
from pytest_scylla.judges.checks import command_item_scores, run_pipeline, run_rubric_commands
from pytest_scylla.judges.consensus import commands_only_score
from pytest_scylla.records import (
    RUN_RECORD_FILE,
    AgentRecord,
    CheckResult,
    ChecksRecord,
    ConsensusRecord,
    DamagedRecord,
    JudgeRecord,
    RunError,
    RunRecord,
    ScoreRecord,
    WorkspaceRecord,
    atomic_write_json,
    atomic_write_text,
    dump_record,
    load_record,
    write_text_if_changed,
)
from pytest_scylla.redact import Redactor
from pytest_scylla.sandbox.base import RunDirs, SandboxError, SandboxFactory
from pytest_scylla.settings import DEFAULT_RUN_TIMEOUT_S, ScyllaSettings
from pytest_scylla.spec.catalogue import ResolvedSubTest
from pytest_scylla.spec.load_experiment import Experiment
from pytest_scylla.workspace import (
    SourceCache,
    WorkspaceError,
    clone_workspace,
    git,
    materialize,
    remove_tree,
    summarize_changes,
)

CHECKS_FILE = "checks.json"
DIFF_FILE = "workspace.diff"
MANIFEST_FILE = "config_manifest.json"
PASSTHROUGH_ENV = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CODE_MAX_RETRIES",  # the CLI's own API retry budget (default 10, minutes of backoff)
)


@dataclass(frozen=True)
class RunPlan:
    experiment: Experiment
    subtest: ResolvedSubTest
    run_number: int
    node_id: str

    def run_dir(self, results_dir: Path) -> Path:
        return records.run_dir(
            results_dir, self.experiment.id, self.subtest.tier, self.subtest.id, self.run_number
        )


@dataclass
class RunOutcome:
    record: RunRecord | None  # None: --scylla-regenerate found nothing on disk
    from_disk: bool = False
    notes: list[str] = field(default_factory=list)


class JudgeRunner:
    """What the runner needs from LLM judging (implemented in judges/)."""

    def judge(
        self, plan: RunPlan, record: RunRecord, run_dir: Path, *, rejudge: bool
    ) -> tuple[list[JudgeRecord], ScoreRecord | None, ConsensusRecord | None]:
        raise NotImplementedError

    def rescore(
        self, plan: RunPlan, record: RunRecord
    ) -> tuple[ScoreRecord | None, ConsensusRecord | None]:
        raise NotImplementedError


@dataclass
class BaselineCache:
    """Baseline checks, once per starting state rather than once per run.

    The starting state is the materialized commit, whose id covers the source and every
    sub-test file (its date is its parent's), so runs that share it and the experiment's
    checks see the same baseline; the sandbox kind is fixed for the session. A baseline with
    a timeout is not kept: it says more about the machine than the code.
    """

    _found: dict[tuple[str, str], tuple[str, list[CheckResult]]] = field(default_factory=dict)

    def get_or_run(
        self,
        base_commit: str,
        experiment: Experiment,
        node_id: str,
        run: Callable[[], list[CheckResult]],
    ) -> tuple[str | None, list[CheckResult]]:
        """(the run the baseline comes from when reused, else None; the baseline)."""
        key = (base_commit, experiment.fixture_hash)
        if key in self._found:
            source, results = self._found[key]
            return source, [result.model_copy() for result in results]
        results = run()
        if not any(result.timed_out for result in results):
            self._found[key] = (node_id, results)
        return None, results


@dataclass
class SessionServices:
    settings: ScyllaSettings
    sandbox_factory: SandboxFactory
    agent: Agent
    judge_runner: JudgeRunner | None  # None: commands-only scoring
    redactor: Redactor
    source_cache: SourceCache
    session_id: str
    work_root: Path
    baselines: BaselineCache = field(default_factory=BaselineCache)


def commands_only_result(
    experiment: Experiment, record: RunRecord, pass_threshold: float | None
) -> ScoreRecord:
    """The score from the rubric's command items alone (LLM judging off, or nothing to judge)."""
    rubric = experiment.normalized_rubric
    checks = record.checks or ChecksRecord()
    return commands_only_score(
        rubric,
        command_item_scores(rubric, checks.rubric_commands),
        pass_threshold=experiment.pass_threshold(pass_threshold),
        grade_scale=experiment.rubric.grading.grade_scale or None,
    )


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class RunExecutor:
    def __init__(self, services: SessionServices) -> None:
        self.services = services
        self.settings = services.settings

    # -- the decision: what does this run still need? ---------------------------------
    def execute(self, plan: RunPlan) -> RunOutcome:
        run_dir = plan.run_dir(self.settings.results_dir)
        notes: list[str] = []
        existing: RunRecord | None = None
        try:
            existing = load_record(run_dir / RUN_RECORD_FILE)
        except DamagedRecord as damaged:
            notes.append(str(damaged))
        if self.settings.regenerate:
            return self._regenerate(plan, existing, run_dir, notes)
        if existing is not None and self._reusable(existing):
            return RunOutcome(existing, from_disk=True, notes=notes)
        keep_agent = (
            existing is not None
            and existing.agent_phase_done
            and not (existing.outcome == "failed" and self.settings.rerun_failed)
        )
        record = self._run(plan, run_dir, existing if keep_agent else None)
        return RunOutcome(record, notes=notes)

    def _reusable(self, record: RunRecord) -> bool:
        if record.outcome == "error" or self.settings.rejudge:
            return False
        if record.outcome == "failed" and self.settings.rerun_failed:
            return False
        judged_by = {judge.model for judge in record.judges if judge.status == "ok"}
        return set(self.settings.judge_models) <= judged_by

    # -- executing ------------------------------------------------------------------------
    def _run(self, plan: RunPlan, run_dir: Path, previous: RunRecord | None) -> RunRecord:
        started = previous.started_at if previous else now_iso()
        record = RunRecord(
            experiment_id=plan.experiment.id,
            tier=plan.subtest.tier,
            subtest=plan.subtest.id,
            run=plan.run_number,
            node_id=plan.node_id,
            agent_name=self.services.agent.name,
            model=self.settings.model if self.services.agent.name == "claude-code" else None,
            judge_mode=self.settings.judge_mode,
            judge_models=self.settings.judge_models,
            outcome="error",
            fixture_sha256=plan.experiment.fixture_hash,
            started_at=started,
            finished_at=started,
        )
        if previous is not None:
            record.agent = previous.agent
            record.checks = previous.checks
            record.workspace = previous.workspace
            record.judges = previous.judges
            record.config_manifest_sha256 = previous.config_manifest_sha256
            record.durations = previous.durations.model_copy()
        else:
            if run_dir.exists():
                shutil.rmtree(run_dir)  # an unfinished agent phase: start the run over
            try:
                self._agent_phase(plan, run_dir, record)
            except (WorkspaceError, SandboxError, OSError) as error:
                stage = "sandbox" if isinstance(error, SandboxError) else "workspace"
                record.error = RunError(stage=stage, message=self.services.redactor(str(error)))
            if record.error is None and record.agent is not None and not record.agent.finished:
                record.error = RunError(
                    stage="agent", message=record.agent.error_reason or "agent did not finish"
                )
        if record.error is None:
            self._judge_phase(
                plan, run_dir, record, rejudge=self.settings.rejudge and previous is not None
            )
        record.finished_at = now_iso()
        self._finalize_outcome(record)
        atomic_write_text(run_dir / RUN_RECORD_FILE, dump_record(record))
        return record

    def _agent_phase(self, plan: RunPlan, run_dir: Path, record: RunRecord) -> None:
        services = self.services
        experiment = plan.experiment
        work = (
            Path(os.path.realpath(services.work_root))
            / f"{experiment.id}-{plan.subtest.tier}-{plan.subtest.id}-{plan.run_number:02d}-{os.getpid()}"
        )
        remove_tree(work)
        dirs = RunDirs(workspace=work / "workspace", home=work / "home", inputs=work / "inputs")
        dirs.inputs.mkdir(
            parents=True, exist_ok=True
        )  # the prompt goes in before the sandbox opens
        started = time.monotonic()
        try:
            repository, commit, start_date = services.source_cache.repository(experiment)
            clone_workspace(repository, commit, dirs.workspace)
            manifest = materialize(
                dirs.workspace, plan.subtest, experiment.catalogue, start_date=start_date
            )
            base_commit = git(["rev-parse", "HEAD"], dirs.workspace).strip()
            atomic_write_json(run_dir / MANIFEST_FILE, manifest)
            record.config_manifest_sha256 = manifest.sha256()
            (dirs.inputs / PROMPT_FILE_NAME).write_text(experiment.prompt, encoding="utf-8")
            request = AgentRequest(
                experiment=experiment,
                subtest=plan.subtest,
                model=self.settings.model,
                timeout_s=experiment.timeout_seconds(
                    self.settings.run_timeout, DEFAULT_RUN_TIMEOUT_S
                ),
                dirs=dirs,
                agent_dir=run_dir / "agent",
                passthrough_env={
                    name: os.environ[name] for name in PASSTHROUGH_ENV if os.environ.get(name)
                },
                redactor=services.redactor,
            )
            request.agent_dir.mkdir(parents=True, exist_ok=True)
            services.agent.prepare_inputs(request)
            record.durations.workspace_s = round(time.monotonic() - started, 3)
            sandbox = services.sandbox_factory.open(
                dirs,
                {"scylla.run": plan.node_id, "scylla.session": services.session_id},
            )
            try:
                check_env = {
                    **base_env(sandbox, os.environ.get("PATH")),
                    # Checks may compare with where the run started; git must not refuse a
                    # workspace another uid (the container's agent) owns.
                    "SCYLLA_START_COMMIT": commit,
                    "SCYLLA_BASE_COMMIT": base_commit,
                    "GIT_CONFIG_COUNT": "1",
                    "GIT_CONFIG_KEY_0": "safe.directory",
                    "GIT_CONFIG_VALUE_0": "*",
                }
                checks = ChecksRecord()
                phase_started = time.monotonic()
                checks.baseline_from, checks.baseline = services.baselines.get_or_run(
                    base_commit,
                    experiment,
                    plan.node_id,
                    lambda: run_pipeline(
                        sandbox, experiment.spec.checks, env=check_env, redactor=services.redactor
                    ),
                )
                checks_s = time.monotonic() - phase_started
                phase_started = time.monotonic()
                record.agent = services.agent.run(request, sandbox)
                record.durations.agent_s = round(time.monotonic() - phase_started, 3)
                if not record.agent.finished:
                    return  # no point checking a workspace the agent never finished with
                phase_started = time.monotonic()
                checks.after = run_pipeline(
                    sandbox, experiment.spec.checks, env=check_env, redactor=services.redactor
                )
                checks.rubric_commands = run_rubric_commands(
                    sandbox, experiment.normalized_rubric, env=check_env, redactor=services.redactor
                )
                record.durations.checks_s = round(checks_s + time.monotonic() - phase_started, 3)
            finally:
                sandbox.close()
            changes = summarize_changes(dirs.workspace)
            atomic_write_text(run_dir / DIFF_FILE, services.redactor(changes.diff))
            atomic_write_json(run_dir / CHECKS_FILE, checks)
            record.checks = checks
            record.workspace = WorkspaceRecord(
                files=changes.files,
                files_changed=changes.files_changed,
                insertions=changes.insertions,
                deletions=changes.deletions,
            )
        finally:
            if self.settings.keep_workspace and dirs.workspace.exists():
                kept = run_dir / "workspace"
                remove_tree(kept)
                shutil.copytree(dirs.workspace, kept, symlinks=True)
            remove_tree(work)

    def _judge_phase(
        self, plan: RunPlan, run_dir: Path, record: RunRecord, *, rejudge: bool
    ) -> None:
        started = time.monotonic()
        if self.services.judge_runner is None:
            record.judges = []
            record.consensus = None
            record.result = commands_only_result(
                plan.experiment, record, self.settings.pass_threshold
            )
            return
        judges, result, consensus = self.services.judge_runner.judge(
            plan, record, run_dir, rejudge=rejudge
        )
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

    @staticmethod
    def _finalize_outcome(record: RunRecord) -> None:
        if record.error is not None or record.result is None:
            record.outcome = "error"
        else:
            record.outcome = "passed" if record.result.passed else "failed"

    # -- regenerate: from disk only ---------------------------------------------------------
    def _regenerate(
        self, plan: RunPlan, existing: RunRecord | None, run_dir: Path, notes: list[str]
    ) -> RunOutcome:
        if existing is None:
            return RunOutcome(None, from_disk=True, notes=notes)
        record = existing.model_copy(deep=True)
        agent_dir = run_dir / "agent"
        if record.agent is not None and agent_dir.is_dir():
            record.agent = self._reparse_agent(agent_dir, record.agent)
        if record.agent_phase_done:
            record.error = None
            if self.services.judge_runner is None and record.judge_mode == "commands-only":
                record.result = commands_only_result(
                    plan.experiment, record, self.settings.pass_threshold
                )
            elif self.services.judge_runner is not None:
                record.result, record.consensus = self.services.judge_runner.rescore(plan, record)
                if record.result is None:
                    record.error = RunError(stage="judge", message="no judge succeeded")
        self._finalize_outcome(record)
        write_text_if_changed(run_dir / RUN_RECORD_FILE, dump_record(record))
        return RunOutcome(record, from_disk=True, notes=notes)

    def _reparse_agent(self, agent_dir: Path, previous: AgentRecord) -> AgentRecord:
        if previous.agent != self.services.agent.name:
            return previous
        try:
            return self.services.agent.parse_saved(agent_dir, previous)
        except (OSError, ValueError):
            return previous

"""The agent phase of a run: workspace, baseline checks, agent, after-checks, diff.

What the agent does is graded, never an error: a timeout, a non-zero exit or an empty
workspace go on to the checks and the judges like any other run. Only a harness or API
failure (`AgentRecord.finished` False) skips the checks: nothing meaningful was produced.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pytest_scylla.agents.base import PROMPT_FILE_NAME, AgentRequest, base_env
from pytest_scylla.credentials import LoginFile, claude_code_credentials
from pytest_scylla.harness_git import summarize_changes
from pytest_scylla.judges.checks import run_after_checks, run_pipeline
from pytest_scylla.kept_workspace import keep_workspace
from pytest_scylla.records import (
    ChecksRecord,
    RunRecord,
    WorkspaceRecord,
    atomic_write_json,
    atomic_write_text,
)
from pytest_scylla.redact import Redactor
from pytest_scylla.results_layout import (
    AGENT_DIR,
    CHECKS_FILE,
    DIFF_FILE,
    KEPT_WORKSPACE_DIR,
    MANIFEST_FILE,
)
from pytest_scylla.run.plan import RunPlan
from pytest_scylla.run.services import SessionServices
from pytest_scylla.run.shared_baselines import shared_baselines
from pytest_scylla.sandbox.base import RunDirs
from pytest_scylla.settings import DEFAULT_RUN_TIMEOUT_S
from pytest_scylla.workspace import (
    clone_workspace,
    prepare_harness_repository,
    remove_tree,
)

# Beside the credentials (credentials.claude_code_credentials chooses those).
PASSTHROUGH_ENV = (
    "ANTHROPIC_BASE_URL",
    "CLAUDE_CODE_MAX_RETRIES",  # the CLI's own API retry budget (default 10, minutes of backoff)
)


def agent_credentials(redactor: Redactor) -> tuple[dict[str, str], LoginFile | None]:
    """The variables an agent may see beyond the scrubbed base, and the login to give it.

    Read per run: a login refreshed since the session started is given as it is now, and
    its new tokens join the redactor before the agent can print them.
    """
    passthrough = {name: os.environ[name] for name in PASSTHROUGH_ENV if os.environ.get(name)}
    credentials = claude_code_credentials(os.environ)
    if credentials is None:
        return passthrough, None
    for secret in credentials.secrets:
        redactor.add(secret)
    return {**passthrough, **credentials.env}, credentials.login


def run_agent_phase(
    services: SessionServices, plan: RunPlan, run_dir: Path, record: RunRecord
) -> None:
    """Fill record.agent, .checks, .workspace and .config_manifest_sha256; save the files.

    Sets record.stage to "agent-done" when the agent produced a gradeable workspace.
    Raises WorkspaceError, SandboxError or OSError for harness failures.
    """
    settings = services.settings
    experiment = plan.experiment
    work = (
        Path(os.path.realpath(services.work_root))
        / f"{experiment.id}-{plan.subtest.tier}-{plan.subtest.id}-{plan.run_number:02d}-{os.getpid()}"
    )
    remove_tree(work)
    dirs = RunDirs(workspace=work / "workspace", home=work / "home", inputs=work / "inputs")
    dirs.inputs.mkdir(parents=True, exist_ok=True)  # the prompt goes in before the sandbox opens
    started = time.monotonic()
    try:
        start = services.source_cache.repository(experiment)
        repository, commit = start.repository, start.commit
        manifest = services.source_cache.start_workspace(
            start, plan.subtest, experiment.catalogue, dirs.workspace, clone=clone_workspace
        )
        harness_repository = prepare_harness_repository(dirs.workspace, repository, work)
        base_commit = harness_repository.base_commit
        atomic_write_json(run_dir / MANIFEST_FILE, manifest)
        record.config_manifest_sha256 = manifest.sha256()
        (dirs.inputs / PROMPT_FILE_NAME).write_text(experiment.prompt, encoding="utf-8")
        passthrough_env, login = agent_credentials(services.redactor)
        request = AgentRequest(
            experiment=experiment,
            subtest=plan.subtest,
            model=settings.model,
            timeout_s=experiment.timeout_seconds(settings.run_timeout, DEFAULT_RUN_TIMEOUT_S),
            dirs=dirs,
            agent_dir=run_dir / AGENT_DIR,
            passthrough_env=passthrough_env,
            redactor=services.redactor,
            login=login,
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
            # Shared with the session's other workers on this host, where there are some.
            baselines = shared_baselines(services.work_root) or services.baselines
            checks.baseline_from, checks.baseline = baselines.get_or_run(
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
                return  # a harness or API failure: no workspace worth grading
            phase_started = time.monotonic()
            # One sandbox process for both: each costs bubblewrap's start or a docker exec.
            checks.after, checks.rubric_commands = run_after_checks(
                sandbox,
                experiment.spec.checks,
                experiment.normalized_rubric,
                env=check_env,
                redactor=services.redactor,
            )
            record.durations.checks_s = round(checks_s + time.monotonic() - phase_started, 3)
        finally:
            sandbox.close()
        changes = summarize_changes(dirs.workspace, harness_repository)
        atomic_write_text(run_dir / DIFF_FILE, services.redactor(changes.diff))
        atomic_write_json(run_dir / CHECKS_FILE, checks)
        record.checks = checks
        record.workspace = WorkspaceRecord(
            # The agent names its files: `touch "$API_KEY"` must not put the key in the record.
            files=[services.redactor(name) for name in changes.files],
            files_changed=changes.files_changed,
            insertions=changes.insertions,
            deletions=changes.deletions,
            cut=[services.redactor(f"{cut.path} ({cut.size} bytes)") for cut in changes.cut],
        )
        record.stage = "agent-done"
    finally:
        if settings.keep_workspace and dirs.workspace.exists():
            kept = run_dir / KEPT_WORKSPACE_DIR
            remove_tree(kept)
            keep_workspace(dirs.workspace, kept, services.redactor)
        remove_tree(work)

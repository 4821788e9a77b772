"""Per-process session state: settings, loaded experiments, and the run services (built lazily,
so `--collect-only` and xdist's controller never start a sandbox or an agent)."""

from __future__ import annotations

import os
import tempfile
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_scylla.redact import Redactor, secrets_from_env
from pytest_scylla.runner import RunExecutor, SessionServices
from pytest_scylla.sandbox.base import SandboxFactory
from pytest_scylla.settings import ScyllaSettings
from pytest_scylla.spec.load_experiment import Experiment
from pytest_scylla.workspace import SourceCache


class ScyllaWarning(pytest.PytestWarning):
    """Something the user should know about a run (e.g. a damaged record was replaced)."""


def work_root() -> Path:
    """Workspaces live outside any project tree: Claude Code reads CLAUDE.md files of parent
    folders, and one of ours must not leak into the agent's context."""
    return Path(tempfile.gettempdir()) / f"scylla-work-{os.getuid()}"


@dataclass
class ScyllaSession:
    config: pytest.Config
    settings: ScyllaSettings
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    experiments: dict[str, Experiment] = field(default_factory=dict)
    _executor: RunExecutor | None = None

    def executor(self) -> RunExecutor:
        if self._executor is None:
            self._executor = RunExecutor(self._services())
        return self._executor

    def _services(self) -> SessionServices:
        from pytest_scylla.agents.registry import make_agent

        settings = self.settings
        redactor = Redactor(secrets_from_env())
        return SessionServices(
            settings=settings,
            sandbox_factory=make_sandbox_factory(settings, self.session_id),
            agent=make_agent(
                settings.agent,
                claude_bin=settings.claude_bin,
                command_template=settings.agent_command,
            ),
            judge_runner=make_judge_runner(settings, redactor),
            redactor=redactor,
            source_cache=SourceCache(work_root() / "sources"),
            session_id=self.session_id,
            work_root=work_root() / "runs",
        )

    def warn(self, message: str) -> None:
        warnings.warn(ScyllaWarning(message), stacklevel=2)


def make_sandbox_factory(settings: ScyllaSettings, session_id: str) -> SandboxFactory:
    if settings.sandbox == "docker":
        from pytest_scylla.sandbox.docker import DockerSandboxFactory
        from pytest_scylla.sandbox.preflight import docker_settings

        return DockerSandboxFactory(docker_settings(settings), session_id=session_id)
    from pytest_scylla.sandbox.local import LocalSandboxFactory

    return LocalSandboxFactory()


def make_judge_runner(settings: ScyllaSettings, redactor: Redactor):  # type: ignore[no-untyped-def]
    if not settings.judge_models:
        return None
    from pytest_scylla.judges.run_judges import LlmJudgeRunner

    return LlmJudgeRunner(settings, redactor)

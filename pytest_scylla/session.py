"""Per-process session state: settings, loaded experiments, and the run services (built lazily,
so `--collect-only` and xdist's controller never start a sandbox or an agent)."""

from __future__ import annotations

import os
import tempfile
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_scylla.redact import Redactor, session_redactor
from pytest_scylla.sandbox.base import SandboxError, SandboxFactory
from pytest_scylla.settings import ScyllaSettings
from pytest_scylla.spec.load_experiment import Experiment

if TYPE_CHECKING:
    from pytest_scylla.judges.llm import Judge
    from pytest_scylla.judges.run_judges import LlmJudgeRunner
    from pytest_scylla.run.executor import RunExecutor
    from pytest_scylla.run.services import SessionServices
    from pytest_scylla.sandbox.local import Isolation

# The local sandbox's isolation (see local_isolation); the benchmark compares the two.
LOCAL_ISOLATION_ENV = "SCYLLA_LOCAL_ISOLATION"


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
    _judge_runner: LlmJudgeRunner | None = None

    def executor(self) -> RunExecutor:
        if self._executor is None:
            from pytest_scylla.run.executor import RunExecutor

            self._executor = RunExecutor(self._services, self.settings)  # made on first need
        return self._executor

    def _services(self) -> SessionServices:
        from pytest_scylla.run.services import SessionServices
        from pytest_scylla.sandbox.reaper import sweep_stale_work
        from pytest_scylla.workspace import SourceCache

        settings = self.settings
        # The credentials file's tokens too: an agent may print what it read from it.
        redactor = session_redactor()
        # Before this session's first run: folders of killed sessions, never a live one's.
        sweep_stale_work(work_root() / "runs")
        factory = self.make("sandbox", settings.sandbox)
        problem = getattr(factory, "isolation_problem", None)
        if settings.sandbox == "local" and not getattr(factory, "isolates", True) and problem:
            self.warn(
                f"the local sandbox does not isolate runs ({problem}): an agent can read the "
                "rubric, the solution, other runs and your home; run untrusted agents with "
                "--sandbox docker"
            )
        return SessionServices(
            settings=settings,
            sandbox_factory=factory,
            agent=self.make("agent", settings.agent),
            judge_runner=self.judge_runner(redactor),
            redactor=redactor,
            source_cache=SourceCache(work_root() / "sources"),
            session_id=self.session_id,
            work_root=work_root() / "runs",
        )

    def make(self, kind: str, name: str) -> Any:
        """The agent or sandbox factory called `name`, from the first hook that answers."""
        hook = getattr(self.config.hook, f"pytest_scylla_make_{kind}")
        made = hook(config=self.config, name=name)
        if made is None:  # preflight checks the names; a worker may still lack a plugin
            raise SandboxError(f"no pytest_scylla_make_{kind} implementation makes {name!r}")
        return made

    def judge_runner(self, redactor: Redactor | None = None) -> LlmJudgeRunner | None:
        """The panel runner (None when LLM judging is off); each judge comes from
        pytest_scylla_make_judge, and each request passes pytest_scylla_judge_request."""
        if self._judge_runner is None and self.settings.judge_models:
            self._judge_runner = make_judge_runner(
                self.settings,
                redactor or session_redactor(),
                judge_factory=self._make_judge,
                request_hook=self._judge_request_hook,
            )
        return self._judge_runner

    def _make_judge(self, model: str) -> Judge:
        judge = self.config.hook.pytest_scylla_make_judge(config=self.config, model=model)
        if judge is None:
            raise ValueError(f"no pytest_scylla_make_judge implementation makes judge {model!r}")
        return judge

    def _judge_request_hook(self, request: dict[str, Any]) -> None:
        self.config.hook.pytest_scylla_judge_request(config=self.config, request=request)

    def hidden_paths(self) -> list[Path]:
        """What no sandboxed process may see, even through a PATH entry: the grading
        material of every experiment, the results and every run's work folder."""
        hidden = [self.settings.results_dir, work_root()]
        hidden += [experiment.directory for experiment in self.experiments.values()]
        return hidden

    def warn(self, message: str) -> None:
        warnings.warn(ScyllaWarning(message), stacklevel=2)


def local_isolation() -> Isolation:
    """``SCYLLA_LOCAL_ISOLATION``: auto (bubblewrap where it works), bwrap or none."""
    value = os.environ.get(LOCAL_ISOLATION_ENV, "auto").strip().lower() or "auto"
    if value not in ("auto", "bwrap", "none"):
        raise pytest.UsageError(f"{LOCAL_ISOLATION_ENV}={value!r}: use auto, bwrap or none")
    return value  # type: ignore[return-value]


def make_sandbox_factory(
    settings: ScyllaSettings, session_id: str, hidden: list[Path] | None = None
) -> SandboxFactory:
    if settings.sandbox == "docker":
        from pytest_scylla.sandbox.docker import DockerSandboxFactory
        from pytest_scylla.sandbox.preflight import docker_settings

        return DockerSandboxFactory(docker_settings(settings), session_id=session_id)
    from pytest_scylla.sandbox.local import LocalSandboxFactory

    factory = LocalSandboxFactory(isolation=local_isolation(), hidden=hidden or ())
    problem = factory.check_available()
    if problem is not None:
        raise SandboxError(f"{LOCAL_ISOLATION_ENV}=bwrap: {problem}")
    return factory


def make_judge_runner(
    settings: ScyllaSettings,
    redactor: Redactor,
    *,
    judge_factory: Callable[[str], Judge] | None = None,
    request_hook: Callable[[dict[str, Any]], None] | None = None,
) -> LlmJudgeRunner | None:
    if not settings.judge_models:
        return None
    from pytest_scylla.judges.run_judges import LlmJudgeRunner

    return LlmJudgeRunner(
        settings, redactor, judge_factory=judge_factory, request_hook=request_hook
    )

"""What every run of a session shares: settings, sandbox, agent, judges, caches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pytest_scylla.agents.base import Agent
from pytest_scylla.records import CheckResult
from pytest_scylla.redact import Redactor
from pytest_scylla.run.plan import JudgeRunner
from pytest_scylla.sandbox.base import SandboxFactory
from pytest_scylla.settings import ScyllaSettings
from pytest_scylla.spec.load_experiment import Experiment
from pytest_scylla.workspace import SourceCache


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

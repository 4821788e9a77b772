"""What every run of a session shares: settings, sandbox, agent, judges, caches."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from pytest_scylla.agents.base import Agent
from pytest_scylla.records import CheckResult
from pytest_scylla.redact import Redactor
from pytest_scylla.run.plan import JudgeRunner
from pytest_scylla.sandbox.base import SandboxFactory
from pytest_scylla.settings import ScyllaSettings
from pytest_scylla.spec.load_experiment import Experiment
from pytest_scylla.workspace import SourceCache


class Baseline(BaseModel):
    """A starting state's baseline checks, and the run that ran them."""

    node_id: str
    results: list[CheckResult]


@dataclass
class BaselineCache:
    """Baseline checks, once per starting state rather than once per run.

    The starting state is the materialized commit, whose id covers the source and every
    sub-test file (its date is its parent's), so runs that share it and the experiment's
    checks see the same baseline; the sandbox kind is fixed for the session. A baseline with
    a timeout is not kept: it says more about the machine than the code.
    """

    _found: dict[str, Baseline] = field(default_factory=dict)

    def get_or_run(
        self,
        base_commit: str,
        experiment: Experiment,
        node_id: str,
        run: Callable[[], list[CheckResult]],
    ) -> tuple[str | None, list[CheckResult]]:
        """(the run the baseline comes from when reused, else None; the baseline)."""
        key = hashlib.sha256(f"{base_commit}\0{experiment.fixture_hash}".encode()).hexdigest()
        found = self._found.get(key)
        if found is None:
            found, ran = self._find_or_run(key, node_id, run)
            if found is not None:
                self._found[key] = found
            if ran is not None:
                return None, ran
        assert found is not None
        return found.node_id, [result.model_copy() for result in found.results]

    def _find_or_run(
        self, key: str, node_id: str, run: Callable[[], list[CheckResult]]
    ) -> tuple[Baseline | None, list[CheckResult] | None]:
        """(the baseline to keep, if any; the results when they were run here and now)."""
        results = run()
        return kept_baseline(node_id, results), results


def kept_baseline(node_id: str, results: list[CheckResult]) -> Baseline | None:
    """What is kept of a baseline just run: nothing when a check timed out."""
    if any(result.timed_out for result in results):
        return None
    return Baseline(node_id=node_id, results=results)


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

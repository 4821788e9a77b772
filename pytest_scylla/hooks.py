"""Hookspecs of pytest-scylla: the extension surface for conftest.py files and plugins.

Agents, sandboxes and judges are made by name through firstresult factory hooks; the
built-ins (`builtins.py`) implement them `trylast`, so a plugin that answers a name first
adds a new one or replaces ours. A factory's names are checked before the first run against
`pytest_scylla_known_names`, so a plugin adding one answers both hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import pytest

if TYPE_CHECKING:
    from pytest_scylla.agents.base import Agent
    from pytest_scylla.aggregate import ExperimentResult
    from pytest_scylla.judges.llm import Judge
    from pytest_scylla.records import RunRecord
    from pytest_scylla.sandbox.base import SandboxFactory

NameKind = Literal["agent", "sandbox", "judge"]


@pytest.hookspec
def pytest_scylla_run_finished(config: pytest.Config, record: RunRecord, from_disk: bool) -> None:
    """Called on the controller for every run record that reaches it (new or from disk)."""


@pytest.hookspec
def pytest_scylla_experiment_aggregated(config: pytest.Config, result: ExperimentResult) -> None:
    """Called on the controller after an experiment's result.json files were rewritten."""


@pytest.hookspec
def pytest_scylla_judge_request(config: pytest.Config, request: dict[str, Any]) -> None:
    """Called before every request a built-in judge sends to the Messages API (in the
    process that judges); may change its parameters (`model`, `system`, `messages`,
    `tools`...) in place. Judges on the Claude Code CLI backend send no such request."""


@pytest.hookspec
def pytest_scylla_known_names(config: pytest.Config, kind: NameKind) -> list[str] | None:
    """The agent, sandbox or judge names this plugin's factory makes; checked at start-up."""


@pytest.hookspec(firstresult=True)
def pytest_scylla_make_agent(config: pytest.Config, name: str) -> Agent | None:
    """Return the agent called `name` (see agents/base.py), or None if it is not yours."""


@pytest.hookspec(firstresult=True)
def pytest_scylla_make_sandbox(config: pytest.Config, name: str) -> SandboxFactory | None:
    """Return the sandbox factory called `name` (see sandbox/base.py), or None."""


@pytest.hookspec(firstresult=True)
def pytest_scylla_make_judge(config: pytest.Config, model: str) -> Judge | None:
    """Return the judge for panel member `model` (see judges/llm.py `Judge`), or None."""

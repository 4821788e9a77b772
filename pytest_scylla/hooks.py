"""Hookspecs of pytest-scylla: the extension surface for conftest.py files and plugins."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_scylla.aggregate import ExperimentResult
    from pytest_scylla.records import RunRecord


@pytest.hookspec
def pytest_scylla_run_finished(config: pytest.Config, record: RunRecord, from_disk: bool) -> None:
    """Called on the controller for every run record that reaches it (new or from disk)."""


@pytest.hookspec
def pytest_scylla_experiment_aggregated(config: pytest.Config, result: ExperimentResult) -> None:
    """Called on the controller after an experiment's result.json files were rewritten."""


@pytest.hookspec(firstresult=True)
def pytest_scylla_judge_prompt(
    config: pytest.Config, prompt: dict[str, Any]
) -> dict[str, Any] | None:
    """Return a changed judge request (system, messages, tools) or None to keep it."""

"""Objective checks: the experiment's pipeline (before and after the agent) and rubric
`command:` items, run in the run's own sandbox so local and docker runs agree."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from pytest_scylla.records import CheckResult, ItemScore
from pytest_scylla.redact import Redactor
from pytest_scylla.sandbox.base import Sandbox
from pytest_scylla.spec.experiment import CheckCommand
from pytest_scylla.spec.rubric import NormalizedRubric

OUTPUT_TAIL_CHARS = 4000
WORKSPACE_PLACEHOLDER = "<workspace>"


def run_check(
    sandbox: Sandbox,
    name: str,
    command: str,
    *,
    env: Mapping[str, str],
    timeout_s: float,
    redactor: Redactor,
) -> CheckResult:
    with tempfile.TemporaryDirectory(prefix="scylla-check-") as scratch:
        stdout_path = Path(scratch) / "stdout"
        stderr_path = Path(scratch) / "stderr"
        outcome = sandbox.run(
            ["bash", "-c", command],
            env=env,
            timeout_s=timeout_s,
            stdout_path=stdout_path,
            stderr_path=stderr_path,
        )
        output = stdout_path.read_text(errors="replace") + stderr_path.read_text(errors="replace")
    return CheckResult(
        name=name,
        command=command,
        exit_code=outcome.exit_code,
        timed_out=outcome.timed_out,
        duration_s=round(outcome.duration_s, 3),
        # The workspace path differs per run and sandbox; left in, it would make every judge
        # prompt unique (no judge cache hit) and local and docker records differ.
        output_tail=redactor(
            output.replace(sandbox.paths.workspace, WORKSPACE_PLACEHOLDER)[-OUTPUT_TAIL_CHARS:]
        ),
    )


def run_pipeline(
    sandbox: Sandbox,
    checks: list[CheckCommand],
    *,
    env: Mapping[str, str],
    redactor: Redactor,
) -> list[CheckResult]:
    return [
        run_check(
            sandbox,
            check.name,
            check.command,
            env=env,
            timeout_s=check.timeout_seconds,
            redactor=redactor,
        )
        for check in checks
    ]


def run_rubric_commands(
    sandbox: Sandbox,
    rubric: NormalizedRubric,
    *,
    env: Mapping[str, str],
    redactor: Redactor,
) -> dict[str, CheckResult]:
    commands = [
        CheckCommand(
            name=item.id, command=item.command, timeout_seconds=item.command_timeout_seconds
        )
        for item in rubric.items()
        if item.command is not None
    ]
    results = run_pipeline(sandbox, commands, env=env, redactor=redactor)
    return {result.name: result for result in results}


def command_item_scores(
    rubric: NormalizedRubric, results: Mapping[str, CheckResult]
) -> dict[str, ItemScore]:
    """Exit 0 = full points, anything else (timeout included) = none."""
    scores: dict[str, ItemScore] = {}
    for category in rubric.categories:
        for item in category.items:
            result = results.get(item.id)
            if item.command is None or result is None:
                continue
            scores[item.id] = ItemScore(
                item_id=item.id,
                category=category.name,
                max_points=item.points,
                achieved=item.points if result.passed else 0.0,
                source="command",
                reason=f"`{item.command}` "
                + ("timed out" if result.timed_out else f"exited {result.exit_code}"),
            )
    return scores

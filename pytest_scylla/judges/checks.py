"""Objective checks: the experiment's pipeline (before and after the agent) and rubric
`command:` items, run in the run's own sandbox so local and docker runs agree."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from pytest_scylla.judges.check_batch import RawOutcome, read_tail, run_batch
from pytest_scylla.records import CheckResult, ItemScore
from pytest_scylla.redact import Redactor
from pytest_scylla.sandbox.base import Sandbox
from pytest_scylla.spec.experiment import CheckCommand
from pytest_scylla.spec.rubric import NormalizedRubric

OUTPUT_TAIL_CHARS = 4000
WORKSPACE_PLACEHOLDER = "<workspace>"


def tail_bytes(workspace: str) -> int:
    """How many bytes of a command's output hold its last OUTPUT_TAIL_CHARS characters once
    decoded and with the workspace path replaced (one character is at most 4 bytes of
    UTF-8 or one undecodable byte; a replaced path shrinks to the placeholder); the margin
    covers a character or a path cut at the start."""
    path_bytes = len(workspace.encode())
    per_char = max(4, -(-path_bytes // len(WORKSPACE_PLACEHOLDER)))
    return OUTPUT_TAIL_CHARS * per_char + 2 * (path_bytes + 4)


def _result(
    sandbox: Sandbox, name: str, command: str, outcome: RawOutcome, redactor: Redactor
) -> CheckResult:
    output = outcome.stdout_tail.decode(errors="replace") + outcome.stderr_tail.decode(
        errors="replace"
    )
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


def run_check(
    sandbox: Sandbox,
    name: str,
    command: str,
    *,
    env: Mapping[str, str],
    timeout_s: float,
    redactor: Redactor,
) -> CheckResult:
    """One command in a sandbox process of its own."""
    cap = tail_bytes(sandbox.paths.workspace)
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
        stderr_tail = read_tail(stderr_path, cap)
        stdout_tail = read_tail(stdout_path, cap - len(stderr_tail))
    raw = RawOutcome(
        exit_code=outcome.exit_code,
        timed_out=outcome.timed_out,
        duration_s=outcome.duration_s,
        stdout_tail=stdout_tail,
        stderr_tail=stderr_tail,
    )
    return _result(sandbox, name, command, raw, redactor)


def run_checks(
    sandbox: Sandbox,
    checks: Sequence[CheckCommand],
    *,
    env: Mapping[str, str],
    redactor: Redactor,
) -> list[CheckResult]:
    """All checks in order: in one sandbox process when the runner can (check_batch.py),
    else one process each."""
    if not checks:
        return []
    batch = run_batch(sandbox, checks, env=env, tail_bytes=tail_bytes(sandbox.paths.workspace))
    if batch is None:
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
    return [
        _result(sandbox, check.name, check.command, raw, redactor)
        for check, raw in zip(checks, batch, strict=True)
    ]


def run_pipeline(
    sandbox: Sandbox,
    checks: list[CheckCommand],
    *,
    env: Mapping[str, str],
    redactor: Redactor,
) -> list[CheckResult]:
    return run_checks(sandbox, checks, env=env, redactor=redactor)


def _rubric_checks(rubric: NormalizedRubric) -> list[CheckCommand]:
    return [
        CheckCommand(
            name=item.id, command=item.command, timeout_seconds=item.command_timeout_seconds
        )
        for item in rubric.items()
        if item.command is not None
    ]


def run_rubric_commands(
    sandbox: Sandbox,
    rubric: NormalizedRubric,
    *,
    env: Mapping[str, str],
    redactor: Redactor,
) -> dict[str, CheckResult]:
    results = run_checks(sandbox, _rubric_checks(rubric), env=env, redactor=redactor)
    return {result.name: result for result in results}


def run_after_checks(
    sandbox: Sandbox,
    checks: list[CheckCommand],
    rubric: NormalizedRubric,
    *,
    env: Mapping[str, str],
    redactor: Redactor,
) -> tuple[list[CheckResult], dict[str, CheckResult]]:
    """run_pipeline and run_rubric_commands in that order, in one sandbox process."""
    rubric_checks = _rubric_checks(rubric)
    results = run_checks(sandbox, [*checks, *rubric_checks], env=env, redactor=redactor)
    after = results[: len(checks)]
    return after, {result.name: result for result in results[len(checks) :]}


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

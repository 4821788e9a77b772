"""All of a run's check commands in one sandbox process.

Each sandbox process has a fixed cost (bubblewrap's namespaces, a ``docker exec``); a run
has about ten checks. ``run_batch`` starts ``check_batch_runner.py`` once in the sandbox,
which runs the commands one after the other exactly as ``checks.run_check`` would (``bash
-c``, the same environment and working directory, the command's own timeout) and prints
their outcomes. Anything unexpected (no ``python3``, a runner killed by a check, a garbled
or oversized answer) returns None and the caller runs the commands one by one: correctness
never depends on the runner.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pytest_scylla.sandbox.base import Sandbox, SandboxError
from pytest_scylla.sandbox.local import KILL_GRACE_S
from pytest_scylla.spec.experiment import CheckCommand

RUNNER_SOURCE = (Path(__file__).parent / "check_batch_runner.py").read_text(encoding="utf-8")
# Time for the runner's own start and its kills, on top of the commands' timeouts.
MARGIN_S = 10.0
# The runner's arguments in all; one may not exceed Linux's MAX_ARG_STRLEN (128 KiB).
MAX_SPEC_BYTES = 100_000
# The system's python3 first: PATH's may be a version manager's shim (pyenv's is a bash
# script that costs more than bubblewrap itself) or a folder the agent could write.
# -I: no PYTHON* variable, no user site and no module from the workspace (the agent's) is
# used by the runner; -S: no site import, a faster start.
RUNNER_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3")


def _start_runner() -> str:
    """The bash script that starts the runner (its source "$0", its arguments "$@")."""
    candidates = " ".join([*RUNNER_PYTHONS, '"$(command -v python3)"'])
    return (
        f"for python in {candidates}; do "
        'if [ -x "$python" ]; then exec "$python" -I -S -c "$0" "$@"; fi; done; exit 127'
    )


def runner_arguments(
    nonce: str, scratch: str, tail_bytes: int, checks: Sequence[CheckCommand]
) -> list[str] | None:
    """The runner's arguments (see check_batch_runner.py), or None when they cannot be
    passed: a NUL cannot be in an argument, and one argument is limited in size."""
    arguments = [nonce, scratch, str(tail_bytes), repr(KILL_GRACE_S)]
    for check in checks:
        arguments += [repr(float(check.timeout_seconds)), check.command]
    if any("\0" in argument for argument in arguments):
        return None
    if sum(len(argument.encode()) for argument in arguments) > MAX_SPEC_BYTES:
        return None
    return arguments


@dataclass(frozen=True)
class RawOutcome:
    """One command's outcome as the runner saw it; output tails still raw bytes."""

    exit_code: int | None
    timed_out: bool
    duration_s: float
    stdout_tail: bytes
    stderr_tail: bytes


class _RunnerResult(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    exit_code: int | None
    timed_out: bool
    duration_s: float = Field(ge=0)
    stdout_tail: str
    stderr_tail: str


class _RunnerAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    nonce: str
    results: list[_RunnerResult]


def read_tail(path: Path, max_bytes: int) -> bytes:
    """The last max_bytes of a regular file, never through a symlink."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        handle.seek(max(0, size - max_bytes))
        return handle.read(max_bytes)


def run_batch(
    sandbox: Sandbox,
    checks: Sequence[CheckCommand],
    *,
    env: Mapping[str, str],
    tail_bytes: int,
) -> list[RawOutcome] | None:
    """The outcomes of all checks from one sandbox process, or None: run them one by one."""
    nonce = secrets.token_hex(16)
    arguments = runner_arguments(nonce, f"{sandbox.paths.home}/tmp", tail_bytes, checks)
    if arguments is None:
        return None
    timeout_s = sum(check.timeout_seconds + KILL_GRACE_S for check in checks) + MARGIN_S
    # Base64 grows the tails by a third; the rest of each entry is small.
    answer_cap = len(checks) * (tail_bytes * 4 // 3 + 512) + 512
    with tempfile.TemporaryDirectory(prefix="scylla-checks-") as scratch:
        stdout_path = Path(scratch) / "stdout"
        try:
            outcome = sandbox.run(
                ["bash", "-c", _start_runner(), RUNNER_SOURCE, *arguments],
                env=env,
                timeout_s=timeout_s,
                stdout_path=stdout_path,
                stderr_path=Path(scratch) / "stderr",
            )
        except SandboxError:
            return None  # no bash in the sandbox's PATH: neither would run_check work
        if outcome.exit_code != 0:
            return None
        raw = read_tail(stdout_path, answer_cap + 1)
    if len(raw) > answer_cap:
        return None
    return _parse(raw, nonce, len(checks))


def _parse(raw: bytes, nonce: str, count: int) -> list[RawOutcome] | None:
    try:
        answer = _RunnerAnswer.model_validate_json(raw)
        if answer.nonce != nonce or len(answer.results) != count:
            return None
        return [
            RawOutcome(
                exit_code=result.exit_code,
                timed_out=result.timed_out,
                duration_s=result.duration_s,
                stdout_tail=base64.b64decode(result.stdout_tail, validate=True),
                stderr_tail=base64.b64decode(result.stderr_tail, validate=True),
            )
            for result in answer.results
        ]
    except (ValidationError, binascii.Error, ValueError):
        return None

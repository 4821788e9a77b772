"""The contract every sandbox implements: run one process for one run, isolated.

A run owns three host directories (``RunDirs``). A sandbox decides how the process
sees them (``SandboxPaths``): the local sandbox shows the host paths as they are, the
docker sandbox bind-mounts them at fixed paths inside the container. Agents and checks
build their command lines from ``SandboxPaths`` only, so the same agent code runs in
every sandbox.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pytest_scylla.redact import Redactor

# A predicate over each complete line of stdout (bytes, newline included): True means the
# process has said its last word (Claude Code's final ``result`` event), and whatever it
# keeps running after that (a background step) is killed after a short grace.
StopWhen = Callable[[bytes], bool]


@dataclass(frozen=True)
class RunDirs:
    """Host directories that belong to one run."""

    workspace: Path  # the agent's git checkout, read-write
    home: Path  # the agent's private HOME, read-write
    inputs: Path  # prompt file and agent inputs, read-only for the process

    def all(self) -> tuple[Path, Path, Path]:
        """The three directories: workspace, home, inputs."""
        return self.workspace, self.home, self.inputs


@dataclass(frozen=True)
class SandboxPaths:
    """The same directories as the sandboxed process sees them."""

    workspace: str
    home: str
    inputs: str


@dataclass(frozen=True)
class ProcessOutcome:
    """How one sandboxed process ended."""

    exit_code: int | None  # None when it was killed before it exited by itself
    timed_out: bool
    duration_s: float
    # stop_when matched and the process tree was ended by the sandbox after the grace.
    stopped_after_last_word: bool = False
    # The run's workspace and home outgrew the disk limit and the process tree was killed
    # (sandbox/disk_guard.py).
    disk_limit_exceeded: bool = False


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the process inside it): an infrastructure error."""


class Sandbox(Protocol):
    """One open sandbox for one run; processes run in it one after the other."""

    paths: SandboxPaths

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        timeout_s: float,
        stdout_path: Path,
        stderr_path: Path,
        cwd: str | None = None,
        redactor: Redactor | None = None,
        stop_when: StopWhen | None = None,
    ) -> ProcessOutcome:
        """Run argv to completion or until timeout_s, killing its whole process tree then.

        ``env`` is the complete environment (nothing of the caller's leaks in);
        ``cwd`` defaults to ``paths.workspace``; output goes to the two host files, through
        ``redact.StreamRedactor`` when a redactor is given (redacted as it is written, so an
        interrupted run leaves no raw secret on disk). ``stop_when`` (see StopWhen) ends
        the run once the process has said its last word. Nothing the process started, in
        any session or process group, outlives the call.
        """
        ...

    def close(self) -> None:
        """Release everything the sandbox holds; safe to call twice."""
        ...


class SandboxFactory(Protocol):
    """Opens sandboxes; one factory per pytest session (per xdist worker)."""

    name: str

    def check_available(self) -> str | None:
        """None when usable, else one line saying what is missing and how to fix it."""
        ...

    def open(self, dirs: RunDirs, labels: Mapping[str, str]) -> Sandbox:
        """Open a sandbox over these run directories; labels identify session and run.

        Creates the three directories and ``home/tmp`` (``base_env`` points TMPDIR there)
        when missing, so every process run in the sandbox finds them.
        """
        ...

    def sweep_stale(self) -> int:
        """Remove leftovers of earlier, killed sessions; returns how many were removed."""
        ...

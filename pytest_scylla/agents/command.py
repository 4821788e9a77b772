"""Any CLI agent from a command template, plus what every process-running agent shares.

The template may use ``{prompt_file}``, ``{workspace}`` and ``{model}``; values are
shell-quoted before the template is split like a shell would, so a path with spaces stays
one argument. Nothing else in the template is interpreted (braces of JSON or ``${VAR}`` stay
as written). Such an agent reports no tokens and no cost: the record says only how the
process ended.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel

from pytest_scylla.agents.base import (
    COMMAND_FILE,
    PROMPT_FILE_NAME,
    STDERR_FILE,
    STDOUT_FILE,
    AgentRequest,
    base_env,
)
from pytest_scylla.records import AgentRecord, atomic_write_json
from pytest_scylla.redact import secrets_from_env
from pytest_scylla.sandbox.base import ProcessOutcome, Sandbox, SandboxError, StopWhen

TAIL_CHARS = 4000
PLACEHOLDERS = ("prompt_file", "workspace", "model")


class CommandRecord(BaseModel):
    """``agent/command.json``: how the agent was started, secrets redacted."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    timeout_s: float
    prompt_via_stdin: bool = False
    cli_version: str | None = None


def runs_on_host(request: AgentRequest, sandbox: Sandbox) -> bool:
    """A sandbox that shows the run directories at their host paths runs on the host."""
    return sandbox.paths.workspace == str(request.dirs.workspace)


def host_path(request: AgentRequest, sandbox: Sandbox) -> str | None:
    """On the host the agent needs the host's tools; a container has its own PATH."""
    return os.environ.get("PATH") if runs_on_host(request, sandbox) else None


def read_tail(path: Path, chars: int = TAIL_CHARS) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - chars))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def tail_line(text: str) -> str:
    """The last non-empty line, stripped and cut to 300 characters ("" when none)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def run_logged(
    request: AgentRequest,
    sandbox: Sandbox,
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    prompt_via_stdin: bool = False,
    cli_version: str | None = None,
    stop_when: StopWhen | None = None,
) -> ProcessOutcome:
    """Save ``command.json`` (secrets redacted) and run argv, its output redacted as the
    sandbox writes it: a run interrupted by Ctrl-C or a kill leaves no raw secret behind.

    ``stop_when`` goes to the sandbox (see ``sandbox.base.StopWhen``). Raises SandboxError
    when the process could not be started.
    """
    agent_dir = request.agent_dir
    agent_dir.mkdir(parents=True, exist_ok=True)
    redactor = request.redactor
    for secret in secrets_from_env(env):
        redactor.add(secret)
    atomic_write_json(
        agent_dir / COMMAND_FILE,
        CommandRecord(
            argv=[redactor(arg) for arg in argv],
            env=redactor.env(env),
            cwd=sandbox.paths.workspace,
            timeout_s=request.timeout_s,
            prompt_via_stdin=prompt_via_stdin,
            cli_version=cli_version,
        ),
    )
    stdout_path, stderr_path = agent_dir / STDOUT_FILE, agent_dir / STDERR_FILE
    outcome = sandbox.run(
        list(argv),
        env=env,
        timeout_s=request.timeout_s,
        stdout_path=stdout_path,
        stderr_path=stderr_path,
        redactor=redactor,
        stop_when=stop_when,
    )
    return outcome


def run_process_agent(
    name: str,
    request: AgentRequest,
    sandbox: Sandbox,
    argv: Sequence[str],
    env: Mapping[str, str],
) -> AgentRecord:
    """Run one agent process; save command.json, stdout and stderr; say how it ended.

    A process that cannot start is an infrastructure error (``finished`` False, redone on
    resume). A timeout or a non-zero exit is the agent's own end: its workspace is graded.
    """
    try:
        outcome = run_logged(request, sandbox, argv, env)
    except SandboxError as error:
        return AgentRecord(
            agent=name,
            model=request.model,
            finished=False,
            error_reason=request.redactor(f"could not start the agent: {error}"),
        )
    stderr_path = request.agent_dir / STDERR_FILE
    reason = None
    if outcome.timed_out:
        reason = f"timed out after {request.timeout_s:g} s"
    elif outcome.disk_limit_exceeded:
        reason = "killed: its workspace and home outgrew the sandbox's disk limit"
    elif outcome.exit_code != 0:
        detail = tail_line(read_tail(stderr_path))
        reason = f"exited with code {outcome.exit_code}" + (f": {detail}" if detail else "")
    return AgentRecord(
        agent=name,
        model=request.model,
        exit_code=outcome.exit_code,
        timed_out=outcome.timed_out,
        is_error=outcome.exit_code != 0 and not outcome.timed_out,
        error_reason=reason,
        duration_s=outcome.duration_s,
    )


def render_template(template: str, values: Mapping[str, str]) -> list[str]:
    text = template
    for key in PLACEHOLDERS:
        text = text.replace("{" + key + "}", shlex.quote(values.get(key, "")))
    return shlex.split(text)


class CommandAgent:
    name = "command"

    def __init__(self, template: str) -> None:
        if not template.strip():
            raise ValueError("the command agent needs a non-empty command template")
        self.template = template

    def prepare_inputs(self, request: AgentRequest) -> None:
        return None

    def build_argv(self, request: AgentRequest, sandbox: Sandbox) -> list[str]:
        return render_template(
            self.template,
            {
                "prompt_file": f"{sandbox.paths.inputs}/{PROMPT_FILE_NAME}",
                "workspace": sandbox.paths.workspace,
                "model": request.model or "",
            },
        )

    def build_env(self, request: AgentRequest, sandbox: Sandbox) -> dict[str, str]:
        env = base_env(sandbox, host_path(request, sandbox))
        env.update(request.passthrough_env)
        return env

    def run(self, request: AgentRequest, sandbox: Sandbox) -> AgentRecord:
        return run_process_agent(
            self.name,
            request,
            sandbox,
            self.build_argv(request, sandbox),
            self.build_env(request, sandbox),
        )

    def parse_saved(self, agent_dir: Path, previous: AgentRecord) -> AgentRecord:
        return previous.model_copy()  # the output has no structure to read more from

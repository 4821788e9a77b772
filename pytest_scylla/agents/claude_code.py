"""The Claude Code agent: the real ``claude`` CLI in print mode, streaming JSON.

What we learned about the CLI (2.1.x) and rely on here, each pinned by a test:

* ``--dangerously-skip-permissions`` refuses to start as root unless ``IS_SANDBOX=1``.
* It retries a failing API call itself (``system``/``api_retry`` events; 10 retries with
  backoff by default, about 3 minutes for a 401), then prints a synthetic assistant message
  and a ``result`` with ``is_error``, ``api_error_status`` (or ``api_error`` such as
  ``connection_failed``) and ``terminal_reason: api_error``; exit code 1.
* Max turns end with ``subtype: error_max_turns`` and exit code 1: the agent's own end.
* With ``-p`` and no prompt argument it reads the prompt from stdin, which is how a prompt
  larger than one command-line argument may hold (128 KiB on Linux) gets in.
* A Bash step started with ``run_in_background`` keeps the CLI running after its final
  ``result`` event, until the step ends (a server: until the run's timeout). The run ends
  at that event instead (``is_final_event``, the sandbox's ``stop_when``).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from pytest_scylla.agents.base import (
    PROMPT_FILE_NAME,
    STDERR_FILE,
    STDOUT_FILE,
    AgentRequest,
    base_env,
)
from pytest_scylla.agents.claude_stream import StreamSummary, parse_stream_file
from pytest_scylla.agents.command import (
    host_path,
    read_tail,
    run_logged,
    runs_on_host,
    tail_line,
)
from pytest_scylla.credentials import LOGIN_FILE_NAME
from pytest_scylla.records import AgentRecord
from pytest_scylla.sandbox.base import ProcessOutcome, Sandbox, SandboxError

AGENT_NAME = "claude-code"
# Linux caps a single argument at 128 KiB (MAX_ARG_STRLEN); bigger prompts go through stdin.
PROMPT_ARG_LIMIT = 100_000
QUIET_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
}
_VERSION = re.compile(r"\d+\.\d+\.\d+\S*")
CONFIG_DIR_NAME = ".claude"  # the run's CLAUDE_CONFIG_DIR, under its private home


class ClaudeNotFound(RuntimeError):
    pass


def login_target(request: AgentRequest, sandbox: Sandbox) -> Path | None:
    """Where this run's copy of the Claude login goes, None when it needs none here.

    On the host (local sandbox, bubblewrap) a 0400 copy goes into the run's private
    ``CLAUDE_CONFIG_DIR`` (under the run's home, never under results) and is deleted when
    the CLI ends. A container gets a read-only bind mount from its factory instead
    (``DockerSettings.mount_credentials``, made automatic by the preflight).
    """
    if request.login is None or not runs_on_host(request, sandbox):
        return None
    return request.dirs.home / CONFIG_DIR_NAME / LOGIN_FILE_NAME


def is_final_event(line: bytes) -> bool:
    """Whether a stdout line is the stream's final ``{"type": "result", ...}`` event.

    The CLI prints it last; a background step it started may keep it alive afterwards,
    which must not hold the run until its timeout (the sandbox ends it after a grace).
    """
    if b'"result"' not in line:  # cheap: most lines are not even candidates
        return False
    try:
        event = json.loads(line)
    except ValueError:
        return False
    return isinstance(event, dict) and event.get("type") == "result"


def bundled_claude() -> Path | None:
    """The CLI shipped inside the ``claude-agent-sdk`` wheel, when that is installed."""
    # find_spec locates the package without importing it (the import costs ~0.5 s).
    spec = importlib.util.find_spec("claude_agent_sdk")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "_bundled" / "claude"
    return path if path.is_file() else None


def find_claude(claude_bin: str | None = None) -> str:
    """The option, else ``claude`` on PATH, else the SDK's bundled binary."""
    if claude_bin:
        found = shutil.which(claude_bin)
        if found is None:
            raise ClaudeNotFound(f"Claude Code CLI {claude_bin!r} not found or not executable")
        return found
    found = shutil.which("claude")
    if found is not None:
        return found
    bundled = bundled_claude()
    if bundled is not None:
        return str(bundled)
    raise ClaudeNotFound(
        "Claude Code CLI not found: install it (npm i -g @anthropic-ai/claude-code, or "
        "pip install claude-agent-sdk) or pass its path"
    )


def decide(
    summary: StreamSummary,
    *,
    agent: str,
    model: str | None,
    exit_code: int | None,
    timed_out: bool,
    duration_s: float,
    timeout_s: float | None,
    stderr: str,
    cli_version: str | None,
) -> AgentRecord:
    """Turn the parsed output and how the process ended into the run's agent record.

    ``finished`` is False (an error, redone on resume) only when the stream shows the API
    failed the agent after the CLI's own retries, or the CLI never started a session (no
    init event: it refused its options or could not run). A timeout, a non-zero exit or a
    missing result event after the session started is the agent's own end: the workspace is
    graded as it stands (``timed_out``, ``exit_code`` and ``error_reason`` say how it ended).
    """
    fields = summary.record_fields()
    reason: str | None = fields.pop("error_reason")
    fields.pop("duration_s")  # wall time from the sandbox is what we report
    parsed_version = fields.pop("cli_version")
    finished = True
    if timed_out:
        limit = f" after {timeout_s:g} s" if timeout_s else ""
        reason = f"timed out{limit}" + ("" if summary.result is None else f" ({reason})")
    elif summary.result is None:
        detail = tail_line(stderr)
        reason = f"CLI exited with code {exit_code} without a result event" + (
            f": {detail}" if detail else ""
        )
        if summary.api_error_status is not None:
            reason += f" (last API error: HTTP {summary.api_error_status})"
    never_started = summary.init is None and summary.result is None and not timed_out
    if (
        never_started
        or summary.api_failed
        or (summary.result is None and summary.api_error_status is not None)
    ):
        finished = False
    return AgentRecord(
        agent=agent,
        model=model or summary.model,
        cli_version=parsed_version or cli_version,
        exit_code=exit_code,
        timed_out=timed_out,
        finished=finished,
        error_reason=reason,
        duration_s=duration_s,
        **fields,
    )


class ClaudeCodeAgent:
    name = AGENT_NAME

    def __init__(self, claude_bin: str | None = None, extra_env: Mapping[str, str] | None = None):
        self.claude_bin = claude_bin
        self.extra_env = dict(extra_env or {})

    @functools.cached_property
    def binary(self) -> str:
        return find_claude(self.claude_bin)

    @functools.cache  # noqa: B019 - one agent per session; the version never changes in it
    def cli_version(self) -> str | None:
        """The host CLI's version (``claude --version``), None when it cannot be asked."""
        try:
            done = subprocess.run(
                [self.binary, "--version"],
                capture_output=True,
                text=True,
                timeout=60,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DISABLE_AUTOUPDATER": "1"},
            )
        except (ClaudeNotFound, OSError, subprocess.TimeoutExpired):
            return None
        match = _VERSION.search(done.stdout)
        return match.group(0) if match else None

    def prepare_inputs(self, request: AgentRequest) -> None:
        return None  # the prompt file is all the CLI needs

    def build_argv(self, request: AgentRequest, sandbox: Sandbox, prompt: str) -> list[str]:
        flags = ["--output-format", "stream-json", "--verbose"]
        if request.model:
            flags += ["--model", request.model]
        flags.append("--dangerously-skip-permissions")
        tools = request.subtest.resources.tools
        # One comma-joined value each: the options are variadic and would swallow what follows.
        # --tools limits which built-in tools exist; --allowedTools would only pre-approve
        # them, which --dangerously-skip-permissions makes meaningless.
        if tools.allowed is not None:
            flags += ["--tools", ",".join(tools.allowed)]
        if tools.disallowed:
            flags += ["--disallowedTools", ",".join(tools.disallowed)]
        flags += request.subtest.spec.extra_args
        # A host path means nothing inside a container: there the image's own `claude` runs.
        binary = self.binary if runs_on_host(request, sandbox) else self.claude_bin or "claude"
        if len(prompt.encode("utf-8")) <= PROMPT_ARG_LIMIT:
            return [binary, "-p", prompt, *flags]
        prompt_path = f"{sandbox.paths.inputs}/{PROMPT_FILE_NAME}"
        # sh's $0 is the prompt file; "$@" is the CLI command, fed the prompt on stdin.
        return ["/bin/sh", "-c", 'exec "$@" < "$0"', prompt_path, binary, "-p", *flags]

    def build_env(self, request: AgentRequest, sandbox: Sandbox) -> dict[str, str]:
        """The CLI's whole environment: the scrubbed base, the quiet switches, a private
        config dir (where a login copy goes, ``login_target``) and the credentials
        ``credentials.claude_code_credentials`` chose, passed through by the runner."""
        on_host = runs_on_host(request, sandbox)
        env = base_env(sandbox, host_path(request, sandbox))
        env.update(QUIET_ENV)
        env["CLAUDE_CONFIG_DIR"] = f"{sandbox.paths.home}/{CONFIG_DIR_NAME}"
        if on_host and os.geteuid() == 0:
            # The CLI refuses --dangerously-skip-permissions as root without this.
            env["IS_SANDBOX"] = "1"
        env.update(request.passthrough_env)
        env.update(self.extra_env)
        return env

    def run(self, request: AgentRequest, sandbox: Sandbox) -> AgentRecord:
        (request.dirs.home / CONFIG_DIR_NAME).mkdir(parents=True, exist_ok=True)
        try:
            prompt = (request.dirs.inputs / PROMPT_FILE_NAME).read_text(encoding="utf-8")
            argv = self.build_argv(request, sandbox, prompt)
        except (OSError, ClaudeNotFound) as error:
            return self._not_started(request, f"could not start the CLI: {error}")
        env = self.build_env(request, sandbox)
        login_copy = login_target(request, sandbox)
        if login_copy is not None and request.login is not None:
            try:
                request.login.write_copy(login_copy)
            except OSError as error:
                login_copy.unlink(missing_ok=True)
                return self._not_started(request, f"could not give the CLI its login: {error}")
        try:
            return self._run_cli(request, sandbox, argv, env)
        finally:
            # The after-checks run in the same sandbox: they must not find the login.
            if login_copy is not None:
                login_copy.unlink(missing_ok=True)

    def _run_cli(
        self, request: AgentRequest, sandbox: Sandbox, argv: list[str], env: dict[str, str]
    ) -> AgentRecord:
        try:
            outcome = run_logged(
                request,
                sandbox,
                argv,
                env,
                prompt_via_stdin="-c" in argv[:2],
                cli_version=self.cli_version() if runs_on_host(request, sandbox) else None,
                stop_when=is_final_event,
            )
        except SandboxError as error:
            return self._not_started(request, f"could not start the CLI: {error}")
        # No fallback version here: the live record's cli_version comes from the stream alone.
        return self._decide_saved(
            request.agent_dir, request.model, outcome, request.timeout_s, cli_version=None
        )

    def _decide_saved(
        self,
        agent_dir: Path,
        model: str | None,
        outcome: ProcessOutcome,
        timeout_s: float | None,
        *,
        cli_version: str | None,
    ) -> AgentRecord:
        """decide() over the saved stdout.jsonl and the tail of stderr.log."""
        return decide(
            parse_stream_file(agent_dir / STDOUT_FILE),
            agent=self.name,
            model=model,
            exit_code=outcome.exit_code,
            timed_out=outcome.timed_out,
            duration_s=outcome.duration_s,
            timeout_s=timeout_s,
            stderr=read_tail(agent_dir / STDERR_FILE),
            cli_version=cli_version,
        )

    def _not_started(self, request: AgentRequest, reason: str) -> AgentRecord:
        return AgentRecord(
            agent=self.name,
            model=request.model,
            finished=False,
            is_error=False,
            error_reason=request.redactor(reason),
        )

    def parse_saved(self, agent_dir: Path, previous: AgentRecord) -> AgentRecord:
        """Rebuild from ``stdout.jsonl``; what only the live run knew comes from previous."""
        outcome = ProcessOutcome(previous.exit_code, previous.timed_out, previous.duration_s)
        record = self._decide_saved(
            agent_dir, previous.model, outcome, None, cli_version=previous.cli_version
        )
        if previous.timed_out and previous.error_reason:
            record.error_reason = previous.error_reason  # it knew the limit; we do not
        return record

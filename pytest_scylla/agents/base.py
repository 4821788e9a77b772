"""The contract every agent implements, and what an agent gets for one run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pytest_scylla.credentials import LoginFile
from pytest_scylla.records import AgentRecord
from pytest_scylla.redact import Redactor, SecretEnv
from pytest_scylla.sandbox.base import RunDirs, Sandbox
from pytest_scylla.spec.catalogue import ResolvedSubTest
from pytest_scylla.spec.load_experiment import Experiment

PROMPT_FILE_NAME = "prompt.md"
STDOUT_FILE = "stdout.jsonl"
STDERR_FILE = "stderr.log"
COMMAND_FILE = "command.json"


@dataclass(frozen=True)
class AgentRequest:
    """Everything one agent run needs. Paths are host paths; the sandbox maps them."""

    experiment: Experiment
    subtest: ResolvedSubTest
    model: str | None
    timeout_s: float
    dirs: RunDirs  # dirs.inputs holds PROMPT_FILE_NAME
    agent_dir: Path  # results/.../run-03/agent: stdout.jsonl, stderr.log, command.json
    # Variables the agent process may see beyond the scrubbed base (API key, base URL...).
    # Held as a SecretEnv: a traceback prints the request, and must not print the key.
    passthrough_env: Mapping[str, str] = field(default_factory=SecretEnv)
    redactor: Redactor = field(default_factory=Redactor)
    # The Claude login to give a Claude Code agent, when it is the only credential
    # (credentials.claude_code_credentials); its repr hides the tokens.
    login: LoginFile | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.passthrough_env, SecretEnv):
            object.__setattr__(self, "passthrough_env", SecretEnv(self.passthrough_env))


class Agent(Protocol):
    name: str

    def prepare_inputs(self, request: AgentRequest) -> None:
        """Put agent-specific inputs into request.dirs.inputs before the sandbox opens."""
        ...

    def run(self, request: AgentRequest, sandbox: Sandbox) -> AgentRecord:
        """Run the agent to its end in the sandbox; save its output under agent_dir."""
        ...

    def parse_saved(self, agent_dir: Path, previous: AgentRecord) -> AgentRecord:
        """Rebuild the record from the saved output (for --scylla-regenerate)."""
        ...


def base_env(sandbox: Sandbox, host_path: str | None) -> dict[str, str]:
    """The scrubbed environment every agent starts from: nothing of the caller's leaks in."""
    return {
        "PATH": host_path or "/usr/local/bin:/usr/bin:/bin",
        "HOME": sandbox.paths.home,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": f"{sandbox.paths.home}/tmp",
        "GIT_AUTHOR_NAME": "scylla-agent",
        "GIT_AUTHOR_EMAIL": "agent@scylla.invalid",
        "GIT_COMMITTER_NAME": "scylla-agent",
        "GIT_COMMITTER_EMAIL": "agent@scylla.invalid",
    }

"""The agent that does nothing: a correct grader must fail it."""

from __future__ import annotations

from pathlib import Path

from pytest_scylla.agents.base import STDERR_FILE, STDOUT_FILE, AgentRequest
from pytest_scylla.records import AgentRecord
from pytest_scylla.sandbox.base import Sandbox


class NopAgent:
    name = "nop"

    def prepare_inputs(self, request: AgentRequest) -> None:
        return None

    def run(self, request: AgentRequest, sandbox: Sandbox) -> AgentRecord:
        # Empty output files, so every run has the same files to look at.
        request.agent_dir.mkdir(parents=True, exist_ok=True)
        (request.agent_dir / STDOUT_FILE).write_text("")
        (request.agent_dir / STDERR_FILE).write_text("")
        return AgentRecord(agent=self.name, model=request.model, exit_code=0, finished=True)

    def parse_saved(self, agent_dir: Path, previous: AgentRecord) -> AgentRecord:
        return previous.model_copy()

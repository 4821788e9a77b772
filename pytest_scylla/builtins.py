"""The built-in agents, sandboxes and judges, reached through our own factory hooks.

Every implementation here is `trylast`, as xdist ships its schedulers through its own
`pytest_xdist_make_scheduler`: a conftest.py or plugin that answers a name first replaces
ours, one that answers a new name adds it. Imports are local: the plugin loads this module
in every pytest run, and most runs make nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_scylla.hooks import NameKind

if TYPE_CHECKING:
    from pytest_scylla.agents.base import Agent
    from pytest_scylla.judges.llm import Judge
    from pytest_scylla.sandbox.base import SandboxFactory

AGENTS = ("claude-code", "command", "oracle", "nop")
SANDBOXES = ("local", "docker")


@pytest.hookimpl(trylast=True)
def pytest_scylla_known_names(config: pytest.Config, kind: NameKind) -> list[str]:
    if kind == "agent":
        return list(AGENTS)
    if kind == "sandbox":
        return list(SANDBOXES)
    from pytest_scylla.models import priced_models

    return priced_models()


@pytest.hookimpl(trylast=True)
def pytest_scylla_make_agent(config: pytest.Config, name: str) -> Agent | None:
    from pytest_scylla.collect import scylla_session

    settings = scylla_session(config).settings
    return make_agent(name, claude_bin=settings.claude_bin, command_template=settings.agent_command)


def make_agent(
    name: str, *, claude_bin: str | None = None, command_template: str | None = None
) -> Agent | None:
    if name == "claude-code":
        from pytest_scylla.agents.claude_code import ClaudeCodeAgent

        return ClaudeCodeAgent(claude_bin=claude_bin)
    if name == "command":
        from pytest_scylla.agents.command import CommandAgent

        if not command_template or not command_template.strip():
            raise ValueError(
                "agent 'command' needs a command template, e.g. "
                "'my-agent --prompt-file {prompt_file} --model {model}' "
                "(placeholders: {prompt_file}, {workspace}, {model})"
            )
        return CommandAgent(command_template)
    if name == "oracle":
        from pytest_scylla.agents.oracle import OracleAgent

        return OracleAgent()
    if name == "nop":
        from pytest_scylla.agents.nop import NopAgent

        return NopAgent()
    return None


@pytest.hookimpl(trylast=True)
def pytest_scylla_make_sandbox(config: pytest.Config, name: str) -> SandboxFactory | None:
    if name not in SANDBOXES:
        return None
    from pytest_scylla.collect import scylla_session
    from pytest_scylla.session import make_sandbox_factory

    session = scylla_session(config)
    return make_sandbox_factory(
        session.settings.model_copy(update={"sandbox": name}),
        session.session_id,
        session.hidden_paths(),
    )


@pytest.hookimpl(trylast=True)
def pytest_scylla_make_judge(config: pytest.Config, model: str) -> Judge | None:
    from pytest_scylla.collect import scylla_session

    runner = scylla_session(config).judge_runner()
    if runner is None:  # LLM judging is off: nothing to make a judge with
        return None
    return runner.llm_judge(model)

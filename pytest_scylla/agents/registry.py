"""Agents by name, as the command line chooses them."""

from __future__ import annotations

from typing import Literal

from pytest_scylla.agents.base import Agent
from pytest_scylla.agents.claude_code import ClaudeCodeAgent
from pytest_scylla.agents.command import CommandAgent
from pytest_scylla.agents.nop import NopAgent
from pytest_scylla.agents.oracle import OracleAgent

AgentName = Literal["claude-code", "command", "oracle", "nop"]
AGENT_NAMES: tuple[AgentName, ...] = ("claude-code", "command", "oracle", "nop")


def make_agent(
    name: AgentName, *, claude_bin: str | None = None, command_template: str | None = None
) -> Agent:
    if name == "claude-code":
        return ClaudeCodeAgent(claude_bin=claude_bin)
    if name == "command":
        if not command_template or not command_template.strip():
            raise ValueError(
                "agent 'command' needs a command template, e.g. "
                "'my-agent --prompt-file {prompt_file} --model {model}' "
                "(placeholders: {prompt_file}, {workspace}, {model})"
            )
        return CommandAgent(command_template)
    if name == "oracle":
        return OracleAgent()
    if name == "nop":
        return NopAgent()
    raise ValueError(f"unknown agent {name!r} (known: {', '.join(AGENT_NAMES)})")

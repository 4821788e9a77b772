"""`--scylla-fake-api SCRIPT`: a scripted Messages API on loopback for one pytest session.

The real agent (Claude Code) and the real judge code run against it at zero cost: the
agent's turns come from the experiment's dry-run script, and judge requests (a forced
`submit_judgment` tool call) are answered from the script's optional `judge:` section:

    judge:
      default_fraction: 1.0      # share of each item's points given when not listed
      items: {OQ1: 1.5}          # points for named items; null = N/A
      reasoning: "dry run"

A dry run proves the pipeline works; its scores say nothing about a model.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from pytest_scylla.judges.cli_judge import STRUCTURED_OUTPUT_TOOL
from pytest_scylla.judges.prompt import ANSWER_TOOL_NAME
from pytest_scylla.testing.fake_api import (
    FakeMessagesAPI,
    RecordedRequest,
    Reply,
    ReplyLike,
    ToolCall,
)
from pytest_scylla.testing.scripted_model import DryRunScript, texts

DRY_RUN_KEY = "sk-scylla-dry-run-not-a-secret"
_ITEM_LINE = re.compile(
    r"^- `(?P<id>[^`]+)` \(max (?P<points>[0-9.]+) points, (?P<kind>[^)]*)\)", re.M
)
_SERVER_KEY: pytest.StashKey[FakeMessagesAPI] = pytest.StashKey()
# The user's credentials, out of the environment while the fake server answers.
_HIDDEN_CREDENTIALS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")


class ScriptedJudgeAnswers(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_fraction: float = Field(default=1.0, ge=0, le=1)
    items: dict[str, float | None] = Field(default_factory=dict)
    reasoning: str = "Scripted judgment of a dry run (no model was asked)."


class DryRunResponder:
    """Agent turns from the script; judge calls from its judge section."""

    def __init__(self, script: DryRunScript, judge: ScriptedJudgeAnswers) -> None:
        self.agent = script.as_responder()
        self.judge_answers = judge

    def __call__(self, request: RecordedRequest) -> ReplyLike:
        choice = request.body.get("tool_choice") or {}
        if choice.get("type") == "tool" and choice.get("name") == ANSWER_TOOL_NAME:
            return self._judge(request.body)
        if _tool_names(request.body) == [STRUCTURED_OUTPUT_TOOL]:
            # The CLI judge backend (--judge-backend cli): the same answer, its tool's name.
            return self._judge(request.body, tool=STRUCTURED_OUTPUT_TOOL)
        return self.agent(request)

    def _judge(self, body: dict[str, Any], tool: str = ANSWER_TOOL_NAME) -> Reply:
        system = "\n".join(texts(body.get("system")))
        items_section = system.split("# Items to judge", 1)[-1].split("\n# ", 1)[0]
        answers = []
        for match in _ITEM_LINE.finditer(items_section):
            item_id = match["id"]
            maximum = float(match["points"])
            if item_id in self.judge_answers.items:
                points = self.judge_answers.items[item_id]
            else:
                points = maximum * self.judge_answers.default_fraction
                if match["kind"].startswith("binary"):
                    points = maximum if points >= maximum / 2 else 0.0
            answers.append(
                {"item_id": item_id, "achieved": points, "reason": "scripted dry-run answer"}
            )
        return Reply(
            tool_calls=[
                ToolCall(
                    name=tool,
                    input={"items": answers, "overall_reasoning": self.judge_answers.reasoning},
                )
            ]
        )


def _tool_names(body: dict[str, Any]) -> list[str]:
    return [tool.get("name", "") for tool in body.get("tools") or [] if isinstance(tool, dict)]


def load_responder(path: Path) -> DryRunResponder:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise pytest.UsageError(f"--scylla-fake-api {path}: {error}") from None
    judge = ScriptedJudgeAnswers.model_validate(data.pop("judge", None) or {})
    return DryRunResponder(DryRunScript.model_validate(data), judge)


def start_session_fake_api(config: pytest.Config, script_path: Path) -> FakeMessagesAPI:
    """Start the server before xdist spawns workers, so they inherit its address."""
    responder = load_responder(script_path)
    server = FakeMessagesAPI(responder).start()
    saved = {name: os.environ.get(name) for name in ("ANTHROPIC_BASE_URL", *_HIDDEN_CREDENTIALS)}
    os.environ["ANTHROPIC_BASE_URL"] = server.base_url
    # Never send a real key to a fake server, or let one reach its request log: the user's
    # token would go beside the dry-run key (and made the SDK refuse to build a judge).
    for name in _HIDDEN_CREDENTIALS:
        os.environ.pop(name, None)
    os.environ["ANTHROPIC_API_KEY"] = DRY_RUN_KEY
    config.stash[_SERVER_KEY] = server

    def stop() -> None:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    config.add_cleanup(stop)
    return server


def session_fake_api(config: pytest.Config) -> FakeMessagesAPI | None:
    return config.stash.get(_SERVER_KEY, None)

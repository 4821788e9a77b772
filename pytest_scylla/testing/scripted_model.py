"""Dry-run scripts: a scripted "model" that drives the real Claude Code CLI at zero cost.

An experiment can ship a small YAML file (for example ``dry-run.yaml``) that says what the
model answers at each turn. ``DryRunScript.as_responder()`` turns it into a responder for
``FakeMessagesAPI``::

    model: "claude-*"          # optional glob; other models get side replies
    turns:
      - tool_use: {name: Write, input: {file_path: hello.py, content: "print(1)\\n"}}
      - fault: 429             # delivered once per conversation, then the script goes on
        retry_after: 0
      - tool_use: [{name: Bash, input: {command: python3 hello.py}}]
      - text: Done.
        usage: {output_tokens: 12}

The step is derived from the request itself (how many assistant turns its ``messages``
already hold), never from a global counter, so any number of concurrent CLI sessions each
get their own next step. Faults are remembered per conversation (the CLI's session id) so a
retry of the same turn gets the real reply.

In texts and tool inputs, ``{cwd}`` is replaced by the CLI's working directory (the
"Primary working directory" the CLI puts in its prompt), and a relative ``file_path`` is made
absolute against it, because the CLI's file tools only take absolute paths.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pytest_scylla.testing.fake_api import (
    Fault,
    FaultKind,
    RecordedRequest,
    Reply,
    ReplyLike,
    ToolCall,
    UsageOverride,
)

CWD_PLACEHOLDER = "{cwd}"
# Tool input keys that the CLI requires to be absolute paths.
_PATH_KEYS = ("file_path", "notebook_path")
_PWD_RE = re.compile(r"Primary working directory: *(\S[^\n]*)")
# Faults whose reply the CLI keeps in its history as an assistant turn: they take a step.
_TURN_TAKING_FAULTS = ("invalid_tool_json", "schema_mismatch")


class ScriptToolUse(BaseModel):
    """One tool call: a tool name the CLI offers and its input."""

    model_config = ConfigDict(extra="forbid")

    name: str
    input: dict[str, Any] = Field(default_factory=dict)
    raw_input: str | None = None  # sent verbatim: for tool input that is not valid JSON


class ScriptTurn(BaseModel):
    """One step: a reply (text and/or tool calls) or a fault."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = None
    tool_use: list[ScriptToolUse] = Field(default_factory=list)
    stop_reason: str | None = None
    usage: UsageOverride | None = None
    delay_seconds: float = 0.0
    # fault steps
    fault: int | FaultKind | None = None
    times: int = Field(default=1, ge=1)  # consecutive requests that get this fault
    retry_after: float | None = None
    seconds: float | None = None
    after_events: int | None = None
    tool: str | None = None
    message: str | None = None

    @field_validator("tool_use", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _reply_or_fault(self) -> ScriptTurn:
        is_reply = self.text is not None or bool(self.tool_use)
        if self.fault is None and not is_reply:
            raise ValueError("a turn needs text, tool_use or fault")
        if self.fault is not None and is_reply:
            raise ValueError("a turn is either a reply (text/tool_use) or a fault, not both")
        return self

    @property
    def takes_turn(self) -> bool:
        """Whether the CLI records this step as an assistant turn."""
        return self.fault is None or self.to_fault().kind in _TURN_TAKING_FAULTS

    def to_fault(self) -> Fault:
        extra: dict[str, Any] = {
            k: v
            for k, v in {
                "retry_after": self.retry_after,
                "seconds": self.seconds,
                "after_events": self.after_events,
                "tool": self.tool,
                "message": self.message,
            }.items()
            if v is not None
        }
        if isinstance(self.fault, int):
            return Fault.from_status(self.fault, **extra)
        return Fault(kind=self.fault, **extra)  # type: ignore[arg-type]

    def to_reply(self, cwd: str | None) -> Reply:
        calls = [
            ToolCall(name=t.name, input=_fill_input(t.input, cwd), raw_input=t.raw_input)
            for t in self.tool_use
        ]
        return Reply(
            text=_fill(self.text, cwd),
            tool_calls=calls,
            stop_reason=self.stop_reason,
            usage=self.usage,
            delay_seconds=self.delay_seconds,
        )


class DryRunScript(BaseModel):
    """A whole dry-run script (the YAML file's top level)."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = None
    model: str | None = None  # glob the agent's model must match; None = any non-side model
    # With no `model`, requests for these models are side requests (the CLI's helper model).
    side_models: list[str] = Field(default_factory=lambda: ["*haiku*"])
    side_reply: str = "OK."
    after_script: str = "[dry-run script finished]"  # if the agent goes on past the last turn
    turns: list[ScriptTurn] = Field(min_length=1)

    def as_responder(self, cwd: str | os.PathLike[str] | None = None) -> ScriptResponder:
        """A responder for ``FakeMessagesAPI``; ``cwd`` is used when the request names none."""
        return ScriptResponder(self, None if cwd is None else str(cwd))

    def is_side_request(self, body: dict[str, Any]) -> bool:
        """Requests that are not the scripted agent's own turn (titles, summaries, ...)."""
        if not body.get("tools"):
            return True
        model = str(body.get("model") or "")
        if self.model is not None:
            return not fnmatch.fnmatch(model, self.model)
        return any(fnmatch.fnmatch(model, pattern) for pattern in self.side_models)


class ScriptResponder:
    """Answers each request with the script's step for that conversation's state."""

    def __init__(self, script: DryRunScript, cwd: str | None = None) -> None:
        self.script = script
        self.cwd = cwd
        self._lock = threading.Lock()
        # (conversation, turn index) -> how many times that fault step was delivered
        self._delivered: dict[tuple[str, int], int] = {}
        # Group turns into "slots": the faults that come before each turn-taking step.
        self._slots: list[tuple[list[int], int | None]] = []
        pending: list[int] = []
        for index, turn in enumerate(script.turns):
            if turn.takes_turn:
                self._slots.append((pending, index))
                pending = []
            else:
                pending.append(index)
        self._slots.append((pending, None))  # faults after the last reply

    def __call__(self, request: RecordedRequest) -> ReplyLike:
        body = request.body if isinstance(request.body, dict) else {}
        if self.script.is_side_request(body):
            return Reply(text=self.script.side_reply)
        step = assistant_turns(body.get("messages") or [])
        # Past the last slot the agent is going on by itself: no more faults, a closing text.
        faults, turn_index = self._slots[step] if step < len(self._slots) else ([], None)
        conversation = conversation_key(request)
        with self._lock:
            for index in faults:
                key = (conversation, index)
                if self._delivered.get(key, 0) < self.script.turns[index].times:
                    self._delivered[key] = self._delivered.get(key, 0) + 1
                    return self.script.turns[index].to_fault()
        if turn_index is None:
            return Reply(text=self.script.after_script)
        turn = self.script.turns[turn_index]
        if turn.fault is not None:
            return turn.to_fault()
        return turn.to_reply(working_directory(body) or self.cwd)


def assistant_turns(messages: list[Any]) -> int:
    """Assistant turns so far; consecutive assistant messages count once (the API merges them)."""
    turns, previous = 0, None
    for message in messages:
        role = message.get("role") if isinstance(message, dict) else None
        if role == "assistant" and previous != "assistant":
            turns += 1
        previous = role
    return turns


def conversation_key(request: RecordedRequest) -> str:
    """The CLI's session id when it sends one, else a hash of the conversation's start."""
    session = request.headers.get("x-claude-code-session-id")
    if session:
        return session
    body = request.body if isinstance(request.body, dict) else {}
    user_id = (body.get("metadata") or {}).get("user_id")
    if isinstance(user_id, str):
        try:
            session = json.loads(user_id).get("session_id")
        except (ValueError, AttributeError):
            session = None
        if session:
            return str(session)
    first = (body.get("messages") or [None])[0]
    start = json.dumps([body.get("system"), first], sort_keys=True, default=str)
    return hashlib.sha256(start.encode()).hexdigest()


def texts(value: Any) -> list[str]:
    """Every text in a Messages API value: a string, content blocks, or nested content."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for item in value for t in texts(item)]
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            return [value["text"]]
        return texts(value.get("content"))
    return []


def working_directory(body: dict[str, Any]) -> str | None:
    """The CLI's working directory as named in the request: in the system prompt or in a
    message before the first assistant turn (CLI 2.1.331 puts it in a ``system``-role
    message right after the first user message)."""
    messages = body.get("messages") or []
    opening = []
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "assistant":
            break
        opening.append(message)
    for text in texts(body.get("system")) + texts(opening):
        match = _PWD_RE.search(text)
        if match:
            return match.group(1).strip()
    return None


def _fill(value: Any, cwd: str | None) -> Any:
    if isinstance(value, str) and cwd is not None:
        return value.replace(CWD_PLACEHOLDER, cwd)
    if isinstance(value, list):
        return [_fill(v, cwd) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, cwd) for k, v in value.items()}
    return value


def _fill_input(data: dict[str, Any], cwd: str | None) -> dict[str, Any]:
    filled: dict[str, Any] = _fill(data, cwd)
    for key in _PATH_KEYS:
        path = filled.get(key)
        if isinstance(path, str) and cwd is not None and not os.path.isabs(path):
            filled[key] = os.path.join(cwd, path)
    return filled


def load_dry_run_script(path: str | os.PathLike[str]) -> DryRunScript:
    """Read and validate a dry-run script; errors name the file."""
    source = Path(path)
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
        return DryRunScript.model_validate(data)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise ValueError(f"{source}: invalid dry-run script: {exc}") from exc

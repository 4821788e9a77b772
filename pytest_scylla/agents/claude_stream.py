"""Parse what Claude Code prints into the fields of an AgentRecord.

Two shapes are understood:

* ``--output-format json``: one ``result`` object (what upstream recorded);
* ``--output-format stream-json --verbose``: one JSON object a line: ``system`` (``init``,
  ``api_retry``...), ``assistant``, ``user``, and a final ``result``.

Tokens come from the result's ``modelUsage``, which lists every model the CLI used, side
models (e.g. Haiku for titles and summaries) included: upstream read only the top-level
``usage``, which covers the main model alone. When the run was killed before the result,
tokens are summed from ``assistant`` events instead; the CLI prints an assistant event before
the reply's final ``message_delta``, so output tokens there are a lower bound.

The CLI changes often, so the event models are lenient (unknown fields and events are
ignored) and a garbage or truncated line is skipped, never fatal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pytest_scylla.records import TokenUsage

# The CLI's own stand-in model for messages it makes up (API error text, "Invalid API key").
SYNTHETIC_MODEL = "<synthetic>"
MAX_REASON_CHARS = 300


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class ModelUsage(_Lenient):
    """One entry of the result's ``modelUsage`` (camelCase, as the CLI writes it)."""

    inputTokens: int = 0  # the CLI's own (camelCase) field names
    outputTokens: int = 0
    cacheCreationInputTokens: int = 0
    cacheReadInputTokens: int = 0
    costUSD: float | None = None

    def tokens(self) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.inputTokens,
            output_tokens=self.outputTokens,
            cache_creation_input_tokens=self.cacheCreationInputTokens,
            cache_read_input_tokens=self.cacheReadInputTokens,
        )


class MessageUsage(_Lenient):
    """``usage`` of one API message (snake_case, as the Messages API writes it)."""

    input_tokens: int | None = 0
    output_tokens: int | None = 0
    cache_creation_input_tokens: int | None = 0
    cache_read_input_tokens: int | None = 0

    def tokens(self) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens or 0,
            output_tokens=self.output_tokens or 0,
            cache_creation_input_tokens=self.cache_creation_input_tokens or 0,
            cache_read_input_tokens=self.cache_read_input_tokens or 0,
        )


class AssistantMessage(_Lenient):
    id: str | None = None
    model: str | None = None
    usage: MessageUsage | None = None
    content: list[Any] = Field(default_factory=list)


class AssistantEvent(_Lenient):
    type: str = "assistant"
    message: AssistantMessage = AssistantMessage()
    # Set on the synthetic message the CLI prints when the API failed for good.
    is_api_error_message: bool = False
    api_error_status: int | None = None
    error: str | None = None


class SystemEvent(_Lenient):
    type: str = "system"
    subtype: str | None = None
    model: str | None = None
    claude_code_version: str | None = None  # init
    error_status: int | None = None  # api_retry
    error: str | None = None  # api_retry


class ResultEvent(_Lenient):
    type: str = "result"
    subtype: str | None = None  # success, error_max_turns, error_during_execution...
    is_error: bool = False
    duration_ms: float | None = None
    num_turns: int | None = None
    result: str | None = None
    total_cost_usd: float | None = None
    usage: MessageUsage | None = None
    modelUsage: dict[str, ModelUsage] | None = None
    api_error_status: int | None = None
    api_error: str | None = None  # e.g. "connection_failed" (no HTTP status then)
    terminal_reason: str | None = None  # completed, max_turns, api_error...
    errors: list[str] = Field(default_factory=list)


@dataclass
class StreamSummary:
    """What one Claude Code output says; ``result`` is None when the CLI never finished."""

    result: ResultEvent | None = None
    init: SystemEvent | None = None
    last_api_retry: SystemEvent | None = None
    last_api_error: AssistantEvent | None = None
    tokens_by_model: dict[str, TokenUsage] = field(default_factory=dict)
    events: int = 0
    skipped_lines: int = 0  # garbage, truncated or unknown-shaped lines

    @property
    def cli_version(self) -> str | None:
        return self.init.claude_code_version if self.init else None

    @property
    def model(self) -> str | None:
        return self.init.model if self.init else None

    @property
    def api_error_status(self) -> int | None:
        if self.result is not None and self.result.api_error_status is not None:
            return self.result.api_error_status
        if self.last_api_error is not None and self.last_api_error.api_error_status is not None:
            return self.last_api_error.api_error_status
        if self.result is None and self.last_api_retry is not None:
            return self.last_api_retry.error_status
        return None

    @property
    def api_failed(self) -> bool:
        """The API could not be used (unreachable, auth, 5xx...) even after the CLI's retries."""
        result = self.result
        if result is not None and (
            result.api_error_status is not None
            or result.api_error is not None
            or result.terminal_reason == "api_error"
        ):
            return True
        return self.last_api_error is not None and (result is None or result.is_error)

    @property
    def is_error(self) -> bool:
        return self.result.is_error if self.result is not None else False

    @property
    def error_reason(self) -> str | None:
        return _error_reason(self)

    def record_fields(self) -> dict[str, Any]:
        """The AgentRecord fields this output determines (the agent adds exit code etc.)."""
        result = self.result
        return {
            "cli_version": self.cli_version,
            "is_error": self.is_error,
            "error_reason": self.error_reason,
            "duration_s": (result.duration_ms or 0.0) / 1000.0 if result else 0.0,
            "turns": result.num_turns if result else None,
            "cost_usd": result.total_cost_usd if result else None,
            "tokens_by_model": dict(self.tokens_by_model),
            "result_text": result.result if result else None,
            "api_error_status": self.api_error_status,
        }


def _http_reason(status: int) -> str:
    if status == 401:
        return "authentication failed (HTTP 401)"
    if status == 403:
        return "permission denied (HTTP 403)"
    if status == 429:
        return "rate limited (HTTP 429)"
    if status == 529:
        return "API overloaded (HTTP 529)"
    if status >= 500:
        return f"API server error (HTTP {status})"
    return f"API error (HTTP {status})"


def _one_line(text: str | None) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= MAX_REASON_CHARS else line[: MAX_REASON_CHARS - 3] + "..."


def _with_detail(reason: str, detail: str | None) -> str:
    detail = _one_line(detail)
    return f"{reason}: {detail}" if detail else reason


def _error_reason(summary: StreamSummary) -> str | None:
    result = summary.result
    status = summary.api_error_status
    if result is None:
        reason = "no result event: the CLI stopped before it finished"
        if status is not None:
            reason += f" ({_http_reason(status)} while retrying)"
        return reason
    detail = result.result or "; ".join(result.errors) or None
    if status is not None:
        return _with_detail(_http_reason(status), detail)
    if result.api_error is not None or result.terminal_reason == "api_error":
        return _with_detail(f"API unreachable ({result.api_error or 'api_error'})", detail)
    subtype = result.subtype or ""
    if subtype == "error_max_turns" or result.terminal_reason == "max_turns":
        return _with_detail("maximum number of turns reached", "; ".join(result.errors))
    if "budget" in subtype:
        return _with_detail("budget limit reached", "; ".join(result.errors))
    if subtype.startswith("error"):
        return _with_detail(f"agent error ({subtype})", detail)
    if result.is_error:
        return _with_detail("the agent reported an error", detail)
    return None


def _events(text: str) -> list[dict[str, Any] | None]:
    """JSON objects in the output, one per line, or the whole text as one object or array."""
    stripped = text.strip()
    if stripped.startswith(("{", "[")) and "\n" in stripped:
        # A pretty-printed object or a JSON array (newer `--output-format json --verbose`).
        try:
            whole = json.loads(stripped)
        except ValueError:
            whole = None
        if isinstance(whole, dict):
            return [whole]
        if isinstance(whole, list):
            return [item if isinstance(item, dict) else None for item in whole]
    out: list[dict[str, Any] | None] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            value = json.loads(line)
        except ValueError:
            value = None  # garbage, or the last line cut off when the process was killed
        if isinstance(value, list):
            out.extend(item if isinstance(item, dict) else None for item in value)
        else:
            out.append(value if isinstance(value, dict) else None)
    return out


def parse_stream(text: str) -> StreamSummary:
    summary = StreamSummary()
    # Message id -> (model, usage). The CLI prints one assistant event per content block, all
    # carrying the same message and usage: keep one per id, never sum them.
    messages: dict[str, tuple[str, TokenUsage]] = {}
    anonymous: list[tuple[str, TokenUsage]] = []
    for event in _events(text):
        if event is None:
            summary.skipped_lines += 1
            continue
        kind = event.get("type")
        try:
            if kind == "result":
                summary.result = ResultEvent.model_validate(event)
            elif kind == "system":
                system = SystemEvent.model_validate(event)
                if system.subtype == "init" and summary.init is None:
                    summary.init = system
                elif system.subtype == "api_retry":
                    summary.last_api_retry = system
            elif kind == "assistant":
                assistant = AssistantEvent.model_validate(event)
                if assistant.is_api_error_message:
                    summary.last_api_error = assistant
                message = assistant.message
                if message.usage is not None and message.model not in (None, SYNTHETIC_MODEL):
                    entry = (message.model or "", message.usage.tokens())
                    if message.id:
                        messages[message.id] = entry
                    else:
                        anonymous.append(entry)
            # user, stream_event, tool_progress and future event types: nothing to take.
        except ValidationError:
            summary.skipped_lines += 1
            continue
        summary.events += 1
    summary.tokens_by_model = _tokens(summary, [*messages.values(), *anonymous])
    return summary


def _tokens(
    summary: StreamSummary, from_messages: list[tuple[str, TokenUsage]]
) -> dict[str, TokenUsage]:
    result = summary.result
    if result is not None and result.modelUsage is not None:
        return {name: usage.tokens() for name, usage in result.modelUsage.items()}
    by_model: dict[str, TokenUsage] = {}
    for model, usage in from_messages:
        by_model[model] = by_model.get(model, TokenUsage()) + usage
    if by_model:
        return by_model
    # An old CLI without modelUsage: the top-level usage, under the init event's model.
    if result is not None and result.usage is not None and summary.model:
        return {summary.model: result.usage.tokens()}
    return {}


def parse_stream_file(path: Path) -> StreamSummary:
    """Parse a saved output; a missing file reads as an empty (result-less) output."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        text = ""
    return parse_stream(text)

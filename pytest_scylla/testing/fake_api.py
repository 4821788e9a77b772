"""A fake Anthropic Messages API on 127.0.0.1, for offline tests and zero-cost dry runs.

It is a real HTTP server (so the real ``anthropic`` SDK and the real Claude Code CLI can talk
to it) that serves scripted replies, reports deterministic usage (honouring ``cache_control``
so cached prefixes show up as cache reads), records every request, and injects faults.

Replies come from a list (consumed in order) or from a callable that sees the
``RecordedRequest`` and returns a ``Reply``, a ``Fault`` or a plain string (a text reply).
Faults can also be queued with ``inject()``; queued faults are served before scripted replies
and do not consume them.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from pytest_scylla.judges.cache import canonical_json

# Token usage as the Messages API reports it: the same four fields the run records keep.
from pytest_scylla.records import TokenUsage as Usage

REDACTED = "REDACTED"
# Header names whose values are secrets: never kept in a record.
_SECRET_HEADER_MARKERS = ("api-key", "authorization", "token", "secret", "cookie")


class UsageOverride(BaseModel):
    """Usage given by a script: fields left out are computed from the request."""

    model_config = ConfigDict(extra="forbid")

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class ToolCall(BaseModel):
    """A ``tool_use`` block in a reply.

    ``raw_input`` (a string sent verbatim as the streamed JSON) wins over ``input``: it is how
    a script sends a tool call whose input is not valid JSON.
    """

    name: str
    input: dict[str, Any] = Field(default_factory=dict)
    raw_input: str | None = None
    id: str | None = None


class Reply(BaseModel):
    """One assistant message: optional text, then zero or more tool calls."""

    text: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    stop_reason: str | None = None  # default: tool_use if there are tool calls, else end_turn
    usage: UsageOverride | None = None
    model: str | None = None  # default: echo the requested model
    delay_seconds: float = 0.0  # wait before answering (a slow, not a hung, server)

    def effective_stop_reason(self) -> str:
        if self.stop_reason:
            return self.stop_reason
        return "tool_use" if self.tool_calls else "end_turn"


FaultKind = Literal[
    "rate_limit",  # 429 rate_limit_error with retry-after
    "overloaded",  # 529 overloaded_error
    "server_error",  # 500 api_error
    "auth_error",  # 401 authentication_error
    "http_error",  # any status / error type given in the fault
    "hang",  # no response: hold the connection for `seconds` (or until stop), then close it
    "cut_stream",  # send `after_events` events of a real reply, then close the socket
    "invalid_tool_json",  # a tool call whose streamed input is not valid JSON
    "schema_mismatch",  # a tool call whose input does not fit the tool's input_schema
]

_HTTP_FAULTS: dict[FaultKind, tuple[int, str, str]] = {
    "rate_limit": (429, "rate_limit_error", "Number of requests has exceeded your rate limit"),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "server_error": (500, "api_error", "Internal server error"),
    "auth_error": (401, "authentication_error", "invalid x-api-key"),
}

_STATUS_TO_KIND: dict[int, FaultKind] = {
    status: kind for kind, (status, _, _) in _HTTP_FAULTS.items()
}


class Fault(BaseModel):
    """A failure the server produces instead of (or in the middle of) a normal reply."""

    kind: FaultKind
    status: int | None = None  # for http_error (and to override the others)
    error_type: str | None = None  # Anthropic error type, for http_error
    message: str | None = None
    retry_after: float | None = 1.0  # seconds, for rate_limit
    seconds: float | None = None  # for hang: None = until the server stops
    after_events: int = 3  # for cut_stream
    tool: str | None = None  # for the tool faults: default = forced tool or first tool
    reply: Reply | None = None  # for cut_stream: what is being cut (default: a text reply)

    @classmethod
    def from_status(cls, status: int, **kwargs: Any) -> Fault:
        """``Fault.from_status(429)``: the usual fault for an HTTP status."""
        kind = _STATUS_TO_KIND.get(status)
        if kind is None:
            return cls(kind="http_error", status=status, **kwargs)
        return cls(kind=kind, **kwargs)

    def http_error(self) -> tuple[int, str, str]:
        """Status, Anthropic error type and message for the HTTP-status faults."""
        if self.kind in _HTTP_FAULTS:
            status, etype, msg = _HTTP_FAULTS[self.kind]
        else:
            status, etype, msg = 500, "api_error", "Internal server error"
        return (
            self.status or status,
            self.error_type or etype,
            self.message or msg,
        )


ReplyLike = Reply | Fault | str
# What a server answers once its list of replies is used up: ends an agent's session quietly.
NO_REPLY_LEFT = Reply(text="[fake api: no scripted reply left]")
Responder = Callable[["RecordedRequest"], ReplyLike]


class RecordedRequest(BaseModel):
    """One request as the server saw it; secrets in headers are redacted."""

    index: int
    time: float
    method: str
    path: str  # without the query string
    query: dict[str, list[str]] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def stream(self) -> bool:
        return bool(isinstance(self.body, dict) and self.body.get("stream"))


class UsageRecord(BaseModel):
    """The usage one reply reported (``complete`` is False for a cut stream)."""

    request_index: int
    model: str
    usage: Usage
    complete: bool = True


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        secret = any(marker in key for marker in _SECRET_HEADER_MARKERS)
        out[key] = REDACTED if secret else value
    return out


# ---------------------------------------------------------------- token accounting


def estimate_tokens(obj: Any) -> int:
    """Deterministic stand-in for a tokenizer: about four characters of JSON per token."""
    text = obj if isinstance(obj, str) else canonical_json(obj)
    return max(1, math.ceil(len(text) / 4))


def _strip_cache_control(block: Any) -> Any:
    if isinstance(block, dict) and "cache_control" in block:
        return {k: v for k, v in block.items() if k != "cache_control"}
    return block


def prompt_segments(body: dict[str, Any]) -> list[tuple[Any, bool]]:
    """The prompt in the API's cache order (tools, system, messages), one entry per block.

    Each entry is (content without cache_control, has a cache_control breakpoint).
    """
    segs: list[tuple[Any, bool]] = []
    for tool in body.get("tools") or []:
        segs.append((_strip_cache_control(tool), _has_cc(tool)))
    system = body.get("system")
    if isinstance(system, str):
        segs.append((["system", system], False))
    elif isinstance(system, list):
        for block in system:
            segs.append((["system", _strip_cache_control(block)], _has_cc(block)))
    for msg in body.get("messages") or []:
        role = msg.get("role") if isinstance(msg, dict) else None
        content = msg.get("content") if isinstance(msg, dict) else msg
        if isinstance(content, list):
            for block in content:
                segs.append(([role, _strip_cache_control(block)], _has_cc(block)))
        else:
            segs.append(([role, content], False))
    return segs


def _has_cc(block: Any) -> bool:
    return isinstance(block, dict) and "cache_control" in block


def count_prompt_tokens(body: dict[str, Any]) -> int:
    """What count_tokens answers: every prompt token, the cache plays no part."""
    return sum(estimate_tokens(content) for content, _ in prompt_segments(body))


class PromptCache:
    """Per-model prefix cache: a breakpoint writes its prefix, a later prompt reads the
    longest cached prefix ending at any block boundary (the real API looks back from each
    breakpoint over earlier boundaries, which is what makes a moving breakpoint hit)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._prefixes: set[str] = set()

    def clear(self) -> None:
        with self._lock:
            self._prefixes.clear()

    def account(self, model: str, body: dict[str, Any]) -> tuple[int, int, int]:
        """(input_tokens, cache_creation_input_tokens, cache_read_input_tokens)."""
        segs = prompt_segments(body)
        tokens = [estimate_tokens(content) for content, _ in segs]
        digest = hashlib.sha256(model.encode())
        hashes: list[str] = []
        for content, _ in segs:
            digest.update(canonical_json(content).encode())
            hashes.append(digest.copy().hexdigest())
        breakpoints = [i for i, (_, bp) in enumerate(segs) if bp]
        if not breakpoints:
            return sum(tokens), 0, 0
        last_bp = breakpoints[-1]
        with self._lock:
            hit = -1
            for i in range(last_bp, -1, -1):
                if hashes[i] in self._prefixes:
                    hit = i
                    break
            for i in breakpoints:
                self._prefixes.add(hashes[i])
        read = sum(tokens[: hit + 1])
        creation = sum(tokens[hit + 1 : last_bp + 1])
        uncached = sum(tokens[last_bp + 1 :])
        return uncached, creation, read


# ---------------------------------------------------------------- reply building


def _new_id(prefix: str) -> str:
    return f"{prefix}_fake{uuid.uuid4().hex[:20]}"


def _pick_tool(body: dict[str, Any], name: str | None) -> dict[str, Any]:
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    choice = body.get("tool_choice") or {}
    wanted = name or (choice.get("name") if choice.get("type") == "tool" else None)
    for tool in tools:
        if tool.get("name") == wanted:
            return tool
    if wanted:
        return {"name": wanted, "input_schema": {}}
    return tools[0] if tools else {"name": "unknown_tool", "input_schema": {}}


def _wrong_value(schema: Any) -> Any:
    # A value of a type the property does not allow.
    kind = schema.get("type") if isinstance(schema, dict) else None
    return 12345 if kind in ("string", None, "object", "array", "boolean") else "not-a-number"


def mismatching_input(tool: dict[str, Any]) -> dict[str, Any]:
    """An input that breaks the tool's input_schema: wrong types, required fields missing."""
    schema = tool.get("input_schema") or {}
    props = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    bad = {k: _wrong_value(v) for k, v in props.items() if k not in required}
    if not bad:
        bad = {"unexpected_field_from_fake_api": True}
    return bad


def fault_reply(fault: Fault, body: dict[str, Any]) -> Reply:
    """The Reply a tool fault or a cut stream stands for."""
    if fault.kind == "invalid_tool_json":
        tool = _pick_tool(body, fault.tool)
        # Broken mid-document, not merely truncated: partial-JSON parsers must reject it too.
        raw = '{"file_path": "x.py", "content": not json}'
        return Reply(tool_calls=[ToolCall(name=tool["name"], raw_input=raw)])
    if fault.kind == "schema_mismatch":
        tool = _pick_tool(body, fault.tool)
        return Reply(tool_calls=[ToolCall(name=tool["name"], input=mismatching_input(tool))])
    return fault.reply or Reply(text="This reply is cut off part way through. " * 4)


def output_tokens_for(reply: Reply) -> int:
    total = estimate_tokens(reply.text) if reply.text else 0
    for call in reply.tool_calls:
        total += estimate_tokens(call.name)
        total += estimate_tokens(call.raw_input if call.raw_input is not None else call.input)
    return max(1, total)


def content_blocks(reply: Reply) -> list[dict[str, Any]]:
    """Content of the reply with tool ids filled in (raw_input kept as a string)."""
    blocks: list[dict[str, Any]] = []
    if reply.text:
        blocks.append({"type": "text", "text": reply.text})
    for call in reply.tool_calls:
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id or _new_id("toolu"),
                "name": call.name,
                "input": call.raw_input if call.raw_input is not None else call.input,
            }
        )
    return blocks


def _chunks(text: str, size: int) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


def sse_events(
    msg_id: str, model: str, blocks: list[dict[str, Any]], stop_reason: str, usage: Usage
) -> list[tuple[str, dict[str, Any]]]:
    """The SSE events of one streamed message, as the real API orders them."""
    start_usage = usage.model_dump()
    # The real API reports a tiny output count at the start and the final count in
    # message_delta; clients take the message_delta value, they do not add them.
    start_usage["output_tokens"] = 1
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": msg_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            },
        ),
        ("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            start: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": c} for c in _chunks(block["text"], 40)]
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            raw = block["input"]
            if not isinstance(raw, str):
                raw = canonical_json(raw)
            deltas = [{"type": "input_json_delta", "partial_json": c} for c in _chunks(raw, 64)]
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
        )
        for delta in deltas:
            events.append(
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": usage.model_dump(),
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def sse_usage_sent(events: list[tuple[str, dict[str, Any]]]) -> Usage:
    """The usage a client can have seen from these events (the last report wins)."""
    seen = Usage()
    for name, data in events:
        if name == "message_start":
            seen = Usage.model_validate(data["message"]["usage"])
        elif name == "message_delta":
            seen = Usage.model_validate(data["usage"])
    return seen


def error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


# ---------------------------------------------------------------- HTTP


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a safety net only: stop() joins handler threads itself
    allow_reuse_address = True
    fake: FakeMessagesAPI


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 60  # an idle keep-alive client cannot pin a thread for ever

    def setup(self) -> None:
        super().setup()
        self.server.fake._register(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._unregister(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests would drown in access logs

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        fake = self.server.fake
        raw = self._read_body()
        split = urlsplit(self.path)
        try:
            body: Any = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        record = fake._record(self.command, split.path, parse_qs(split.query), self.headers, body)
        if fake.api_key is not None and self._given_key() != fake.api_key:
            self._send_error(401, "authentication_error", "invalid x-api-key")
            return
        path = split.path.rstrip("/")
        if self.command == "POST" and path == "/v1/messages/count_tokens":
            if not isinstance(body, dict):
                self._send_error(400, "invalid_request_error", "body must be a JSON object")
                return
            self._send_json(200, {"input_tokens": count_prompt_tokens(body)})
            return
        if self.command != "POST" or path != "/v1/messages":
            self._send_error(404, "not_found_error", f"Not found: {self.command} {split.path}")
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            self._send_error(400, "invalid_request_error", "messages: field required")
            return
        self._answer(record, body, fake._next_reply(record))

    def _given_key(self) -> str | None:
        key = self.headers.get("x-api-key")
        if key is None:
            auth = self.headers.get("authorization", "")
            key = auth.removeprefix("Bearer ").strip() or None
        return key

    def _answer(self, record: RecordedRequest, body: dict[str, Any], item: ReplyLike) -> None:
        fake = self.server.fake
        if isinstance(item, str):
            item = Reply(text=item)
        cut_after: int | None = None
        if isinstance(item, Fault):
            if item.kind == "hang":
                fake._stopping.wait(item.seconds)
                self.close_connection = True
                return
            if item.kind in ("cut_stream", "invalid_tool_json", "schema_mismatch"):
                if item.kind == "cut_stream":
                    cut_after = item.after_events
                item = fault_reply(item, body)
            else:
                status, etype, message = item.http_error()
                extra = {}
                if item.kind == "rate_limit" and item.retry_after is not None:
                    extra["retry-after"] = f"{item.retry_after:g}"
                self._send_error(status, etype, message, extra)
                return
        if item.delay_seconds and fake._stopping.wait(item.delay_seconds):
            self.close_connection = True
            return
        model = item.model or str(body.get("model") or "unknown-model")
        usage = fake._usage_for(body, model, item)
        blocks = content_blocks(item)
        msg_id = _new_id("msg")
        stop_reason = item.effective_stop_reason()
        if body.get("stream"):
            events = sse_events(msg_id, model, blocks, stop_reason, usage)
            complete = cut_after is None or cut_after >= len(events)
            if not complete:
                # What the client was told before the cut: message_start's usage, whose
                # output count is the placeholder 1 (nothing if even that was not sent).
                usage = sse_usage_sent(events[:cut_after])
            fake._record_usage(record.index, model, usage, complete)
            self._send_sse(events if complete else events[:cut_after], complete)
            return
        reply: dict[str, Any] = {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage.model_dump(),
        }
        if cut_after is not None:
            fake._record_usage(record.index, model, usage, complete=False)
            data = canonical_json(reply).encode()
            self._send_head(200, "application/json", len(data), {})
            self.wfile.write(data[: len(data) // 2])
            self._cut()
            return
        fake._record_usage(record.index, model, usage, True)
        self._send_json(200, reply)

    def _send_head(
        self, status: int, ctype: str, length: int | None, extra: dict[str, str]
    ) -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("request-id", _new_id("req"))
        if length is not None:
            self.send_header("content-length", str(length))
        for name, value in extra.items():
            self.send_header(name, value)
        if length is None:
            # A streamed body is chunked (a cut stream is then a protocol error the client
            # sees, not a clean end) and the socket is closed after it: the CLI waits for ever
            # on a keep-alive SSE reply that has neither a length nor chunking.
            self.send_header("transfer-encoding", "chunked")
            self.send_header("connection", "close")
            self.close_connection = True
        self.end_headers()

    def _send_json(self, status: int, obj: Any, extra: dict[str, str] | None = None) -> None:
        data = canonical_json(obj).encode()
        self._send_head(status, "application/json", len(data), extra or {})
        self.wfile.write(data)
        self.wfile.flush()

    def _send_error(
        self, status: int, etype: str, message: str, extra: dict[str, str] | None = None
    ) -> None:
        headers = dict(extra or {})
        if status in (429, 500, 529):
            headers["x-should-retry"] = "true"  # as the real API marks retryable errors
        self._send_json(status, error_body(etype, message), headers)

    def _send_sse(self, events: list[tuple[str, dict[str, Any]]], complete: bool = True) -> None:
        self._send_head(
            200, "text/event-stream; charset=utf-8", None, {"cache-control": "no-cache"}
        )
        for name, data in events:
            chunk = f"event: {name}\ndata: {canonical_json(data)}\n\n".encode()
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
        if complete:
            self.wfile.write(b"0\r\n\r\n")
        self._cut()

    def _cut(self) -> None:
        self.wfile.flush()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


# ---------------------------------------------------------------- the server object


class FakeMessagesAPI:
    """The fake API server. Use as a context manager or call ``start()`` / ``stop()``.

    ``replies``: a list of ``Reply | Fault | str`` consumed in order, or a callable
    ``(RecordedRequest) -> Reply | Fault | str``. ``default_reply`` answers when the list is
    exhausted (``None``: a 500 error saying so). ``api_key``: when set, any other key gets a
    401 (the key itself is never recorded).
    """

    def __init__(
        self,
        replies: Iterable[ReplyLike] | Responder | None = None,
        *,
        api_key: str | None = None,
        default_reply: ReplyLike | None = NO_REPLY_LEFT,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._lock = threading.Lock()
        self._responder: Responder | None = None
        self._replies: list[ReplyLike] = []
        self.set_replies(replies)
        self.api_key = api_key
        self.default_reply = default_reply
        self.cache = PromptCache()
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self._usages: list[UsageRecord] = []
        self._counter = itertools.count()
        self._host, self._port = host, port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._conns: dict[socket.socket, threading.Thread] = {}

    # --- lifecycle

    def start(self) -> FakeMessagesAPI:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self._host, self._port), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-api",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving; wakes hangs, closes open connections and joins every thread."""
        server = self._server
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = dict(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in [*conns.values(), self._thread]:
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeMessagesAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeMessagesAPI is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def live_threads(self) -> list[threading.Thread]:
        """Handler threads still running (empty after a clean stop)."""
        with self._lock:
            return [t for t in self._conns.values() if t.is_alive()]

    # --- scripting

    def set_replies(self, replies: Iterable[ReplyLike] | Responder | None) -> None:
        with self._lock:
            if callable(replies) and not isinstance(replies, (list, tuple)):
                self._responder, self._replies = replies, []
            else:
                self._responder, self._replies = None, list(replies or [])

    def add_replies(self, *replies: ReplyLike) -> None:
        with self._lock:
            self._replies.extend(replies)

    def inject(self, fault: Fault | int, times: int = 1) -> None:
        """Queue a fault for the next ``times`` requests to /v1/messages (before any reply)."""
        item = Fault.from_status(fault) if isinstance(fault, int) else fault
        with self._lock:
            self._faults.extend([item] * times)

    def pending_replies(self) -> int:
        with self._lock:
            return len(self._replies)

    def _next_reply(self, record: RecordedRequest) -> ReplyLike:
        with self._lock:
            if self._faults:
                return self._faults.pop(0)
            if self._responder is None:
                if self._replies:
                    return self._replies.pop(0)
                fallback = self.default_reply
                responder = None
            else:
                responder = self._responder
        if responder is not None:
            return responder(record)  # outside the lock: a responder may take its time
        if fallback is None:
            return Fault(kind="server_error", message="fake api: no scripted reply left")
        return fallback

    # --- records

    def _record(
        self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: Any
    ) -> RecordedRequest:
        with self._lock:
            record = RecordedRequest(
                index=next(self._counter),
                time=time.time(),
                method=method,
                path=path,
                query=query,
                headers=redact_headers(headers.items()),
                body=body,
            )
            self._requests.append(record)
        return record

    def _usage_for(self, body: dict[str, Any], model: str, reply: Reply) -> Usage:
        given = reply.usage or UsageOverride()
        fields = given.model_dump()
        if None in (
            fields["input_tokens"],
            fields["cache_creation_input_tokens"],
            fields["cache_read_input_tokens"],
        ):
            uncached, creation, read = self.cache.account(model, body)
        else:
            uncached = creation = read = 0
        return Usage(
            input_tokens=_first(fields["input_tokens"], uncached),
            cache_creation_input_tokens=_first(fields["cache_creation_input_tokens"], creation),
            cache_read_input_tokens=_first(fields["cache_read_input_tokens"], read),
            output_tokens=_first(fields["output_tokens"], output_tokens_for(reply)),
        )

    def _record_usage(self, index: int, model: str, usage: Usage, complete: bool) -> None:
        with self._lock:
            self._usages.append(
                UsageRecord(request_index=index, model=model, usage=usage, complete=complete)
            )

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def message_requests(self) -> list[RecordedRequest]:
        """Requests to POST /v1/messages (not count_tokens or anything else)."""
        return [r for r in self.requests if r.path.rstrip("/") == "/v1/messages"]

    @property
    def usages(self) -> list[UsageRecord]:
        with self._lock:
            return list(self._usages)

    def usage_totals(self, include_incomplete: bool = False) -> dict[str, Usage]:
        """Reported usage summed per model (cut-off streams left out unless asked)."""
        totals: dict[str, Usage] = {}
        for rec in self.usages:
            if rec.complete or include_incomplete:
                totals[rec.model] = totals.get(rec.model, Usage()) + rec.usage
        return totals

    def clear(self) -> None:
        """Forget requests, usage, queued faults and the prompt cache (not the script)."""
        with self._lock:
            self._requests.clear()
            self._usages.clear()
            self._faults.clear()
        self.cache.clear()

    # --- connection tracking, so stop() can end every handler thread

    def _register(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns[conn] = threading.current_thread()
        if self._stopping.is_set():
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _unregister(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.pop(conn, None)


def _first(value: int | None, default: int) -> int:
    return default if value is None else value

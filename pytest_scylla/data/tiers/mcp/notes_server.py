#!/usr/bin/env python3
"""A tiny MCP server over stdio, standard library only: one tool that returns project notes.

pytest-scylla copies this file into the workspace as `.claude/mcp/notes_server.py`, and a
sub-test's `mcp_servers` entry starts it with `python3 .claude/mcp/notes_server.py`.
Messages are JSON-RPC 2.0, one JSON object per line on stdin and stdout (MCP stdio
transport). Handled: initialize, notifications/initialized, ping, tools/list, tools/call.
"""

from __future__ import annotations

import json
import sys
from typing import Any

SERVER_NAME = "scylla-notes"
SERVER_VERSION = "0.1.0"
DEFAULT_PROTOCOL_VERSION = "2025-06-18"
TOOL_NAME = "scylla_notes"

NOTES = {
    "testing": (
        "Run the whole test suite before and after a change, with the runner the project "
        "already uses. Existing tests are the specification: never edit them to pass."
    ),
    "scope": (
        "Keep the change minimal: touch only the lines the task needs, and leave no "
        "scratch files, caches or backups in the working tree."
    ),
    "done": (
        "Done means: the behaviour works when run, the suite passes, new behaviour has "
        "tests, and the final message says how it was verified."
    ),
}

TOOL = {
    "name": TOOL_NAME,
    "description": (
        "Returns the project's short working notes (testing, scope, definition of done). "
        "Pass a topic to get a single note."
    ),
    "inputSchema": {
        "type": "object",
        "properties": {
            "topic": {
                "type": "string",
                "enum": sorted(NOTES),
                "description": "Return only this note; omit for all notes.",
            }
        },
        "additionalProperties": False,
    },
}

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602


def notes_text(topic: str | None) -> str:
    if topic is None:
        return "\n".join(f"{name}: {text}" for name, text in sorted(NOTES.items()))
    return f"{topic}: {NOTES[topic]}"


def call_tool(params: dict[str, Any]) -> dict[str, Any]:
    if params.get("name") != TOOL_NAME:
        raise LookupError(f"unknown tool {params.get('name')!r}")
    arguments = params.get("arguments") or {}
    topic = arguments.get("topic")
    if topic is not None and topic not in NOTES:
        return {
            "content": [{"type": "text", "text": f"no note on {topic!r}; topics: {sorted(NOTES)}"}],
            "isError": True,
        }
    return {"content": [{"type": "text", "text": notes_text(topic)}], "isError": False}


def handle(message: Any) -> dict[str, Any] | None:
    """The response to one message, or None for a notification."""
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return error_response(None, INVALID_REQUEST, "not a JSON-RPC 2.0 message")
    method = message.get("method")
    if "id" not in message:
        return None  # notifications (notifications/initialized, cancelled...) get no answer
    request_id = message["id"]
    params = message.get("params") or {}
    if method == "initialize":
        return result_response(
            request_id,
            {
                "protocolVersion": params.get("protocolVersion", DEFAULT_PROTOCOL_VERSION),
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": {"name": SERVER_NAME, "version": SERVER_VERSION},
            },
        )
    if method == "ping":
        return result_response(request_id, {})
    if method == "tools/list":
        return result_response(request_id, {"tools": [TOOL]})
    if method == "tools/call":
        try:
            return result_response(request_id, call_tool(params))
        except LookupError as error:
            return error_response(request_id, INVALID_PARAMS, str(error))
    return error_response(request_id, METHOD_NOT_FOUND, f"method {method!r} not found")


def result_response(request_id: Any, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def error_response(request_id: Any, code: int, text: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": text}}


def main() -> int:
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            message = json.loads(line)
        except json.JSONDecodeError as error:
            response: dict[str, Any] | None = error_response(None, PARSE_ERROR, str(error))
        else:
            response = handle(message)
        if response is not None:
            sys.stdout.write(json.dumps(response) + "\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

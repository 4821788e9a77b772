"""Parsing Claude Code output: upstream's real `--output-format json` recordings and
stream-json transcripts shaped like what CLI 2.1.x prints (see claude-code-offline.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import UPSTREAM

from pytest_scylla.agents.claude_stream import parse_stream, parse_stream_file
from pytest_scylla.records import TokenUsage, sum_usage

DRY_RUNS = UPSTREAM / "dryrun-test-001"
RECORDINGS = sorted(DRY_RUNS.glob("*/*/run_01/agent/stdout.log"))


def _lines(*events: object) -> str:
    return "\n".join(e if isinstance(e, str) else json.dumps(e) for e in events) + "\n"


def _init(version: str = "2.1.331", model: str = "claude-sonnet-4-5") -> dict:
    return {
        "type": "system",
        "subtype": "init",
        "cwd": "/ws",
        "tools": ["Bash", "Write"],
        "model": model,
        "claude_code_version": version,
        "permissionMode": "bypassPermissions",
    }


def _assistant(msg_id: str, model: str, usage: dict, content: list | None = None) -> dict:
    return {
        "type": "assistant",
        "message": {
            "id": msg_id,
            "model": model,
            "role": "assistant",
            "content": content or [{"type": "text", "text": "x"}],
            "usage": usage,
        },
        "parent_tool_use_id": None,
        "session_id": "s",
    }


def _usage(i: int, o: int, cw: int = 0, cr: int = 0) -> dict:
    return {
        "input_tokens": i,
        "output_tokens": o,
        "cache_creation_input_tokens": cw,
        "cache_read_input_tokens": cr,
    }


def _model_usage(i: int, o: int, cw: int = 0, cr: int = 0, cost: float = 0.0) -> dict:
    return {
        "inputTokens": i,
        "outputTokens": o,
        "cacheCreationInputTokens": cw,
        "cacheReadInputTokens": cr,
        "costUSD": cost,
        "contextWindow": 200000,
    }


def _result(**overrides: object) -> dict:
    event = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "duration_ms": 1234,
        "num_turns": 2,
        "result": "done",
        "total_cost_usd": 0.25,
        "usage": _usage(10, 20, 30, 40),
        "modelUsage": {
            "claude-sonnet-4-5": _model_usage(10, 20, 30, 40, 0.2),
            "claude-haiku-4-5": _model_usage(5, 6, 0, 0, 0.05),
        },
        "terminal_reason": "completed",
        "api_error_status": None,
    }
    event.update(overrides)
    return event


# ------------------------------------------------------------- upstream's recordings


def test_upstream_recordings_exist() -> None:
    if not DRY_RUNS.is_dir():
        pytest.skip("upstream data not on this machine")
    assert len(RECORDINGS) == 7


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: "/".join(p.parts[-5:-3]))
def test_upstream_recording(path: Path) -> None:
    raw = json.loads(path.read_text())
    summary = parse_stream_file(path)
    fields = summary.record_fields()
    assert summary.result is not None
    assert summary.skipped_lines == 0
    # Every model of modelUsage, side models included, with all four counts.
    expected = {
        model: TokenUsage(
            input_tokens=entry["inputTokens"],
            output_tokens=entry["outputTokens"],
            cache_creation_input_tokens=entry["cacheCreationInputTokens"],
            cache_read_input_tokens=entry["cacheReadInputTokens"],
        )
        for model, entry in raw["modelUsage"].items()
    }
    assert fields["tokens_by_model"] == expected
    assert any("haiku" in model for model in fields["tokens_by_model"])
    # The top-level `usage` (all upstream read) covers the main model only: we count more.
    top = raw["usage"]
    total = sum_usage(fields["tokens_by_model"])
    assert total.input_tokens > top["input_tokens"]
    assert total.output_tokens > top["output_tokens"]
    assert fields["cost_usd"] == raw["total_cost_usd"]
    assert fields["cost_usd"] == pytest.approx(
        sum(entry["costUSD"] for entry in raw["modelUsage"].values())
    )
    assert fields["turns"] == raw["num_turns"]
    assert fields["duration_s"] == raw["duration_ms"] / 1000
    assert fields["result_text"] == raw["result"]
    assert fields["is_error"] is False
    assert fields["error_reason"] is None
    assert fields["api_error_status"] is None
    assert not summary.api_failed
    assert fields["cli_version"] is None  # json output has no init event


# ------------------------------------------------------------- stream-json transcripts


def test_success_transcript() -> None:
    text = _lines(
        _init(),
        _assistant("m1", "claude-sonnet-4-5", _usage(3, 1, 100, 0)),
        {"type": "user", "message": {"role": "user", "content": []}},
        _assistant("m2", "claude-sonnet-4-5", _usage(2, 1, 5, 100)),
        _result(),
    )
    summary = parse_stream(text)
    fields = summary.record_fields()
    assert fields["cli_version"] == "2.1.331"
    assert summary.model == "claude-sonnet-4-5"
    # The result's modelUsage wins over the assistant events, and keeps the side model.
    assert fields["tokens_by_model"] == {
        "claude-sonnet-4-5": TokenUsage(
            input_tokens=10,
            output_tokens=20,
            cache_creation_input_tokens=30,
            cache_read_input_tokens=40,
        ),
        "claude-haiku-4-5": TokenUsage(input_tokens=5, output_tokens=6),
    }
    assert fields["cost_usd"] == 0.25
    assert fields["turns"] == 2
    assert fields["duration_s"] == pytest.approx(1.234)
    assert fields["result_text"] == "done"
    assert fields["is_error"] is False
    assert fields["error_reason"] is None
    assert summary.events == 5


def test_killed_run_sums_assistant_events_deduplicated_by_message_id() -> None:
    text = _lines(
        _init(),
        # One message with two content blocks comes as two events with the same id and usage.
        _assistant("m1", "claude-sonnet-4-5", _usage(3, 7, 100, 0)),
        _assistant("m1", "claude-sonnet-4-5", _usage(3, 7, 100, 0)),
        _assistant("m2", "claude-sonnet-4-5", _usage(2, 4, 5, 100)),
        _assistant("h1", "claude-haiku-4-5", _usage(50, 9)),
        '{"type":"assistant","message":{"id":"m3","model":"claude-sonn',  # cut by the kill
    )
    summary = parse_stream(text)
    fields = summary.record_fields()
    assert summary.result is None
    assert summary.skipped_lines == 1
    assert fields["tokens_by_model"] == {
        "claude-sonnet-4-5": TokenUsage(
            input_tokens=5,
            output_tokens=11,
            cache_creation_input_tokens=105,
            cache_read_input_tokens=100,
        ),
        "claude-haiku-4-5": TokenUsage(input_tokens=50, output_tokens=9),
    }
    assert fields["cost_usd"] is None
    assert fields["turns"] is None
    assert "no result event" in fields["error_reason"]


def test_garbage_and_unknown_events_are_tolerated() -> None:
    text = _lines(
        "npm WARN something odd",
        _init(),
        {"type": "stream_event", "event": {"type": "content_block_delta"}},
        {"type": "some_future_event", "payload": [1, 2, 3]},
        {"type": "system", "subtype": "hook_response", "whatever": True},
        "[1, 2",
        "42",
        '"a string"',
        {"type": "assistant", "message": "not an object"},
        {"type": "result", "num_turns": "not a number"},
        _result(num_turns=4, extra_field_from_a_new_cli={"x": 1}),
        "",
        "trailing garbage",
    )
    summary = parse_stream(text)
    assert summary.result is not None
    assert summary.result.num_turns == 4
    assert summary.skipped_lines == 7
    assert summary.cli_version == "2.1.331"


def test_empty_output() -> None:
    summary = parse_stream("")
    assert summary.result is None
    assert summary.tokens_by_model == {}
    assert summary.record_fields()["error_reason"].startswith("no result event")


def test_missing_file_reads_as_empty(tmp_path: Path) -> None:
    assert parse_stream_file(tmp_path / "nope.jsonl").result is None


def test_authentication_failure() -> None:
    """Shaped like CLI 2.1.331 against a server answering 401 (retries exhausted)."""
    retry = {
        "type": "system",
        "subtype": "api_retry",
        "attempt": 1,
        "max_retries": 10,
        "error_status": 401,
        "error": "authentication_failed",
    }
    synthetic = _assistant(
        "0a1b", "<synthetic>", _usage(0, 0), [{"type": "text", "text": "Invalid API key"}]
    )
    synthetic.update(is_api_error_message=True, api_error_status=401, error="authentication_failed")
    result = _result(
        subtype="success",  # sic: the CLI says success and is_error together
        is_error=True,
        num_turns=1,
        total_cost_usd=0,
        modelUsage={},
        api_error_status=401,
        api_error_type="authentication_error",
        terminal_reason="api_error",
        result="Invalid API key · Fix external API key",
    )
    summary = parse_stream(_lines(_init(), retry, retry, synthetic, result))
    fields = summary.record_fields()
    assert summary.api_failed
    assert fields["is_error"] is True
    assert fields["api_error_status"] == 401
    assert fields["error_reason"].startswith("authentication failed (HTTP 401)")
    assert "Invalid API key" in fields["error_reason"]
    assert fields["tokens_by_model"] == {}  # the synthetic model is never counted


def test_server_error_after_retries() -> None:
    result = _result(
        is_error=True,
        modelUsage={},
        api_error_status=529,
        terminal_reason="api_error",
        result="API Error: 529 overloaded",
    )
    summary = parse_stream(_lines(_init(), result))
    assert summary.api_failed
    assert summary.record_fields()["error_reason"].startswith("API overloaded (HTTP 529)")
    result["api_error_status"] = 503
    assert parse_stream(_lines(result)).error_reason.startswith("API server error (HTTP 503)")


def test_connection_refused() -> None:
    result = _result(
        is_error=True,
        modelUsage={},
        api_error_status=None,
        api_error="connection_failed",
        terminal_reason="api_error",
        result="API Error: Connection refused (ECONNREFUSED)",
    )
    summary = parse_stream(_lines(_init(), result))
    assert summary.api_failed
    assert summary.api_error_status is None
    assert summary.error_reason.startswith("API unreachable (connection_failed)")


def test_max_turns_is_the_agents_own_end() -> None:
    result = _result(
        subtype="error_max_turns",
        is_error=True,
        terminal_reason="max_turns",
        errors=["Reached maximum number of turns (2)"],
    )
    del result["result"]
    summary = parse_stream(_lines(_init(), result))
    fields = summary.record_fields()
    assert not summary.api_failed
    assert fields["is_error"] is True
    assert fields["result_text"] is None
    assert fields["error_reason"] == (
        "maximum number of turns reached: Reached maximum number of turns (2)"
    )
    assert sum_usage(fields["tokens_by_model"]).total > 0


def test_execution_error_and_agent_error() -> None:
    during = parse_stream(_lines(_result(subtype="error_during_execution", is_error=True)))
    assert during.error_reason.startswith("agent error (error_during_execution)")
    assert not during.api_failed
    generic = parse_stream(_lines(_result(is_error=True, result="I give up\nreally")))
    assert generic.error_reason == "the agent reported an error: I give up really"


def test_killed_while_the_cli_was_retrying() -> None:
    retry = {"type": "system", "subtype": "api_retry", "attempt": 3, "error_status": 500}
    summary = parse_stream(_lines(_init(), retry))
    assert summary.api_error_status == 500
    assert "HTTP 500" in summary.error_reason


def test_json_array_output() -> None:
    """`--output-format json --verbose` prints every event in one JSON array."""
    text = json.dumps([_init(), _assistant("m1", "claude-sonnet-4-5", _usage(1, 1)), _result()])
    summary = parse_stream(text)
    assert summary.cli_version == "2.1.331"
    assert summary.result is not None
    assert set(summary.tokens_by_model) == {"claude-sonnet-4-5", "claude-haiku-4-5"}


def test_pretty_printed_result() -> None:
    summary = parse_stream(json.dumps(_result(), indent=2))
    assert summary.result is not None and summary.result.total_cost_usd == 0.25


def test_result_without_model_usage_falls_back() -> None:
    # Older CLIs had no modelUsage: use assistant events, else usage under the init model.
    no_model_usage = _result()
    del no_model_usage["modelUsage"]
    with_events = parse_stream(
        _lines(_init(), _assistant("m1", "claude-opus-4", _usage(1, 2)), no_model_usage)
    )
    assert with_events.tokens_by_model == {
        "claude-opus-4": TokenUsage(input_tokens=1, output_tokens=2)
    }
    only_usage = parse_stream(_lines(_init(model="claude-x"), no_model_usage))
    assert only_usage.tokens_by_model == {
        "claude-x": TokenUsage(
            input_tokens=10,
            output_tokens=20,
            cache_creation_input_tokens=30,
            cache_read_input_tokens=40,
        )
    }


def test_long_reason_is_one_short_line() -> None:
    summary = parse_stream(_lines(_result(is_error=True, result="word\n" * 500)))
    reason = summary.error_reason
    assert "\n" not in reason
    assert len(reason) < 400

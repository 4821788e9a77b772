"""The fake Messages API, exercised through the real ``anthropic`` SDK, and dry-run scripts."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from pytest_scylla.testing.fake_api import (
    REDACTED,
    FakeMessagesAPI,
    Fault,
    RecordedRequest,
    Reply,
    ToolCall,
    Usage,
    UsageOverride,
    count_prompt_tokens,
)
from pytest_scylla.testing.scripted_model import (
    DryRunScript,
    ScriptTurn,
    assistant_turns,
    load_dry_run_script,
    working_directory,
)

pytest_plugins = ["pytest_scylla.testing.fixtures"]

ROOT = Path(__file__).resolve().parents[1]
MODEL = "claude-fake-model"  # not a real name: the SDK warns about deprecated ones
SECRET = "sk-ant-test-SECRET-0123456789"
USER = [{"role": "user", "content": "Say hello."}]
SCORE_TOOL = {
    "name": "record_score",
    "description": "Record a score.",
    "input_schema": {
        "type": "object",
        "properties": {"score": {"type": "integer"}, "reason": {"type": "string"}},
        "required": ["score", "reason"],
    },
}


@pytest.fixture
def api() -> Iterator[FakeMessagesAPI]:
    with FakeMessagesAPI() as server:
        yield server


def client_for(server: FakeMessagesAPI, **kwargs: Any) -> anthropic.Anthropic:
    options: dict[str, Any] = {"max_retries": 0, "timeout": 10.0, **kwargs}
    return anthropic.Anthropic(base_url=server.base_url, api_key=SECRET, **options)


# ---------------------------------------------------------------- replies


def test_streaming_text(api: FakeMessagesAPI) -> None:
    api.set_replies(["Hello there, this text is long enough to span several deltas."])
    with client_for(api).messages.stream(model=MODEL, max_tokens=100, messages=USER) as stream:
        pieces = list(stream.text_stream)
        message = stream.get_final_message()
    assert len(pieces) > 1
    assert message.content[0].text == "".join(pieces)  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.model == MODEL
    reported = api.usages[0].usage
    assert message.usage.output_tokens == reported.output_tokens  # delta value, not a sum
    assert message.usage.input_tokens == reported.input_tokens > 0


def test_non_streaming_text(api: FakeMessagesAPI) -> None:
    api.set_replies([Reply(text="Hi.", model="claude-opus-4-1")])
    message = client_for(api).messages.create(model=MODEL, max_tokens=100, messages=USER)
    assert message.content[0].text == "Hi."  # type: ignore[union-attr]
    assert message.model == "claude-opus-4-1"
    assert set(api.usage_totals()) == {"claude-opus-4-1"}


@pytest.mark.parametrize("stream", [False, True])
def test_forced_tool_call_parsed_by_sdk(api: FakeMessagesAPI, stream: bool) -> None:
    answer = {"score": 7, "reason": "mostly right " * 10}
    api.set_replies([Reply(tool_calls=[ToolCall(name="record_score", input=answer)])])
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 100,
        "messages": USER,
        "tools": [SCORE_TOOL],
        "tool_choice": {"type": "tool", "name": "record_score"},
    }
    client = client_for(api)
    if stream:
        with client.messages.stream(**kwargs) as s:
            message = s.get_final_message()
    else:
        message = client.messages.create(**kwargs)
    block = message.content[0]
    assert block.type == "tool_use"
    assert block.name == "record_score"
    assert block.input == answer
    assert block.id.startswith("toolu_")
    assert message.stop_reason == "tool_use"
    assert api.requests[0].body["tool_choice"] == {"type": "tool", "name": "record_score"}


def test_text_and_tool_use_in_one_reply(api: FakeMessagesAPI) -> None:
    api.set_replies([Reply(text="Let me look.", tool_calls=[ToolCall(name="ls", input={})])])
    with client_for(api).messages.stream(model=MODEL, max_tokens=9, messages=USER) as s:
        message = s.get_final_message()
    assert [b.type for b in message.content] == ["text", "tool_use"]


def test_count_tokens(api: FakeMessagesAPI) -> None:
    request: dict[str, Any] = {"model": MODEL, "messages": USER, "system": "Be brief."}
    counted = client_for(api).messages.count_tokens(**request)
    assert counted.input_tokens == count_prompt_tokens(request) > 0
    assert api.requests[0].path == "/v1/messages/count_tokens"
    assert api.usages == []  # counting is not a billed reply


# ---------------------------------------------------------------- usage and the prompt cache


def _cached_request(extra_turns: int = 0) -> dict[str, Any]:
    system = [
        {"type": "text", "text": "You are careful. " * 200, "cache_control": {"type": "ephemeral"}}
    ]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Question one."}]
    for n in range(extra_turns):
        messages += [
            {"role": "assistant", "content": f"Answer {n}."},
            {"role": "user", "content": [{"type": "text", "text": f"Question {n + 2}."}]},
        ]
    last = messages[-1]
    if isinstance(last["content"], list):
        last["content"][-1]["cache_control"] = {"type": "ephemeral"}
    return {"model": MODEL, "max_tokens": 10, "system": system, "messages": messages}


def test_usage_with_and_without_the_prompt_cache(api: FakeMessagesAPI) -> None:
    client = client_for(api)
    request = _cached_request()
    first = client.messages.create(**request).usage
    second = client.messages.create(**request).usage
    assert first.cache_creation_input_tokens and first.cache_creation_input_tokens > 0
    assert first.cache_read_input_tokens == 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0
    assert second.input_tokens == first.input_tokens  # the uncached tail is the same
    # Prompt size is the same whichever way it is billed.
    total = first.input_tokens + first.cache_creation_input_tokens
    assert total == count_prompt_tokens(request)
    # A longer conversation with the breakpoint moved to its end reads the old prefix.
    third = client.messages.create(**_cached_request(extra_turns=1)).usage
    assert third.cache_read_input_tokens == first.cache_creation_input_tokens
    assert third.cache_creation_input_tokens and third.cache_creation_input_tokens > 0
    # No cache_control: every token is plain input, nothing is read or written.
    plain = client.messages.create(model=MODEL, max_tokens=10, messages=USER).usage
    assert (plain.cache_read_input_tokens, plain.cache_creation_input_tokens) == (0, 0)
    # The cache is per model.
    other = client.messages.create(**{**request, "model": "claude-opus-4-1"}).usage
    assert other.cache_read_input_tokens == 0


def test_given_usage_is_reported_and_totalled_per_model(api: FakeMessagesAPI) -> None:
    given = UsageOverride(
        input_tokens=11, output_tokens=5, cache_creation_input_tokens=3, cache_read_input_tokens=2
    )
    api.set_replies([Reply(text="a", usage=given), Reply(text="b", usage=given), "c"])
    client = client_for(api)
    usage = client.messages.create(model=MODEL, max_tokens=5, messages=USER).usage
    assert (usage.input_tokens, usage.output_tokens) == (11, 5)
    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (3, 2)
    with client.messages.stream(model=MODEL, max_tokens=5, messages=USER) as s:
        streamed = s.get_final_message().usage
    assert (streamed.input_tokens, streamed.output_tokens) == (11, 5)
    client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=USER)
    totals = api.usage_totals()
    assert totals[MODEL] == Usage(
        input_tokens=22, output_tokens=10, cache_creation_input_tokens=6, cache_read_input_tokens=4
    )
    assert set(totals) == {MODEL, "claude-haiku-4-5"}


def test_partial_usage_override_computes_the_rest(api: FakeMessagesAPI) -> None:
    api.set_replies([Reply(text="x", usage=UsageOverride(output_tokens=99))])
    usage = client_for(api).messages.create(model=MODEL, max_tokens=5, messages=USER).usage
    assert usage.output_tokens == 99
    assert usage.input_tokens == count_prompt_tokens({"messages": USER})


# ---------------------------------------------------------------- faults


def test_rate_limit_then_success_honours_retry_after(api: FakeMessagesAPI) -> None:
    api.inject(Fault(kind="rate_limit", retry_after=0.6))
    api.set_replies(["after the wait"])
    start = time.monotonic()
    message = client_for(api, max_retries=1).messages.create(
        model=MODEL, max_tokens=5, messages=USER
    )
    assert time.monotonic() - start >= 0.55  # the SDK waited as told, not its own backoff
    assert message.content[0].text == "after the wait"  # type: ignore[union-attr]
    assert len(api.requests) == 2
    assert api.requests[1].headers["x-stainless-retry-count"] == "1"
    assert api.pending_replies() == 0  # the fault did not consume a scripted reply


def test_rate_limit_error_shape(api: FakeMessagesAPI) -> None:
    api.inject(429)
    with pytest.raises(anthropic.RateLimitError) as info:
        client_for(api).messages.create(model=MODEL, max_tokens=5, messages=USER)
    assert info.value.response.headers["retry-after"] == "1"
    assert info.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": info.value.body["error"]["message"]},
    }


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (529, anthropic.OverloadedError, "overloaded_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (418, anthropic.APIStatusError, "api_error"),
    ],
)
def test_http_faults(
    api: FakeMessagesAPI, status: int, error_class: type[Exception], error_type: str
) -> None:
    api.set_replies([Fault.from_status(status)])
    for stream in (True, False):
        api.inject(status)
        with pytest.raises(error_class) as info:
            client_for(api).messages.create(model=MODEL, max_tokens=5, messages=USER, stream=stream)
        assert info.value.status_code == status  # type: ignore[attr-defined]
        assert info.value.body["error"]["type"] == error_type  # type: ignore[attr-defined]
    assert api.usages == []


def test_wrong_api_key_is_rejected_when_a_key_is_required() -> None:
    with FakeMessagesAPI(["ok"], api_key="the-right-key") as server:
        with pytest.raises(anthropic.AuthenticationError):
            client_for(server).messages.create(model=MODEL, max_tokens=5, messages=USER)
        good = anthropic.Anthropic(base_url=server.base_url, api_key="the-right-key")
        assert good.messages.create(model=MODEL, max_tokens=5, messages=USER).content


def test_hang_makes_the_sdk_time_out(api: FakeMessagesAPI) -> None:
    api.inject(Fault(kind="hang", seconds=30))
    start = time.monotonic()
    with pytest.raises(anthropic.APITimeoutError):
        client_for(api, timeout=0.5).messages.create(model=MODEL, max_tokens=5, messages=USER)
    # Well before the 30 s hang ends, with room for a loaded CI machine (retries, backoff).
    assert time.monotonic() - start < 20


def test_cut_stream_is_an_error(api: FakeMessagesAPI) -> None:
    api.inject(Fault(kind="cut_stream", after_events=4))
    # The SDK's transport (httpx2 in anthropic 2.x) raises mid-iteration; the chunked body
    # makes the cut visible instead of looking like a normal end of stream.
    with (
        pytest.raises(Exception, match="incomplete chunked read"),
        client_for(api).messages.stream(model=MODEL, max_tokens=5, messages=USER) as s,
    ):
        s.get_final_message()
    assert api.usage_totals() == {}  # a cut reply is not billed in the totals
    partial = api.usage_totals(include_incomplete=True)[MODEL]
    assert partial.output_tokens == 1  # only message_start's placeholder reached the client
    assert partial.input_tokens > 0


def test_cut_non_streaming_reply_is_an_error(api: FakeMessagesAPI) -> None:
    api.inject(Fault(kind="cut_stream"))
    with pytest.raises(anthropic.APIError):
        client_for(api).messages.create(model=MODEL, max_tokens=5, messages=USER)


def test_tool_call_with_invalid_json(api: FakeMessagesAPI) -> None:
    tools: dict[str, Any] = {"tools": [SCORE_TOOL]}
    api.inject(Fault(kind="invalid_tool_json"), times=2)
    client = client_for(api)
    # The SDK's stream parser rejects it (what an agent sees: a broken reply).
    with (
        pytest.raises(ValueError),
        client.messages.stream(model=MODEL, max_tokens=5, messages=USER, **tools) as s,
    ):
        s.get_final_message()
    message = client.messages.create(model=MODEL, max_tokens=5, messages=USER, **tools)
    block = message.content[0]
    assert block.type == "tool_use"
    assert block.name == "record_score"
    assert not isinstance(block.input, dict)  # the raw, unparsable text
    raw = api.requests[0].body
    assert raw["tools"][0]["name"] == "record_score"


def test_tool_call_that_does_not_fit_the_schema(api: FakeMessagesAPI) -> None:
    api.inject(Fault(kind="schema_mismatch"))
    message = client_for(api).messages.create(
        model=MODEL,
        max_tokens=5,
        messages=USER,
        tools=[SCORE_TOOL],
        tool_choice={"type": "tool", "name": "record_score"},
    )
    block = message.content[0]
    assert block.type == "tool_use"
    assert isinstance(block.input, dict)
    required = SCORE_TOOL["input_schema"]["required"]
    assert not all(name in block.input for name in required)


# ---------------------------------------------------------------- recording and lifecycle


def test_requests_are_recorded_with_the_key_redacted(api: FakeMessagesAPI) -> None:
    api.set_replies(["one", "two"])
    client_for(api).messages.create(
        model=MODEL, max_tokens=5, messages=USER, extra_query={"beta": "true"}
    )
    bearer = anthropic.Anthropic(base_url=api.base_url, auth_token=SECRET, max_retries=0)
    bearer.messages.create(model=MODEL, max_tokens=5, messages=USER)
    first, second = api.requests
    assert first.path == "/v1/messages"
    assert first.query == {"beta": ["true"]}
    assert first.body["messages"] == USER
    assert first.model == MODEL
    assert not first.stream
    # anthropic 2.x sends api_key as a bearer token, older SDKs (and the CLI) as x-api-key.
    assert REDACTED in (first.headers.get("x-api-key"), first.headers.get("authorization"))
    assert second.headers["authorization"] == REDACTED
    assert first.time <= second.time
    dumped = json.dumps([r.model_dump() for r in api.requests])
    assert SECRET not in dumped


def test_responder_sees_the_request(api: FakeMessagesAPI) -> None:
    seen: list[RecordedRequest] = []

    def responder(request: RecordedRequest) -> str:
        seen.append(request)
        return f"you said {request.body['messages'][-1]['content']}"

    api.set_replies(responder)
    message = client_for(api).messages.create(model=MODEL, max_tokens=5, messages=USER)
    assert message.content[0].text == "you said Say hello."  # type: ignore[union-attr]
    assert SECRET not in json.dumps(seen[0].headers)


def test_exhausted_script() -> None:
    with FakeMessagesAPI(["only"], default_reply=None) as server:
        client = client_for(server)
        client.messages.create(model=MODEL, max_tokens=5, messages=USER)
        with pytest.raises(anthropic.InternalServerError, match="no scripted reply left"):
            client.messages.create(model=MODEL, max_tokens=5, messages=USER)


def test_unknown_path_is_a_json_404(api: FakeMessagesAPI) -> None:
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(f"{api.base_url}/v1/models", timeout=10)
    assert raised.value.code == 404
    assert json.loads(raised.value.read())["error"]["type"] == "not_found_error"


@pytest.mark.slow
def test_concurrent_requests_each_get_one_reply(api: FakeMessagesAPI) -> None:
    api.set_replies([f"reply {n}" for n in range(16)])
    got: list[str] = []
    lock = threading.Lock()

    def call(stream: bool) -> None:
        client = client_for(api)
        if stream:
            with client.messages.stream(model=MODEL, max_tokens=5, messages=USER) as s:
                text = s.get_final_text()
        else:
            message = client.messages.create(model=MODEL, max_tokens=5, messages=USER)
            text = message.content[0].text  # type: ignore[union-attr]
        with lock:
            got.append(text)

    threads = [threading.Thread(target=call, args=(n % 2 == 0,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(got) == sorted(f"reply {n}" for n in range(16))
    assert len(api.usages) == 16


def test_stop_is_clean_during_a_hang() -> None:
    server = FakeMessagesAPI().start()
    server.inject(Fault(kind="hang"))  # until the server stops
    errors: list[BaseException] = []

    def call() -> None:
        try:
            client_for(server, timeout=60).messages.create(model=MODEL, max_tokens=5, messages=USER)
        except BaseException as exc:  # the client must see the connection end
            errors.append(exc)

    client_thread = threading.Thread(target=call)
    client_thread.start()
    deadline = time.monotonic() + 5
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.live_threads(), "the hanging handler should be running"
    port = server.port
    start = time.monotonic()
    server.stop()
    assert time.monotonic() - start < 10  # the hang has no end: stop did not wait for it
    assert server.live_threads() == []
    client_thread.join(5)
    assert not client_thread.is_alive()
    assert errors and isinstance(errors[0], anthropic.APIConnectionError)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), 1):
        pass


def test_fixture_serves_and_records(fake_api: FakeMessagesAPI) -> None:
    fake_api.add_replies("from the fixture")
    message = client_for(fake_api).messages.create(model=MODEL, max_tokens=5, messages=USER)
    assert message.content[0].text == "from the fixture"  # type: ignore[union-attr]
    assert len(fake_api.message_requests()) == 1


# ---------------------------------------------------------------- dry-run scripts

TOOLS = [{"name": "Write", "input_schema": {}}, {"name": "Bash", "input_schema": {}}]


def agent_request(
    messages: list[dict[str, Any]], session: str = "s1", model: str = "claude-sonnet-4-5"
) -> RecordedRequest:
    body = {
        "model": model,
        "tools": TOOLS,
        "system": [{"type": "text", "text": "You are an agent."}],
        "messages": messages,
    }
    return RecordedRequest(
        index=0,
        time=0.0,
        method="POST",
        path="/v1/messages",
        headers={"x-claude-code-session-id": session},
        body=body,
    )


def conversation(turns: int, cwd: str = "/work/ws") -> list[dict[str, Any]]:
    env = f"<system-reminder>\n - Primary working directory: {cwd}\n</system-reminder>"
    messages: list[dict[str, Any]] = [{"role": "user", "content": [{"type": "text", "text": env}]}]
    for n in range(turns):
        messages.append({"role": "assistant", "content": [{"type": "text", "text": f"t{n}"}]})
        messages.append({"role": "user", "content": [{"type": "text", "text": "result"}]})
    return messages


def test_test_001_dry_run_script_steps_follow_the_conversation() -> None:
    script = load_dry_run_script(ROOT / "experiments" / "test-001" / "dry-run.yaml")
    responder = script.as_responder()
    first = responder(agent_request(conversation(0)))
    assert isinstance(first, Reply)
    assert first.tool_calls[0].name == "Write"
    assert first.tool_calls[0].input["file_path"] == "/work/ws/hello.py"
    assert first.tool_calls[0].input["content"] == 'print("Hello, World!")\n'
    second = responder(agent_request(conversation(1)))
    assert isinstance(second, Reply)
    assert second.tool_calls[0].input["command"] == "python3 hello.py"
    # Another session at its first step is not disturbed by the first session's progress.
    other = responder(agent_request(conversation(0), session="s2"))
    assert isinstance(other, Reply) and other.tool_calls[0].name == "Write"
    last = responder(agent_request(conversation(2)))
    assert isinstance(last, Reply)
    assert not last.tool_calls and last.effective_stop_reason() == "end_turn"
    assert "/work/ws/hello.py" in (last.text or "")
    beyond = responder(agent_request(conversation(3)))
    assert isinstance(beyond, Reply) and beyond.text == script.after_script


def test_side_requests_do_not_advance_the_script() -> None:
    script = DryRunScript.model_validate({"turns": [{"tool_use": {"name": "Bash", "input": {}}}]})
    responder = script.as_responder()
    no_tools = agent_request(conversation(0))
    no_tools.body["tools"] = []
    haiku = agent_request(conversation(0), model="claude-haiku-4-5")
    for side in (no_tools, haiku):
        reply = responder(side)
        assert isinstance(reply, Reply) and reply.text == script.side_reply
    main = responder(agent_request(conversation(0)))
    assert isinstance(main, Reply) and main.tool_calls[0].name == "Bash"
    # An explicit model glob decides instead of the side-model list.
    only_haiku = DryRunScript.model_validate({**script.model_dump(), "model": "*haiku*"})
    reply = only_haiku.as_responder()(haiku)
    assert isinstance(reply, Reply) and reply.tool_calls


def test_fault_steps_are_delivered_once_per_conversation() -> None:
    script = DryRunScript.model_validate(
        {"turns": [{"fault": 429, "times": 2, "retry_after": 0}, {"text": "done"}]}
    )
    responder = script.as_responder()
    for session in ("a", "b"):
        got = [responder(agent_request(conversation(0), session=session)) for _ in range(3)]
        assert [type(g).__name__ for g in got] == ["Fault", "Fault", "Reply"]
        assert isinstance(got[0], Fault) and got[0].kind == "rate_limit"
        assert got[0].retry_after == 0


def test_turn_taking_faults_count_as_assistant_turns() -> None:
    script = DryRunScript.model_validate(
        {"turns": [{"fault": "schema_mismatch", "tool": "Write"}, {"text": "recovered"}]}
    )
    assert [t.takes_turn for t in script.turns] == [True, True]
    responder = script.as_responder()
    assert isinstance(responder(agent_request(conversation(0))), Fault)
    after = responder(agent_request(conversation(1)))
    assert isinstance(after, Reply) and after.text == "recovered"


def test_script_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="either a reply"):
        ScriptTurn.model_validate({"text": "x", "fault": 500})
    with pytest.raises(ValueError, match="meltdown"):
        ScriptTurn.model_validate({"fault": "meltdown"})
    bad = tmp_path / "dry-run.yaml"
    bad.write_text("turns: []\n")
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        load_dry_run_script(bad)


def test_helpers_read_the_conversation() -> None:
    assert assistant_turns([{"role": "user"}, {"role": "assistant"}, {"role": "assistant"}]) == 1
    assert working_directory({"messages": conversation(0, cwd="/a b/c")}) == "/a b/c"
    assert working_directory({"system": "Primary working directory: /s", "messages": []}) == "/s"


def test_script_through_the_server_with_the_sdk(api: FakeMessagesAPI) -> None:
    script = DryRunScript.model_validate(
        {"turns": [{"fault": 529}, {"text": "hi {cwd}", "usage": {"output_tokens": 3}}]}
    )
    api.set_replies(script.as_responder(cwd="/given"))
    client = client_for(api, max_retries=0)
    request: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 9,
        "messages": USER,
        "tools": [SCORE_TOOL],
    }
    with pytest.raises(anthropic.OverloadedError):
        client.messages.create(**request)
    message = client.messages.create(**request)
    assert message.content[0].text == "hi /given"  # type: ignore[union-attr]
    assert message.usage.output_tokens == 3

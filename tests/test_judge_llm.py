"""LLM judges with the real anthropic SDK against the fake Messages API on 127.0.0.1."""

from __future__ import annotations

import _thread
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from pytest_scylla.judges.backoff import SharedBackoff
from pytest_scylla.judges.cache import JudgeCache
from pytest_scylla.judges.consensus import build_consensus
from pytest_scylla.judges.llm import (
    InvalidAnswer,
    LlmJudge,
    validate_answer,
)
from pytest_scylla.judges.panel import JudgePanel, judge_dir_name
from pytest_scylla.judges.prompt import (
    ANSWER_TOOL_NAME,
    DIFF_LIMIT_CHARS,
    JudgeInput,
    build_judge_request,
)
from pytest_scylla.judges.run_judges import NO_KEY, LlmJudgeRunner, judge_credentials
from pytest_scylla.pricing import PricingTable, UnknownModelPrice
from pytest_scylla.records import (
    CheckResult,
    ChecksRecord,
    ItemScore,
    JudgeRecord,
)
from pytest_scylla.redact import Redactor
from pytest_scylla.settings import ScyllaSettings
from pytest_scylla.spec.rubric import Rubric
from pytest_scylla.testing.fake_api import (
    FakeMessagesAPI,
    Fault,
    RecordedRequest,
    Reply,
    ToolCall,
)

KEY = "sk-ant-api03-RECOGNISABLE-test-key-0123456789"
SONNET, HAIKU, OPUS = "claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6"
RUBRIC_TEXT = """\
categories:
  functional:
    weight: 0.6
    items:
      - {id: F1, check: "hello.py prints Hello, World!", points: 2}
      - {id: F2, check: "python hello.py exits 0", points: 1, command: "python hello.py"}
      - {id: F3, check: "tests cover the script", points: 1, na_condition: "no test framework"}
  quality:
    weight: 0.4
    items:
      - {id: Q1, check: "no unused imports", points: 1}
      - {id: Q2, check: "idiomatic Python", points: 2}
"""


def rubric():  # type: ignore[no-untyped-def]
    import yaml

    return Rubric.model_validate(yaml.safe_load(RUBRIC_TEXT)).normalized()


RUBRIC = rubric()
JUDGED = [item for item in RUBRIC.items() if not item.command]
COMMANDS = {
    "F2": ItemScore(item_id="F2", category="functional", max_points=1, achieved=1, source="command")
}


def make_input(diff: str = "+print('Hello, World!')\n") -> JudgeInput:
    return JudgeInput(
        task_prompt="Create hello.py that prints Hello, World!",
        criteria="R001: prints exactly Hello, World!",
        rubric=RUBRIC,
        rubric_text=RUBRIC_TEXT,
        diff=diff,
        files=["hello.py"],
        checks=ChecksRecord(
            baseline=[CheckResult(name="tests", command="pytest", exit_code=5)],
            after=[CheckResult(name="tests", command="pytest", exit_code=0)],
            rubric_commands={"F2": CheckResult(name="F2", command="python hello.py", exit_code=0)},
        ),
    )


def answer(**points: float | None) -> dict[str, Any]:
    return {
        "items": [
            {"item_id": item_id, "achieved": value, "reason": f"because {item_id}"}
            for item_id, value in points.items()
        ],
        "overall_reasoning": "fine",
    }


def tool_reply(payload: dict[str, Any]) -> Reply:
    return Reply(tool_calls=[ToolCall(name=ANSWER_TOOL_NAME, input=payload)])


VALID = answer(F1=2, F3=None, Q1=1, Q2=2)


@pytest.fixture
def server() -> Iterator[FakeMessagesAPI]:
    with FakeMessagesAPI(api_key=KEY) as fake:
        yield fake


def make_client(server: FakeMessagesAPI, key: str = KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=key, base_url=server.base_url)


def make_judge(
    server: FakeMessagesAPI,
    tmp_path: Path,
    model: str = SONNET,
    *,
    cache: JudgeCache | None = None,
    key: str = KEY,
    attempts: int = 4,
    total_s: float = 30.0,
    timeout_s: float = 30.0,
) -> LlmJudge:
    return LlmJudge(
        model,
        client=make_client(server, key),
        backoff=SharedBackoff(
            tmp_path / "backoff.json",
            max_attempts=attempts,
            max_total_s=total_s,
            base_s=0.01,
            cap_s=0.05,
            seed=0,
        ),
        cache=cache,
        pricing=PricingTable.load(),
        redactor=Redactor([KEY]),
        request_timeout_s=timeout_s,
    )


def written_files(directory: Path) -> list[Path]:
    return [path for path in directory.rglob("*") if path.is_file()]


# --- the panel, end to end


def test_panel_of_three_consensus_by_hand(server: FakeMessagesAPI, tmp_path: Path) -> None:
    scripted = {
        SONNET: answer(F1=2, F3=1, Q1=1, Q2=2),
        HAIKU: answer(F1=1, F3=None, Q1=1, Q2=1),
        OPUS: answer(F1=1.5, F3=None, Q1=1, Q2=0.5),
    }

    def responder(request: RecordedRequest) -> Reply:
        return tool_reply(scripted[request.model or ""])

    server.set_replies(responder)
    panel = JudgePanel([SONNET, HAIKU, OPUS], lambda model: make_judge(server, tmp_path, model))
    judges_dir = tmp_path / "judges"
    records = panel.run(make_input(), JUDGED, judges_dir, [])
    assert [r.model for r in records] == [SONNET, HAIKU, OPUS]
    assert all(r.status == "ok" and r.attempts == 1 for r in records)
    assert len(server.message_requests()) == 3

    result, consensus = build_consensus(RUBRIC, COMMANDS, records, pass_threshold=0.7)
    # By hand: F1 median(2, 1, 1.5) = 1.5; F3 N/A (2 of 3); Q1 1; Q2 median(2, 1, .5) = 1.
    # functional (1.5 + 1 [F2 command]) / 3 = 0.8333, quality (1 + 1) / 3 = 0.6667.
    assert result.score == pytest.approx(0.6 * 2.5 / 3 + 0.4 * 2 / 3)
    assert result.passed
    assert consensus.judge_scores[SONNET] == pytest.approx(1.0)
    assert consensus.judge_scores[HAIKU] == pytest.approx(0.6 * 2 / 3 + 0.4 * 2 / 3)
    assert consensus.judge_scores[OPUS] == pytest.approx(0.6 * 2.5 / 3 + 0.4 * 1.5 / 3)
    assert consensus.item_agreement == pytest.approx(0.25)

    for model in (SONNET, HAIKU, OPUS):
        out = judges_dir / judge_dir_name(model)
        assert {p.name for p in out.iterdir()} == {"judgment.json", "prompt.md", "response.json"}
        saved = JudgeRecord.model_validate_json((out / "judgment.json").read_text())
        assert saved.tokens.input_tokens + saved.tokens.cache_creation_input_tokens > 0
        assert saved.cost_usd > 0 and saved.latency_s > 0
    assert not [t for t in threading.enumerate() if t.name.startswith("judge")]


def test_panel_reuses_ok_judges_and_reruns_failed(server: FakeMessagesAPI, tmp_path: Path) -> None:
    server.set_replies(lambda request: tool_reply(VALID))
    panel = JudgePanel([SONNET, HAIKU], lambda model: make_judge(server, tmp_path, model))
    existing = [
        JudgeRecord(model=SONNET, status="ok", items={}),
        JudgeRecord(model=HAIKU, status="failed", error="x"),
    ]
    records = panel.run(make_input(), JUDGED, tmp_path / "j", existing)
    assert records[0] is existing[0]
    assert records[1].status == "ok"
    assert [r.model for r in server.message_requests()] == [HAIKU]

    # --scylla-rejudge --add-judge opus: only the new judge runs.
    server.clear()
    records = panel.run(
        make_input(), JUDGED, tmp_path / "j", records, rejudge=True, only_models={OPUS}
    )
    assert [r.model for r in records] == [SONNET, HAIKU, OPUS]
    assert [r.model for r in server.message_requests()] == [OPUS]

    # --scylla-rejudge: everyone again.
    server.clear()
    panel.run(make_input(), JUDGED, tmp_path / "j", records, rejudge=True)
    assert len(server.message_requests()) == 2


def test_panel_models_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        JudgePanel([SONNET, SONNET], lambda model: None)  # type: ignore[arg-type,return-value]


def test_panel_turns_a_crashing_judge_into_a_failed_record(tmp_path: Path) -> None:
    class Broken:
        model = "broken"

        def judge(self, *args: object) -> JudgeRecord:
            raise RuntimeError(f"boom {KEY}")

    panel = JudgePanel(["broken"], lambda model: Broken())
    [record] = panel.run(make_input(), JUDGED, tmp_path, [])
    assert record.status == "failed" and "RuntimeError" in (record.error or "")
    assert KEY not in (record.error or "")


def test_ctrl_c_does_not_wait_for_a_judge_in_backoff(tmp_path: Path) -> None:
    """A judge sleeping through its retries (minutes of backoff) held Ctrl-C and SIGTERM
    until it gave up: the panel waited for its thread pool."""
    released = threading.Event()

    class Waiting:
        model = "waiting"

        def judge(self, *args: object) -> JudgeRecord:
            released.wait(60)  # a backoff sleep
            return JudgeRecord(model="waiting", status="failed", error="gave up")

    panel = JudgePanel(["waiting"], lambda model: Waiting())
    timer = threading.Timer(0.3, _thread.interrupt_main)
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            panel.run(make_input(), JUDGED, tmp_path, [])
        waited = time.monotonic() - started
    finally:
        released.set()
        timer.cancel()
    assert waited < 10, waited


# --- credentials: one per client, as the SDK reads the environment

CREDENTIAL_HEADERS = ("x-api-key", "authorization")
TOKEN = "oauth-token-RECOGNISABLE-0123456789"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_AUTH_TOKEN": TOKEN}, {"api_key": KEY}),
        ({"ANTHROPIC_AUTH_TOKEN": TOKEN}, {"auth_token": TOKEN}),
        ({"ANTHROPIC_API_KEY": "", "ANTHROPIC_AUTH_TOKEN": TOKEN}, {"auth_token": TOKEN}),
        ({"ANTHROPIC_BASE_URL": "http://127.0.0.1:9"}, {"api_key": NO_KEY}),
        ({}, {}),
    ],
)
def test_judge_credentials_follow_the_sdk_precedence(
    environ: dict[str, str], expected: dict[str, str]
) -> None:
    assert judge_credentials(environ) == expected


@pytest.mark.parametrize(
    ("env", "accepted"),
    [
        ({"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_AUTH_TOKEN": TOKEN}, KEY),  # the key wins
        ({"ANTHROPIC_AUTH_TOKEN": TOKEN}, TOKEN),
    ],
)
def test_judges_answer_with_one_credential_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], accepted: str
) -> None:
    """Both variables set (the session fake API always sets a key) made every judge crash
    with "Pass at most one of api_key=, auth_token=" after the agent was paid for."""
    with FakeMessagesAPI(api_key=accepted) as fake:  # any other credential gets a 401
        fake.set_replies([tool_reply(VALID)])
        monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings = ScyllaSettings(judge_model=OPUS, results_dir=tmp_path / "results")
        runner = LlmJudgeRunner(settings, Redactor())
        record = runner._make_judge(OPUS).judge(make_input(), JUDGED, tmp_path / "out")
        assert record.status == "ok", record.error
        [request] = fake.message_requests()
        sent = [name for name in request.headers if name in CREDENTIAL_HEADERS]
        assert len(sent) == 1, request.headers
    for path in written_files(tmp_path / "out"):
        assert "RECOGNISABLE" not in path.read_text(errors="replace"), path


# --- validation and retries on invalid answers


def test_invalid_answer_twice_then_valid(server: FakeMessagesAPI, tmp_path: Path) -> None:
    server.set_replies(
        [
            Fault(kind="schema_mismatch"),
            tool_reply(answer(F1=3, F3=None, Q1=1, Q2=2)),  # 3 > max 2 points
            tool_reply(VALID),
        ]
    )
    record = make_judge(server, tmp_path).judge(make_input(), JUDGED, tmp_path / "out")
    assert record.status == "ok" and record.attempts == 3
    requests = server.message_requests()
    assert len(requests) == 3
    for request in requests[1:]:
        last = request.body["messages"][-1]
        assert last["role"] == "user"
        assert last["content"][0]["type"] == "tool_result"
        assert last["content"][0]["is_error"] is True
    assert "outside 0..2" in requests[2].body["messages"][-1]["content"][0]["content"]
    assert record.items["F1"].achieved == 2 and record.items["F3"].achieved is None
    log = json.loads((tmp_path / "out" / "response.json").read_text())
    assert [a["validation_error"] is None for a in log["answers"]] == [False, False, True]
    # Tokens of all three answers are counted.
    assert record.tokens.output_tokens == sum(
        u.usage.output_tokens for u in server.usages if u.complete
    )


def test_invalid_answers_exhaust_attempts(server: FakeMessagesAPI, tmp_path: Path) -> None:
    server.set_replies(lambda request: tool_reply(answer(F1=1)))  # items missing
    record = make_judge(server, tmp_path).judge(make_input(), JUDGED, tmp_path / "out")
    assert record.status == "failed"
    assert record.error is not None
    assert record.error.startswith("invalid answer after 3 attempts: missing items: F3, Q1, Q2")
    assert len(server.message_requests()) == 3
    assert JudgeRecord.model_validate_json((tmp_path / "out" / "judgment.json").read_text())


def test_text_only_answer_gets_a_follow_up_turn(server: FakeMessagesAPI, tmp_path: Path) -> None:
    server.set_replies([Reply(text="I think it is fine."), tool_reply(VALID)])
    record = make_judge(server, tmp_path).judge(make_input(), JUDGED, tmp_path / "out")
    assert record.status == "ok" and record.attempts == 2
    second = server.message_requests()[1].body["messages"]
    assert second[-2]["role"] == "assistant"
    assert second[-1]["content"][0]["type"] == "text"


def test_invalid_tool_json_is_retried(server: FakeMessagesAPI, tmp_path: Path) -> None:
    server.set_replies([Fault(kind="invalid_tool_json"), tool_reply(VALID)])
    record = make_judge(server, tmp_path).judge(make_input(), JUDGED, tmp_path / "out")
    assert record.status == "ok" and record.attempts == 2


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (answer(F1=2, F3=None, Q1=1, Q2=2, Z9=1), "unknown item id 'Z9'"),
        (answer(F1=2, F3=None, Q1=None, Q2=2), "'Q1' has no N/A condition"),
        (answer(F1=-1, F3=None, Q1=1, Q2=2), "outside 0..2"),
        (
            {"items": [*VALID["items"], VALID["items"][0]], "overall_reasoning": ""},
            "more than once",
        ),
        ({"items": "nope", "overall_reasoning": ""}, "does not match the tool schema"),
        ("not an object", "JSON object"),
    ],
)
def test_validate_answer_rejects(payload: Any, message: str) -> None:
    with pytest.raises(InvalidAnswer, match=message):
        validate_answer(payload, JUDGED)


def test_validate_answer_binary_items() -> None:
    binary = (
        Rubric.model_validate(
            {
                "requirements": [
                    {"id": "R1", "description": "d", "weight": 1, "evaluation": "binary"}
                ]
            }
        )
        .normalized()
        .items()
    )
    with pytest.raises(InvalidAnswer, match="binary"):
        validate_answer(answer(R1=0.5), binary)
    assert validate_answer(answer(R1=1.0), binary).items[0].achieved == 1.0


# --- API faults


@pytest.mark.slow
def test_429_burst_honours_retry_after(server: FakeMessagesAPI, tmp_path: Path) -> None:
    server.inject(Fault(kind="rate_limit", retry_after=0.6), times=2)
    server.set_replies([tool_reply(VALID)])
    record = make_judge(server, tmp_path).judge(make_input(), JUDGED, tmp_path / "out")
    assert record.status == "ok" and record.attempts == 1
    times = [request.time for request in server.message_requests()]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.6 - 0.02
    assert times[2] - times[1] >= 0.6 - 0.02


def test_529_storm_beyond_budget_fails(server: FakeMessagesAPI, tmp_path: Path) -> None:
    server.inject(529, times=10)
    record = make_judge(server, tmp_path, attempts=3).judge(make_input(), JUDGED, tmp_path / "o")
    assert record.status == "failed"
    assert record.error is not None
    assert record.error.startswith("API unavailable after 3 attempts: HTTP 529")
    assert "overloaded" in record.error
    assert len(server.message_requests()) == 3
    log = json.loads((tmp_path / "o" / "response.json").read_text())
    assert log["api_error"] == record.error and log["answers"] == []


def test_500_then_success(server: FakeMessagesAPI, tmp_path: Path) -> None:
    server.inject(500, times=2)
    server.set_replies([tool_reply(VALID)])
    record = make_judge(server, tmp_path).judge(make_input(), JUDGED, tmp_path / "out")
    assert record.status == "ok" and len(server.message_requests()) == 3


@pytest.mark.slow
def test_hang_times_out_and_fails_without_stuck_threads(
    server: FakeMessagesAPI, tmp_path: Path
) -> None:
    server.inject(Fault(kind="hang", seconds=30), times=5)
    panel = JudgePanel(
        [SONNET], lambda model: make_judge(server, tmp_path, model, attempts=2, timeout_s=0.5)
    )
    started = time.monotonic()
    [record] = panel.run(make_input(), JUDGED, tmp_path / "judges", [])
    # Well before the first 30 s hang ends, with room for a loaded CI machine.
    assert time.monotonic() - started < 20
    assert record.status == "failed"
    assert record.error == "API unavailable after 2 attempts: request timed out"
    assert not [t for t in threading.enumerate() if t.name.startswith("judge")]


def test_auth_failure_is_immediate_and_key_never_written(
    server: FakeMessagesAPI, tmp_path: Path
) -> None:
    wrong = "sk-ant-api03-WRONG-but-recognisable-987654"
    judge = make_judge(server, tmp_path, key=wrong)
    record = judge.judge(make_input(diff=f"+KEY = '{KEY}'\n+OTHER = '{wrong}'\n"), JUDGED, tmp_path)
    assert record.status == "failed" and record.error == "authentication failed"
    assert len(server.message_requests()) == 1
    for path in written_files(tmp_path):
        text = path.read_text(errors="replace")
        assert KEY not in text and wrong not in text, path
        assert "RECOGNISABLE" not in text and "WRONG-but" not in text, path


def test_key_in_the_evidence_never_reaches_the_model_or_disk(
    server: FakeMessagesAPI, tmp_path: Path
) -> None:
    server.set_replies([tool_reply({**VALID, "overall_reasoning": f"the diff leaks {KEY}"})])
    out = tmp_path / "out"
    cache = JudgeCache(tmp_path / "cache")
    judge = make_judge(server, tmp_path, cache=cache)
    record = judge.judge(make_input(diff=f"+key={KEY}\n"), JUDGED, out)
    assert list((tmp_path / "cache").rglob("*.json"))  # the cache file is checked below too
    assert record.status == "ok"
    assert KEY not in json.dumps(server.message_requests()[0].body)
    assert KEY not in record.overall_reasoning
    for path in written_files(tmp_path):
        assert "RECOGNISABLE" not in path.read_text(errors="replace"), path


# --- caches


def test_cache_hit_makes_no_request(server: FakeMessagesAPI, tmp_path: Path) -> None:
    server.set_replies(lambda request: tool_reply(VALID))
    cache = JudgeCache(tmp_path / "cache")
    first = make_judge(server, tmp_path, cache=cache).judge(make_input(), JUDGED, tmp_path / "a")
    assert first.status == "ok" and not first.cached
    before = len(server.message_requests())
    second = make_judge(server, tmp_path, cache=cache).judge(make_input(), JUDGED, tmp_path / "b")
    assert len(server.message_requests()) == before
    assert second.cached and second.status == "ok" and second.attempts == 0
    assert second.items == first.items and second.tokens == first.tokens
    saved = JudgeRecord.model_validate_json((tmp_path / "b" / "judgment.json").read_text())
    assert saved.cached
    # A different run (another diff) is another question.
    make_judge(server, tmp_path, cache=cache).judge(make_input("+x\n"), JUDGED, tmp_path / "c")
    assert len(server.message_requests()) == before + 1


def test_failures_are_not_cached(server: FakeMessagesAPI, tmp_path: Path) -> None:
    server.set_replies(lambda request: tool_reply(answer(F1=1)))
    cache = JudgeCache(tmp_path / "cache")
    make_judge(server, tmp_path, cache=cache).judge(make_input(), JUDGED, tmp_path / "a")
    assert not list((tmp_path / "cache").rglob("*.json"))


def test_request_carries_cache_control_and_forced_tool(
    server: FakeMessagesAPI, tmp_path: Path
) -> None:
    server.set_replies([tool_reply(VALID)])
    make_judge(server, tmp_path).judge(make_input(), JUDGED, tmp_path / "out")
    body = server.message_requests()[0].body
    assert body["tool_choice"] == {"type": "tool", "name": ANSWER_TOOL_NAME}
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "Items to judge" in body["system"][-1]["text"]
    run_text = body["messages"][0]["content"][0]["text"]
    assert "hello.py" in run_text and "Workspace diff" in run_text
    assert "Workspace diff" not in body["system"][-1]["text"]  # run part after the breakpoint
    assert body["tools"][0]["input_schema"]["required"] == ["items", "overall_reasoning"]


def test_second_judgment_of_one_experiment_reads_the_prompt_cache(
    server: FakeMessagesAPI, tmp_path: Path
) -> None:
    server.set_replies(lambda request: tool_reply(VALID))
    judge = make_judge(server, tmp_path)
    first = judge.judge(make_input("+run 1\n"), JUDGED, tmp_path / "r1")
    second = judge.judge(make_input("+run 2\n"), JUDGED, tmp_path / "r2")
    assert first.tokens.cache_creation_input_tokens > 0
    assert first.tokens.cache_read_input_tokens == 0
    assert second.tokens.cache_read_input_tokens == first.tokens.cache_creation_input_tokens
    assert second.tokens.cache_creation_input_tokens == 0
    assert second.cost_usd < first.cost_usd


# --- prompt and pricing details


def test_long_diff_is_truncated_with_a_marker() -> None:
    judge_input = make_input("+" + "x" * (DIFF_LIMIT_CHARS * 2))
    assert len(judge_input.diff) < DIFF_LIMIT_CHARS + 200
    assert "diff truncated" in judge_input.diff
    request = build_judge_request(judge_input, JUDGED)
    assert "diff truncated" in request.messages[0]["content"][0]["text"]


def test_unknown_judge_price_fails_before_any_request(
    server: FakeMessagesAPI, tmp_path: Path
) -> None:
    with pytest.raises(UnknownModelPrice):
        make_judge(server, tmp_path, model="judge-x")
    judge = LlmJudge(
        "judge-x",
        client=make_client(server),
        backoff=SharedBackoff(tmp_path / "b.json"),
        cache=None,
        pricing=PricingTable.load(),
        unknown_price="zero",
    )
    server.set_replies([tool_reply(VALID)])
    record = judge.judge(make_input(), JUDGED, tmp_path / "out")
    assert record.status == "ok" and record.cost_usd == 0.0


def test_prompt_cache_can_be_turned_off() -> None:
    request = build_judge_request(make_input(), JUDGED, prompt_cache=False)
    assert all("cache_control" not in block for block in request.system)
    again = build_judge_request(make_input(), JUDGED)
    assert again.system[-1]["text"] == request.system[-1]["text"]

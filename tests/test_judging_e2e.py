"""LLM judging end to end through the plugin (issue #3), offline.

Every session here is a real pytest session on the shipped `experiments/test-001` (T0, two
sub-tests, two runs each) with the oracle agent, judged by the real judge code over HTTP
against a `FakeMessagesAPI` started by the test. The fake answers each judge model from a
table, so the consensus can be checked against a hand computation; it can also inject rate
limits, an overload storm and invalid answers.

test-001's rubric (experiments/test-001/expected/rubric.yaml): every item has a `command:`
except Q3 (code_quality, 1 point) and P2 (proportionality, 1 point), so a judge is asked
about exactly those two. The oracle solution passes every command item.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from experiment_factory import shipped_t0

from pytest_scylla.pricing import PricingTable
from pytest_scylla.records import RunRecord, TokenUsage
from pytest_scylla.testing.fake_api import FakeMessagesAPI, Fault, RecordedRequest, Reply, ToolCall

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = REPO / "experiments" / "test-001"
FAKE_KEY = "sk-ant-test-SECRET-0123456789"
JUDGE_TOOL = "submit_judgment"

OPUS = "claude-opus-4-6"
SONNET = "claude-sonnet-4-6"
HAIKU = "claude-haiku-4-5"
EXTRA = "claude-sonnet-4-5"  # the judge added later with --add-judge
PANEL = [OPUS, SONNET, HAIKU]
SUBTESTS = ["00-empty", "01-critical-only"]
RUNS = [1, 2]
RETRY_AFTER_S = 1.0
# Another judge may have checked the shared backoff just before a 429 was answered, and send
# a moment later; anything after this slack must have waited.
IN_FLIGHT_SLACK_S = 0.25

# What each judge model answers for the two judged items (both scaled, max 1 point).
ANSWERS: dict[str, dict[str, float]] = {
    OPUS: {"Q3": 0.25, "P2": 1.0},
    SONNET: {"Q3": 0.75, "P2": 0.0},
    HAIKU: {"Q3": 0.5, "P2": 1.0},
    EXTRA: {"Q3": 1.0, "P2": 0.0},
}

# ---- the hand computation -----------------------------------------------------------------
# Weights: functional 0.50, code_quality 0.20, proportionality 0.30.
# Command items (the oracle passes them all): functional F1 1 + F2 2 + F3 1 + F4 0.5 = 4.5 of
# 4.5; code_quality Q1 1 + Q2 1; proportionality P1 1.
FUNCTIONAL = 4.5 / 4.5  # = 1.0
# Panel of three: Q3 votes 0.25, 0.75, 0.5 -> median 0.5; P2 votes 1, 0, 1 -> median 1.
CQ_3 = (1 + 1 + 0.5) / 3  # = 0.8333...
PROP_3 = (1 + 1.0) / 2  # = 1.0
SCORE_3 = 0.5 * FUNCTIONAL + 0.2 * CQ_3 + 0.3 * PROP_3  # = 0.96667
# Each judge's own score (its own Q3/P2 with the command items):
OWN_3 = {
    OPUS: 0.5 * 1 + 0.2 * (2 + 0.25) / 3 + 0.3 * (1 + 1.0) / 2,  # = 0.95
    SONNET: 0.5 * 1 + 0.2 * (2 + 0.75) / 3 + 0.3 * (1 + 0.0) / 2,  # = 0.83333
    HAIKU: 0.5 * 1 + 0.2 * (2 + 0.5) / 3 + 0.3 * (1 + 1.0) / 2,  # = 0.96667
}
RANGE_3 = OWN_3[HAIKU] - OWN_3[SONNET]  # max - min = 0.96667 - 0.83333 = 0.13333
# Panel of four (EXTRA added): Q3 votes 0.25, 0.5, 0.75, 1 -> median (0.5 + 0.75) / 2 =
# 0.625; P2 votes 0, 0, 1, 1 -> median 0.5.
CQ_4 = (1 + 1 + 0.625) / 3  # = 0.875
PROP_4 = (1 + 0.5) / 2  # = 0.75
SCORE_4 = 0.5 * FUNCTIONAL + 0.2 * CQ_4 + 0.3 * PROP_4  # = 0.9
OWN_EXTRA = 0.5 * 1 + 0.2 * (2 + 1.0) / 3 + 0.3 * (1 + 0.0) / 2  # = 0.85
RANGE_4 = OWN_3[HAIKU] - OWN_3[SONNET]  # EXTRA's 0.85 lies inside: 0.13333


def test_hand_computation_constants() -> None:
    # The formulas above, as plain numbers: a typo in one of them would hide here.
    computed = {
        "score_3": SCORE_3,
        "range_3": RANGE_3,
        "score_4": SCORE_4,
        "range_4": RANGE_4,
        "extra": OWN_EXTRA,
        **OWN_3,
    }
    expected = {
        "score_3": 0.966667,
        "range_3": 0.133333,
        "score_4": 0.9,
        "range_4": 0.133333,
        "extra": 0.85,
        OPUS: 0.95,
        SONNET: 0.833333,
        HAIKU: 0.966667,
    }
    assert computed == pytest.approx(expected, abs=1e-6)
    assert max(OWN_3.values()) - min(OWN_3.values()) == pytest.approx(RANGE_3)


# ---- the fake judges --------------------------------------------------------------------------


def judge_reply(items: dict[str, float | None], reasoning: str = "scripted judge") -> Reply:
    return Reply(
        tool_calls=[
            ToolCall(
                name=JUDGE_TOOL,
                input={
                    "items": [
                        {"item_id": item_id, "achieved": points, "reason": f"table says {points}"}
                        for item_id, points in items.items()
                    ],
                    "overall_reasoning": reasoning,
                },
            )
        ]
    )


class JudgeTable:
    """Answers judge requests per model from ANSWERS; can misbehave on purpose."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.answered: Counter[str] = Counter()
        self.invalid_first: dict[str, int] = {}  # model -> invalid answers before a valid one
        self.rate_limits_left = 0  # answer the next N requests with 429 + retry-after
        self.rate_limited: list[RecordedRequest] = []
        self.storm: Callable[[RecordedRequest], Fault | None] | None = None

    def __call__(self, request: RecordedRequest) -> Reply | Fault:
        model = str(request.model)
        if self.storm is not None and (fault := self.storm(request)) is not None:
            return fault
        with self.lock:
            if self.rate_limits_left > 0:
                self.rate_limits_left -= 1
                self.rate_limited.append(request)
                return Fault(kind="rate_limit", retry_after=RETRY_AFTER_S)
            self.answered[model] += 1
            count = self.answered[model]
        invalid = self.invalid_first.get(model, 0)
        if count <= invalid:
            if count == 1:
                # Fits the schema but not the rubric: P2 missing, Q3 out of range.
                return judge_reply({"Q3": 7.0})
            return Fault(kind="schema_mismatch")  # does not even fit the tool's schema
        return judge_reply(dict(ANSWERS[model]))


@pytest.fixture
def judge_api(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Any:
    table = JudgeTable()
    # api_key: any request without the fake key gets a 401, so a pass proves it was sent.
    api = FakeMessagesAPI(table, api_key=FAKE_KEY).start()
    monkeypatch.setenv("ANTHROPIC_BASE_URL", api.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    for name in ("ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    yield api, table
    api.stop()
    assert not api.live_threads()


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    # An ini file makes pytester.path the rootdir: .pytest_cache (for --lf) lands there,
    # not inside the experiment.
    pytester.makeini("[pytest]\n")
    shutil.copytree(EXPERIMENT, pytester.path / "experiments" / "test-001")
    return pytester.path


def panel_args(*models: str) -> list[str]:
    first, *more = models
    args = ["--judge-model", first]
    for model in more:
        args += ["--add-judge", model]
    return args


def scylla(pytester: pytest.Pytester, results: Path, *extra: str) -> pytest.RunResult:
    return pytester.runpytest(
        *shipped_t0(runs=2, subtests=2),
        "--agent",
        "oracle",
        "--results-dir",
        str(results),
        "-rA",
        *extra,
    )


def run_dir(results: Path, subtest: str, run: int) -> Path:
    return results / "test-001" / "T0" / subtest / f"run-{run:02d}"


def load_runs(results: Path) -> dict[tuple[str, int], RunRecord]:
    return {
        (subtest, run): RunRecord.model_validate_json(
            (run_dir(results, subtest, run) / "run_result.json").read_text("utf-8")
        )
        for subtest in SUBTESTS
        for run in RUNS
    }


def per_model(requests: list[RecordedRequest]) -> Counter[str]:
    return Counter(str(request.model) for request in requests)


def aggregate_files(results: Path) -> dict[str, bytes]:
    experiment = results / "test-001"
    paths = [experiment / "result.json", experiment / "T0" / "result.json"]
    paths += [experiment / "T0" / subtest / "result.json" for subtest in SUBTESTS]
    return {str(path.relative_to(results)): path.read_bytes() for path in paths}


def request_text(request: RecordedRequest) -> str:
    return json.dumps(request.body)


def assert_judge_request_shape(request: RecordedRequest) -> None:
    body = request.body
    assert body["tool_choice"] == {"type": "tool", "name": JUDGE_TOOL}
    system = "\n".join(block["text"] for block in body["system"])
    to_judge = system.split("# Items to judge", 1)[1].split("\n# ", 1)[0]
    assert "`Q3`" in to_judge and "`P2`" in to_judge
    for command_item in ("F1", "F2", "F3", "F4", "Q1", "Q2", "P1"):
        assert f"`{command_item}`" not in to_judge


def assert_no_secret(*, files_under: list[Path], texts: list[str]) -> None:
    secret = FAKE_KEY.encode()
    leaks = []
    for root in files_under:
        paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        leaks += [str(path) for path in paths if secret in path.read_bytes()]
    leaks += [f"text #{index}" for index, text in enumerate(texts) if FAKE_KEY in text]
    assert not leaks, f"the API key leaked into: {leaks}"


def summary_line(result: pytest.RunResult) -> str:
    lines = [line for line in result.outlines if line.startswith("runs: ")]
    assert len(lines) == 1, result.stdout.str()
    return lines[0]


# ---- 1, 3, 4, 5: panel, consensus, cache, rejudge, add a judge, regenerate, secrets ----------


@pytest.mark.slow
def test_panel_cache_rejudge_regenerate_keep_the_key_out(
    pytester: pytest.Pytester, project: Path, judge_api: Any
) -> None:
    api, _table = judge_api
    results = project / "results"
    report_file = project / "report.json"
    outputs: list[str] = []
    panel = panel_args(*PANEL)
    json_report = ["--json-report", f"--json-report-file={report_file}"]

    def session(*extra: str) -> pytest.RunResult:
        result = scylla(pytester, results, *panel, *json_report, *extra)
        outputs.extend([result.stdout.str(), result.stderr.str()])
        return result

    # -- 1. a panel of three judges: consensus, per-judge records, costs, tokens
    first = session()
    first.assert_outcomes(passed=4, deselected=8)
    requests = api.message_requests()
    assert len(requests) == 12  # 4 runs x 3 judges, one request each
    assert per_model(requests) == {OPUS: 4, SONNET: 4, HAIKU: 4}
    for request in requests:
        assert_judge_request_shape(request)
    assert "judgments: 12 new, 0 cached" in summary_line(first)

    pricing = PricingTable.load()
    tokens_by_model: dict[str, TokenUsage] = {model: TokenUsage() for model in PANEL}
    runs = load_runs(results)
    for record in runs.values():
        assert record.outcome == "passed"
        assert record.judge_mode == "llm"
        assert record.judge_models == PANEL
        assert record.result is not None and record.consensus is not None
        assert record.result.score == pytest.approx(SCORE_3, abs=1e-9)
        assert record.result.category_scores == pytest.approx(
            {"functional": FUNCTIONAL, "code_quality": CQ_3, "proportionality": PROP_3}
        )
        assert record.result.grade == "A"
        assert not record.result.partial
        items = {item.item_id: item for item in record.result.items}
        assert (items["Q3"].achieved, items["Q3"].source) == (0.5, "judges")
        assert (items["P2"].achieved, items["P2"].source) == (1.0, "judges")
        assert all(items[i].source == "command" for i in ("F1", "F2", "F3", "F4", "Q1", "P1"))
        consensus = record.consensus
        assert consensus.judges_used == PANEL and consensus.judges_failed == []
        assert consensus.judge_scores == pytest.approx(OWN_3, abs=1e-9)
        assert consensus.score_range == pytest.approx(RANGE_3, abs=1e-9)
        assert consensus.item_agreement == 0.0  # Q3 and P2 both split the panel
        assert [judge.model for judge in record.judges] == PANEL
        for judge in record.judges:
            assert judge.status == "ok" and judge.attempts == 1 and not judge.cached
            assert {k: v.achieved for k, v in judge.items.items()} == ANSWERS[judge.model]
            assert judge.score == pytest.approx(OWN_3[judge.model], abs=1e-9)
            assert judge.cost_usd > 0
            assert judge.cost_usd == pytest.approx(pricing.cost(judge.model, judge.tokens))
            tokens_by_model[judge.model] = tokens_by_model[judge.model] + judge.tokens
            judge_dir = run_dir(results, record.subtest, record.run) / "judges" / judge.model
            for name in ("judgment.json", "prompt.md", "response.json"):
                assert (judge_dir / name).is_file()
        assert record.judge_cost_usd > 0
    served = api.usage_totals()
    for model in PANEL:
        assert tokens_by_model[model].model_dump() == served[model].model_dump()
    # Prompt caching reached the wire: the stable prefix was written once, then read.
    assert all(served[model].cache_read_input_tokens > 0 for model in PANEL)
    started = {key: record.started_at for key, record in runs.items()}

    # -- 3a. the same command again: every run comes from disk, no request
    second = session()
    second.assert_outcomes(passed=4, deselected=8)
    assert len(api.message_requests()) == 12
    assert "runs: 0 executed, 4 from disk; judgments: 0 new, 0 cached" in summary_line(second)

    # -- 3b. --scylla-rejudge: every judge of every run is asked again
    api.clear()
    rejudged = session("--scylla-rejudge")
    rejudged.assert_outcomes(passed=4, deselected=8)
    assert per_model(api.message_requests()) == {OPUS: 4, SONNET: 4, HAIKU: 4}
    assert "judgments: 12 new, 0 cached" in summary_line(rejudged)
    for key, record in load_runs(results).items():
        assert record.started_at == started[key]  # the agent did not run again
        assert record.result is not None and record.result.score == pytest.approx(SCORE_3)

    # -- 3c. --scylla-rejudge --add-judge M4: only M4 is asked; consensus of four
    api.clear()
    panel = panel_args(*PANEL, EXTRA)
    added = session("--scylla-rejudge")
    added.assert_outcomes(passed=4, deselected=8)
    assert per_model(api.message_requests()) == {EXTRA: 4}
    for key, record in load_runs(results).items():
        assert record.started_at == started[key]
        assert record.result is not None and record.consensus is not None
        assert [judge.model for judge in record.judges] == [*PANEL, EXTRA]
        assert record.consensus.judges_used == [*PANEL, EXTRA]
        assert record.result.score == pytest.approx(SCORE_4, abs=1e-9)
        assert record.result.category_scores == pytest.approx(
            {"functional": FUNCTIONAL, "code_quality": CQ_4, "proportionality": PROP_4}
        )
        assert record.consensus.judge_scores == pytest.approx({**OWN_3, EXTRA: OWN_EXTRA}, abs=1e-9)
        assert record.consensus.score_range == pytest.approx(RANGE_4, abs=1e-9)

    # -- 4. --scylla-regenerate: no request, aggregates byte-identical
    before = aggregate_files(results)
    records_before = {
        key: (run_dir(results, *key) / "run_result.json").read_bytes() for key in runs
    }
    seen = len(api.requests)
    regenerated = session("--scylla-regenerate")
    regenerated.assert_outcomes(passed=4, deselected=8)
    assert len(api.requests) == seen
    assert aggregate_files(results) == before
    for key, data in records_before.items():
        assert (run_dir(results, *key) / "run_result.json").read_bytes() == data

    # -- 5. the key is nowhere: results (judge cache and backoff state included), the JSON
    # report, pytest's output, and the prompts the judges were sent.
    assert report_file.is_file() and (results / ".scylla").is_dir()
    assert_no_secret(
        files_under=[results, report_file],
        texts=[*outputs, *(request_text(request) for request in api.requests)],
    )


# ---- 2. faults -------------------------------------------------------------------------------


@pytest.mark.slow
def test_rate_limit_burst_waits_for_retry_after(
    pytester: pytest.Pytester, project: Path, judge_api: Any
) -> None:
    api, table = judge_api
    results = project / "results"
    table.rate_limits_left = 4  # the first run's three judges, then one more
    result = scylla(pytester, results, *panel_args(*PANEL))
    result.assert_outcomes(passed=4, deselected=8)
    assert len(table.rate_limited) == 4
    requests = api.message_requests()
    assert len(requests) == 12 + 4
    for limited in table.rate_limited:
        too_early = [
            request.index
            for request in requests
            if limited.time + IN_FLIGHT_SLACK_S < request.time < limited.time + RETRY_AFTER_S
        ]
        assert not too_early, f"requests {too_early} came within retry-after of a 429"
        # The judge that got the 429 (one per model at a time) waited the full retry-after.
        retry = next(
            request
            for request in requests
            if request.model == limited.model and request.index > limited.index
        )
        assert retry.time - limited.time >= RETRY_AFTER_S
    for record in load_runs(results).values():
        assert record.outcome == "passed"
        # HTTP retries cost time, not answers: every judge answered validly the first time.
        assert [(judge.status, judge.attempts) for judge in record.judges] == [("ok", 1)] * 3
    assert_no_secret(files_under=[results], texts=[result.stdout.str(), result.stderr.str()])


@pytest.mark.slow
def test_invalid_answer_twice_then_valid(
    pytester: pytest.Pytester, project: Path, judge_api: Any
) -> None:
    api, table = judge_api
    results = project / "results"
    table.invalid_first[HAIKU] = 2
    result = scylla(pytester, results, *panel_args(*PANEL))
    result.assert_outcomes(passed=4, deselected=8)
    # Runs execute in order: haiku's first three requests all belong to the first run.
    assert per_model(api.message_requests()) == {OPUS: 4, SONNET: 4, HAIKU: 4 + 2}
    runs = load_runs(results)
    first = runs[("00-empty", 1)]
    attempts = {judge.model: judge.attempts for judge in first.judges}
    assert attempts == {OPUS: 1, SONNET: 1, HAIKU: 3}
    assert first.result is not None and first.result.score == pytest.approx(SCORE_3)
    for key, record in runs.items():
        assert record.outcome == "passed"
        if key != ("00-empty", 1):
            assert all(judge.attempts == 1 for judge in record.judges)
    haiku = [request for request in api.message_requests() if request.model == HAIKU][:3]
    # Each retry carries the rejected answer and an error tool_result saying what was wrong.
    assert [len(request.body["messages"]) for request in haiku] == [1, 3, 5]
    feedback = haiku[1].body["messages"][-1]["content"][0]
    assert feedback["type"] == "tool_result" and feedback["is_error"] is True
    assert "missing items: P2" in feedback["content"]
    log = json.loads(
        (run_dir(results, "00-empty", 1) / "judges" / HAIKU / "response.json").read_text()
    )
    assert [bool(answer["validation_error"]) for answer in log["answers"]] == [True, True, False]


def overload_storm_for_subtest(marker: str) -> Callable[[RecordedRequest], Fault | None]:
    """529 for every judge request of the sub-test whose workspace lists `marker`; the
    server says it stays overloaded for 400 s, beyond the retry budget (300 s)."""

    def storm(request: RecordedRequest) -> Fault | None:
        evidence = json.dumps(request.body["messages"][0])
        if marker not in evidence:
            return None
        return Fault(
            kind="rate_limit",  # the kind that sends retry-after; status and type make it a 529
            status=529,
            error_type="overloaded_error",
            message="Overloaded",
            retry_after=400,
        )

    return storm


@pytest.mark.slow
def test_overload_storm_errors_then_lf_rejudges_without_the_agent(
    pytester: pytest.Pytester, project: Path, judge_api: Any
) -> None:
    api, table = judge_api
    results = project / "results"
    # 01-critical-only materializes a CLAUDE.md: its file list is the only one naming it.
    table.storm = overload_storm_for_subtest("CLAUDE.md\\n")
    stormy = scylla(pytester, results, *panel_args(*PANEL))
    stormy.assert_outcomes(passed=2, errors=2, deselected=8)
    output = stormy.stdout.str()
    assert "529" in output and "no judge succeeded" in output
    runs = load_runs(results)
    for run in RUNS:
        assert runs[("00-empty", run)].outcome == "passed"
        stormed = runs[("01-critical-only", run)]
        assert stormed.outcome == "error"
        assert stormed.error is not None and stormed.error.stage == "judge"
        assert stormed.agent_phase_done
        assert all(judge.status == "failed" for judge in stormed.judges)
    # Given up at once: waiting 400 s cannot fit a 300 s budget (one request per judge).
    assert len(api.message_requests()) == 4 * 3
    agent_files = {
        path: path.stat().st_mtime_ns
        for run in RUNS
        for path in (run_dir(results, "01-critical-only", run) / "agent").iterdir()
    }
    assert agent_files
    started = {key: record.started_at for key, record in runs.items()}

    api.clear()
    table.storm = None
    healed = scylla(pytester, results, *panel_args(*PANEL), "--lf")
    healed.assert_outcomes(passed=2, deselected=10)
    assert per_model(api.message_requests()) == {OPUS: 2, SONNET: 2, HAIKU: 2}
    for path, mtime in agent_files.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was written again"
    runs = load_runs(results)
    for key, record in runs.items():
        assert record.outcome == "passed"
        assert record.started_at == started[key]
        assert record.result is not None and record.result.score == pytest.approx(SCORE_3)
    assert "runs: 2 executed, 0 from disk; judgments: 6 new, 0 cached" in summary_line(healed)


@pytest.mark.slow
def test_hung_judge_request_times_out(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hang = FakeMessagesAPI(lambda request: Fault(kind="hang"), api_key=FAKE_KEY).start()
    try:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", hang.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
        monkeypatch.setenv("HOME", str(tmp_path))
        results = project / "results"
        started = time.monotonic()
        result = pytester.runpytest(
            "experiments/test-001",
            "--tiers",
            "T0",
            "--runs",
            "1",
            "--max-subtests",
            "1",
            "--agent",
            "oracle",
            "--results-dir",
            str(results),
            "--judge-model",
            OPUS,
            "--scylla-judge-timeout",
            "1",
            "--scylla-api-retry-budget",
            "3",
        )
        elapsed = time.monotonic() - started
        result.assert_outcomes(errors=1)
        record = RunRecord.model_validate_json(
            (run_dir(results, "00-empty", 1) / "run_result.json").read_text("utf-8")
        )
        assert record.outcome == "error" and record.error is not None
        # The SDK reports a read timeout as a timeout or as a connection error, by version.
        assert record.error.stage == "judge"
        assert "API unavailable" in record.error.message
        assert elapsed < 30
    finally:
        hang.stop()
    assert not hang.live_threads()  # no request thread left hanging


# ---- 6, 7: no credentials; judging off ------------------------------------------------------


def test_missing_credentials_stop_before_any_run(
    pytester: pytest.Pytester,
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("empty-home")))
    results = project / "results"
    result = scylla(pytester, results, "--judge-model", OPUS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in result.errlines if OPUS in line]
    assert len(lines) == 1, result.stderr.str()
    assert f"judge {OPUS}" in lines[0] and "ANTHROPIC_API_KEY" in lines[0]
    assert "test.yaml::" not in result.stdout.str()
    assert not results.exists()


@pytest.mark.slow
def test_judge_model_none_scores_commands_only(
    pytester: pytest.Pytester, project: Path, judge_api: Any
) -> None:
    api, _table = judge_api
    results = project / "results"
    result = scylla(pytester, results, "--judge-model", "none")
    result.assert_outcomes(passed=4, deselected=8)
    assert api.requests == []
    for record in load_runs(results).values():
        assert record.judge_mode == "commands-only"
        assert record.judge_models == [] and record.judges == [] and record.consensus is None
        assert record.result is not None
        assert record.result.unjudged_items == ["Q3", "P2"] and record.result.partial
        # Only command items count: every category is full marks.
        assert record.result.score == pytest.approx(1.0)
        assert not (run_dir(results, record.subtest, record.run) / "judges").exists()
    report = (results / "test-001" / "report.md").read_text("utf-8")
    assert "Judged by: commands only" in report
    assert not (results / ".scylla").exists()

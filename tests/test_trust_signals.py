"""Interruptions keep what was paid for (issue 11, items 6 and 7).

SIGTERM (a CI cancel, `timeout`) killed pytest on the spot: no record of the run in flight
and no aggregates. Ctrl-C while the judges retried left no `run_result.json`, so the next
session deleted the finished agent output and paid for the agent again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from experiment_factory import RUBRIC, write_experiment

from pytest_scylla.testing.fake_api import (
    FakeMessagesAPI,
    Fault,
    RecordedRequest,
    Reply,
    ToolCall,
)

FAKE_KEY = "sk-ant-signals-SECRET-0123456789"
JUDGE = "claude-opus-4-6"


def start_session(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", *argv],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the session ended first:\n{process.stdout.read()[-3000:]}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            raise AssertionError("timed out waiting for the session")
        time.sleep(0.02)


def record(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / "run_result.json").read_text())
    except (OSError, ValueError):
        return None


def stage(run_dir: Path) -> str | None:
    found = record(run_dir)
    return found.get("stage") if found else None


@pytest.mark.slow
def test_sigterm_mid_session_keeps_finished_runs_records_the_one_in_flight_and_aggregates(
    tmp_path: Path,
) -> None:
    experiment = write_experiment(tmp_path, "exp-term")
    results = tmp_path / "results"
    argv = [
        str(experiment),
        "--runs",
        "3",
        "--max-subtests",
        "1",
        "--agent",
        "command",
        "--agent-command",
        "bash -c 'sleep 2; printf \"ok\\n\" > done.txt'",
        "--judge-model",
        "none",
        "--results-dir",
        str(results),
        "-p",
        "no:cacheprovider",
    ]
    runs = results / "exp-term" / "T0" / "00-empty"
    session = start_session(argv, tmp_path)
    wait_for(lambda: stage(runs / "run-01") == "judged", session)
    wait_for(lambda: (runs / "run-02" / "agent" / "command.json").is_file(), session)
    session.send_signal(signal.SIGTERM)
    output, _ = session.communicate(timeout=60)
    assert session.returncode == pytest.ExitCode.INTERRUPTED, output[-3000:]

    assert record(runs / "run-01")["outcome"] == "passed"  # type: ignore[index]
    in_flight = record(runs / "run-02")
    assert in_flight is not None, "the run in flight left no record"
    assert in_flight["outcome"] == "error" and in_flight["error"]["stage"] == "interrupted"
    assert (runs / "run-02" / "agent" / "command.json").is_file()  # its output is kept
    assert not (runs / "run-03").exists()
    aggregate = json.loads((results / "exp-term" / "result.json").read_text())
    assert (aggregate["counts"]["passed"], aggregate["counts"]["error"]) == (1, 1)
    assert (results / "exp-term" / "report.md").is_file()

    resumed = subprocess.run(
        [sys.executable, "-m", "pytest", *argv], cwd=tmp_path, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert "runs: 2 executed, 1 from disk" in resumed.stdout
    redone = record(runs / "run-02")
    assert redone is not None and redone["outcome"] == "passed"
    assert [attempt["error"]["stage"] for attempt in redone["attempts"]] == ["interrupted"]
    assert (runs / "run-02" / "attempts" / "1" / "agent" / "command.json").is_file()


def judgment(points: float) -> Reply:
    return Reply(
        tool_calls=[
            ToolCall(
                name="submit_judgment",
                input={
                    "items": [{"item_id": "J1", "achieved": points, "reason": "looks right"}],
                    "overall_reasoning": "scripted",
                },
            )
        ]
    )


class JudgeAPI:
    """Overloaded (429, retry after a second) until `healthy` is set, then a full score."""

    def __init__(self) -> None:
        self.healthy = threading.Event()

    def __call__(self, request: RecordedRequest) -> Reply | Fault:
        if not self.healthy.is_set():
            return Fault(kind="rate_limit", retry_after=1.0)
        return judgment(1.0)


@pytest.fixture
def judge_api() -> Iterator[tuple[FakeMessagesAPI, JudgeAPI]]:
    table = JudgeAPI()
    api = FakeMessagesAPI(table, api_key=FAKE_KEY).start()
    yield api, table
    api.stop()


@pytest.mark.slow
def test_ctrl_c_while_judges_retry_keeps_the_agent_work_and_the_next_session_only_judges(
    tmp_path: Path, judge_api: tuple[FakeMessagesAPI, JudgeAPI]
) -> None:
    api, table = judge_api
    rubric = json.loads(json.dumps(RUBRIC))
    rubric["categories"]["quality"]["items"].append(
        {"id": "J1", "check": "the answer is tidy", "points": 1.0}
    )
    experiment = write_experiment(tmp_path, "exp-judge", rubric=rubric)
    results = tmp_path / "results"
    argv = [
        str(experiment),
        "--runs",
        "1",
        "--max-subtests",
        "1",
        "--agent",
        "oracle",
        "--judge-model",
        JUDGE,
        "--scylla-api-retry-budget",
        "4",
        "--results-dir",
        str(results),
        "-p",
        "no:cacheprovider",
    ]
    env = {
        "ANTHROPIC_BASE_URL": api.base_url,
        "ANTHROPIC_API_KEY": FAKE_KEY,
        "HOME": str(tmp_path / "home"),
    }
    run_dir = results / "exp-judge" / "T0" / "00-empty" / "run-01"
    session = start_session(argv, tmp_path, env)
    wait_for(lambda: stage(run_dir) == "agent-done" and bool(api.message_requests()), session)
    session.send_signal(signal.SIGINT)
    output, _ = session.communicate(timeout=60)
    assert session.returncode == pytest.ExitCode.INTERRUPTED, output[-3000:]
    left = record(run_dir)
    assert left is not None and left["stage"] == "agent-done" and left["outcome"] == "error"
    agent_files = {path: path.stat().st_mtime_ns for path in (run_dir / "agent").iterdir()}
    assert agent_files

    table.healthy.set()
    resumed = subprocess.run(
        [sys.executable, "-m", "pytest", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    judged = record(run_dir)
    assert judged is not None and judged["outcome"] == "passed" and judged["attempts"] == []
    assert judged["started_at"] == left["started_at"]
    for path, mtime in agent_files.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was written again: the agent ran"
    assert FAKE_KEY not in (run_dir / "run_result.json").read_text()


def test_sighup_and_sigterm_raise_keyboard_interrupt_until_unconfigure() -> None:
    from pytest_scylla.signals import SIGNALS, InterruptSignals

    before = {signum: signal.getsignal(signum) for signum in SIGNALS}
    handlers = InterruptSignals()
    try:
        for signum in SIGNALS:
            with pytest.raises(KeyboardInterrupt, match=signal.Signals(signum).name):
                os.kill(os.getpid(), signum)
                time.sleep(1)  # the handler runs at the next bytecode; never reached
    finally:
        handlers.pytest_unconfigure(config=None)  # type: ignore[arg-type]
    assert {signum: signal.getsignal(signum) for signum in SIGNALS} == before

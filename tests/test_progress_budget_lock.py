"""Live progress, the budget guard and the results-folder lock (issue 14 items 2-5).

Real sessions on the shipped `experiments/test-001` (oracle agent unless said otherwise),
under `-n 2` where the controller/worker split matters; the cost-counting test runs the
real Claude Code CLI against the fake Messages API (`--scylla-fake-api`), which prices its
tokens, so the spend is real arithmetic on real usage.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from experiment_factory import shipped_t0

from pytest_scylla.progress import ProgressReporter, Tally, format_duration, progress_line
from pytest_scylla.results_lock import LOCK_FILE, LockOwner, acquire, process_start
from pytest_scylla.settings import ScyllaSettings
from pytest_scylla.status import Counts, ExperimentStatus, Spend, render_status

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = REPO / "experiments" / "test-001"
ORACLE = ["--tiers", "T0", "--agent", "oracle", "--judge-model", "none"]
NO_CACHE = ("-p", "no:cacheprovider")


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    pytester.makeini("[pytest]\n")
    shutil.copytree(EXPERIMENT, pytester.path / "experiments" / "test-001")
    return pytester.path


def scylla(*extra: str, runs: int = 2, subtests: int = 2) -> list[str]:
    return [
        "experiments/test-001",
        *ORACLE,
        "--runs",
        str(runs),
        "--max-subtests",
        str(subtests),
        "--results-dir",
        "results",
        "-rs",
        *NO_CACHE,
        *extra,
    ]


def progress_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if line.startswith("scylla progress:")]


# ------------------------------------------------------------------------------ progress


@pytest.mark.slow
def test_progress_under_xdist_counts_on_the_controller(
    pytester: pytest.Pytester, project: Path
) -> None:
    result = pytester.runpytest_subprocess(*scylla("-n", "2"))
    result.assert_outcomes(passed=4)
    lines = progress_lines(result)
    assert len(lines) >= 2, result.stdout.str()
    assert lines[0].startswith("scylla progress: 1/4 runs (25%); 1 passed")
    assert "ETA " in lines[0]
    assert lines[-1].startswith(
        "scylla progress: 4/4 runs (100%); 4 passed, 0 failed, 0 errors; spend $0.0000"
    )
    assert "done in " in lines[-1]


@pytest.mark.slow
def test_progress_is_quiet_with_q(pytester: pytest.Pytester, project: Path) -> None:
    result = pytester.runpytest(*scylla("-q", runs=1, subtests=1))
    result.assert_outcomes(passed=1)
    assert progress_lines(result) == []


class Lines(ProgressReporter):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lines: list[str] = []

    def write(self, line: str) -> None:
        self.lines.append(line)


def report(index: int, outcome: str, when: str = "call") -> pytest.TestReport:
    return pytest.TestReport(
        nodeid=f"e/test.yaml::T0::s[run-{index:02d}]",
        location=("e/test.yaml", None, "s"),
        keywords={},
        outcome=outcome,  # type: ignore[arg-type]
        longrepr=None,
        when=when,  # type: ignore[arg-type]
    )


@pytest.mark.slow
def test_progress_paces_by_tenths_and_by_time(pytester: pytest.Pytester) -> None:
    now = [100.0]
    config = pytester.parseconfigure()
    reporter = Lines(config, ScyllaSettings(), clock=lambda: now[0], interval_s=30.0)
    reporter._set_total([f"e/test.yaml::T0::s[run-{n:02d}]" for n in range(1, 21)] + ["x.py::t"])
    assert reporter.tally.total == 20  # not the ordinary test
    for index in range(1, 5):  # a line every 2 runs (a tenth of 20)
        now[0] += 1
        reporter.pytest_runtest_logreport(report(index, "passed"))
    assert len(reporter.lines) == 2
    assert reporter.lines[-1].startswith("scylla progress: 4/20 runs (20%); 4 passed")
    assert reporter.lines[-1].endswith("ETA 16s")  # 4 runs in 4 s, 16 to go
    now[0] += 1
    reporter.pytest_runtest_logreport(report(5, "failed", when="setup"))  # an error
    assert len(reporter.lines) == 2
    now[0] += 31  # quiet for longer than the interval: a line even between tenths
    reporter.pytest_runtest_logreport(report(6, "failed"))
    assert reporter.lines[-1].startswith(
        "scylla progress: 6/20 runs (30%); 4 passed, 1 failed, 1 errors"
    )
    assert len(reporter.lines) == 3


def test_progress_line_and_durations() -> None:
    tally = Tally(total=10, done=10, passed=9, errors=1, agent_usd=1.5, judge_usd=0.25)
    assert progress_line(tally, 3725) == (
        "scylla progress: 10/10 runs (100%); 9 passed, 0 failed, 1 errors; "
        "spend $1.7500 (agents $1.5000, judges $0.2500); done in 1h02m"
    )
    assert progress_line(Tally(total=3), 0).endswith("ETA unknown")
    assert [format_duration(s) for s in (0, 59.6, 61, 3600)] == ["0s", "1m00s", "1m01s", "1h00m"]


# ------------------------------------------------------------------------------ ordering


def test_items_are_ordered_run_major_within_a_tier(
    pytester: pytest.Pytester, project: Path
) -> None:
    collected = pytester.runpytest(
        "experiments/test-001",
        "--tiers",
        "T0",
        "T1",
        "--runs",
        "2",
        "--max-subtests",
        "2",
        "--collect-only",
        "-q",
        *NO_CACHE,
    )
    ids = [line.split("::", 1)[1] for line in collected.outlines if "test.yaml::" in line]
    assert ids == [
        "T0::00-empty[run-01]",
        "T0::01-critical-only[run-01]",
        "T0::00-empty[run-02]",
        "T0::01-critical-only[run-02]",
        "T1::01-testing-skills[run-01]",
        "T1::02-quality-skills[run-01]",
        "T1::01-testing-skills[run-02]",
        "T1::02-quality-skills[run-02]",
    ]


# ------------------------------------------------------------------------------- budget


def skipped_for_budget(result: pytest.RunResult) -> tuple[int, str]:
    """(how many runs, the reason) from -rs's summary (`SKIPPED [3] file:line: reason`)."""
    lines = [line for line in result.outlines if line.startswith("SKIPPED [")]
    assert len(lines) == 1, lines
    count, reason = lines[0].removeprefix("SKIPPED [").split("]", 1)
    return int(count), reason.split(": ", 1)[1]


@pytest.mark.slow
def test_max_cost_skips_the_rest_keeps_and_aggregates_what_ran(
    pytester: pytest.Pytester, project: Path
) -> None:
    result = pytester.runpytest(*scylla("--max-cost", "0"))
    result.assert_outcomes(passed=1, skipped=3)
    assert skipped_for_budget(result) == (3, "budget reached: spent $0.0000 of --max-cost $0.0000")
    output = result.stdout.str()
    assert "budget: spent $0.0000 of $0.0000 this session" in output
    assert "not run (budget): 3 runs, skipped:" in output
    aggregate = json.loads((project / "results" / "test-001" / "result.json").read_text())
    assert aggregate  # the finished run is aggregated
    assert not (project / "results" / ".scylla-budget-stop.json").exists()
    # The next session starts clean: nothing stops it, and the run on disk is reused.
    pytester.runpytest(*scylla()).assert_outcomes(passed=4)


@pytest.mark.slow
def test_budget_under_xdist_workers_read_the_stop_file(
    pytester: pytest.Pytester, project: Path
) -> None:
    result = pytester.runpytest_subprocess(*scylla("-n", "2", "--max-cost", "0", runs=4))
    outcomes = result.parseoutcomes()
    # Each worker may finish the run it had started; everything after the stop is skipped.
    assert outcomes.get("passed", 0) >= 1 and outcomes.get("skipped", 0) >= 4, outcomes
    assert outcomes["passed"] + outcomes["skipped"] == 8
    assert skipped_for_budget(result)[0] == outcomes["skipped"]
    assert (project / "results" / "test-001" / "result.json").is_file()


@pytest.mark.slow
def test_an_experiments_max_cost_usd_applies(pytester: pytest.Pytester, project: Path) -> None:
    (project / "experiments" / "test-001" / "config.yaml").write_text("max_cost_usd: 0\n")
    result = pytester.runpytest(*scylla(runs=1))
    result.assert_outcomes(passed=1, skipped=1)
    assert skipped_for_budget(result) == (
        1,
        "budget reached: test-001 spent $0.0000 of its max_cost_usd $0.0000 (config.yaml)",
    )


@pytest.mark.slow
def test_agent_spend_is_counted_and_stops_the_session(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("claude_agent_sdk")
    for name in [name for name in os.environ if name.startswith("ANTHROPIC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    result = pytester.runpytest_subprocess(
        *shipped_t0(runs=2, subtests=1),
        "--agent",
        "claude-code",
        "--judge-model",
        "none",
        "--scylla-fake-api",
        "experiments/test-001/dry-run.yaml",
        "--max-cost",
        "0.000001",
        "--results-dir",
        "results",
        "-rs",
        *NO_CACHE,
    )
    result.assert_outcomes(passed=1, skipped=1)
    record = json.loads(next((project / "results").rglob("run_result.json")).read_text())
    spent = record["agent"]["cost_usd"]
    assert spent > 0.000001
    result.stdout.fnmatch_lines(
        [
            f"budget: spent ${spent:.4f} of $0.0000 this session (agents ${spent:.4f}, judges $0.0000)"
        ]
    )


def test_status_prices_what_remains_against_the_budget() -> None:
    status = ExperimentStatus(
        "e",
        {("T0", "a"): Counts(runs=4, agent_runs=2, judge_calls=2)},
        Spend(agent_usd=1.0, agent_runs=2, judge_usd=0.2, judge_calls=2),
    )
    within = render_status([status], ScyllaSettings(max_cost=1.5), None, Path("r"))
    assert (
        within[-1]
        .strip()
        .startswith("budget: expected cost of what remains $1.2000, within --max-cost $1.5000")
    )
    over = render_status([status], ScyllaSettings(max_cost=1.0), None, Path("r"))
    assert "OVER --max-cost $1.0000" in over[-1]


# --------------------------------------------------------------------------------- lock


@pytest.mark.slow
def test_a_second_session_on_a_locked_folder_stops_and_names_the_first(
    pytester: pytest.Pytester, project: Path
) -> None:
    held = acquire(project / "results")
    try:
        result = pytester.runpytest(*scylla(runs=1, subtests=1))
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            [
                f"*results is in use by another pytest-scylla session (pid {os.getpid()} on host {socket.gethostname()}, started *"
            ]
        )
        # A status and a collection change nothing: they need no lock.
        status = pytester.runpytest(*scylla("--scylla-status", runs=1, subtests=1))
        assert status.ret == pytest.ExitCode.OK
        collected = pytester.runpytest(*scylla("--collect-only", runs=1, subtests=1))
        assert collected.ret == pytest.ExitCode.OK
    finally:
        held.release()
    pytester.runpytest(*scylla(runs=1, subtests=1)).assert_outcomes(passed=1)
    assert not (project / "results" / LOCK_FILE).exists()  # given back at the end


@pytest.mark.slow
def test_a_dead_sessions_lock_is_taken_over(pytester: pytest.Pytester, project: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    start = process_start(dead.pid)
    dead.wait()
    results = project / "results"
    results.mkdir()
    stale = LockOwner(pid=dead.pid, host=socket.gethostname(), process_start=start, started_at="x")
    (results / LOCK_FILE).write_text(stale.model_dump_json())
    pytester.runpytest(*scylla(runs=1, subtests=1)).assert_outcomes(passed=1)


def test_a_lock_from_another_host_is_not_broken(pytester: pytest.Pytester, project: Path) -> None:
    results = project / "results"
    results.mkdir()
    other = LockOwner(
        pid=4242, host="build-07", process_start="1", started_at="2026-01-01T00:00:00+00:00"
    )
    (results / LOCK_FILE).write_text(other.model_dump_json())
    result = pytester.runpytest(*scylla(runs=1, subtests=1))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*results is locked by a pytest-scylla session on another host (pid 4242 on host"
            " build-07, started 2026-01-01T00:00:00+00:00); this host cannot tell whether it"
            f" still runs. If it does not, delete results/{LOCK_FILE} and start again"
        ]
    )
    assert (results / LOCK_FILE).read_text() == other.model_dump_json()


@pytest.mark.claude_cli
def test_a_dry_run_is_not_stopped_by_the_experiments_real_money_limit(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The fake API charges nothing: config.yaml's max_cost_usd (test-001 ships $1.00) cut
    the README's main job after 15 of its 24 runs on list-price token counts."""
    pytest.importorskip("claude_agent_sdk")
    for name in [name for name in os.environ if name.startswith("ANTHROPIC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    (project / "experiments" / "test-001" / "config.yaml").write_text("max_cost_usd: 0.000001\n")
    result = pytester.runpytest_subprocess(
        "experiments/test-001", "--tiers", "T0", "--runs", "2", "--max-subtests", "1",
        "--agent", "claude-code", "--judge-model", "none",
        "--scylla-fake-api", "experiments/test-001/dry-run.yaml",
        "--results-dir", "results", "-rs", *NO_CACHE,
    )  # fmt: skip
    result.assert_outcomes(passed=2)

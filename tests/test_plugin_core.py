"""The plugin as a pytest user meets it: collection, options, outcomes, resume, crash safety."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from experiment_factory import write_experiment, write_state_logging_experiment

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
OFFLINE = ("--judge-model", "none", "-p", "no:cacheprovider")


def digest_tree(root: Path, pattern: str = "run_result.json") -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob(pattern))
    }


def run_records(results: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(results.rglob("run_result.json"))]


def judged_runs(results: Path) -> int:
    count = 0
    for path in results.rglob("run_result.json"):
        try:
            count += json.loads(path.read_text()).get("stage") == "judged"
        except ValueError:  # being replaced this very moment
            continue
    return count


def session_args(
    experiment: Path, results: Path, *, runs: int, max_subtests: int, agent: str = "oracle"
) -> tuple[str, ...]:
    """One experiment, offline: commands-only scoring, no pytest cache."""
    return (
        str(experiment),
        "--runs",
        str(runs),
        "--max-subtests",
        str(max_subtests),
        "--agent",
        agent,
        "--results-dir",
        str(results),
        *OFFLINE,
    )


@pytest.fixture
def experiment(pytester: pytest.Pytester) -> Path:
    return write_experiment(pytester.path, "exp-a")


@pytest.mark.slow
def test_collects_tier_x_subtest_x_run_with_stable_ids(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        str(EXPERIMENTS / "test-001"), "--collect-only", "-q", "--tiers", "T0", "T1", "--runs", "3"
    )
    lines = [line for line in result.stdout.lines if "::" in line]
    assert "experiments/test-001/test.yaml::T0::00-empty[run-03]" in "\n".join(lines)
    subtests_t0 = len(list((REPO / "pytest_scylla/data/tiers/T0").glob("*.yaml")))
    subtests_t1 = len(list((REPO / "pytest_scylla/data/tiers/T1").glob("*.yaml")))
    assert len(lines) == (subtests_t0 + subtests_t1) * 3
    assert not any("::T2::" in line for line in lines)


@pytest.mark.slow
def test_every_upstream_task_directory_collects_offline(pytester: pytest.Pytester) -> None:
    from conftest import UPSTREAM

    fixtures = UPSTREAM / "fixtures"
    if not fixtures.is_dir():  # a clone outside this layout has no ../shared
        pytest.skip(f"upstream task directories not found at {fixtures}")
    result = pytester.runpytest(str(fixtures), "--collect-only", "-q", "--runs", "1")
    assert "error" not in result.stdout.str().lower().split("collected")[-1]
    collected = {
        line.split("/test.yaml")[0].rsplit("/", 1)[-1]
        for line in result.stdout.lines
        if "test.yaml::" in line
    }
    assert len(collected) == 47


def test_help_documents_every_option_in_a_scylla_group(pytester: pytest.Pytester) -> None:
    output = pytester.runpytest("--help").stdout.str()
    assert "pytest-scylla: measure AI coding agents" in output
    for flag in (
        "--tiers",
        "--runs",
        "--max-subtests",
        "--agent",
        "--model",
        "--run-timeout",
        "--results-dir",
        "--fresh",
        "--pass-threshold",
        "--judge-model",
        "--add-judge",
        "--sandbox",
        "--scylla-rejudge",
        "--scylla-regenerate",
        "--scylla-fake-api",
    ):
        assert flag in output
    assert "scylla_runs" in output  # the ini key


@pytest.mark.slow
def test_ini_sets_defaults_and_the_command_line_wins(
    pytester: pytest.Pytester, experiment: Path
) -> None:
    pytester.makeini("[pytest]\nscylla_runs = 3\nscylla_tiers = T0\n")
    from_ini = pytester.runpytest(str(experiment), "--collect-only", "-q", "--max-subtests", "1")
    assert sum("::T0::" in line for line in from_ini.stdout.lines) == 3
    from_cli = pytester.runpytest(
        str(experiment), "--collect-only", "-q", "--max-subtests", "1", "--runs", "2"
    )
    assert sum("::T0::" in line for line in from_cli.stdout.lines) == 2


@pytest.mark.slow
def test_k_m_and_maxfail_behave_as_usual(pytester: pytest.Pytester, experiment: Path) -> None:
    base = (str(experiment), "--runs", "2", "--agent", "nop", *OFFLINE)
    by_keyword = pytester.runpytest(*base, "-k", "00-empty and run-02")
    by_keyword.assert_outcomes(failed=1)
    by_marker = pytester.runpytest(*base, "-m", "T0", "--collect-only", "-q")
    assert sum("::T0::" in line for line in by_marker.stdout.lines) > 0
    stop_early = pytester.runpytest(*base, "-x")
    stop_early.assert_outcomes(failed=1)


def test_max_subtests_deselects(pytester: pytest.Pytester, experiment: Path) -> None:
    result = pytester.runpytest(
        str(experiment), "--runs", "1", "--max-subtests", "2", "--collect-only", "-q"
    )
    assert sum("::T0::" in line for line in result.stdout.lines) == 2
    assert "deselected" in result.stdout.str()


@pytest.mark.slow
def test_oracle_passes_and_nop_fails_with_grade_f(pytester: pytest.Pytester) -> None:
    results = pytester.path / "results"
    args = (
        str(EXPERIMENTS / "test-001"),
        "--tiers",
        "T0",
        "T1",
        "--runs",
        "2",
        "--max-subtests",
        "2",
        "--results-dir",
        str(results),
        *OFFLINE,
    )
    pytester.runpytest(*args, "--agent", "oracle").assert_outcomes(passed=8)
    nop = pytester.runpytest(*args, "--agent", "nop", "--fresh")
    nop.assert_outcomes(failed=8)
    records = run_records(results)
    assert len(records) == 8
    assert {record["result"]["grade"] for record in records} == {"F"}
    assert all(
        record["outcome"] == "failed" and record["judge_mode"] == "commands-only"
        for record in records
    )
    assert "commands only" in (results / "test-001" / "report.md").read_text()


@pytest.mark.slow
def test_second_run_reuses_disk_and_changes_no_byte(
    pytester: pytest.Pytester, experiment: Path
) -> None:
    results = pytester.path / "results"
    args = session_args(experiment, results, runs=2, max_subtests=2)
    pytester.runpytest(*args).assert_outcomes(passed=4)
    before = digest_tree(results)
    mtimes = {path: path.stat().st_mtime_ns for path in results.rglob("run_result.json")}
    again = pytester.runpytest(*args)
    again.assert_outcomes(passed=4)
    assert "runs: 0 executed, 4 from disk" in again.stdout.str()
    assert digest_tree(results) == before
    assert {path: path.stat().st_mtime_ns for path in results.rglob("run_result.json")} == mtimes


@pytest.mark.slow
def test_baseline_checks_run_once_per_starting_state(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The checks log to a host file, which a bubblewrap sandbox rightly hides.
    monkeypatch.setenv("SCYLLA_LOCAL_ISOLATION", "none")
    log = pytester.path / "check-log.txt"
    experiment = write_state_logging_experiment(pytester.path, "exp-baseline", log)
    results = pytester.path / "results"
    pytester.runpytest(*session_args(experiment, results, runs=3, max_subtests=2)).assert_outcomes(
        passed=6
    )

    # Two sub-tests with different files are two starting states; each run checks "after".
    assert sorted(log.read_text().split()) == ["after"] * 6 + ["before"] * 2
    by_run = {(record["subtest"], record["run"]): record for record in run_records(results)}
    for subtest in {subtest for subtest, _ in by_run}:
        first = by_run[(subtest, 1)]
        assert first["checks"]["baseline_from"] is None
        for run in (2, 3):
            reused = by_run[(subtest, run)]["checks"]
            assert reused["baseline_from"] == first["node_id"]
            assert reused["baseline"] == first["checks"]["baseline"]


@pytest.mark.slow
def test_fresh_moves_old_results_aside(pytester: pytest.Pytester, experiment: Path) -> None:
    results = pytester.path / "results"
    args = session_args(experiment, results, runs=1, max_subtests=1)
    pytester.runpytest(*args).assert_outcomes(passed=1)
    fresh = pytester.runpytest(*args, "--fresh")
    assert "runs: 1 executed, 0 from disk" in fresh.stdout.str()
    moved = list(pytester.path.glob("results.old-*"))
    assert len(moved) == 1 and list(moved[0].rglob("run_result.json"))


@pytest.mark.slow
def test_damaged_record_is_named_and_rebuilt(pytester: pytest.Pytester, experiment: Path) -> None:
    results = pytester.path / "results"
    args = session_args(experiment, results, runs=1, max_subtests=1)
    pytester.runpytest(*args).assert_outcomes(passed=1)
    record_file = next(results.rglob("run_result.json"))
    record_file.write_text('{"schema_version": 1, "truncated')
    again = pytester.runpytest(*args, "-W", "always")
    again.assert_outcomes(passed=1)
    assert "damaged run record" in again.stdout.str()
    record = json.loads(record_file.read_text())
    assert record["outcome"] == "passed" and "checks.json" in record["rebuilt_from"]


@pytest.mark.slow
def test_harness_failure_is_an_error_and_lf_reruns_only_it(
    pytester: pytest.Pytester, experiment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pytest_scylla.run.agent_phase as agent_phase
    from pytest_scylla.workspace import WorkspaceError

    results = pytester.path / "results"
    real_clone = agent_phase.clone_workspace
    failures = iter([True])  # the first clone fails (a harness failure), later ones work

    def clone_once_broken(repository: Path, commit: str, destination: Path) -> None:
        if next(failures, False):
            raise WorkspaceError("clone failed: disk full")
        real_clone(repository, commit, destination)

    monkeypatch.setattr(agent_phase, "clone_workspace", clone_once_broken)
    args = session_args(experiment, results, runs=2, max_subtests=1)[:-2]
    first = pytester.runpytest(*args, "-p", "cacheprovider")
    first.assert_outcomes(passed=1, errors=1)
    assert "workspace: WorkspaceError: clone failed: disk full" in first.stdout.str()
    again = pytester.runpytest(*args, "-p", "cacheprovider", "--lf")
    again.assert_outcomes(passed=1)
    assert "runs: 1 executed, 0 from disk" in again.stdout.str()
    redone = json.loads(
        (results / "exp-a" / "T0" / "00-empty" / "run-01" / "run_result.json").read_text()
    )
    assert [attempt["error"]["stage"] for attempt in redone["attempts"]] == ["workspace"]


@pytest.mark.slow
def test_lf_does_not_rerun_a_judged_failure_unless_asked(
    pytester: pytest.Pytester, experiment: Path
) -> None:
    results = pytester.path / "results"
    args = (
        str(experiment),
        "--runs",
        "1",
        "--max-subtests",
        "1",
        "--agent",
        "nop",
        "--results-dir",
        str(results),
        "--judge-model",
        "none",
        "-p",
        "cacheprovider",
    )
    pytester.runpytest(*args).assert_outcomes(failed=1)
    record = next(results.rglob("run_result.json"))
    started = json.loads(record.read_text())["started_at"]
    kept = pytester.runpytest(*args, "--lf")
    kept.assert_outcomes(failed=1)
    assert "runs: 0 executed, 1 from disk" in kept.stdout.str()
    time.sleep(1.1)
    forced = pytester.runpytest(*args, "--lf", "--scylla-rerun-failed")
    assert "runs: 1 executed, 0 from disk" in forced.stdout.str()
    assert json.loads(record.read_text())["started_at"] != started


@pytest.mark.slow
def test_xdist_workers_send_records_and_only_the_controller_aggregates(
    pytester: pytest.Pytester, experiment: Path
) -> None:
    results = pytester.path / "results"
    args = session_args(experiment, results, runs=2, max_subtests=3)
    parallel = pytester.runpytest_subprocess(*args, "-n", "2")
    parallel.assert_outcomes(passed=6)
    aggregate = json.loads((results / "exp-a" / "result.json").read_text())
    assert aggregate["counts"] == {
        "passed": 6,
        "failed": 0,
        "error": 0,
        "timed_out": 0,
        "earlier_attempts": 0,
        "replaced_judged_runs": 0,
    }
    assert "T0" in parallel.stdout.str() and "pytest-scylla" in parallel.stdout.str()


@pytest.mark.slow
def test_kill_9_mid_session_loses_no_finished_run(
    pytester: pytest.Pytester, experiment: Path
) -> None:
    results = pytester.path / "results"
    command = "bash -c 'sleep 0.4; printf \"ok\\n\" > done.txt'"
    argv = [
        sys.executable,
        "-m",
        "pytest",
        str(experiment),
        "--runs",
        "3",
        "--max-subtests",
        "2",
        "--agent",
        "command",
        "--agent-command",
        command,
        "--results-dir",
        str(results),
        *OFFLINE,
    ]
    process = subprocess.Popen(
        argv,
        cwd=pytester.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and judged_runs(results) < 2:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    # An agent-done record (agent finished, judging left) is resumed by judging it again.
    finished_before = judged_runs(results)
    assert 2 <= finished_before < 6, "the kill should land mid-session"
    resumed = subprocess.run(argv, cwd=pytester.path, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout[-2000:]
    assert f"{6 - finished_before} executed, {finished_before} from disk" in resumed.stdout
    records = run_records(results)
    assert sorted((r["subtest"], r["run"]) for r in records) == sorted(
        {(r["subtest"], r["run"]) for r in records}
    )
    assert len(records) == 6
    aggregate = json.loads((results / "exp-a" / "result.json").read_text())
    assert aggregate["counts"]["passed"] == 6
    assert not list(results.rglob("*.tmp"))

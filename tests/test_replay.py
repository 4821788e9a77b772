"""Runs settled from disk go through pytest's run protocol without output and log capture
(replay.py) and report exactly what the full protocol would: the same outcomes, messages,
JUnit properties, JSON report and --lf entries, beside runs that execute in the same
session. Speed is measured in benchmarks/bench_status.py."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from experiment_factory import write_experiment

from pytest_scylla.gc_freeze import RUN_LOOP_YOUNG_THRESHOLD
from pytest_scylla.records import RUN_RECORD_FILE, atomic_write_text

OFFLINE = ("--judge-model", "none", "--agent", "oracle", "--max-subtests", "1")
# Records which of pytest's stage hooks ran for which item, and every report's outcome.
RECORDING_CONFTEST = """
import json, pathlib, gc

LOG = pathlib.Path(__file__).parent / "hooks.jsonl"

def _log(**entry):
    with LOG.open("a") as out:
        out.write(json.dumps(entry) + "\\n")

def pytest_runtest_setup(item):
    from _pytest.logging import caplog_records_key
    # pytest's log capture keeps each captured stage's records in the item's stash.
    _log(hook="setup", node=item.nodeid, captured=caplog_records_key in item.stash)

def pytest_runtest_logreport(report):
    _log(hook="report", node=report.nodeid, when=report.when, outcome=report.outcome)

def pytest_sessionfinish(session):
    _log(hook="frozen", count=gc.get_freeze_count(), young=gc.get_threshold()[0])
"""


def hook_log(root: Path) -> list[dict[str, object]]:
    path = root / "hooks.jsonl"
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    path.unlink()
    return entries


def finished_runs(pytester: pytest.Pytester, name: str, runs: int) -> tuple[tuple[str, ...], Path]:
    """An offline experiment whose `runs` runs of its first sub-test have finished: the
    session's arguments and its results folder."""
    experiment = write_experiment(pytester.path, name)
    results = pytester.path / "results"
    args = (str(experiment), "--runs", str(runs), "--results-dir", str(results), *OFFLINE)
    pytester.runpytest(*args, "-p", "no:cacheprovider").assert_outcomes(passed=runs)
    return args, results


def make_failed(record_file: Path) -> None:
    """A judged run that scored below the threshold (as if the agent had done worse)."""
    record = json.loads(record_file.read_text())
    record["outcome"] = "failed"
    record["result"]["passed"] = False
    record["result"]["score"] = 0.25
    atomic_write_text(record_file, json.dumps(record, indent=2) + "\n")


def test_finished_runs_are_replayed_beside_executed_ones_with_the_same_reports(
    pytester: pytest.Pytester,
) -> None:
    args, results = finished_runs(pytester, "exp-replay", 3)
    runs = results / "exp-replay" / "T0" / "00-empty"
    assert sorted(path.name for path in runs.glob("run-*")) == ["run-01", "run-02", "run-03"]
    make_failed(runs / "run-03" / RUN_RECORD_FILE)
    shutil.rmtree(runs / "run-02")  # a run to execute between two replayed ones
    pytester.makeconftest(RECORDING_CONFTEST)
    hook_log_path = pytester.path / "hooks.jsonl"
    hook_log_path.unlink(missing_ok=True)

    junit = pytester.path / "junit.xml"
    json_report = pytester.path / "report.json"
    session = pytester.runpytest(
        *args, f"--junitxml={junit}", "--json-report", f"--json-report-file={json_report}", "-rf"
    )
    session.assert_outcomes(passed=2, failed=1)
    session.stdout.fnmatch_lines(["FAILED *::T0::00-empty?run-03? - score 0.250 (grade *"])
    entries = hook_log(pytester.path)
    # Every plugin's stage hooks run for every run; only the executed one is captured.
    captured = {
        str(entry["node"]).rsplit("[", 1)[1]: entry["captured"]
        for entry in entries
        if entry["hook"] == "setup"
    }
    assert captured == {"run-01]": False, "run-02]": True, "run-03]": False}
    reports = [
        (entry["node"], entry["when"], entry["outcome"])
        for entry in entries
        if entry["hook"] == "report"
    ]
    by_run = {
        run: [(when, outcome) for node, when, outcome in reports if str(node).endswith(run)]
        for run in ("[run-01]", "[run-02]", "[run-03]")
    }
    assert by_run["[run-01]"] == [("setup", "passed"), ("call", "passed"), ("teardown", "passed")]
    assert by_run["[run-02]"] == by_run["[run-01]"]
    assert by_run["[run-03]"] == [("setup", "passed"), ("call", "failed"), ("teardown", "passed")]
    [frozen] = [entry["count"] for entry in entries if entry["hook"] == "frozen"]
    assert isinstance(frozen, int) and frozen > 0  # the items were frozen while it ran

    cases = {case.get("name"): case for case in ET.parse(junit).getroot().iter("testcase")}
    replayed = cases["00-empty[run-03]"]
    properties = {p.get("name"): p.get("value") for p in replayed.iter("property")}
    assert properties["scylla_outcome"] == "failed"
    assert properties["scylla_score"] == "0.2500"
    failure = replayed.find("failure")
    assert failure is not None and "below pass threshold" in (failure.get("message") or "")
    assert cases["00-empty[run-01]"].find("failure") is None
    # pytest-json-report keeps its own per-stage state in the stage hooks.
    tests = json.loads(json_report.read_text())["tests"]
    assert [(test["nodeid"][-7:], test["outcome"]) for test in tests] == [
        ("run-01]", "passed"),
        ("run-02]", "passed"),
        ("run-03]", "failed"),
    ]
    assert tests[2]["metadata"]["scylla"]["score"] == 0.25

    # pytest's own --lf knows the replayed failure and selects it alone, replayed again.
    again = pytester.runpytest(*args, "--lf")
    again.assert_outcomes(failed=1, deselected=17)  # 15 other sub-tests, 2 passed runs
    setups = [entry for entry in hook_log(pytester.path) if entry["hook"] == "setup"]
    assert [entry["captured"] for entry in setups] == [False]


def test_an_in_process_session_leaves_the_collector_unfrozen(pytester: pytest.Pytester) -> None:
    """pytester runs sessions in this process: what a session froze must be freed after it,
    and the collector's thresholds put back."""
    import gc

    experiment = write_experiment(pytester.path, "exp-gc")
    results = pytester.path / "results"
    pytester.makeconftest(RECORDING_CONFTEST)
    before = gc.get_freeze_count()
    thresholds = gc.get_threshold()
    pytester.runpytest(str(experiment), "--runs", "1", "--results-dir", str(results), *OFFLINE)
    [frozen] = [entry for entry in hook_log(pytester.path) if entry["hook"] == "frozen"]
    assert isinstance(frozen["count"], int) and frozen["count"] > before
    assert gc.get_freeze_count() == before
    # Young collections were rare while the runs went; the thresholds are back after it.
    assert frozen["young"] == RUN_LOOP_YOUNG_THRESHOLD
    assert gc.get_threshold() == thresholds


def test_a_session_without_runs_keeps_the_collectors_thresholds(pytester: pytest.Pytester) -> None:
    import gc

    pytester.makeconftest(RECORDING_CONFTEST)
    pytester.makepyfile(test_plain="def test_one():\n    pass\n")
    pytester.runpytest().assert_outcomes(passed=1)
    [frozen] = [entry for entry in hook_log(pytester.path) if entry["hook"] == "frozen"]
    assert frozen["young"] == gc.get_threshold()[0] < RUN_LOOP_YOUNG_THRESHOLD


def test_a_regenerate_imports_no_api_client(pytester: pytest.Pytester) -> None:
    """Rescoring needs no SDK: importing it costs a second of every regenerate."""
    experiment = write_experiment(pytester.path, "exp-noimport")
    results = pytester.path / "results"
    args = (str(experiment), "--runs", "1", "--results-dir", str(results), "-p", "no:cacheprovider")
    pytester.runpytest(*args, *OFFLINE).assert_outcomes(passed=1)
    pytester.makeconftest(
        "import sys, pathlib\n"
        "def pytest_sessionfinish(session):\n"
        "    pathlib.Path(__file__).with_name('sdk.txt').write_text(\n"
        "        str('anthropic' in sys.modules))\n"
    )
    regenerated = pytester.runpytest_subprocess(str(results), "--scylla-regenerate", *args[5:])
    regenerated.assert_outcomes(passed=1)
    assert (pytester.path / "sdk.txt").read_text() == "False"


def test_a_regenerated_error_is_reported_in_one_line_without_a_traceback(
    pytester: pytest.Pytester,
) -> None:
    experiment = write_experiment(pytester.path, "exp-error")
    results = pytester.path / "results"
    args = (str(experiment), "--runs", "2", "--results-dir", str(results), *OFFLINE)
    pytester.runpytest(*args, "-p", "no:cacheprovider").assert_outcomes(passed=2)
    record_file = results / "exp-error" / "T0" / "00-empty" / "run-02" / RUN_RECORD_FILE
    record = json.loads(record_file.read_text())
    record.update(
        outcome="error",
        stage="started",
        result=None,
        error={"stage": "agent", "message": "the agent did not finish"},
    )
    atomic_write_text(record_file, json.dumps(record, indent=2) + "\n")
    regenerated = pytester.runpytest(str(results), "--scylla-regenerate", "-p", "no:cacheprovider")
    regenerated.assert_outcomes(passed=1, errors=1)
    regenerated.stdout.fnmatch_lines(
        [
            "*ERROR at setup of exp-error T0/00-empty run 2*",
            "agent: the agent did not finish",
            "  run files: *run-02",
            "ERROR *00-empty?run-02? - agent: the agent did not finish",
        ]
    )
    regenerated.stdout.no_fnmatch_line("*collect.py*")


def test_a_budget_stop_skips_new_runs_but_not_runs_reported_from_disk(
    pytester: pytest.Pytester,
) -> None:
    experiment = write_experiment(pytester.path, "exp-budget")
    results = pytester.path / "results"
    args = (str(experiment), "--results-dir", str(results), "-p", "no:cacheprovider", *OFFLINE)
    pytester.runpytest(*args, "--runs", "2").assert_outcomes(passed=2)
    # A stop as the controller writes it when the spend reaches the budget, here before the
    # first run of a session that has two runs on disk and one to execute.
    pytester.makeconftest(
        "from pytest_scylla.budget import STOP_FILE, BudgetStop\n"
        "def pytest_collection_finish(session):\n"
        f"    path = __import__('pathlib').Path({str(results)!r}) / STOP_FILE\n"
        "    path.write_text(BudgetStop(reason='spent $1.00 of --max-cost $1.00')"
        ".model_dump_json())\n"
    )
    resumed = pytester.runpytest(*args, "--runs", "3", "-rs")
    resumed.assert_outcomes(passed=2, skipped=1)
    resumed.stdout.fnmatch_lines(["SKIPPED * budget reached: spent $1.00 of --max-cost $1.00"])


def interrupted_run(
    pytester: pytest.Pytester, name: str, stage: str
) -> tuple[tuple[str, ...], Path]:
    """One finished run of a new experiment, its record then put back to `stage` as a
    session killed there leaves it: (the session's arguments, the run's folder)."""
    experiment = write_experiment(pytester.path, name)
    results = pytester.path / "results"
    args = (str(experiment), "--runs", "1", "--results-dir", str(results), *OFFLINE)
    pytester.runpytest(*args, "-p", "no:cacheprovider").assert_outcomes(passed=1)
    run = results / name / "T0" / "00-empty" / "run-01"
    record = json.loads((run / RUN_RECORD_FILE).read_text())
    record.update(stage=stage, outcome="error", result=None)
    record["error"] = {"stage": "interrupted", "message": "killed"}
    atomic_write_text(run / RUN_RECORD_FILE, json.dumps(record, indent=2) + "\n")
    return args, run


@pytest.mark.parametrize("stage", ["started", "agent-done"])
def test_a_killed_sessions_unfinished_writes_are_dropped_when_its_run_goes_on(
    pytester: pytest.Pytester, stage: str
) -> None:
    """kill -9 between an atomic write's temporary file and its rename leaves
    `.<name>.<random>.tmp` in the run folder: not a result. The run executed again (a new
    attempt, or its judging) drops them, and no attempt moved aside carries them."""
    args, run = interrupted_run(pytester, "exp-tmp", stage)
    results = pytester.path / "results"
    leftovers = [run / ".run_result.json.k3x9q2ab.tmp", run / "checks" / ".x.json.a1b2c3d4.tmp"]
    for leftover in leftovers:
        leftover.parent.mkdir(exist_ok=True)
        leftover.write_text('{"half": ')
    keep = run / "notes.tmp"  # not an atomic write's name: not ours to drop
    keep.write_text("kept\n")

    pytester.runpytest(*args, "-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert [path for path in results.rglob("*.tmp") if path.name != "notes.tmp"] == []
    assert keep.is_file() or any(path.name == "notes.tmp" for path in run.rglob("*"))


def test_a_resume_after_an_aggregation_reports_runs_from_their_heads(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records that the aggregation on disk read in full, unchanged since, are reported from
    their heads (record_head.py) with the same reports as from the full record; any change
    to a record file sends every run back to the full read, which still finds damage."""
    import pytest_scylla.run.executor as executor

    experiment = write_experiment(pytester.path, "exp-heads")
    results = pytester.path / "results"
    args = (str(experiment), "--runs", "2", "--results-dir", str(results), *OFFLINE)
    args = (*args, "-p", "no:cacheprovider")
    pytester.runpytest(*args).assert_outcomes(passed=2)
    runs = results / "exp-heads" / "T0" / "00-empty"
    make_failed(runs / "run-02" / RUN_RECORD_FILE)

    full_reads: list[str] = []
    read_run_record = executor.read_run_record

    def counting(path: Path, expected: object = None) -> object:
        full_reads.append(path.parent.name)
        return read_run_record(path, expected)  # type: ignore[arg-type]

    monkeypatch.setattr(executor, "read_run_record", counting)

    def session(name: str) -> tuple[pytest.RunResult, dict[str, dict[str, str | None]], object]:
        junit, json_report = pytester.path / f"{name}.xml", pytester.path / f"{name}.json"
        result = pytester.runpytest(
            *args, f"--junitxml={junit}", "--json-report", f"--json-report-file={json_report}"
        )
        properties = {
            str(case.get("name")): {
                p.get("name") or "": p.get("value") for p in case.iter("property")
            }
            for case in ET.parse(junit).getroot().iter("testcase")
        }
        tests = json.loads(json_report.read_text())["tests"]
        return result, properties, [(test["outcome"], test["metadata"]) for test in tests]

    # The changed record: the aggregates on disk no longer match, every record is read whole.
    changed, changed_properties, changed_json = session("changed")
    changed.assert_outcomes(passed=1, failed=1)
    assert sorted(full_reads) == ["run-01", "run-02"]
    full_reads.clear()

    # Nothing changed since that session aggregated: heads only, the same reports.
    again, again_properties, again_json = session("again")
    again.assert_outcomes(passed=1, failed=1)
    again.stdout.fnmatch_lines(["*0 executed, 2 from disk*"])
    assert full_reads == []
    assert again_properties == changed_properties
    assert again_json == changed_json
    assert again_properties["00-empty[run-02]"]["scylla_score"] == "0.2500"

    # Evidence a head skips is damaged: the file changed, so the full read finds it.
    record = json.loads((runs / "run-01" / RUN_RECORD_FILE).read_text())
    record["checks"] = {"after": "not a list"}
    atomic_write_text(runs / "run-01" / RUN_RECORD_FILE, json.dumps(record, indent=2) + "\n")
    damaged = pytester.runpytest(*args)
    assert "run-01" in full_reads
    damaged.stdout.fnmatch_lines(["*run-01*damaged*"])


@pytest.mark.parametrize("stage", ["started", "agent-done"])
def test_an_agent_file_named_like_an_unfinished_write_stays_in_the_kept_workspace(
    pytester: pytest.Pytester, stage: str
) -> None:
    """The attack: with --scylla-keep-workspace the run folder holds a copy of the agent's
    files, and the agent picks their names. One named like an atomic write's temporary file
    (`.<name>.<8 chars>.tmp`) is the agent's evidence, not a write of ours the killed
    session left: the run executed again keeps it (moved aside with its attempt or not)."""
    args, run = interrupted_run(pytester, "exp-kept", stage)
    planted = run / "workspace" / ".notes.abcdefgh.tmp"  # as keep_workspace copies it
    planted.parent.mkdir()
    planted.write_text("the agent's own file\n")

    pytester.runpytest(*args, "-p", "no:cacheprovider").assert_outcomes(passed=1)
    kept = [path for path in run.rglob(planted.name) if path.parent.name == "workspace"]
    assert [path.read_text() for path in kept] == ["the agent's own file\n"]

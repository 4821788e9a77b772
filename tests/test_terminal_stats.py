"""A run's passed setup and teardown reports leave the terminal reporter's keeping once filed
(terminal_stats.py): the terminal shows the same, other tests' reports stay. Its speed is
measured in benchmarks/bench_regenerate.py --tree."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_replay import finished_runs, make_failed

from pytest_scylla.records import RUN_RECORD_FILE

# Which reports the terminal reporter still holds under the empty category when it summarizes.
STATS_CONFTEST = """
import json, pathlib

def pytest_terminal_summary(terminalreporter):
    kept = [[r.nodeid, r.when] for r in terminalreporter.stats.get("", [])]
    (pathlib.Path(__file__).parent / "kept.json").write_text(json.dumps(kept))
"""
# A plain failing test whose fixture prints while tearing down: pytest shows that output
# under the failure, found among the teardown reports.
PLAIN_TESTS = """
import pytest

@pytest.fixture
def noisy():
    yield
    print("teardown says hello")

def test_plain_fails(noisy):
    assert False

def test_plain_passes():
    pass
"""


def _comparable(lines: list[str]) -> list[str]:
    return [re.sub(r" in \d+\.\d+s", " in Ns", line) for line in lines]


def test_a_runs_passed_stage_reports_are_dropped_and_the_terminal_shows_the_same(
    pytester: pytest.Pytester,
) -> None:
    args, results = finished_runs(pytester, "exp-stats", 3)
    make_failed(results / "exp-stats" / "T0" / "00-empty" / "run-02" / RUN_RECORD_FILE)
    pytester.makeconftest(STATS_CONFTEST)
    plain = pytester.makepyfile(test_plain=PLAIN_TESTS)
    session_args = (*args, str(plain), "-p", "no:cacheprovider", "-rA")

    pruned = pytester.runpytest(*session_args)
    pruned.assert_outcomes(passed=3, failed=2)
    kept = json.loads((pytester.path / "kept.json").read_text())
    # The plain tests' own reports stay; none of the three runs' does.
    assert sorted(tuple(entry) for entry in kept) == [
        ("test_plain.py::test_plain_fails", "setup"),
        ("test_plain.py::test_plain_fails", "teardown"),
        ("test_plain.py::test_plain_passes", "setup"),
        ("test_plain.py::test_plain_passes", "teardown"),
    ]
    pruned.stdout.fnmatch_lines(
        ["*Captured stdout teardown*", "teardown says hello", "*FAILED*run-02*"]
    )

    kept_all = pytester.runpytest(*session_args, "-p", "no:scylla-run-report-pruner")
    kept_all.assert_outcomes(passed=3, failed=2)
    assert len(json.loads((pytester.path / "kept.json").read_text())) == 4 + 2 * 3
    assert _comparable(pruned.outlines) == _comparable(kept_all.outlines)


def test_a_runs_teardown_report_with_captured_output_is_kept(tmp_path: Path) -> None:
    """What the terminal can still print under a failure stays filed."""
    from pytest_scylla.terminal_stats import RunReportPruner

    class Reporter:
        def __init__(self) -> None:
            self.stats: dict[str, list[object]] = {}

    reporter = Reporter()

    class PluginManager:
        def get_plugin(self, name: str) -> object:
            return reporter if name == "terminalreporter" else None

    class Config:
        pluginmanager = PluginManager()

    pruner = RunReportPruner(Config())  # type: ignore[arg-type]
    quiet = pytest.TestReport("x::run", ("x", 1, "run"), {"scylla": 1}, "passed", None, "teardown")
    noisy = pytest.TestReport(
        "x::run",
        ("x", 1, "run"),
        {"scylla": 1},
        "passed",
        None,
        "teardown",
        sections=[("Captured log teardown", "a line")],
    )
    other = pytest.TestReport("x::t", ("x", 2, "t"), {}, "passed", None, "teardown")
    for report in (quiet, noisy, other):
        reporter.stats.setdefault("", []).append(report)
        pruner.pytest_runtest_logreport(report)
    assert reporter.stats[""] == [noisy, other]

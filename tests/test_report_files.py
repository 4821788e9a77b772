"""The files a session writes beside its aggregates, end to end: reports, CSVs, the summary
across experiments, and byte-identical output on --scylla-regenerate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from experiment_factory import write_experiment

from pytest_scylla.report.csv import CSV_FILES


def _args(*experiments: Path, results: Path, extra: tuple[str, ...] = ()) -> list[str]:
    return [
        *(str(experiment) for experiment in experiments),
        "--runs",
        "2",
        "--max-subtests",
        "1",
        "--agent",
        "oracle",
        "--judge-model",
        "none",
        "--results-dir",
        str(results),
        "-p",
        "no:cacheprovider",
        *extra,
    ]


def _snapshot(results: Path) -> dict[Path, bytes]:
    names = {"report.md", "report.html", "summary.md", "summary.json", "result.json", *CSV_FILES}
    return {path: path.read_bytes() for path in results.rglob("*") if path.name in names}


@pytest.mark.slow
def test_a_session_writes_reports_csvs_and_a_summary_that_regenerate_keeps_byte_identical(
    pytester: pytest.Pytester,
) -> None:
    first = write_experiment(pytester.path, "exp-a", tiers=["T0", "T1"])
    second = write_experiment(pytester.path, "exp-b", tiers=["T0", "T1"])
    results = pytester.path / "results"
    session = pytester.runpytest(*_args(first, second, results=results))
    session.assert_outcomes(passed=8)
    for experiment in ("exp-a", "exp-b"):
        folder = results / experiment
        for name in ("report.md", "report.html", *CSV_FILES):
            assert (folder / name).is_file(), name
        report = (folder / "report.md").read_text("utf-8")
        # The oracle reports no cost: n/a, never $0.0000.
        assert "- Cost: agent n/a (the agent reports no cost), judges $0.0000" in report
        tier_row = next(line for line in report.splitlines() if line.startswith("| T0 Prompts |"))
        assert "$0.0000" not in tier_row
        assert "- Pass threshold: " in report and "- Agent: oracle" in report
        runs = (folder / "runs.csv").read_text("utf-8").splitlines()
        assert len(runs) == 1 + 4  # header, two tiers x two runs
    summary = json.loads((results / "summary.json").read_text("utf-8"))
    assert summary["experiments"] == ["exp-a", "exp-b"]
    [comparison] = summary["comparisons"]
    assert (comparison["group_a"], comparison["group_b"]) == ("T0", "T1")
    assert comparison["tasks"] == ["exp-a", "exp-b"] and not comparison["significant"]
    assert "too few tasks (2" in (results / "summary.md").read_text("utf-8")
    before = _snapshot(results)
    # Per experiment: 2 reports, the CSVs and 5 result.json (experiment, 2 tiers, 2 sub-tests).
    assert len(before) == 2 * (2 + len(CSV_FILES) + 5) + 2

    again = pytester.runpytest(
        *_args(first, second, results=results, extra=("--scylla-regenerate",))
    )
    again.assert_outcomes(passed=8)
    after = _snapshot(results)
    changed = [str(path) for path in before if after.get(path) != before[path]]
    assert changed == []

"""Aggregates that cannot be fooled or broken by what is on disk (issue 10, issue 11).

Non-UTF-8 bytes or a directory in place of an aggregate crashed every later session's
sessionfinish; a run record copied into another run's folder was counted by its content
(one run three times, another lost); records made with other settings were pooled.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from experiment_factory import write_experiment

from pytest_scylla.aggregate import aggregate_experiment
from pytest_scylla.records import AgentRecord, RunRecord, ScoreRecord
from pytest_scylla.results_layout import load_experiment_records
from pytest_scylla.run_settings import RunSettings


def args(experiment: Path, results: Path, runs: int) -> list[str]:
    return [
        str(experiment),
        "--runs",
        str(runs),
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
        "-W",
        "always",
    ]


@pytest.mark.slow
def test_damaged_aggregates_and_reports_are_named_and_rebuilt(pytester: pytest.Pytester) -> None:
    experiment = write_experiment(pytester.path, "exp-agg")
    results = pytester.path / "results"
    pytester.runpytest(*args(experiment, results, 1)).assert_outcomes(passed=1)
    top = results / "exp-agg"
    good = {path: path.read_bytes() for path in top.rglob("result.json")}
    (top / "result.json").write_bytes(b'{"experiment_id": "\xff\xfe"}')
    (top / "T0" / "00-empty" / "result.json").write_text('{"truncated')
    (top / "T0" / "result.json").unlink()
    (top / "T0" / "result.json").mkdir()
    (top / "report.md").write_bytes(b"# report \xc3\x28\n")

    again = pytester.runpytest(*args(experiment, results, 1))
    assert again.ret == 0, again.stdout.str()[-3000:]
    again.assert_outcomes(passed=1)
    text = " ".join(again.stdout.str().split())
    assert f"{top / 'result.json'}: damaged (not UTF-8); rebuilt" in text
    assert f"{top / 'T0' / '00-empty' / 'result.json'}: damaged (invalid JSON); rebuilt" in text
    assert f"{top / 'T0' / 'result.json'}: damaged (not a regular file)" in text
    assert f"{top / 'report.md'}: damaged (not UTF-8); rebuilt" in text
    for path, content in good.items():
        assert json.loads(path.read_bytes()) == json.loads(content)
    assert (top / "report.md").read_text(encoding="utf-8").startswith("# Experiment report")
    assert len(list((top / "T0").glob("result.json.damaged-*"))) == 1  # moved aside, not deleted


@pytest.mark.slow
def test_a_record_copied_into_other_runs_is_reported_and_not_counted(
    pytester: pytest.Pytester,
) -> None:
    experiment = write_experiment(pytester.path, "exp-copy")
    results = pytester.path / "results"
    pytester.runpytest(*args(experiment, results, 3)).assert_outcomes(passed=3)
    runs = results / "exp-copy" / "T0" / "00-empty"
    for run in ("run-02", "run-03"):
        shutil.copy(runs / "run-01" / "run_result.json", runs / run / "run_result.json")

    loaded = load_experiment_records(results / "exp-copy")
    assert [(r.subtest, r.run) for r in loaded.records] == [("00-empty", 1)]
    assert len(loaded.damaged) == 2
    for run, damaged in zip(("run-02", "run-03"), loaded.damaged, strict=True):
        assert damaged.startswith(str(runs / run / "run_result.json"))
        assert "is of exp-copy T0/00-empty run 1" in damaged
    result = aggregate_experiment("exp-copy", loaded.records, loaded.damaged)
    assert result.tiers["T0"].stats.n == 1 and len(result.damaged_records) == 2

    # A session puts each run's own record back, from the run's own saved output.
    again = pytester.runpytest(*args(experiment, results, 3))
    again.assert_outcomes(passed=3)
    text = " ".join(again.stdout.str().split())
    for run in ("run-02", "run-03"):
        assert f"{runs / run / 'run_result.json'}: the record is of exp-copy" in text
        assert json.loads((runs / run / "run_result.json").read_text())["run"] == int(run[-2:])
    counts = json.loads((results / "exp-copy" / "result.json").read_text())["counts"]
    assert counts["passed"] == 3


def _record(run: int, model: str, finished_at: str, subtest: str = "00") -> RunRecord:
    return RunRecord(
        experiment_id="exp",
        tier="T0",
        subtest=subtest,
        run=run,
        node_id=f"exp/test.yaml::T0::{subtest}[run-{run:02d}]",
        agent_name="claude-code",
        judge_mode="commands-only",
        outcome="passed",
        result=ScoreRecord(
            score=1.0, grade="S", passed=True, pass_threshold=0.6, category_scores={}, items=[]
        ),
        agent=AgentRecord(agent="claude-code", cost_usd=0.1),
        started_at=finished_at,
        finished_at=finished_at,
        settings=RunSettings(
            agent="claude-code",
            model=model,
            judge_mode="commands-only",
            judge_panel=[],
            pass_threshold=0.6,
            pass_threshold_source="rubric",
            sandbox="local",
            fixture_sha256="f" * 64,
            subtest_sha256=subtest * 32,
        ),
    )


def test_records_of_other_settings_are_named_and_not_pooled() -> None:
    records = [
        _record(1, "claude-sonnet-4-6", "2026-01-01T00:00:01+00:00"),
        _record(2, "claude-opus-4-6", "2026-01-01T00:00:09+00:00"),
        _record(3, "claude-sonnet-4-6", "2026-01-01T00:00:03+00:00"),
        _record(4, "claude-sonnet-4-6", "2026-01-01T00:00:04+00:00"),
    ]
    records.append(records[0].model_copy(update={"run": 5, "settings": None}))  # version 1
    result = aggregate_experiment("exp", records, [])
    subtest = result.tiers["T0"].subtests["00"]
    assert [run.run for run in subtest.runs] == [1, 3, 4, 5]
    assert subtest.stats.n == 4 and result.counts.passed == 4
    [note] = result.excluded_records
    assert note.startswith(str(Path("exp/T0/00/run-02"))) and "--model" in note


def test_a_sub_test_run_with_another_model_is_not_pooled_into_the_tier() -> None:
    records = [
        _record(run, "claude-sonnet-4-6", f"2026-01-01T00:00:0{run}+00:00") for run in (1, 2)
    ]
    records += [
        _record(run, "claude-opus-4-6", f"2026-01-01T00:00:0{run}+00:00", subtest="01")
        for run in (1,)
    ]
    result = aggregate_experiment("exp", records, [])
    assert list(result.tiers["T0"].subtests) == ["00"]
    assert result.tiers["T0"].stats.n == 2
    [note] = result.excluded_records
    assert note.startswith(str(Path("exp/T0/01/run-01"))) and "--model" in note
    assert "sub-test definition" not in note and "experiment's other runs" in note

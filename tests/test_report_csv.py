"""CSV exports: one row per run record, and figures a reader can recompute from runs.csv."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from report_factory import make_record

from pytest_scylla.aggregate import aggregate_experiment
from pytest_scylla.report.csv import CSV_FILES, render_csvs

UPSTREAM = Path("/work/shared/data/upstream/dryrun-test-001-analysis")


def _records() -> list:
    return [
        make_record("T0", "00", 1, 0.9, cost=0.25),
        make_record("T0", "00", 2, 0.4, cost=0.5),
        make_record("T0", "00", 3, 0.7, cost=None, tokens=False),  # cost unknown, not $0
        make_record("T0", "01", 1, None),  # errored: counted beside, not scored
        make_record("T1", "00", 1, 0.2, cost=0.1),
        make_record("T1", "00", 2, 0.3, cost=0.1, failed_judge=True),
    ]


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_runs_csv_has_one_row_per_record_and_recomputes_the_tier_figures() -> None:
    records = _records()
    files = render_csvs(aggregate_experiment("exp", records, []), records)
    assert tuple(files) == CSV_FILES
    runs = _rows(files["runs.csv"])
    assert len(runs) == len(records)
    assert [(r["tier"], r["subtest"], r["run_number"]) for r in runs] == [
        ("T0", "00", "1"), ("T0", "00", "2"), ("T0", "00", "3"), ("T0", "01", "1"),
        ("T1", "00", "1"), ("T1", "00", "2"),
    ]  # fmt: skip
    assert runs[2]["cost_usd"] == "" and runs[2]["total_tokens"] == ""  # unknown stays empty
    assert runs[3]["outcome"] == "error" and runs[3]["score"] == "" and runs[3]["passed"] == ""
    assert runs[3]["error"] == "sandbox: container died"

    def figures(tier: str) -> tuple[float, float, float]:
        judged = [r for r in runs if r["tier"] == tier and r["outcome"] != "error"]
        pass_rate = sum(r["passed"] == "True" for r in judged) / len(judged)
        mean_score = sum(float(r["score"]) for r in judged) / len(judged)
        priced = [r for r in judged if r["cost_usd"]]
        passes = sum(r["passed"] == "True" for r in priced)
        mean_cost = sum(float(r["cost_usd"]) for r in priced) / len(priced)
        cost_of_pass = mean_cost / (passes / len(priced)) if passes else math.inf
        return pass_rate, mean_score, cost_of_pass

    # By hand: T0 passes 0.9 and 0.7 of three judged runs; the two priced runs cost 0.25
    # (passed) and 0.5 (failed): Cost-of-Pass = 0.375 / 0.5 = 0.75. T1 passes nothing.
    t0 = figures("T0")
    assert t0[0] == 2 / 3 and math.isclose(t0[1], 2.0 / 3) and math.isclose(t0[2], 0.75)
    t1 = figures("T1")
    assert t1[0] == 0 and math.isclose(t1[1], 0.25) and t1[2] == math.inf
    tiers = {row["tier"]: row for row in _rows(files["tiers.csv"])}
    assert float(tiers["T0"]["pass_rate"]) == 2 / 3
    assert math.isclose(float(tiers["T0"]["mean_score"]), 2 / 3)
    assert math.isclose(float(tiers["T0"]["cop"]), 0.75) and tiers["T1"]["cop"] == "inf"
    assert tiers["T0"]["errors"] == "1" and tiers["T0"]["cost_known_runs"] == "2"


def test_judges_and_criteria_csv() -> None:
    records = _records()
    files = render_csvs(aggregate_experiment("exp", records, []), records)
    judges = _rows(files["judges.csv"])
    assert len(judges) == 2 * 5  # two judges on each of the five judged runs
    failed = [r for r in judges if r["judge_status"] == "failed"]
    assert len(failed) == 1 and failed[0]["judge_is_valid"] == "False"
    assert failed[0]["tier"] == "T1" and failed[0]["judge_error"] == "no answer"
    criteria = _rows(files["criteria.csv"])
    first = [r for r in criteria if (r["tier"], r["subtest"], r["run_number"]) == ("T0", "00", "1")]
    by_judge = {(r["judge_model"], r["criterion"]): r for r in first}
    assert by_judge[("judge-a", "functional")]["criterion_achieved"] == "1.8"
    assert by_judge[("judge-a", "functional")]["criterion_max"] == "2.0"
    assert math.isclose(float(by_judge[("judge-b", "quality")]["criterion_score"]), 0.8)
    assert by_judge[("consensus", "functional")]["judge_number"] == "0"
    subtests = _rows(files["subtests.csv"])
    assert [(r["tier"], r["subtest"]) for r in subtests] == [
        ("T0", "00"),
        ("T0", "01"),
        ("T1", "00"),
    ]
    assert subtests[1]["pass_rate"] == "" and subtests[1]["errors"] == "1"


def test_column_names_follow_upstream_where_the_meaning_is_the_same() -> None:
    records = _records()
    files = render_csvs(aggregate_experiment("exp", records, []), records)
    # Upstream columns we do not produce: impl_rate (no such measure here), the judge's own
    # grade, consistency and the impl-rate summaries.
    not_ours = {
        "impl_rate", "judge_impl_rate", "judge_grade", "mean_impl_rate", "median_impl_rate",
        "std_impl_rate", "consistency",
    }  # fmt: skip
    upstream = {
        "runs.csv": "experiment,agent_model,tier,subtest,run_number,score,impl_rate,passed,grade,"
        "cost_usd,duration_seconds,agent_duration_seconds,judge_duration_seconds,input_tokens,"
        "output_tokens,cache_creation_tokens,cache_read_tokens,total_tokens,exit_code",
        "judges.csv": "experiment,agent_model,tier,subtest,run_number,judge_model,judge_number,"
        "judge_score,judge_impl_rate,judge_passed,judge_grade,judge_is_valid,judge_reasoning",
        "criteria.csv": "experiment,agent_model,tier,subtest,run_number,judge_model,judge_number,"
        "criterion,criterion_score,criterion_achieved,criterion_max",
    }
    for name, header in upstream.items():
        if (UPSTREAM / name).is_file():  # the shared copy, when present, must agree
            assert (UPSTREAM / name).read_text("utf-8").splitlines()[0] == header
        ours = files[name].splitlines()[0].split(",")
        expected = [column for column in header.split(",") if column not in not_ours]
        assert ours[: len(expected)] == expected

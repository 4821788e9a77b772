"""Honest outcomes (issue 11, items 1 and 2): a timed-out agent is graded, not dropped.

Dropping timed-out runs as errors inflated the pass rate (3 passes, 1 fail and 2 timeouts
read 0.75 instead of 0.50) and hid their spend from Cost-of-Pass; running the same command
again then re-executed exactly those runs, an extra draw for the runs that had done badly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from experiment_factory import write_experiment

from pytest_scylla.agents.claude_code import decide
from pytest_scylla.agents.claude_stream import parse_stream
from pytest_scylla.aggregate import aggregate_experiment
from pytest_scylla.records import AgentRecord, AttemptRecord, RunRecord, ScoreRecord, TokenUsage

# Chooses by run number (the run's work folder is `<exp>-<tier>-<sub-test>-<NN>-<pid>`): runs
# 1-3 solve the task, run 4 writes a wrong answer, runs 5 and 6 hang past the timeout.
AGENT = (
    "bash -c '"
    'folder=$(basename "$(dirname "$PWD")"); number=${folder%-*}; number=${number##*-}; '
    'case "$number" in '
    '01|02|03) printf "ok\\n" > done.txt ;; '
    '04) printf "nope\\n" > done.txt; touch junk ;; '
    "*) sleep 30 ;; "
    "esac' {workspace}"
)


def scylla_args(experiment: Path, results: Path) -> list[str]:
    return [
        str(experiment),
        "--runs",
        "6",
        "--max-subtests",
        "1",
        "--agent",
        "command",
        "--agent-command",
        AGENT,
        "--run-timeout",
        "2",
        "--judge-model",
        "none",
        "--results-dir",
        str(results),
        "-p",
        "no:cacheprovider",
    ]


@pytest.mark.slow
def test_timed_out_runs_are_graded_counted_and_not_redrawn(pytester: pytest.Pytester) -> None:
    experiment = write_experiment(pytester.path, "exp-t")
    results = pytester.path / "results"
    first = pytester.runpytest(*scylla_args(experiment, results))
    first.assert_outcomes(passed=3, failed=3)
    records = {
        record["run"]: record
        for record in (json.loads(path.read_text()) for path in results.rglob("run_result.json"))
    }
    assert [records[run]["outcome"] for run in range(1, 7)] == ["passed"] * 3 + ["failed"] * 3
    for run in (5, 6):
        assert records[run]["agent"]["timed_out"] and records[run]["error"] is None
        assert records[run]["stage"] == "judged"
    tier = json.loads((results / "exp-t" / "T0" / "result.json").read_text())
    assert tier["stats"]["n"] == 6 and tier["stats"]["pass_rate"] == pytest.approx(0.5)
    assert tier["counts"] | {"earlier_attempts": 0} == {
        "passed": 3,
        "failed": 3,
        "error": 0,
        "timed_out": 2,
        "earlier_attempts": 0,
        "replaced_judged_runs": 0,
    }
    row = next(line for line in first.outlines if line.strip().startswith("T0 "))
    assert row.split()[1:7] == ["6", "3", "3", "2", "0", "0.50"]

    # The same command again: every run is judged, so nothing is drawn again.
    again = pytester.runpytest(*scylla_args(experiment, results))
    again.assert_outcomes(passed=3, failed=3)
    assert "runs: 0 executed, 6 from disk" in again.stdout.str()
    tier = json.loads((results / "exp-t" / "T0" / "result.json").read_text())
    assert tier["stats"]["pass_rate"] == pytest.approx(0.5)
    assert not list(results.rglob("attempts"))


def _record(
    run: int, outcome: str, *, score: float | None, cost: float, timed_out: bool = False
) -> RunRecord:
    result = None
    if score is not None:
        result = ScoreRecord(
            score=score,
            grade="C",
            passed=outcome == "passed",
            pass_threshold=0.6,
            category_scores={},
            items=[],
        )
    return RunRecord(
        experiment_id="exp",
        tier="T0",
        subtest="00",
        run=run,
        node_id=f"exp/test.yaml::T0::00[run-{run:02d}]",
        agent_name="claude-code",
        judge_mode="commands-only",
        outcome=outcome,  # type: ignore[arg-type]
        result=result,
        agent=AgentRecord(agent="claude-code", cost_usd=cost, timed_out=timed_out),
        started_at="2026-01-01T00:00:00+00:00",
        finished_at="2026-01-01T00:00:01+00:00",
    )


def test_cost_of_pass_counts_timed_out_runs_and_every_attempt() -> None:
    records = [
        _record(1, "passed", score=1.0, cost=0.30),
        _record(2, "passed", score=1.0, cost=0.30),
        _record(3, "failed", score=0.2, cost=0.30, timed_out=True),
        _record(4, "failed", score=0.2, cost=0.90, timed_out=True),
    ]
    # Run 2 was executed twice: its first attempt (an API error) spent $0.40.
    records[1].attempts = [
        AttemptRecord(
            attempt=1,
            outcome="error",
            stage="started",
            agent_cost_usd=0.40,
            tokens=TokenUsage(input_tokens=100),
            files="attempts/1",
        )
    ]
    tier = aggregate_experiment("exp", records, []).tiers["T0"]
    assert tier.stats.n == 4 and tier.stats.pass_rate == pytest.approx(0.5)
    assert tier.counts.timed_out == 2 and tier.counts.earlier_attempts == 1
    spend = 0.30 + (0.30 + 0.40) + 0.30 + 0.90
    assert tier.agent_cost_usd == pytest.approx(spend)
    assert tier.stats.cost_of_pass == pytest.approx((spend / 4) / 0.5)
    assert tier.subtests["00"].runs[1].attempts == 2
    assert not math.isinf(tier.stats.cost_of_pass or math.inf)


INIT = json.dumps({"type": "system", "subtype": "init", "model": "m"}) + "\n"
API_FAILURE = INIT + json.dumps(
    {
        "type": "result",
        "subtype": "success",
        "is_error": True,
        "result": "API Error: 401",
        "api_error_status": 401,
        "terminal_reason": "api_error",
    }
)


def test_claude_code_timeout_is_graded_but_an_api_failure_is_not() -> None:
    common = {"agent": "claude-code", "model": "m", "duration_s": 5.0, "cli_version": None}
    timed_out = decide(
        parse_stream(INIT), exit_code=None, timed_out=True, timeout_s=4, stderr="", **common
    )
    assert timed_out.finished and timed_out.timed_out
    assert timed_out.error_reason == "timed out after 4 s"
    crashed = decide(
        parse_stream(INIT), exit_code=3, timed_out=False, timeout_s=4, stderr="boom", **common
    )
    assert crashed.finished and crashed.exit_code == 3
    refused = decide(
        parse_stream(API_FAILURE), exit_code=1, timed_out=False, timeout_s=4, stderr="", **common
    )
    assert not refused.finished  # the API failed the agent: an error, redone on resume
    never_started = decide(
        parse_stream(""), exit_code=1, timed_out=False, timeout_s=4, stderr="bad flag", **common
    )
    assert not never_started.finished  # the CLI refused to start: not the agent's doing

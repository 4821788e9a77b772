"""pytest-scylla in a CI step (issue 12 item 8): JUnit properties per run, the GitHub step
summary appended, and `--scylla-fail-on` deciding the exit status."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from experiment_factory import write_experiment

from pytest_scylla.ci_report import ExitPolicy, append_step_summary, junit_properties
from pytest_scylla.redact import Redactor

OFFLINE = ("--judge-model", "none", "-p", "no:cacheprovider")
SECRET = "sk-ant-api03-ci-step-summary-secret-0123456789"


def session_args(experiment: Path, results: Path, agent: str, runs: int = 2) -> list[str]:
    return [
        str(experiment),
        "--runs",
        str(runs),
        "--max-subtests",
        "1",
        "--agent",
        agent,
        "--results-dir",
        str(results),
        *OFFLINE,
    ]


def junit_cases(path: Path) -> dict[str, dict[str, str]]:
    """Each test case's properties, by its name."""
    cases = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        cases[case.attrib["name"]] = {
            prop.attrib["name"]: prop.attrib["value"] for prop in case.iter("property")
        }
    return cases


def records(results: Path) -> dict[str, dict]:
    """Run records by run folder name (run-01, ...); one sub-test per test here."""
    return {
        path.parent.name: json.loads(path.read_text()) for path in results.rglob("run_result.json")
    }


@pytest.mark.slow
@pytest.mark.parametrize(("agent", "outcome"), [("oracle", "passed"), ("nop", "failed")])
def test_junit_xml_has_each_runs_outcome_score_grade_cost_and_tokens(
    pytester: pytest.Pytester, agent: str, outcome: str
) -> None:
    experiment = write_experiment(pytester.path, "exp-ci")
    results = pytester.path / "results"
    junit = pytester.path / "junit.xml"
    pytester.runpytest(*session_args(experiment, results, agent), f"--junitxml={junit}")
    cases = junit_cases(junit)
    on_disk = records(results)
    assert len(cases) == len(on_disk) == 2
    for name, properties in cases.items():
        record = on_disk[name.split("[", 1)[1].rstrip("]")]
        assert properties["scylla_outcome"] == record["outcome"] == outcome
        assert properties["scylla_grade"] == record["result"]["grade"]
        assert float(properties["scylla_score"]) == pytest.approx(
            record["result"]["score"], abs=1e-4
        )
        assert float(properties["scylla_pass_threshold"]) == record["result"]["pass_threshold"]
        assert properties["scylla_judge_mode"] == "commands-only"
        assert properties["scylla_error_stage"] == "n/a"
        # Neither agent reports a cost or tokens: unknown, not zero.
        assert record["agent"]["cost_usd"] is None and record["agent"]["tokens_by_model"] == {}
        assert properties["scylla_agent_cost_usd"] == properties["scylla_tokens"] == "n/a"
        assert float(properties["scylla_judge_cost_usd"]) == 0.0


def test_junit_properties_say_n_a_for_what_an_errored_run_lacks() -> None:
    from pytest_scylla.records import RunError, RunRecord

    record = RunRecord(
        experiment_id="e",
        tier="T0",
        subtest="00",
        run=1,
        node_id="e::T0::00[run-01]",
        agent_name="nop",
        judge_mode="llm",
        outcome="error",
        error=RunError(stage="sandbox", message="no container"),
        started_at="a",
        finished_at="b",
    )
    properties = dict(junit_properties(record))
    assert properties["scylla_outcome"] == "error"
    assert properties["scylla_agent_cost_usd"] == properties["scylla_tokens"] == "n/a"
    assert properties["scylla_score"] == properties["scylla_grade"] == "n/a"
    assert properties["scylla_error_stage"] == "sandbox"


@pytest.mark.slow
def test_step_summary_is_appended_redacted_and_never_overwritten(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The attack: a task whose name carries the key (names come from fixture files).
    experiment = write_experiment(
        pytester.path, "exp-sum", test_yaml={"name": f"leaks {SECRET} here"}
    )
    results = pytester.path / "results"
    summary = pytester.path / "step_summary.md"
    summary.write_text("# written by an earlier command of the step\n")
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    pytester.runpytest(*session_args(experiment, results, "oracle")).assert_outcomes(passed=2)
    first = summary.read_text()
    assert first.startswith("# written by an earlier command of the step\n")
    assert SECRET not in first and "leaks" in first
    assert "| T0" in first  # the tier table's row
    assert str(results / "exp-sum" / "report.md") in first
    assert "## Tier comparisons" not in first  # the summary part only, not the whole report

    pytester.runpytest(*session_args(experiment, results, "oracle")).assert_outcomes(passed=2)
    second = summary.read_text()
    assert second.startswith(first) and second.count("| T0") == 2


def test_step_summary_needs_the_variable_and_something_to_say(tmp_path: Path) -> None:
    target = tmp_path / "summary.md"
    redactor = Redactor([SECRET])
    assert append_step_summary({}, ["## x"], redactor) is None
    assert append_step_summary({"GITHUB_STEP_SUMMARY": ""}, ["## x"], redactor) is None
    assert append_step_summary({"GITHUB_STEP_SUMMARY": str(target)}, [], redactor) is None
    assert not target.exists()
    environ = {"GITHUB_STEP_SUMMARY": str(target)}
    assert append_step_summary(environ, [f"## {SECRET}"], redactor) == target
    assert SECRET not in target.read_text() and target.read_text().endswith("\n")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("policy", "status"), [(None, 1), ("failed", 1), ("error", 0), ("never", 0)]
)
def test_low_scores_go_red_only_under_failed_or_pytests_own_rule(
    pytester: pytest.Pytester, policy: str | None, status: int
) -> None:
    experiment = write_experiment(pytester.path, "exp-nop")
    args = session_args(experiment, pytester.path / "results", "nop")
    if policy is not None:
        args += ["--scylla-fail-on", policy]
    result = pytester.runpytest(*args)
    result.assert_outcomes(failed=2)
    assert result.ret == status


@pytest.mark.slow
@pytest.mark.parametrize(("policy", "status"), [("error", 1), ("never", 0), ("failed", 1)])
def test_a_harness_error_goes_red_unless_never(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, policy: str, status: int
) -> None:
    import pytest_scylla.run.agent_phase as agent_phase
    from pytest_scylla.workspace import WorkspaceError

    def clone_fails(repository: Path, commit: str, destination: Path) -> None:
        raise WorkspaceError("clone failed: disk full")

    monkeypatch.setattr(agent_phase, "clone_workspace", clone_fails)
    experiment = write_experiment(pytester.path, "exp-err")
    result = pytester.runpytest(
        *session_args(experiment, pytester.path / "results", "nop", runs=1),
        "--scylla-fail-on",
        policy,
    )
    result.assert_outcomes(errors=1)
    assert result.ret == status


@pytest.mark.slow
def test_a_malformed_experiment_is_an_error_for_the_policy(pytester: pytest.Pytester) -> None:
    good = write_experiment(pytester.path, "exp-good")
    write_experiment(pytester.path, "exp-bad", test_yaml={"tiers": ["T9"]})
    result = pytester.runpytest(
        str(good),
        str(pytester.path / "exp-bad"),
        "--runs",
        "1",
        "--max-subtests",
        "1",
        "--agent",
        "nop",
        "--results-dir",
        str(pytester.path / "results"),
        "--scylla-fail-on",
        "error",
        *OFFLINE,
    )
    result.assert_outcomes(failed=1, errors=1)
    assert result.ret == 1


def test_usage_errors_stay_non_zero_under_never(pytester: pytest.Pytester) -> None:
    experiment = write_experiment(pytester.path, "exp-usage")
    result = pytester.runpytest(
        *session_args(experiment, pytester.path / "results", "command"), "--scylla-fail-on", "never"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR


@pytest.mark.parametrize(
    "status",
    [
        pytest.ExitCode.INTERRUPTED,
        pytest.ExitCode.INTERNAL_ERROR,
        pytest.ExitCode.USAGE_ERROR,
        pytest.ExitCode.NO_TESTS_COLLECTED,
        pytest.ExitCode.OK,
    ],
)
def test_policy_changes_only_a_failed_status(status: pytest.ExitCode) -> None:
    policy = ExitPolicy("never")
    policy.errors = 3
    assert policy.exit_status(status) == status

"""Never pay twice, never erase history (issue 11, items 2 and 6; issue 10's run boundary).

A run executed again keeps its earlier attempt under `attempts/<k>/`; a damaged record
next to saved agent output is rebuilt from it instead of deleting the output and paying for
the agent again; records of an older schema load, a newer one stops the session; an
exception in a run becomes that run's error record instead of escaping into pytest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from experiment_factory import write_experiment

import pytest_scylla.run.agent_phase as agent_phase
from pytest_scylla.records import SCHEMA_VERSION

SECRET = "sk-ant-trust-SECRET-0123456789abcdef"


def args(experiment: Path, results: Path, *extra: str, agent: str = "oracle") -> list[str]:
    return [
        str(experiment),
        "--runs",
        "1",
        "--max-subtests",
        "1",
        "--agent",
        agent,
        "--judge-model",
        "none",
        "--results-dir",
        str(results),
        "-p",
        "no:cacheprovider",
        "-W",
        "always",
        *extra,
    ]


def the_run(results: Path, experiment_id: str) -> Path:
    return results / experiment_id / "T0" / "00-empty" / "run-01"


def record_of(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "run_result.json").read_text())


@pytest.mark.slow
def test_a_bug_in_a_run_is_its_error_record_and_the_rerun_keeps_that_attempt(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    experiment = write_experiment(pytester.path, "exp-bug")
    results = pytester.path / "results"
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError(f"checks\nexploded near {SECRET}")

    with monkeypatch.context() as patch:
        patch.setattr(agent_phase, "run_after_checks", broken)
        first = pytester.runpytest(*args(experiment, results))
    first.assert_outcomes(errors=1)
    run_dir = the_run(results, "exp-bug")
    record = record_of(run_dir)
    assert record["outcome"] == "error" and record["error"]["stage"] == "harness"
    assert record["error"]["message"].startswith("RuntimeError: checks exploded near ")
    trace = (run_dir / "error.log").read_text()
    assert "Traceback" in trace and "broken" in trace
    assert SECRET not in (run_dir / "error.log").read_text() + json.dumps(record)
    assert SECRET not in first.stdout.str()

    again = pytester.runpytest(*args(experiment, results))
    again.assert_outcomes(passed=1)
    assert "runs: 1 executed, 0 from disk" in again.stdout.str()
    record = record_of(run_dir)
    assert record["outcome"] == "passed"
    [attempt] = record["attempts"]
    assert attempt["outcome"] == "error" and attempt["files"] == "attempts/1"
    assert attempt["error"]["stage"] == "harness"
    kept = run_dir / "attempts" / "1"
    assert (kept / "error.log").read_text() == trace
    assert json.loads((kept / "record.json").read_text())["error"]["stage"] == "harness"
    assert (kept / "agent" / "command.json").is_file()


@pytest.mark.slow
def test_rerun_failed_keeps_the_judged_attempt_and_the_report_flags_it(
    pytester: pytest.Pytester,
) -> None:
    experiment = write_experiment(pytester.path, "exp-redraw")
    results = pytester.path / "results"
    pytester.runpytest(*args(experiment, results, agent="nop")).assert_outcomes(failed=1)
    first = record_of(the_run(results, "exp-redraw"))
    redrawn = pytester.runpytest(*args(experiment, results, "--scylla-rerun-failed", agent="nop"))
    redrawn.assert_outcomes(failed=1)
    record = record_of(the_run(results, "exp-redraw"))
    assert record["replaced_judged_run"] is True
    [attempt] = record["attempts"]
    assert attempt["outcome"] == "failed" and attempt["stage"] == "judged"
    assert attempt["started_at"] == first["started_at"]
    kept = the_run(results, "exp-redraw") / "attempts" / "1" / "record.json"
    assert json.loads(kept.read_text())["started_at"] == first["started_at"]
    aggregate = json.loads((results / "exp-redraw" / "result.json").read_text())
    assert aggregate["counts"]["replaced_judged_runs"] == 1
    assert aggregate["counts"]["earlier_attempts"] == 1
    assert "replaced by --scylla-rerun-failed" in (results / "exp-redraw" / "report.md").read_text()


@pytest.mark.slow
def test_a_truncated_record_is_rebuilt_from_the_saved_output_without_a_new_agent_run(
    pytester: pytest.Pytester,
) -> None:
    experiment = write_experiment(pytester.path, "exp-cut")
    results = pytester.path / "results"
    pytester.runpytest(*args(experiment, results)).assert_outcomes(passed=1)
    run_dir = the_run(results, "exp-cut")
    record_file = run_dir / "run_result.json"
    truncated = record_file.read_bytes()[:200]
    record_file.write_bytes(truncated)
    saved = {
        path: path.stat().st_mtime_ns
        for path in [*run_dir.joinpath("agent").iterdir(), run_dir / "checks.json"]
    }

    again = pytester.runpytest(*args(experiment, results))
    again.assert_outcomes(passed=1)
    output = again.stdout.str()
    assert f"{record_file}: damaged; rebuilt from the saved" in " ".join(output.split())
    record = record_of(run_dir)
    assert record["outcome"] == "passed" and record["attempts"] == []
    assert {"agent", "checks.json", "workspace.diff"} <= set(record["rebuilt_from"])
    assert record["workspace"]["files_changed"] == 1
    for path, mtime in saved.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was written again: the agent ran"
    assert (run_dir / "run_result.json.damaged").read_bytes() == truncated


@pytest.mark.slow
def test_a_version_1_record_loads_and_a_newer_one_stops_the_session(
    pytester: pytest.Pytester,
) -> None:
    experiment = write_experiment(pytester.path, "exp-schema")
    results = pytester.path / "results"
    pytester.runpytest(*args(experiment, results)).assert_outcomes(passed=1)
    record_file = the_run(results, "exp-schema") / "run_result.json"
    version_1 = record_of(record_file.parent)
    for new_field in ("stage", "attempts", "replaced_judged_run", "rebuilt_from", "settings"):
        del version_1[new_field]
    version_1["schema_version"] = 1
    record_file.write_text(json.dumps(version_1, indent=2))

    migrated = pytester.runpytest(*args(experiment, results))
    migrated.assert_outcomes(passed=1)
    assert "runs: 0 executed, 1 from disk" in migrated.stdout.str()
    assert record_of(record_file.parent)["stage"] == "judged"

    newer = record_of(record_file.parent) | {"schema_version": SCHEMA_VERSION + 1}
    record_file.write_text(json.dumps(newer))
    before = record_file.read_bytes()
    refused = pytester.runpytest(*args(experiment, results))
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    assert f"schema_version {SCHEMA_VERSION + 1}" in refused.stderr.str() or (
        "newer pytest-scylla" in refused.stderr.str()
    )
    assert str(record_file) in refused.stderr.str()
    assert record_file.read_bytes() == before

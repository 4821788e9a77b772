"""Baseline checks shared by the xdist workers of a session (run/shared_baselines.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from experiment_factory import write_experiment, write_state_logging_experiment

from pytest_scylla.records import CheckResult
from pytest_scylla.run import shared_baselines as shared
from pytest_scylla.run.shared_baselines import SharedBaselines
from pytest_scylla.sandbox.reaper import owner_pid
from pytest_scylla.spec.load_experiment import Experiment, load_experiment


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Experiment:
    directory = write_experiment(tmp_path_factory.mktemp("experiments"), "exp-shared")
    return load_experiment(directory / "test.yaml")


def _counting(results: list[CheckResult], calls: list[str]) -> Callable[[], list[CheckResult]]:
    def run() -> list[CheckResult]:
        calls.append("ran")
        return results

    return run


def test_a_second_worker_reads_the_first_workers_baseline(
    experiment: Experiment, tmp_path: Path
) -> None:
    calls: list[str] = []
    baseline = [CheckResult(name="build", command="make", exit_code=2, output_tail="no rule")]
    first, second = SharedBaselines(tmp_path), SharedBaselines(tmp_path)  # two processes
    run = _counting(baseline, calls)
    assert first.get_or_run("c1", experiment, "run-1", run) == (None, baseline)
    assert second.get_or_run("c1", experiment, "run-2", run) == ("run-1", baseline)
    assert first.get_or_run("c1", experiment, "run-3", run) == ("run-1", baseline)
    assert calls == ["ran"]
    # Another starting state is another baseline.
    assert second.get_or_run("c2", experiment, "run-4", run) == (None, baseline)
    assert calls == ["ran", "ran"]


def test_a_timed_out_baseline_is_not_shared_and_a_damaged_file_is_run_again(
    experiment: Experiment, tmp_path: Path
) -> None:
    calls: list[str] = []
    slow = [CheckResult(name="tests", command="pytest", exit_code=None, timed_out=True)]
    run = _counting(slow, calls)
    SharedBaselines(tmp_path).get_or_run("c1", experiment, "run-1", run)
    assert SharedBaselines(tmp_path).get_or_run("c1", experiment, "run-2", run) == (None, slow)
    assert calls == ["ran", "ran"] and not list(tmp_path.glob("*.json"))

    good = [CheckResult(name="tests", command="pytest", exit_code=0)]
    SharedBaselines(tmp_path).get_or_run("c2", experiment, "run-3", _counting(good, calls))
    (saved,) = tmp_path.glob("*.json")
    saved.write_text(json.dumps({"node_id": "forged", "results": "not a list"}))
    again = SharedBaselines(tmp_path).get_or_run("c2", experiment, "run-4", _counting(good, calls))
    assert again == (None, good) and len(calls) == 4


def test_only_xdist_workers_share_and_the_folder_is_swept_with_their_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared.shared_baselines.cache_clear()
    monkeypatch.delenv(shared.TEST_RUN_ID_ENV, raising=False)
    assert shared.shared_baselines(tmp_path) is None
    shared.shared_baselines.cache_clear()
    monkeypatch.setenv(shared.TEST_RUN_ID_ENV, "../../elsewhere")
    assert shared.shared_baselines(tmp_path) is None  # the id names a folder: plain only
    shared.shared_baselines.cache_clear()
    monkeypatch.setenv(shared.TEST_RUN_ID_ENV, "0123abcd")
    found = shared.shared_baselines(tmp_path)
    shared.shared_baselines.cache_clear()
    assert found is not None and found.folder.parent == tmp_path
    assert found.folder.name.startswith("baselines-0123abcd-")
    assert owner_pid(found.folder) == os.getppid()


@pytest.mark.slow
def test_xdist_workers_run_each_baseline_once(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The check logs to a host file, which a bubblewrap sandbox rightly hides.
    monkeypatch.setenv("SCYLLA_LOCAL_ISOLATION", "none")
    log = pytester.path / "check-log.txt"
    experiment = write_state_logging_experiment(pytester.path, "exp-baseline", log)
    results = pytester.path / "results"
    pytester.runpytest(
        str(experiment),
        *("--runs", "4", "--max-subtests", "2", "--agent", "oracle"),
        *("--results-dir", str(results), "--judge-model", "none", "-p", "no:cacheprovider"),
        *("-n", "2"),
    ).assert_outcomes(passed=8)
    # Two starting states: two baselines for the session, however the runs were spread.
    assert sorted(log.read_text().split()) == ["after"] * 8 + ["before"] * 2
    records = [json.loads(path.read_text()) for path in results.rglob("run_result.json")]
    by_node = {record["node_id"]: record for record in records}
    for record in records:
        source = record["checks"]["baseline_from"]
        if source is not None:
            assert by_node[source]["subtest"] == record["subtest"]
            assert by_node[source]["checks"]["baseline"] == record["checks"]["baseline"]
    assert sum(record["checks"]["baseline_from"] is None for record in records) == 2

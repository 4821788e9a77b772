"""An experiment whose runs are all reported is aggregated in another process meanwhile
(aggregate_pipeline.py): the files written are byte for byte those an in-process build
writes, and a build whose records changed since it began is not used."""

from __future__ import annotations

import json
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from experiment_factory import write_experiment
from test_replay import finished_runs

from pytest_scylla import aggregate_build, aggregate_pipeline
from pytest_scylla.aggregate_build import BuiltAggregates, build_aggregates
from pytest_scylla.aggregate_inputs import records_fingerprint
from pytest_scylla.aggregate_pipeline import AggregatePipeline
from pytest_scylla.records import RUN_RECORD_FILE, atomic_write_text

OFFLINE = ("--judge-model", "none", "--agent", "oracle", "--max-subtests", "1")
DERIVED = ("result.json", "report.md", "report.html", "runs.csv", "tiers.csv")


WAIT_FOR_THE_EARLY_BUILD = """
import pytest

@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    results = session.config.pluginmanager.get_plugin("scylla-results")
    if results.built_early:
        results.pipeline.records_read(results.built_early)
"""


def derived_files(results: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(results)): path.read_bytes()
        for path in sorted(results.rglob("*"))
        if path.is_file() and (path.name in DERIVED or path.name.startswith("summary."))
    }


def test_a_background_build_writes_the_same_files_as_one_in_process(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("exp-a", "exp-b", "exp-c"):
        write_experiment(pytester.path, name)
    results = pytester.path / "results"
    args = (str(pytester.path), "--runs", "3", "--results-dir", str(results), *OFFLINE)
    pytester.runpytest(*args, "-p", "no:cacheprovider").assert_outcomes(passed=9)
    in_process = derived_files(results)
    assert len([name for name in in_process if name.endswith("report.md")]) == 3

    taken: list[tuple[str, bool]] = []
    real_take = AggregatePipeline.take

    def recording_take(
        self: AggregatePipeline, experiment_id: str, records: str
    ) -> BuiltAggregates | None:
        built = real_take(self, experiment_id, records)
        taken.append((experiment_id, built is not None))
        return built

    monkeypatch.setattr(aggregate_pipeline, "MIN_RUNS", 1)
    monkeypatch.setattr(AggregatePipeline, "take", recording_take)
    regenerated = pytester.runpytest(str(results), "--scylla-regenerate", "-p", "no:cacheprovider")
    regenerated.assert_outcomes(passed=9)
    # Each was built in the other process once its last run was reported.
    assert taken == [("exp-a", True), ("exp-b", True), ("exp-c", True)]
    assert derived_files(results) == in_process


def test_a_build_whose_records_changed_meanwhile_is_not_used(pytester: pytest.Pytester) -> None:
    _, results = finished_runs(pytester, "exp-changed", 2)
    folder = results / "exp-changed"
    pipeline = AggregatePipeline()
    try:
        before = records_fingerprint(folder)[0]
        pipeline.start(folder, "exp-changed", "a name")
        pipeline._pending["exp-changed"].result()  # the build has read the records
        [record_file, *_] = sorted(folder.rglob(RUN_RECORD_FILE))
        record = json.loads(record_file.read_text())
        record["agent"]["cost_usd"] = 2.5
        atomic_write_text(record_file, json.dumps(record, indent=2) + "\n")
        after = records_fingerprint(folder)[0]
        assert after != before
        assert pipeline.take("exp-changed", after) is None
        pipeline.start(folder, "exp-changed", "a name")
        built = pipeline.take("exp-changed", after)
        assert built is not None
        expected = build_aggregates(folder, "exp-changed", "a name")
        assert built.rendered == expected.rendered
        assert built.result == expected.result
        assert pipeline.take("exp-changed", after) is None  # taken once
    finally:
        pipeline.close()


@pytest.mark.parametrize("failure", [KeyboardInterrupt(), RuntimeError("bug"), SystemExit(3)])
def test_a_build_that_failed_or_was_interrupted_is_built_again(failure: BaseException) -> None:
    """A Ctrl-C of the terminal reaches the build's process too: its KeyboardInterrupt must
    not stop the controller from writing the session's aggregates itself."""
    pipeline = AggregatePipeline()
    future: Future[BuiltAggregates] = Future()
    future.set_exception(failure)
    pipeline._pending["exp"] = future
    assert pipeline.take("exp", "digest") is None


def test_builds_still_waiting_at_the_end_are_made_here_while_the_other_process_works(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One build at a time goes to the other process: the ones asked for meanwhile are not
    queued there, so the session's end makes them itself instead of waiting."""
    folders = []
    for name in ("exp-a", "exp-b", "exp-c"):
        experiment = write_experiment(pytester.path, name)
        results = pytester.path / "results"
        args = (str(experiment), "--runs", "2", "--results-dir", str(results), *OFFLINE)
        pytester.runpytest(*args, "-p", "no:cacheprovider").assert_outcomes(passed=2)
        folders.append(results / name)
    built_here: list[str] = []
    real_build = aggregate_build._build

    def recording_build(
        experiment_dir: Path, experiment_id: str, name: str, threads: int
    ) -> BuiltAggregates:
        built_here.append(experiment_id)
        return real_build(experiment_dir, experiment_id, name, threads)

    # The other process imports the module afresh: only this process's builds are recorded.
    monkeypatch.setattr(aggregate_build, "_build", recording_build)
    pipeline = AggregatePipeline()
    try:
        fingerprints = {folder.name: records_fingerprint(folder)[0] for folder in folders}
        for folder in folders:
            # Its process takes about a second to start: exp-a is still in it after these.
            pipeline.start(folder, folder.name, "a name")
        pipeline.build_waiting_here()
        assert built_here == ["exp-b", "exp-c"]
        for folder in folders:
            built = pipeline.take(folder.name, fingerprints[folder.name])
            assert built is not None
            assert built.rendered == real_build(folder, folder.name, "a name", 1).rendered
        assert built_here == ["exp-b", "exp-c"]  # exp-a came from the other process
    finally:
        pipeline.close()


def test_a_regenerate_builds_its_last_experiment_before_its_runs(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last experiment is built while the session starts; its runs change no record, so
    that build stands. A regenerate that rewrites records (a pass threshold given, which
    each record's settings then name) builds it again after its runs. Either way the files
    are those of an in-process build."""
    for name in ("exp-a", "exp-b"):
        write_experiment(pytester.path, name)
    results = pytester.path / "results"
    args = (str(pytester.path), "--runs", "3", "--results-dir", str(results), *OFFLINE)
    pytester.runpytest(*args, "-p", "no:cacheprovider").assert_outcomes(passed=6)
    in_process = derived_files(results)

    started: list[str] = []
    real_start = AggregatePipeline.start

    def recording_start(self: AggregatePipeline, *args: object, **kwargs: object) -> None:
        started.append(str(args[1]))
        real_start(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(aggregate_pipeline, "MIN_RUNS", 1)
    monkeypatch.setattr(AggregatePipeline, "start", recording_start)
    regenerate = (str(results), "--scylla-regenerate", "-p", "no:cacheprovider")
    pytester.runpytest(*regenerate).assert_outcomes(passed=6)
    # exp-b before any run; after their runs only exp-a (exp-b's build stood).
    assert started == ["exp-b", "exp-a"]
    assert derived_files(results) == in_process

    started.clear()
    # The early build is let finish before the first run (here the runs take less time than
    # the other process takes to start); then every record is rewritten under it.
    pytester.makeconftest(WAIT_FOR_THE_EARLY_BUILD)
    pytester.runpytest(*regenerate, "--pass-threshold", "0.1").assert_outcomes(passed=6)
    assert started == ["exp-b", "exp-a", "exp-b"]
    rebuilt = derived_files(results)
    assert rebuilt != in_process  # the reports name the new threshold
    monkeypatch.setattr(aggregate_pipeline, "MIN_RUNS", 10**9)  # the in-process reference
    pytester.runpytest(*regenerate, "--pass-threshold", "0.1").assert_outcomes(passed=6)
    assert derived_files(results) == rebuilt


class _DoneAtOnce:
    """A pool whose builds have ended when submit returns (as a short build may, when the
    session's thread is descheduled right after submitting it)."""

    def submit(self, function: Any, *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(function(*args))
        return future

    def shutdown(self, wait: bool, cancel_futures: bool) -> None:
        pass


def test_a_build_that_ends_before_its_callback_is_added_does_not_hang_the_session(
    pytester: pytest.Pytester,
) -> None:
    _, results = finished_runs(pytester, "exp-quick", 1)
    folder = results / "exp-quick"
    pipeline = AggregatePipeline()
    pipeline._pool = _DoneAtOnce()  # type: ignore[assignment]
    started = threading.Thread(
        target=pipeline.start, args=(folder, "exp-quick", "a name"), daemon=True
    )
    started.start()
    started.join(timeout=30)
    assert not started.is_alive(), "start() waited on its own lock"
    built = pipeline.take("exp-quick", records_fingerprint(folder)[0])
    assert built is not None
    assert built.rendered == build_aggregates(folder, "exp-quick", "a name").rendered

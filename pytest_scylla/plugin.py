"""pytest-scylla's entry point: options, hooks and wiring. The work lives in other modules."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_scylla import builtins, gc_freeze, hooks, replay
from pytest_scylla.artifacts import ARTIFACTS_ATTRIBUTE, pack_run
from pytest_scylla.budget import BudgetCheck, BudgetGuard
from pytest_scylla.ci_report import ExitPolicy, add_junit_properties
from pytest_scylla.collect import (
    EXPERIMENT_FILE,
    SESSION_KEY,
    ExperimentFile,
    RunItem,
    scylla_session,
)
from pytest_scylla.controller import (
    EXPERIMENT_FILE_ATTRIBUTE,
    FROM_DISK_PROPERTY,
    RECORD_ATTRIBUTE,
    RECORD_ON_DISK_ATTRIBUTE,
    RUN_KEY_ATTRIBUTE,
    ResultsCollector,
    preflight,
    targets_experiments,
)
from pytest_scylla.ordering import EagerScheduler, run_major_order
from pytest_scylla.progress import ProgressReporter
from pytest_scylla.recovery import (
    FOUND_RECORDS,
    SNAPSHOT_MARKER,
    FoundRecords,
    RecordedTier,
    ResultsFolder,
    import_upstream_arguments,
    is_results_folder,
    results_root_of,
    settings_from_records,
    targeted_folders,
)
from pytest_scylla.redact_reports import may_hold_secret, redact_report, report_redactor
from pytest_scylla.session import ScyllaSession
from pytest_scylla.session_plan import SessionPlan, can_rejudge, run_label
from pytest_scylla.settings import (
    ScyllaSettings,
    add_options,
    explicit_options,
    read_settings,
    split_swallowed_paths,
)
from pytest_scylla.settings_check import PlannedRun, read_planned
from pytest_scylla.signals import InterruptSignals
from pytest_scylla.spec.experiment import TIER_IDS
from pytest_scylla.terminal_stats import RunReportPruner
from pytest_scylla.testing.fixtures import fake_api  # noqa: F401  (a fixture for users' tests)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)
    pluginmanager.register(builtins, "scylla-builtins")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, args: list[str], parser: pytest.Parser
) -> None:
    """`--tiers T0 experiments/x` must not read the path as a tier: the last parse of `args`
    happens after this hook, and the paths found here reach the initial conftests too."""
    rewritten = split_swallowed_paths(args)
    if rewritten == args:
        return
    args[:] = rewritten
    early_config.known_args_namespace.file_or_dir = list(parser.parse_known_args(args).file_or_dir)


def is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "scylla: a pytest-scylla run item")
    for tier in TIER_IDS:
        config.addinivalue_line("markers", f"{tier}: runs of tier {tier}")
    try:
        settings = read_settings(config)
    except ValueError as error:
        raise pytest.UsageError(f"pytest-scylla: {error}") from None
    settings = _recovery_settings(config, settings)
    if settings.status:
        config.option.dist = "no"  # a status runs nothing: no workers to start
    config.stash[SESSION_KEY] = ScyllaSession(config=config, settings=settings)
    config.pluginmanager.register(CollectionErrorPolicy(config), "scylla-collection-errors")
    config.pluginmanager.register(BudgetCheck(settings), "scylla-budget-check")
    config.pluginmanager.register(replay, "scylla-replay")  # runs settled from disk
    config.pluginmanager.register(gc_freeze, "scylla-gc-freeze")
    config.pluginmanager.register(RunReportPruner(config), "scylla-run-report-pruner")
    if targets_experiments(config):
        config.pluginmanager.register(InterruptSignals(), "scylla-signals")
        if is_controller(config):  # xdist asks the controller for its scheduler
            config.pluginmanager.register(EagerScheduler(), "scylla-scheduler")
    if is_controller(config):
        # Before xdist starts its workers: they inherit the environment set up here.
        preflight(config, settings)
        config.pluginmanager.register(SessionPlan(config, settings), "scylla-plan")
        config.pluginmanager.register(BudgetGuard(config, settings), "scylla-budget")
        config.pluginmanager.register(ProgressReporter(config, settings), "scylla-progress")
        config.pluginmanager.register(ResultsCollector(config, settings), "scylla-results")
        if settings.fail_on is not None:
            config.pluginmanager.register(ExitPolicy(settings.fail_on), "scylla-exit-policy")


def _recovery_settings(config: pytest.Config, settings: ScyllaSettings) -> ScyllaSettings:
    """Regenerate, rejudge and status may be given a results folder instead of experiments;
    regenerate and rejudge take their settings from the records (every process alike)."""
    if not (settings.regenerate or settings.rejudge or settings.status):
        return settings
    if settings.regenerate:
        import_upstream_arguments(config, settings.results_dir)
    root = results_root_of(config.args)
    if root is not None:
        settings = settings.model_copy(update={"results_dir": root})
    # A status of a results folder shows a resume under the records' own settings.
    if settings.regenerate or settings.rejudge or root is not None:
        folders = targeted_folders(config.args, settings.results_dir)
        found = config.stash[FOUND_RECORDS] = FoundRecords()
        settings = settings_from_records(settings, explicit_options(config), folders, found)
    return settings


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """An experiment's folders (its repo with the task's own tests, solution/, expected/) are
    material for the runs, not tests of this session: `pytest experiments/X` collects only
    the experiment file."""
    if collection_path.is_dir() and (collection_path.parent / EXPERIMENT_FILE).is_file():
        return True
    # A results folder's run trees and its saved experiment are read by ResultsFolder; the
    # saved test.yaml is never an experiment to run.
    if collection_path.is_dir() and (
        is_results_folder(collection_path.parent) or (collection_path / SNAPSHOT_MARKER).is_file()
    ):
        return True
    return None


def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    settings = scylla_session(parent.config).settings
    if (settings.regenerate or settings.rejudge or settings.status) and is_results_folder(path):
        return ResultsFolder.from_parent(parent, path=path)
    return None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.name == EXPERIMENT_FILE:
        return ExperimentFile.from_parent(parent, path=file_path)
    return None


class CollectionErrorPolicy:
    """A malformed experiment fails its own collection, and the others still run.

    pytest stops a session at any collection error; we let it go on only while every
    collection error is a malformed experiment (works on xdist's controller too)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.user_continues = bool(config.option.continue_on_collection_errors)
        self.foreign_errors = 0

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if not report.failed:
            return
        text = str(report.longrepr)
        if not ("malformed experiment" in text or "malformed tier" in text):
            self.foreign_errors += 1
        self.config.option.continue_on_collection_errors = (
            self.user_continues or self.foreign_errors == 0
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _keep_max_subtests(config, items)
    _keep_rejudgeable(config, items)
    run_major_order(items)  # a tier's sub-tests progress together (ordering.py)


def _keep_rejudgeable(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A rejudge never starts an agent: a run with no finished agent output is left out."""
    settings = scylla_session(config).settings
    if settings.regenerate and not settings.status:
        # Regenerate rebuilds from records: a run with none has nothing to rebuild. (The
        # items of a results folder were collected from the records found there.)
        unrecorded = [
            item
            for item in items
            if isinstance(item, RunItem)
            and not isinstance(item.parent, RecordedTier)
            and not PlannedRun(item.experiment, item.subtest, item.run_number)
            .record_path(settings.results_dir)
            .is_file()
        ]
        if unrecorded:
            config.hook.pytest_deselected(items=unrecorded)
            left = set(map(id, unrecorded))
            items[:] = [item for item in items if id(item) not in left]
        return
    if not settings.rejudge or settings.status:
        return
    runs = [item for item in items if isinstance(item, RunItem)]
    planned = read_planned(
        [PlannedRun(item.experiment, item.subtest, item.run_number) for item in runs],
        settings.results_dir,
    )
    left_out = {
        id(item): run
        for item, (run, summary) in zip(runs, planned, strict=True)
        if not can_rejudge(summary)
    }
    if not left_out:
        return
    plan = config.pluginmanager.get_plugin("scylla-plan")
    if isinstance(plan, SessionPlan):
        plan.not_judged = sorted(run_label(run) for run in left_out.values())
    config.hook.pytest_deselected(items=[item for item in items if id(item) in left_out])
    items[:] = [item for item in items if id(item) not in left_out]


def _keep_max_subtests(config: pytest.Config, items: list[pytest.Item]) -> None:
    limit = scylla_session(config).settings.max_subtests
    if limit is None:
        return
    kept_subtests: dict[tuple[str, str], list[str]] = {}
    selected: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        if not isinstance(item, RunItem):
            selected.append(item)
            continue
        chosen = kept_subtests.setdefault((item.experiment.id, item.subtest.tier), [])
        if item.subtest.id not in chosen and len(chosen) < limit:
            chosen.append(item.subtest.id)
        (selected if item.subtest.id in chosen else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


# tryfirst: the outermost wrapper, so every other plugin's additions (pytest-json-report's
# streams and log) are in the report before it is redacted, and nothing sees it raw after.
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    report = yield
    if not isinstance(item, RunItem):
        return report
    if call.when == "setup" and item.record is not None:
        # The record rides in the report, so a worker on another host needs no shared disk;
        # one reused from disk as its file's text, which the controller compares, not parses.
        record = item.record
        text = item.record_text
        if (
            text is not None
            and is_controller(item.config)
            and not may_hold_secret(report_redactor(item.config), text)
        ):
            # Read from this process's results folder as it is: nothing to carry. (One that
            # holds a secret known since takes the full path: redacted and written again.)
            setattr(report, RECORD_ON_DISK_ATTRIBUTE, True)
        else:
            setattr(report, RECORD_ATTRIBUTE, item.record_text or record.model_dump_json())
        setattr(report, EXPERIMENT_FILE_ATTRIBUTE, str(item.experiment.test_file))
        run_key = [record.experiment_id, record.tier, record.subtest, record.run]
        setattr(report, RUN_KEY_ATTRIBUTE, run_key)
        report.user_properties.append((FROM_DISK_PROPERTY, item.from_disk))
        # Before the teardown report is made (junitxml writes its properties) and redacted.
        add_junit_properties(item, item.record)
    if report.failed and call.excinfo is not None and call.when != "call":
        # pytest asks repr_failure only about the call stage; a run's work is in setup.
        report.longrepr = item.repr_failure(call.excinfo)
    redacted = redact_report(item.config, item, report, json_attributes=(RECORD_ATTRIBUTE,))
    if call.when == "setup" and item.record is not None and not is_controller(item.config):
        # After redaction: the run wrote its files redacted, and a compressed payload is
        # neither readable by nor safe from a text redactor (artifacts.py).
        packed = pack_run(item.run_dir)
        if packed is not None:
            setattr(redacted, ARTIFACTS_ATTRIBUTE, packed.payload)
    if call.when == "teardown":
        # The item's last report is made. Records kept by 10,000 finished items would make
        # every garbage collection (pytest forces five at the end) walk millions of objects.
        item.record = item.record_text = None
    return redacted


@pytest.hookimpl(optionalhook=True)
def pytest_json_runtest_metadata(item: pytest.Item, call: pytest.CallInfo[None]) -> dict[str, Any]:
    if not isinstance(item, RunItem) or item.record is None:
        return {}
    record = item.record
    return {
        "scylla": {
            "experiment": record.experiment_id,
            "tier": record.tier,
            "subtest": record.subtest,
            "run": record.run,
            "outcome": record.outcome,
            "score": record.result.score if record.result else None,
            "grade": record.result.grade if record.result else None,
            "agent_cost_usd": record.agent_cost_usd,
            "judge_cost_usd": record.judge_cost_usd,
            "from_disk": item.from_disk,
        }
    }


_CRASH_RESCHEDULED: set[str] = set()


@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem: str, report: pytest.TestReport, sched: Any) -> None:
    """A worker died under a run: put that run back in the queue once, not only via --lf.
    Finished runs are safe on disk already; the rescheduled one resumes from its last step."""
    if EXPERIMENT_FILE not in crashitem or crashitem in _CRASH_RESCHEDULED:
        return
    try:
        sched.mark_test_pending(crashitem)
    except NotImplementedError:  # schedulers such as loadscope cannot reschedule
        return
    _CRASH_RESCHEDULED.add(crashitem)
    report.outcome = "rerun"  # type: ignore[assignment]  # xdist's word for "scheduled again"

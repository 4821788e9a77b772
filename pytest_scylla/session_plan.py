"""The controller's look at the selected runs before the first one starts.

After collection it stops a session whose options differ from the records on disk, prints
`--scylla-status` instead of running anything, saves each experiment's judging files beside
its results (so recovery needs only the results folder), and names the runs a rejudge
left out. Registered on the controller only; state lives on the instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_scylla.collect import RunItem
from pytest_scylla.record_summary import RecordSummary
from pytest_scylla.recovery import SNAPSHOT_DIR, snapshot_experiment
from pytest_scylla.settings import ScyllaSettings
from pytest_scylla.settings_check import (
    PlannedRun,
    find_conflict,
    planned_from_node_ids,
    read_planned,
    read_planned_settings,
)
from pytest_scylla.spec.experiment import ExperimentSpec
from pytest_scylla.spec.loading import parse_model
from pytest_scylla.status import build_status, render_status

# The attribute a test report carries with its experiment file (controller.EXPERIMENT_FILE_ATTRIBUTE).
EXPERIMENT_FILE_ATTRIBUTE = "scylla_experiment_file"


class SessionPlan:
    def __init__(self, config: pytest.Config, settings: ScyllaSettings) -> None:
        self.config = config
        self.settings = settings
        self.status_lines: list[str] = []
        self.not_judged: list[str] = []  # rejudge: runs with no finished agent output
        self.snapshots_done: set[str] = set()
        self.xdist_checked = False

    @property
    def checks_settings(self) -> bool:
        """A plain run or resume: recovery takes its settings from the records instead."""
        settings = self.settings
        return not (settings.fresh or settings.regenerate or settings.rejudge)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self.config.option.collectonly:
            return
        planned_runs = [
            PlannedRun(item.experiment, item.subtest, item.run_number)
            for item in session.items
            if isinstance(item, RunItem)
        ]
        if not planned_runs and not self.settings.status:
            return
        results_dir = self.settings.results_dir
        if self.settings.status:
            planned = read_planned(planned_runs, results_dir)
            conflict = find_conflict(planned, self.settings) if self.checks_settings else None
            statuses = build_status(planned, self.settings)
            self.status_lines = render_status(
                statuses, self.settings, conflict, self.settings.results_dir
            )
            return
        if self.checks_settings:
            conflict = find_conflict(
                read_planned_settings(planned_runs, results_dir), self.settings
            )
            if conflict is not None:
                raise pytest.UsageError(conflict.message(results_dir))
        for run in planned_runs:
            self._snapshot(run.experiment.test_file, run.experiment.spec)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: Sequence[str]) -> None:
        """With xdist the controller collects nothing: the first worker's ids (every worker
        collects the same) are checked before xdist schedules any of them."""
        if self.xdist_checked or not self.checks_settings or self.settings.status:
            return
        self.xdist_checked = True
        planned = planned_from_node_ids(ids, self.config.rootpath, self.settings.tiers_dir)
        results_dir = self.settings.results_dir
        conflict = find_conflict(read_planned_settings(planned, results_dir), self.settings)
        if conflict is not None:
            raise pytest.UsageError(conflict.message(results_dir))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        if self.settings.status:
            return True  # nothing runs: the status is printed in the summary
        return None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # With xdist the controller collects nothing: the first record of an experiment
        # names its file, and the snapshot is taken from there.
        test_file = getattr(report, EXPERIMENT_FILE_ATTRIBUTE, None)
        if test_file and test_file not in self.snapshots_done:
            from pytest_scylla.artifacts import controller_experiment_file

            path = controller_experiment_file(Path(test_file), self.config.args)
            try:
                spec = parse_model(path, ExperimentSpec)
            except Exception:  # the run is recorded either way; only the snapshot is lost
                self.snapshots_done.add(test_file)
                return
            self._snapshot(path, spec)

    def _snapshot(self, test_file: Path, spec: ExperimentSpec) -> None:
        key = str(test_file)
        if key in self.snapshots_done:
            return
        self.snapshots_done.add(key)
        if test_file.parent.name == SNAPSHOT_DIR:
            return  # collected from a results folder: this is the snapshot
        snapshot_experiment(test_file, spec, self.settings.results_dir)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.settings.status and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            session.exitstatus = pytest.ExitCode.OK  # an empty plan is a status too

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.status_lines:
            terminalreporter.section("pytest-scylla status")
            for line in self.status_lines:
                terminalreporter.write_line(line)
        if self.not_judged:
            terminalreporter.write_line(
                f"not rejudged (agent missing or errored; a plain resume runs them): "
                f"{', '.join(self.not_judged)}"
            )


def can_rejudge(summary: RecordSummary | None) -> bool:
    return summary is not None and summary.agent_phase_done


def run_label(run: PlannedRun) -> str:
    return f"{run.experiment.id} {run.subtest.tier}/{run.subtest.id} run-{run.run_number:02d}"

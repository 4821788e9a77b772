"""Budget guard: once a session's spend reaches `--max-cost` (or an experiment's
`max_cost_usd` from its config.yaml), the runs not yet started are skipped, with the reason.

Spend is counted on the controller as reports arrive (agents and judges of the runs this
session executed; a run read from disk cost nothing now, a rejudge pays no agent). The
controller has no way into a worker between two items but the disk, so it writes a stop
file in its results folder, and every process checks it before each run: local `-n`
workers and `popen` workers given an absolute `--results-dir` (or any shared disk) skip
the rest, each run reported as skipped with the reason. A worker that cannot see the file
(another host with its own disk) keeps running; once more new runs arrive after the stop
than twice the workers (each may finish the run it had started, and one whose setup raced
the write), the controller stops the
xdist session instead (`DSession.shouldstop`, what `--maxfail` uses): the runs not started
are then not reported at all, and the summary says how many were not run.
Finished runs are kept and aggregated either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from pytest_scylla.records import RunRecord
from pytest_scylla.settings import ScyllaSettings

STOP_FILE = ".scylla-budget-stop.json"
SKIP_PREFIX = "budget reached"


class BudgetStop(BaseModel):
    """The stop file: every experiment stops (`experiments` None) or only those listed."""

    reason: str
    experiments: list[str] | None = None

    def applies_to(self, experiment_id: str) -> bool:
        return self.experiments is None or experiment_id in self.experiments


def session_spend(record: RunRecord, from_disk: bool, rejudge: bool) -> tuple[float, float]:
    """(agent, judges) this session paid for the run. An errored run resumed at judging
    counts its earlier agent again: an over-count, the safe side for a budget."""
    if from_disk:
        return 0.0, 0.0
    agent = 0.0 if rejudge else record.agent_cost_usd
    return agent, record.judge_cost_usd


def read_stop(results_dir: Path) -> BudgetStop | None:
    path = results_dir / STOP_FILE
    try:
        return BudgetStop.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError):
        return None  # torn mid-write: the next item reads it whole (atomic writes)


class BudgetCheck:
    """Every process: skip a run that a budget stop applies to, before any of its work."""

    def __init__(self, settings: ScyllaSettings) -> None:
        self.results_dir = settings.results_dir
        # A regenerate rescores records and a status runs nothing: neither spends.
        self.spends = not (settings.regenerate or settings.status)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        from pytest_scylla.collect import RunItem

        if not self.spends or not isinstance(item, RunItem) or item.settled is not None:
            return  # a run reported from disk as it is costs nothing: never skipped
        stop = read_stop(self.results_dir)
        if stop is not None and stop.applies_to(item.experiment.id):
            pytest.skip(f"{SKIP_PREFIX}: {stop.reason}")


class BudgetGuard:
    """Controller only: counts the spend, decides the stop, tells the workers, reports."""

    def __init__(self, config: pytest.Config, settings: ScyllaSettings) -> None:
        self.config = config
        self.settings = settings
        self.max_cost = settings.max_cost
        self.agent_usd = 0.0
        self.judge_usd = 0.0
        self.by_experiment: dict[str, float] = {}
        self.limits: dict[str, float | None] = {}  # experiment id -> config.yaml max_cost_usd
        self.stop: BudgetStop | None = None
        self.skipped: list[str] = []
        self.new_after_stop = 0
        self.nodes: set[str] = set()

    @property
    def spent(self) -> float:
        return self.agent_usd + self.judge_usd

    @property
    def stop_file(self) -> Path:
        return self.settings.results_dir / STOP_FILE

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # The results lock is ours: a stop file here is an earlier session's.
        self.stop_file.unlink(missing_ok=True)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.stop_file.unlink(missing_ok=True)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from pytest_scylla.controller import (
            EXPERIMENT_FILE_ATTRIBUTE,
            RECORD_ATTRIBUTE,
            carries_run,
            reported_experiment_id,
            reported_from_disk,
        )

        node = getattr(report, "node", None)
        if node is not None:
            self.nodes.add(str(getattr(getattr(node, "gateway", None), "id", node)))
        if report.skipped and SKIP_PREFIX in str(report.longrepr):
            self.skipped.append(report.nodeid)
            return
        if not carries_run(report):
            return
        payload = getattr(report, RECORD_ATTRIBUTE, None)
        from_disk = reported_from_disk(report)
        if from_disk or payload is None:  # cost this session nothing: not parsed
            agent = judges = 0.0
            experiment = reported_experiment_id(report) or ""
        else:
            record = RunRecord.model_validate_json(payload)
            agent, judges = session_spend(record, from_disk, self.settings.rejudge)
            experiment = record.experiment_id
        self.agent_usd += agent
        self.judge_usd += judges
        self.by_experiment[experiment] = self.by_experiment.get(experiment, 0.0) + agent + judges
        if self.stop is not None and not from_disk:
            self.new_after_stop += 1
            self._stop_xdist_if_unheard()
        self._check(experiment, getattr(report, EXPERIMENT_FILE_ATTRIBUTE, ""))

    def _check(self, experiment: str, test_file: str) -> None:
        if self.stop is not None and self.stop.experiments is None:
            return
        if self.max_cost is not None and self.spent >= self.max_cost:
            self._set_stop(
                BudgetStop(reason=f"spent ${self.spent:.4f} of --max-cost ${self.max_cost:.4f}")
            )
            return
        limit = self._experiment_limit(experiment, test_file)
        stopped = (self.stop.experiments or []) if self.stop else []
        if (
            limit is not None
            and self.by_experiment[experiment] >= limit
            and experiment not in stopped
        ):
            self._set_stop(
                BudgetStop(
                    reason=f"{experiment} spent ${self.by_experiment[experiment]:.4f} of its "
                    f"max_cost_usd ${limit:.4f} (config.yaml)",
                    experiments=sorted({*stopped, experiment}),
                )
            )

    def _set_stop(self, stop: BudgetStop) -> None:
        from pytest_scylla.records import atomic_write_json

        self.stop = stop
        self.new_after_stop = 0
        atomic_write_json(self.stop_file, stop)

    def _stop_xdist_if_unheard(self) -> None:
        """More new runs since the stop than the workers could have started before they
        could read the file (the run in flight, and one whose setup raced the write): some
        worker cannot see it."""
        dsession = self.config.pluginmanager.get_plugin("dsession")
        if dsession is None or self.stop is None:
            return
        specs = getattr(getattr(dsession, "nodemanager", None), "specs", None) or []
        workers = max(1, len(self.nodes), len(specs))
        if self.new_after_stop > 2 * workers and not dsession.shouldstop:
            dsession.shouldstop = f"{SKIP_PREFIX}: {self.stop.reason}"

    def _experiment_limit(self, experiment: str, test_file: str) -> float | None:
        if self.settings.fake_api is not None:
            # A dry run against the scripted API pays nothing: config.yaml's max_cost_usd is a
            # limit on real money, and its list-price "costs" stopped the README's main job
            # halfway. An explicit --max-cost still applies.
            return None
        if experiment in self.limits:
            return self.limits[experiment]
        from pytest_scylla.collect import scylla_session

        loaded = scylla_session(self.config).experiments.get(experiment)
        limit = loaded.config.max_cost_usd if loaded is not None else _config_limit(test_file)
        self.limits[experiment] = limit
        return limit

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.max_cost is None and self.stop is None:
            return
        limit = f" of ${self.max_cost:.4f}" if self.max_cost is not None else ""
        terminalreporter.write_line(
            f"budget: spent ${self.spent:.4f}{limit} this session "
            f"(agents ${self.agent_usd:.4f}, judges ${self.judge_usd:.4f})"
        )
        if self.stop is None:
            return
        terminalreporter.write_line(f"budget stop: {self.stop.reason}")
        if self.skipped:
            terminalreporter.write_line(
                f"not run (budget): {len(self.skipped)} runs, skipped: "
                + ", ".join(self.skipped[:5])
                + (f" and {len(self.skipped) - 5} more" if len(self.skipped) > 5 else "")
            )
        dsession = self.config.pluginmanager.get_plugin("dsession")
        if dsession is not None and dsession.shouldstop:
            terminalreporter.write_line(
                "not run (budget): the runs no worker had started (a worker could not see "
                f"{self.stop_file}, so the session was stopped); a later session runs them"
            )


def _config_limit(test_file: str) -> float | None:
    if not test_file:
        return None
    from pytest_scylla.spec.experiment import ExperimentConfig
    from pytest_scylla.spec.loading import parse_model

    config_file = Path(test_file).parent / "config.yaml"
    try:
        return parse_model(config_file, ExperimentConfig).max_cost_usd
    except Exception:  # no config.yaml here (another host's path): no experiment limit known
        return None

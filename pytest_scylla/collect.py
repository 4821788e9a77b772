"""Experiment -> tier -> run items: `test.yaml::T0::00-empty[run-03]`.

A run's real work happens in `setup()`: a harness failure there is reported by pytest as
an *error*, while `runtest()` only compares the judged score with the threshold, so a low
score is a *failure*. That is exactly the passed / failed / error split users expect.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from pytest_scylla.redact_reports import report_redactor
from pytest_scylla.spec.errors import SpecError
from pytest_scylla.spec.load_experiment import Experiment, load_experiment

if TYPE_CHECKING:
    from _pytest._code.code import TerminalRepr, Traceback

    from pytest_scylla.record_head import RunHead
    from pytest_scylla.records import RunRecord
    from pytest_scylla.run.plan import RunOutcome, RunPlan
    from pytest_scylla.session import ScyllaSession

EXPERIMENT_FILE = "test.yaml"
# --tb styles that ask for a harness error's whole traceback (others get one line).
TRACEBACK_STYLES = ("long", "native")
MAX_MESSAGE_CHARS = 500  # of an error's one-line summary


class RunErrored(Exception):
    """The harness could not finish the run (reported as a pytest error)."""


class RunFailed(AssertionError):
    """The run was judged and scored below the pass threshold."""


class ExperimentFile(pytest.File):
    def collect(self) -> Iterator[TierCollector]:
        session = scylla_session(self.config)
        try:
            experiment = load_experiment(self.path, session.settings.tiers_dir)
        except SpecError:
            raise
        except Exception as error:  # a bug or an unreadable file still names the file
            raise SpecError(self.path, [("", f"{type(error).__name__}: {error}")]) from error
        session.experiments[experiment.id] = experiment
        wanted = session.settings.tiers
        for tier in experiment.spec.tiers:
            if wanted is None or tier in wanted:
                yield TierCollector.from_parent(self, name=tier, experiment=experiment)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, SpecError):
            return f"malformed experiment:\n{excinfo.value.render()}"
        return str(super().repr_failure(excinfo))


class TierCollector(pytest.Collector):
    def __init__(self, *, experiment: Experiment, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.experiment = experiment
        self.add_marker(getattr(pytest.mark, self.name))

    def collect(self) -> Iterator[RunItem]:
        settings = scylla_session(self.config).settings
        subtests = self.experiment.catalogue.subtests(self.name)
        for subtest in subtests:
            for run_number in range(1, settings.runs + 1):
                yield RunItem.for_run(self, self.experiment, subtest, run_number)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, SpecError):
            return f"malformed tier {self.name}:\n{excinfo.value.render()}"
        return str(super().repr_failure(excinfo))


# Looked up once: `pytest.mark.scylla` checks the marker name on every access (about
# 0.4 s over a study's 50,000 items, profiled).
_SCYLLA_MARK = pytest.mark.scylla


class RunItem(pytest.Item):
    def __init__(
        self, *, experiment: Experiment, subtest: Any, run_number: int, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.experiment = experiment
        self.subtest = subtest
        self.run_number = run_number
        # A head only for a run reported from disk as it is (run/plan.py RunOutcome).
        self.record: RunRecord | RunHead | None = None
        self.from_disk = False
        self.record_text: str | None = None  # the file's text of a record reused as it is
        # What the run came to, known before its setup (replay.py: a run reported from disk).
        self.settled: RunOutcome | None = None
        self.add_marker(_SCYLLA_MARK)
        self.keywords[subtest.id] = True
        self.keywords[f"run-{run_number:02d}"] = True

    @classmethod
    def for_run(
        cls, parent: pytest.Collector, experiment: Experiment, subtest: Any, run_number: int
    ) -> RunItem:
        """The item of one run: `<tier collector>::<sub-test>[run-NN]`."""
        name = f"{subtest.id}[run-{run_number:02d}]"
        return cls.from_parent(
            parent,
            name=name,
            # The same id pytest would build, given as a string: pytest 9.2 parses a string id
            # into names and [params] the way it parses the ids it reads back from its --lf
            # cache, while a child id keeps "[run-NN]" in the name, and the two never compare
            # equal (pytest-dev/pytest#15045).
            nodeid=f"{parent.nodeid}::{name}",
            experiment=experiment,
            subtest=subtest,
            run_number=run_number,
        )

    @property
    def plan(self) -> RunPlan:
        from pytest_scylla.run.plan import RunPlan

        return RunPlan(self.experiment, self.subtest, self.run_number, self.nodeid)

    def setup(self) -> None:
        outcome = self.settled or scylla_session(self.config).executor().execute(self.plan)
        self.take_outcome(outcome)

    def take_outcome(self, outcome: RunOutcome) -> None:
        """What the run came to, as the item's setup stage: an error record is a pytest
        error, no record to regenerate from a skip."""
        session = scylla_session(self.config)
        for note in outcome.notes:
            session.warn(note)
        self.record = outcome.record
        self.from_disk = outcome.from_disk
        self.record_text = outcome.record_text
        if outcome.record is None:
            pytest.skip("no run record on disk to regenerate from")
        if outcome.record.outcome == "error":
            error = outcome.record.error
            where = f"{error.stage}: {error.message}" if error else "unknown error"
            raise RunErrored(where)

    def runtest(self) -> None:
        assert self.record is not None and self.record.result is not None
        result = self.record.result
        if not result.passed:
            raise RunFailed(
                f"score {result.score:.3f} (grade {result.grade}) below pass threshold {result.pass_threshold:.2f}"
            )

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> str | TerminalRepr:
        """One line and where the run's files are; a harness bug's full traceback only with
        --tb=long (or native, or --full-trace). Used for setup errors too (by the plugin's
        makereport hook: pytest itself never asks repr_failure about setup)."""
        error = excinfo.value
        expected = isinstance(error, RunFailed | RunErrored)
        if not expected and (
            self.config.getoption("fulltrace", False)
            or self.config.getoption("tbstyle", "auto") in TRACEBACK_STYLES
        ):
            # pytest passes no style for setup; the user's --tb decides (native included).
            return super().repr_failure(excinfo, style or self.config.getoption("tbstyle"))
        # Redacted before it is cut short: a cut secret would no longer be recognised.
        message = " ".join(report_redactor(self.config)(str(error)).split())
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS] + " ..."
        # The first line is what pytest's short summary shows after the node id.
        lines = [message if expected else f"{type(error).__name__}: {message}"]
        logs = self.run_dir
        if logs.is_dir():
            lines.append(f"  run files: {logs}")
        if not expected:
            lines.append("  (a harness error: --tb=long shows the traceback)")
        return "\n".join(lines)

    def _repr_failure_py(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> TerminalRepr:
        """pytest describes a setup failure with this, and the plugin's makereport hook puts
        repr_failure's text in its place; for a run's own error (an errored run from disk)
        the traceback pytest would render first, parsing each frame's source, cost 15 ms an
        error (profiled: 300 errored runs of a regenerate, 4 s)."""
        if isinstance(excinfo.value, RunFailed | RunErrored):
            # A text, as repr_failure gives pytest for the call stage: reports accept both.
            return cast("TerminalRepr", self.repr_failure(excinfo, style))
        return super()._repr_failure_py(excinfo, style)

    def _traceback_filter(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Traceback:
        """The traceback from this item's own setup()/runtest() on, as pytest shows a test
        function's: the frames of pytest's runner above say nothing about a run."""
        traceback = excinfo.traceback
        return traceback.cut(path=Path(__file__)).filter(excinfo)

    @property
    def run_dir(self) -> Path:
        from pytest_scylla.records import run_dir

        return run_dir(
            scylla_session(self.config).settings.results_dir,
            self.experiment.id,
            self.subtest.tier,
            self.subtest.id,
            self.run_number,
        )

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return (
            self.path,
            None,
            f"{self.experiment.id} {self.subtest.tier}/{self.subtest.id} run {self.run_number}",
        )


def scylla_session(config: pytest.Config) -> ScyllaSession:
    return config.stash[SESSION_KEY]


SESSION_KEY: pytest.StashKey[ScyllaSession] = pytest.StashKey()

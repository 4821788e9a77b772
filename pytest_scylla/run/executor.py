"""One run, from the decision to the saved record; the run's exception boundary.

Every exception of a run becomes an error record with a one-line redacted message (the
redacted traceback goes to the run folder's `error.log`), so a bug fails one run, not the
session. Ctrl-C, SIGTERM and SIGHUP (raised as KeyboardInterrupt, see signals.py) record the
run in flight as interrupted, with whatever it finished, and still stop the session.
"""

from __future__ import annotations

import datetime as dt
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_scylla.records import (
    RUN_RECORD_FILE,
    DamagedRecord,
    RunError,
    RunRecord,
    atomic_write_text,
    dump_record,
    remove_unfinished_writes,
)
from pytest_scylla.results_layout import (
    ATTEMPTS_DIR,
    ERROR_LOG,
    KEPT_WORKSPACE_DIR,
    read_run_head,
    read_run_record,
)
from pytest_scylla.run.plan import RunOutcome, RunPlan
from pytest_scylla.run.resume import archive_attempt, decide
from pytest_scylla.run_settings import run_settings_for, with_judging
from pytest_scylla.settings import ScyllaSettings

if TYPE_CHECKING:
    from pytest_scylla.record_head import RunHead
    from pytest_scylla.run.services import SessionServices

# The phases (agent, judges, rebuild, regenerate) and what they need (sandboxes, git, the
# workspace) are imported where a run first needs them: every xdist worker and every
# resume imports this module, and a run reported from disk needs none of them (a tenth of
# a second of each process's start, measured with -X importtime).


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class RunExecutor:
    def __init__(
        self,
        services: SessionServices | Callable[[], SessionServices],
        settings: ScyllaSettings | None = None,
    ) -> None:
        """`services`, or what makes them on first need with the session's `settings`."""
        if not callable(services):  # the services themselves (a dataclass, not callable)
            self._services: SessionServices | None = services
            self.settings = services.settings
        else:
            if settings is None:
                raise TypeError("RunExecutor needs the settings with a services factory")
            self._services = None
            self._make_services = services
            self.settings = settings

    @property
    def services(self) -> SessionServices:
        """Made on first need: a run reported from disk needs no sandbox, agent or judge,
        and making them (the anthropic SDK's import, the sandbox probe) costs a second."""
        if self._services is None:
            self._services = self._make_services()
        return self._services

    def reported_as_is(self, plan: RunPlan, *, sound_on_disk: bool = False) -> RunOutcome | None:
        """The outcome `execute` would return for a finished run it reports from disk as it
        is (nothing to run, rebuild, note or regenerate); None for any other run.

        `sound_on_disk`: the caller knows the record file was read in full and found sound
        since it was last written, so its head (record_head.py) is enough to report it.
        """
        if self.settings.regenerate or self.settings.rejudge:
            return None
        record_file = plan.run_dir(self.settings.results_dir) / RUN_RECORD_FILE
        head = read_run_head(record_file, plan.key) if sound_on_disk else None
        record: RunRecord | RunHead | None
        text: str | None
        if head is not None:
            record, text = head.head, head.text
        else:
            try:
                stored = read_run_record(record_file, plan.key)
            except DamagedRecord:
                return None  # execute names it and rebuilds what it can
            record, text = stored.record, stored.text
        if record is None or decide(record, self.settings) != "reuse":
            return None
        return RunOutcome(record, from_disk=True, record_text=text)

    def execute(self, plan: RunPlan) -> RunOutcome:
        run_path = plan.run_dir(self.settings.results_dir)
        notes: list[str] = []
        stored_text: str | None = None  # the file's text, when it says exactly `existing`
        try:
            stored = read_run_record(run_path / RUN_RECORD_FILE, plan.key)
        except DamagedRecord as damaged:
            notes.append(str(damaged))
            existing = None
            damaged_file = True
        else:
            existing, stored_text = stored.record, stored.text
            damaged_file = False
        if existing is None:
            from pytest_scylla.run.rebuild import rebuild_record

            try:
                existing = rebuild_record(self.services.agent, self.settings, plan, run_path)
            except Exception as error:  # whatever is on disk, the run goes on without it
                notes.append(f"{run_path}: saved output not usable ({self._one_line(error)})")
            if existing is not None:
                what = "damaged" if damaged_file else "missing"
                notes.append(
                    f"{run_path / RUN_RECORD_FILE}: {what}; rebuilt from the saved "
                    f"{', '.join(existing.rebuilt_from)}"
                )
                self._keep_aside(run_path, damaged_file)
                if not self.settings.regenerate:  # regenerate writes it itself
                    atomic_write_text(run_path / RUN_RECORD_FILE, dump_record(existing))
        if self.settings.regenerate:
            from pytest_scylla.run.regenerate import regenerate

            try:
                return regenerate(self.services, plan, existing, run_path, notes, stored_text)
            except Exception as error:  # the record stays as it was on disk
                notes.append(f"{run_path}: not regenerated ({self._one_line(error)})")
                return RunOutcome(existing, from_disk=True, notes=notes)
        decision = decide(existing, self.settings)
        if decision == "agent" and self.settings.rejudge:
            # A rejudge never starts an agent: a run without finished agent work stays as is.
            notes.append(f"{run_path}: no finished agent work to judge; left as it is")
            return RunOutcome(existing, from_disk=True, notes=notes)
        if decision == "reuse":
            assert existing is not None
            # The text goes on as it is: nobody parses and dumps a finished record again.
            return RunOutcome(existing, from_disk=True, notes=notes, record_text=stored_text)
        # This session's lock makes it the folder's only writer: a temporary file of an
        # atomic write there was left by a killed session, before its run is executed again.
        # (Not in the kept workspace: the agent names those files, any way it likes.)
        if run_path.is_dir():
            remove_unfinished_writes(run_path, keep={ATTEMPTS_DIR, KEPT_WORKSPACE_DIR})
        if decision == "judge":
            assert existing is not None
            record = existing.model_copy(deep=True)
            rejudge = self.settings.rejudge and existing.stage == "judged"
            self._guarded(run_path, record, lambda: self._judge(plan, run_path, record, rejudge))
        else:
            record = self._new_attempt(plan, run_path, existing)
            self._guarded(run_path, record, lambda: self._attempt(plan, run_path, record))
        return RunOutcome(record, notes=notes)

    # -- the phases -----------------------------------------------------------------------
    def _new_attempt(self, plan: RunPlan, run_path: Path, previous: RunRecord | None) -> RunRecord:
        attempts = archive_attempt(run_path, previous)
        started = now_iso()
        return RunRecord(
            experiment_id=plan.experiment.id,
            tier=plan.subtest.tier,
            subtest=plan.subtest.id,
            run=plan.run_number,
            node_id=plan.node_id,
            agent_name=self.services.agent.name,
            model=self.settings.model if self.services.agent.name == "claude-code" else None,
            judge_mode=self.settings.judge_mode,
            judge_models=self.settings.judge_models,
            outcome="error",
            fixture_sha256=plan.experiment.fixture_hash,
            started_at=started,
            finished_at=started,
            stage="started",
            attempts=attempts,
            replaced_judged_run=previous is not None
            and (previous.replaced_judged_run or previous.stage == "judged"),
            settings=run_settings_for(self.settings, plan.experiment, plan.subtest),
        )

    def _attempt(self, plan: RunPlan, run_path: Path, record: RunRecord) -> None:
        from pytest_scylla.run.agent_phase import run_agent_phase
        from pytest_scylla.sandbox.base import SandboxError
        from pytest_scylla.workspace import WorkspaceError

        try:
            run_agent_phase(self.services, plan, run_path, record)
        except (WorkspaceError, SandboxError, OSError) as error:
            record.error = RunError(
                stage="sandbox" if isinstance(error, SandboxError) else "workspace",
                message=self._one_line(error),
            )
            return
        if record.stage != "agent-done":
            reason = record.agent.error_reason if record.agent else None
            record.error = RunError(stage="agent", message=reason or "the agent did not finish")
            return
        # The agent's work is on disk before any judge is paid: a crash or Ctrl-C from here
        # on resumes with judging only.
        record.error = RunError(stage="judge", message="judging not finished")
        record.finished_at = now_iso()
        self._save(run_path, record)
        self._judge(plan, run_path, record, rejudge=False)

    def _judge(self, plan: RunPlan, run_path: Path, record: RunRecord, rejudge: bool) -> None:
        record.stage = "agent-done"  # judging is what is left, until it succeeds
        if record.settings is None:
            record.settings = run_settings_for(self.settings, plan.experiment, plan.subtest)
        elif self.settings.rejudge:
            wanted = run_settings_for(self.settings, plan.experiment, plan.subtest)
            record.settings = with_judging(record.settings, wanted)
        record.judge_mode = self.settings.judge_mode
        record.judge_models = self.settings.judge_models
        from pytest_scylla.run.judge_phase import run_judge_phase

        run_judge_phase(self.services, plan, run_path, record, rejudge=rejudge)

    # -- the boundary ---------------------------------------------------------------------
    def _guarded(self, run_path: Path, record: RunRecord, work: Callable[[], None]) -> None:
        try:
            work()
        except KeyboardInterrupt:
            where = "while judging" if record.stage != "started" else "during the agent phase"
            record.error = RunError(stage="interrupted", message=f"interrupted {where}")
            self._finish(run_path, record)
            raise
        except Exception as error:  # the boundary: one run's bug must not end the session
            record.error = RunError(stage="harness", message=self._one_line(error))
            trace = "".join(traceback.format_exception(error))
            atomic_write_text(run_path / ERROR_LOG, self.services.redactor(trace))
        self._finish(run_path, record)

    def _finish(self, run_path: Path, record: RunRecord) -> None:
        from pytest_scylla.run.judge_phase import finalize_outcome

        record.finished_at = now_iso()
        finalize_outcome(record)
        self._save(run_path, record)

    @staticmethod
    def _save(run_path: Path, record: RunRecord) -> None:
        atomic_write_text(run_path / RUN_RECORD_FILE, dump_record(record))

    def _one_line(self, error: BaseException) -> str:
        text = f"{error.__class__.__name__}: {error}" if str(error) else error.__class__.__name__
        return self.services.redactor(" ".join(text.split()))[:500]

    @staticmethod
    def _keep_aside(run_path: Path, damaged: bool) -> None:
        """A damaged record is kept next to its replacement, never deleted."""
        path = run_path / RUN_RECORD_FILE
        if not damaged or not (path.exists() or path.is_symlink()):
            return
        aside = path.with_name(f"{RUN_RECORD_FILE}.damaged")
        counter = 1
        while aside.exists():
            aside = path.with_name(f"{RUN_RECORD_FILE}.damaged-{counter}")
            counter += 1
        path.rename(aside)

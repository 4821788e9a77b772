"""Live progress of a study: runs done of all, passed / failed / errors, spend, ETA.

pytest's own progress counts items; a study of thousands of runs over hours also wants its
spend and an end time. One line, from the controller (it counts reports as they arrive, so
it works under xdist), every `interval_s` seconds or every tenth of the runs, whichever
comes first, and once at the end. A plain line rather than a redrawn status line: it reads
the same on a terminal and in a CI log, and never fights pytest's own dots. Quiet with -q.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from pytest_scylla.budget import session_spend
from pytest_scylla.records import RunRecord
from pytest_scylla.settings import ScyllaSettings

INTERVAL_S = 30.0
STEP_FRACTION = 0.1
RUN_ID_MARK = "test.yaml::"  # run items, as opposed to other tests of the session


@dataclass
class Tally:
    total: int = 0
    done: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    agent_usd: float = 0.0
    judge_usd: float = 0.0


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def progress_line(tally: Tally, elapsed_s: float) -> str:
    share = f" ({100 * tally.done // tally.total}%)" if tally.total else ""
    counts = f"{tally.passed} passed, {tally.failed} failed, {tally.errors} errors"
    if tally.skipped:
        counts += f", {tally.skipped} skipped"
    spend = tally.agent_usd + tally.judge_usd
    left = tally.total - tally.done
    if left <= 0:
        eta = f"done in {format_duration(elapsed_s)}"
    elif tally.done:
        eta = f"ETA {format_duration(elapsed_s / tally.done * left)}"
    else:
        eta = "ETA unknown"
    return (
        f"scylla progress: {tally.done}/{tally.total} runs{share}; {counts}; "
        f"spend ${spend:.4f} (agents ${tally.agent_usd:.4f}, judges ${tally.judge_usd:.4f}); "
        f"{eta}"
    )


class ProgressReporter:
    """Controller only. `clock` is passed in so the pacing is testable."""

    def __init__(
        self,
        config: pytest.Config,
        settings: ScyllaSettings,
        clock: Callable[[], float] = time.monotonic,
        interval_s: float = INTERVAL_S,
    ) -> None:
        self.config = config
        self.settings = settings
        self.clock = clock
        self.interval_s = interval_s
        self.tally = Tally()
        self.started = clock()
        self.last_line_at = self.started
        self.next_step = 0

    @property
    def quiet(self) -> bool:
        return self.config.get_verbosity() < 0 or self.settings.status

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._set_total(item.nodeid for item in session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: Sequence[str]) -> None:
        if not self.tally.total:  # every worker collects the same items
            self._set_total(ids)

    def _set_total(self, ids: Any) -> None:
        self.tally.total = sum(1 for node_id in ids if RUN_ID_MARK in node_id)
        self.started = self.last_line_at = self.clock()
        self.next_step = self._step()

    def _step(self) -> int:
        return max(1, round(self.tally.total * STEP_FRACTION))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from pytest_scylla.controller import RECORD_ATTRIBUTE, reported_from_disk

        if RUN_ID_MARK not in report.nodeid:
            return
        payload = getattr(report, RECORD_ATTRIBUTE, None)
        # A run from disk cost this session nothing: its record is not parsed (a resume).
        if payload is not None and not reported_from_disk(report):
            record = RunRecord.model_validate_json(payload)
            agent, judges = session_spend(record, False, self.settings.rejudge)
            self.tally.agent_usd += agent
            self.tally.judge_usd += judges
        tally = self.tally
        if report.when == "setup" and report.failed:
            tally.errors += 1
        elif report.when == "setup" and report.skipped:
            tally.skipped += 1
        elif report.when == "call":
            if report.passed:
                tally.passed += 1
            else:
                tally.failed += 1
        else:
            return
        tally.done += 1
        self._maybe_write()

    def _maybe_write(self) -> None:
        if self.quiet:
            return
        now = self.clock()
        finished = self.tally.done >= self.tally.total > 0
        if (
            finished
            or self.tally.done >= self.next_step
            or now - self.last_line_at >= self.interval_s
        ):
            while self.next_step <= self.tally.done:
                self.next_step += self._step()
            self.last_line_at = now
            self.write(progress_line(self.tally, now - self.started))

    def write(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        writer = getattr(reporter, "_tw", None)  # end pytest's line of dots first
        if writer is not None and writer.width_of_current_line:
            writer.line()
        reporter.write_line(line)

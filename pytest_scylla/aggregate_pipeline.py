"""An experiment whose runs are all reported is aggregated in another process while the
session goes on with the next experiment's runs.

A session over several experiments (a regenerate or a resume of a results tree, a study)
works through them one after the other on one core, and each experiment's aggregation
(reading every record, the statistics with their resamples, the reports) then took seconds
more at the end. An experiment's aggregates depend only on its records, and once its last
run is reported those are final, so they are built on the machine's other core meanwhile.
The controller still writes every file itself at the session's end, and only from a build
whose records are still the ones it read (the records_fingerprint the build took before
reading them); otherwise, or if the build failed, it builds again in its own process.

One build is in the other process at a time, the others wait here in submission order: at
the session's end, the builds still waiting are made in the controller meanwhile instead of
after the one in progress (the last experiment's build was then half of a regenerate's tail).
A build asked for after the session's last run has both cores: its tier comparisons draw
their omnibus permutations in a second thread (compare_tiers).

A regenerate rewrites a record only when its score changes, which is seldom, so there the
last experiment is built before its runs, on the core that is idle while the session
starts; when its runs are reported and its records still stamp as that build read them,
the build stands and the session's end does not wait for one (controller.py).

Only without xdist (with workers every core already runs items), and only for experiments
large enough to pay for the process: it starts in about a second (importing numpy, scipy
and the models), a small experiment aggregates faster than that.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:  # the build's module imports numpy and the statistics: only when used
    from pytest_scylla.aggregate_build import BuiltAggregates

MIN_RUNS = 500  # of an experiment, for its aggregation to go to the other process
# For a build made once the session's runs are over (compare_tiers' `threads`).
THREADS_WHEN_RUNS_ARE_OVER = min(2, os.cpu_count() or 1)

# build_aggregates(experiment_dir, experiment_id, name, threads)
BuildArguments = tuple[Path, str, str, int]
# A build made in the other process arrives pickled, beside the fingerprint of the records
# it read (see _build_pickled); one made here as it is.
Build: TypeAlias = "BuiltAggregates | tuple[str, bytes]"


def _build_pickled(
    experiment_dir: Path, experiment_id: str, name: str, threads: int
) -> tuple[str, bytes]:
    """In the other process: the build, pickled there. This process unpickles it (importing
    numpy and the statistics' models, 0.2 s) when it takes it at the session's end, while it
    waits for the last build anyway, not between two runs when the pool's thread receives it.
    """
    from pytest_scylla.aggregate_build import build_aggregates

    built = build_aggregates(experiment_dir, experiment_id, name, threads)
    return built.records, pickle.dumps(built, protocol=5)


class AggregatePipeline:
    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._pending: dict[str, Future[Build]] = {}  # by experiment id
        # Asked for while another build was in the other process: not yet given to it (the
        # pool would queue it where it can no longer be taken back).
        self._waiting: dict[str, tuple[BuildArguments, Future[Build]]] = {}
        self._busy = False
        # The pool's thread hands the next build over. Reentrant: a build that ends before
        # its callback is added (a short one, this thread descheduled) runs the callback in
        # this thread, inside _submit_next (a session of the test suite hung on that).
        self._lock = threading.RLock()

    @property
    def started(self) -> list[str]:
        return list(self._pending)

    def start(
        self, experiment_dir: Path, experiment_id: str, name: str, runs_over: bool = False
    ) -> None:
        """Builds the experiment's aggregates, in place of any build of it asked for before.
        `runs_over`: the session has no run left, so this process will only wait: the build
        may take a second core for its statistics."""
        future: Future[Build] = Future()
        self._pending[experiment_id] = future
        threads = THREADS_WHEN_RUNS_ARE_OVER if runs_over else 1
        with self._lock:
            self._waiting.pop(experiment_id, None)  # a build asked for before, not begun
            self._waiting[experiment_id] = ((experiment_dir, experiment_id, name, threads), future)
            if not self._busy:
                self._submit_next()

    def _submit_next(self) -> None:
        """Gives the oldest waiting build to the other process (the lock is held)."""
        if not self._waiting:
            self._busy = False
            return
        experiment_id = next(iter(self._waiting))
        arguments, future = self._waiting.pop(experiment_id)
        if self._pool is None:
            # spawn: the session's threads (progress, leases) and numpy's must not be forked.
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        self._busy = True
        try:
            submitted = self._pool.submit(_build_pickled, *arguments)
        except RuntimeError as error:  # the pool was shut down or broke: built by the controller
            self._busy = False
            future.set_exception(error)
            return
        submitted.add_done_callback(lambda done: self._finished(done, future))

    def _finished(self, done: Future[tuple[str, bytes]], future: Future[Build]) -> None:
        """In the pool's thread, when a build ended: its result is passed on and the next
        waiting build goes to the other process."""
        if done.cancelled():
            future.cancel()
        elif (error := done.exception()) is not None:
            future.set_exception(error)
        else:
            future.set_result(done.result())
        with self._lock:
            self._submit_next()

    def build_waiting_here(self) -> None:
        """Every run is reported: the builds not yet given to the other process are made in
        this one while the other finishes its own."""
        from pytest_scylla.aggregate_build import build_aggregates

        while True:
            with self._lock:
                if not self._waiting:
                    return
                experiment_id = next(iter(self._waiting))
                arguments, future = self._waiting.pop(experiment_id)
            try:
                future.set_result(build_aggregates(*arguments))
            except BaseException as error:  # taken as a failed build: built again, warned then
                future.set_exception(error)
                if not isinstance(error, Exception):
                    raise  # a Ctrl-C stops the session's end as ever

    def records_read(self, experiment_id: str) -> str | None:
        """The records fingerprint the experiment's build read, waiting for it if it goes on
        (or has not begun); None when there is none or it failed."""
        future = self._pending.get(experiment_id)
        if future is None:
            return None
        with self._lock:
            waiting = experiment_id in self._waiting
        if waiting or future.exception() is not None:
            return None
        result = future.result()
        return result[0] if isinstance(result, tuple) else result.records

    def take(self, experiment_id: str, records: str) -> BuiltAggregates | None:
        """The build of this experiment if it finished and its records are still `records`;
        None: the controller builds it itself."""
        future = self._pending.pop(experiment_id, None)
        if future is None:
            return None
        with self._lock:
            if self._waiting.pop(experiment_id, None) is not None:
                return None  # never begun: the controller builds it now
        # Waits for it; a Ctrl-C of this process while it waits stops the session as ever.
        failed = future.exception()
        if failed is not None:
            # The build failed, its process broke, or a Ctrl-C of the terminal (which the
            # process shares) interrupted it: built again by the controller, nothing lost.
            return None
        result = future.result()
        if isinstance(result, tuple):
            read, payload = result
            return pickle.loads(payload) if read == records else None
        return result if result.records == records else None

    def close(self) -> None:
        with self._lock:
            for _, future in self._waiting.values():
                future.cancel()
            self._waiting.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._pending.clear()

"""An experiment whose runs are all reported is aggregated in another process while the
session goes on with the next experiment's runs.

A session over several experiments (a regenerate or a resume of a results tree, a study)
works through them one after the other on one core, and each experiment's aggregation
(reading every record, the statistics with their resamples, the reports) then took seconds
more at the end. An experiment's aggregates depend only on its records, and once its last
run is reported those are final, so they are built on the machine's other core meanwhile.
The controller still writes every file itself at the session's end, and only from a build
whose records are still the ones it read (records_fingerprint taken before the build);
otherwise, or if the build failed, it builds again in its own process.

Only without xdist (with workers every core already runs items), and only for experiments
large enough to pay for the process: it starts in about a second (importing numpy, scipy
and the models), a small experiment aggregates faster than that.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the build's module imports numpy and the statistics: only when used
    from pytest_scylla.aggregate_build import BuiltAggregates

MIN_RUNS = 500  # of an experiment, for its aggregation to go to the other process


class AggregatePipeline:
    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        # experiment id -> (records fingerprint when the build began, the build)
        self._pending: dict[str, tuple[str, Future[BuiltAggregates]]] = {}

    @property
    def started(self) -> list[str]:
        return list(self._pending)

    def start(self, experiment_dir: Path, experiment_id: str, name: str, records: str) -> None:
        if self._pool is None:
            # spawn: the session's threads (progress, leases) and numpy's must not be forked.
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        from pytest_scylla.aggregate_build import build_aggregates

        future = self._pool.submit(build_aggregates, experiment_dir, experiment_id, name)
        self._pending[experiment_id] = (records, future)

    def take(self, experiment_id: str, records: str) -> BuiltAggregates | None:
        """The build of this experiment if it finished and its records are still `records`;
        None: the controller builds it itself."""
        entry = self._pending.pop(experiment_id, None)
        if entry is None:
            return None
        started_from, future = entry
        # Waits for it; a Ctrl-C of this process while it waits stops the session as ever.
        failed = future.exception()
        if failed is not None:
            # The build failed, its process broke, or a Ctrl-C of the terminal (which the
            # process shares) interrupted it: built again by the controller, nothing lost.
            return None
        built = future.result()
        return built if started_from == records else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._pending.clear()

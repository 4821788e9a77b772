"""xdist's `load` distribution, started by the first worker ready instead of the last.

xdist starts its workers one after another and its `LoadScheduling` hands out nothing until
every one of them has collected: the first worker idles for the time the others take to
start (on one host about 1 s at `-n 8`, over ssh as long as the slowest host), and then
every worker gets its first runs at the same moment. Runs of one sub-test take about the
same time, so the workers stay in that lockstep for the whole session: all of them do the
harness part of a run (workspace, checks, diff, packing the files) at the same moment and
wait on the agent at the same moment, and those bursts, not the cores, set the pace.

Here a worker gets its first runs as soon as it has collected, the distribution otherwise
xdist's own (the same chunk sizes, refills and crash handling; run-major order from
ordering.py). Workers then start, and stay, as far apart as they came up, and a worker on
a slow host costs its own start, not everyone's. xdist checks that every worker collected
the same items before it hands any out; here each worker's collection is compared with the
first one's when it arrives, and a worker that differs gets nothing and is reported as a
collection error, the report xdist makes itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pytest
from xdist.report import report_collection_diff
from xdist.scheduler.load import LoadScheduling

if TYPE_CHECKING:
    from xdist.workermanage import WorkerController


# What EagerLoadScheduling uses of xdist's LoadScheduling beyond its public methods: xdist's
# internals, the same from 3.5 to 3.8. An xdist without them keeps its own scheduler.
_LOAD_INTERNALS = (
    "_send_tests",
    "numnodes",
    "node2collection",
    "node2pending",
    "pending",
    "collection",
    "maxschedchunk",
)


def fits_this_xdist(scheduler: LoadScheduling) -> bool:
    """Whether a freshly made scheduler has the xdist internals EagerLoadScheduling uses."""
    return all(hasattr(scheduler, name) for name in _LOAD_INTERNALS)


class EagerLoadScheduling(LoadScheduling):
    """`LoadScheduling` whose nodes start one by one, each once its collection is known."""

    # LoadScheduling's own attributes (xdist ships no types).
    collection: list[str] | None
    maxschedchunk: int | None

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        self.started: set[WorkerController] = set()

    @property
    def collection_is_completed(self) -> bool:
        """True from the first collection on: xdist then calls `schedule` for each worker's
        collection as it arrives."""
        return bool(self.node2collection)

    def add_node_collection(self, node: WorkerController, collection: Sequence[str]) -> None:
        if self.collection is not None and list(collection) != self.collection:
            first = next(iter(self.node2collection))
            message = report_collection_diff(
                self.collection, collection, first.gateway.id, node.gateway.id
            )
            self.log(message)
            report = pytest.CollectReport(
                nodeid=node.gateway.id, outcome="failed", longrepr=message, result=[]
            )
            self.config.hook.pytest_collectreport(report=report)
            node.shutdown()  # it runs nothing: its items may not be the ones named
            return
        self.node2collection[node] = list(collection)

    def schedule(self) -> None:
        if self.collection is None:
            self.collection = next(iter(self.node2collection.values()))
            self.pending[:] = range(len(self.collection))
            if self.maxschedchunk is None:
                self.maxschedchunk = len(self.collection)
        for node in self.nodes:
            self.check_schedule(node)

    def check_schedule(self, node: WorkerController, duration: float = 0) -> None:
        """xdist's heuristics, shared out over the workers asked for (`-n`), not only over
        the ones up so far: the first would otherwise be handed half of everything."""
        if node.shutting_down or node not in self.node2collection or self.collection is None:
            return  # a worker still collecting gets its share with its collection
        if not self.pending:
            node.shutdown()
            return
        nodes = max(self.numnodes, len(self.node2pending))
        node_pending = self.node2pending[node]
        most = self.maxschedchunk or len(self.collection)  # --maxschedchunk
        if node not in self.started:
            # xdist's first chunk (a quarter of a worker's share), and for a worker that
            # joins late (one replacing a crashed worker) no more than a refill would be.
            self.started.add(node)
            refill = max(2, len(self.pending) // nodes // 2)
            chunk = min(len(self.collection) // nodes // 4, refill, most)
            self._send_tests(node, max(chunk, 2))
        else:
            items_per_node_min = max(2, len(self.pending) // nodes // 4)
            items_per_node_max = max(2, len(self.pending) // nodes // 2)
            if len(node_pending) >= items_per_node_min:
                return
            if duration >= 0.1 and len(node_pending) >= 2:
                return  # long runs and enough queued: wait before sending more
            wanted = items_per_node_max - len(node_pending)
            # At least two queued: a worker runs an item only once it knows the next one.
            self._send_tests(node, min(wanted, max(2 - len(node_pending), most)))
        if not self.pending:
            # Nothing more will come: the worker runs what it holds (the last one included).
            node.shutdown()

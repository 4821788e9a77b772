"""The order runs are handed out in: run-major within each tier.

Collection yields a sub-test's runs together (00-empty run-01..10, then 01-... run-01..10).
xdist's `load` scheduler hands items out in that order as workers free up, so a tier
would be measured one sub-test at a time and a study stopped halfway (Ctrl-C, a budget
stop) would hold whole sub-tests and nothing of the others. Ordered run-major (run-01 of
every sub-test of the tier, then run-02, ...), the runs finished at any moment are spread
evenly over the tier's sub-tests, so every sub-test's statistics grow together and a tier
finishes with all its sub-tests at once. Tiers and experiments keep their order.

Why `load` (xdist's default with -n) and not the others: `loadscope`/`loadfile` send a
whole tier or experiment file to one worker (the node id's `test.yaml::T0` is the scope),
which serializes it; `worksteal` starts each worker on a contiguous slice, so it too
spreads well with this order, but `load` keeps the order closest to the one given.
xdist's `load` hands out nothing until the last worker is up; `EagerScheduler` keeps its
distribution and starts each worker as soon as it has collected (scheduler.py).
"""

from __future__ import annotations

from typing import Any

import pytest


def run_major_order(items: list[pytest.Item]) -> None:
    """Reorder the run items in place, run-major within (experiment, tier); any other item
    keeps its place, and the runs fill the places the runs had."""
    from pytest_scylla.collect import RunItem

    positions = [index for index, item in enumerate(items) if isinstance(item, RunItem)]
    if len(positions) < 2:
        return
    runs: list[RunItem] = [items[index] for index in positions]  # type: ignore[misc]
    group_order: dict[tuple[str, str], int] = {}
    subtest_order: dict[tuple[str, str, str], int] = {}
    for run in runs:
        group = (run.experiment.id, run.subtest.tier)
        group_order.setdefault(group, len(group_order))
        subtest_order.setdefault((*group, run.subtest.id), len(subtest_order))
    runs.sort(
        key=lambda run: (
            group_order[(run.experiment.id, run.subtest.tier)],
            run.run_number,
            subtest_order[(run.experiment.id, run.subtest.tier, run.subtest.id)],
        )
    )
    for index, run in zip(positions, runs, strict=True):
        items[index] = run


class EagerScheduler:
    """Registered on the controller of a session that runs experiments: `load` becomes
    `EagerLoadScheduling` (imported here, when xdist asks: a session without workers never
    loads xdist's scheduler)."""

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if config.getvalue("dist") != "load":
            return None  # a distribution the user chose stays theirs
        from pytest_scylla.scheduler import EagerLoadScheduling, fits_this_xdist

        try:
            scheduler = EagerLoadScheduling(config, log)
        except Exception:  # an xdist whose `load` changed: its own scheduler, not a crash
            return None
        return scheduler if fits_this_xdist(scheduler) else None

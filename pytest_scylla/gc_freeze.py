"""The collected items are moved out of the garbage collector's way while the runs go.

A study's session holds tens of thousands of items (their keywords, markers, stashes) from
collection to its end, and every full collection walks them all: the automatic ones while
the runs go, the five pytest forces at the end to find unraisable exceptions, and the
interpreter's last one at exit, about a second each per 10,000 items (profiled on a resume
of 10,000 runs). None of them is garbage before the session ends, so they are frozen
(`gc.freeze`) once collected, and again with the session's reports at its end.

A process whose command line is this session ends with it, and they stay frozen: the
operating system takes the memory back. A process that goes on after the session
(pytester's in-process runs, `pytest.main()` called from a script) unfreezes them when the
session's cleanup has run, so its later collections free them.

An xdist worker's process is execnet's, not a command line: it unfreezes like pytester, and
its heap is frozen again when its interpreter exits (at the end of the session for a popen
or ssh worker, with its server for a socket one). Without that, the interpreter's last
collections walk the whole heap of pytest and its plugins: about 0.15 s of CPU per worker,
every worker of a session at the same moment, before the controller's session can end.

While a session's runs go, the youngest generation is collected every RUN_LOOP_YOUNG_THRESHOLD
allocations instead of every 700. Reading and reporting a run allocates a few thousand
objects, nearly all freed by reference counting once it is reported; the collector's passes
three times a run found next to nothing to free: 0.25 to 0.4 s of a 10,000-run regenerate's
7 s run loop (benchmarks/bench_regenerate.py --tree, three pairs of sessions). A session's
end puts the thresholds back; a session without runs keeps them as they are.
"""

from __future__ import annotations

import atexit
import functools
import gc
import sys
from pathlib import Path

import pytest

from pytest_scylla.collect import RunItem

RUN_LOOP_YOUNG_THRESHOLD = 100_000


def pytest_configure(config: pytest.Config) -> None:
    thresholds = gc.get_threshold()
    config.add_cleanup(lambda: gc.set_threshold(*thresholds))
    if not _is_the_command_line(config):
        # Registered early (our configure is tryfirst): cleanups run last-in first-out, so
        # this one runs after pytest's unraisable-exception check has collected.
        config.add_cleanup(gc.unfreeze)
    if hasattr(config, "workerinput"):
        _freeze_at_exit()


@functools.cache
def _freeze_at_exit() -> None:
    """Once per process. Exit handlers and finalizers run as before; only the interpreter's
    last collections skip what is frozen."""
    atexit.register(gc.freeze)


def _is_the_command_line(config: pytest.Config) -> bool:
    """Whether this process is `pytest ARGS` or `python -m pytest ARGS` running ARGS."""
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    is_pytest = program.name in ("pytest", "py.test") or program.parts[-2:] == (
        "pytest",
        "__main__.py",
    )
    return is_pytest and tuple(config.invocation_params.args) == tuple(sys.argv[1:])


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    gc.freeze()
    if any(isinstance(item, RunItem) for item in session.items):  # other suites: as they are
        young, *older = gc.get_threshold()
        gc.set_threshold(max(RUN_LOOP_YOUNG_THRESHOLD, young), *older)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    gc.freeze()  # the reports too: pytest's cleanup collects five times next

"""An xdist worker's heap is frozen when its interpreter exits (gc_freeze.py).

A real `-n 1` session of the shipped test-001 in a subprocess; the conftest's exit handler,
registered before the plugin's (atexit runs last-in first-out), writes what is frozen once
the plugin's has run: on the worker, where the interpreter's last collections would
otherwise walk the whole heap.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from experiment_factory import shipped_t0

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = REPO / "experiments" / "test-001"

REPORT_AT_EXIT = """
import atexit, gc, os
from pathlib import Path

def report():
    who = os.environ.get("PYTEST_XDIST_WORKER", "controller")
    Path(f"frozen-{who}.txt").write_text(str(gc.get_freeze_count()))

atexit.register(report)
"""


def test_a_worker_exits_with_its_heap_frozen(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    shutil.copytree(EXPERIMENT, pytester.path / "experiments" / "test-001")
    pytester.makeconftest(REPORT_AT_EXIT)
    result = pytester.runpytest_subprocess(
        *shipped_t0(runs=1, subtests=1),
        *("--agent", "oracle", "--judge-model", "none", "-p", "no:cacheprovider", "-n", "1"),
    )
    result.assert_outcomes(passed=1)
    # Frozen at exit, not only during the session: its cleanup unfroze it at the end.
    assert int((pytester.path / "frozen-gw0.txt").read_text()) > 10_000

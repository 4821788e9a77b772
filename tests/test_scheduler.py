"""xdist's `load` started by the first worker ready (scheduler.py, ordering.EagerScheduler).

Real `-n 2` sessions of the shipped test-001 in a subprocess. A conftest holds the second
worker's collection back until the first worker has written run records: with xdist's own
`LoadScheduling` nothing runs before every worker has collected, so the held worker would
wait for records that never come.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from experiment_factory import shipped_t0

from pytest_scylla.ordering import EagerScheduler
from pytest_scylla.scheduler import EagerLoadScheduling

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = REPO / "experiments" / "test-001"
# Four runs of an agent that does nothing (each scores 0: a failed item).
RUNS = [
    *shipped_t0(runs=2, subtests=2),
    "--agent",
    "command",
    "--agent-command",
    "true",
    "--judge-model",
    "none",
    "-p",
    "no:cacheprovider",
    "-n",
    "2",
]
HOLD_SECONDS = 30  # how long the held worker waits; the session ends long before

HELD_WORKER = """
import os, time
from pathlib import Path
import pytest

def records():
    return len(list(Path("results").glob("test-001/T0/*/run-*/run_result.json")))

@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    if os.environ.get("PYTEST_XDIST_WORKER") != "gw1":
        return
    deadline = time.monotonic() + {hold}
    while records() < {wanted} and time.monotonic() < deadline:
        time.sleep(0.05)
    Path("held-worker.txt").write_text(f"{{records()}} records before gw1 collected")
    {change}
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    pytester.makeini("[pytest]\n")
    shutil.copytree(EXPERIMENT, pytester.path / "experiments" / "test-001")
    return pytester.path


def hold_second_worker(pytester: pytest.Pytester, wanted: int, change: str = "") -> None:
    pytester.makeconftest(HELD_WORKER.format(hold=HOLD_SECONDS, wanted=wanted, change=change))


def test_the_first_worker_runs_while_another_is_still_collecting(
    pytester: pytest.Pytester, project: Path
) -> None:
    hold_second_worker(pytester, wanted=4)
    result = pytester.runpytest_subprocess(*RUNS, timeout=3 * HOLD_SECONDS)
    # gw0 ran all four before gw1 had collected; gw1 was given nothing and shut down.
    assert (project / "held-worker.txt").read_text() == "4 records before gw1 collected"
    result.assert_outcomes(failed=4)


def test_a_late_worker_that_collected_other_items_runs_none_of_them(
    pytester: pytest.Pytester, project: Path
) -> None:
    # gw1 collects one item fewer, once gw0 has started: its indices would name other runs.
    hold_second_worker(pytester, wanted=1, change="del items[-1]")
    result = pytester.runpytest_subprocess(*RUNS, timeout=3 * HOLD_SECONDS)
    assert (project / "held-worker.txt").read_text().startswith(("1 ", "2 ", "3 ", "4 "))
    # Reported as xdist reports differing collections, and every run ran once, on gw0.
    result.stdout.fnmatch_lines(["*Different tests were collected between gw0 and gw1*"])
    result.assert_outcomes(failed=4, errors=1)
    records = list((project / "results").glob("test-001/T0/*/run-*/run_result.json"))
    assert len(records) == 4


@pytest.mark.parametrize(("dist", "eager"), [("load", True), ("loadscope", False)])
def test_only_the_load_distribution_is_replaced(
    pytester: pytest.Pytester, dist: str, eager: bool
) -> None:
    config = pytester.parseconfig("--tx", "2*popen", "--dist", dist)
    scheduler = EagerScheduler().pytest_xdist_make_scheduler(config, log=None)
    assert isinstance(scheduler, EagerLoadScheduling) is eager
    if not eager:
        assert scheduler is None  # xdist's own choice stands


def test_an_xdist_without_the_load_internals_keeps_its_own_scheduler(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The eager scheduler builds on xdist's LoadScheduling internals; an xdist release
    that renames them must get its own `load` back, not a crash at the first worker."""
    from xdist.scheduler.load import LoadScheduling

    config = pytester.parseconfig("--tx", "2*popen", "--dist", "load")
    monkeypatch.delattr(LoadScheduling, "_send_tests")
    assert EagerScheduler().pytest_xdist_make_scheduler(config, log=None) is None

"""Runs that need no agent and no judge are reported without pytest's run protocol.

A resume of a finished study reports every run from its record on disk, and
`--scylla-regenerate` rescores every record: thousands of items whose "work" is reading
one file. pytest's protocol around each of them (the setup, call and teardown hooks with
output capture, log capture and fixture set-up, for items that have no fixtures and print
nothing) costs more than the work itself: about 1 ms per item, profiled, against 0.3 ms
here. So for such a run this module does what `_pytest.runner.runtestprotocol` does with
the stages' work in place of their hooks: the same three reports, made by the same
`pytest_runtest_makereport` hooks (our redaction, junit properties and the record's ride
to the controller included) and logged through `pytest_runtest_logreport` to every
plugin (terminal, junitxml, --lf, xdist, ours), between `logstart` and `logfinish`.

A run that may spend money (an agent or a judge to run) or whose record needs attention
(damaged, missing, a note to show) takes pytest's own protocol, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import pytest

from pytest_scylla.collect import RunItem, scylla_session

Stage = Literal["setup", "call", "teardown"]
# What pytest lets escape a stage instead of reporting it (_pytest.runner's default).
_ESCAPING = (pytest.exit.Exception, KeyboardInterrupt)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    if not isinstance(item, RunItem):
        return None
    session = scylla_session(item.config)
    settings = session.settings
    if settings.rejudge or settings.status:
        return None  # a rejudge pays judges; a status runs nothing at all
    if settings.regenerate:
        setup: Callable[[], None] = item.setup  # rescoring from the records: nothing paid
    else:
        outcome = session.executor().reported_as_is(item.plan)
        if outcome is None:
            return None
        setup = lambda: item.take_outcome(outcome)  # noqa: E731
    replay(item, nextitem, setup)
    return True


def replay(item: RunItem, nextitem: pytest.Item | None, setup: Callable[[], None]) -> None:
    """runtestprotocol's three stages, with `setup` as the setup stage's work."""
    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    if _stage(item, "setup", setup).passed:
        _stage(item, "call", item.runtest)
    if item.session.shouldfail or item.session.shouldstop:
        nextitem = None  # as pytest does: a session about to stop tears everything down
    _stage(item, "teardown", lambda: _teardown_towards(item, nextitem))
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)


def _stage(item: RunItem, when: Stage, work: Callable[[], None]) -> pytest.TestReport:
    call = pytest.CallInfo.from_call(work, when=when, reraise=_ESCAPING)
    report: pytest.TestReport = item.ihook.pytest_runtest_makereport(item=item, call=call)
    item.ihook.pytest_runtest_logreport(report=report)
    return report


def _teardown_towards(item: RunItem, nextitem: pytest.Item | None) -> None:
    """The collectors the next item does not share are torn down, as pytest's teardown
    stage does: items run by pytest's protocol before and after this one find its set-up
    stack as they expect. (A replayed item pushed nothing on it: it has no fixtures.)"""
    state = getattr(item.session, "_setupstate", None)
    if state is not None:
        state.teardown_exact(nextitem)

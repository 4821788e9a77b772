"""Runs that need no agent and no judge go through pytest's run protocol without output
and log capture.

A resume of a finished study reports every run from its record on disk, and
`--scylla-regenerate` rescores every record: thousands of items whose work is reading one
file and that print and log nothing. Capturing a stage's output and logs (the capture and
logging plugins' wrappers around each of the three stages) costs more than that work:
about a third of a millisecond per item, profiled. So for such a run this module runs what
`_pytest.runner.runtestprotocol` runs, the same stage hooks of every other plugin (pytest's
runner with the set-up stack, skipping, pytest-json-report, pytest-timeout, ours) and the
same three reports through `pytest_runtest_makereport` and `pytest_runtest_logreport`,
with those two plugins left out of the stage hooks.

A run that may spend money (an agent or a judge to run), or whose record needs attention
(damaged, missing, a note to show), takes pytest's own protocol, unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest

from pytest_scylla.collect import RunItem, scylla_session
from pytest_scylla.results_layout import experiment_dir

Stage = Literal["setup", "call", "teardown"]
# What pytest lets escape a stage instead of reporting it (_pytest.runner's default).
_ESCAPING = (pytest.exit.Exception, KeyboardInterrupt)
# The plugins a replayed run has nothing for: it prints and logs nothing.
QUIET_PLUGINS = ("capturemanager", "logging-plugin")
_STAGE_HOOKS: dict[Stage, str] = {
    "setup": "pytest_runtest_setup",
    "call": "pytest_runtest_call",
    "teardown": "pytest_runtest_teardown",
}
_CALLERS: pytest.StashKey[dict[tuple[str, frozenset[int]], Any]] = pytest.StashKey()
_SOUND_EXPERIMENTS: pytest.StashKey[dict[str, bool]] = pytest.StashKey()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    if not isinstance(item, RunItem):
        return None
    session = scylla_session(item.config)
    settings = session.settings
    if settings.rejudge or settings.status:
        return None  # a rejudge pays judges; a status runs nothing at all
    if not settings.regenerate:  # a regenerate's setup rescores: nothing paid
        outcome = session.executor().reported_as_is(
            item.plan, sound_on_disk=_records_sound(item, settings.results_dir)
        )
        if outcome is None:
            return None
        item.settled = outcome  # what its setup takes instead of executing the run
    try:
        replay(item, nextitem)
    finally:
        item.settled = None
    return True


def replay(item: RunItem, nextitem: pytest.Item | None) -> None:
    """runtestprotocol's three stages, with quiet stage hooks."""
    # The item's hook relay, looked up once: each `item.ihook` walks its conftests again.
    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    if _stage(item, ihook, "setup").passed and not item.config.getoption("setuponly", False):
        _stage(item, ihook, "call")
    if item.session.shouldfail or item.session.shouldstop:
        nextitem = None  # as pytest does: a session about to stop tears everything down
    _stage(item, ihook, "teardown", nextitem=nextitem)
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)


def _stage(item: RunItem, ihook: Any, when: Stage, **kwargs: Any) -> pytest.TestReport:
    hook = _quiet_hook(item, ihook, _STAGE_HOOKS[when])
    call = pytest.CallInfo.from_call(
        lambda: hook(item=item, **kwargs), when=when, reraise=_ESCAPING
    )
    report: pytest.TestReport = ihook.pytest_runtest_makereport(item=item, call=call)
    ihook.pytest_runtest_logreport(report=report)
    return report


def _records_sound(item: RunItem, results_dir: Path) -> bool:
    """Whether each record of the item's experiment reads as the aggregation on disk read
    it in full (aggregate_inputs.py), so a run's head is enough to report it: asked once
    per experiment and session, before its first run is reported."""
    known = item.config.stash.setdefault(_SOUND_EXPERIMENTS, {})
    experiment = item.experiment
    sound = known.get(experiment.id)
    if sound is None:
        from pytest_scylla.aggregate_inputs import records_sound_as_aggregated

        folder = experiment_dir(results_dir, experiment.id)
        sound = known[experiment.id] = records_sound_as_aggregated(folder, experiment.spec.name)
    return sound


def _quiet_hook(item: RunItem, relay: Any, name: str) -> Any:
    """The item's own hook caller for `name` (its conftests only, as its hook `relay` has
    them) without the quiet plugins; one caller per set of plugins, made once."""
    manager = item.config.pluginmanager
    callers = item.config.stash.setdefault(_CALLERS, {})
    if relay is item.config.hook:  # every conftest applies here: the common case, cached
        every_plugin = callers.get((name, frozenset()))
        if every_plugin is not None:
            return every_plugin
    active = {impl.plugin for impl in getattr(relay, name).get_hookimpls()}
    quiet = {manager.get_plugin(plugin_name) for plugin_name in QUIET_PLUGINS}
    every = {impl.plugin for impl in getattr(manager.hook, name).get_hookimpls()}
    removed = (every - active) | (quiet & every)
    key = (name, frozenset(map(id, every - active)))
    caller = callers.get(key)
    if caller is None:
        caller = callers[key] = manager.subset_hook_caller(name, remove_plugins=removed)
    return caller

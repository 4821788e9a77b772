"""SIGTERM and SIGHUP behave like Ctrl-C.

A CI cancel, `timeout` or a closed terminal sends SIGTERM or SIGHUP; by default Python dies
on the spot, leaving the run in flight unrecorded and no aggregates. Raising
KeyboardInterrupt instead lets pytest unwind as for Ctrl-C: the run in flight is recorded as
interrupted (run/executor.py), finished runs stay, and the controller writes aggregates.
Installed in every process of a session (controller and xdist workers), main thread only,
and restored at unconfigure.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import pytest

SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")


class InterruptSignals:
    """A pytest plugin object: installs the handlers now, restores them at unconfigure."""

    def __init__(self) -> None:
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return  # signal.signal works only there (pytest embedded in a thread)
        for signum in SIGNALS:
            self.previous[signum] = signal.signal(signum, _interrupt)

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous.clear()

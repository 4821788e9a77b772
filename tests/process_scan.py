"""Find processes by a marker in their command line: how the leftover tests see an agent
(and what it started) without trusting any pid the agent reports."""

from __future__ import annotations

import os
import time
from pathlib import Path


def _live_with(marker: bytes) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes()
            state = Path(entry.path, "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker in cmdline and state != b"Z":
            found.append(int(entry.name))
    return found


def processes_with(marker: str, wait_s: float = 0.0) -> list[int]:
    """Live pids whose command line holds marker, after waiting up to wait_s for none."""
    deadline = time.monotonic() + wait_s
    while True:
        found = _live_with(marker.encode())
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)


def wait_for_processes(marker: str, count: int, wait_s: float) -> list[int]:
    """Wait up to wait_s until at least count processes hold marker; the pids found."""
    deadline = time.monotonic() + wait_s
    while True:
        found = _live_with(marker.encode())
        if len(found) >= count or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)


def parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return int(stat.rsplit(b")", 1)[1].split()[1])

"""A disk limit for a run's writable directories, enforced while its process runs.

The workspace and home of a run are plain host directories (bind mounts in a container), so
no storage driver or quota bounds them: an agent could fill the host's disk. ``DiskGuard``
measures them every couple of seconds from a thread and calls back once they exceed the
limit; the sandbox then kills the process tree and says so in its ``ProcessOutcome``.

The walk never follows symlinks (``lstat`` only), counts allocated blocks (a sparse file
costs what it occupies), counts an inode with several links once, and is bounded: it stops
after ``max_entries`` entries (that many files is itself over the limit: inodes are disk
too) and waits several times its own duration before the next walk, so a huge tree cannot
make the guard eat a core. What a process writes between two walks (seconds at disk speed)
can overshoot the limit before it is caught: the limit is a guard rail, not a quota.
"""

from __future__ import annotations

import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DISK_LIMIT = "10g"
CHECK_EVERY_S = 2.0
MAX_ENTRIES = 2_000_000
# The guard sleeps at least this many times as long as its last walk took (<= ~10% of a core;
# a walk costs ~40 us per entry on a busy machine, so 100k files are checked every ~35 s).
IDLE_FACTOR = 9.0
STOP_CHECK_EVERY = 4096  # entries between two looks at the stop event

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.I)
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_size(text: str | int) -> int:
    """Bytes of a size like docker's: ``"10g"``, ``"512m"``, ``"5MiB"``, ``"1.5g"``, ``4096``."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"not a size: {text!r} (use a number with k, m, g or t, e.g. 10g)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


@dataclass(frozen=True)
class DiskUsage:
    """What one walk found."""

    bytes: int  # allocated bytes, each inode once
    entries: int
    truncated: bool  # stopped at max_entries: the tree has at least that many entries


def disk_usage(
    roots: Iterable[Path], max_entries: int = MAX_ENTRIES, stop: threading.Event | None = None
) -> DiskUsage:
    """Allocated bytes under roots (the roots included), without following symlinks.

    A set ``stop`` ends the walk early (what was counted so far is returned).
    """
    total = 0
    entries = 0
    seen: set[tuple[int, int]] = set()
    todo = [str(root) for root in roots]
    for root in list(todo):
        try:
            total += os.lstat(root).st_blocks * 512
        except OSError:
            todo.remove(root)  # a root that does not exist holds nothing
    while todo:
        directory = todo.pop()
        try:
            scan = os.scandir(directory)
        except OSError:
            continue  # removed while we walk, or not readable: not ours to count
        with scan:
            for entry in scan:
                entries += 1
                if entries > max_entries:
                    return DiskUsage(total, entries, truncated=True)
                if stop is not None and entries % STOP_CHECK_EVERY == 0 and stop.is_set():
                    return DiskUsage(total, entries, truncated=False)
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if info.st_nlink > 1 and not stat.S_ISDIR(info.st_mode):
                    key = (info.st_dev, info.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                total += info.st_blocks * 512
                if stat.S_ISDIR(info.st_mode):
                    todo.append(entry.path)
    return DiskUsage(total, entries, truncated=False)


class DiskGuard:
    """Watches roots from a thread while a process runs; calls ``on_exceeded`` once.

    Use as a context manager around the wait for the process::

        with DiskGuard([ws, home], limit, on_exceeded=done.set) as guard:
            done.wait(timeout)
        if guard.exceeded: ...
    """

    def __init__(
        self,
        roots: Iterable[Path],
        limit_bytes: int,
        on_exceeded: Callable[[], None],
        *,
        every_s: float = CHECK_EVERY_S,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.roots = list(roots)
        self.limit_bytes = limit_bytes
        self.every_s = every_s
        self.max_entries = max_entries
        self.exceeded = False
        self.last: DiskUsage | None = None
        self._on_exceeded = on_exceeded
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="scylla-disk-guard", daemon=True)

    def __enter__(self) -> DiskGuard:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def describe(self) -> str:
        """One line for a record: the limit and what was found."""
        found = self.last
        if found is None:
            return f"disk limit {self.limit_bytes} bytes"
        more = " or more" if found.truncated else ""
        return (
            f"disk limit exceeded: {found.bytes} bytes in {found.entries}{more} entries "
            f"under the workspace and home (limit {self.limit_bytes} bytes, "
            f"{self.max_entries} entries)"
        )

    def _watch(self) -> None:
        wait_s = self.every_s
        while not self._stop.wait(wait_s):
            started = time.monotonic()
            # stop: the process ended; its run() must not wait for a long walk.
            usage = disk_usage(self.roots, self.max_entries, self._stop)
            if self._stop.is_set():
                return
            self.last = usage
            if usage.truncated or usage.bytes > self.limit_bytes:
                self.exceeded = True
                self._on_exceeded()
                return
            wait_s = max(self.every_s, IDLE_FACTOR * (time.monotonic() - started))

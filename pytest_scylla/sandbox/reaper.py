"""Sweep the work folders that killed sessions left behind.

A run's work folder (``<work root>/runs/<experiment>-<tier>-<subtest>-<NN>-<pid>``) is
removed by its run, except when the session or worker running it was killed. The pid at the
end of the name is the owner: a folder whose owner is gone is stale. A folder whose pid is
alive is never touched, even when that pid now belongs to another program: a live session's
workspace is worth more than the disk.
"""

from __future__ import annotations

import os
from pathlib import Path

from pytest_scylla.workspace import remove_tree


def owner_pid(folder: Path) -> int | None:
    """The pid a work folder's name ends with, None when the name has none."""
    _, _, tail = folder.name.rpartition("-")
    return int(tail) if tail.isdigit() and int(tail) > 0 else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def sweep_stale_work(runs_root: Path) -> int:
    """Remove the work folders under runs_root whose owner process is gone; how many."""
    try:
        folders = [entry for entry in runs_root.iterdir() if entry.is_dir()]
    except FileNotFoundError:
        return 0
    removed = 0
    for folder in folders:
        pid = owner_pid(folder)
        if pid is None or pid == os.getpid() or pid_alive(pid):
            continue
        try:
            remove_tree(folder)
        except OSError:
            continue  # another session sweeping the same folder, or not ours to remove
        removed += 1
    return removed

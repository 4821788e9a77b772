"""One session per results folder: a lock file naming the session that holds it.

Two sessions writing the same run folders would interleave records, aggregates and
reports. The controller takes the lock in preflight (a status and `--collect-only` write
nothing and take none) and gives it back at unconfigure.

The lock is an open file held with `flock`: the kernel lets go of it when its process
dies, however it dies, so a killed session's lock is taken over without guessing. The file
also says who holds it (pid, host, the process's start time), for the message a second
session prints. A lock written on another host cannot be checked from here (flock over a
network share is not to be trusted): the second session stops and says how to break it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import socket
from pathlib import Path

from pydantic import BaseModel, ValidationError

LOCK_FILE = ".scylla-session.lock"


class ResultsLocked(Exception):
    """Another session holds the results folder."""


class LockOwner(BaseModel):
    """What the lock file holds: enough to find the other session, no command line (it may
    hold a key)."""

    pid: int
    host: str
    process_start: str | None  # clock ticks after boot (/proc/<pid>/stat): pids are reused
    started_at: str

    @classmethod
    def of_this_process(cls) -> LockOwner:
        return cls(
            pid=os.getpid(),
            host=socket.gethostname(),
            process_start=process_start(os.getpid()),
            started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )

    def alive_here(self) -> bool:
        """This host only: the process exists and is the one that wrote the lock."""
        start = process_start(self.pid)
        return start is not None and (self.process_start is None or start == self.process_start)

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host}, started {self.started_at}"


def process_start(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count from its end.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


class ResultsLock:
    """The held lock; `release()` (or process exit) gives it back."""

    def __init__(self, path: Path, descriptor: int) -> None:
        self.path = path
        self.descriptor: int | None = descriptor

    def release(self) -> None:
        if self.descriptor is None:
            return
        try:
            # Removed while still held: a session that opens the path now gets a new file.
            if _same_file(self.descriptor, self.path):
                self.path.unlink()
        except OSError:
            pass
        os.close(self.descriptor)
        self.descriptor = None

    def pytest_unconfigure(self) -> None:
        self.release()


def acquire(results_dir: Path) -> ResultsLock:
    """Take the results folder's lock, or raise ResultsLocked saying who holds it."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / LOCK_FILE
    for _ in range(5):
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(descriptor)
            os.close(descriptor)
            who = owner.describe() if owner else "a session that has not written its name yet"
            raise ResultsLocked(
                f"{results_dir} is in use by another pytest-scylla session ({who}); "
                "wait for it to finish or choose another --results-dir"
            ) from None
        if not _same_file(descriptor, path):
            os.close(descriptor)  # the holder removed it between our open and flock
            continue
        owner = _read_owner(descriptor)
        here = socket.gethostname()
        if owner is not None and owner.host != here:
            os.close(descriptor)
            raise ResultsLocked(
                f"{results_dir} is locked by a pytest-scylla session on another host "
                f"({owner.describe()}); this host cannot tell whether it still runs. If it "
                f"does not, delete {path} and start again"
            )
        if owner is not None and owner.pid != os.getpid() and owner.alive_here():
            # Holds no flock yet is alive: it wrote the file and has not locked it (or
            # could not); never take a live session's folder.
            os.close(descriptor)
            raise ResultsLocked(
                f"{results_dir} is in use by another pytest-scylla session "
                f"({owner.describe()}); wait for it to finish or choose another --results-dir"
            )
        _write_owner(descriptor, LockOwner.of_this_process())
        return ResultsLock(path, descriptor)
    raise ResultsLocked(f"{path}: could not take the lock (it keeps changing); try again")


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        return os.fstat(descriptor).st_ino == path.stat().st_ino
    except OSError:
        return False


def _read_owner(descriptor: int) -> LockOwner | None:
    try:
        text = os.pread(descriptor, 64 * 1024, 0).decode("utf-8", "replace")
        return LockOwner.model_validate_json(text) if text.strip() else None
    except (OSError, ValidationError):
        return None  # a torn or foreign file names no one


def _write_owner(descriptor: int, owner: LockOwner) -> None:
    data = owner.model_dump_json().encode()
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, data, 0)

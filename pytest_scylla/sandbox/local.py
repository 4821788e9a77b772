"""The local sandbox: a plain subprocess on the host, in its own session and process group.

Isolation is only what a subprocess gives: a scrubbed environment (exactly the ``env``
passed, nothing inherited), its own working directory and a process group that is killed
as a whole on timeout, on Ctrl-C and when the run ends (so a server the agent left running
does not outlive its run).

While a run is under way this process is a "child subreaper" (Linux ``prctl``): orphans of
the run are re-parented to us instead of to init, so we can reap the killed ones. Some
container inits never reap, and an unreaped zombie still counts as a member of its process
group.

Limit: a descendant that starts its own session (``setsid``) leaves the group. We also kill
every descendant still linked to our process by parent ids (read from ``/proc``), but one
whose parent already exited cannot be told apart from our other children: use the docker
sandbox when that matters.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import select
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from pytest_scylla.sandbox.base import ProcessOutcome, RunDirs, SandboxError, SandboxPaths

KILL_GRACE_S = 2.0  # time between SIGTERM and SIGKILL: enough to flush a log, not to linger
_POLL_S = 0.05
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


@contextlib.contextmanager
def _subreaper() -> Iterator[None]:
    """Be the reaper of the run's orphans for the duration; restore the old setting after."""
    libc = _libc()
    previous = ctypes.c_int(0)
    if libc is None or libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(previous), 0, 0, 0) != 0:
        yield  # not Linux, or no prctl: group kill still works, zombies are init's business
        return
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        yield
    finally:
        libc.prctl(_PR_SET_CHILD_SUBREAPER, previous.value, 0, 0, 0)


def proc_stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (the state first).

    None when the process is gone or cannot be read (also where there is no ``/proc``).
    """
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces, parentheses and bytes that are not UTF-8
    # (a process sets it freely): split after the last ")", where only ASCII follows.
    return raw[raw.rfind(b")") + 2 :].decode("ascii").split()


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, process group) of a live process, None when it is gone."""
    fields = proc_stat_fields(pid)
    if fields is None:
        return None
    return fields[0], int(fields[1]), int(fields[2])


def _all_pids() -> Iterator[int]:
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                yield int(entry.name)


def _descendants(root: int) -> set[int]:
    """Every live process whose parent chain leads to root (any session, any group)."""
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        stat = _proc_stat(pid)
        if stat is not None:
            children.setdefault(stat[1], []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _group_members(pgid: int) -> set[int]:
    """Live processes of a process group; its zombies that are our children get reaped."""
    members = set()
    me = os.getpid()
    for pid in _all_pids():
        stat = _proc_stat(pid)
        if stat is None or stat[2] != pgid:
            continue
        if stat[0] == "Z":
            if stat[1] == me:
                # Only pids of the killed group: never a child some other code waits for.
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
        else:
            members.add(pid)
    return members


def _signal_all(pgid: int, pids: set[int], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _group_exists(pgid: int) -> bool:
    """Whether any process (zombies included) is still in the group: one syscall, no /proc scan."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_for_exit(process: subprocess.Popen[bytes], timeout_s: float) -> int | None:
    """The exit code, or None on timeout, woken the moment the process exits.

    ``Popen.wait(timeout)`` polls with sleeps that grow to 50 ms, which can add tens of
    milliseconds to every short check; a pidfd becomes readable exactly at exit.
    """
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # not Linux >= 5.3, or the process is already reaped
        try:
            return process.wait(timeout=max(timeout_s, 0.0))
        except subprocess.TimeoutExpired:
            return None
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        deadline = time.monotonic() + max(timeout_s, 0.0)
        while process.poll() is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            # poll() takes milliseconds as an int; cap it so huge timeouts do not overflow.
            poller.poll(min(int(remaining * 1000) + 1, 2**31 - 1))
    finally:
        os.close(pidfd)
    return process.returncode


def kill_process_tree(process: subprocess.Popen[bytes], grace_s: float = KILL_GRACE_S) -> None:
    """SIGTERM the process group and known descendants, then SIGKILL what is left; reap."""
    pgid = process.pid  # start_new_session: the leader's pid is the group id
    if process.poll() is not None and not _group_exists(pgid):
        return  # the usual case after a normal exit: nothing left, skip the /proc scans
    stray = _descendants(process.pid) if process.poll() is None else set()
    _signal_all(pgid, stray, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        process.poll()  # reap the leader as soon as it exits
        stray = {pid for pid in stray if _alive(pid)}
        if process.returncode is not None and not stray and not _group_members(pgid):
            return
        time.sleep(_POLL_S)
    _signal_all(pgid, stray, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_s)
    # SIGKILL cannot be ignored; wait briefly for the kernel to take the group down.
    deadline = time.monotonic() + grace_s
    while _group_members(pgid) and time.monotonic() < deadline:
        time.sleep(_POLL_S)
    _group_members(pgid)  # a last pass reaps the zombies the kill just made


def _alive(pid: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[0] != "Z"


class LocalSandbox:
    """Runs processes on the host; the run directories are seen at their host paths."""

    def __init__(self, dirs: RunDirs, kill_grace_s: float = KILL_GRACE_S) -> None:
        self.dirs = dirs
        self.paths = SandboxPaths(
            workspace=str(dirs.workspace), home=str(dirs.home), inputs=str(dirs.inputs)
        )
        self.kill_grace_s = kill_grace_s
        self._running: subprocess.Popen[bytes] | None = None

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        timeout_s: float,
        stdout_path: Path,
        stderr_path: Path,
        cwd: str | None = None,
    ) -> ProcessOutcome:
        stdout_path.parent.mkdir(parents=True, exist_ok=True)
        stderr_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with (
            _subreaper(),
            open(stdout_path, "wb") as out,
            open(stderr_path, "wb") as err,
        ):
            try:
                process = subprocess.Popen(
                    list(argv),
                    env=dict(env),  # the exact environment: nothing of ours leaks in
                    cwd=cwd or self.paths.workspace,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,  # own session and group: killable as a whole
                )
            except OSError as error:
                raise SandboxError(f"cannot start {argv[0]!r}: {error}") from error
            self._running = process
            try:
                exit_code = wait_for_exit(process, timeout_s)
                timed_out = exit_code is None
            except BaseException:
                # Ctrl-C (or any error here): take the whole tree down before re-raising.
                kill_process_tree(process, self.kill_grace_s)
                self._running = None
                raise
            # Also after a normal exit: kill what the process left running in its group.
            kill_process_tree(process, self.kill_grace_s)
            self._running = None
        return ProcessOutcome(
            exit_code=exit_code, timed_out=timed_out, duration_s=time.monotonic() - started
        )

    def close(self) -> None:
        if self._running is not None:
            kill_process_tree(self._running, self.kill_grace_s)
            self._running = None


class LocalSandboxFactory:
    name = "local"

    def __init__(self, kill_grace_s: float = KILL_GRACE_S) -> None:
        self.kill_grace_s = kill_grace_s

    def check_available(self) -> str | None:
        return None

    def open(self, dirs: RunDirs, labels: Mapping[str, str]) -> LocalSandbox:
        for directory in dirs.all():
            directory.mkdir(parents=True, exist_ok=True)
        # base_env points TMPDIR here; tools fail oddly when it does not exist.
        (dirs.home / "tmp").mkdir(exist_ok=True)
        return LocalSandbox(dirs, self.kill_grace_s)

    def sweep_stale(self) -> int:
        return 0  # a killed session's processes died with their groups; nothing to find

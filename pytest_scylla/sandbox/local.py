"""The local sandbox: a process on the host, under bubblewrap where it can be.

With bubblewrap (Linux, see ``bwrap.py``) the process sees only the system, read-only, and
its own run's folders; it has its own PID namespace, so nothing it starts (``setsid``
included) outlives the run, and nothing outlives the harness either (``--die-with-parent``).

Without it (``isolation="none"``, or where bwrap is missing or cannot create namespaces,
which the session reports) isolation is only what a subprocess gives: a scrubbed environment
(exactly the ``env`` passed, nothing inherited), its own working directory and a process
group that is killed as a whole on timeout, on Ctrl-C and when the run ends. The process
gets ``PR_SET_PDEATHSIG``, so it dies with the harness.

While a run is under way this process is a "child subreaper" (Linux ``prctl``): orphans of
the run are re-parented to us instead of to init, so we can reap the killed ones. Some
container inits never reap, and an unreaped zombie still counts as a member of its process
group.

Limit without bubblewrap: a descendant that starts its own session (``setsid``) leaves the
group. We also kill every descendant still linked to our process by parent ids (read from
``/proc``), but one whose parent already exited cannot be told apart from our other
children, and one started by a process the harness outlived survives a killed harness.

Output goes through pipes and ``OutputPump`` when a redactor or ``stop_when`` is given (so
it is redacted as it is written), straight to the files otherwise.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

from pytest_scylla.sandbox import bwrap
from pytest_scylla.sandbox.base import (
    ProcessOutcome,
    RunDirs,
    SandboxError,
    SandboxPaths,
    StopWhen,
)
from pytest_scylla.sandbox.output_pump import OutputPump

if TYPE_CHECKING:
    from pytest_scylla.redact import Redactor

Isolation = Literal["auto", "bwrap", "none"]

KILL_GRACE_S = 2.0  # time between SIGTERM and SIGKILL: enough to flush a log, not to linger
# After the last word (stop_when), how long the process may take to exit by itself.
LAST_WORD_GRACE_S = 2.0
# After the run, how long the output of a process that escaped may keep a pipe open.
DRAIN_S = 1.0
_POLL_S = 0.05
_PR_SET_PDEATHSIG = 1
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
    found = _descendants(process.pid) if process.poll() is None else set()
    try:
        _kill_found(process, pgid, found, grace_s)
    finally:
        _reap(found)


def _kill_found(
    process: subprocess.Popen[bytes], pgid: int, found: set[int], grace_s: float
) -> None:
    stray = set(found)
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


def _reap(pids: set[int]) -> None:
    """Reap the run's descendants that were orphaned to us (we are their subreaper) and
    died: a process in a session of its own (bwrap's sandboxed command after bwrap was
    killed) is in no group the group pass reaps."""
    me = os.getpid()
    for pid in pids:
        stat = _proc_stat(pid)
        if stat is not None and stat[0] == "Z" and stat[1] == me:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def _alive(pid: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[0] != "Z"


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A preexec_fn: in the child before exec, ask for SIGKILL when the harness dies (even
    by SIGKILL itself). None where there is no prctl.

    The C function is looked up here, in the parent: between fork and exec the child of a
    threaded process must do as little as it can (no lookup, no import, no lock).
    """
    libc = _libc()
    if libc is None or not hasattr(libc, "prctl"):
        return None
    prctl = libc.prctl
    option, sig, zero = ctypes.c_int(_PR_SET_PDEATHSIG), ctypes.c_ulong(signal.SIGKILL), 0

    def die_with_parent() -> None:
        prctl(option, sig, zero, zero, zero)

    return die_with_parent


def _resolve_program(argv: Sequence[str], env: Mapping[str, str]) -> None:
    """Raise SandboxError as Popen would: under bwrap a missing program is only an exit 1."""
    if not argv:
        raise SandboxError("cannot start an empty command")
    program = argv[0]
    if "/" in program:
        found = os.path.isfile(program) and os.access(program, os.X_OK)
    else:
        found = shutil.which(program, path=env.get("PATH", os.defpath)) is not None
    if not found:
        raise SandboxError(f"cannot start {program!r}: no such executable")


class LocalSandbox:
    """Runs processes on the host; the run directories are seen at their host paths."""

    def __init__(
        self,
        dirs: RunDirs,
        kill_grace_s: float = KILL_GRACE_S,
        *,
        bwrap_binary: str | None = None,
        hidden: Sequence[str] = (),
        last_word_grace_s: float = LAST_WORD_GRACE_S,
    ) -> None:
        self.dirs = dirs
        self.paths = SandboxPaths(
            workspace=str(dirs.workspace), home=str(dirs.home), inputs=str(dirs.inputs)
        )
        self.kill_grace_s = kill_grace_s
        self.last_word_grace_s = last_word_grace_s
        self.bwrap_binary = bwrap_binary  # None: a plain subprocess
        self.hidden = list(hidden)
        self._running: subprocess.Popen[bytes] | None = None

    @property
    def isolated(self) -> bool:
        return self.bwrap_binary is not None

    def _command(self, argv: Sequence[str], env: Mapping[str, str], cwd: str) -> list[str]:
        if self.bwrap_binary is None:
            return list(argv)
        return bwrap.bwrap_argv(
            self.bwrap_binary, argv, env=env, dirs=self.dirs, cwd=cwd, hidden=self.hidden
        )

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        timeout_s: float,
        stdout_path: Path,
        stderr_path: Path,
        cwd: str | None = None,
        redactor: Redactor | None = None,
        stop_when: StopWhen | None = None,
    ) -> ProcessOutcome:
        stdout_path.parent.mkdir(parents=True, exist_ok=True)
        stderr_path.parent.mkdir(parents=True, exist_ok=True)
        cwd = cwd or self.paths.workspace
        if self.isolated:
            _resolve_program(argv, env)
        command = self._command(argv, env, cwd)
        piped = redactor is not None or stop_when is not None
        started = time.monotonic()
        with (
            _subreaper(),
            open(stdout_path, "wb") as out,
            open(stderr_path, "wb") as err,
        ):
            process, pump = self._start(command, env, cwd, out, err, piped, redactor, stop_when)
            self._running = process
            try:
                exit_code, timed_out, stopped = self._wait(process, timeout_s, started, pump)
            except BaseException:
                # Ctrl-C (or any error here): take the whole tree down before re-raising.
                self._end(process, pump)
                raise
            # Also after a normal exit: kill what the process left running.
            self._end(process, pump)
        return ProcessOutcome(
            exit_code=exit_code,
            timed_out=timed_out,
            duration_s=time.monotonic() - started,
            stopped_after_last_word=stopped,
        )

    def _start(
        self,
        command: list[str],
        env: Mapping[str, str],
        cwd: str,
        out: BinaryIO,
        err: BinaryIO,
        piped: bool,
        redactor: Redactor | None,
        stop_when: StopWhen | None,
    ) -> tuple[subprocess.Popen[bytes], OutputPump | None]:
        pipes = (os.pipe(), os.pipe()) if piped else None
        try:
            process = subprocess.Popen(
                command,
                env=dict(env),  # the exact environment: nothing of ours leaks in
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=pipes[0][1] if pipes else out,
                stderr=pipes[1][1] if pipes else err,
                start_new_session=True,  # own session and group: killable as a whole
                # bwrap has --die-with-parent; a plain child needs it set before exec.
                preexec_fn=None if self.isolated else _die_with_parent_hook(),
            )
        except OSError as error:
            if pipes:
                for read_end, write_end in pipes:
                    os.close(read_end)
                    os.close(write_end)
            raise SandboxError(f"cannot start {command[0]!r}: {error}") from error
        if pipes is None:
            return process, None
        for _, write_end in pipes:
            os.close(write_end)  # only the process holds the write ends: EOF when it is done
        pump = OutputPump(
            pipes[0][0], pipes[1][0], out, err, redactor=redactor, stop_when=stop_when
        )
        pump.start()
        return process, pump

    def _wait(
        self,
        process: subprocess.Popen[bytes],
        timeout_s: float,
        started: float,
        pump: OutputPump | None,
    ) -> tuple[int | None, bool, bool]:
        """(exit code, timed out, stopped after its last word)."""
        deadline = started + timeout_s
        watching = pump is not None and pump.watching
        last_word_deadline: float | None = None
        while True:
            now = time.monotonic()
            if watching and last_word_deadline is None and pump and pump.last_word.is_set():
                last_word_deadline = now + self.last_word_grace_s
            limit = deadline if last_word_deadline is None else min(deadline, last_word_deadline)
            step = limit - now
            if watching and last_word_deadline is None:
                step = min(step, _POLL_S)  # look at the last-word flag now and then
            exit_code = wait_for_exit(process, step)
            if exit_code is not None:
                return exit_code, False, False
            now = time.monotonic()
            if last_word_deadline is not None and now >= last_word_deadline:
                return None, False, True
            if now >= deadline:
                return None, True, False

    def _end(self, process: subprocess.Popen[bytes], pump: OutputPump | None) -> None:
        try:
            kill_process_tree(process, self.kill_grace_s)
        finally:
            self._running = None
            if pump is not None:
                pump.finish(DRAIN_S)

    def close(self) -> None:
        if self._running is not None:
            kill_process_tree(self._running, self.kill_grace_s)
            self._running = None


class LocalSandboxFactory:
    """Opens local sandboxes, under bubblewrap unless ``isolation`` says otherwise.

    ``auto`` uses bubblewrap where it works and falls back to a plain subprocess (then
    ``isolates`` is False and ``isolation_problem`` says why); ``bwrap`` insists on it
    (``check_available`` reports the problem); ``none`` never uses it. ``hidden``: host
    paths no sandboxed process may see even when a PATH entry points there (the results,
    the experiments, the work root); the real home's secrets always are.
    """

    name = "local"

    def __init__(
        self,
        kill_grace_s: float = KILL_GRACE_S,
        *,
        isolation: Isolation = "auto",
        hidden: Sequence[Path | str] = (),
    ) -> None:
        self.kill_grace_s = kill_grace_s
        self.isolation = isolation
        self.isolation_problem = None if isolation == "none" else bwrap.bwrap_problem()
        self.isolates = isolation != "none" and self.isolation_problem is None
        self.hidden = bwrap.hidden_paths(hidden)

    def check_available(self) -> str | None:
        if self.isolation == "bwrap" and self.isolation_problem is not None:
            return self.isolation_problem
        return None

    def open(self, dirs: RunDirs, labels: Mapping[str, str]) -> LocalSandbox:
        for directory in dirs.all():
            directory.mkdir(parents=True, exist_ok=True)
        # base_env points TMPDIR here; tools fail oddly when it does not exist.
        (dirs.home / "tmp").mkdir(exist_ok=True)
        return LocalSandbox(
            dirs,
            self.kill_grace_s,
            bwrap_binary=bwrap.bwrap_binary() if self.isolates else None,
            hidden=self.hidden,
        )

    def sweep_stale(self) -> int:
        # A killed session's processes died with it (bwrap's --die-with-parent, or
        # PR_SET_PDEATHSIG); its work folders are the session's to sweep (reaper.py).
        return 0

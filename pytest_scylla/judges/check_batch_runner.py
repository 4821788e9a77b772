"""Runs inside the sandbox (``python3 -I -S -c <this source> <nonce> <scratch> <tail bytes>
<kill grace> <timeout> <command> [<timeout> <command>...]``): every check command in order,
one ``bash -c`` each, and prints one JSON document of their outcomes.

Standard library only, and nothing imported from the workspace (``-I``): the workspace is
the agent's. Why the results can be trusted as much as one process per check:
* the runner makes itself non-dumpable, so a check (same uid, no capabilities) can neither
  open ``/proc/<runner>/fd/1`` to print forged results nor read its memory; it can kill the
  runner, which leaves no valid document, and the harness then runs the checks one by one;
* each command's output goes to unnamed files (``O_TMPFILE``, made in the scratch folder
  opened once without following a link) that no later command can find by name;
* after each command, everything it left running (setsid included: the runner is a child
  subreaper, or PID 1 under bubblewrap) is killed before the next one starts, as a sandbox
  does between two processes.

It starts once per run, so its imports are its cost: only modules built into the
interpreter (``os``, ``time``, ``select``, ``binascii``) and ``ctypes`` for ``prctl``; no
``json`` (the spec comes as arguments, the answer is printed by hand), no ``subprocess``
(``posix_spawn``), no ``tempfile``. Runs on Python 3.8 and later, ``subprocess`` only
where ``posix_spawn`` cannot start a new session.
"""

import binascii
import ctypes
import os
import select
import sys
import time

_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36
_POLL_S = 0.02
# Linux's numbers on every architecture; the signal module would import enum for them.
_SIGKILL = 9
_SIGTERM = 15


def _descendants() -> set:
    me = os.getpid()
    parents = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/" + name + "/stat", "rb") as stat:
                raw = stat.read()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        if fields and fields[0] != b"Z":
            parents[int(name)] = int(fields[1])
    found = set()
    for pid in parents:
        seen = pid
        hops = 0
        while seen in parents and hops < 4096:
            seen = parents[seen]
            hops += 1
            if seen == me:
                found.add(pid)
                break
    return found


def _signal(target: int, sig: int, *, group: bool = False) -> bool:
    """Signal a process or a group; False when it is gone (no contextlib: its import costs)."""
    try:
        if group:
            os.killpg(target, sig)
        else:
            os.kill(target, sig)
    except OSError:
        return False
    return True


def _reap() -> bool:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False  # no child left at all
        if pid == 0:
            return True  # children alive


def _kill_leftovers(sig: int, deadline: float) -> bool:
    """Signal every descendant until none is left (or the deadline); True when none is."""
    while True:
        if not _reap():
            return True
        pids = _descendants()
        if not pids:
            return True
        for pid in pids:
            _signal(pid, sig)
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_S)


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)  # killed by a signal: as bash and bwrap report it
    return os.WEXITSTATUS(status)


def _spawn(command: str, out: int, err: int) -> int:
    """``bash -c command`` in a session of its own, stdin /dev/null, output to out and err;
    no other descriptor of the runner is inherited (all are close-on-exec, see main)."""
    argv = ["bash", "-c", command]
    try:
        return os.posix_spawnp(
            "bash",
            argv,
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out, 1),
                (os.POSIX_SPAWN_DUP2, err, 2),
            ],
            setsid=True,
        )
    except (AttributeError, NotImplementedError, TypeError):  # Python < 3.8, or no setsid
        import subprocess

        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True
        )
        return child.pid


def _wait(pid: int, timeout_s: float) -> "int | None":
    """The exit code, or None at the timeout (the process is left running), woken the
    moment it exits: a pidfd, or short sleeps where there is none."""
    deadline = time.monotonic() + timeout_s
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # Python < 3.9 or Linux < 5.3
        pidfd = -1
    try:
        poller = None
        if pidfd >= 0:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return _exit_code(status)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if poller is not None:
                poller.poll(min(int(remaining * 1000) + 1, 2**31 - 1))
            else:
                time.sleep(min(remaining, _POLL_S))
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _unnamed_file(scratch: int) -> int:
    """A file no other process can open by name, in the scratch folder (a descriptor)."""
    flags = os.O_RDWR | os.O_CLOEXEC
    try:
        return os.open(".", flags | os.O_TMPFILE, 0o600, dir_fd=scratch)
    except (AttributeError, OSError):  # a file system without O_TMPFILE
        name = ".scylla-" + binascii.hexlify(os.urandom(16)).decode()
        fd = os.open(name, flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=scratch)
        os.unlink(name, dir_fd=scratch)
        return fd


def _tail(fd: int, size: int) -> bytes:
    length = os.lseek(fd, 0, os.SEEK_END)
    os.lseek(fd, max(0, length - size), os.SEEK_SET)
    chunks = []
    while size > 0:
        chunk = os.read(fd, size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _base64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _run_one(command: str, timeout_s: float, scratch: int, cap: int, kill_grace_s: float) -> str:
    """One command's outcome as a JSON object (every value is a number, a boolean, null or
    base64 text: nothing to escape)."""
    out = _unnamed_file(scratch)
    err = _unnamed_file(scratch)
    try:
        started = time.monotonic()
        pid = _spawn(command, out, err)
        exit_code = _wait(pid, timeout_s)
        timed_out = exit_code is None
        if timed_out:
            _signal(pid, _SIGTERM, group=True)
            _kill_leftovers(_SIGTERM, time.monotonic() + kill_grace_s)
        duration = time.monotonic() - started
        if not _kill_leftovers(_SIGKILL, time.monotonic() + 10):
            raise SystemExit("cannot kill what a check left running")
        err_tail = _tail(err, cap)
        out_tail = _tail(out, cap - len(err_tail))
    finally:
        os.close(out)
        os.close(err)
    code = "null" if exit_code is None else str(int(exit_code))
    return (
        f'{{"exit_code": {code}, "timed_out": {"true" if timed_out else "false"}, '
        f'"duration_s": {float(duration)!r}, "stdout_tail": "{_base64(out_tail)}", '
        f'"stderr_tail": "{_base64(err_tail)}"}}'
    )


def main() -> None:
    # Whatever the runner was given beyond stdin, stdout and stderr stays with it: a
    # posix_spawn'ed check inherits every descriptor that is not close-on-exec.
    os.closerange(3, 1 << 16)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise SystemExit("cannot make the runner non-dumpable")
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # fails as PID 1, which reaps anyway
    nonce, scratch_path, tail_bytes, kill_grace_s = sys.argv[1:5]
    checks = sys.argv[5:]
    if len(checks) % 2 or any(char not in "0123456789abcdef" for char in nonce):
        raise SystemExit("malformed arguments")
    # Opened once, never through a symlink the agent may have left where the folder goes;
    # every output file is made relative to this descriptor, whatever the path holds later.
    scratch = os.open(scratch_path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    results = [
        _run_one(
            checks[index + 1], float(checks[index]), scratch, int(tail_bytes), float(kill_grace_s)
        )
        for index in range(0, len(checks), 2)
    ]
    sys.stdout.write(f'{{"nonce": "{nonce}", "results": [{", ".join(results)}]}}')
    sys.stdout.flush()


if __name__ == "__main__":
    main()

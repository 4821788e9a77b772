"""Runs inside the sandbox (``python3 -I -S -c <this source> <spec json>``): every check
command in order, one ``bash -c`` each, and prints one JSON document of their outcomes.

Standard library only, and nothing imported from the workspace (``-I``): the workspace is
the agent's. Why the results can be trusted as much as one process per check:
* the runner makes itself non-dumpable, so a check (same uid, no capabilities) can neither
  open ``/proc/<runner>/fd/1`` to print forged results nor read its memory; it can kill the
  runner, which leaves no valid document, and the harness then runs the checks one by one;
* each command's output goes to unnamed files (``O_TMPFILE``) in the scratch folder, which
  no later command can find by name;
* after each command, everything it left running (setsid included: the runner is a child
  subreaper, or PID 1 under bubblewrap) is killed before the next one starts, as a sandbox
  does between two processes.
"""

import base64
import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import typing

_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36
_POLL_S = 0.02


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
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_S)


def _wait(process: subprocess.Popen, timeout_s: float) -> int:
    """Popen.wait, woken the moment the process exits: Popen.wait(timeout) polls with
    sleeps that grow to 50 ms, more than most checks take."""
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # Python < 3.9 or Linux < 5.3
        return process.wait(timeout=timeout_s)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        deadline = time.monotonic() + timeout_s
        while process.poll() is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise subprocess.TimeoutExpired(process.args, timeout_s)
            poller.poll(min(int(remaining * 1000) + 1, 2**31 - 1))
    finally:
        os.close(pidfd)
    return process.returncode


def _tail(handle: "typing.BinaryIO", size: int) -> bytes:
    handle.seek(0, os.SEEK_END)
    length = handle.tell()
    handle.seek(max(0, length - size))
    return handle.read(size)


def _run_one(command: str, timeout_s: float, scratch: str, cap: int, kill_grace_s: float) -> dict:
    with tempfile.TemporaryFile(dir=scratch) as out, tempfile.TemporaryFile(dir=scratch) as err:
        started = time.monotonic()
        process = subprocess.Popen(
            ["bash", "-c", command],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            exit_code = _wait(process, timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            exit_code = None
            timed_out = True
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGTERM)
            _kill_leftovers(signal.SIGTERM, time.monotonic() + kill_grace_s)
            process.poll()
        duration = time.monotonic() - started
        if not _kill_leftovers(signal.SIGKILL, time.monotonic() + 10):
            raise SystemExit("cannot kill what a check left running")
        if exit_code is not None and exit_code < 0:
            exit_code = 128 - exit_code  # killed by a signal: as bash and bwrap report it
        err_tail = _tail(err, cap)
        out_tail = _tail(out, cap - len(err_tail))
    return {
        "exit_code": exit_code,
        "timed_out": timed_out,
        "duration_s": duration,
        "stdout_tail": base64.b64encode(out_tail).decode("ascii"),
        "stderr_tail": base64.b64encode(err_tail).decode("ascii"),
    }


def main() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise SystemExit("cannot make the runner non-dumpable")
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # fails as PID 1, which reaps anyway
    spec = json.loads(sys.argv[1])
    scratch = spec["scratch"]
    # Never through a symlink the agent may have left where the scratch folder goes.
    os.close(os.open(scratch, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW))
    results = [
        _run_one(
            check["command"], check["timeout_s"], scratch, spec["tail_bytes"], spec["kill_grace_s"]
        )
        for check in spec["checks"]
    ]
    sys.stdout.write(json.dumps({"nonce": spec["nonce"], "results": results}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()

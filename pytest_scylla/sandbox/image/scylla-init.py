#!/usr/bin/python3
"""PID 1 of every scylla-runner container: idle, reap orphans, end the run's processes.

    scylla-init [LEASE_STALE_S]

* Orphans of the exec'd process trees are re-parented here and reaped at once.
* SIGUSR1 (``docker kill --signal USR1``, sent by the sandbox on timeout) kills every other
  process in the container and keeps the container: a process may ignore anything but
  SIGKILL, and as the namespace's init this process is the one ``kill(-1)`` spares.
* With LEASE_STALE_S, the owning session renews /scylla/lease (a read-only mount of a host
  file) every few seconds; when its mtime is older than that, the owner is gone (SIGKILL,
  crash): kill everything and exit, so the container ends (and is auto-removed) without
  waiting for a later session to sweep it.
* SIGTERM/SIGINT (docker stop) end the container.

Non-dumpable, so the agent (same uid) cannot ptrace this process or read its memory and
switch the lease check off.
"""

import contextlib
import ctypes
import os
import signal
import sys
import time

LEASE = "/scylla/lease"
PR_SET_DUMPABLE = 4
CHECK_EVERY_S = 1.0


def reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_all() -> None:
    # ProcessLookupError: nothing else is running.
    with contextlib.suppress(ProcessLookupError):
        os.kill(-1, signal.SIGKILL)  # every process we may signal, except ourselves


def lease_stale(stale_s: float) -> bool:
    try:
        age = time.time() - os.stat(LEASE).st_mtime
    except OSError:
        return True  # the host file is gone: so is its owner
    return age > stale_s


def main() -> int:
    stale_s = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    with contextlib.suppress(OSError):
        ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    watched = {signal.SIGCHLD, signal.SIGUSR1, signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    while True:
        info = signal.sigtimedwait(watched, CHECK_EVERY_S)
        signo = info.si_signo if info is not None else 0
        if signo in (signal.SIGTERM, signal.SIGINT):
            kill_all()
            return 0
        if signo == signal.SIGUSR1:
            kill_all()
        reap()
        if stale_s > 0 and lease_stale(stale_s):
            kill_all()
            return 3


if __name__ == "__main__":
    sys.exit(main())

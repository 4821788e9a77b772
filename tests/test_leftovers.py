"""Nothing outlives a run or a session, and nothing raw is left on disk, however the session
ends: killed with SIGKILL (the session, or one xdist worker), interrupted with SIGINT.

The agent is a shell script (the command agent) that starts processes in sessions of their
own and prints a secret; processes are found by a unique marker in their command line."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from experiment_factory import write_experiment
from process_scan import parent_pid, processes_with, wait_for_processes

from pytest_scylla.redact import REDACTED
from pytest_scylla.sandbox.reaper import owner_pid, sweep_stale_work
from pytest_scylla.session import work_root

SECRET = "sk-ant-leftover-" + "x7" * 12
START_S = 60  # bound on a session reaching its agent (xdist start-up included)
GONE_S = 10  # bound on the kernel taking a killed tree down


def escaping_agent(marker: str) -> str:
    """Prints the key, then waits; one child in a new session, one in the agent's own.

    The marker is put together by the shell, so only the agent's processes hold it whole
    (the session's own command line holds the template)."""
    head, tail = marker.split("-", 1)
    script = (
        f"m={head}; "
        f'echo "key: $ANTHROPIC_API_KEY"; echo "$m-{tail}-printed"; '
        f'setsid sh -c "sleep 1000; : $m-{tail}" >/dev/null 2>&1 </dev/null & '
        f'sh -c "sleep 1000; : $m-{tail}"'
    )
    return "bash -c " + shlex.quote(script)


def start_session(root: Path, marker: str, *extra: str) -> subprocess.Popen[bytes]:
    experiment = root / "exp-a"
    if not experiment.exists():
        write_experiment(root, "exp-a")
    argv = [
        sys.executable,
        "-m",
        "pytest",
        str(experiment),
        "--agent",
        "command",
        "--agent-command",
        escaping_agent(marker),
        "--results-dir",
        str(root / "results"),
        "--judge-model",
        "none",
        "-p",
        "no:cacheprovider",
        *extra,
    ]
    env = {**os.environ, "ANTHROPIC_API_KEY": SECRET}
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.Popen(
        argv,
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the test kills the session's group, as a terminal would
    )


def agent_output(root: Path) -> Path | None:
    found = sorted((root / "results").rglob("agent/stdout.jsonl"))
    return found[0] if found else None


def wait_printed(root: Path, marker: str) -> Path:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        out = agent_output(root)
        if out is not None and f"{marker}-printed" in out.read_text(errors="replace"):
            return out
        time.sleep(0.05)
    raise AssertionError("the agent never printed its marker")


def kill_session(session: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if sig == signal.SIGKILL:
        os.killpg(session.pid, signal.SIGKILL)
    else:
        os.kill(session.pid, sig)
    try:
        session.wait(timeout=30)
    finally:
        if session.poll() is None:
            os.killpg(session.pid, signal.SIGKILL)
            session.wait()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_killed_session_leaves_no_agent_and_no_raw_secret(
    tmp_path: Path, sig: signal.Signals
) -> None:
    marker = f"scylla-left-{uuid.uuid4().hex}"
    session = start_session(tmp_path, marker)
    try:
        out = wait_printed(tmp_path, marker)
        assert len(wait_for_processes(marker, 2, START_S)) >= 2
    finally:
        kill_session(session, sig)
    assert processes_with(marker, wait_s=GONE_S) == []
    text = out.read_text()
    assert SECRET not in text
    assert REDACTED in text
    for path in (tmp_path / "results").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_killed_xdist_worker_leaves_no_agent(tmp_path: Path) -> None:
    marker = f"scylla-worker-{uuid.uuid4().hex}"
    session = start_session(tmp_path, marker, "-n", "1")
    try:
        first = wait_for_processes(marker, 2, START_S)
        assert len(first) >= 2
        # Up the parent chain from the agent to the controller's child: the worker.
        worker = first[0]
        while (parent := parent_pid(worker)) not in (session.pid, None, 1):
            worker = parent
        assert parent == session.pid and worker != first[0]
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + GONE_S
        while set(first) & set(processes_with(marker)) and time.monotonic() < deadline:
            time.sleep(0.05)
        # The rescheduled copy of the run may have started its own; the old ones are gone.
        assert not set(first) & set(processes_with(marker))
    finally:
        kill_session(session, signal.SIGKILL)
    assert processes_with(marker, wait_s=GONE_S) == []


def test_stale_work_folders_are_swept_at_session_start(tmp_path: Path) -> None:
    runs = work_root() / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    ended = subprocess.Popen(["true"])
    ended.wait()
    alive = subprocess.Popen(["sleep", "60"])
    tag = uuid.uuid4().hex[:8]
    stale = runs / f"exp-{tag}-T0-00-01-{ended.pid}"
    live = runs / f"exp-{tag}-T0-00-02-{alive.pid}"
    try:
        for folder in (stale, live):
            (folder / "workspace").mkdir(parents=True)
            (folder / "workspace" / "file").write_text("x")
        (stale / "workspace" / "file").chmod(0o400)  # an agent's read-only leftovers too
        write_experiment(tmp_path, "exp-a")
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                str(tmp_path / "exp-a"),
                "--runs",
                "1",
                "--max-subtests",
                "1",
                "--agent",
                "nop",
                "--judge-model",
                "none",
                "--results-dir",
                str(tmp_path / "results"),
                "-p",
                "no:cacheprovider",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "1 failed" in done.stdout, done.stdout[-2000:]  # nop fails, as it should
        assert not stale.exists()
        assert (live / "workspace" / "file").read_text() == "x"
    finally:
        alive.kill()
        alive.wait()
        sweep_stale_work(runs)
    assert not live.exists()  # its owner is gone now


def test_owner_pid_reads_the_name_end() -> None:
    assert owner_pid(Path("exp-a-T0-00-empty-01-4242")) == 4242
    assert owner_pid(Path("notes")) is None
    assert owner_pid(Path("exp-0")) is None

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

from pytest_scylla.agents.base import PROMPT_FILE_NAME, AgentRequest
from pytest_scylla.agents.claude_code import ClaudeCodeAgent, bundled_claude
from pytest_scylla.redact import REDACTED
from pytest_scylla.sandbox.base import RunDirs
from pytest_scylla.sandbox.local import LocalSandboxFactory
from pytest_scylla.sandbox.reaper import owner_pid, sweep_stale_work
from pytest_scylla.session import work_root
from pytest_scylla.spec.catalogue import ResolvedSubTest
from pytest_scylla.spec.load_experiment import load_experiment
from pytest_scylla.spec.subtest import ResourcesSpec, SubTestSpec

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


@pytest.mark.slow
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


@pytest.mark.slow
def test_plain_sandbox_agent_dies_with_a_killed_session(tmp_path: Path) -> None:
    """Without bubblewrap the agent process itself still dies with the harness
    (PR_SET_PDEATHSIG); what it started in other sessions is the documented limit."""
    marker = f"scylla-plain-{uuid.uuid4().hex}"
    head, tail = marker.split("-", 1)
    write_experiment(tmp_path, "exp-a")
    argv = [
        *(sys.executable, "-m", "pytest", str(tmp_path / "exp-a")),
        *("--agent", "command", "--judge-model", "none", "-p", "no:cacheprovider"),
        *("--results-dir", str(tmp_path / "results"), "--agent-command"),
        "bash -c " + shlex.quote(f"m={head}; exec -a $m-{tail} sleep 1000"),
    ]
    env = {**os.environ, "SCYLLA_LOCAL_ISOLATION": "none"}
    session = subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, start_new_session=True
    )
    try:
        assert wait_for_processes(marker, 1, START_S)
    finally:
        kill_session(session, signal.SIGKILL)
    assert processes_with(marker, wait_s=GONE_S) == []


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.claude_cli
@pytest.mark.timeout(120)
def test_claude_code_background_step_does_not_hold_the_run(tmp_path: Path) -> None:
    """The real CLI keeps running while a Bash step it started in the background lives (seen:
    until the run's timeout). After its final result event the run ends, as a finished one,
    and the background step is gone with it."""
    fake_api = pytest.importorskip("pytest_scylla.testing.fake_api")
    cli = bundled_claude()
    if cli is None:
        pytest.skip("claude-agent-sdk with its bundled CLI is not installed")
    marker = f"scylla-bg-{uuid.uuid4().hex}"
    background = fake_api.ToolCall(
        name="Bash",
        input={"command": f"sleep 1000; : {marker}", "run_in_background": True},
    )
    experiment = load_experiment(write_experiment(tmp_path, "exp-a") / "test.yaml")
    dirs = RunDirs(tmp_path / "run" / "ws", tmp_path / "run" / "home", tmp_path / "run" / "in")
    subprocess.run(["git", "init", "-q", str(dirs.workspace)], check=True)
    dirs.inputs.mkdir(parents=True)
    (dirs.inputs / PROMPT_FILE_NAME).write_text("Start a server in the background.\n")
    spec = SubTestSpec(name="empty", resources=ResourcesSpec())
    with fake_api.FakeMessagesAPI([fake_api.Reply(tool_calls=[background]), "Done."]) as api:
        request = AgentRequest(
            experiment=experiment,
            subtest=ResolvedSubTest("T0", "00-empty", spec, spec.resources, tmp_path / "s.yaml"),
            model=None,
            timeout_s=90,
            dirs=dirs,
            agent_dir=tmp_path / "results" / "agent",
            passthrough_env={"ANTHROPIC_API_KEY": SECRET, "ANTHROPIC_BASE_URL": api.base_url},
        )
        agent = ClaudeCodeAgent(claude_bin=str(cli), extra_env={"CLAUDE_CODE_MAX_RETRIES": "0"})
        sandbox = LocalSandboxFactory(kill_grace_s=0.5).open(dirs, {})
        record = agent.run(request, sandbox)
    assert record.finished and not record.timed_out, record.error_reason
    assert record.result_text == "Done."
    assert record.duration_s is not None and record.duration_s < 45  # not the 90 s timeout
    assert processes_with(marker, wait_s=GONE_S) == []

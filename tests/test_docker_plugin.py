"""The plugin end to end with ``--sandbox docker``, in real pytest subprocesses.

* parity (issue #4): oracle and nop score and check the same in a container as on the host;
* a ``kill -9`` of pytest leaves a container behind that the next session sweeps, and the
  interrupted run completes when the same command runs again;
* what an agent can see and do inside a run: not root, no secrets, no experiment answers,
  no writes outside the workspace, no network with ``--docker-network none``.

Skipped with the sandbox's own reason when no engine answers, except in CI (CI=true), where
a missing engine is a failure (the same rule as tests/test_docker_sandbox.py).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker_engine import require_images

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ("test-001", "test-002", "test-003")
AGENTS = ("oracle", "nop")
SANDBOXES = ("local", "docker")
RUN_TIMEOUT_S = 180
pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def images() -> None:
    # Built once here, so parallel sessions below never race to build.
    require_images()


# ------------------------------------------------------------------ helpers


def _argv(
    experiments: list[str], results: Path, *, agent: str, sandbox: str, extra: tuple[str, ...] = ()
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        *[f"experiments/{name}/test.yaml" for name in experiments],
        "-p",
        "no:cacheprovider",
        "-q",
        "--agent",
        agent,
        "--judge-model",
        "none",
        "--sandbox",
        sandbox,
        "--docker-network",
        "none",
        "--tiers",
        "T0",
        "--max-subtests",
        "1",
        "--results-dir",
        str(results),
        *extra,
    ]


def _env(tmp: Path) -> dict[str, str]:
    """Each session gets its own TMPDIR: its own work root, cleaned with tmp_path."""
    tmp.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["TMPDIR"] = str(tmp)
    return env


def _start(argv: list[str], tmp: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as handle:
        return subprocess.Popen(
            argv, cwd=ROOT, env=_env(tmp), stdout=handle, stderr=subprocess.STDOUT
        )


def _finish(proc: subprocess.Popen[bytes], log: Path, timeout: float = RUN_TIMEOUT_S) -> str:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"pytest session timed out:\n{log.read_text(errors='replace')[-4000:]}")
    return log.read_text(errors="replace")


def _records(results: Path) -> dict[str, dict[str, Any]]:
    """run_result.json files by their path under the results dir (exp/tier/subtest/run)."""
    return {
        str(path.parent.relative_to(results)): json.loads(path.read_text())
        for path in sorted(results.glob("*/*/*/run-*/run_result.json"))
    }


def _docker_ps(*labels: str) -> list[str]:
    """Containers (all states) with every label given: 'id session status' lines."""
    argv = ["docker", "ps", "-a", "--filter", "label=scylla.managed=1"]
    for label in labels:
        argv += ["--filter", f"label={label}"]
    argv += ["--format", '{{.ID}} {{.Label "scylla.session"}} {{.Status}}']
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
    return [line for line in done.stdout.splitlines() if line.strip()]


# ------------------------------------------------------------------ 1. parity (issue #4)


def _parity_view(record: dict[str, Any]) -> dict[str, Any]:
    """Everything of a run record that must not depend on the sandbox, flattened."""
    view: dict[str, Any] = {
        "outcome": record["outcome"],
        "error.stage": (record["error"] or {}).get("stage"),
    }
    agent = record.get("agent") or {}
    for key in ("exit_code", "timed_out", "finished", "is_error"):
        view[f"agent.{key}"] = agent.get(key)
    result = record.get("result")
    view["result"] = result is not None
    if result is not None:
        for key in ("score", "grade", "passed", "pass_threshold", "partial"):
            view[f"result.{key}"] = result[key]
        for category, score in sorted(result["category_scores"].items()):
            view[f"result.category.{category}"] = score
        for item in result["items"]:
            view[f"result.item.{item['item_id']}"] = (item["achieved"], item["source"])
    checks = record.get("checks")
    view["checks"] = checks is not None
    if checks is not None:
        for phase in ("baseline", "after"):
            view[f"checks.{phase}.names"] = [check["name"] for check in checks[phase]]
            for check in checks[phase]:
                view[f"checks.{phase}.{check['name']}"] = (check["exit_code"], check["timed_out"])
        view["checks.rubric_commands.ids"] = sorted(checks["rubric_commands"])
        for item_id, check in sorted(checks["rubric_commands"].items()):
            view[f"checks.rubric_commands.{item_id}"] = (check["exit_code"], check["timed_out"])
    workspace = record.get("workspace")
    if workspace is not None:
        for key in ("files", "files_changed", "insertions", "deletions"):
            view[f"workspace.{key}"] = workspace[key]
    return view


def test_oracle_and_nop_agree_between_local_and_docker(tmp_path: Path) -> None:
    sessions = {}
    for agent in AGENTS:
        for sandbox in SANDBOXES:
            base = tmp_path / f"{sandbox}-{agent}"
            base.mkdir()
            log = base / "pytest.log"
            argv = _argv(
                list(EXPERIMENTS),
                base / "results",
                agent=agent,
                sandbox=sandbox,
                extra=("--runs", "1"),
            )
            sessions[agent, sandbox] = (_start(argv, base / "tmp", log), log, base / "results")
    outputs = {key: _finish(proc, log) for key, (proc, log, _) in sessions.items()}

    problems: list[str] = []
    for agent in AGENTS:
        records = {sandbox: _records(sessions[agent, sandbox][2]) for sandbox in SANDBOXES}
        for sandbox in SANDBOXES:
            expected = {f"{name}/T0/00-empty/run-01" for name in EXPERIMENTS}
            assert set(records[sandbox]) == expected, (
                f"{agent}/{sandbox}: expected one T0 run per experiment ({sorted(expected)}), "
                f"got {sorted(records[sandbox])}\n{outputs[agent, sandbox][-4000:]}"
            )
        for run_key in sorted(records["local"]):
            local = records["local"][run_key]
            docker = records["docker"].get(run_key)
            if docker is None:
                problems.append(f"{agent} {run_key}: no docker record")
                continue
            for sandbox, record in (("local", local), ("docker", docker)):
                if record["outcome"] == "error":
                    problems.append(f"{agent} {run_key} [{sandbox}]: error {record['error']}")
                want = "passed" if agent == "oracle" else "failed"
                if record["outcome"] != want:
                    problems.append(
                        f"{agent} {run_key} [{sandbox}]: outcome {record['outcome']}, want {want}"
                    )
            left, right = _parity_view(local), _parity_view(docker)
            for field in sorted(set(left) | set(right)):
                if left.get(field) != right.get(field):
                    problems.append(
                        f"{agent} {run_key} {field}: local={left.get(field)!r} "
                        f"docker={right.get(field)!r}"
                    )
    if problems:
        print("\n".join(problems))
    assert not problems, "local and docker disagree:\n" + "\n".join(problems)


# ------------------------------------------------------------------ 2. kill -9 mid-run


def test_kill_9_leaves_no_container_behind_and_rerun_completes(tmp_path: Path) -> None:
    results = tmp_path / "results"
    script = "sleep 3; echo 'print(\"Hello, World!\")' > hello.py"
    argv = _argv(
        ["test-001"],
        results,
        agent="command",
        sandbox="docker",
        extra=("--runs", "2", "--agent-command", f"bash -c {shlex.quote(script)}"),
    )

    first_log = tmp_path / "first.log"
    first = _start(argv, tmp_path / "tmp", first_log)
    deadline = time.monotonic() + 60
    seen: list[str] = []
    while time.monotonic() < deadline and first.poll() is None:
        seen = _docker_ps(f"scylla.owner.pid={first.pid}")
        if seen:
            break
        time.sleep(0.1)
    assert seen, f"no container of the first session appeared:\n{_finish(first, first_log)}"
    time.sleep(1.0)  # the agent (sleep 3) is running in the container now
    os.kill(first.pid, signal.SIGKILL)
    first.wait(30)
    session = seen[0].split()[1]
    left = _docker_ps(f"scylla.session={session}")
    # Nothing removes it now (no atexit after SIGKILL): only the next session's sweep can.
    print(f"after kill -9: containers of session {session}: {left}")

    second_log = tmp_path / "second.log"
    second = _start(argv, tmp_path / "tmp", second_log)
    output = _finish(second, second_log)
    assert second.returncode == 0, output[-4000:]

    stale = _docker_ps(f"scylla.session={session}")
    assert stale == [], f"containers of the killed session {session} survived: {stale}"
    mine = _docker_ps(f"scylla.owner.pid={second.pid}")
    assert mine == [], f"the second session left containers behind: {mine}"

    records = _records(results)
    assert sorted(records) == [
        "test-001/T0/00-empty/run-01",
        "test-001/T0/00-empty/run-02",
    ], output[-4000:]
    for key, record in records.items():
        agent = record["agent"]
        assert record["error"] is None, (key, record["error"])
        assert (agent["finished"], agent["exit_code"], agent["timed_out"]) == (True, 0, False), (
            key,
            agent,
        )
        assert record["outcome"] == "passed", (key, record["result"])
        assert "hello.py" in record["workspace"]["files"], key


# ------------------------------------------------------------------ 3. inside the container


@pytest.fixture
def host_server() -> Iterator[int]:
    """A TCP server on the host's loopback: reachable from the host, not from the run."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    server.close()


def _tcp_probe(port: int) -> str:
    return (
        'python3 -c "import socket; '
        f"socket.create_connection(('127.0.0.1', {port}), timeout=3).close()\""
    )


PROBE_SCRIPT = r"""
probe() { name=$1; shift; if "$@" >/dev/null 2>&1; then echo "$name=ok"; else echo "$name=fail"; fi; }
names='( -name rubric.yaml -o -name solve.sh -o -name criteria.md -o -name expected -o -name solution )'
{
  echo "uid=$(id -u)"
  probe list_root ls /root
  probe read_shadow cat /etc/shadow
  probe read_hostname cat /etc/hostname
  probe write_usr touch /usr/x
  probe write_etc touch /etc/x
  probe write_slash touch /x
  probe write_workspace touch /workspace/written-by-probe
  echo "found_xdev=$(find / -xdev $names -print 2>/dev/null | tr '\n' ' ')"
  echo "found_all=$(find / \( -path /proc -o -path /sys \) -prune -o $names -print 2>/dev/null | tr '\n' ' ')"
  echo "found_prompt=$(find / \( -path /proc -o -path /sys \) -prune -o -name prompt.md -print 2>/dev/null | tr '\n' ' ')"
  echo "net_ifaces=$(ls /sys/class/net | tr '\n' ' ')"
  probe tcp_host __TCP__
} > probes.txt 2>&1
"""


def test_what_an_agent_sees_inside_a_docker_run(tmp_path: Path, host_server: int) -> None:
    tcp = _tcp_probe(host_server)
    # Control: the same probe reaches the server from the host, so a failure below is the
    # network namespace, not a broken server or probe.
    control = subprocess.run(["bash", "-c", tcp], capture_output=True, text=True, timeout=30)
    assert control.returncode == 0, control.stderr

    # `set -f`: the unquoted $names must split into find's words, never glob.
    script = "set -f\n" + PROBE_SCRIPT.replace("__TCP__", tcp)
    results = tmp_path / "results"
    argv = _argv(
        ["test-001"],
        results,
        agent="command",
        sandbox="docker",
        extra=(
            "--runs",
            "1",
            "--scylla-keep-workspace",
            "--agent-command",
            f"bash -c {shlex.quote(script)}",
        ),
    )
    log = tmp_path / "pytest.log"
    output = _finish(_start(argv, tmp_path / "tmp", log), log)
    run_dir = results / "test-001" / "T0" / "00-empty" / "run-01"
    probes_file = run_dir / "workspace" / "probes.txt"
    assert probes_file.is_file(), output[-4000:]
    text = probes_file.read_text()
    print(text)
    probes: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            probes[key] = value.strip()
    record = json.loads((run_dir / "run_result.json").read_text())
    assert record["agent"]["exit_code"] == 0, record["agent"]
    assert "probes.txt" in record["workspace"]["files"]

    expected = {
        "list_root": "fail",
        "read_shadow": "fail",
        "write_usr": "fail",
        "write_etc": "fail",
        "write_slash": "fail",
        "tcp_host": "fail",
        # controls: the probes themselves work
        "read_hostname": "ok",
        "write_workspace": "ok",
    }
    wrong = {k: probes.get(k) for k, want in expected.items() if probes.get(k) != want}
    assert not wrong, f"probes differ from {expected}: {wrong}\n{text}"
    assert probes.get("uid", "0") not in ("", "0"), text
    assert probes.get("found_xdev") == "", f"experiment answers visible: {text}"
    assert probes.get("found_all") == "", f"experiment answers visible: {text}"
    # control: the search does cross into the mounted run directories
    assert "/scylla/inputs/prompt.md" in probes.get("found_prompt", ""), text
    assert probes.get("net_ifaces") == "lo", text

"""Attacks of a hostile agent on the docker sandbox, each one a test (DESIGN.md section 8).

Every test here failed on the sandbox before the fix it guards: tini as a dumpable PID 1,
no kill of what a process left running, a chown that followed shared inodes, credentials
copies left in /tmp, containers that waited for a later session to be swept.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker_engine import require_images

from pytest_scylla.sandbox.base import ProcessOutcome, RunDirs
from pytest_scylla.sandbox.docker import (
    SESSION_DIR_PREFIX,
    DockerSandbox,
    DockerSandboxFactory,
    DockerSettings,
    _sweep_session_dirs,
)

ROOT = Path(__file__).resolve().parents[1]
PATH = "/usr/local/bin:/usr/bin:/bin"
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="the run dirs are lent only by root")
pytestmark = pytest.mark.docker


@pytest.fixture(scope="module", autouse=True)
def images() -> None:
    require_images()


@pytest.fixture
def factory() -> Iterator[DockerSandboxFactory]:
    made = DockerSandboxFactory(DockerSettings(network="none"))
    yield made
    made.close_all()


def _dirs(tmp_path: Path) -> RunDirs:
    dirs = RunDirs(tmp_path / "workspace", tmp_path / "home", tmp_path / "inputs")
    for path in dirs.all():
        path.mkdir()
    return dirs


def _run(
    box: DockerSandbox, tmp_path: Path, script: str, timeout_s: float = 30
) -> tuple[ProcessOutcome, str, str]:
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    outcome = box.run(
        ["sh", "-c", script],
        env={"PATH": PATH},
        timeout_s=timeout_s,
        stdout_path=out,
        stderr_path=err,
    )
    return outcome, out.read_text(), err.read_text()


# ------------------------------------------------------------------ shared inodes


@ROOT_ONLY
def test_hardlink_to_a_file_outside_the_run_is_not_handed_over(
    factory: DockerSandboxFactory, tmp_path: Path
) -> None:
    # A clone with hardlinked objects (or anything else linking out of the run) must not
    # make the container user the owner of the other run's / the cache's inode.
    outside = tmp_path / "cache-object"
    outside.write_text("shared object\n")
    outside.chmod(0o444)
    dirs = _dirs(tmp_path)
    os.link(outside, dirs.workspace / "object")
    box = factory.open(dirs, {})
    try:
        assert outside.stat().st_uid == 0 and outside.stat().st_nlink == 1
        inside = dirs.workspace / "object"
        assert inside.stat().st_ino != outside.stat().st_ino
        assert inside.read_text() == "shared object\n"
        assert inside.stat().st_mode & 0o777 == 0o444
        outcome, _, err = _run(box, tmp_path, "chmod u+w object && echo tampered > object")
        assert outcome.exit_code == 0, err
    finally:
        box.close()
    assert outside.read_text() == "shared object\n"


def test_the_agent_cannot_link_out_of_its_mount(
    factory: DockerSandboxFactory, tmp_path: Path
) -> None:
    # Why close() may hand the tree back without copying shared inodes: every link the
    # agent can make stays inside one bind mount.
    dirs = _dirs(tmp_path)
    (dirs.inputs / "prompt.md").write_text("task\n")
    box = factory.open(dirs, {})
    try:
        for source in ("/scylla/inputs/prompt.md", "/scylla/lease"):
            outcome, _, err = _run(box, tmp_path, f"ln {source} linked")
            assert outcome.exit_code != 0, source
        outcome, _, err = _run(box, tmp_path, "echo x > /home/scylla/f && ln /home/scylla/f l")
        assert outcome.exit_code != 0 and "cross-device" in err.lower(), err
    finally:
        box.close()


@ROOT_ONLY
def test_symlink_out_of_the_run_is_not_followed(
    factory: DockerSandboxFactory, tmp_path: Path
) -> None:
    outside = tmp_path / "host-file"
    outside.write_text("host\n")
    dirs = _dirs(tmp_path)
    (dirs.workspace / "link").symlink_to(outside)
    (dirs.workspace / "dirlink").symlink_to(tmp_path, target_is_directory=True)
    box = factory.open(dirs, {})
    try:
        assert outside.stat().st_uid == 0
        assert tmp_path.stat().st_uid == 0
        assert (dirs.workspace / "link").lstat().st_uid != 0
    finally:
        box.close()


# ------------------------------------------------------------------ processes


def test_a_detached_process_does_not_outlive_its_run(
    factory: DockerSandboxFactory, tmp_path: Path
) -> None:
    box = factory.open(_dirs(tmp_path), {})
    try:
        started = time.monotonic()
        # One keeps the output open (the run used to wait for it until the timeout), one
        # starts its own session with nothing open (it used to survive into the checks).
        script = "setsid sleep 301 </dev/null >/dev/null 2>&1 & sleep 302 & echo bye"
        outcome, out, _ = _run(box, tmp_path, script, timeout_s=20)
        assert time.monotonic() - started < 15  # not held until the 20 s timeout
        assert (outcome.exit_code, outcome.timed_out, out) == (0, False, "bye\n")
        outcome, out, _ = _run(box, tmp_path, "ps -e -o args=")
        assert "sleep" not in out, out
    finally:
        box.close()


def test_the_agent_cannot_tamper_with_pid_1_or_the_lease(
    factory: DockerSandboxFactory, tmp_path: Path
) -> None:
    box = factory.open(_dirs(tmp_path), {})
    try:
        # Same uid as PID 1: without the non-dumpable flag it could read its memory and
        # environment, or ptrace it and switch the lease check off.
        outcome, _, err = _run(box, tmp_path, "cat /proc/1/environ")
        assert outcome.exit_code != 0 and "Permission denied" in err
        outcome, _, err = _run(box, tmp_path, "head -c 1 /proc/1/mem")
        assert outcome.exit_code != 0
        outcome, _, _ = _run(box, tmp_path, "kill -9 1; sleep 0.5; kill -0 1")
        assert outcome.exit_code == 0, "PID 1 of a namespace ignores SIGKILL from inside"
        outcome, _, _ = _run(box, tmp_path, "touch /scylla/lease || rm -f /scylla/lease")
        assert outcome.exit_code != 0, "the lease is the owner's, read-only"
        outcome, _, err = _run(box, tmp_path, "echo still alive")
        assert outcome.exit_code == 0, err
    finally:
        box.close()


# ------------------------------------------------------------------ credentials


def _bind_mounts(mountinfo: str) -> dict[str, tuple[str, str]]:
    """Mount point -> (source path on its filesystem, options) of every host bind mount."""
    virtual = {"proc", "tmpfs", "devpts", "sysfs", "cgroup", "cgroup2", "mqueue", "overlay"}
    mounts = {}
    for line in mountinfo.splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        target = fields[4]
        if fstype in virtual or target in ("/etc/resolv.conf", "/etc/hostname", "/etc/hosts"):
            continue
        mounts[target] = (fields[3], fields[5])
    return mounts


def test_credentials_mount_shows_one_read_only_file_and_nothing_beside_it(
    tmp_path: Path,
) -> None:
    creds = tmp_path / "host" / ".credentials.json"
    creds.parent.mkdir()
    creds.write_text('{"claudeAiOauth": {"accessToken": "tok-only-this"}}')
    (creds.parent / "other-host-secret").write_text("tok-beside")
    factory = DockerSandboxFactory(
        DockerSettings(network="none", mount_credentials=True, credentials_file=creds)
    )
    dirs = _dirs(tmp_path)
    box = factory.open(dirs, {})
    try:
        assert factory._lease is not None
        (factory._lease.dir / "canary").write_text("tok-in-session-dir")
        outcome, out, err = _run(box, tmp_path, "cat /proc/self/mountinfo")
        assert outcome.exit_code == 0, err
        mounts = _bind_mounts(out)
        assert set(mounts) == {
            "/workspace",
            "/home/scylla",
            "/scylla/inputs",
            "/scylla/lease",
            "/home/scylla/.claude/.credentials.json",
        }
        source, options = mounts["/home/scylla/.claude/.credentials.json"]
        assert options.startswith("ro")
        assert source.endswith("/credentials.json") and str(creds.parent) not in source
        assert mounts["/scylla/lease"][1].startswith("ro")
        names = "-name other-host-secret -o -name canary -o -name 'cred-*'"
        script = f"find / \\( -path /proc -o -path /sys \\) -prune -o \\( {names} \\) -print"
        outcome, out, _ = _run(box, tmp_path, script)
        assert out == "", f"host files visible in the container: {out}"
        copy_dir = box._secret_dir
        assert copy_dir is not None and copy_dir.parent == factory._lease.dir
    finally:
        box.close()
        factory.close_all()
    assert not copy_dir.exists()
    assert not copy_dir.parent.exists(), "close_all() removes the session folder"


# ------------------------------------------------------------------ kill -9 of the session

SECRET = "sk-test-kill9-secret-0042"


def _session_argv(results: Path, script: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "experiments/test-001/test.yaml",
        "-p",
        "no:cacheprovider",
        "-q",
        "--agent",
        "command",
        "--agent-command",
        f"sh -c {shlex.quote(script)}",
        "--judge-model",
        "none",
        "--sandbox",
        "docker",
        "--docker-network",
        "none",
        "--tiers",
        "T0",
        "--max-subtests",
        "1",
        "--runs",
        "1",
        "--results-dir",
        str(results),
    ]


def _containers_of(pid: int) -> list[str]:
    done = subprocess.run(
        ["docker", "ps", "-a", "-q", "--filter", f"label=scylla.owner.pid={pid}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.split()


def _files_holding(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_kill_9_mid_run_leaves_no_raw_secret_and_no_container(tmp_path: Path) -> None:
    tmp, results = tmp_path / "tmp", tmp_path / "results"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(TMPDIR=str(tmp), ANTHROPIC_API_KEY=SECRET)
    # A full line, then a partial one still pending in the redactor when the session dies.
    script = 'echo "key $ANTHROPIC_API_KEY"; printf "%s" "$ANTHROPIC_API_KEY"; sleep 120'
    log = tmp_path / "session.log"
    with open(log, "wb") as handle:
        session = subprocess.Popen(
            _session_argv(results, script),
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        stdout: list[Path] = []
        while time.monotonic() < deadline and session.poll() is None:
            stdout = [p for p in results.rglob("agent/stdout*") if b"key" in p.read_bytes()]
            if stdout:
                break
            time.sleep(0.1)
        assert stdout, f"the agent never wrote:\n{log.read_text(errors='replace')[-4000:]}"
        containers = _containers_of(session.pid)
        assert containers, "no container of the session"
        time.sleep(0.5)  # the partial line reaches the pump
        os.kill(session.pid, signal.SIGKILL)
        session.wait(30)
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()

    assert _files_holding(results, SECRET.encode()) == []
    assert b"key [REDACTED]" in stdout[0].read_bytes()

    # No later session: the container ends itself once the lease is stale.
    deadline = time.monotonic() + 60
    while _containers_of(session.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _containers_of(session.pid) == [], "the container outlived its session"

    # The session folder (lease, credentials copies) stayed behind; a sweep removes it.
    session_dirs = list(tmp.glob(f"{SESSION_DIR_PREFIX}{session.pid}-*"))
    assert session_dirs
    _sweep_session_dirs(tmp)
    assert not any(p.exists() for p in session_dirs)


def test_sweep_removes_credentials_copies_of_dead_sessions_only(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    gone = tmp_path / f"{SESSION_DIR_PREFIX}{dead.pid}-1-abc"
    alive = tmp_path / f"{SESSION_DIR_PREFIX}{os.getpid()}--def"
    for folder in (gone, alive):
        (folder / "cred-x").mkdir(parents=True)
        (folder / "cred-x" / "credentials.json").write_text("tok")
    unrelated = tmp_path / "scylla-docker-notes"
    unrelated.mkdir()
    assert _sweep_session_dirs(tmp_path) == 1
    assert not gone.exists() and alive.exists() and unrelated.exists()

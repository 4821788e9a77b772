"""The docker sandbox against a real Docker engine.

Skipped with the sandbox's own reason when no engine answers, except in CI (CI=true),
where a missing engine is a failure: CI must exercise the isolation it promises.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker_engine import require_images

from pytest_scylla.redact import Redactor
from pytest_scylla.sandbox.base import ProcessOutcome, RunDirs, SandboxError
from pytest_scylla.sandbox.docker import (
    LABEL_MANAGED,
    LABEL_OWNER_HOST,
    LABEL_OWNER_PID,
    LABEL_SESSION,
    LAST_WORD_GRACE_S,
    DockerSandbox,
    DockerSandboxFactory,
    DockerSettings,
)
from pytest_scylla.sandbox.docker_image import apt_mirror

PATH = "/usr/local/bin:/usr/bin:/bin"
pytestmark = pytest.mark.docker


@pytest.fixture(scope="session")
def images() -> None:
    require_images()


@pytest.fixture
def factory(images: None) -> Iterator[DockerSandboxFactory]:
    made = DockerSandboxFactory(DockerSettings(network="none"))
    yield made
    made.close_all()


def _dirs(tmp_path: Path) -> RunDirs:
    dirs = RunDirs(tmp_path / "workspace", tmp_path / "home", tmp_path / "inputs")
    for path in (dirs.workspace, dirs.home, dirs.inputs):
        path.mkdir()
    (dirs.inputs / "prompt.md").write_text("do the thing\n")
    return dirs


@pytest.fixture
def sandbox(factory: DockerSandboxFactory, tmp_path: Path) -> Iterator[DockerSandbox]:
    box = factory.open(_dirs(tmp_path), {"scylla.run": "tests::docker"})
    yield box
    box.close()


def _run(
    box: DockerSandbox,
    tmp_path: Path,
    argv: list[str],
    env: dict[str, str] | None = None,
    timeout_s: float = 30,
) -> tuple[ProcessOutcome, str, str]:
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    outcome = box.run(
        argv,
        env={"PATH": PATH} if env is None else env,
        timeout_s=timeout_s,
        stdout_path=out,
        stderr_path=err,
    )
    return outcome, out.read_text(), err.read_text()


def _container_exists(factory: DockerSandboxFactory, container_id: str) -> bool:
    import docker.errors

    client, _ = factory._engine()
    try:
        client.containers.get(container_id)
    except docker.errors.NotFound:
        return False
    return True


# ------------------------------------------------------------------ image and basics


def test_apt_mirror_comes_from_apt_config(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "x.sources").write_text(
        "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb\nURIs: http://other.invalid/sec\n"
        "Suites: bookworm-security\nComponents: main\n"
    )
    assert apt_mirror("bookworm", tmp_path) == "http://mirror.invalid/debian"
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://one.invalid/d bookworm main\n")
    assert apt_mirror("bookworm", tmp_path) == "http://one.invalid/d"


def test_claude_cli_runs_in_image(sandbox: DockerSandbox, tmp_path: Path) -> None:
    outcome, out, _ = _run(sandbox, tmp_path, ["claude", "--version"])
    assert outcome.exit_code == 0
    assert "Claude Code" in out


def test_output_is_demultiplexed_and_exit_code_kept(sandbox: DockerSandbox, tmp_path: Path) -> None:
    outcome, out, err = _run(sandbox, tmp_path, ["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (outcome.exit_code, outcome.timed_out) == (7, False)
    assert (out, err) == ("out\n", "err\n")


def test_paths_and_inputs(sandbox: DockerSandbox, tmp_path: Path) -> None:
    assert sandbox.paths.workspace == "/workspace"
    outcome, out, _ = _run(sandbox, tmp_path, ["sh", "-c", "pwd; cat /scylla/inputs/prompt.md"])
    assert outcome.exit_code == 0
    assert out == "/workspace\ndo the thing\n"
    outcome, _, _ = _run(sandbox, tmp_path, ["touch", "/scylla/inputs/new"])
    assert outcome.exit_code != 0, "inputs must be read-only"


# ------------------------------------------------------------------ isolation


def test_runs_as_non_root(sandbox: DockerSandbox, tmp_path: Path) -> None:
    outcome, out, _ = _run(sandbox, tmp_path, ["id", "-u"])
    assert outcome.exit_code == 0
    assert out.strip() != "0"


def test_host_secrets_not_visible(sandbox: DockerSandbox, tmp_path: Path) -> None:
    canary = Path("/root") / f".scylla-canary-{os.getpid()}"
    if os.access("/root", os.W_OK):
        canary.write_text("host secret")
    try:
        _, out, _ = _run(
            sandbox, tmp_path, ["sh", "-c", f"cat /etc/shadow; ls -a /root; cat {canary}"]
        )
        assert "host secret" not in out
        assert canary.name not in out
        assert "root:" not in out  # no shadow entries readable
    finally:
        canary.unlink(missing_ok=True)


@pytest.mark.parametrize("target", ["/etc/x", "/usr/x", "/x"])
def test_cannot_write_outside_workspace(
    sandbox: DockerSandbox, tmp_path: Path, target: str
) -> None:
    outcome, _, _ = _run(sandbox, tmp_path, ["touch", target])
    assert outcome.exit_code != 0


def test_env_passes_through_and_nothing_else(
    sandbox: DockerSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCYLLA_HOST_CANARY", "leaked")
    env = {"PATH": PATH, "ANTHROPIC_API_KEY": "sk-test-123", "SPACED": "a b 'c'"}
    outcome, out, _ = _run(sandbox, tmp_path, ["env"], env=env)
    assert outcome.exit_code == 0
    assert sorted(out.splitlines()) == sorted(f"{k}={v}" for k, v in env.items())


def _http_server() -> tuple[http.server.HTTPServer, int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def _connect_script(port: int) -> list[str]:
    code = (
        "import urllib.request;"
        f"urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=3).read()"
    )
    return ["python3", "-c", code]


def test_network_none_cannot_reach_host(sandbox: DockerSandbox, tmp_path: Path) -> None:
    server, port = _http_server()
    try:
        outcome, _, err = _run(sandbox, tmp_path, _connect_script(port))
    finally:
        server.shutdown()
    assert outcome.exit_code != 0
    assert "Connection refused" in err or "URLError" in err


def test_network_host_reaches_host(images: None, tmp_path: Path) -> None:
    factory = DockerSandboxFactory(DockerSettings(network="host"))
    server, port = _http_server()
    box = factory.open(_dirs(tmp_path), {})
    try:
        outcome, _, err = _run(box, tmp_path, _connect_script(port))
    finally:
        box.close()
        server.shutdown()
    assert outcome.exit_code == 0, err


# ------------------------------------------------------------------ ownership


def test_container_files_removable_by_host(factory: DockerSandboxFactory, tmp_path: Path) -> None:
    dirs = _dirs(tmp_path)
    box = factory.open(dirs, {})
    script = "mkdir -p a/b && echo x > a/b/f && chmod 500 a/b && echo y > /home/scylla/.hist && git init -q r"
    outcome, _, err = _run(box, tmp_path, ["sh", "-c", script])
    box.close()
    assert outcome.exit_code == 0, err
    for path in (dirs.workspace / "a" / "b" / "f", dirs.home / ".hist", dirs.workspace / "r"):
        assert path.stat().st_uid == os.geteuid()
    (dirs.workspace / "a" / "b").chmod(0o700)  # the container made it read-only on purpose
    shutil.rmtree(dirs.workspace)
    shutil.rmtree(dirs.home)


# ------------------------------------------------------------------ lifecycle


def test_timeout_kills_and_sandbox_stays_usable(sandbox: DockerSandbox, tmp_path: Path) -> None:
    started = time.monotonic()
    script = "setsid sleep 101 & nohup sleep 102 >/dev/null 2>&1 & sleep 100"
    outcome, _, _ = _run(sandbox, tmp_path, ["sh", "-c", script], timeout_s=2)
    assert time.monotonic() - started < 30  # killed at the timeout, not after the 100 s sleep
    assert outcome.timed_out and outcome.exit_code is None
    assert not outcome.stopped_after_last_word and not outcome.disk_limit_exceeded
    # The whole tree died, escaped members included; the same container runs the next one.
    outcome, out, _ = _run(sandbox, tmp_path, ["ps", "-e", "-o", "comm="])
    assert outcome.exit_code == 0
    assert "sleep" not in out.split(), out


def test_timeout_then_close_leaves_no_container(
    factory: DockerSandboxFactory, tmp_path: Path
) -> None:
    box = factory.open(_dirs(tmp_path), {})
    started = time.monotonic()
    outcome, _, _ = _run(box, tmp_path, ["sh", "-c", "setsid sleep 100 & sleep 100"], timeout_s=2)
    box.close()
    assert outcome.timed_out
    assert time.monotonic() - started < 30  # killed at the timeout, not after the 100 s sleep
    assert not _container_exists(factory, box.container_id)


def test_close_removes_container_and_is_idempotent(
    factory: DockerSandboxFactory, tmp_path: Path
) -> None:
    box = factory.open(_dirs(tmp_path), {"scylla.run": "tests::close"})
    assert _container_exists(factory, box.container_id)
    box.close()
    box.close()
    assert not _container_exists(factory, box.container_id)
    with pytest.raises(SandboxError):
        _run(box, tmp_path, ["true"])


def test_ctrl_c_during_run_removes_container(factory: DockerSandboxFactory, tmp_path: Path) -> None:
    box = factory.open(_dirs(tmp_path), {})
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        _run(box, tmp_path, ["sleep", "30"], timeout_s=20)
    timer.join()
    assert not _container_exists(factory, box.container_id)


def test_labels(factory: DockerSandboxFactory, tmp_path: Path) -> None:
    box = factory.open(_dirs(tmp_path), {"scylla.run": "tests/x.py::t[1]"})
    try:
        client, _ = factory._engine()
        labels = client.containers.get(box.container_id).labels
    finally:
        box.close()
    assert labels[LABEL_MANAGED] == "1"
    assert labels[LABEL_SESSION] == factory.session_id
    assert labels["scylla.run"] == "tests/x.py::t[1]"
    assert labels[LABEL_OWNER_PID] == str(os.getpid())


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_sweep_removes_containers_of_dead_owners(factory: DockerSandboxFactory) -> None:
    client, _ = factory._engine()
    base = {LABEL_MANAGED: "1", LABEL_OWNER_HOST: socket.gethostname()}
    dead = client.containers.create(
        factory.settings.image,
        command=["idle"],
        network_mode="none",
        labels={**base, LABEL_SESSION: "dead-session", LABEL_OWNER_PID: str(_dead_pid())},
    )
    alive = client.containers.create(
        factory.settings.image,
        command=["idle"],
        network_mode="none",
        labels={**base, LABEL_SESSION: "live-session", LABEL_OWNER_PID: str(os.getpid())},
    )
    try:
        assert factory.sweep_stale() >= 1
        assert not _container_exists(factory, str(dead.id))
        assert _container_exists(factory, str(alive.id))
    finally:
        alive.remove(force=True)
        if _container_exists(factory, str(dead.id)):
            dead.remove(force=True)


def test_check_available_names_the_fix() -> None:
    settings = DockerSettings(docker_host="unix:///nonexistent/docker.sock", network="none")
    reason = DockerSandboxFactory(settings).check_available()
    assert reason is not None
    assert "unix:///nonexistent/docker.sock" in reason
    assert "start-dockerd.sh" in reason
    assert "\n" not in reason


def test_missing_image_is_a_sandbox_error(images: None, tmp_path: Path) -> None:
    factory = DockerSandboxFactory(DockerSettings(image="scylla-missing:none", network="none"))
    with pytest.raises(SandboxError, match="not found"):
        factory.open(_dirs(tmp_path), {})


def test_credentials_file_mounted_read_only_and_not_left_behind(
    images: None, tmp_path: Path
) -> None:
    creds = tmp_path / "host-credentials.json"
    creds.write_text('{"claudeAiOauth": {"accessToken": "tok-123"}}')
    creds.chmod(0o600)
    settings = DockerSettings(network="none", mount_credentials=True, credentials_file=creds)
    dirs = _dirs(tmp_path)
    box = DockerSandboxFactory(settings).open(dirs, {})
    try:
        target = "/home/scylla/.claude/.credentials.json"
        outcome, out, _ = _run(box, tmp_path, ["cat", target])
        assert (outcome.exit_code, out) == (0, creds.read_text())
        outcome, _, _ = _run(box, tmp_path, ["sh", "-c", f"echo x > {target}"])
        assert outcome.exit_code != 0, "credentials must be read-only"
        outcome, _, err = _run(box, tmp_path, ["touch", "/home/scylla/.claude/settings.json"])
        assert outcome.exit_code == 0, err  # ~/.claude itself stays writable
    finally:
        box.close()
    leaked = [p for p in dirs.home.rglob("*") if p.is_file() and "tok-123" in p.read_text()]
    assert leaked == []
    assert box._secret_dir is not None and not box._secret_dir.exists()


# ------------------------------------------------------------------ hardening (docker inspect)


def test_hardening_seen_by_docker_inspect(factory: DockerSandboxFactory, tmp_path: Path) -> None:
    box = factory.open(_dirs(tmp_path), {})
    try:
        client, _ = factory._engine()
        attrs = client.containers.get(box.container_id).attrs
        exec_user = box._user
    finally:
        box.close()
    host, config = attrs["HostConfig"], attrs["Config"]
    assert config["User"] == exec_user and not exec_user.startswith("0:")
    assert (host["CapDrop"], host.get("CapAdd")) == (["ALL"], None)
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["Privileged"] is False
    assert host["Memory"] == 4 * 2**30
    assert host["NanoCpus"] == 2 * 10**9
    assert host["PidsLimit"] == 512
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["AutoRemove"] is True
    assert set(host["Tmpfs"]) == {"/tmp", "/var/tmp", "/run/lock"}
    binds = {m["Destination"]: m["RW"] for m in attrs["Mounts"] if m["Type"] == "bind"}
    assert binds == {
        "/workspace": True,
        "/home/scylla": True,
        "/scylla/inputs": False,
        "/scylla/lease": False,
    }


def test_default_network_is_none() -> None:
    assert DockerSettings().network == "none"


def test_root_filesystem_is_read_only_and_tmp_is_bounded(images: None, tmp_path: Path) -> None:
    factory = DockerSandboxFactory(DockerSettings(network="none", tmpfs_size="1m"))
    box = factory.open(_dirs(tmp_path), {})
    try:
        outcome, _, err = _run(box, tmp_path, ["touch", "/var/lib/x"])
        assert outcome.exit_code != 0 and "Read-only file system" in err
        script = "head -c 2000000 /dev/zero > /tmp/big"
        outcome, _, err = _run(box, tmp_path, ["sh", "-c", script])
        assert outcome.exit_code != 0 and "No space left" in err
        outcome, _, err = _run(box, tmp_path, ["sh", "-c", "rm /tmp/big && echo ok > /tmp/small"])
        assert outcome.exit_code == 0, err
    finally:
        box.close()
        factory.close_all()


# ------------------------------------------------------------------ redaction as written

SECRET = "sk-test-streamed-secret-4242"


def _secret_run(
    box: DockerSandbox, tmp_path: Path, script: str, **kwargs: object
) -> ProcessOutcome:
    return box.run(
        ["sh", "-c", script],
        env={"PATH": PATH, "K": SECRET},
        stdout_path=tmp_path / "stdout.txt",
        stderr_path=tmp_path / "stderr.txt",
        redactor=Redactor([SECRET]),
        **kwargs,  # type: ignore[arg-type]
    )


def _on_disk(tmp_path: Path) -> bytes:
    return (tmp_path / "stdout.txt").read_bytes() + (tmp_path / "stderr.txt").read_bytes()


# The secret arrives in two writes, the second without a newline: a partial line that is
# still pending when the run is cut short.
SPLIT_ECHO = (
    'echo "key $K"; echo "$K" >&2; printf "%s" "${K%????}"; sleep 0.3; printf "%s" "${K#${K%????}}"'
)


def test_output_is_redacted_as_it_is_written(sandbox: DockerSandbox, tmp_path: Path) -> None:
    snapshots: list[bytes] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            with contextlib.suppress(FileNotFoundError):
                snapshots.append(_on_disk(tmp_path))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        outcome = _secret_run(sandbox, tmp_path, f"{SPLIT_ECHO}; sleep 30", timeout_s=2)
    finally:
        stop.set()
        watcher.join()
    assert outcome.timed_out
    assert any(b"key [REDACTED]" in shot for shot in snapshots), "nothing seen mid-run"
    assert not any(SECRET.encode() in shot for shot in snapshots)
    final = _on_disk(tmp_path)
    assert SECRET.encode() not in final
    assert final.count(b"[REDACTED]") == 3, final  # the pending partial line too


def test_ctrl_c_mid_run_leaves_no_raw_secret(factory: DockerSandboxFactory, tmp_path: Path) -> None:
    box = factory.open(_dirs(tmp_path), {})
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        _secret_run(box, tmp_path, f"{SPLIT_ECHO}; sleep 30", timeout_s=20)
    timer.join()
    on_disk = _on_disk(tmp_path)
    assert SECRET.encode() not in on_disk
    assert b"key [REDACTED]" in on_disk
    assert not _container_exists(factory, box.container_id)


def test_error_in_the_pump_mid_run_kills_the_run_and_leaves_no_raw_secret(
    sandbox: DockerSandbox, tmp_path: Path
) -> None:
    def broken(line: bytes) -> bool:
        raise RuntimeError("predicate failed")

    started = time.monotonic()
    with pytest.raises(SandboxError, match="predicate failed"):
        _secret_run(sandbox, tmp_path, f"{SPLIT_ECHO}; sleep 30", timeout_s=20, stop_when=broken)
    assert time.monotonic() - started < 10
    assert SECRET.encode() not in _on_disk(tmp_path)
    outcome, out, _ = _run(sandbox, tmp_path, ["ps", "-e", "-o", "comm="])
    assert outcome.exit_code == 0 and "sleep" not in out.split(), out


# ------------------------------------------------------------------ last word

RESULT_LINE = 'echo \'{"type":"result","subtype":"success"}\''


def _is_result(line: bytes) -> bool:
    return line.startswith(b'{"type":"result"')


def test_last_word_then_silence_ends_the_run(sandbox: DockerSandbox, tmp_path: Path) -> None:
    started = time.monotonic()
    outcome = sandbox.run(
        ["sh", "-c", f"echo working; {RESULT_LINE}; sleep 100"],
        env={"PATH": PATH},
        timeout_s=60,
        stdout_path=tmp_path / "out",
        stderr_path=tmp_path / "err",
        stop_when=_is_result,
    )
    assert time.monotonic() - started < LAST_WORD_GRACE_S + 20  # well before the 60 s timeout
    assert outcome.stopped_after_last_word and not outcome.timed_out
    assert outcome.exit_code is None
    assert (tmp_path / "out").read_text() == 'working\n{"type":"result","subtype":"success"}\n'
    outcome, out, _ = _run(sandbox, tmp_path, ["ps", "-e", "-o", "comm="])
    assert "sleep" not in out.split(), out


def test_last_word_then_exit_is_an_ordinary_exit(sandbox: DockerSandbox, tmp_path: Path) -> None:
    seen: list[bytes] = []

    def watch(line: bytes) -> bool:
        seen.append(line)
        return _is_result(line)

    outcome = sandbox.run(
        ["sh", "-c", f"printf 'a\\nb'; echo c; {RESULT_LINE}; exit 3"],
        env={"PATH": PATH},
        timeout_s=30,
        stdout_path=tmp_path / "out",
        stderr_path=tmp_path / "err",
        stop_when=watch,
    )
    assert (outcome.exit_code, outcome.stopped_after_last_word) == (3, False)
    assert seen == [b"a\n", b"bc\n", b'{"type":"result","subtype":"success"}\n']


# ------------------------------------------------------------------ disk limit


def test_disk_limit_kills_a_run_that_fills_its_workspace(images: None, tmp_path: Path) -> None:
    settings = DockerSettings(network="none", disk="5m", disk_check_every_s=0.5)
    factory = DockerSandboxFactory(settings)
    dirs = _dirs(tmp_path)
    box = factory.open(dirs, {})
    try:
        script = "for i in $(seq 50); do head -c 1048576 /dev/urandom > f$i; sleep 0.05; done"
        outcome, _, _ = _run(box, tmp_path, ["sh", "-c", script], timeout_s=60)
        assert outcome.disk_limit_exceeded
        assert outcome.exit_code is None and not outcome.timed_out
        written = sum(p.stat().st_size for p in dirs.workspace.iterdir())
        assert written < 40 * 2**20, "the writer ran to its end"
        outcome, _, err = _run(box, tmp_path, ["sh", "-c", "rm -f f*"])
        assert outcome.exit_code == 0, err  # the sandbox stays usable
    finally:
        box.close()
        factory.close_all()


# ------------------------------------------------------------------ lease


def test_container_ends_itself_when_its_lease_goes_stale(images: None, tmp_path: Path) -> None:
    factory = DockerSandboxFactory(DockerSettings(network="none", lease_stale_s=4))
    box = factory.open(_dirs(tmp_path), {})
    try:
        time.sleep(5)  # longer than the stale age: the renewing owner keeps it alive
        outcome, _, _ = _run(box, tmp_path, ["true"])
        assert outcome.exit_code == 0
        assert factory._lease is not None
        factory._lease._stop.set()  # the owner stops renewing, as a SIGKILLed one would
        deadline = time.monotonic() + 20
        while _container_exists(factory, box.container_id) and time.monotonic() < deadline:
            time.sleep(0.25)
        assert not _container_exists(factory, box.container_id)
        with pytest.raises(SandboxError):
            _run(box, tmp_path, ["true"])
    finally:
        box.close()
        factory.close_all()

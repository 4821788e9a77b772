"""The runner image's inputs and the docker preflight a user sees.

* the image fingerprint is the content of its inputs: copies of the same files with other
  paths and mtimes (another venv, another checkout) give the same hash, one changed byte
  another;
* ``ensure_images`` says "up to date" only when it built nothing;
* the preflight's build progress and stale-container count reach the terminal (it runs in
  pytest_configure, before pytest's terminal reporter exists);
* a missing engine or a missing claude-agent-sdk is one usage line, never INTERNALERROR.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.metadata
import os
import socket
import subprocess
import uuid
from pathlib import Path

import docker
import docker.errors
import pytest
from docker_engine import require_docker_engine, require_images
from experiment_factory import write_experiment

from pytest_scylla.sandbox.docker import (
    LABEL_MANAGED,
    LABEL_OWNER_HOST,
    LABEL_OWNER_PID,
    LABEL_SESSION,
)
from pytest_scylla.sandbox.docker_image import (
    BASE_IMAGE,
    BUILD_CONTEXT,
    RUNNER_IMAGE,
    ImageBuildError,
    claude_binary,
    claude_digest,
    context_files,
    ensure_images,
    runner_inputs_hash,
)


def _copy_context(target: Path, mtime: int) -> Path:
    target.mkdir(parents=True)
    for name, content in context_files():
        (target / name).write_bytes(content)
        os.utime(target / name, (mtime, mtime))
    return target


def _fake_cli(path: Path, text: str = "#!/bin/sh\necho fake claude\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


# ------------------------------------------------------------------ content fingerprint


def test_the_build_context_is_package_data_with_dockerfile_entrypoint_and_init() -> None:
    names = [name for name, _ in context_files()]
    assert names == ["Dockerfile", "entrypoint.sh", "scylla-init.py"]
    assert "pytest_scylla" in str(BUILD_CONTEXT)


def test_cli_digest_is_its_content_hash_whatever_its_path_or_mtime(tmp_path: Path) -> None:
    first = _fake_cli(tmp_path / "venv-a" / "claude")
    second = _fake_cli(tmp_path / "venv-b" / "claude")
    os.utime(first, (1_000_000, 1_000_000))
    os.utime(second, (2_000_000, 2_000_000))
    expected = hashlib.sha256(first.read_bytes()).hexdigest()
    assert claude_digest(first) == claude_digest(second) == expected
    changed = _fake_cli(tmp_path / "venv-c" / "claude", "#!/bin/sh\necho other\n")
    assert claude_digest(changed) != expected


def test_runner_hash_ignores_paths_and_mtimes_and_sees_one_changed_byte(tmp_path: Path) -> None:
    cli = _fake_cli(tmp_path / "claude")
    first = _copy_context(tmp_path / "checkout-a", mtime=1_000_000)
    second = _copy_context(tmp_path / "checkout-b", mtime=2_000_000)
    reference = runner_inputs_hash("sha256:base", first, cli)
    assert runner_inputs_hash("sha256:base", second, cli) == reference
    assert runner_inputs_hash("sha256:other-base", first, cli) != reference
    entrypoint = second / "entrypoint.sh"
    entrypoint.write_bytes(entrypoint.read_bytes().replace(b"kill -9 -1", b"kill -9 -2"))
    assert runner_inputs_hash("sha256:base", second, cli) != reference


def test_a_build_context_without_dockerfile_is_an_image_build_error(tmp_path: Path) -> None:
    context = _copy_context(tmp_path / "context", mtime=1_000_000)
    (context / "Dockerfile").unlink()
    with pytest.raises(ImageBuildError, match="no Dockerfile"):
        runner_inputs_hash("sha256:base", context, _fake_cli(tmp_path / "claude"))


@pytest.mark.slow
def test_bundled_cli_digest_is_the_wheel_record_hash_and_its_content_hash() -> None:
    try:
        binary = claude_binary()
    except ImageBuildError as exc:
        pytest.skip(str(exc))
    record = next(
        entry
        for entry in importlib.metadata.distribution("claude-agent-sdk").files or ()
        if entry.name == "claude" and entry.hash is not None
    )
    assert record.hash is not None
    recorded = base64.urlsafe_b64decode(record.hash.value + "==").hex()
    digest = claude_digest(binary)
    assert digest == recorded
    # What the record spares every session (~1.5 s): reading the binary itself.
    content = hashlib.sha256()
    with binary.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            content.update(chunk)
    assert content.hexdigest() == digest


# ------------------------------------------------------------------ ensure_images


@pytest.mark.docker
def test_up_to_date_is_said_only_when_nothing_was_built(tmp_path: Path) -> None:
    require_images()
    tag = f"scylla-runner-test:{uuid.uuid4().hex[:12]}"
    cli = _fake_cli(tmp_path / "cli" / "claude")
    client = docker.from_env(timeout=300)
    lines: list[str] = []
    try:
        built = ensure_images(progress=lines.append, claude=cli, runner_image=tag)
        assert (built.base_built, built.runner_built) == (False, True)
        assert any(line.startswith(f"building {tag}") for line in lines), lines
        assert not any("up to date" in line for line in lines), lines

        lines.clear()
        again = ensure_images(progress=lines.append, claude=cli, runner_image=tag)
        assert (again.base_built, again.runner_built) == (False, False)
        assert lines == [f"{BASE_IMAGE} and {tag} are up to date"]
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(tag, force=True)


# ------------------------------------------------------------------ the preflight, as a user sees it


def _docker_session_args(results: Path, *extra: str) -> list[str]:
    return [
        "exp-ok",
        "-p",
        "no:cacheprovider",
        "--sandbox",
        "docker",
        "--docker-network",
        "none",
        "--agent",
        "oracle",
        "--judge-model",
        "none",
        "--runs",
        "1",
        "--results-dir",
        str(results),
        *extra,
    ]


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.docker
def test_preflight_shows_image_progress_and_the_stale_containers_it_removed(
    pytester: pytest.Pytester,
) -> None:
    require_images()
    write_experiment(pytester.path)
    client = docker.from_env(timeout=120)
    stale = client.containers.create(
        RUNNER_IMAGE,
        command=["idle"],
        network_mode="none",
        labels={
            LABEL_MANAGED: "1",
            LABEL_OWNER_HOST: socket.gethostname(),
            LABEL_SESSION: f"killed-{uuid.uuid4().hex}",
            LABEL_OWNER_PID: str(_dead_pid()),
        },
    )
    try:
        # -v shows the "up to date" line; -k deselects every run: only the preflight works.
        args = _docker_session_args(pytester.path / "results", "-v", "-k", "no_such_run")
        result = pytester.runpytest_inprocess(*args)
        output = result.stdout.str()
        assert f"scylla-runner image: {BASE_IMAGE} and {RUNNER_IMAGE} are up to date" in output
        swept = [line for line in result.stdout.lines if "stale container(s)" in line]
        assert len(swept) == 1, output
        assert swept[0].startswith("pytest-scylla: removed "), swept
        assert int(swept[0].split()[2]) >= 1, swept
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(str(stale.id))
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            stale.remove(force=True)


@pytest.mark.docker
def test_up_to_date_images_are_not_mentioned_without_verbose(pytester: pytest.Pytester) -> None:
    require_images()
    write_experiment(pytester.path)
    args = _docker_session_args(pytester.path / "results", "-k", "no_such_run")
    result = pytester.runpytest_inprocess(*args)
    assert "scylla-runner image:" not in result.stdout.str()


def test_no_docker_engine_is_one_usage_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_experiment(pytester.path)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    result = pytester.runpytest_inprocess(*_docker_session_args(pytester.path / "results"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr.str()
    assert "no Docker engine answers at unix:///nonexistent/docker.sock" in errors[0]
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


@pytest.mark.docker
def test_no_claude_agent_sdk_is_one_usage_line_even_for_the_oracle(
    pytester: pytest.Pytester,
) -> None:
    require_docker_engine()
    write_experiment(pytester.path)
    # Loaded before the plugin's configure: find_spec answers None for a None module entry,
    # as it does when the package is not installed.
    pytester.makeconftest(
        "import sys\nsys.modules['claude_agent_sdk'] = None  # type: ignore[assignment]\n"
    )
    result = pytester.runpytest_subprocess(*_docker_session_args(pytester.path / "results"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr.str()
    assert "claude-agent-sdk, which is not installed" in errors[0]
    assert "pip install 'pytest-scylla[claude]'" in errors[0]
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()

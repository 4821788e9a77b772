"""Before the first docker run: an engine that answers, the images, no stale containers."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import pytest

from pytest_scylla.settings import ScyllaSettings

if TYPE_CHECKING:
    from pytest_scylla.sandbox.docker import DockerSettings

PROGRESS_PREFIX = "scylla-runner image: "


def docker_settings(settings: ScyllaSettings) -> DockerSettings:
    from pydantic import ValidationError

    from pytest_scylla.sandbox.docker import DockerSettings

    try:
        return DockerSettings(
            network=container_network(settings),
            memory=settings.docker_memory,
            cpus=settings.docker_cpus,
            pids=settings.docker_pids,
            disk=settings.docker_disk,
            mount_credentials=settings.docker_credentials or login_is_the_credential(),
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"--docker-{'-'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors()
        )
        raise pytest.UsageError(f"pytest-scylla: {problems}") from None


def container_network(settings: ScyllaSettings) -> Literal["none", "host", "bridge"]:
    """``auto``: no network unless the agent must reach the API (DESIGN section 8).

    Only the claude-code agent is known to call the API; it gets the host's network when
    the API is on loopback (a fake API, a local proxy: a container's own loopback is not the
    host's), else docker's default bridge. Any other agent gets none: pass
    ``--docker-network`` to give one more.
    """
    if settings.docker_network != "auto":
        return settings.docker_network
    if settings.agent != "claude-code" or settings.rejudge:
        return "none"
    host = urlsplit(os.environ.get("ANTHROPIC_BASE_URL", "")).hostname or ""
    loopback = host == "localhost" or host.startswith("127.") or host == "::1"
    return "host" if loopback else "bridge"


def login_is_the_credential() -> bool:
    """Whether the agent's only credential is the Claude login: then the container gets it
    (a read-only mount), as a local run gets a copy (`--docker-credentials` forces it)."""
    from pytest_scylla.credentials import claude_code_credentials

    credentials = claude_code_credentials()
    return credentials is not None and credentials.login is not None


def terminal_lines(config: pytest.Config) -> Callable[[str], None]:
    """Write whole lines to the user's terminal, also before pytest's reporter exists.

    The preflight runs in pytest_configure, before the terminal plugin registers its
    reporter, and a build takes minutes: its progress must show while it happens. The
    writer is made the way the reporter makes its own (same file, colour and width).
    """
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        return reporter.write_line
    from _pytest.config import create_terminal_writer

    writer = create_terminal_writer(config, sys.stdout)

    def line(text: str) -> None:
        writer.line(text)
        writer.flush()

    return line


def prepare_docker(config: pytest.Config, settings: ScyllaSettings) -> None:
    """Check the engine, build what is missing or stale, sweep killed sessions' containers.

    Every problem a user can fix (no engine, no claude-agent-sdk for the image, a failed
    build) is one line (``pytest.UsageError``), never an internal error.
    """
    import docker.errors

    from pytest_scylla.sandbox.base import SandboxError
    from pytest_scylla.sandbox.docker import DockerSandboxFactory
    from pytest_scylla.sandbox.docker_image import ImageBuildError

    factory = DockerSandboxFactory(docker_settings(settings))
    problem = factory.check_available()
    if problem is not None:
        raise pytest.UsageError(f"pytest-scylla: --sandbox docker: {problem}")
    write = terminal_lines(config)
    # "up to date" each session is noise: shown with -v; building is always shown.
    verbose = config.get_verbosity() > 0

    def progress(line: str) -> None:
        if verbose or not line.endswith(" up to date"):
            write(PROGRESS_PREFIX + line)

    try:
        factory.ensure_image(force=settings.build_image, progress=progress)
        removed = factory.sweep_stale()
    except (ImageBuildError, SandboxError, docker.errors.DockerException) as exc:
        raise pytest.UsageError(f"pytest-scylla: --sandbox docker: {exc}") from None
    if removed:
        write(f"pytest-scylla: removed {removed} stale container(s) of killed sessions")

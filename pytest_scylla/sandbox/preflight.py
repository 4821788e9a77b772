"""Before the first docker run: an engine that answers, the images, no stale containers."""

from __future__ import annotations

import pytest

from pytest_scylla.settings import ScyllaSettings


def docker_settings(settings: ScyllaSettings):  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from pytest_scylla.sandbox.docker import DockerSettings

    try:
        return DockerSettings(
            network=settings.docker_network,
            memory=settings.docker_memory,
            cpus=settings.docker_cpus,
            pids=settings.docker_pids,
            disk=settings.docker_disk,
            mount_credentials=settings.docker_credentials,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"--docker-{'-'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors()
        )
        raise pytest.UsageError(f"pytest-scylla: {problems}") from None


def prepare_docker(config: pytest.Config, settings: ScyllaSettings) -> None:
    from pytest_scylla.sandbox.docker import DockerSandboxFactory

    factory = DockerSandboxFactory(docker_settings(settings))
    problem = factory.check_available()
    if problem is not None:
        raise pytest.UsageError(f"pytest-scylla: --sandbox docker: {problem}")
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def progress(line: str) -> None:
        if reporter is not None:
            reporter.write_line(f"scylla-runner image: {line}")

    factory.ensure_image(force=settings.build_image, progress=progress)
    removed = factory.sweep_stale()
    if removed and reporter is not None:
        reporter.write_line(
            f"pytest-scylla: removed {removed} stale container(s) of killed sessions"
        )

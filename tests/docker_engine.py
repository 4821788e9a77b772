"""The Docker engine the docker tests need: skipped without one, a failure in CI (CI=true)."""

from __future__ import annotations

import os
import sys

import pytest

from pytest_scylla.sandbox.docker import DockerSandboxFactory, DockerSettings
from pytest_scylla.sandbox.docker_image import ensure_images


def require_docker_engine(network: str = "none") -> None:
    reason = DockerSandboxFactory(DockerSettings(network=network)).check_available()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI needs a Docker engine: {reason}")
    pytest.skip(reason)


def require_images() -> None:
    """The engine, and scylla-base/scylla-runner: cheap when current, built otherwise."""
    require_docker_engine()
    ensure_images(force=False, progress=lambda line: print(line, file=sys.stderr))

"""The wheel, installed, not the checkout: what ``pip install pytest-scylla`` gives a user.

The wheel is built from a copy of the sources (the work tree stays untouched: no build/ or
egg-info rewritten under other sessions' feet), installed with ``--no-deps`` into a fresh
venv that sees this environment's packages (nothing is downloaded), and run from a folder
outside the repository with ``--sandbox docker``: the image's build context must come from
the installed package, and the image must be the one the checkout built (same inputs, same
tag: no rebuild because the files sit elsewhere).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import docker
import pytest
from docker_engine import require_images

from pytest_scylla.sandbox.docker_image import RUNNER_IMAGE

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
IMAGE_FILES = ("Dockerfile", "entrypoint.sh", "scylla-init.py")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "pytest_scylla",
        source / "pytest_scylla",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    out = tmp_path_factory.mktemp("wheelhouse")
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(source), "-w", str(out)]
    built = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = out.glob("pytest_scylla-*.whl")
    return found


def test_the_wheel_carries_the_image_build_context_and_py_typed(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for name in IMAGE_FILES:
        assert f"pytest_scylla/sandbox/image/{name}" in names
    assert "pytest_scylla/py.typed" in names
    assert not any(name.startswith("docker/") for name in names)


def _clean_env() -> dict[str, str]:
    """This session's environment less what would point the venv back at the checkout."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "PYTHON")) and key != "VIRTUAL_ENV"
    }


def install_wheel(wheel: Path, tmp_path: Path) -> Path:
    """A fresh venv holding the wheel (its dependencies seen from this environment); its python."""
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
        timeout=120,
    )
    python = venv / "bin" / "python"
    install = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "-q",
        "--no-deps",
        "--no-index",
        "--ignore-installed",
        str(wheel),
    ]
    installed = subprocess.run(install, capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python


@pytest.mark.docker
def test_an_installed_wheel_runs_a_docker_session_outside_the_repository(
    wheel: Path, tmp_path: Path
) -> None:
    require_images()
    runner_before = docker.from_env(timeout=60).images.get(RUNNER_IMAGE).id
    python = install_wheel(wheel, tmp_path)

    project = tmp_path / "project"
    shutil.copytree(ROOT / "experiments" / "test-001", project / "experiments" / "test-001")
    where = subprocess.run(
        [str(python), "-c", "import pytest_scylla; print(pytest_scylla.__file__)"],
        cwd=project,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # The venv's copy, not the editable checkout this environment also has.
    assert Path(where.stdout.strip()).is_relative_to(python.parent.parent), where.stdout

    argv = [
        str(python),
        "-m",
        "pytest",
        "experiments/test-001/test.yaml",
        "-p",
        "no:cacheprovider",
        "-q",
        "--sandbox",
        "docker",
        "--docker-network",
        "none",
        "--agent",
        "oracle",
        "--judge-model",
        "none",
        "--tiers",
        "T0",
        "--max-subtests",
        "1",
        "--runs",
        "1",
        "--results-dir",
        "results",
    ]
    env = {**_clean_env(), "TMPDIR": str(tmp_path)}
    session = subprocess.run(
        argv, cwd=project, env=env, capture_output=True, text=True, timeout=300
    )
    output = session.stdout + session.stderr
    assert session.returncode == 0, output[-4000:]
    assert "1 passed" in output, output[-4000:]
    assert "INTERNALERROR" not in output
    assert "building" not in output, output[-4000:]
    assert docker.from_env(timeout=60).images.get(RUNNER_IMAGE).id == runner_before

    (record_file,) = (project / "results").glob("test-001/T0/*/run-01/run_result.json")
    record = json.loads(record_file.read_text())
    assert record["outcome"] == "passed", record


def readme_main_job() -> list[str]:
    """The pytest part of the README's first set-up command, word for word."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (line,) = [line for line in readme.splitlines() if line.strip().startswith("pip install -e")]
    _install, _, command = line.partition("&&")
    words = shlex.split(command)
    assert words[0] == "pytest", line
    return words[1:]


@pytest.mark.claude_cli
def test_an_installed_wheel_runs_the_readme_main_job(wheel: Path, tmp_path: Path) -> None:
    """The README's first command (the real Claude Code CLI against the scripted API) from the
    installed wheel, in a folder that holds only the experiment."""
    python = install_wheel(wheel, tmp_path)
    project = tmp_path / "project"
    shutil.copytree(ROOT / "experiments" / "test-001", project / "experiments" / "test-001")
    env = {**_clean_env(), "TMPDIR": str(tmp_path)}
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"):
        env.pop(name, None)
    argv = [str(python), "-m", "pytest", *readme_main_job(), "-p", "no:cacheprovider"]
    session = subprocess.run(
        argv, cwd=project, env=env, capture_output=True, text=True, timeout=900
    )
    output = session.stdout + session.stderr
    assert session.returncode == 0, output[-4000:]
    assert "INTERNALERROR" not in output
    records = sorted((project / "results" / "test-001").glob("T*/*/run-*/run_result.json"))
    assert records, output[-4000:]
    outcomes = {json.loads(path.read_text())["outcome"] for path in records}
    assert outcomes == {"passed"}, outcomes
    # Every item ran: none skipped (a budget stop once cut it to 15 of 24), none deselected.
    summary = output.strip().splitlines()[-1]
    assert summary.split(" in ")[0].strip("= ") == f"{len(records)} passed", summary
    assert (project / "results" / "test-001" / "report.html").is_file()

"""Attacks on the harness through the workspace's git data (issue 10), end to end.

Each agent here is a `--agent command` shell script that plants something in its workspace
for the harness to trip over after the run: a command in `.git/config` (fsmonitor, a diff
textconv or a clean filter named by `.gitattributes`), a `.git` file pointing at a host
repository. A payload would create a marker file on the
host, at a path the sandboxed agent cannot reach itself (the local sandbox hides /tmp's
test folders, a container has no such path): the marker is there only if the harness ran
the payload. Every test runs with the local sandbox and with the Docker sandbox (skipped
with a reason when no engine answers, a failure in CI). Attacks on the source cache and
on what the harness reads from the workspace are in test_attacks_workspace.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from docker_engine import require_images
from experiment_factory import write_experiment

SANDBOXES = ("local", pytest.param("docker", marks=pytest.mark.docker))
SESSION_TIMEOUT_S = 180


def run_session(
    tmp_path: Path,
    script: str,
    *,
    sandbox: str,
    runs: int = 1,
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> tuple[Path, str]:
    """One pytest session in a subprocess (its own TMPDIR: its own work root and cache)."""
    if sandbox == "docker":
        require_images()
    experiment = write_experiment(tmp_path, "exp-attack")
    results = tmp_path / "results"
    session_tmp = tmp_path / "session-tmp"
    session_tmp.mkdir()
    argv = [
        sys.executable,
        "-m",
        "pytest",
        str(experiment / "test.yaml"),
        "-p",
        "no:cacheprovider",
        "-q",
        "--agent",
        "command",
        "--agent-command",
        f"bash -c {shlex.quote(script)}",
        "--judge-model",
        "none",
        "--sandbox",
        sandbox,
        "--docker-network",
        "none",
        "--runs",
        str(runs),
        "--max-subtests",
        "1",
        "--results-dir",
        str(results),
        *extra,
    ]
    session_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    session_env |= {"TMPDIR": str(session_tmp), **(env or {})}
    done = subprocess.run(
        argv,
        cwd=tmp_path,
        env=session_env,
        capture_output=True,
        text=True,
        timeout=SESSION_TIMEOUT_S,
    )
    return results, done.stdout + done.stderr


def run_dirs(results: Path) -> list[Path]:
    return sorted(path.parent for path in results.glob("*/*/*/run-*/run_result.json"))


def record(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "run_result.json").read_text())


def assert_graded(run_dir: Path, output: str) -> None:
    """The run went through to scoring: the attack did not make it a harness error."""
    run_record = record(run_dir)
    assert run_record["error"] is None, output[-3000:]
    assert run_record["outcome"] == "passed", output[-3000:]


# The agent's part of every attack: do the task, so the run is graded like any other.
DO_THE_TASK = "printf 'ok\\n' > done.txt"

GIT_CONFIG_ATTACKS = {
    # git runs core.fsmonitor's command on every index refresh (git add, git diff, status).
    "fsmonitor": "git config core.fsmonitor 'touch {marker}'",
    # A textconv driver named by .gitattributes runs on both sides of a patch.
    "textconv": "git config diff.evil.textconv 'touch {marker}; cat'",
    # A clean filter named by .gitattributes runs whenever git hashes a work tree file.
    "filter": "git config filter.evil.clean 'touch {marker}; cat'",
}
NAME_THE_DRIVERS = "printf '*.md diff=evil\\n* filter=evil\\n' > .gitattributes"
CHANGE_A_TRACKED_FILE = "printf 'more\\n' >> README.md"

ConfigAttacks = tuple[dict[str, Path], Path, str]


@pytest.fixture(scope="module", params=SANDBOXES)
def config_attacks(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> ConfigAttacks:
    """One session per sandbox whose agent plants every config attack at once (each has its
    own marker; none of them makes git fail, so on the old code all three ran)."""
    tmp_path = tmp_path_factory.mktemp(f"config-attacks-{request.param}")
    markers = {
        attack: tmp_path / "markers" / f"{attack}-ran-on-the-host" for attack in GIT_CONFIG_ATTACKS
    }
    (tmp_path / "markers").mkdir()
    plants = [
        GIT_CONFIG_ATTACKS[attack].format(marker=shlex.quote(str(marker)))
        for attack, marker in markers.items()
    ]
    script = " && ".join([*plants, NAME_THE_DRIVERS, CHANGE_A_TRACKED_FILE, DO_THE_TASK])
    results, output = run_session(tmp_path, script, sandbox=request.param)
    return markers, results, output


@pytest.mark.slow
@pytest.mark.parametrize("attack", sorted(GIT_CONFIG_ATTACKS))
def test_a_command_in_the_workspace_git_config_never_runs_on_the_host(
    config_attacks: ConfigAttacks, attack: str
) -> None:
    markers, results, output = config_attacks
    assert not markers[attack].exists(), f"the harness ran the agent's {attack} command"
    [run_dir] = run_dirs(results)
    assert_graded(run_dir, output)
    diff = (run_dir / "workspace.diff").read_text()
    assert "+++ b/done.txt" in diff
    assert "+++ b/.gitattributes" in diff and "+more" in diff  # the planted files show


def _index_digest(repository: Path) -> str:
    return hashlib.sha256((repository / ".git" / "index").read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_a_gitdir_file_never_sends_the_harness_into_a_host_repository(
    tmp_path: Path, sandbox: str
) -> None:
    host_repo = tmp_path / "host-repo"
    subprocess.run(["git", "init", "-q", str(host_repo)], check=True)
    (host_repo / "kept.txt").write_text("host data\n")
    subprocess.run(["git", "-C", str(host_repo), "add", "kept.txt"], check=True)
    before = _index_digest(host_repo)
    plant = f"rm -rf .git && printf 'gitdir: %s\\n' {shlex.quote(str(host_repo / '.git'))} > .git"
    results, output = run_session(tmp_path, f"{plant} && {DO_THE_TASK}", sandbox=sandbox)

    assert _index_digest(host_repo) == before, "the harness wrote the host repository's index"
    listed = subprocess.run(
        ["git", "-C", str(host_repo), "ls-files"], capture_output=True, text=True, check=True
    )
    assert listed.stdout.split() == ["kept.txt"]
    [run_dir] = run_dirs(results)
    assert_graded(run_dir, output)
    diff = (run_dir / "workspace.diff").read_text()
    assert "+++ b/done.txt" in diff
    assert "gitdir" not in diff  # the agent's .git file is never part of the changes

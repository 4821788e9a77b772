"""credentials.py: what each part of a session may use, decided in one place (issue 13).

Before it, the check before the first run accepted ~/.claude/.credentials.json or
CLAUDE_CODE_OAUTH_TOKEN while the agent was given neither a login (its per-run
CLAUDE_CONFIG_DIR was empty: "Not logged in") nor a judge a way to use one ("Could not
resolve authentication method"). These tests pin what each function answers.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli_judge import ACCESS as SESSION_TOKEN
from test_cli_judge import (  # the logged-in session helpers
    SessionResponder,
    check_logged_in_session,
    login_credentials,
    run_session,
)

from pytest_scylla.credentials import (
    NO_KEY,
    api_credentials,
    claude_code_credentials,
    judge_credentials,
    login_file_path,
    missing_credentials,
    read_login,
)
from pytest_scylla.redact import session_redactor
from pytest_scylla.testing.fake_api import FakeMessagesAPI

ACCESS = "sk-ant-oat01-ACCESS-token-for-tests-0123456789"
REFRESH = "sk-ant-ort01-REFRESH-token-for-tests-0123456789"
KEY = "sk-ant-api03-KEY-for-tests-0123456789"
AUTH = "auth-token-for-tests-0123456789"


def write_login(directory: Path, access: str = ACCESS, **extra: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ".credentials.json"
    oauth = {
        "accessToken": access,
        "refreshToken": REFRESH,
        "expiresAt": int(time.time() * 1000) + 3_600_000,
        "scopes": ["user:inference"],
        **extra,
    }
    path.write_text(json.dumps({"claudeAiOauth": oauth}))
    path.chmod(0o600)
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME, and none of the caller's credentials."""
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "CLAUDE_CONFIG_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    return folder


def test_login_in_home_is_the_agent_and_judge_credential(home: Path) -> None:
    write_login(home / ".claude")
    agent = claude_code_credentials({})
    assert agent is not None and agent.login is not None and dict(agent.env) == {}
    assert agent.login.document["claudeAiOauth"]["accessToken"] == ACCESS
    assert sorted(agent.secrets) == sorted([ACCESS, REFRESH])
    judges = judge_credentials("auto", {})
    assert judges is not None and judges.backend == "cli" and judges.cli is not None
    assert judges.cli.login is not None
    assert missing_credentials({}, agent="agent claude-code (m)", judges=["j"]) is None


def test_claude_config_dir_wins_over_home(home: Path, tmp_path: Path) -> None:
    # The old check looked at ~/.claude only; the CLI and the redactor read $CLAUDE_CONFIG_DIR.
    write_login(home / ".claude", access="home-token-not-this-one-0123")
    write_login(tmp_path / "config")
    environ = {"CLAUDE_CONFIG_DIR": str(tmp_path / "config")}
    assert login_file_path(environ) == tmp_path / "config" / ".credentials.json"
    agent = claude_code_credentials(environ)
    assert agent is not None and agent.login is not None
    assert agent.login.document["claudeAiOauth"]["accessToken"] == ACCESS
    assert ACCESS in session_redactor(environ).secrets  # the redactor knows what is handed out


@pytest.mark.parametrize(
    "name", ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"]
)
def test_an_env_credential_passes_through_and_the_login_stays_home(home: Path, name: str) -> None:
    write_login(home / ".claude")
    agent = claude_code_credentials({name: AUTH})
    assert agent is not None and dict(agent.env) == {name: AUTH}
    assert agent.login is None  # the login file is given only when it is the only credential


def test_every_env_credential_passes_through() -> None:
    environ = {"ANTHROPIC_API_KEY": KEY, "CLAUDE_CODE_OAUTH_TOKEN": AUTH, "OTHER": "x"}
    agent = claude_code_credentials(environ)
    assert agent is not None and dict(agent.env) == {
        "ANTHROPIC_API_KEY": KEY,
        "CLAUDE_CODE_OAUTH_TOKEN": AUTH,
    }


@pytest.mark.parametrize(
    ("environ", "backend", "kwargs"),
    [
        ({"ANTHROPIC_API_KEY": KEY, "CLAUDE_CODE_OAUTH_TOKEN": AUTH}, "api", {"api_key": KEY}),
        ({"ANTHROPIC_AUTH_TOKEN": AUTH}, "api", {"auth_token": AUTH}),
        ({"CLAUDE_CODE_OAUTH_TOKEN": AUTH}, "cli", None),
        (
            {"CLAUDE_CODE_OAUTH_TOKEN": AUTH, "ANTHROPIC_BASE_URL": "http://127.0.0.1:9"},
            "cli",
            None,
        ),
        ({"ANTHROPIC_BASE_URL": "http://127.0.0.1:9"}, "api", {"api_key": NO_KEY}),
    ],
)
def test_auto_judge_backend(
    home: Path, environ: dict[str, str], backend: str, kwargs: dict[str, str] | None
) -> None:
    chosen = judge_credentials("auto", environ)
    assert chosen is not None and chosen.backend == backend
    if kwargs is None:
        assert chosen.cli is not None and dict(chosen.cli.env) == {"CLAUDE_CODE_OAUTH_TOKEN": AUTH}
    else:
        assert chosen.api is not None and dict(chosen.api.client_kwargs) == kwargs


def test_forced_backends(home: Path) -> None:
    write_login(home / ".claude")
    assert judge_credentials("api", {}) is None  # the SDK cannot use a login
    assert api_credentials({}) is None
    forced = judge_credentials("cli", {"ANTHROPIC_API_KEY": KEY})
    assert forced is not None and forced.backend == "cli" and forced.cli is not None
    assert dict(forced.cli.env) == {"ANTHROPIC_API_KEY": KEY}
    line = missing_credentials({}, agent=None, judges=["claude-opus-4-6"], judge_backend="api")
    assert line is not None and "\n" not in line
    assert "judge claude-opus-4-6" in line and "--judge-backend cli" in line


def test_base_url_alone_gives_the_agent_a_placeholder(home: Path) -> None:
    agent = claude_code_credentials({"ANTHROPIC_BASE_URL": "http://127.0.0.1:9"})
    assert agent is not None and dict(agent.env) == {"ANTHROPIC_API_KEY": NO_KEY}
    assert agent.secrets == []


def test_nothing_stops_with_one_line_naming_each_part(home: Path) -> None:
    assert claude_code_credentials({}) is None and judge_credentials("auto", {}) is None
    line = missing_credentials({}, agent="agent claude-code (m1)", judges=["j1", "j2"])
    assert line is not None and "\n" not in line
    assert line.startswith("pytest-scylla: agent claude-code (m1) needs ANTHROPIC_API_KEY")
    assert "judge j1, judge j2 need(s)" in line and "CLAUDE_CODE_OAUTH_TOKEN" in line
    assert "claude login" in line
    assert missing_credentials({}, agent=None, judges=[]) is None


@pytest.mark.parametrize("problem", ["no-token", "not-json", "symlink", "fifo"])
def test_an_unusable_login_is_no_credential_and_says_why(
    home: Path, tmp_path: Path, problem: str
) -> None:
    target = home / ".claude" / ".credentials.json"
    target.parent.mkdir()
    if problem == "no-token":
        target.write_text(json.dumps({"claudeAiOauth": {"refreshToken": REFRESH}}))
    elif problem == "not-json":
        target.write_text("{not json")
    elif problem == "symlink":
        # The redactor does not follow a symlink: a login it cannot see is never handed out.
        target.symlink_to(write_login(tmp_path / "elsewhere"))
    else:
        os.mkfifo(target)
    check = read_login({})
    assert check.login is None and check.problem is not None and str(target) in check.problem
    assert claude_code_credentials({}) is None
    line = missing_credentials({}, agent="agent claude-code (m)", judges=[])
    assert line is not None and check.problem in line


def test_reprs_hide_every_secret(home: Path) -> None:
    write_login(home / ".claude")
    shown = [
        repr(claude_code_credentials({})),
        str(claude_code_credentials({})),
        repr(read_login({}).login),
        repr(read_login({})),
        repr(judge_credentials("auto", {})),
        repr(claude_code_credentials({"ANTHROPIC_API_KEY": KEY})),
        repr(api_credentials({"ANTHROPIC_AUTH_TOKEN": AUTH})),
        repr(judge_credentials("auto", {"ANTHROPIC_API_KEY": KEY})),
    ]
    for text in shown:
        for secret in (ACCESS, REFRESH, KEY, AUTH):
            assert secret not in text, text


def test_the_copy_is_read_only_and_never_written_through_a_link(home: Path, tmp_path: Path) -> None:
    write_login(home / ".claude")
    login = read_login({}).login
    assert login is not None
    copy = tmp_path / "run-home" / ".claude" / ".credentials.json"
    login.write_copy(copy)
    assert stat.S_IMODE(copy.stat().st_mode) == 0o400
    assert json.loads(copy.read_text()) == login.document
    # A link planted where the copy goes (the run's home is the agent's) is not followed.
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    planted = tmp_path / "planted" / ".credentials.json"
    planted.parent.mkdir()
    planted.symlink_to(victim)
    with pytest.raises(OSError):
        login.write_copy(planted)
    assert victim.read_text() == "untouched"


# ---------------------------------------------------------------- docker, logged in


@pytest.fixture
def session_api() -> Iterator[tuple[FakeMessagesAPI, SessionResponder]]:
    responder = SessionResponder()
    with FakeMessagesAPI(responder, api_key=SESSION_TOKEN) as fake:
        yield fake, responder


@pytest.mark.slow
def test_a_docker_session_with_only_a_login_mounts_it_read_only(
    session_api: tuple[FakeMessagesAPI, SessionResponder], tmp_path: Path
) -> None:
    """A whole session (the claude-code agent in a container, the CLI judge on the host),
    helpers shared with test_cli_judge.py; here to keep each file's time short."""
    from docker_engine import require_docker_engine

    from pytest_scylla.agents.claude_code import bundled_claude

    if bundled_claude() is None:
        pytest.skip("claude-agent-sdk with its bundled Claude Code CLI is not installed")
    require_docker_engine(network="host")
    api, responder = session_api
    home = tmp_path / "home"
    login_credentials(tmp_path)
    (home / ".claude").mkdir(parents=True)
    (tmp_path / "user-config" / ".credentials.json").rename(home / ".claude" / ".credentials.json")
    results = tmp_path / "results"
    # No --docker-credentials: the login is the only credential, so it is mounted.
    proc = run_session(api, home, results, "--sandbox", "docker", "--docker-network", "host")
    record = check_logged_in_session(proc, api, responder, results)
    run_dir = results / "test-001" / "T0" / record["subtest"] / "run-01"
    diff = (run_dir / "workspace.diff").read_text()
    assert "+400" in diff  # the container user sees a read-only copy, nothing more
    assert "accessToken" in (run_dir / "workspace" / "leaked.json").read_text()


@pytest.mark.slow
def test_a_dry_run_can_judge_through_the_cli(tmp_path: Path) -> None:
    """--scylla-fake-api answers the CLI judge's StructuredOutput requests too."""
    from test_cli_judge import ROOT

    from pytest_scylla.agents.claude_code import bundled_claude

    if bundled_claude() is None:
        pytest.skip("claude-agent-sdk with its bundled Claude Code CLI is not installed")
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("ANTHROPIC_", "PYTEST_", "CLAUDE_"))
    }
    environ["HOME"] = str(tmp_path)
    results = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "experiments/test-001",
            "--scylla-fake-api",
            "experiments/test-001/dry-run.yaml",
            "--judge-backend",
            "cli",
            "--judge-model",
            "claude-opus-4-6",
            "--tiers",
            "T0",
            "--runs",
            "1",
            "--max-subtests",
            "1",
            "--results-dir",
            str(results),
            "-p",
            "no:cacheprovider",
            "-q",
        ],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    [record_file] = results.glob("test-001/T0/*/run-01/run_result.json")
    record = json.loads(record_file.read_text())
    [judge] = record["judges"]
    assert judge["status"] == "ok" and judge["backend"] == "cli"
    prompt = next(record_file.parent.glob("judges/*/prompt.md")).read_text()
    assert "(Claude Code CLI)" in prompt and "StructuredOutput" in prompt


# ---------------------------------------------------------------- the agent's copy


SNOOPING_CLI = """#!/bin/sh
stat -c %a "$CLAUDE_CONFIG_DIR/.credentials.json" > "$HOME/seen-mode.txt" 2>&1
cat "$CLAUDE_CONFIG_DIR/.credentials.json" > "$HOME/seen.json" 2>&1
echo '{"type":"system","subtype":"init","model":"m","session_id":"s","cwd":"/"}'
echo '{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"done"}'
"""


def test_the_agent_gets_a_read_only_copy_for_its_run_only(home: Path, tmp_path: Path) -> None:
    """Before issue 13 the run's CLAUDE_CONFIG_DIR was empty: "Not logged in"."""
    import dataclasses

    from test_agents import _experiment, _request, _sandbox

    from pytest_scylla.agents.claude_code import ClaudeCodeAgent

    write_login(home / ".claude")
    credentials = claude_code_credentials({})
    assert credentials is not None and credentials.login is not None
    cli = tmp_path / "bin" / "claude"
    cli.parent.mkdir()
    cli.write_text(SNOOPING_CLI)
    cli.chmod(0o755)
    request = dataclasses.replace(
        _request(tmp_path, _experiment(tmp_path, None, {})), login=credentials.login
    )
    record = ClaudeCodeAgent(claude_bin=str(cli)).run(request, _sandbox(request))
    assert record.finished, record.error_reason
    run_home = request.dirs.home
    assert (run_home / "seen-mode.txt").read_text().strip() == "400"
    assert ACCESS in (run_home / "seen.json").read_text()
    # Gone when the CLI ended: the after-checks (same sandbox) do not find it.
    assert not (run_home / ".claude" / ".credentials.json").exists()
    assert (home / ".claude" / ".credentials.json").is_file()  # the user's own is untouched

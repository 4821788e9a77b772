"""No secret leaves through a repr, a traceback, a report, the manifest or a result file
(issue 10): the reprs of objects that hold secrets, the shapes the redactor knows, the
credentials file, and whole pytest sessions whose run crashes with the key in hand."""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from _pytest._io.saferepr import saferepr
from experiment_factory import write_experiment

from pytest_scylla.agents.base import AgentRequest
from pytest_scylla.agents.oracle import OracleAgent
from pytest_scylla.redact import (
    REDACTED,
    Redactor,
    SecretEnv,
    credentials_file,
    secrets_from_credentials_file,
    session_redactor,
)
from pytest_scylla.redact_reports import ReportRedactor
from pytest_scylla.session import ScyllaSession
from pytest_scylla.settings import ScyllaSettings
from pytest_scylla.testing.session_server import DRY_RUN_KEY

REPO = Path(__file__).resolve().parents[1]
OFFLINE = ("--judge-model", "none", "-p", "no:cacheprovider")
CUSTOM_SECRET_VAR = "SCYLLA_TEST_DEPLOY_PASSWORD"  # secret-named, unknown to the plugin


def random_tail() -> str:
    """32 random upper-case base32 characters: unlike hex, pieces of it hardly ever occur in
    what pytest prints (ids, paths and commit hashes are lower-case hex)."""
    return base64.b32encode(os.urandom(20)).decode()


def unique_key() -> str:
    return f"sk-ant-test-{random_tail()}"


def files_holding(root: Path, *secrets: str) -> list[str]:
    """Every file under root whose bytes hold one of the secrets."""
    return [
        str(path)
        for path in sorted(root.rglob("*"))
        if path.is_file()
        and not path.is_symlink()
        and any(secret.encode() in path.read_bytes() for secret in secrets)
    ]


# --- reprs --------------------------------------------------------------------------------


def test_agent_request_repr_hides_the_passthrough_env(tmp_path: Path) -> None:
    key = unique_key()
    request = AgentRequest(
        experiment=None,  # type: ignore[arg-type]  (only the repr is under test)
        subtest=None,  # type: ignore[arg-type]
        model="m",
        timeout_s=1.0,
        dirs=None,  # type: ignore[arg-type]
        agent_dir=tmp_path,
        passthrough_env={"ANTHROPIC_API_KEY": key, "ANTHROPIC_BASE_URL": "http://127.0.0.1:1"},
        redactor=Redactor([key]),
    )
    for text in (repr(request), str(request), f"{request.passthrough_env}"):
        assert key not in text and "127.0.0.1" not in text
    assert "ANTHROPIC_API_KEY=<hidden>" in repr(request)
    # Agents still get the values: the wrapper is a mapping.
    assert dict(request.passthrough_env)["ANTHROPIC_API_KEY"] == key
    assert {**{"PATH": "/bin"}, **request.passthrough_env}["ANTHROPIC_API_KEY"] == key


def test_secret_env_is_a_mapping_with_a_safe_repr() -> None:
    env = SecretEnv({"GITHUB_TOKEN": "ghp_value_123456"})
    assert len(env) == 1 and list(env) == ["GITHUB_TOKEN"] and env["GITHUB_TOKEN"]
    assert "ghp_value" not in repr(env) and "ghp_value" not in str(env)


def test_redactor_and_settings_reprs_hide_what_they_hold() -> None:
    key = unique_key()
    redactor = Redactor([key, "hunter2hunter2"])
    assert key not in repr(redactor) and "hunter2" not in repr(redactor)
    assert repr(redactor) == "Redactor(2 secrets)"
    template = f"curl -H 'x-api-key: {key}' {{prompt_file}}"
    settings = ScyllaSettings(agent="command", agent_command=template)
    assert key not in repr(settings) and key not in str(settings)
    assert settings.agent_command == template  # still there for the agent


# --- secret shapes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'curl -H "x-api-key: abcdef123456" https://x',
            'curl -H "x-api-key: [REDACTED]" https://x',
        ),
        ("X-Api-Key:abcdef123456", "X-Api-Key:[REDACTED]"),
        ("Authorization: Bearer eyJhbGciOi.abc.def", "Authorization: Bearer [REDACTED]"),
        ("authorization: Basic dXNlcjpwYXNz", "authorization: Basic [REDACTED]"),
        ("-H 'Authorization: abcdef123456'", "-H 'Authorization: [REDACTED]'"),
        ('{"authorization": "Bearer abcdefgh12345"}', '{"authorization": "[REDACTED]"}'),
        ("got 401 for bearer abcdefgh12345678", "got 401 for bearer [REDACTED]"),
        ("export GITHUB_TOKEN=ghp_abc123 && run", "export GITHUB_TOKEN=[REDACTED] && run"),
        ('env MY_SECRET="two words" x', 'env MY_SECRET="[REDACTED]" x'),
        (
            "DB_PASSWORD='pa ss' AWS_SECRET_ACCESS_KEY=xyz",
            "DB_PASSWORD='[REDACTED]' AWS_SECRET_ACCESS_KEY=[REDACTED]",
        ),
        ("ANTHROPIC_API_KEY=short", "ANTHROPIC_API_KEY=[REDACTED]"),
        (
            "{'ANTHROPIC_API_KEY': 'zzzzzzzzz', 'PATH': '/bin'}",
            "{'ANTHROPIC_API_KEY': '[REDACTED]', 'PATH': '/bin'}",
        ),
        (
            '{"accessToken": "tok-123456", "expiresAt": 123}',
            '{"accessToken": "[REDACTED]", "expiresAt": 123}',
        ),
        ('{"x-api-key": "abc\\"def", "n": 1}', '{"x-api-key": "[REDACTED]", "n": 1}'),
        ('"FOO_TOKEN=\\"abc def\\" run"', '"FOO_TOKEN=\\"[REDACTED]\\" run"'),
        ("key sk-ant-api03-abcdefghijkl in text", f"key {REDACTED} in text"),
    ],
)
def test_secret_shapes_are_redacted(text: str, expected: str) -> None:
    redactor = Redactor()
    assert redactor(text) == expected
    assert redactor(redactor(text)) == expected  # redacting twice changes nothing more


@pytest.mark.parametrize(
    "text",
    [
        "anthropic.Anthropic(api_key=api_key, auth_token=auth_token)",  # code, not a value
        "the bearer of bad news",
        '{"max_tokens": 8192, "input_tokens": 12, "cache_key": "0f3a9c"}',
        "monkey=banana TOKENIZER=fast",
        "Authorization header missing",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor()(text) == text


def test_redacted_json_stays_json() -> None:
    document = {
        "argv": ["env", "MY_TOKEN=", "x-api-key: abcdef123456", 'A_SECRET="quoted value"'],
        "headers": {"Authorization": "Bearer abcdefgh12345", "x-api-key": "abcdef123456"},
        "note": 'ends with X_TOKEN="',
        "after": "something",
    }
    text = Redactor()(json.dumps(document))
    parsed = json.loads(text)  # still valid
    assert "abcdef123456" not in text and "abcdefgh12345" not in text
    assert "quoted value" not in text
    assert parsed["after"] == "something"


def test_redactor_tree_redacts_every_string() -> None:
    key = unique_key()
    tree = {"a": [key, ("x", f"pre {key}")], key: 3, "n": None}
    redacted = Redactor([key]).tree(tree)
    assert key not in json.dumps(redacted, default=list)
    assert redacted["a"][1] == ("x", f"pre {REDACTED}") and redacted[REDACTED] == 3


def test_report_redactor_hides_a_secret_cut_short_by_a_repr() -> None:
    secret = f"deploy-{uuid.uuid4().hex}"
    redactor = ReportRedactor([secret])
    for before, after in ((60, 300), (100, 300), (115, 300), (300, 100), (300, 120)):
        shown = saferepr("a" * before + secret + "b" * after)  # 240 characters at most
        assert "..." in shown
        hidden = redactor(shown)
        assert not [fragment for fragment in fragments(secret, 4) if fragment in hidden]
    assert redactor("an ellipsis... and text...") == "an ellipsis... and text..."


# --- the credentials file -------------------------------------------------------------------


def write_credentials(directory: Path, access: str, refresh: str) -> Path:
    path = directory / ".credentials.json"
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "claudeAiOauth": {
            "accessToken": access,
            "refreshToken": refresh,
            "expiresAt": 1234567890,
            "scopes": ["user:inference"],
            "subscriptionType": "max",
        }
    }
    path.write_text(json.dumps(document))
    return path


def test_session_redactor_knows_the_credentials_file(tmp_path: Path) -> None:
    access, refresh = f"sk-ant-oat01-{uuid.uuid4().hex}", f"rt-{uuid.uuid4().hex}"
    write_credentials(tmp_path / "config", access, refresh)
    environ = {"CLAUDE_CONFIG_DIR": str(tmp_path / "config"), "CUSTOM_SERVICE_TOKEN": "tok-value-1"}
    assert credentials_file(environ) == tmp_path / "config" / ".credentials.json"
    redactor = session_redactor(environ)
    text = redactor(f"{access} {refresh} tok-value-1 max user:inference")
    assert text == f"{REDACTED} {REDACTED} {REDACTED} max user:inference"


def test_credentials_file_is_read_carefully(tmp_path: Path) -> None:
    real = write_credentials(tmp_path / "real", "access-token-1", "refresh-token-1")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    assert secrets_from_credentials_file(link) == []  # a symlink is not followed
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    assert secrets_from_credentials_file(fifo) == []  # and a FIFO does not hang
    (tmp_path / "bad.json").write_text("{not json")
    assert secrets_from_credentials_file(tmp_path / "bad.json") == []
    assert secrets_from_credentials_file(tmp_path / "missing.json") == []
    assert sorted(secrets_from_credentials_file(real)) == ["access-token-1", "refresh-token-1"]


# --- whole sessions -------------------------------------------------------------------------


@pytest.fixture
def secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    key, custom = unique_key(), f"pw{random_tail()}"
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    monkeypatch.setenv(CUSTOM_SECRET_VAR, custom)
    return key, custom


def fail_with(note: str, env: dict[str, str]) -> None:
    raise RuntimeError(f"harness bug with {env} and {os.environ['ANTHROPIC_API_KEY']}")


def fragments(secret: str, size: int = 6) -> list[str]:
    return [secret[start : start + size] for start in range(len(secret) - size + 1)]


def random_fragments(secret: str, size: int = 6) -> list[str]:
    """Pieces of the secret's random tail: a piece of its fixed prefix ("test-9" of
    "sk-ant-test-9...") is ordinary text that pytest prints too ("pytest-9.0")."""
    tail = secret[-32:]
    return fragments(tail, size)


def crash_runs_with_the_secrets_in_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run 1 crashes in the item's setup, outside the runner, after printing and logging the
    secrets; run 2 crashes inside the agent with the request and its env in the message."""
    original_executor = ScyllaSession.executor

    def exploding_executor(session: ScyllaSession) -> Any:
        real = original_executor(session)

        class Exploding:
            def reported_as_is(self, plan: Any, **_: Any) -> Any:
                return None  # every run through execute, as a session without records

            def execute(self, plan: Any) -> Any:
                if plan.run_number != 1:
                    return real.execute(plan)
                env = {name: os.environ[name] for name in ("ANTHROPIC_API_KEY", CUSTOM_SECRET_VAR)}
                print(f"stdout holds {env}")
                print(f"stderr holds {env}", file=sys.stderr)
                logging.getLogger("scylla.test").error("log holds %s", env)
                # pytest cuts this argument's repr to 240 characters, through the secret.
                fail_with("a" * 100 + os.environ[CUSTOM_SECRET_VAR] + "b" * 300, env)

        return Exploding()

    def exploding_agent(self: OracleAgent, request: AgentRequest, sandbox: Any) -> Any:
        env = {**request.passthrough_env, CUSTOM_SECRET_VAR: os.environ[CUSTOM_SECRET_VAR]}
        raise RuntimeError(f"agent crashed: {request!r} {env} {os.environ['ANTHROPIC_API_KEY']}")

    monkeypatch.setattr(ScyllaSession, "executor", exploding_executor)
    monkeypatch.setattr(OracleAgent, "run", exploding_agent)


@pytest.mark.slow
@pytest.mark.parametrize("tb_style", ["auto", "long"])
def test_a_crashing_run_leaks_no_secret_anywhere(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    secrets_in_env: tuple[str, str],
    tb_style: str,
) -> None:
    crash_runs_with_the_secrets_in_hand(monkeypatch)
    experiment = write_experiment(pytester.path, "exp-leak")
    results = pytester.path / "results"
    junit, json_report = pytester.path / "junit.xml", pytester.path / "report.json"
    result = pytester.runpytest(
        str(experiment),
        "--runs", "2", "--max-subtests", "1", "--agent", "oracle",
        "--results-dir", str(results),
        f"--tb={tb_style}", "--showlocals", "-rA", "-vv",
        f"--junitxml={junit}", "--json-report", f"--json-report-file={json_report}",
        *OFFLINE,
    )  # fmt: skip
    result.assert_outcomes(errors=2)
    terminal = "\n".join(result.outlines + result.errlines)
    written = [junit.read_text(), json_report.read_text()]
    for secret in secrets_in_env:
        for fragment in random_fragments(secret):  # whole, or cut short by a repr
            assert fragment not in terminal
            assert all(fragment not in text for text in written)
    assert files_holding(results, *secrets_in_env) == []
    # The captured output and log are there, redacted, in every report.
    assert f"stdout holds {{'ANTHROPIC_API_KEY': '{REDACTED}'" in terminal
    assert "log holds" in terminal and "stderr holds" in terminal
    tests = json.loads(json_report.read_text())["tests"]
    crashed = next(test for test in tests if test["nodeid"].endswith("[run-01]"))
    assert REDACTED in crashed["setup"]["stdout"] and REDACTED in crashed["setup"]["stderr"]
    assert "log holds" in json.dumps(crashed["setup"]["log"])
    if tb_style == "long":  # the full traceback, with the frame that raised
        assert "def execute(self, plan: Any) -> Any:" in terminal
        assert "note = 'aaaa" in terminal and f"{REDACTED}...bbbb" in terminal
        assert "RuntimeError" in crashed["setup"]["crash"]["message"]
    else:  # one line and where the run's files are
        assert "def execute" not in terminal
        assert "RuntimeError: harness bug with" in terminal
        assert "--tb=long shows the traceback" in terminal
    # The run crashed inside the agent is an error record whose files are named.
    assert "run files: " in terminal and "agent crashed" in terminal


@pytest.mark.slow
def test_manifest_and_run_files_hold_no_key_from_the_command_line(
    pytester: pytest.Pytester, secrets_in_env: tuple[str, str]
) -> None:
    key, _custom = secrets_in_env
    pasted_key = unique_key()  # typed on the command line only, in no variable
    header_key = f"hdr{uuid.uuid4().hex}"
    bearer = f"tok{uuid.uuid4().hex}"
    template = (
        f'true "x-api-key: {header_key}" "Authorization: Bearer {bearer}" {pasted_key} {key} '
        "{prompt_file}"
    )
    experiment = write_experiment(pytester.path, "exp-cmd")
    results = pytester.path / "results"
    result = pytester.runpytest(
        str(experiment), "--runs", "1", "--max-subtests", "1", "--agent", "command",
        f"--agent-command={template}", "--results-dir", str(results), *OFFLINE,
    )  # fmt: skip
    result.assert_outcomes(failed=1)  # `true` writes nothing: judged and failed
    secrets = (key, pasted_key, header_key, bearer)
    manifest_text = (results / "exp-cmd" / "manifest.json").read_text()
    manifest = json.loads(manifest_text)
    assert manifest["options"]["agent_command"].startswith('true "x-api-key: [REDACTED]"')
    assert any("--agent-command=" in argument for argument in manifest["invocation"])
    assert not any(secret in manifest_text for secret in secrets)
    assert files_holding(results, *secrets) == []
    assert not any(secret in "\n".join(result.outlines) for secret in secrets)


def test_the_manifest_hides_the_claude_login_token(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The controller's redactor knew only secret-named variables: a Claude login token
    pasted into a command template reached manifest.json."""
    config_dir = tmp_path / "claude-config"
    config_dir.mkdir()
    token = f"oat{random_tail()}"  # no secret shape: only the login file makes it a secret
    credentials = {"claudeAiOauth": {"accessToken": token, "refreshToken": f"rt-{random_tail()}"}}
    (config_dir / ".credentials.json").write_text(json.dumps(credentials))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config_dir))
    plain = token
    experiment = write_experiment(pytester.path, "exp-login")
    results = pytester.path / "results"
    result = pytester.runpytest(
        str(experiment), "--runs", "1", "--max-subtests", "1", "--agent", "command",
        f"--agent-command=true {plain} {{prompt_file}}", "--results-dir", str(results),
        *OFFLINE,
    )  # fmt: skip
    result.assert_outcomes(failed=1)
    manifest_text = (results / "exp-login" / "manifest.json").read_text()
    assert "--agent-command=" in manifest_text
    assert plain not in manifest_text
    assert files_holding(results, plain) == []


@pytest.mark.slow
def test_judges_work_when_the_session_fake_api_meets_an_auth_token(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--scylla-fake-api sets its own API key; a user's ANTHROPIC_AUTH_TOKEN beside it made
    every judge crash ("Pass at most one of api_key=, auth_token=") after the agent ran."""
    token = f"user-oauth-{uuid.uuid4().hex}"
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", token)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    experiment = REPO / "experiments" / "test-001"
    results = pytester.path / "results"
    seen: dict[str, str | None] = {}

    class EnvDuringSession:
        def pytest_sessionstart(self) -> None:
            for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
                seen[name] = os.environ.get(name)

    result = pytester.runpytest(
        str(experiment), "--tiers", "T0", "--runs", "1", "--max-subtests", "1",
        "--agent", "oracle", "--scylla-fake-api", str(experiment / "dry-run.yaml"),
        "--results-dir", str(results), "-p", "no:cacheprovider",
        plugins=[EnvDuringSession()],
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    # The fake server's session hands out its dry-run key only: the token is not sent to it.
    assert seen == {"ANTHROPIC_API_KEY": DRY_RUN_KEY, "ANTHROPIC_AUTH_TOKEN": None}
    [record_file] = results.rglob("run_result.json")
    judges = json.loads(record_file.read_text())["judges"]
    assert judges and all(judge["status"] == "ok" for judge in judges)
    assert files_holding(results, token) == []
    assert os.environ["ANTHROPIC_AUTH_TOKEN"] == token  # the session gave it back

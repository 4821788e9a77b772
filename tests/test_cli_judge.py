"""The CLI judge backend: the REAL Claude Code CLI against the fake Messages API (issue 13).

What CLI 2.1.33x does with the judge's flags, pinned here (see judges/cli_judge.py):

- With ``--json-schema S --tools ""`` the request's only tool is ``StructuredOutput`` with
  ``input_schema`` S, and there is no ``tool_choice``; the final result object carries the
  tool input as ``structured_output``.
- An answer that breaks S is sent back by the CLI itself as an error tool_result
  ("Output does not match required schema"), and the conversation goes on.
- ``--system-prompt-file`` replaces Claude Code's own system prompt: the request's system
  blocks are a billing header, one SDK line and our text.
- A login (``.credentials.json`` in CLAUDE_CONFIG_DIR) and ``CLAUDE_CODE_OAUTH_TOKEN`` are
  both sent as ``Authorization: Bearer`` (with the ``oauth-2025-04-20`` beta), never as
  ``x-api-key``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from process_scan import processes_with

from pytest_scylla.agents.claude_code import bundled_claude
from pytest_scylla.credentials import ClaudeCredentials, claude_code_credentials
from pytest_scylla.judges.cli_judge import STRUCTURED_OUTPUT_TOOL, CliJudge
from pytest_scylla.judges.prompt import JudgeInput
from pytest_scylla.pricing import PricingTable
from pytest_scylla.records import CheckResult, ChecksRecord
from pytest_scylla.spec.rubric import Rubric
from pytest_scylla.testing.fake_api import FakeMessagesAPI, Fault, RecordedRequest, Reply, ToolCall

CLI = bundled_claude()
pytestmark = pytest.mark.skipif(
    CLI is None, reason="claude-agent-sdk with its bundled Claude Code CLI is not installed"
)

ACCESS = "sk-ant-oat01-CLI-JUDGE-access-token-0123456789"
REFRESH = "sk-ant-ort01-CLI-JUDGE-refresh-token-0123456789"
MODEL = "claude-opus-4-6"
RUBRIC_TEXT = """\
categories:
  functional:
    weight: 0.6
    items:
      - {id: F1, check: "hello.py prints Hello, World!", points: 2}
      - {id: F2, check: "python hello.py exits 0", points: 1, command: "python hello.py"}
  quality:
    weight: 0.4
    items:
      - {id: Q1, check: "no unused imports", points: 1}
"""


def rubric():  # type: ignore[no-untyped-def]
    import yaml

    return Rubric.model_validate(yaml.safe_load(RUBRIC_TEXT)).normalized()


RUBRIC = rubric()
JUDGED = [item for item in RUBRIC.items() if not item.command]


def make_input(diff: str = "+print('Hello, World!')\n") -> JudgeInput:
    return JudgeInput(
        task_prompt="Create hello.py that prints Hello, World!",
        criteria="R001: prints exactly Hello, World!",
        rubric=RUBRIC,
        rubric_text=RUBRIC_TEXT,
        diff=diff,
        files=["hello.py"],
        checks=ChecksRecord(
            rubric_commands={"F2": CheckResult(name="F2", command="python hello.py", exit_code=0)}
        ),
    )


def answer(**points: float | None) -> dict[str, Any]:
    return {
        "items": [
            {"item_id": item_id, "achieved": value, "reason": f"evidence for {item_id}"}
            for item_id, value in points.items()
        ],
        "overall_reasoning": "looks right",
    }


def structured(payload: dict[str, Any]) -> Reply:
    return Reply(tool_calls=[ToolCall(name=STRUCTURED_OUTPUT_TOOL, input=payload)])


def login_credentials(tmp_path: Path) -> ClaudeCredentials:
    config = tmp_path / "user-config"
    config.mkdir()
    oauth = {
        "accessToken": ACCESS,
        "refreshToken": REFRESH,
        "expiresAt": int(time.time() * 1000) + 3_600_000,
        "scopes": ["user:inference"],
    }
    (config / ".credentials.json").write_text(json.dumps({"claudeAiOauth": oauth}))
    credentials = claude_code_credentials({"CLAUDE_CONFIG_DIR": str(config)})
    assert credentials is not None and credentials.login is not None
    return credentials


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The judge's temp folders go here, so a test sees what is left of them."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def api() -> Iterator[FakeMessagesAPI]:
    # Any credential but the token is refused: a passing judgment proves what was sent.
    with FakeMessagesAPI(api_key=ACCESS) as fake:
        yield fake


def make_judge(api: FakeMessagesAPI, credentials: ClaudeCredentials, **kwargs: Any) -> CliJudge:
    return CliJudge(
        MODEL,
        credentials=credentials,
        pricing=PricingTable.load(),
        environ={"ANTHROPIC_BASE_URL": api.base_url, "CLAUDE_CODE_MAX_RETRIES": "0"},
        **kwargs,
    )


def every_file_text(folder: Path) -> str:
    return "\n".join(
        path.read_text("utf-8", "replace") for path in folder.rglob("*") if path.is_file()
    )


def system_text(request: RecordedRequest) -> str:
    return "\n".join(block.get("text", "") for block in request.body.get("system") or [])


@pytest.mark.slow
def test_a_login_judges_through_structured_output(
    api: FakeMessagesAPI, tmp_path: Path, scratch: Path
) -> None:
    api.set_replies([structured(answer(F1=2, Q1=0.5))])
    out = tmp_path / "judges" / MODEL
    record = make_judge(api, login_credentials(tmp_path)).judge(make_input(), JUDGED, out)
    assert record.status == "ok", record.error
    assert record.backend == "cli" and record.attempts == 1
    assert {item: j.achieved for item, j in record.items.items()} == {"F1": 2, "Q1": 0.5}
    assert record.tokens.total > 0 and record.cost_usd > 0  # priced from the table

    [request] = api.message_requests()
    assert "authorization" in request.headers and "x-api-key" not in request.headers
    assert "oauth-2025-04-20" in request.headers.get("anthropic-beta", "")
    assert [tool["name"] for tool in request.body["tools"]] == [STRUCTURED_OUTPUT_TOOL]
    schema = request.body["tools"][0]["input_schema"]
    assert set(schema["required"]) == {"items", "overall_reasoning"}
    system = system_text(request)
    assert "# Items to judge" in system and "`F1`" in system and "`Q1`" in system
    assert f"calling the {STRUCTURED_OUTPUT_TOOL} tool" in system
    assert "submit_judgment" not in json.dumps(request.body)
    assert "You are an agent working with the user" not in system  # Claude Code's own prompt
    assert "+print('Hello, World!')" in json.dumps(request.body["messages"])

    written = every_file_text(out)
    assert ACCESS not in written and REFRESH not in written
    log = json.loads((out / "response.json").read_text())
    assert log["backend"] == "cli" and log["answers"][0]["structured_output"]["items"]
    assert "StructuredOutput" in (out / "prompt.md").read_text()
    assert list(scratch.iterdir()) == []  # the private home and its login copy are gone


@pytest.mark.slow
def test_an_oauth_token_judges_too(api: FakeMessagesAPI, tmp_path: Path, scratch: Path) -> None:
    api.set_replies([structured(answer(F1=0, Q1=1))])
    credentials = claude_code_credentials({"CLAUDE_CODE_OAUTH_TOKEN": ACCESS})
    assert credentials is not None and credentials.login is None
    record = make_judge(api, credentials).judge(make_input(), JUDGED, tmp_path / "out")
    assert record.status == "ok", record.error
    [request] = api.message_requests()
    assert "authorization" in request.headers and "x-api-key" not in request.headers
    assert ACCESS not in every_file_text(tmp_path / "out")


@pytest.mark.slow
def test_the_cli_checks_the_schema_and_we_check_the_rubric(
    api: FakeMessagesAPI, tmp_path: Path, scratch: Path
) -> None:
    api.set_replies(
        [
            structured({"verdict": "good"}),  # the CLI itself rejects this one (schema)
            structured(answer(F1=2)),  # fits the schema, misses Q1: we send it back
            structured(answer(F1=1.5, Q1=1)),
        ]
    )
    out = tmp_path / "out"
    record = make_judge(api, login_credentials(tmp_path)).judge(make_input(), JUDGED, out)
    assert record.status == "ok" and record.attempts == 2, record.error
    requests = api.message_requests()
    assert len(requests) == 3
    schema_error = json.dumps(requests[1].body["messages"][-1])
    assert "does not match required schema" in schema_error
    retry_prompt = json.dumps(requests[2].body["messages"][0])
    assert "Your previous answer was rejected: missing items: Q1" in retry_prompt
    log = json.loads((out / "response.json").read_text())
    assert [entry["validation_error"] for entry in log["answers"]] == [
        "missing items: Q1",
        None,
    ]


@pytest.mark.slow
def test_an_api_error_is_a_failed_record(
    api: FakeMessagesAPI, tmp_path: Path, scratch: Path
) -> None:
    api.inject(Fault.from_status(401), times=3)
    record = make_judge(api, login_credentials(tmp_path)).judge(
        make_input(), JUDGED, tmp_path / "out"
    )
    assert record.status == "failed" and record.backend == "cli"
    assert "HTTP 401" in (record.error or "") and "\n" not in (record.error or "")
    assert list(scratch.iterdir()) == []


@pytest.mark.slow
def test_a_hanging_api_times_out_and_the_cli_is_killed(
    api: FakeMessagesAPI, tmp_path: Path, scratch: Path
) -> None:
    api.inject(Fault(kind="hang", seconds=60), times=5)
    judge = make_judge(api, login_credentials(tmp_path), timeout_s=3)
    started = time.monotonic()
    record = judge.judge(make_input(), JUDGED, tmp_path / "out")
    assert time.monotonic() - started < 20
    assert record.status == "failed" and re.search(r"timed out after 3 s", record.error or "")
    assert list(scratch.iterdir()) == []
    # No CLI process of this judgment is left (its command line names the scratch folder).
    assert processes_with(str(scratch)) == []


# ---------------------------------------------------------------- whole sessions, logged in

ROOT = Path(__file__).resolve().parents[1]
JUDGE_ITEM = re.compile(r"^- `(?P<id>[^`]+)` \(max (?P<points>[0-9.]+) points", re.M)
# A hostile agent: it reads the login it was given, copies it into its workspace, and
# records how it was given; then it does the task.
SNOOP_SCRIPT = {
    "turns": [
        {
            "tool_use": {
                "name": "Bash",
                "input": {
                    "command": 'stat -c %a "$CLAUDE_CONFIG_DIR/.credentials.json" > cred-mode.txt'
                    ' 2>&1; cat "$CLAUDE_CONFIG_DIR/.credentials.json" > leaked.json 2>&1;'
                    " env > leaked-env.txt; true",
                    "description": "look around",
                },
            }
        },
        {
            "tool_use": {
                "name": "Write",
                "input": {"file_path": "hello.py", "content": 'print("Hello, World!")\n'},
            }
        },
        {"text": "Created hello.py.", "stop_reason": "end_turn"},
    ]
}


class SessionResponder:
    """The agent's turns from SNOOP_SCRIPT; a CLI judge request gets full points."""

    def __init__(self) -> None:
        from pytest_scylla.testing.scripted_model import DryRunScript

        self.agent = DryRunScript.model_validate(SNOOP_SCRIPT).as_responder()
        self.judge_requests: list[RecordedRequest] = []

    def __call__(self, request: RecordedRequest) -> Reply:
        tools = [tool.get("name") for tool in request.body.get("tools") or []]
        if tools == [STRUCTURED_OUTPUT_TOOL]:
            self.judge_requests.append(request)
            items = {
                match["id"]: float(match["points"])
                for match in JUDGE_ITEM.finditer(system_text(request).split("# Items to judge")[-1])
            }
            return structured(answer(**items))
        reply = self.agent(request)
        assert isinstance(reply, Reply)
        return reply


def run_session(
    api: FakeMessagesAPI, home: Path, results: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("ANTHROPIC_", "PYTEST_", "CLAUDE_"))
    }
    environ.update(HOME=str(home), ANTHROPIC_BASE_URL=api.base_url, CLAUDE_CODE_MAX_RETRIES="0")
    environ.update(env)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "experiments/test-001",
        "--agent",
        "claude-code",
        "--tiers",
        "T0",
        "--runs",
        "1",
        "--max-subtests",
        "1",
        "--judge-model",
        MODEL,
        "--scylla-keep-workspace",
        "--results-dir",
        str(results),
        "-p",
        "no:cacheprovider",
        "-q",
        *args,
    ]
    return subprocess.run(
        command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=240
    )


def every_byte(folder: Path) -> bytes:
    return b"\n".join(path.read_bytes() for path in folder.rglob("*") if path.is_file())


@pytest.fixture
def session_api() -> Iterator[tuple[FakeMessagesAPI, SessionResponder]]:
    responder = SessionResponder()
    with FakeMessagesAPI(responder, api_key=ACCESS) as fake:
        yield fake, responder


def check_logged_in_session(
    proc: subprocess.CompletedProcess[str],
    api: FakeMessagesAPI,
    responder: SessionResponder,
    results: Path,
) -> dict[str, Any]:
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    [record_file] = results.glob("test-001/T0/*/run-01/run_result.json")
    record = json.loads(record_file.read_text())
    assert record["outcome"] == "passed", output[-3000:]
    assert record["agent"]["finished"] and not record["agent"]["is_error"]
    [judge] = record["judges"]
    assert judge["status"] == "ok" and judge["backend"] == "cli"
    assert len(responder.judge_requests) == 1
    requests = api.message_requests()
    assert len(requests) > len(responder.judge_requests)  # the agent's turns came first
    for request in requests:
        # The fake refuses any other credential: the token itself was sent, as a bearer.
        assert "authorization" in request.headers and "x-api-key" not in request.headers
    written = every_byte(results)
    for secret in (ACCESS, REFRESH):
        assert secret.encode() not in written
        assert secret not in output
    return record


@pytest.mark.slow
def test_a_session_with_only_a_login_runs_and_judges(
    session_api: tuple[FakeMessagesAPI, SessionResponder], tmp_path: Path
) -> None:
    api, responder = session_api
    home = tmp_path / "home"
    login_credentials(tmp_path)  # writes user-config/.credentials.json
    (home / ".claude").mkdir(parents=True)
    (tmp_path / "user-config" / ".credentials.json").rename(home / ".claude" / ".credentials.json")
    results = tmp_path / "results"
    proc = run_session(api, home, results)
    record = check_logged_in_session(proc, api, responder, results)
    run_dir = results / "test-001" / "T0" / record["subtest"] / "run-01"
    diff = (run_dir / "workspace.diff").read_text()
    # The agent saw a read-only copy, and what it copied out reached results redacted.
    assert "+400" in diff and "[REDACTED]" in diff
    assert "accessToken" in (run_dir / "workspace" / "leaked.json").read_text()


@pytest.mark.slow
def test_a_session_with_only_an_oauth_token_runs_and_judges(
    session_api: tuple[FakeMessagesAPI, SessionResponder], tmp_path: Path
) -> None:
    api, responder = session_api
    home = tmp_path / "home"
    home.mkdir()
    results = tmp_path / "results"
    proc = run_session(api, home, results, CLAUDE_CODE_OAUTH_TOKEN=ACCESS)
    record = check_logged_in_session(proc, api, responder, results)
    run_dir = results / "test-001" / "T0" / record["subtest"] / "run-01"
    leaked_env = (run_dir / "workspace" / "leaked-env.txt").read_text()
    # The CLI keeps the token out of its Bash tool's environment (2.1.33x); either way the
    # token never reaches results raw (check_logged_in_session).
    assert "PATH=" in leaked_env and ACCESS not in leaked_env


@pytest.mark.slow
def test_no_credential_stops_before_the_first_run_with_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("ANTHROPIC_", "PYTEST_", "CLAUDE_"))
    }
    environ["HOME"] = str(home)
    results = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "experiments/test-001",
            "--judge-model",
            MODEL,
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
        timeout=120,
    )
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in proc.stderr.splitlines() if "pytest-scylla:" in line]
    assert len(lines) == 1, proc.stderr
    assert "agent claude-code" in lines[0] and f"judge {MODEL}" in lines[0]
    assert "claude login" in lines[0]
    assert not list(results.rglob("run_result.json")) and "test.yaml::" not in proc.stdout


def test_an_api_judge_record_says_api(tmp_path: Path) -> None:
    import anthropic

    from pytest_scylla.judges.backoff import SharedBackoff
    from pytest_scylla.judges.llm import LlmJudge

    reply = Reply(tool_calls=[ToolCall(name="submit_judgment", input=answer(F1=2, Q1=1))])
    with FakeMessagesAPI([reply], api_key=ACCESS) as fake:
        judge = LlmJudge(
            MODEL,
            client=anthropic.Anthropic(api_key=ACCESS, base_url=fake.base_url),
            backoff=SharedBackoff(tmp_path / "backoff.json"),
            cache=None,
            pricing=PricingTable.load(),
        )
        record = judge.judge(make_input(), JUDGED, tmp_path / "out")
    assert record.status == "ok" and record.backend == "api"


@pytest.mark.slow
def test_a_login_without_a_cli_stops_before_the_first_run(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    login_credentials(tmp_path)
    (tmp_path / "user-config" / ".credentials.json").rename(home / ".claude" / ".credentials.json")
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("ANTHROPIC_", "PYTEST_", "CLAUDE_"))
    }
    environ["HOME"] = str(home)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "experiments/test-001",
            "--agent",
            "oracle",
            "--judge-model",
            MODEL,
            "--claude-bin",
            str(tmp_path / "no-such-claude"),
            "--results-dir",
            str(tmp_path / "results"),
            "-p",
            "no:cacheprovider",
            "-q",
        ],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout[-2000:]
    lines = [line for line in proc.stderr.splitlines() if "pytest-scylla:" in line]
    assert len(lines) == 1 and "judges use the Claude Code CLI" in lines[0], proc.stderr

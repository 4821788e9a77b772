"""The REAL Claude Code CLI against the fake Messages API: offline, zero cost.

These tests also pin down what we learned about the CLI, so that a new CLI version that
breaks an assumption fails here rather than in a study. Seen with claude-agent-sdk 0.2.188
(CLI 2.1.331):

- Requests: only ``POST /v1/messages?beta=true`` with ``stream: true``, header
  ``x-api-key`` (from ANTHROPIC_API_KEY) and ``x-claude-code-session-id``; in ``-p`` mode no
  side requests at all (no title generation, no Haiku calls, no count_tokens), with or
  without CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC.
- The working directory is named in a system-reminder in the first user message
  ("Primary working directory: ..."), not in the system prompt.
- ``cache_control`` sits on system blocks and on the last message block, so with the fake
  server's prompt cache every prompt token is a cache write or read (input_tokens 0).
- The CLI's final ``result`` event ``modelUsage`` equals the usage the server reported.
- Errors: the CLI retries 401, 429, 529 and cut streams itself (its SDK's own retry count
  header stays 0), up to CLAUDE_CODE_MAX_RETRIES (default 10) with exponential backoff,
  printing a ``system``/``api_retry`` event per retry (a cut stream: ``error_status`` null,
  ``error`` "unknown"). A 401 is retried too: without CLAUDE_CODE_MAX_RETRIES a bad key
  costs minutes of backoff before the run ends, and then the result has subtype "success"
  with ``is_error`` true, ``api_error_status`` 401 and ``terminal_reason`` "api_error".
- A cut stream is retried; its ``message_start`` usage (sent before the cut) is in the CLI's
  totals only when the CLI processed that event before seeing the cut (a race), plus the
  CLI's own estimate of the output it received. The server records the cut reply as an
  incomplete usage (``usage_totals(include_incomplete=True)``); exact equality with the
  CLI holds only for runs without cut streams.
- A tool call whose input is not JSON becomes an ``InputValidationError`` tool_result and
  the conversation goes on (it counts as an assistant turn).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_scylla.agents.claude_code import bundled_claude
from pytest_scylla.testing.fake_api import FakeMessagesAPI, Fault, Usage
from pytest_scylla.testing.scripted_model import DryRunScript, load_dry_run_script

ROOT = Path(__file__).resolve().parents[1]
DRY_RUN = ROOT / "experiments" / "test-001" / "dry-run.yaml"
MODEL = "claude-sonnet-4-5"


CLI = bundled_claude()
pytestmark = [
    pytest.mark.claude_cli,
    pytest.mark.skipif(
        CLI is None, reason="claude-agent-sdk with its bundled Claude Code CLI is not installed"
    ),
]


@dataclass
class CliRun:
    returncode: int
    events: list[dict[str, Any]]
    stderr: str
    seconds: float

    @property
    def result(self) -> dict[str, Any]:
        results = [e for e in self.events if e.get("type") == "result"]
        assert results, f"no result event; stderr: {self.stderr[-2000:]}"
        return results[-1]

    def of(self, kind: str, subtype: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e.get("type") == kind and (subtype is None or e.get("subtype") == subtype)
        ]


def cli_env(api: FakeMessagesAPI, home: Path, **extra: str) -> dict[str, str]:
    """The environment that keeps the CLI offline, quiet and ours alone."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),  # a per-run HOME: no user settings, sessions or credentials leak in
        "ANTHROPIC_BASE_URL": api.base_url,
        "ANTHROPIC_API_KEY": "sk-ant-fake-key",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "IS_SANDBOX": "1",  # as root, --dangerously-skip-permissions refuses to start without it
    }
    env.update(extra)
    return {k: v for k, v in env.items() if v != ""}


def run_cli(
    api: FakeMessagesAPI,
    workspace: Path,
    home: Path,
    *,
    prompt: str = "Create hello.py that prints Hello, World! and run it.",
    model: str = MODEL,
    timeout: float = 120,
    **env: str,
) -> CliRun:
    argv = [
        str(CLI),
        "-p",
        prompt,
        "--output-format",
        "stream-json",
        "--verbose",
        "--model",
        model,
        "--dangerously-skip-permissions",
    ]
    start = time.monotonic()
    proc = subprocess.run(
        argv,
        cwd=workspace,
        env=cli_env(api, home, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return CliRun(proc.returncode, events, proc.stderr, time.monotonic() - start)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    repo = tmp_path / "ws"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    (repo / "README.md").write_text("# test-001 workspace\n")
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "start"], cwd=repo, check=True)
    return repo


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def model_usage_as_server_usage(result: dict[str, Any]) -> dict[str, Usage]:
    return {
        model: Usage(
            input_tokens=u["inputTokens"],
            output_tokens=u["outputTokens"],
            cache_creation_input_tokens=u["cacheCreationInputTokens"],
            cache_read_input_tokens=u["cacheReadInputTokens"],
        )
        for model, u in result["modelUsage"].items()
    }


def test_cli_runs_the_test_001_dry_run_script(workspace: Path, home: Path) -> None:
    script = load_dry_run_script(DRY_RUN)
    with FakeMessagesAPI(script.as_responder()) as api:
        run = run_cli(api, workspace, home)
    assert run.returncode == 0, run.stderr
    assert (workspace / "hello.py").read_text() == 'print("Hello, World!")\n'
    result = run.result
    assert result["subtype"] == "success"
    assert result["is_error"] is False
    assert result["num_turns"] == 3
    assert str(workspace) in result["result"]
    init = run.of("system", "init")[0]
    assert init["model"] == MODEL
    assert Path(init["cwd"]).resolve() == workspace.resolve()
    # The Bash tool really ran the file the Write tool wrote.
    tool_results = [
        block
        for event in run.of("user")
        for block in event["message"]["content"]
        if block.get("type") == "tool_result"
    ]
    assert "Hello, World!" in str(tool_results[-1]["content"])

    requests = api.requests
    # Only the agent's own turns: no side requests (titles, Haiku, count_tokens) in -p mode.
    assert len(requests) == 3
    for request in requests:
        assert (request.method, request.path, request.query) == (
            "POST",
            "/v1/messages",
            {"beta": ["true"]},
        )
        assert request.model == MODEL  # the model given with --model
        assert request.stream
        assert request.headers["x-api-key"] == "REDACTED"
        assert request.headers["x-claude-code-session-id"] == result["session_id"]
        assert request.headers["user-agent"].startswith("claude-cli/")
    body = requests[0].body
    offered = {tool["name"] for tool in body["tools"]}
    # The file and shell tools a dry-run script needs (the full list changes between versions:
    # 2.1.331 offered Agent, Bash, Edit, ListAgents, Read, ReportFindings, ScheduleWakeup,
    # Skill, ToolSearch, Workflow, DeferredToolPlaceholder, Write).
    assert {"Bash", "Edit", "Read", "Write"} <= offered
    write = next(t for t in body["tools"] if t["name"] == "Write")
    assert {"file_path", "content"} <= set(write["input_schema"]["required"])
    bash = next(t for t in body["tools"] if t["name"] == "Bash")
    assert "command" in bash["input_schema"]["required"]
    assert {"model", "messages", "system", "tools", "max_tokens", "stream"} <= set(body)

    # Usage accounting: the CLI's per-model totals are exactly what the server reported.
    totals = api.usage_totals()
    assert model_usage_as_server_usage(result) == totals
    assert result["usage"]["output_tokens"] == totals[MODEL].output_tokens
    assert result["usage"]["cache_read_input_tokens"] == totals[MODEL].cache_read_input_tokens
    assert totals[MODEL].cache_read_input_tokens > 0  # the prompt cache was exercised
    assert result["total_cost_usd"] > 0  # the CLI prices tokens itself, from list prices


def test_cli_makes_no_side_requests_even_with_nonessential_traffic_allowed(
    workspace: Path, home: Path
) -> None:
    script = DryRunScript.model_validate({"turns": [{"text": "Nothing to do."}]})
    with FakeMessagesAPI(script.as_responder()) as api:
        run = run_cli(api, workspace, home, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="")
    assert run.result["subtype"] == "success"
    side = [r for r in api.requests if r.path != "/v1/messages" or r.model != MODEL]
    # If a new CLI version starts making side requests, the script answers them harmlessly:
    # this records what they are.
    assert side == [], [(r.path, r.model) for r in side]
    assert len(api.requests) == 1


def test_cli_with_a_rejected_key(workspace: Path, home: Path) -> None:
    with FakeMessagesAPI(["never sent"], api_key="another-key") as api:
        # The CLI retries 401s; cap it, or a bad key costs minutes of backoff.
        run = run_cli(api, workspace, home, CLAUDE_CODE_MAX_RETRIES="1")
    assert len(api.requests) == 2  # first try + 1 retry
    retries = run.of("system", "api_retry")
    assert [(e["error_status"], e["error"]) for e in retries] == [(401, "authentication_failed")]
    result = run.result
    # What the CLI reports for an authentication failure (CLI 2.1.331): exit code 1 and a
    # result whose subtype is still "success" (!): is_error, api_error_status and
    # terminal_reason are what tell it apart. The text comes from a synthetic assistant
    # message ("Invalid API key · Fix external API key"); no usage, no cost.
    assert run.returncode == 1
    assert result["subtype"] == "success"
    assert result["is_error"] is True
    assert result["api_error_status"] == 401
    assert result["terminal_reason"] == "api_error"
    assert "Invalid API key" in result["result"]
    assert result["modelUsage"] == {}
    assert result["total_cost_usd"] == 0
    assert run.of("assistant")[-1]["message"]["model"] == "<synthetic>"


def test_cli_retries_a_429_burst_then_succeeds(workspace: Path, home: Path) -> None:
    script = DryRunScript.model_validate({"turns": [{"text": "Done after the burst."}]})
    with FakeMessagesAPI(script.as_responder()) as api:
        api.inject(Fault(kind="rate_limit", retry_after=0), times=3)
        run = run_cli(api, workspace, home)
    assert run.result["subtype"] == "success"
    assert run.result["result"] == "Done after the burst."
    assert len(api.requests) == 4  # 3 rejected + 1 served: one request per retry
    retries = run.of("system", "api_retry")
    assert [e["error_status"] for e in retries] == [429, 429, 429]
    # The CLI retries on its own, so its SDK's retry counter header never moves.
    assert {r.headers["x-stainless-retry-count"] for r in api.requests} == {"0"}
    assert model_usage_as_server_usage(run.result) == api.usage_totals()


def test_cli_survives_a_scripted_fault_sequence(workspace: Path, home: Path) -> None:
    script = DryRunScript.model_validate(
        {
            "turns": [
                {"fault": 529},
                {"fault": "cut_stream", "after_events": 4},
                {"fault": "invalid_tool_json", "tool": "Write"},
                {
                    "tool_use": {
                        "name": "Write",
                        "input": {"file_path": "ok.txt", "content": "ok\n"},
                    }
                },
                {"text": "Recovered."},
            ]
        }
    )
    with FakeMessagesAPI(script.as_responder()) as api:
        run = run_cli(api, workspace, home, prompt="Write ok.txt.")
    assert run.result["subtype"] == "success", run.stderr
    assert run.result["result"] == "Recovered."
    assert (workspace / "ok.txt").read_text() == "ok\n"
    # 529 and the cut stream are retried (no assistant turn); the broken tool call is a turn
    # whose tool_result reports the parse failure.
    assert len(api.requests) == 5
    retries = [(e["error_status"], e["error"]) for e in run.of("system", "api_retry")]
    assert retries == [(529, "overloaded"), (None, "unknown")]  # the cut has no status
    results = [
        b for e in run.of("user") for b in e["message"]["content"] if b.get("type") == "tool_result"
    ]
    assert results[0]["is_error"] is True
    assert "InputValidationError" in str(results[0]["content"])
    # A cut stream's usage is counted by the CLI only when it processed message_start before
    # it saw the cut (a race); then it adds message_start's input/cache usage and its own
    # estimate of the output it received (seen: 10 tokens for one 40-character text delta,
    # where the server can only say "1"). So input sides match one of the two server totals
    # and the output lies between them and the estimate.
    cli = model_usage_as_server_usage(run.result)[MODEL]
    done = api.usage_totals()[MODEL]
    with_cut = api.usage_totals(include_incomplete=True)[MODEL]
    inputs = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    fields = {name: getattr(cli, name) for name in inputs}
    assert fields in (
        {n: getattr(done, n) for n in inputs},
        {n: getattr(with_cut, n) for n in inputs},
    )
    assert done.output_tokens <= cli.output_tokens <= done.output_tokens + 20

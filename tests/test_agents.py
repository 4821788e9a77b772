"""Agents through a LocalSandbox on a temp git workspace: command, oracle, nop, and
Claude Code (command line, environment, redaction, outcome rules, and the real CLI
against the fake Messages API)."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from pytest_scylla.agents.base import (
    COMMAND_FILE,
    PROMPT_FILE_NAME,
    STDERR_FILE,
    STDOUT_FILE,
    AgentRequest,
)
from pytest_scylla.agents.claude_code import ClaudeCodeAgent, bundled_claude, decide
from pytest_scylla.agents.claude_stream import parse_stream
from pytest_scylla.agents.command import CommandAgent, render_template
from pytest_scylla.agents.nop import NopAgent
from pytest_scylla.agents.oracle import OracleAgent
from pytest_scylla.builtins import make_agent
from pytest_scylla.redact import REDACTED, Redactor
from pytest_scylla.sandbox.base import RunDirs
from pytest_scylla.sandbox.local import LocalSandbox, LocalSandboxFactory
from pytest_scylla.spec.catalogue import ResolvedSubTest
from pytest_scylla.spec.load_experiment import load_experiment
from pytest_scylla.spec.subtest import ResourcesSpec, SubTestSpec, ToolsSpec

SECRET = "sk-ant-test-secret-value-123456"
RUBRIC = """\
categories:
  functional:
    weight: 1.0
    scoring_type: checklist
    items:
      - id: F1
        check: "hello.py exists"
        points: 1.0
        command: test -f hello.py
"""


def _experiment(tmp_path: Path, solution: str | None, files: dict[str, str]):
    root = tmp_path / "exp"
    for rel, text in {
        "repo/README.md": "# repo\n",
        "prompt.md": "Write hello.py that prints Hello.\n",
        "expected/criteria.md": "hello.py prints Hello.\n",
        "expected/rubric.yaml": RUBRIC,
        **files,
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    test = {"id": "tiny", "source": {"path": "repo"}, "tiers": ["T0"]}
    if solution:
        test["solution"] = solution
    (root / "test.yaml").write_text(json.dumps(test))
    return load_experiment(root / "test.yaml")


def _request(
    tmp_path: Path,
    experiment,
    *,
    tools: ToolsSpec | None = None,
    extra_args: list[str] | None = None,
    prompt: str | None = None,
    timeout_s: float = 60,
    passthrough: dict[str, str] | None = None,
    model: str | None = "claude-sonnet-4-5",
) -> AgentRequest:
    dirs = RunDirs(tmp_path / "run" / "ws", tmp_path / "run" / "home", tmp_path / "run" / "in")
    dirs.workspace.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(dirs.workspace)], check=True)
    (dirs.workspace / "README.md").write_text("# repo\n")
    git = ["git", "-C", str(dirs.workspace), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    dirs.inputs.mkdir(parents=True)
    (dirs.inputs / PROMPT_FILE_NAME).write_text(prompt or experiment.prompt)
    resources = ResourcesSpec(tools=tools or ToolsSpec())
    spec = SubTestSpec(name="empty", resources=resources, extra_args=extra_args or [])
    subtest = ResolvedSubTest("T0", "00-empty", spec, resources, tmp_path / "00-empty.yaml")
    return AgentRequest(
        experiment=experiment,
        subtest=subtest,
        model=model,
        timeout_s=timeout_s,
        dirs=dirs,
        agent_dir=tmp_path / "results" / "agent",
        passthrough_env=passthrough or {},
        redactor=Redactor([SECRET]),
    )


def _sandbox(request: AgentRequest) -> LocalSandbox:
    return LocalSandboxFactory(kill_grace_s=0.5).open(request.dirs, {})


# ------------------------------------------------------------------ command agent


def test_render_template_quotes_values() -> None:
    argv = render_template(
        "agent --file {prompt_file} --json '{\"a\": 1}' -m {model}",
        {"prompt_file": "/p a/prompt.md", "model": ""},
    )
    assert argv == ["agent", "--file", "/p a/prompt.md", "--json", '{"a": 1}', "-m", ""]


def test_command_agent_runs_template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCYLLA_HOST_ONLY", "leak")
    experiment = _experiment(tmp_path, None, {})
    request = _request(tmp_path, experiment, passthrough={"ANTHROPIC_API_KEY": SECRET})
    script = (
        "cp {prompt_file} got-prompt.md; echo model={model} ws={workspace}; "
        "echo host=${SCYLLA_HOST_ONLY:-none} key=$ANTHROPIC_API_KEY; echo err >&2"
    )
    agent = CommandAgent(f"bash -c {json.dumps(script)}")
    record = agent.run(request, _sandbox(request))
    assert record.finished and not record.is_error and not record.timed_out
    assert record.exit_code == 0
    assert record.tokens_by_model == {} and record.cost_usd is None
    ws = request.dirs.workspace
    assert (ws / "got-prompt.md").read_text() == experiment.prompt
    out = (request.agent_dir / STDOUT_FILE).read_text()
    assert f"model=claude-sonnet-4-5 ws={ws}" in out
    assert "host=none" in out
    # The key reached the process but not the saved log or command.json.
    assert f"key={REDACTED}" in out and SECRET not in out
    command = (request.agent_dir / COMMAND_FILE).read_text()
    assert SECRET not in command
    assert json.loads(command)["env"]["ANTHROPIC_API_KEY"] == REDACTED
    assert (request.agent_dir / STDERR_FILE).read_text() == "err\n"


@pytest.mark.slow
def test_command_agent_failure_and_timeout(tmp_path: Path) -> None:
    experiment = _experiment(tmp_path, None, {})
    request = _request(tmp_path, experiment, timeout_s=1)
    failed = CommandAgent("bash -c 'echo broken >&2; exit 3'").run(request, _sandbox(request))
    assert failed.finished and failed.is_error
    assert failed.exit_code == 3
    assert failed.error_reason == "exited with code 3: broken"
    slow = CommandAgent("sleep 30").run(request, _sandbox(request))
    # The agent's own timeout: graded on its workspace, not an error (design section 1).
    assert slow.timed_out and slow.finished
    assert slow.error_reason == "timed out after 1 s"
    missing = CommandAgent("/no/such/agent").run(request, _sandbox(request))
    assert not missing.finished
    assert "could not start" in (missing.error_reason or "")


# ------------------------------------------------------------------ oracle and nop


@pytest.mark.parametrize("kind", ["script", "folder", "patch"])
def test_oracle_applies_solution(tmp_path: Path, kind: str) -> None:
    files = {
        "script": {"solve.sh": "printf 'print(\"Hello\")\\n' > hello.py\n"},
        "folder": {
            "solution/solve.sh": 'cp "$(dirname "$0")/hello.py" .\n',
            "solution/hello.py": 'print("Hello")\n',
        },
        "patch": {
            "fix.patch": textwrap.dedent(
                """\
                diff --git a/hello.py b/hello.py
                new file mode 100644
                --- /dev/null
                +++ b/hello.py
                @@ -0,0 +1 @@
                +print("Hello")
                """
            )
        },
    }[kind]
    solution = {"script": "solve.sh", "folder": "solution", "patch": "fix.patch"}[kind]
    experiment = _experiment(tmp_path, solution, files)
    request = _request(tmp_path, experiment)
    agent = OracleAgent()
    agent.prepare_inputs(request)
    record = agent.run(request, _sandbox(request))
    assert record.finished and not record.is_error, record.error_reason
    assert record.exit_code == 0
    hello = request.dirs.workspace / "hello.py"
    assert hello.read_text() == 'print("Hello")\n'
    assert not (request.dirs.inputs / "expected").exists()


def test_oracle_without_solution(tmp_path: Path) -> None:
    experiment = _experiment(tmp_path, None, {})
    request = _request(tmp_path, experiment)
    OracleAgent().prepare_inputs(request)
    record = OracleAgent().run(request, _sandbox(request))
    assert not record.finished
    assert "no solution" in (record.error_reason or "")


def test_nop_agent(tmp_path: Path) -> None:
    experiment = _experiment(tmp_path, None, {})
    request = _request(tmp_path, experiment)
    record = NopAgent().run(request, _sandbox(request))
    assert record.finished and not record.is_error
    assert record.exit_code == 0 and record.duration_s == 0
    assert (request.agent_dir / STDOUT_FILE).read_text() == ""
    assert (
        subprocess.run(
            ["git", "-C", str(request.dirs.workspace), "status", "--porcelain"],
            capture_output=True,
            text=True,
        ).stdout
        == ""
    )


def test_registry() -> None:
    assert make_agent("nop").name == "nop"
    assert make_agent("oracle").name == "oracle"
    assert make_agent("claude-code", claude_bin="/x/claude").name == "claude-code"
    assert make_agent("command", command_template="a {prompt_file}").name == "command"
    with pytest.raises(ValueError, match="needs a command template"):
        make_agent("command")
    assert make_agent("codex") is None  # not a built-in: another plugin may make it


# ------------------------------------------------------------------ claude code

FAKE_CLI = """#!/bin/bash
# Stands in for `claude`: says what it got, then prints a canned stream.
if [ "$1" = "--version" ]; then echo "9.9.9 (Claude Code)"; exit 0; fi
printf '%s\\0' "$@" > "$HOME/argv.txt"
env > "$HOME/env.txt"
if [ "$2" != "${2#-}" ] || [ "$#" -lt 2 ]; then cat > "$HOME/stdin.txt"; fi
echo "key in stderr: $ANTHROPIC_API_KEY" >&2
cat "$SCYLLA_FAKE_STREAM"
exit "${SCYLLA_FAKE_EXIT:-0}"
"""

STREAM = [
    {
        "type": "system",
        "subtype": "init",
        "model": "claude-sonnet-4-5",
        "claude_code_version": "2.1.331",
    },
    {
        "type": "assistant",
        "message": {
            "id": "m1",
            "model": "claude-sonnet-4-5",
            "content": [],
            "usage": {"input_tokens": 3, "output_tokens": 1},
        },
    },
    {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "num_turns": 1,
        "duration_ms": 50,
        "result": "done",
        "total_cost_usd": 0.01,
        "modelUsage": {
            "claude-sonnet-4-5": {"inputTokens": 3, "outputTokens": 9},
            "claude-haiku-4-5": {"inputTokens": 100, "outputTokens": 4},
        },
    },
]


def _fake_cli(tmp_path: Path, events: list[dict] | None = None, exit_code: int = 0):
    cli = tmp_path / "bin" / "claude"
    cli.parent.mkdir(parents=True, exist_ok=True)
    cli.write_text(FAKE_CLI)
    cli.chmod(0o755)
    # Beside the fake CLI: the bubblewrap sandbox shows the program's folder, not tmp_path.
    stream = cli.parent / "stream.jsonl"
    stream.write_text("".join(json.dumps(e) + "\n" for e in (events or STREAM)))
    extra = {"SCYLLA_FAKE_STREAM": str(stream), "SCYLLA_FAKE_EXIT": str(exit_code)}
    return ClaudeCodeAgent(claude_bin=str(cli), extra_env=extra)


def test_claude_command_env_and_redaction(tmp_path: Path) -> None:
    experiment = _experiment(tmp_path, None, {})
    request = _request(
        tmp_path,
        experiment,
        tools=ToolsSpec(allowed=["Read", "Bash(git *)"], disallowed=["WebFetch"]),
        extra_args=["--max-turns", "5"],
        passthrough={"ANTHROPIC_API_KEY": SECRET, "ANTHROPIC_BASE_URL": "http://127.0.0.1:1"},
    )
    agent = _fake_cli(tmp_path)
    assert agent.cli_version() == "9.9.9"
    record = agent.run(request, _sandbox(request))
    home = request.dirs.home
    argv = (home / "argv.txt").read_text().split("\0")[:-1]
    assert argv[:2] == ["-p", experiment.prompt]
    assert argv[2:] == [
        "--output-format",
        "stream-json",
        "--verbose",
        "--model",
        "claude-sonnet-4-5",
        "--dangerously-skip-permissions",
        "--tools",
        "Read,Bash(git *)",
        "--disallowedTools",
        "WebFetch",
        "--max-turns",
        "5",
    ]
    env = dict(
        line.split("=", 1) for line in (home / "env.txt").read_text().splitlines() if "=" in line
    )
    assert env["HOME"] == str(home)
    assert env["CLAUDE_CONFIG_DIR"] == f"{home}/.claude"
    for name in (
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
        "DISABLE_AUTOUPDATER",
        "DISABLE_TELEMETRY",
        "DISABLE_ERROR_REPORTING",
    ):
        assert env[name] == "1"
    assert env["ANTHROPIC_API_KEY"] == SECRET
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:1"
    assert ("IS_SANDBOX" in env) == (os.geteuid() == 0)
    command = json.loads((request.agent_dir / COMMAND_FILE).read_text())
    assert command["env"]["ANTHROPIC_API_KEY"] == REDACTED
    assert command["argv"][1:3] == ["-p", experiment.prompt]
    assert command["cli_version"] == "9.9.9"
    assert SECRET not in (request.agent_dir / STDERR_FILE).read_text()
    # The record, from the stream.
    assert record.finished and not record.is_error and record.exit_code == 0
    assert record.cli_version == "2.1.331"
    assert set(record.tokens_by_model) == {"claude-sonnet-4-5", "claude-haiku-4-5"}
    assert record.tokens.input_tokens == 103
    assert record.cost_usd == 0.01 and record.turns == 1 and record.result_text == "done"
    rebuilt = agent.parse_saved(request.agent_dir, record)
    assert rebuilt == record


def test_claude_huge_prompt_goes_through_stdin(tmp_path: Path) -> None:
    experiment = _experiment(tmp_path, None, {})
    big = "Do it.\n" + "x" * 300_000 + "\nEND\n"
    request = _request(tmp_path, experiment, prompt=big)
    record = _fake_cli(tmp_path).run(request, _sandbox(request))
    assert record.finished
    assert (request.dirs.home / "stdin.txt").read_text() == big
    command = json.loads((request.agent_dir / COMMAND_FILE).read_text())
    assert command["prompt_via_stdin"] is True
    assert len(json.dumps(command)) < 10_000


def test_claude_cli_not_found(tmp_path: Path) -> None:
    experiment = _experiment(tmp_path, None, {})
    request = _request(tmp_path, experiment)
    record = ClaudeCodeAgent(claude_bin=str(tmp_path / "nope")).run(request, _sandbox(request))
    assert not record.finished
    assert "not found" in (record.error_reason or "")


def test_claude_no_result_after_the_session_started_is_graded(tmp_path: Path) -> None:
    experiment = _experiment(tmp_path, None, {})
    request = _request(tmp_path, experiment)
    record = _fake_cli(tmp_path, STREAM[:2], exit_code=1).run(request, _sandbox(request))
    # The agent's own crash, not the API's: its workspace is graded (design section 1).
    assert record.finished
    assert record.exit_code == 1
    assert record.error_reason.startswith("CLI exited with code 1 without a result event")
    assert record.tokens_by_model["claude-sonnet-4-5"].input_tokens == 3


def _decide(events: list[dict], **kw):
    text = "".join(json.dumps(e) + "\n" for e in events)
    args = {"exit_code": 1, "timed_out": False, "duration_s": 1.0, "timeout_s": 10, "stderr": ""}
    args.update(kw)
    return decide(parse_stream(text), agent="claude-code", model=None, cli_version=None, **args)


def test_outcome_rules() -> None:
    ok = _decide(STREAM, exit_code=0)
    assert ok.finished and not ok.is_error and ok.error_reason is None
    assert ok.model == "claude-sonnet-4-5"
    timed_out = _decide(STREAM[:2], exit_code=None, timed_out=True)
    assert timed_out.finished and timed_out.error_reason == "timed out after 10 s"
    refused = _decide([], stderr="--dangerously-skip-permissions cannot be used with root\n")
    assert not refused.finished
    assert refused.error_reason.endswith("cannot be used with root")
    auth = {**STREAM[2], "is_error": True, "api_error_status": 401, "modelUsage": {}}
    unauthorized = _decide([STREAM[0], auth])
    assert not unauthorized.finished and unauthorized.is_error
    assert unauthorized.error_reason.startswith("authentication failed (HTTP 401)")
    turns = {**STREAM[2], "subtype": "error_max_turns", "is_error": True, "errors": ["max"]}
    max_turns = _decide([STREAM[0], turns])
    assert max_turns.finished and max_turns.is_error
    assert max_turns.error_reason.startswith("maximum number of turns reached")


# ------------------------------------------------------------------ the real CLI


@pytest.mark.claude_cli
@pytest.mark.timeout(180)
def test_real_claude_cli_against_fake_api(tmp_path: Path) -> None:
    fake_api = pytest.importorskip("pytest_scylla.testing.fake_api")
    cli = bundled_claude()
    if cli is None:
        pytest.skip("claude-agent-sdk with its bundled CLI is not installed")
    experiment = _experiment(tmp_path, None, {})
    reply = fake_api.Reply(
        tool_calls=[
            fake_api.ToolCall(
                name="Write", input={"file_path": "hello.py", "content": 'print("Hello")\n'}
            )
        ]
    )
    with fake_api.FakeMessagesAPI([reply, "All done."]) as api:
        request = _request(
            tmp_path,
            experiment,
            passthrough={"ANTHROPIC_API_KEY": SECRET, "ANTHROPIC_BASE_URL": api.base_url},
            timeout_s=120,
        )
        agent = ClaudeCodeAgent(claude_bin=str(cli), extra_env={"CLAUDE_CODE_MAX_RETRIES": "0"})
        record = agent.run(request, _sandbox(request))
        reported = api.usage_totals()
    assert record.finished and not record.is_error, record.error_reason
    assert record.exit_code == 0
    assert record.result_text == "All done."
    assert record.turns == 2
    assert record.cli_version and record.cli_version == agent.cli_version()
    assert (request.dirs.workspace / "hello.py").read_text() == 'print("Hello")\n'
    assert set(record.tokens_by_model) == set(reported)
    for model, usage in reported.items():
        assert record.tokens_by_model[model].model_dump() == usage.model_dump()
    assert record.cost_usd is not None and record.cost_usd > 0
    assert SECRET not in (request.agent_dir / STDOUT_FILE).read_text()
    assert SECRET not in (request.agent_dir / COMMAND_FILE).read_text()

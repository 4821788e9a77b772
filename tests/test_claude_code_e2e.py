"""The plugin end to end with the REAL Claude Code CLI against a fake Messages API (issue #6).

Each test starts its own ``FakeMessagesAPI``, points ``ANTHROPIC_BASE_URL`` at it and runs
``pytest experiments/...`` in a subprocess (without ``--scylla-fake-api``), then asserts
from the server's request log what the model was shown, and from the run records what the
plugin made of it.

What CLI 2.1.331 (claude-agent-sdk 0.2.188) does offline, pinned here:

- The workspace's CLAUDE.md arrives in the first user message ("Contents of .../CLAUDE.md").
  A ``system``-role message right after it holds the environment ("Primary working
  directory: ..."), the deferred tools, the sub-agents ("Available agent types for the
  Agent tool:" then ``- name: description (Tools: ...)``) and the skills ("The following
  skills are available for use with the Skill tool:" then ``- name: description``).
- ``--agent NAME`` puts the agent file's body into the system prompt (``system`` blocks).
- ``--tools`` cuts the request's ``tools`` list down (plus ``DeferredToolPlaceholder``).
- The project MCP server of ``.mcp.json`` (pre-approved by ``enabledMcpjsonServers``) IS
  started offline: its tool ``mcp__notes__scylla_notes`` is listed among the deferred tools
  (loaded through ``ToolSearch``), not in the request's ``tools``.
- ``--model claude-opus-4-6`` is requested as given; but a retired id is remapped without a
  word: ``--model claude-opus-4-1`` requests ``claude-opus-5-5`` (so the record's ``model``
  and its ``tokens_by_model`` key differ), and the alias ``sonnet`` means
  ``claude-sonnet-5-5``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_scylla.agents.claude_code import bundled_claude
from pytest_scylla.pricing import PricingTable
from pytest_scylla.records import TokenUsage
from pytest_scylla.testing.fake_api import FakeMessagesAPI, RecordedRequest, Usage
from pytest_scylla.testing.scripted_model import DryRunScript, texts, working_directory
from pytest_scylla.testing.session_server import load_responder

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
CATALOGUE = ROOT / "pytest_scylla" / "data" / "tiers"
MODEL = "claude-opus-4-6"  # not the default model, so the test sees --model take effect
BASIC = ["--tiers", "T0", "--runs", "1", "--max-subtests", "1", "--judge-model", "none"]


CLI = bundled_claude()
pytestmark = [
    pytest.mark.claude_cli,
    pytest.mark.skipif(
        CLI is None, reason="claude-agent-sdk with its bundled Claude Code CLI is not installed"
    ),
]


# ---------------------------------------------------------------------------------- helpers


def plugin_env(api: FakeMessagesAPI, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "PYTEST_", "CLAUDE_"))
    }
    env.update(ANTHROPIC_BASE_URL=api.base_url, ANTHROPIC_API_KEY="sk-ant-e2e-fake-key")
    env.update(extra)
    return env


def plugin_cmd(experiment: str, results: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        f"experiments/{experiment}",
        "--agent",
        "claude-code",
        "--results-dir",
        str(results),
        "-p",
        "no:cacheprovider",
        "-q",
        *args,
    ]


def run_plugin(
    api: FakeMessagesAPI, experiment: str, results: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return communicate(
        subprocess.Popen(
            plugin_cmd(experiment, results, *args),
            cwd=ROOT,
            env=plugin_env(api, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    )


def communicate(
    popen: subprocess.Popen[str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Wait for a plugin session; on timeout stop it with SIGTERM first, so that it can end
    its agents' process groups (SIGKILL would leave them running), then fail."""
    try:
        out, _ = popen.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        popen.terminate()
        try:
            out, _ = popen.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            popen.kill()
            out, _ = popen.communicate()
        pytest.fail(f"the plugin session took over {timeout:g} s:\n{out[-3000:]}")
    return subprocess.CompletedProcess(popen.args, popen.returncode, out, "")


def summary(proc: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """pytest's last line as counts: {"passed": 1, "error": 1, ...}."""
    lines = [line for line in proc.stdout.splitlines() if " in " in line and "=" not in line]
    last = lines[-1] if lines else proc.stdout.strip().splitlines()[-1]
    counts = {
        word.rstrip("s") if word == "errors" else word: int(n)
        for n, word in re.findall(r"(\d+) (passed|failed|errors?|skipped|deselected)", last)
    }
    return counts


@dataclass
class Run:
    """One run's files: record, manifest, command, and the requests it made."""

    dir: Path
    record: dict[str, Any]
    manifest: dict[str, Any]
    command: dict[str, Any]
    requests: list[RecordedRequest] = field(default_factory=list)

    @property
    def workspace(self) -> str:
        return str(self.command["cwd"])

    @property
    def first(self) -> dict[str, Any]:
        assert self.requests, f"the server saw no request from {self.workspace}"
        return self.requests[0].body


def load_runs(results: Path) -> dict[str, Run]:
    """Runs under a results dir, keyed "T0/00-empty" (run 1 only)."""
    runs = {}
    for path in sorted(results.glob("*/T*/*/run-01/run_result.json")):
        run_dir = path.parent
        command = run_dir / "agent" / "command.json"
        runs[f"{run_dir.parent.parent.name}/{run_dir.parent.name}"] = Run(
            dir=run_dir,
            record=json.loads(path.read_text()),
            manifest=json.loads((run_dir / "config_manifest.json").read_text()),
            command=json.loads(command.read_text()) if command.is_file() else {},
        )
    return runs


def attach_requests(runs: dict[str, Run], api: FakeMessagesAPI) -> None:
    """Give each run the requests whose "Primary working directory" is its workspace."""
    by_cwd = {run.workspace: run for run in runs.values() if run.command}
    for request in api.message_requests():
        cwd = working_directory(request.body)
        assert cwd in by_cwd, f"request {request.index} names no known workspace: {cwd!r}"
        by_cwd[cwd].requests.append(request)


def system_prompt(body: dict[str, Any]) -> str:
    return "\n".join(texts(body.get("system")))


def opening(body: dict[str, Any]) -> str:
    """The messages before the first assistant turn (CLAUDE.md, system reminders, task)."""
    parts = []
    for message in body.get("messages") or []:
        if message.get("role") == "assistant":
            break
        parts.extend(texts(message.get("content")))
    return "\n".join(parts)


def everything(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False)


def tool_names(body: dict[str, Any]) -> list[str]:
    return [tool["name"] for tool in body.get("tools") or []]


def frontmatter(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    return yaml.safe_load(text.split("---", 2)[1])


def body_of(path: Path) -> str:
    return path.read_text(encoding="utf-8").split("---", 2)[2].strip()


def block_file(block: str) -> Path:
    (path,) = (CATALOGUE / "blocks").glob(f"{block}-*.md")
    return path


def listing(text: str, header: str) -> str:
    """The ``- name: ...`` lines after `header` in a system message."""
    assert header in text, f"no {header!r} in the request"
    return text.split(header, 1)[1].split("\n\n\n", 1)[0]


AGENTS_HEADER = "Available agent types for the Agent tool:"
SKILLS_HEADER = "The following skills are available for use with the Skill tool:"
DEFERRED_HEADER = "The following deferred tools are now available via ToolSearch."


def scylla_processes(markers: list[str]) -> list[tuple[int, str]]:
    """Live processes whose command line, cwd or environment holds one of `markers`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if any(m in cmdline or m in cwd or m in environ for m in markers):
            found.append((int(entry.name), cmdline[:200]))
    return found


# ------------------------------------------------------------- one session over the tiers

SUBTESTS = {
    "T0": ["00-empty", "01-critical-only", "02-testing-only"],
    "T1": ["01-testing-skills"],
    "T2": ["01-core-tools", "02-notes-mcp"],
    "T3": ["01-reviewer"],
    "T4": ["01-lead-engineer"],
}


@dataclass
class TierSession:
    api: FakeMessagesAPI
    proc: subprocess.CompletedProcess[str]
    runs: dict[str, Run]
    seconds: float


@pytest.fixture(scope="module")
def tiers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TierSession]:
    """test-001's dry run over eight sub-tests of T0..T4, with -n 2, against our server."""
    results = tmp_path_factory.mktemp("tiers")
    api = FakeMessagesAPI(load_responder(EXPERIMENTS / "test-001" / "dry-run.yaml")).start()
    try:
        selection = " or ".join(sub for subs in SUBTESTS.values() for sub in subs)
        start = time.monotonic()
        proc = run_plugin(
            api,
            "test-001",
            results,
            "--tiers",
            *SUBTESTS,
            "--runs",
            "1",
            "--judge-model",
            "none",
            "--model",
            MODEL,
            "-n",
            "2",
            "-k",
            selection,
        )
        seconds = time.monotonic() - start
        runs = load_runs(results)
        attach_requests(runs, api)
        yield TierSession(api, proc, runs, seconds)
    finally:
        api.stop()


def test_all_tier_runs_pass(tiers: TierSession) -> None:
    expected = {f"{tier}/{sub}" for tier, subs in SUBTESTS.items() for sub in subs}
    assert set(tiers.runs) == expected, tiers.proc.stdout[-3000:]
    assert summary(tiers.proc) == {"passed": len(expected)}, tiers.proc.stdout[-3000:]
    for key, run in tiers.runs.items():
        assert run.record["outcome"] == "passed", key
        # the dry run's three turns: Write, Bash, final text
        assert len(run.requests) == 3, (key, len(run.requests))


@pytest.mark.parametrize("subtest", ["01-critical-only", "02-testing-only"])
def test_t0_blocks_reach_the_model(tiers: TierSession, subtest: str) -> None:
    run = tiers.runs[f"T0/{subtest}"]
    blocks = run.manifest["blocks"]
    declared = yaml.safe_load((CATALOGUE / "T0" / f"{subtest}.yaml").read_text())
    assert blocks == declared["resources"]["claude_md"]["blocks"] != []
    seen = system_prompt(run.first) + "\n" + opening(run.first)
    assert "CLAUDE.md" in opening(run.first)
    for block in blocks:
        text = block_file(block).read_text(encoding="utf-8").strip()
        assert text in seen, f"{block} of {subtest} is not in the first request"
    # and the composed file is exactly what the plugin wrote into the workspace
    claude_md = Path(run.workspace, "CLAUDE.md")
    if claude_md.is_file():  # workspaces may be cleaned up after the run
        assert claude_md.read_text(encoding="utf-8").strip() in seen


def test_t0_empty_sends_no_block(tiers: TierSession) -> None:
    run = tiers.runs["T0/00-empty"]
    assert run.manifest["blocks"] == []
    headings = [
        path.read_text(encoding="utf-8").splitlines()[0]
        for path in sorted((CATALOGUE / "blocks").glob("B*.md"))
    ]
    assert all(h.startswith("#") for h in headings)
    for request in run.requests:
        sent = everything(request.body)
        leaked = [h for h in headings if h in sent or json.dumps(h)[1:-1] in sent]
        assert not leaked, f"00-empty sent block headings {leaked}"


def test_t1_skills_are_offered(tiers: TierSession) -> None:
    run = tiers.runs["T1/01-testing-skills"]
    skills = run.manifest["skills"]
    assert {"run-tests", "write-minimal-fix"} <= set(skills)
    assert "Skill" in tool_names(run.first)
    offered = listing(opening(run.first), SKILLS_HEADER)
    for skill in skills:
        meta = frontmatter(CATALOGUE / "skills" / skill / "SKILL.md")
        assert f"- {meta['name']}: {meta['description']}" in offered, skill
    # without T1 none of the catalogue's skills is offered
    empty = opening(tiers.runs["T0/00-empty"].first)
    assert "- run-tests:" not in empty and "- write-minimal-fix:" not in empty


@pytest.mark.parametrize("key", ["T3/01-reviewer", "T4/01-lead-engineer"])
def test_subagents_are_offered(tiers: TierSession, key: str) -> None:
    run = tiers.runs[key]
    agents = run.manifest["agents"]
    assert agents
    assert "Agent" in tool_names(run.first)
    offered = listing(opening(run.first), AGENTS_HEADER)
    for agent in agents:
        meta = frontmatter(CATALOGUE / "agents" / f"{agent}.md")
        assert f"- {meta['name']}: {meta['description']}" in offered, agent
    if key.startswith("T3"):
        assert "- lead-engineer:" not in offered
    empty = opening(tiers.runs["T0/00-empty"].first)
    assert "- code-reviewer:" not in empty


def test_t4_orchestrator_runs_the_session(tiers: TierSession) -> None:
    run = tiers.runs["T4/01-lead-engineer"]
    argv = run.command["argv"]
    assert argv[argv.index("--agent") + 1] == "lead-engineer"
    orchestrator = body_of(CATALOGUE / "agents" / "lead-engineer.md")
    for request in run.requests:
        assert orchestrator in system_prompt(request.body)
    # a plain run has no orchestrator prompt
    assert "You lead a small team" not in system_prompt(tiers.runs["T3/01-reviewer"].first)


def test_t2_tools_restriction(tiers: TierSession) -> None:
    run = tiers.runs["T2/01-core-tools"]
    allowed = set(run.manifest["allowed_tools"])
    assert "--tools" in run.command["argv"]
    for request in run.requests:
        offered = set(tool_names(request.body)) - {"DeferredToolPlaceholder"}
        assert offered <= allowed, offered - allowed
        assert "Agent" not in offered and "Write" in offered
    unrestricted = set(tool_names(tiers.runs["T0/00-empty"].first))
    assert "Agent" in unrestricted and not unrestricted <= allowed | {"DeferredToolPlaceholder"}


def test_t2_mcp_server_tool_is_offered(tiers: TierSession) -> None:
    run = tiers.runs["T2/02-notes-mcp"]
    assert run.manifest["mcp_servers"] == ["notes"]
    # Observed: the CLI starts the project MCP server offline and defers its tool, naming it
    # in the system message; the schema is loaded on demand through ToolSearch.
    deferred = listing(opening(run.first), DEFERRED_HEADER)
    assert "mcp__notes__scylla_notes" in deferred.split()
    assert "ToolSearch" in tool_names(run.first)
    assert "mcp__notes__" not in everything(tiers.runs["T0/00-empty"].first)


def test_model_given_is_the_model_requested(tiers: TierSession) -> None:
    models = {request.model for request in tiers.api.message_requests()}
    assert models == {MODEL}
    for key, run in tiers.runs.items():
        assert run.record["model"] == MODEL, key
        assert run.command["argv"][run.command["argv"].index("--model") + 1] == MODEL
        assert set(run.record["agent"]["tokens_by_model"]) == {MODEL}, key


def test_accounting_matches_the_server(tiers: TierSession) -> None:
    usages = tiers.api.usages
    assert all(u.complete for u in usages)
    pricing = PricingTable.load()
    total_recorded = Usage()
    for key, run in tiers.runs.items():
        indices = {r.index for r in run.requests}
        served = Usage()
        for usage in usages:
            if usage.request_index in indices and usage.model == MODEL:
                served = served + usage.usage
        tokens = run.record["agent"]["tokens_by_model"][MODEL]
        assert tokens == served.model_dump(include=set(tokens)), key
        total_recorded = total_recorded + Usage(**tokens)
        expected = pricing.cost(MODEL, TokenUsage(**tokens))
        recorded = run.record["agent"]["cost_usd"]
        assert recorded == pytest.approx(expected, rel=0.01), (key, recorded, expected)
    assert total_recorded == tiers.api.usage_totals()[MODEL]


# -------------------------------------------------------------------------------- faults


def faulty_api(*faults: dict[str, Any]) -> FakeMessagesAPI:
    data = yaml.safe_load((EXPERIMENTS / "test-001" / "dry-run.yaml").read_text())
    data["turns"] = [*faults, *data["turns"]]
    return FakeMessagesAPI(DryRunScript.model_validate(data).as_responder()).start()


def only_run(results: Path) -> Run:
    runs = load_runs(results)
    assert len(runs) == 1, list(runs)
    return next(iter(runs.values()))


def test_rate_limit_burst_is_retried(tmp_path: Path) -> None:
    with faulty_api({"fault": 429, "times": 2, "retry_after": 0}) as api:
        start = time.monotonic()
        proc = run_plugin(api, "test-001", tmp_path, *BASIC, CLAUDE_CODE_MAX_RETRIES="2")
        seconds = time.monotonic() - start
        requests = api.message_requests()
    assert summary(proc) == {"passed": 1, "deselected": 5}, proc.stdout[-3000:]
    run = only_run(tmp_path)
    assert run.record["outcome"] == "passed"
    # 2 rejected + the dry run's 3 turns
    assert len(requests) == 5, [r.index for r in requests]
    print(f"429 burst: {len(requests)} requests, {seconds:.1f} s")


def test_hanging_server_times_out_and_leaves_no_process(tmp_path: Path) -> None:
    with faulty_api({"fault": "hang", "seconds": 60}) as api:
        proc = run_plugin(
            api,
            "test-001",
            tmp_path,
            *BASIC,
            "--run-timeout",
            "5",
            CLAUDE_CODE_MAX_RETRIES="2",
        )
        run = only_run(tmp_path)
        markers = [run.workspace, str(run.dir), api.base_url]
        time.sleep(0.5)
        left = scylla_processes(markers)
    # The agent's timeout is graded on the workspace it left (design section 1): nothing
    # was written, so the run fails; an error would drop it from the pass rate.
    assert summary(proc) == {"failed": 1, "deselected": 5}, proc.stdout[-3000:]
    assert run.record["outcome"] == "failed" and run.record["error"] is None
    assert "timed out" in run.record["agent"]["error_reason"]
    assert run.record["agent"]["timed_out"] is True
    assert not left, f"processes left behind: {left}"


def test_bad_key_is_an_error_not_a_failure(tmp_path: Path) -> None:
    with faulty_api({"fault": 401, "times": 50}) as api:
        proc = run_plugin(api, "test-001", tmp_path, *BASIC, CLAUDE_CODE_MAX_RETRIES="2")
    assert summary(proc) == {"error": 1, "deselected": 5}, proc.stdout[-3000:]
    run = only_run(tmp_path)
    assert run.record["outcome"] == "error"
    assert "authentication" in run.record["error"]["message"].lower()
    assert run.record["result"] is None


def test_cli_exiting_without_result_is_an_error(tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "claude"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'fake claude: giving up' >&2\nexit 3\n")
    fake.chmod(0o755)
    with faulty_api() as api:
        proc = run_plugin(api, "test-001", tmp_path / "results", *BASIC, "--claude-bin", str(fake))
        assert api.message_requests() == []
    assert summary(proc) == {"error": 1, "deselected": 5}, proc.stdout[-3000:]
    run = only_run(tmp_path / "results")
    assert run.record["outcome"] == "error"
    assert "code 3" in run.record["error"]["message"], run.record["error"]


# ---------------------------------------------------------------------- shipped dry runs


def test_shipped_dry_runs_pass(tmp_path: Path) -> None:
    """Each experiment's dry-run.yaml solves its task with the real CLI (--scylla-fake-api)."""
    experiments = sorted(p.parent.name for p in EXPERIMENTS.glob("*/dry-run.yaml"))
    assert experiments == ["test-001", "test-002", "test-003"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "PYTEST_"))}
    procs = {
        name: subprocess.Popen(
            plugin_cmd(
                name,
                tmp_path / name,
                *BASIC,
                "--scylla-fake-api",
                f"experiments/{name}/dry-run.yaml",
            ),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in experiments
    }
    for name, popen in procs.items():
        done = communicate(popen)
        out = done.stdout
        assert popen.returncode == 0, out[-3000:]
        assert summary(done)["passed"] == 1, out[-3000:]
        run = only_run(tmp_path / name)
        assert run.record["outcome"] == "passed", name
        # every command-checked rubric item is met
        items = run.record["result"]["items"]
        commands = [i for i in items if i["source"] == "command"]
        assert commands and all(i["achieved"] == i["max_points"] for i in commands), name


# ------------------------------------------------------------------------------- docker


@pytest.mark.docker
def test_docker_sandbox_matches_local(tiers: TierSession, tmp_path: Path) -> None:
    from docker_engine import require_docker_engine

    require_docker_engine(network="host")
    with FakeMessagesAPI(load_responder(EXPERIMENTS / "test-001" / "dry-run.yaml")) as api:
        proc = run_plugin(
            api,
            "test-001",
            tmp_path,
            *BASIC,
            "--model",
            MODEL,
            "--sandbox",
            "docker",
            "--docker-network",
            "host",
        )
        requests = api.message_requests()
    assert summary(proc) == {"passed": 1, "deselected": 5}, proc.stdout[-3000:]
    docker_run = only_run(tmp_path)
    local_run = tiers.runs["T0/00-empty"]
    assert len(requests) == len(local_run.requests)
    for field_name in ("outcome",):
        assert docker_run.record[field_name] == local_run.record[field_name]
    docker_result, local_result = docker_run.record["result"], local_run.record["result"]
    for key in ("score", "grade", "passed", "category_scores"):
        assert docker_result[key] == local_result[key], key
    assert {i["item_id"]: i["achieved"] for i in docker_result["items"]} == {
        i["item_id"]: i["achieved"] for i in local_result["items"]
    }

"""The experiments and the tier catalogue shipped with pytest-scylla are valid and fair.

For each experiment, in a throw-away git copy of its `repo/`: the rubric's command items
fail on the untouched repository wherever a change is required (so the `nop` agent fails)
and all pass after `solution/solve.sh` (so the `oracle` agent passes), scored the way a
run with `--judge-model none` is scored: command items only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pytest_scylla.judges.scoring import score_items
from pytest_scylla.records import ItemScore
from pytest_scylla.spec.catalogue import PACKAGED_CATALOGUE, Catalogue, load_catalogue
from pytest_scylla.spec.experiment import TIER_IDS
from pytest_scylla.spec.load_experiment import Experiment, load_experiment

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT_FILES = sorted((ROOT / "experiments").glob("*/test.yaml"))
SHIPPED_IDS = ["test-001", "test-002", "test-003"]

# Command items that hold on the untouched repository because they check that something was
# NOT broken or added (tests unchanged, no stray files, old behaviour kept). Every other
# command item needs the task done. The scores below prove nop still fails.
PASS_UNTOUCHED = {
    "test-001": set(),
    "test-002": {"F3", "I1", "P2"},
    "test-003": {"F5", "T3", "Q2"},
}
MIN_SUBTESTS = {"T0": 6, "T1": 2, "T2": 2, "T3": 2, "T4": 2, "T5": 2, "T6": 1}
HARNESS_FILES = {
    "CLAUDE.md": "## Project overview (B01)\n",
    ".claude/settings.json": "{}\n",
    ".mcp.json": '{"mcpServers": {}}\n',
}
FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n(.*)\Z", re.DOTALL)

requires_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue((PACKAGED_CATALOGUE,))


def front_matter(path: Path) -> tuple[dict, str]:
    match = FRONT_MATTER.match(path.read_text(encoding="utf-8"))
    assert match, f"{path} does not start with a --- YAML front matter block ---"
    data = yaml.safe_load(match.group(1))
    assert isinstance(data, dict), f"{path}: front matter is not a mapping"
    return data, match.group(2)


# --- the catalogue ---------------------------------------------------------------------


def test_every_tier_resolves_with_enough_subtests(catalogue: Catalogue) -> None:
    assert sorted(catalogue.tier_info) == list(TIER_IDS)
    for tier in TIER_IDS:
        subtests = catalogue.subtests(tier)
        assert len(subtests) >= MIN_SUBTESTS[tier], (tier, [s.id for s in subtests])
        info = catalogue.tier_info[tier]
        assert info.baseline in [s.id for s in subtests], (tier, info.baseline)


def test_t0_goes_from_empty_to_all_blocks(catalogue: Catalogue) -> None:
    by_id = {subtest.id: subtest for subtest in catalogue.subtests("T0")}
    all_blocks = sorted(path.name[:3] for path in (PACKAGED_CATALOGUE / "blocks").glob("B*.md"))
    assert len(all_blocks) >= 12
    assert by_id["00-empty"].resources.claude_md.blocks == []
    assert sorted(by_id["05-full"].resources.claude_md.blocks) == all_blocks
    assert all(
        not subtest.resources.skills and not subtest.resources.agents for subtest in by_id.values()
    )


def test_later_tiers_add_their_kind_of_resource(catalogue: Catalogue) -> None:
    assert all(subtest.resources.skills for subtest in catalogue.subtests("T1"))
    assert any(subtest.resources.mcp_servers for subtest in catalogue.subtests("T2"))
    assert any(subtest.resources.tools.allowed for subtest in catalogue.subtests("T2"))
    assert all(subtest.resources.agents for subtest in catalogue.subtests("T3"))
    for subtest in catalogue.subtests("T4"):
        # the orchestrator runs the session and its specialists are installed
        assert subtest.spec.extra_args[:1] == ["--agent"]
        orchestrator = subtest.spec.extra_args[1]
        assert orchestrator in subtest.resources.agents
    everything = catalogue.subtests("T6")[0]
    assert not everything.spec.extends_previous
    assert len(everything.resources.claude_md.blocks) == len(
        list((PACKAGED_CATALOGUE / "blocks").glob("B*.md"))
    )
    assert sorted(everything.resources.agents) == sorted(
        path.stem for path in (PACKAGED_CATALOGUE / "agents").glob("*.md")
    )
    assert sorted(everything.resources.skills) == sorted(
        path.parent.name for path in (PACKAGED_CATALOGUE / "skills").glob("*/SKILL.md")
    )
    assert everything.resources.mcp_servers


def test_referenced_resources_exist(catalogue: Catalogue) -> None:
    for tier in TIER_IDS:
        for subtest in catalogue.subtests(tier):
            for block in subtest.resources.claude_md.blocks:
                assert catalogue.find_block(block) is not None, (subtest.source_file, block)
            for skill in subtest.resources.skills:
                assert catalogue.find_resource("skills", skill, "/SKILL.md"), (skill,)
            for agent in subtest.resources.agents:
                assert catalogue.find_resource("agents", agent, ".md"), (agent,)
            for server in subtest.resources.mcp_servers.values():
                for arg in server.args:
                    if arg.startswith(".claude/mcp/"):  # copied from the catalogue's mcp/
                        assert (
                            PACKAGED_CATALOGUE / "mcp" / arg.removeprefix(".claude/mcp/")
                        ).is_file()


def test_blocks_start_with_distinct_headings() -> None:
    headings = {}
    for path in sorted((PACKAGED_CATALOGUE / "blocks").glob("*.md")):
        assert re.fullmatch(r"B\d\d-[a-z0-9-]+\.md", path.name), path.name
        first_line = path.read_text(encoding="utf-8").splitlines()[0]
        assert first_line.startswith("## ") and f"({path.name[:3]})" in first_line, path
        headings[first_line] = path.name
    assert len(headings) == len(list((PACKAGED_CATALOGUE / "blocks").glob("*.md")))


def test_skills_have_valid_front_matter() -> None:
    skills = sorted((PACKAGED_CATALOGUE / "skills").glob("*/SKILL.md"))
    assert len(skills) >= 4
    for path in skills:
        data, body = front_matter(path)
        assert data.get("name") == path.parent.name, path
        assert isinstance(data.get("description"), str) and len(data["description"]) > 20
        assert body.strip().startswith("#"), path


def test_agents_have_valid_front_matter() -> None:
    agents = sorted((PACKAGED_CATALOGUE / "agents").glob("*.md"))
    names = {path.stem for path in agents}
    assert len(agents) >= 5
    orchestrators = 0
    for path in agents:
        data, body = front_matter(path)
        assert data.get("name") == path.stem, path
        assert isinstance(data.get("description"), str) and len(data["description"]) > 20
        assert set(data) <= {"name", "description", "tools", "model"}, path
        if "tools" in data:
            assert isinstance(data["tools"], str) and data["tools"].strip(), path
        assert len(body.strip()) > 100, path
        if data["description"].startswith("Orchestrator"):
            orchestrators += 1
            delegates = {token for token in re.findall(r"`([a-z]+(?:-[a-z]+)+)`", body)}
            assert len(delegates) >= 3 and delegates <= names, (path, delegates - names)
    assert orchestrators >= 2


def test_mcp_server_answers_over_stdio() -> None:
    requests = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "scylla_notes", "arguments": {"topic": "testing"}},
        },
        {"jsonrpc": "2.0", "id": 4, "method": "no/such/method"},
    ]
    done = subprocess.run(
        [sys.executable, str(PACKAGED_CATALOGUE / "mcp" / "notes_server.py")],
        input="".join(json.dumps(request) + "\n" for request in requests) + "not json\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    responses = [json.loads(line) for line in done.stdout.splitlines()]
    assert [response.get("id") for response in responses] == [1, 2, 3, 4, None]
    initialize, tools, call, unknown, garbage = responses
    assert initialize["result"]["protocolVersion"] == "2025-06-18"
    assert "tools" in initialize["result"]["capabilities"]
    assert [tool["name"] for tool in tools["result"]["tools"]] == ["scylla_notes"]
    assert tools["result"]["tools"][0]["inputSchema"]["type"] == "object"
    assert call["result"]["isError"] is False
    assert call["result"]["content"][0]["text"].startswith("testing:")
    assert unknown["error"]["code"] == -32601
    assert garbage["error"]["code"] == -32700


# --- the experiments -------------------------------------------------------------------


def test_the_three_examples_are_shipped() -> None:
    assert [path.parent.name for path in EXPERIMENT_FILES] == SHIPPED_IDS


@pytest.fixture(params=EXPERIMENT_FILES, ids=lambda path: path.parent.name)
def experiment(request: pytest.FixtureRequest) -> Experiment:
    return load_experiment(request.param)


def test_experiment_is_complete_and_self_contained(experiment: Experiment) -> None:
    assert experiment.id == experiment.directory.name
    assert experiment.spec.tiers == list(TIER_IDS)
    for tier in experiment.spec.tiers:
        assert experiment.catalogue.subtests(tier), tier
    assert experiment.source_dir is not None and experiment.source_dir.is_dir()
    assert not list(experiment.source_dir.rglob(".git")), "repo/ must not hold a .git"
    assert not list(experiment.source_dir.rglob("__pycache__"))
    assert experiment.solution is not None and experiment.solution.name == "solve.sh"
    assert experiment.rubric.categories is not None
    assert experiment.pass_threshold(None) == pytest.approx(0.60)
    items = experiment.normalized_rubric.items()
    assert any(item.command is None for item in items), "needs a subjective item for the judge"
    for item in items:
        if item.command:
            assert "expected/" not in item.command and "solution" not in item.command, item.id
    assert set(PASS_UNTOUCHED[experiment.id]) <= {item.id for item in items if item.command}


def git(workspace: Path, *args: str) -> None:
    subprocess.run(
        ["git", *args], cwd=workspace, check=True, capture_output=True, env=_env(workspace)
    )


def _env(workspace: Path) -> dict[str, str]:
    home = workspace.parent / "home"
    home.mkdir(exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "GIT_AUTHOR_NAME": "scylla-test",
        "GIT_AUTHOR_EMAIL": "test@scylla.invalid",
        "GIT_COMMITTER_NAME": "scylla-test",
        "GIT_COMMITTER_EMAIL": "test@scylla.invalid",
        "GIT_CONFIG_NOSYSTEM": "1",
    }


def make_workspace(experiment: Experiment, tmp_path: Path) -> Path:
    """The starting repository as the plugin prepares it: a commit of repo/, then a commit
    of the materialized sub-test files."""
    assert experiment.source_dir is not None
    workspace = tmp_path / "workspace"
    shutil.copytree(experiment.source_dir, workspace)
    git(workspace, "init", "-q")
    git(workspace, "add", "-A")
    git(workspace, "commit", "-q", "-m", "starting state")
    for name, text in HARNESS_FILES.items():
        (workspace / name).parent.mkdir(parents=True, exist_ok=True)
        (workspace / name).write_text(text)
    shutil.copytree(PACKAGED_CATALOGUE / "mcp", workspace / ".claude" / "mcp")
    git(workspace, "add", "-A")
    git(workspace, "commit", "-q", "-m", "sub-test resources")
    return workspace


def run_shell(command: str, workspace: Path, shell: str, timeout: float = 120) -> bool:
    done = subprocess.run(
        [shell, "-c", command],
        cwd=workspace,
        env=_env(workspace),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.returncode == 0


def command_results(experiment: Experiment, workspace: Path, shell: str) -> dict[str, bool]:
    return {
        item.id: run_shell(item.command, workspace, shell, item.command_timeout_seconds)
        for item in experiment.normalized_rubric.items()
        if item.command
    }


def command_only_score(experiment: Experiment, results: dict[str, bool]) -> float:
    """The score of a run judged with --judge-model none: command items only."""
    items = {}
    for category in experiment.normalized_rubric.categories:
        for item in category.items:
            if item.id in results:
                items[item.id] = ItemScore(
                    item_id=item.id,
                    category=category.name,
                    max_points=item.points,
                    achieved=item.points if results[item.id] else 0.0,
                    source="command",
                )
    return score_items(
        experiment.normalized_rubric, items, pass_threshold=experiment.pass_threshold(None)
    ).score


@pytest.mark.slow
@requires_git
@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_nop_fails_and_oracle_passes(experiment: Experiment, tmp_path: Path, shell: str) -> None:
    workspace = make_workspace(experiment, tmp_path)
    threshold = experiment.pass_threshold(None)

    untouched = command_results(experiment, workspace, shell)
    passing = {item_id for item_id, ok in untouched.items() if ok}
    assert passing == PASS_UNTOUCHED[experiment.id]
    assert command_only_score(experiment, untouched) < threshold

    assert experiment.solution is not None
    solved = subprocess.run(
        ["bash", str(experiment.solution)],
        cwd=workspace,
        env=_env(workspace),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert solved.returncode == 0, solved.stderr
    solved_results = command_results(experiment, workspace, shell)
    assert [item_id for item_id, ok in solved_results.items() if not ok] == []
    assert command_only_score(experiment, solved_results) == pytest.approx(1.0)
    for check in experiment.spec.checks:
        assert run_shell(check.command, workspace, shell, check.timeout_seconds), check.name


@pytest.mark.slow
@requires_git
def test_oracle_passes_even_when_it_commits(experiment: Experiment, tmp_path: Path) -> None:
    """Git-based items compare with the starting commit, so a committed solution counts."""
    workspace = make_workspace(experiment, tmp_path)
    assert experiment.solution is not None
    subprocess.run(
        ["bash", str(experiment.solution)], cwd=workspace, env=_env(workspace), check=True
    )
    git(workspace, "add", "-A")
    git(workspace, "commit", "-q", "-m", "solution")
    results = command_results(experiment, workspace, "sh")
    assert [item_id for item_id, ok in results.items() if not ok] == []


@pytest.mark.slow
@requires_git
def test_stray_file_is_caught(tmp_path: Path) -> None:
    experiment = load_experiment(ROOT / "experiments" / "test-001" / "test.yaml")
    workspace = make_workspace(experiment, tmp_path)
    assert experiment.solution is not None
    subprocess.run(["bash", str(experiment.solution)], cwd=workspace, check=True)
    (workspace / "notes").mkdir()
    (workspace / "notes" / "plan.txt").write_text("scratch\n")
    git(workspace, "add", "-A")
    git(workspace, "commit", "-q", "-m", "stray")
    results = command_results(experiment, workspace, "sh")
    assert [item_id for item_id, ok in results.items() if not ok] == ["P1"]


@pytest.mark.slow
@requires_git
def test_editing_the_tests_is_caught(tmp_path: Path) -> None:
    experiment = load_experiment(ROOT / "experiments" / "test-002" / "test.yaml")
    workspace = make_workspace(experiment, tmp_path)
    test_file = workspace / "tests" / "test_core.py"
    # "fix" the suite by deleting the failing ngrams tests, and commit it
    text = test_file.read_text()
    test_file.write_text(
        text[: text.index("class NgramsTest")] + text[text.index("\nif __name__") :]
    )
    git(workspace, "commit", "-q", "-am", "drop failing tests")
    results = command_results(experiment, workspace, "sh")
    assert results["F1"] is True  # the suite passes now...
    assert not results["F2"] and not results["I1"] and not results["P2"]  # ...but not the task
    assert command_only_score(experiment, results) < experiment.pass_threshold(None)

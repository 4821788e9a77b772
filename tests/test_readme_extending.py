"""README "Extending": its conftest.py examples, taken verbatim from README.md, work.

Each block is found by its first line (`# conftest.py: <name>`), written beside a copy of
experiments/test-001, and run as the README says; a README edit that breaks an example
fails here.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from pytest_scylla.records import RunRecord

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
EXPERIMENT = REPO / "experiments" / "test-001"
BLOCK = re.compile(r"```python\n(# conftest\.py: (?P<name>[^\n]+)\n.*?)```", re.DOTALL)


def readme_block(name: str) -> str:
    blocks = {match["name"]: match.group(1) for match in BLOCK.finditer(README.read_text())}
    assert name in blocks, f"README.md has no `# conftest.py: {name}` block ({sorted(blocks)})"
    return blocks[name]


def readme_command(fragment: str) -> list[str]:
    """The indented `pytest experiments/test-001 ...` line of README.md holding `fragment`."""
    for line in README.read_text().splitlines():
        if line.startswith("    pytest experiments/test-001") and fragment in line:
            return line.split()[1:]
    raise AssertionError(f"README.md shows no command with {fragment!r}")


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    pytester.makeini("[pytest]\n")
    shutil.copytree(EXPERIMENT, pytester.path / "experiments" / "test-001")
    return pytester.path


def run_records(results: Path) -> list[RunRecord]:
    return [
        RunRecord.model_validate_json(path.read_text("utf-8"))
        for path in sorted(results.rglob("run_result.json"))
    ]


ONE_RUN = ("--tiers", "T0", "--max-subtests", "1", "--runs", "1", "-p", "no:cacheprovider")


@pytest.mark.slow
def test_hello_agent_example_passes_test_001(pytester: pytest.Pytester, project: Path) -> None:
    (project / "experiments" / "conftest.py").write_text(readme_block("hello-agent"))
    command = readme_command("--agent hello-agent")
    assert command[:1] == ["experiments/test-001"]
    results = project / "results"
    result = pytester.runpytest(*command, *ONE_RUN, "--results-dir", str(results))
    result.assert_outcomes(passed=1)
    [record] = run_records(results)
    assert record.agent is not None and record.agent.agent == "hello-agent"
    assert record.result is not None and record.result.score == pytest.approx(1.0)
    kept = (results / "test-001" / "T0").rglob("workspace.diff")
    assert any("Hello, World!" in path.read_text() for path in kept)


@pytest.mark.slow
def test_keyword_judge_example_judges_with_no_api_key(
    pytester: pytest.Pytester, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(project / "home"))  # no Claude login either
    (project / "experiments" / "conftest.py").write_text(readme_block("keyword-judge"))
    results = project / "results"
    command = readme_command("--judge-model keyword-judge")
    result = pytester.runpytest(*command, *ONE_RUN, "--results-dir", str(results))
    result.assert_outcomes(passed=1)
    [record] = run_records(results)
    [judge] = record.judges
    assert (judge.model, judge.status) == ("keyword-judge", "ok")
    assert set(judge.items) == {"Q3", "P2"}  # test-001's items without a command
    assert all(item.achieved == 1.0 for item in judge.items.values())

    # The nop agent writes no greeting: the same judge gives no points, the run fails.
    nop = pytester.runpytest(
        *command, *ONE_RUN, "--results-dir", str(project / "nop"), "--agent", "nop"
    )
    nop.assert_outcomes(failed=1)
    [failed] = run_records(project / "nop")
    assert all(item.achieved == 0.0 for item in failed.judges[0].items.values())

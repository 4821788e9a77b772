"""`--scylla-status`: what is on disk and what the same command would run, with no agent,
no judge, no network and no credentials; it changes no file and exits 0."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from experiment_factory import write_experiment

from pytest_scylla.record_summary import RecordSummary
from pytest_scylla.settings import ScyllaSettings
from pytest_scylla.status import work_to_do

NO_CACHE = ("-p", "no:cacheprovider")


def tree(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def row(output: str, label: str) -> list[str]:
    for line in output.splitlines():
        if line.strip().startswith(label + " "):
            return line.split()[1:]
    raise AssertionError(f"no row {label!r} in:\n{output}")


@pytest.fixture
def no_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))


@pytest.mark.slow
def test_status_counts_plans_and_prices_without_running_anything(
    pytester: pytest.Pytester, no_credentials: None
) -> None:
    pytester.makeini("[pytest]\n")
    experiment = write_experiment(pytester.path, "exp-st")
    results = pytester.path / "R"
    base = (str(experiment), "--max-subtests", "1", "--results-dir", str(results), *NO_CACHE)
    offline = ("--agent", "oracle", "--judge-model", "none")
    pytester.runpytest(*base, "--runs", "3", *offline).assert_outcomes(passed=3)
    run_dir = results / "exp-st" / "T0" / "00-empty"
    for number, cost in ((1, 0.25), (2, 0.75)):  # as if the agent had been paid
        path = run_dir / f"run-{number:02d}" / "run_result.json"
        data = json.loads(path.read_text())
        data["agent"]["cost_usd"] = cost
        path.write_text(json.dumps(data))
    errored = run_dir / "run-03" / "run_result.json"
    data = json.loads(errored.read_text())
    data.update(outcome="error", stage="started", result=None, checks=None, workspace=None)
    data["agent"].update(finished=False, timed_out=True, cost_usd=None)
    data["error"] = {"stage": "agent", "message": "the agent did not finish"}
    data["attempts"] = [
        {"attempt": 1, "outcome": "error", "stage": "started", "files": "attempts/1"}
    ]
    errored.write_text(json.dumps(data))
    before = tree(results)

    # Five runs asked for: two passed, one errored (agent not finished), two missing.
    status = pytester.runpytest(*base, "--runs", "5", *offline, "--scylla-status")

    assert status.ret == pytest.ExitCode.OK
    out = status.stdout.str()
    #                 runs pass fail t/out error miss j-inc att agent judge
    assert row(out, "T0/00-empty") == ["5", "2", "0", "1", "1", "2", "0", "4", "3", "0"]
    assert "would execute 3 agent run(s) and 0 judge call(s)" in out
    # Mean agent cost on disk (0.25 + 0.75) / 2 = 0.5 a run, times 3 runs to do.
    assert "expected agent $1.5000 (3 x mean $0.5000/run)" in out
    assert tree(results) == before  # nothing written, nothing run

    # The same arguments as the real command, defaults included: claude-code and an LLM
    # judge, with no key anywhere, still give a status (the plan differs: judges too).
    default = pytester.runpytest(*base, "--runs", "5", "--scylla-status")
    assert default.ret == pytest.ExitCode.OK
    assert "the same command would stop before the first run" in default.stdout.str()
    assert "--agent (on disk: oracle; now: claude-code)" in default.stdout.str()

    # On the results folder: the records' own settings, so only the errored run is to do.
    folder = pytester.runpytest(str(results), "--scylla-status", *NO_CACHE)
    assert folder.ret == pytest.ExitCode.OK
    assert row(folder.stdout.str(), "T0/00-empty")[:1] == ["3"]
    assert "would execute 1 agent run(s) and 0 judge call(s)" in folder.stdout.str()
    assert tree(results) == before


@pytest.mark.slow
def test_status_of_nothing_exits_zero(pytester: pytest.Pytester, no_credentials: None) -> None:
    pytester.makeini("[pytest]\n")
    empty = pytester.mkdir("empty")
    result = pytester.runpytest(str(empty), "--scylla-status", *NO_CACHE)
    assert result.ret == pytest.ExitCode.OK


def _summary(**fields: object) -> RecordSummary:
    base: dict[str, object] = {
        "experiment_id": "e",
        "tier": "T0",
        "subtest": "00",
        "run": 1,
        "agent_name": "oracle",
        "judge_mode": "llm",
        "judge_models": ["a", "b"],
        "outcome": "passed",
        "agent": {"finished": True},
        "checks": {},
        "workspace": {},
        "judges": [{"model": "a", "status": "ok"}, {"model": "b", "status": "ok"}],
    }
    base.update(fields)
    return RecordSummary.model_validate(base)


def test_work_to_do_mirrors_the_runner_decisions() -> None:
    panel = ScyllaSettings(judge_model="a", add_judges=["b"])
    assert work_to_do(None, panel, llm=True) == (1, 2, 0)
    assert work_to_do(_summary(), panel, llm=True) == (0, 0, 0)
    one_judge = _summary(
        judges=[{"model": "a", "status": "ok"}, {"model": "b", "status": "failed"}]
    )
    assert work_to_do(one_judge, panel, llm=True) == (0, 1, 0)  # only the missing judge
    unfinished = _summary(outcome="error", agent={"finished": False}, checks=None)
    assert work_to_do(unfinished, panel, llm=True) == (1, 2, 0)
    failed = _summary(outcome="failed")
    assert work_to_do(failed, panel, llm=True) == (0, 0, 0)
    rerun = panel.model_copy(update={"rerun_failed": True})
    assert work_to_do(failed, rerun, llm=True) == (1, 2, 0)
    rejudge = panel.model_copy(update={"rejudge": True})
    assert work_to_do(_summary(), rejudge, llm=True) == (0, 2, 0)
    assert work_to_do(unfinished, rejudge, llm=True) == (0, 0, 1)  # never an agent
    assert work_to_do(None, rejudge, llm=True) == (0, 0, 1)
    add = ScyllaSettings(judge_model="a", add_judges=["b", "c"], rejudge=True)
    assert work_to_do(_summary(), add, llm=True) == (0, 1, 0)  # only the new judge
    regenerate = panel.model_copy(update={"regenerate": True})
    assert work_to_do(unfinished, regenerate, llm=True) == (0, 0, 0)
    assert work_to_do(None, panel, llm=False) == (1, 0, 0)  # every rubric item a command

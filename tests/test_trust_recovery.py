"""Recovery from the results folder alone (issue 11, findings 3 and 4).

- Finding 3: `--scylla-regenerate` without the original options rescored commands-only
  records with LLM judges and turned every run into `error: no judge succeeded`.
- Finding 4: `--scylla-rejudge` started new agent runs for errored and missing runs.
Regenerate and rejudge now take their settings from the records, and work from a results
folder with no experiment directory on the command line.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from experiment_factory import RUBRIC, write_experiment

from pytest_scylla.records import atomic_write_text
from pytest_scylla.testing.fake_api import FakeMessagesAPI, RecordedRequest, Reply, ToolCall

OPUS = "claude-opus-4-6"
SONNET = "claude-sonnet-4-6"
FAKE_KEY = "sk-ant-test-RECOVERY-0123456789"
NO_CACHE = ("-p", "no:cacheprovider")


def first_session(experiment: Path, results: Path, *extra: str) -> tuple[str, ...]:
    return (
        str(experiment),
        "--tiers",
        "T0",
        "T1",
        "--runs",
        "2",
        "--max-subtests",
        "1",
        "--agent",
        "oracle",
        "--results-dir",
        str(results),
        *NO_CACHE,
        *extra,
    )


def digest(root: Path, pattern: str) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob(pattern))
    }


def records(results: Path) -> dict[str, dict[str, Any]]:
    return {
        str(path.parent.relative_to(results)): json.loads(path.read_text())
        for path in sorted(results.rglob("run_result.json"))
        if "attempts" not in path.parts
    }


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    pytester.makeini("[pytest]\n")
    return pytester.path


# ---- finding 3 ------------------------------------------------------------------------------


@pytest.mark.slow
def test_regenerate_without_the_original_options_keeps_commands_only(
    pytester: pytest.Pytester, project: Path
) -> None:
    experiment = write_experiment(project, "exp-r", tiers=["T0", "T1"])
    results = project / "R"
    pytester.runpytest(
        *first_session(experiment, results, "--judge-model", "none")
    ).assert_outcomes(passed=4)
    before = digest(results, "result.json")

    # The command: no --agent, no --judge-model (whose default is an LLM judge).
    regenerated = pytester.runpytest(
        str(experiment), "--results-dir", str(results), "--scylla-regenerate", *NO_CACHE
    )

    regenerated.assert_outcomes(passed=4)
    for record in records(results).values():
        assert record["outcome"] == "passed" and record["error"] is None
        assert record["judge_mode"] == "commands-only" and record["judges"] == []
    assert digest(results, "result.json") == before
    assert "no judge succeeded" not in (results / "exp-r" / "report.md").read_text()


@pytest.mark.slow
def test_regenerate_from_the_results_folder_alone(pytester: pytest.Pytester, project: Path) -> None:
    experiment = write_experiment(project, "exp-f", tiers=["T0", "T1"])
    results = project / "R"
    pytester.runpytest(
        *first_session(experiment, results, "--judge-model", "none")
    ).assert_outcomes(passed=4)
    snapshot = results / "exp-f" / "experiment"
    # What a judge reads is saved; the solution and the repository are not.
    assert (snapshot / "test.yaml").is_file() and (snapshot / "expected" / "rubric.yaml").is_file()
    assert not (snapshot / "solution").exists() and not (snapshot / "repo").exists()
    before = digest(results, "result.json")
    shutil.rmtree(experiment)  # the experiments directory is gone

    for target in (results, results / "exp-f"):  # a whole tree, or one experiment folder
        again = pytester.runpytest(str(target), "--scylla-regenerate", *NO_CACHE)
        again.assert_outcomes(passed=4)
        assert digest(results, "result.json") == before
    assert "Experiment exp-f" in (results / "exp-f" / "report.md").read_text()
    # The snapshot's test.yaml is never collected as an experiment to run.
    plain = pytester.runpytest(str(results), *NO_CACHE)
    assert plain.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    # Collecting only takes no lock on the folder, so it writes nothing there either.
    for derived in results.rglob("result.json"):
        derived.unlink()
    listed = pytester.runpytest(str(results), "--scylla-regenerate", "--collect-only", *NO_CACHE)
    assert listed.ret == pytest.ExitCode.OK
    assert not list(results.rglob("result.json"))


@pytest.mark.slow
def test_regenerate_pass_threshold_redecides_every_run_and_goes_to_the_manifest(
    pytester: pytest.Pytester, project: Path
) -> None:
    rubric = json.loads(json.dumps(RUBRIC))
    # The oracle never writes junk... but this check wants it: quality scores 0, total 0.7.
    rubric["categories"]["quality"]["items"][0]["command"] = "test -e junk"
    experiment = write_experiment(project, "exp-t", rubric=rubric)
    results = project / "R"
    base = (
        str(experiment),
        "--runs",
        "2",
        "--max-subtests",
        "1",
        "--agent",
        "oracle",
        "--judge-model",
        "none",
        "--results-dir",
        str(results),
        *NO_CACHE,
    )
    pytester.runpytest(*base).assert_outcomes(passed=2)

    stricter = pytester.runpytest(str(results), "--scylla-regenerate", "--pass-threshold", "0.8")

    stricter.assert_outcomes(failed=2)
    manifest = json.loads((results / "exp-t" / "manifest.json").read_text())
    assert manifest["options"]["pass_threshold"] == 0.8
    for record in records(results).values():
        assert record["outcome"] == "failed" and record["result"]["pass_threshold"] == 0.8
    # The verdict no longer depends on the order of commands: a plain resume without the
    # threshold stops instead of mixing 0.8 and 0.6 decisions; with it, nothing changes.
    assert pytester.runpytest(*base).ret == pytest.ExitCode.USAGE_ERROR
    pytester.runpytest(*base, "--pass-threshold", "0.8").assert_outcomes(failed=2)


# ---- finding 4 ------------------------------------------------------------------------------


@pytest.mark.slow
def test_rejudge_never_starts_an_agent_and_names_what_it_left_out(
    pytester: pytest.Pytester, project: Path
) -> None:
    experiment = write_experiment(project, "exp-j")
    results = project / "R"
    base = (
        str(experiment),
        "--runs",
        "2",
        "--max-subtests",
        "1",
        "--agent",
        "oracle",
        "--judge-model",
        "none",
        "--results-dir",
        str(results),
        *NO_CACHE,
    )
    pytester.runpytest(*base).assert_outcomes(passed=2)
    errored = results / "exp-j" / "T0" / "00-empty" / "run-02" / "run_result.json"
    data = json.loads(errored.read_text())
    data.update(outcome="error", stage="started", result=None, checks=None, workspace=None)
    data["agent"]["finished"] = False
    data["error"] = {"stage": "agent", "message": "the agent did not finish"}
    errored.write_text(json.dumps(data))
    errored_bytes = errored.read_bytes()

    # The command line: more runs and another agent than the records have.
    rejudged = pytester.runpytest(
        str(experiment),
        "--runs",
        "3",
        "--max-subtests",
        "1",
        "--agent",
        "nop",
        "--judge-model",
        "none",
        "--results-dir",
        str(results),
        "--scylla-rejudge",
        *NO_CACHE,
    )

    rejudged.assert_outcomes(passed=1)
    out = rejudged.stdout.str()
    assert "not rejudged (agent missing or errored" in out
    assert "exp-j T0/00-empty run-02" in out and "exp-j T0/00-empty run-03" in out
    assert errored.read_bytes() == errored_bytes  # no new attempt of the errored run
    assert not (errored.parent.parent / "run-03").exists()  # no agent for the missing run
    first = records(results)["exp-j/T0/00-empty/run-01"]
    assert first["agent_name"] == "oracle" and first["settings"]["agent"] == "oracle"


# ---- rejudge from the folder alone, with an LLM judge -----------------------------------------


def judge_answer(request: RecordedRequest) -> Reply:
    return Reply(
        tool_calls=[
            ToolCall(
                name="submit_judgment",
                input={
                    "items": [{"item_id": "J1", "achieved": 1.0, "reason": "fine"}],
                    "overall_reasoning": "scripted",
                },
            )
        ]
    )


@pytest.fixture
def judge_api(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Any:
    api = FakeMessagesAPI(judge_answer, api_key=FAKE_KEY).start()
    monkeypatch.setenv("ANTHROPIC_BASE_URL", api.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    for name in ("ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    yield api
    api.stop()


@pytest.mark.slow
def test_rejudge_a_results_folder_adds_only_the_new_judge(
    pytester: pytest.Pytester, project: Path, judge_api: FakeMessagesAPI
) -> None:
    rubric = json.loads(json.dumps(RUBRIC))
    rubric["categories"]["quality"]["items"].append(
        {"id": "J1", "check": "the change is tidy", "points": 1.0}
    )
    experiment = write_experiment(project, "exp-l", rubric=rubric)
    results = project / "R"
    base = (
        str(experiment),
        "--runs",
        "2",
        "--max-subtests",
        "1",
        "--agent",
        "oracle",
        "--judge-model",
        OPUS,
        "--results-dir",
        str(results),
        *NO_CACHE,
    )
    pytester.runpytest(*base).assert_outcomes(passed=2)
    assert [str(r.model) for r in judge_api.message_requests()] == [OPUS, OPUS]
    settings_before = {key: r["settings"] for key, r in records(results).items()}
    moved = project / "elsewhere"
    shutil.move(str(experiment), str(moved))  # the experiment is not where it was

    judge_api.clear()
    added = pytester.runpytest(str(results / "exp-l"), "--scylla-rejudge", "--add-judge", SONNET)

    added.assert_outcomes(passed=2)
    assert [str(r.model) for r in judge_api.message_requests()] == [SONNET, SONNET]
    for key, record in records(results).items():
        assert [judge["model"] for judge in record["judges"]] == [OPUS, SONNET]
        settings = record["settings"]
        assert settings["judge_panel"] == [OPUS, SONNET]
        # What made the agent output is unchanged: the sub-test and fixture hashes stay.
        for name in ("agent", "model", "subtest_sha256", "fixture_sha256", "sandbox"):
            assert settings[name] == settings_before[key][name]
    # Regenerate from the folder needs no key and asks nothing: the LLM consensus is rebuilt
    # from the saved judgments.
    judge_api.clear()
    with pytest.MonkeyPatch.context() as no_key:
        no_key.delenv("ANTHROPIC_API_KEY")
        no_key.delenv("ANTHROPIC_BASE_URL")
        regenerated = pytester.runpytest(str(results), "--scylla-regenerate", *NO_CACHE)
    regenerated.assert_outcomes(passed=2)
    assert judge_api.requests == []
    assert all(r["judge_mode"] == "llm" for r in records(results).values())
    # The experiment back with the new panel: a plain resume reuses every run.
    shutil.move(str(moved), str(experiment))
    judge_api.clear()
    resumed = pytester.runpytest(*base, "--add-judge", SONNET)
    resumed.assert_outcomes(passed=2)
    assert judge_api.message_requests() == []


def test_regenerate_rewrites_a_judges_own_score(
    pytester: pytest.Pytester, project: Path, judge_api: FakeMessagesAPI
) -> None:
    """Regenerate rescores from the saved judgments: a judge's own score that no longer
    follows from them (a hand edit, or an older scoring) is rewritten."""
    rubric = json.loads(json.dumps(RUBRIC))
    rubric["categories"]["quality"]["items"].append(
        {"id": "J1", "check": "the change is tidy", "points": 1.0}
    )
    experiment = write_experiment(project, "exp-rescore", rubric=rubric)
    results = project / "R"
    base = (str(experiment), "--runs", "1", "--max-subtests", "1", "--agent", "oracle")
    pytester.runpytest(
        *base, "--judge-model", OPUS, "--results-dir", str(results), *NO_CACHE
    ).assert_outcomes(passed=1)
    [(key, good)] = records(results).items()
    record_file = results / key / "run_result.json"
    edited = json.loads(json.dumps(good))
    edited["judges"][0]["score"] = 0.125  # only the judge's own score: the rest still holds
    atomic_write_text(record_file, json.dumps(edited, indent=2) + "\n")

    regenerated = pytester.runpytest(str(results), "--scylla-regenerate", *NO_CACHE)
    regenerated.assert_outcomes(passed=1)
    rescored = records(results)[key]
    assert rescored["judges"][0]["score"] == good["judges"][0]["score"] != 0.125
    assert rescored["consensus"] == good["consensus"]

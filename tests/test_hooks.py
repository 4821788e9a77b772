"""Every hook of pytest-scylla, called from a conftest.py as a user's plugin would
(in the spirit of pytest-xdist's testing/test_newhooks.py).

hooks.py: run_finished, experiment_aggregated, judge_request, known_names and the three
factories (agent, sandbox, judge); plugin.py: xdist's pytest_handlecrashitem reschedules a
run whose worker died.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from experiment_factory import RUBRIC, write_experiment

from pytest_scylla.records import RunRecord
from pytest_scylla.testing.fake_api import FakeMessagesAPI, RecordedRequest, Reply, ToolCall

REPO = Path(__file__).resolve().parents[1]
OFFLINE = ("--judge-model", "none", "-p", "no:cacheprovider")
FAKE_KEY = "sk-ant-test-HOOKS-0123456789"


def run_records(results: Path) -> list[RunRecord]:
    return [
        RunRecord.model_validate_json(path.read_text("utf-8"))
        for path in sorted(results.rglob("run_result.json"))
    ]


def session(experiment: Path, results: Path, *extra: str, runs: int = 2) -> tuple[str, ...]:
    return (
        str(experiment),
        "--runs",
        str(runs),
        "--max-subtests",
        "1",
        "--results-dir",
        str(results),
        *OFFLINE,
        *extra,
    )


@pytest.fixture
def experiment(pytester: pytest.Pytester) -> Path:
    pytester.makeini("[pytest]\n")
    return write_experiment(pytester.path, "exp-hooks")


# An agent for these tests: writes what exp-hooks asks (done.txt holding ok) in the sandbox.
DONE_AGENT = """
    from pathlib import Path

    import pytest

    from pytest_scylla.agents.base import base_env
    from pytest_scylla.agents.command import host_path, run_process_agent


    class DoneAgent:
        def __init__(self, name):
            self.name = name

        def prepare_inputs(self, request):
            pass

        def run(self, request, sandbox):
            argv = ["sh", "-c", "echo ok > done.txt"]
            env = base_env(sandbox, host_path(request, sandbox))
            return run_process_agent(self.name, request, sandbox, argv, env)

        def parse_saved(self, agent_dir, previous):
            return previous.model_copy()
"""


@pytest.mark.slow
def test_run_finished_and_experiment_aggregated(
    pytester: pytest.Pytester, experiment: Path
) -> None:
    log = pytester.path / "hooks.jsonl"
    pytester.makeconftest(
        f"""
        import json

        def _log(entry):
            with open({str(log)!r}, "a") as handle:
                handle.write(json.dumps(entry) + "\\n")

        def pytest_scylla_run_finished(config, record, from_disk):
            _log({{"hook": "run_finished", "run": record.run, "from_disk": from_disk,
                  "outcome": record.outcome}})

        def pytest_scylla_experiment_aggregated(config, result):
            _log({{"hook": "aggregated", "experiment": result.experiment_id}})
        """
    )
    results = pytester.path / "results"
    pytester.runpytest(*session(experiment, results, "--agent", "oracle")).assert_outcomes(passed=2)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls == [
        {"hook": "run_finished", "run": 1, "from_disk": False, "outcome": "passed"},
        {"hook": "run_finished", "run": 2, "from_disk": False, "outcome": "passed"},
        {"hook": "aggregated", "experiment": "exp-hooks"},
    ]
    log.unlink()
    pytester.runpytest(*session(experiment, results, "--agent", "oracle")).assert_outcomes(passed=2)
    again = [json.loads(line) for line in log.read_text().splitlines()]
    assert [call.get("from_disk") for call in again] == [True, True, None]


@pytest.mark.slow
def test_make_agent_adds_a_named_agent(pytester: pytest.Pytester, experiment: Path) -> None:
    pytester.makeconftest(
        DONE_AGENT
        + """
    def pytest_scylla_known_names(config, kind):
        return ["done-agent"] if kind == "agent" else None

    def pytest_scylla_make_agent(config, name):
        return DoneAgent(name) if name == "done-agent" else None
    """
    )
    results = pytester.path / "results"
    result = pytester.runpytest(*session(experiment, results, "--agent", "done-agent"))
    result.assert_outcomes(passed=2)
    assert {record.agent.agent for record in run_records(results) if record.agent} == {"done-agent"}


@pytest.mark.slow
def test_make_agent_answered_first_replaces_a_builtin(
    pytester: pytest.Pytester, experiment: Path
) -> None:
    """The built-ins are trylast: a conftest answering "nop" wins, and the nop agent (which
    a correct grader fails) now passes."""
    pytester.makeconftest(
        DONE_AGENT
        + """
    def pytest_scylla_make_agent(config, name):
        return DoneAgent("nop") if name == "nop" else None
    """
    )
    result = pytester.runpytest(*session(experiment, pytester.path / "results", "--agent", "nop"))
    result.assert_outcomes(passed=2)


def test_an_unlisted_name_stops_the_session_listing_the_known_ones(
    pytester: pytest.Pytester, experiment: Path
) -> None:
    pytester.makeconftest(
        """
        def pytest_scylla_known_names(config, kind):
            return {"agent": ["done-agent"], "sandbox": ["vm"], "judge": ["my-judge"]}[kind]
        """
    )
    results = pytester.path / "results"
    agent = pytester.runpytest(*session(experiment, results, "--agent", "codex"))
    assert agent.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "--agent codex: unknown agent (known: done-agent, claude-code, command, oracle, nop)"
        in agent.stderr.str()
    )
    sandbox = pytester.runpytest(*session(experiment, results, "--sandbox", "qemu"))
    assert "--sandbox qemu: unknown sandbox (known: vm, local, docker)" in sandbox.stderr.str()
    judge = pytester.runpytest(*session(experiment, results, "--add-judge", "gpt-9"))
    assert "judge gpt-9: unknown judge model (known: my-judge, claude-" in judge.stderr.str()
    assert not results.exists()  # nothing ran


@pytest.mark.slow
def test_make_sandbox_adds_a_named_sandbox(pytester: pytest.Pytester, experiment: Path) -> None:
    opened = pytester.path / "opened.txt"
    pytester.makeconftest(
        f"""
        class CountingFactory:
            \"\"\"The local sandbox, counting the sandboxes it opens.\"\"\"

            name = "counting"

            def __init__(self, inner):
                self.inner = inner

            def check_available(self):
                return self.inner.check_available()

            def open(self, dirs, labels):
                with open({str(opened)!r}, "a") as handle:
                    handle.write("open\\n")
                return self.inner.open(dirs, labels)

            def sweep_stale(self):
                return self.inner.sweep_stale()

        def pytest_scylla_known_names(config, kind):
            return ["counting"] if kind == "sandbox" else None

        def pytest_scylla_make_sandbox(config, name):
            if name != "counting":
                return None
            # Built on the built-in: the hook asked for "local" is answered by builtins.py.
            return CountingFactory(config.hook.pytest_scylla_make_sandbox(config=config, name="local"))
        """
    )
    results = pytester.path / "results"
    args = session(experiment, results, "--agent", "oracle", "--sandbox", "counting")
    pytester.runpytest(*args).assert_outcomes(passed=2)
    assert len(opened.read_text().splitlines()) == 2  # one sandbox per run
    assert {record.settings.sandbox for record in run_records(results) if record.settings} == {
        "counting"
    }


JUDGED_RUBRIC = {
    **RUBRIC,
    "categories": {
        **RUBRIC["categories"],
        "quality": {
            "weight": 0.3,
            "scoring_type": "checklist",
            "items": [{"id": "Q1", "check": "the change is small", "points": 2.0}],
        },
    },
}


@pytest.mark.slow
def test_make_judge_adds_a_judge_to_the_panel(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(pytester.path / "home"))
    pytester.makeini("[pytest]\n")
    experiment = write_experiment(pytester.path, "exp-judged", rubric=JUDGED_RUBRIC)
    pytester.makeconftest(
        """
        from pytest_scylla.records import ItemJudgment, JudgeRecord

        class HalfJudge:
            model = "half-judge"

            def judge(self, judge_input, items, out_dir):
                return JudgeRecord(
                    model=self.model,
                    status="ok",
                    items={i.id: ItemJudgment(achieved=i.points / 2, reason="half") for i in items},
                )

        def pytest_scylla_known_names(config, kind):
            return ["half-judge"] if kind == "judge" else None

        def pytest_scylla_make_judge(config, model):
            return HalfJudge() if model == "half-judge" else None
        """
    )
    results = pytester.path / "results"
    args = (str(experiment), "--runs", "1", "--max-subtests", "1", "--results-dir", str(results))
    args = (*args, "--agent", "oracle")
    result = pytester.runpytest(*args, "--judge-model", "half-judge", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    [record] = run_records(results)
    assert [(judge.model, judge.items["Q1"].achieved) for judge in record.judges] == [
        ("half-judge", 1.0)
    ]
    # functional 0.7 x 1 + quality 0.3 x 1/2: the score is ours, from the judge's items.
    assert record.result is not None and record.result.score == pytest.approx(0.85)


def judgment(request: RecordedRequest) -> Reply:
    return Reply(
        tool_calls=[
            ToolCall(
                name="submit_judgment",
                input={
                    "items": [{"item_id": "Q1", "achieved": 2.0, "reason": "small"}],
                    "overall_reasoning": "fine",
                },
            )
        ]
    )


@pytest.mark.slow
def test_judge_request_hook_sees_and_changes_every_llm_judge_request(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's own example hook (verbatim), plus a counter: the text it adds reaches
    the API in every request, and prompt.md shows it."""
    from test_readme_extending import readme_block

    pytester.makeini("[pytest]\n")
    experiment = write_experiment(pytester.path, "exp-judged", rubric=JUDGED_RUBRIC)
    seen = pytester.path / "requests.txt"
    pytester.makeconftest(readme_block("judge request"))
    # A second implementation of the same hook, in a plugin of its own (-p): both are called.
    (pytester.path / "count_requests.py").write_text(
        textwrap.dedent(
            f"""
            def pytest_scylla_judge_request(config, request):
                with open({str(seen)!r}, "a") as handle:
                    handle.write(request["model"] + "\\n")
            """
        )
    )
    monkeypatch.syspath_prepend(str(pytester.path))
    api = FakeMessagesAPI(judgment, api_key=FAKE_KEY).start()
    try:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", api.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
        monkeypatch.setenv("HOME", str(pytester.path / "home"))
        results = pytester.path / "results"
        result = pytester.runpytest(
            str(experiment),
            "--runs",
            "2",
            "--max-subtests",
            "1",
            "--agent",
            "oracle",
            "--results-dir",
            str(results),
            "--judge-model",
            "haiku-4-5",  # upstream's short name: claude-haiku-4-5
            "-p",
            "count_requests",
            "-p",
            "no:cacheprovider",
        )
        result.assert_outcomes(passed=2)
        requests = api.message_requests()
    finally:
        api.stop()
    assert len(requests) == 2
    added = "Be terse: one sentence per reason."
    for request in requests:
        assert request.model == "claude-haiku-4-5"
        assert request.body["system"][-1] == {"type": "text", "text": added}
    assert seen.read_text().splitlines() == ["claude-haiku-4-5", "claude-haiku-4-5"]
    prompts = sorted(results.rglob("judges/*/prompt.md"))
    assert len(prompts) == 2 and all(added in path.read_text() for path in prompts)


CRASH_ONCE_AGENT = """
    import os
    from pathlib import Path

    from pytest_scylla.agents.oracle import OracleAgent


    class CrashOnce(OracleAgent):
        \"\"\"The oracle, except that its first run kills the xdist worker running it.\"\"\"

        name = "crash-once"

        def run(self, request, sandbox):
            marker = Path({marker!r})
            if not marker.exists():
                marker.write_text(str(os.getpid()))
                os._exit(70)
            return super().run(request, sandbox)


    def pytest_scylla_known_names(config, kind):
        return ["crash-once"] if kind == "agent" else None


    def pytest_scylla_make_agent(config, name):
        return CrashOnce() if name == "crash-once" else None
"""


@pytest.mark.slow
def test_handlecrashitem_puts_a_crashed_run_back_once(
    pytester: pytest.Pytester, experiment: Path
) -> None:
    marker = pytester.path / "crashed-once"
    pytester.makeconftest(CRASH_ONCE_AGENT.format(marker=str(marker)))
    results = pytester.path / "results"
    args = session(experiment, results, "--agent", "crash-once", "-n", "1", runs=1)
    result = pytester.runpytest_subprocess(*args)
    assert marker.is_file()  # the worker did die under the run
    result.stdout.fnmatch_lines(
        ["*node down: Not properly terminated*", "*replacing crashed worker gw0*"]
    )
    # ... and the run was put back in the queue (a "rerun", not a failure), and passed.
    outcomes = result.parseoutcomes()
    assert (outcomes.get("passed"), outcomes.get("rerun"), outcomes.get("failed")) == (1, 1, None)
    assert result.ret == pytest.ExitCode.OK
    [record] = run_records(results)
    assert record.outcome == "passed"
    assert record.agent is not None and record.agent.agent == "crash-once"


@pytest.mark.slow
def test_an_agent_that_raises_is_one_error_line_with_its_traceback_on_disk(
    pytester: pytest.Pytester, experiment: Path
) -> None:
    """A plugin's bug is the harness's error: one line and where the run's files are, not
    hundreds of lines of pluggy frames; the traceback is in the run's error.log."""
    pytester.makeconftest(
        """
        from pytest_scylla.agents.oracle import OracleAgent

        class Broken(OracleAgent):
            name = "broken"

            def run(self, request, sandbox):
                raise RuntimeError("the plugin broke here")

        def pytest_scylla_known_names(config, kind):
            return ["broken"] if kind == "agent" else None

        def pytest_scylla_make_agent(config, name):
            return Broken() if name == "broken" else None
        """
    )
    results = pytester.path / "results"
    result = pytester.runpytest(*session(experiment, results, "--agent", "broken", runs=1))
    result.assert_outcomes(errors=1)
    text = result.stdout.str()
    section = text[text.index("= ERRORS =") : text.index("= pytest-scylla =")]
    assert len(section.splitlines()) == 5  # banners around the error, and its two lines
    assert section.splitlines()[2:4] == [
        "harness: RuntimeError: the plugin broke here",
        f"  run files: {results / 'exp-hooks' / 'T0' / '00-empty' / 'run-01'}",
    ]
    assert "pluggy/_" not in text  # no frame of the hook machinery
    error_log = results / "exp-hooks" / "T0" / "00-empty" / "run-01" / "error.log"
    assert 'raise RuntimeError("the plugin broke here")' in error_log.read_text()

"""Every record holds the settings that produced it, and a session with other options stops
before its first run (issue 11, finding 5: runs were relabelled and pooled across settings).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from experiment_factory import write_experiment, write_tiers

from pytest_scylla.run_settings import (
    RunSettings,
    differences,
    only_judging_differs,
    run_settings_for,
    subtest_sha256,
    with_judging,
)
from pytest_scylla.settings import ScyllaSettings
from pytest_scylla.spec.load_experiment import load_experiment

OFFLINE = ("--agent", "oracle", "--judge-model", "none", "-p", "no:cacheprovider")


def args(experiment: Path, results: Path, *extra: str) -> tuple[str, ...]:
    return (
        str(experiment),
        "--runs",
        "2",
        "--max-subtests",
        "1",
        "--results-dir",
        str(results),
        *OFFLINE,
        *extra,
    )


def digest(results: Path) -> dict[str, str]:
    return {
        str(path.relative_to(results)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(results.rglob("*"))
        if path.is_file()
    }


def records(results: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(results.rglob("run_result.json"))]


@pytest.fixture
def experiment(pytester: pytest.Pytester) -> Path:
    pytester.makeini("[pytest]\n")
    return write_experiment(pytester.path, "exp-s")


# ---- finding 5 through the plugin -------------------------------------------------------------


@pytest.mark.slow
def test_other_model_stops_before_the_first_run_and_touches_nothing(
    pytester: pytest.Pytester, experiment: Path
) -> None:
    results = pytester.path / "results"
    pytester.runpytest(*args(experiment, results)).assert_outcomes(passed=2)
    before = digest(results)

    changed = pytester.runpytest(
        *args(experiment, results, "--model", "claude-opus-4-6", "--sandbox", "local")
    )

    assert changed.ret == pytest.ExitCode.USAGE_ERROR
    message = changed.stderr.str()
    assert "2 run record(s)" in message
    assert "--model (on disk: claude-sonnet-4-6; now: claude-opus-4-6)" in message
    assert "--fresh" in message and "another --results-dir" in message
    assert "--scylla-rejudge" not in message  # the agent's model is no judging matter
    assert len([line for line in message.splitlines() if "pytest-scylla:" in line]) == 1
    changed.assert_outcomes()  # nothing ran
    assert digest(results) == before  # no record relabelled, no aggregate or manifest rewritten
    assert all(record["settings"]["model"] == "claude-sonnet-4-6" for record in records(results))


@pytest.mark.slow
def test_plain_resume_with_another_pass_threshold_stops_and_offers_rejudge(
    pytester: pytest.Pytester, experiment: Path
) -> None:
    results = pytester.path / "results"
    pytester.runpytest(*args(experiment, results)).assert_outcomes(passed=2)
    before = digest(results)

    stricter = pytester.runpytest(*args(experiment, results, "--pass-threshold", "0.95"))

    assert stricter.ret == pytest.ExitCode.USAGE_ERROR
    message = stricter.stderr.str()
    assert "--pass-threshold (on disk: 0.6; now: 0.95)" in message
    assert "--scylla-rejudge (only judging differs)" in message
    assert digest(results) == before


@pytest.mark.slow
def test_identical_resume_and_fresh_still_work(pytester: pytest.Pytester, experiment: Path) -> None:
    results = pytester.path / "results"
    pytester.runpytest(*args(experiment, results)).assert_outcomes(passed=2)
    again = pytester.runpytest(*args(experiment, results))
    again.assert_outcomes(passed=2)
    assert "runs: 0 executed, 2 from disk" in again.stdout.str()
    # More runs of the same settings add to the same records: no difference to report.
    more = pytester.runpytest(*args(experiment, results, "--runs", "3"))
    more.assert_outcomes(passed=3)
    fresh = pytester.runpytest(*args(experiment, results, "--model", "claude-opus-4-6", "--fresh"))
    fresh.assert_outcomes(passed=2)
    assert {record["settings"]["model"] for record in records(results)} == {"claude-opus-4-6"}


@pytest.mark.slow
def test_edited_catalogue_block_is_a_different_subtest(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    layer = write_tiers(
        pytester.path,
        {"T0": {"00-a": {"name": "mine", "resources": {"claude_md": {"blocks": ["B90"]}}}}},
    )
    (layer / "blocks").mkdir()
    block = layer / "blocks" / "B90-style.md"
    block.write_text("Use tabs.\n")
    experiment = write_experiment(pytester.path, "exp-b")
    results = pytester.path / "results"
    pytester.runpytest(*args(experiment, results)).assert_outcomes(passed=2)

    block.write_text("Use spaces.\n")
    edited = pytester.runpytest(*args(experiment, results))

    assert edited.ret == pytest.ExitCode.USAGE_ERROR
    assert "sub-test definition (tier catalogue)" in edited.stderr.str()


# ---- the model itself ---------------------------------------------------------------------------


def _settings(**update: object) -> RunSettings:
    base = RunSettings(
        agent="oracle",
        model="m",
        judge_mode="llm",
        judge_panel=["j1"],
        pass_threshold=0.6,
        pass_threshold_source="rubric",
        sandbox="local",
        fixture_sha256="f" * 64,
        subtest_sha256="s" * 64,
        plugin_version="0.1.0",
    )
    return base.model_copy(update=update)


def test_differences_name_fields_and_ignore_the_plugin_version() -> None:
    recorded = _settings()
    assert differences(recorded, _settings(plugin_version="9.9.9")) == []
    assert differences(recorded, _settings(pass_threshold_source="command-line")) == []
    changed = _settings(model="other", judge_panel=["j1", "j2"], pass_threshold=0.7)
    assert differences(recorded, changed) == ["model", "judge_panel", "pass_threshold"]
    assert not only_judging_differs(differences(recorded, changed))
    assert only_judging_differs(differences(recorded, _settings(judge_panel=["j2"])))


def test_with_judging_keeps_what_made_the_agent_output() -> None:
    recorded = _settings()
    wanted = _settings(
        model="relabel",
        subtest_sha256="x" * 64,
        judge_panel=["j1", "j2"],
        pass_threshold=0.8,
        pass_threshold_source="command-line",
    )
    kept = with_judging(recorded, wanted)
    assert (kept.model, kept.subtest_sha256) == ("m", "s" * 64)
    assert (kept.judge_panel, kept.pass_threshold) == (["j1", "j2"], 0.8)
    assert kept.pass_threshold_source == "command-line"


def test_run_settings_hash_the_command_template_and_name_the_threshold_source(
    tmp_path: Path,
) -> None:
    experiment = load_experiment(write_experiment(tmp_path, "exp-u") / "test.yaml")
    subtest = experiment.catalogue.subtests("T0")[0]
    secret_template = "my-agent --key sk-SECRET {prompt_file}"
    command = ScyllaSettings(agent="command", agent_command=secret_template, judge_model="none")
    made = run_settings_for(command, experiment, subtest)
    assert "sk-SECRET" not in made.model_dump_json()
    assert made.agent_command_sha256 == hashlib.sha256(secret_template.encode()).hexdigest()
    assert (made.judge_mode, made.judge_panel) == ("commands-only", [])
    assert (made.pass_threshold, made.pass_threshold_source) == (0.6, "rubric")
    given = run_settings_for(ScyllaSettings(pass_threshold=0.6), experiment, subtest)
    assert given.pass_threshold_source == "command-line"
    assert given.subtest_sha256 == subtest_sha256(subtest, experiment.catalogue)


def test_settings_reader_reads_only_settings_and_falls_back_for_old_records(
    tmp_path: Path,
) -> None:
    from pytest_scylla.record_summary import RecordSummary, SettingsReader

    recorded = _settings()
    record = {
        "experiment_id": "e",
        "tier": "T0",
        "subtest": "00-empty",
        "run": 1,
        "agent_name": "oracle",
        "judge_mode": "llm",
        "outcome": "passed",
        # A string that looks like the key must not fool the reader.
        "node_id": '\\n  "settings": {"agent": "fake"}',
        "settings": recorded.model_dump(mode="json"),
    }
    reader = SettingsReader()
    paths = []
    for number in (1, 2):
        path = tmp_path / f"r{number}.json"
        path.write_text(json.dumps(record, indent=2) + "\n")
        paths.append(path)
    first, second = reader.read(paths[0]), reader.read(paths[1])
    assert first == recorded and second is first  # parsed once for identical settings
    legacy = tmp_path / "legacy.json"
    legacy.write_text(json.dumps({**record, "settings": None}, indent=2))
    old = reader.read(legacy)
    assert isinstance(old, RecordSummary) and old.settings is None
    assert reader.read(tmp_path / "missing.json") is None
    compact = tmp_path / "compact.json"  # not the layout dump_record writes: full parse
    compact.write_text(json.dumps(record))
    parsed = reader.read(compact)
    assert isinstance(parsed, RecordSummary) and parsed.settings == recorded


@pytest.mark.slow
def test_with_xdist_the_controller_checks_the_workers_ids(
    pytester: pytest.Pytester, experiment: Path
) -> None:
    results = pytester.path / "results"
    one_run = ("--runs", "1", "-n", "2")
    pytester.runpytest(*args(experiment, results, *one_run)).assert_outcomes(passed=1)
    before = digest(results)

    changed = pytester.runpytest(*args(experiment, results, *one_run, "--model", "other-model"))

    assert changed.ret == pytest.ExitCode.USAGE_ERROR
    assert "--model (on disk: claude-sonnet-4-6; now: other-model)" in changed.stderr.str()
    assert digest(results) == before

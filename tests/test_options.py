"""Options are declared once (settings.py) and checked before any run (issue 13, item 6).

Each case here was accepted before: a path read as a tier or a judge, an unknown tier
collecting 0 items in silence, negative counts and timeouts, a threshold of 7, a short
model name failing per run after the agent was paid, --timeout meaning pytest-timeout's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from experiment_factory import write_experiment

from pytest_scylla.models import resolve_model_name
from pytest_scylla.records import RunRecord
from pytest_scylla.settings import (
    DEFAULT_JUDGE_MODEL,
    ScyllaSettings,
    option_flags,
    split_swallowed_paths,
)

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
NO_CACHE = ("-p", "no:cacheprovider")


@pytest.fixture
def tree(pytester: pytest.Pytester) -> Path:
    """Two experiments side by side: a swallowed path used to collect both."""
    pytester.makeini("[pytest]\n")
    shutil.copytree(REPO / "experiments" / "test-001", pytester.path / "experiments" / "test-001")
    write_experiment(pytester.path / "experiments", "exp-other", tiers=["T0", "T1"])
    return pytester.path


def collected(result: pytest.RunResult) -> list[str]:
    return [line for line in result.stdout.lines if "test.yaml::" in line]


@pytest.mark.slow
def test_tiers_end_at_a_path(pytester: pytest.Pytester, tree: Path) -> None:
    result = pytester.runpytest(
        "--tiers", "T0", "experiments/test-001", "--collect-only", "-q", "--runs", "1", *NO_CACHE
    )
    ids = collected(result)
    assert ids, result.stdout.str()
    assert all(item.startswith("experiments/test-001/test.yaml::T0::") for item in ids)
    assert len(ids) == 6  # test-001's six T0 sub-tests, one run each


def test_tiers_take_commas_and_lower_case(pytester: pytest.Pytester, tree: Path) -> None:
    result = pytester.runpytest(
        "experiments/exp-other", "--tiers", "t1,T0", "--collect-only", "-q", "--runs", "1"
    )
    tiers = {item.split("::")[1] for item in collected(result)}
    assert tiers == {"T0", "T1"}


def test_add_judge_before_a_path_takes_the_default_model(
    pytester: pytest.Pytester, tree: Path
) -> None:
    result = pytester.runpytest(
        "--add-judge", "experiments/test-001", "--collect-only", "-q", "--runs", "1", *NO_CACHE
    )
    ids = collected(result)
    assert ids and all(item.startswith("experiments/test-001/") for item in ids)
    assert split_swallowed_paths(["--add-judge", str(tree / "experiments")]) == [
        f"--add-judge={DEFAULT_JUDGE_MODEL}",
        str(tree / "experiments"),
    ]


def test_swallowed_paths_unit() -> None:
    assert split_swallowed_paths(["--tiers", "T0", "T1", "x/y", "-q"]) == [
        "--tiers=T0,T1",
        "x/y",
        "-q",
    ]
    assert split_swallowed_paths(["--tiers", "T0,T2,", "t3"]) == ["--tiers=T0,T2,t3"]
    # Not a tier and not a path: left for the tier check to name.
    assert split_swallowed_paths(["--tiers", "bogus"]) == ["--tiers", "bogus"]
    assert split_swallowed_paths(["--add-judge", "claude-haiku-4-5"]) == [
        "--add-judge",
        "claude-haiku-4-5",
    ]
    assert split_swallowed_paths(["--add-judge", "a.yaml::T0"]) == [
        f"--add-judge={DEFAULT_JUDGE_MODEL}",
        "a.yaml::T0",
    ]
    assert split_swallowed_paths(["--", "--tiers", "T0"]) == ["--", "--tiers", "T0"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--runs", "-3"), "--runs -3 (ini scylla_runs): must be greater than 0"),
        (("--runs", "many"), "--runs many (ini scylla_runs): must be a valid integer"),
        (
            ("--max-subtests", "0"),
            "--max-subtests 0 (ini scylla_max_subtests): must be greater than 0",
        ),
        (
            ("--run-timeout", "-5"),
            "--run-timeout -5 (ini scylla_run_timeout): must be greater than 0",
        ),
        (
            ("--pass-threshold", "7"),
            "--pass-threshold 7 (ini scylla_pass_threshold): must be less than or equal to 1",
        ),
        (
            ("--tiers", "T9"),
            "--tiers T9 (ini scylla_tiers): unknown tier 'T9' (known: T0, T1, T2, T3, T4, T5, T6)",
        ),
        (
            ("--docker-pids", "0"),
            "--docker-pids 0 (ini scylla_docker_pids): must be greater than 0",
        ),
        (
            ("--model", "opus-9", "--agent", "claude-code"),
            "--model opus-9: no price known (known: 3-5-haiku,",
        ),
        (
            ("--agent", "codex"),
            "--agent codex: unknown agent (known: claude-code, command, oracle, nop)",
        ),
        (("--judge-model", "gpt-9"), "judge gpt-9: unknown judge model (known: claude-3-5-haiku,"),
    ],
)
def test_a_bad_value_stops_the_session_in_one_line(
    pytester: pytest.Pytester, tree: Path, args: tuple[str, ...], message: str
) -> None:
    results = tree / "results"
    result = pytester.runpytest("experiments/test-001", "--results-dir", str(results), *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1 and f"ERROR: pytest-scylla: {message}" in errors[0], errors
    assert not results.exists()


def test_ini_values_are_checked_like_the_command_line(
    pytester: pytest.Pytester, tree: Path
) -> None:
    pytester.makeini("[pytest]\nscylla_runs = -1\nscylla_tiers = T0 T7\n")
    result = pytester.runpytest("experiments/test-001", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    error = result.stderr.str()
    assert "--runs -1 (ini scylla_runs): must be greater than 0" in error
    assert "--tiers T0 T7 (ini scylla_tiers): unknown tier 'T7'" in error


@pytest.mark.slow
def test_short_model_names_become_full_ids(pytester: pytest.Pytester, tree: Path) -> None:
    assert resolve_model_name("opus-4-5") == "claude-opus-4-5"
    assert resolve_model_name("sonnet-4-5-20250929") == "claude-sonnet-4-5-20250929"
    assert resolve_model_name("claude-haiku-4-5") == "claude-haiku-4-5"
    assert resolve_model_name("sonnet") == "sonnet"  # Claude Code's own alias, priced as is
    assert resolve_model_name("gpt-5") == "gpt-5"  # unknown: left for the start-up check
    results = tree / "results"
    result = pytester.runpytest(
        "experiments/test-001",
        "--tiers=T0",
        "--max-subtests=1",
        "--runs=1",
        "--agent=oracle",
        "--model=opus-4-5",
        "--judge-model=none",
        f"--results-dir={results}",
        *NO_CACHE,
    )
    result.assert_outcomes(passed=1)
    [path] = results.rglob("run_result.json")
    record = RunRecord.model_validate_json(path.read_text("utf-8"))
    assert record.settings is not None and record.settings.model == "claude-opus-4-5"


@pytest.mark.slow
def test_an_unpriced_model_is_allowed_when_asked(pytester: pytest.Pytester, tree: Path) -> None:
    args = (
        "experiments/test-001",
        "--collect-only",
        "-q",
        "--runs",
        "1",
        "--model",
        "claude-next-9",
    )
    refused = pytester.runpytest(*args, "--judge-model", "claude-next-9")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    assert "--scylla-allow-unpriced-model for a new one" in refused.stderr.str()
    allowed = pytester.runpytest(
        *args, "--judge-model", "claude-next-9", "--scylla-allow-unpriced-model"
    )
    assert allowed.ret == pytest.ExitCode.OK, allowed.stderr.str()


@pytest.mark.slow
def test_timeout_alone_says_it_is_pytest_timeouts(pytester: pytest.Pytester, tree: Path) -> None:
    args = ("experiments/test-001", "--collect-only", "-q", "--runs", "1", "-W", "always")
    hinted = pytester.runpytest(*args, "--timeout", "5")
    text = hinted.stdout.str()
    assert text.count("--timeout is pytest-timeout's") == 1
    assert "the agent's own time limit is --run-timeout SECONDS" in text
    both = pytester.runpytest(*args, "--timeout", "5", "--run-timeout", "5")
    assert "--timeout is pytest-timeout's" not in both.stdout.str()


def test_every_option_is_in_the_readme_table() -> None:
    text = README.read_text()
    table = text[text.index("## Options") : text.index("\nOutcomes: ")]
    missing = [flag.flag for flag in option_flags().values() if f"`{flag.flag}" not in table]
    assert not missing, f"README.md's options table lacks {missing}"


def test_each_option_has_its_ini_key_and_validation_in_one_place() -> None:
    flags = option_flags()
    assert set(flags) <= set(ScyllaSettings.model_fields)
    assert len({flag.flag for flag in flags.values()}) == len(flags)  # no flag declared twice
    with pytest.raises(ValueError, match="greater than 0"):
        ScyllaSettings(runs=0)
    with pytest.raises(ValueError, match="less than or equal to 1"):
        ScyllaSettings(pass_threshold=1.5)


@pytest.mark.slow
def test_a_path_after_tiers_still_loads_its_conftest(pytester: pytest.Pytester, tree: Path) -> None:
    """The path put back from --tiers reaches pytest's initial conftests too: the agent the
    experiments' conftest.py adds is known at start-up."""
    from test_readme_extending import readme_block

    (tree / "experiments" / "conftest.py").write_text(readme_block("hello-agent"))
    result = pytester.runpytest(
        "--tiers",
        "T0",
        "experiments/test-001",
        "--agent",
        "hello-agent",
        "--judge-model",
        "none",
        "--max-subtests",
        "1",
        "--runs",
        "1",
        "--results-dir",
        str(tree / "results"),
        *NO_CACHE,
    )
    result.assert_outcomes(passed=1)

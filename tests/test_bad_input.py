"""A malformed experiment fails collection naming the file, the field and the reason, while
the other experiments of the same invocation still run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from experiment_factory import RUBRIC, write_experiment

COMMANDS_ONLY = ("--agent", "nop", "--judge-model", "none", "--runs", "1", "-p", "no:cacheprovider")


def collect_errors(pytester: pytest.Pytester, *paths: Path) -> pytest.RunResult:
    return pytester.runpytest(*map(str, paths), "--collect-only", "-q", "--runs", "1")


def assert_error(result: pytest.RunResult, *fragments: str) -> None:
    output = result.stdout.str()
    assert "malformed experiment" in output
    for fragment in fragments:
        assert fragment in output, f"{fragment!r} missing from:\n{output}"


def test_yaml_syntax_error_names_the_line(pytester: pytest.Pytester) -> None:
    experiment = write_experiment(pytester.path)
    (experiment / "test.yaml").write_text("id: broken\ntiers: [T0\nname: x\n")
    result = collect_errors(pytester, experiment)
    assert_error(result, "test.yaml", "line 3", "invalid YAML")


def test_unknown_tier(pytester: pytest.Pytester) -> None:
    experiment = write_experiment(pytester.path, test_yaml={"tiers": ["T0", "T9"]})
    assert_error(collect_errors(pytester, experiment), "test.yaml", "tiers", "unknown tier T9")


def test_missing_prompt_file(pytester: pytest.Pytester) -> None:
    experiment = write_experiment(pytester.path)
    (experiment / "prompt.md").unlink()
    assert_error(
        collect_errors(pytester, experiment),
        "test.yaml",
        "task.prompt_file",
        "'prompt.md' does not exist",
    )


def test_category_weights_must_sum_to_one(pytester: pytest.Pytester) -> None:
    rubric = {
        **RUBRIC,
        "categories": {
            **RUBRIC["categories"],
            "quality": {**RUBRIC["categories"]["quality"], "weight": 0.2},
        },
    }
    experiment = write_experiment(pytester.path, rubric=rubric)
    assert_error(
        collect_errors(pytester, experiment),
        "rubric.yaml",
        "categories",
        "sum to 1, they sum to 0.9",
    )


def test_weights_within_tolerance_are_accepted(pytester: pytest.Pytester) -> None:
    rubric = {
        **RUBRIC,
        "categories": {
            **RUBRIC["categories"],
            "quality": {**RUBRIC["categories"]["quality"], "weight": 0.3 + 5e-7},
        },
    }
    experiment = write_experiment(pytester.path, rubric=rubric)
    result = collect_errors(pytester, experiment)
    assert "malformed" not in result.stdout.str()
    result.assert_outcomes()


def test_negative_points(pytester: pytest.Pytester) -> None:
    rubric = """\
        categories:
          functional:
            weight: 1.0
            items:
              - {id: F1, check: a, points: 1}
              - {id: F2, check: b, points: -1}
        grading: {pass_threshold: 0.6}
    """
    experiment = write_experiment(pytester.path, rubric=rubric)
    assert_error(
        collect_errors(pytester, experiment),
        "rubric.yaml",
        "categories.functional.items[1].points",
        "greater than or equal to 0",
    )


@pytest.mark.slow
def test_duplicate_item_ids(pytester: pytest.Pytester) -> None:
    rubric = """\
        categories:
          functional:
            weight: 0.5
            items: [{id: F1, check: a, points: 1}]
          quality:
            weight: 0.5
            items: [{id: F1, check: b, points: 1}]
        grading: {pass_threshold: 0.6}
    """
    experiment = write_experiment(pytester.path, rubric=rubric)
    assert_error(collect_errors(pytester, experiment), "rubric.yaml", "duplicate item id 'F1'")


def test_requirements_weights_must_be_positive(pytester: pytest.Pytester) -> None:
    rubric = """\
        requirements:
          - {id: R001, description: a, weight: 1.0, evaluation: binary}
          - {id: R002, description: b, weight: 0, evaluation: scaled}
        grading: {pass_threshold: 0.7}
    """
    experiment = write_experiment(pytester.path, rubric=rubric)
    assert_error(
        collect_errors(pytester, experiment),
        "rubric.yaml",
        "requirements[1].weight",
        "greater than 0",
    )


@pytest.mark.slow
def test_parent_directory_escape(pytester: pytest.Pytester) -> None:
    experiment = write_experiment(
        pytester.path, test_yaml={"task": {"prompt_file": "../secret.md"}}
    )
    (pytester.path / "secret.md").write_text("outside")
    assert_error(
        collect_errors(pytester, experiment), "task.prompt_file", "leaves the experiment directory"
    )


@pytest.mark.slow
def test_absolute_path(pytester: pytest.Pytester) -> None:
    experiment = write_experiment(
        pytester.path, test_yaml={"validation": {"rubric_file": "/etc/passwd"}}
    )
    assert_error(
        collect_errors(pytester, experiment), "validation.rubric_file", "is an absolute path"
    )


@pytest.mark.slow
def test_symlink_out_of_the_experiment(pytester: pytest.Pytester) -> None:
    outside = pytester.path / "outside.md"
    outside.write_text("criteria from elsewhere")
    experiment = write_experiment(pytester.path)
    (experiment / "expected" / "criteria.md").unlink()
    os.symlink(outside, experiment / "expected" / "criteria.md")
    assert_error(
        collect_errors(pytester, experiment),
        "validation.criteria_file",
        "outside the experiment directory (symlink)",
    )


@pytest.mark.slow
def test_source_path_symlink_out(pytester: pytest.Pytester) -> None:
    experiment = write_experiment(pytester.path, test_yaml={"source": {"path": "linked"}})
    os.symlink(pytester.path, experiment / "linked")
    assert_error(
        collect_errors(pytester, experiment), "source.path", "outside the experiment directory"
    )


def test_unknown_field_in_subtest_names_it(pytester: pytest.Pytester) -> None:
    experiment = write_experiment(pytester.path)
    (experiment / "tiers" / "T0").mkdir(parents=True)
    (experiment / "tiers" / "T0" / "09-bad.yaml").write_text(
        "name: bad\nresources:\n  claude_md:\n    blokcs: [B01]\n"
    )
    result = collect_errors(pytester, experiment)
    assert "09-bad.yaml: resources.claude_md.blokcs: unknown field" in result.stdout.str()


@pytest.mark.slow
def test_other_experiments_still_run(pytester: pytest.Pytester) -> None:
    good = write_experiment(pytester.path, "good")
    bad = write_experiment(pytester.path, "bad", test_yaml={"tiers": ["T9"]})
    result = pytester.runpytest(
        str(good),
        str(bad),
        *COMMANDS_ONLY,
        "--max-subtests",
        "1",
        "--results-dir",
        str(pytester.path / "results"),
    )
    output = result.stdout.str()
    assert "bad/test.yaml: tiers: unknown tier T9" in output
    result.assert_outcomes(
        failed=1, errors=1
    )  # nop fails the good experiment; the bad one is a collection error
    assert (pytester.path / "results" / "good" / "T0").is_dir()
    assert result.ret == pytest.ExitCode.TESTS_FAILED

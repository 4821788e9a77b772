"""The score of a run when no model judges it: the rubric's command items alone."""

from __future__ import annotations

from pytest_scylla.judges.checks import command_item_scores
from pytest_scylla.judges.consensus import commands_only_score
from pytest_scylla.records import ChecksRecord, RunRecord, ScoreRecord
from pytest_scylla.spec.load_experiment import Experiment


def commands_only_result(
    experiment: Experiment, record: RunRecord, pass_threshold: float | None
) -> ScoreRecord:
    """The score from the rubric's command items alone (LLM judging off, or nothing to judge)."""
    rubric = experiment.normalized_rubric
    checks = record.checks or ChecksRecord()
    return commands_only_score(
        rubric,
        command_item_scores(rubric, checks.rubric_commands),
        pass_threshold=experiment.pass_threshold(pass_threshold),
        grade_scale=experiment.rubric.grading.grade_scale or None,
    )

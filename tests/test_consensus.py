"""Consensus across judges: medians, N/A majority, binary majority, spread, commands only."""

from __future__ import annotations

import pytest

from pytest_scylla.judges.consensus import (
    NoJudgeSucceeded,
    build_consensus,
    commands_only_score,
    consensus_points,
    median,
)
from pytest_scylla.records import ItemJudgment, ItemScore, JudgeRecord
from pytest_scylla.spec.rubric import NormalizedItem, NormalizedRubric, Rubric

RUBRIC = Rubric.model_validate(
    {
        "categories": {
            "functional": {
                "weight": 0.6,
                "items": [
                    {"id": "F1", "check": "works", "points": 2},
                    {"id": "F2", "check": "runs", "points": 1, "command": "true"},
                    {"id": "F3", "check": "tests", "points": 1, "na_condition": "no tests"},
                ],
            },
            "quality": {
                "weight": 0.4,
                "items": [
                    {"id": "Q1", "check": "clean", "points": 1},
                    {"id": "Q2", "check": "idiomatic", "points": 2},
                ],
            },
        }
    }
).normalized()

COMMANDS = {
    "F2": ItemScore(item_id="F2", category="functional", max_points=1, achieved=1, source="command")
}


def judge(model: str, **points: float | None) -> JudgeRecord:
    return JudgeRecord(
        model=model,
        status="ok",
        items={item: ItemJudgment(achieved=value, reason="r") for item, value in points.items()},
    )


def test_median() -> None:
    assert median([3, 1, 2]) == 2
    assert median([1, 4]) == 2.5
    assert median([0, 1, 1, 2]) == 1


def test_panel_of_three_by_hand() -> None:
    judges = [
        judge("a", F1=2, F3=1, Q1=1, Q2=2),
        judge("b", F1=1, F3=None, Q1=1, Q2=1),
        judge("c", F1=1.5, F3=None, Q1=1, Q2=0.5),
    ]
    result, consensus = build_consensus(RUBRIC, COMMANDS, judges, pass_threshold=0.7)
    by_id = {item.item_id: item for item in result.items}
    assert by_id["F1"].achieved == 1.5
    assert by_id["F2"].source == "command" and by_id["F2"].achieved == 1
    assert by_id["F3"].achieved is None  # 2 of 3 say N/A
    assert by_id["Q1"].achieved == 1
    assert by_id["Q2"].achieved == 1
    # functional: (1.5 + 1) / (2 + 1), F3 N/A; quality: (1 + 1) / 3
    expected = 0.6 * (2.5 / 3) + 0.4 * (2 / 3)
    assert result.score == pytest.approx(expected)
    assert result.passed and result.grade == "B" and not result.partial
    scores = {
        "a": 0.6 * (4 / 4) + 0.4 * (3 / 3),
        "b": 0.6 * (2 / 3) + 0.4 * (2 / 3),
        "c": 0.6 * (2.5 / 3) + 0.4 * (1.5 / 3),
    }
    assert consensus.judge_scores == pytest.approx(scores)
    assert [j.score for j in judges] == pytest.approx(list(scores.values()))
    assert consensus.score_range == pytest.approx(max(scores.values()) - min(scores.values()))
    assert consensus.item_agreement == pytest.approx(1 / 4)  # only Q1 unanimous
    assert consensus.judges_used == ["a", "b", "c"] and consensus.judges_failed == []


def test_failed_judges_are_left_out() -> None:
    judges = [
        judge("a", F1=2, F3=1, Q1=1, Q2=2),
        JudgeRecord(model="b", status="failed", error="API unavailable after 6 attempts"),
    ]
    result, consensus = build_consensus(RUBRIC, COMMANDS, judges, pass_threshold=0.6)
    assert result.score == pytest.approx(1.0)
    assert consensus.judges_used == ["a"] and consensus.judges_failed == ["b"]
    assert consensus.score_range == 0.0 and consensus.item_agreement == 1.0


def test_no_ok_judge_raises() -> None:
    judges = [JudgeRecord(model="a", status="failed", error="x")]
    with pytest.raises(NoJudgeSucceeded, match="failed: a"):
        build_consensus(RUBRIC, COMMANDS, judges, pass_threshold=0.6)


def test_even_panel_takes_mean_of_middle_values() -> None:
    judges = [judge("a", F1=2, Q1=1, Q2=2), judge("b", F1=1, Q1=0, Q2=1)]
    # F3 is missing from both: unjudged, not N/A.
    result, _ = build_consensus(RUBRIC, COMMANDS, judges, pass_threshold=0.6)
    by_id = {item.item_id: item for item in result.items}
    assert by_id["F1"].achieved == 1.5 and by_id["Q1"].achieved == 0.5
    assert result.unjudged_items == ["F3"] and result.partial


def test_na_tie_is_not_na() -> None:
    item = NormalizedItem(
        id="X",
        check="c",
        points=2,
        na_condition="n",
        command=None,
        command_timeout_seconds=1,
        binary=False,
    )
    assert consensus_points(item, [None, 2.0]) == 2.0
    assert consensus_points(item, [None, None, 1.0]) is None
    assert consensus_points(item, [None, 1.0, 2.0]) == 1.5


def test_binary_majority_and_tie() -> None:
    item = NormalizedItem(
        id="B", check="c", points=1, na_condition=None, command=None, command_timeout_seconds=1,
        binary=True,
    )  # fmt: skip
    assert consensus_points(item, [1.0, 1.0, 0.0]) == 1.0
    assert consensus_points(item, [0.0, 1.0, 0.0]) == 0.0
    assert consensus_points(item, [1.0, 0.0]) == 0.0  # a tie is not a pass


def test_requirements_rubric_binary_items() -> None:
    rubric = Rubric.model_validate(
        {
            "requirements": [
                {"id": "R1", "description": "a", "weight": 3, "evaluation": "binary"},
                {"id": "R2", "description": "b", "weight": 1, "evaluation": "scaled"},
            ]
        }
    ).normalized()
    judges = [judge("a", R1=1, R2=0.5), judge("b", R1=1, R2=1), judge("c", R1=0, R2=0)]
    result, consensus = build_consensus(rubric, {}, judges, pass_threshold=0.6)
    assert result.score == pytest.approx(0.75 * 1 + 0.25 * 0.5)
    assert consensus.item_agreement == 0.0


def test_grade_scale_is_passed_through() -> None:
    judges = [judge("a", F1=2, F3=1, Q1=1, Q2=2)]
    result, _ = build_consensus(
        RUBRIC, COMMANDS, judges, pass_threshold=0.6, grade_scale={"top": 0.9, "rest": 0.0}
    )
    assert result.grade == "top"


def test_commands_only_score() -> None:
    result = commands_only_score(RUBRIC, COMMANDS, 0.6)
    assert result.unjudged_items == ["F1", "F3", "Q1", "Q2"]
    assert result.partial
    assert result.score == 1.0  # the only scored item passed
    assert result.category_scores == {"functional": 1.0, "quality": None}
    failing = {"F2": COMMANDS["F2"].model_copy(update={"achieved": 0.0})}
    assert not commands_only_score(RUBRIC, failing, 0.6).passed


def test_unused_rubric_is_fine() -> None:
    empty = NormalizedRubric(categories=RUBRIC.categories[:1])
    result = commands_only_score(empty, {}, 0.6)
    assert result.score == 0.0 and result.partial


def test_a_judges_own_score_keeps_command_items_and_their_unjudged_ones() -> None:
    """A command item decides its item for every judge; one whose command could not say
    (source "unjudged") stays unjudged for every judge too, whatever a judge wrote for it."""
    unjudged_command = {
        "F2": ItemScore(
            item_id="F2", category="functional", max_points=1, achieved=None, source="unjudged"
        )
    }
    judges = [judge("a", F1=2, F2=0, F3=1, Q1=1, Q2=2), judge("b", F1=0, F2=1, Q1=0, Q2=0)]
    result, consensus = build_consensus(RUBRIC, unjudged_command, judges, pass_threshold=0.5)
    assert result.unjudged_items == ["F2"] and result.partial
    # a: functional (2 + 1) / (2 + 1), quality 3 / 3; b: F3 not judged, functional 0 / 2.
    assert consensus.judge_scores == pytest.approx({"a": 1.0, "b": 0.0})
    overridden, scores = build_consensus(RUBRIC, COMMANDS, judges, pass_threshold=0.5)
    # With F2 from its command (1 of 1): b's functional is (0 + 1) / (2 + 1).
    assert scores.judge_scores == pytest.approx({"a": 1.0, "b": 0.6 * (1 / 3)})
    assert overridden.items[1].source == "command"

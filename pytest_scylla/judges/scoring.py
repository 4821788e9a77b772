"""From per-item points to a run's score, grade and pass: always computed here, never by a model.

Per category: achieved / max over applicable (non-N/A) items. Run score: weighted mean over
categories, with weights re-normalized over the categories that have applicable items.
"""

from __future__ import annotations

from collections.abc import Mapping

from pytest_scylla.records import ItemScore, ScoreRecord
from pytest_scylla.spec.rubric import NormalizedRubric

DEFAULT_GRADE_SCALE: dict[str, float] = {
    "S": 1.0,
    "A": 0.80,
    "B": 0.60,
    "C": 0.40,
    "D": 0.20,
    "F": 0.0,
}
# Floating point sums of exact fractions land a hair below 1.0 or a threshold.
EPSILON = 1e-9


def grade_for(score: float, scale: Mapping[str, float] | None = None) -> str:
    ordered = sorted(
        (scale or DEFAULT_GRADE_SCALE).items(), key=lambda entry: entry[1], reverse=True
    )
    for grade, minimum in ordered:
        if score + EPSILON >= minimum:
            return grade
    return ordered[-1][0]


def weighted_score(
    rubric: NormalizedRubric, achieved: Mapping[str, float | None]
) -> tuple[float, dict[str, float | None]]:
    """(run score, score per category) from the achieved points of the judged items (None:
    N/A); an item missing from `achieved` is unjudged and, like N/A, counts nowhere."""
    category_scores: dict[str, float | None] = {}
    weighted_sum = 0.0
    weight_total = 0.0
    for category in rubric.categories:
        achieved_total = 0.0
        max_total = 0.0
        for item in category.items:
            points = achieved.get(item.id)
            if points is None:  # N/A or unjudged
                continue
            achieved_total += min(max(points, 0.0), item.points)
            max_total += item.points
        if max_total > 0:
            category_score = achieved_total / max_total
            category_scores[category.name] = category_score
            weighted_sum += category.weight * category_score
            weight_total += category.weight
        else:
            category_scores[category.name] = None
    score = weighted_sum / weight_total if weight_total > 0 else 0.0
    return min(max(score, 0.0), 1.0), category_scores


def score_items(
    rubric: NormalizedRubric,
    items: Mapping[str, ItemScore],
    *,
    pass_threshold: float,
    grade_scale: Mapping[str, float] | None = None,
) -> ScoreRecord:
    """Score a run from one ItemScore per rubric item (missing ones count as unjudged)."""
    ordered_items: list[ItemScore] = []
    unjudged: list[str] = []
    achieved: dict[str, float | None] = {}
    for category in rubric.categories:
        for item in category.items:
            item_score = items.get(item.id) or ItemScore(
                item_id=item.id,
                category=category.name,
                max_points=item.points,
                achieved=None,
                source="unjudged",
            )
            ordered_items.append(item_score)
            if item_score.source == "unjudged":
                unjudged.append(item.id)
            else:
                achieved[item.id] = item_score.achieved
    score, category_scores = weighted_score(rubric, achieved)
    return ScoreRecord(
        score=score,
        grade=grade_for(score, grade_scale),
        passed=score + EPSILON >= pass_threshold,
        pass_threshold=pass_threshold,
        category_scores=category_scores,
        items=ordered_items,
        unjudged_items=unjudged,
        partial=bool(unjudged),
    )

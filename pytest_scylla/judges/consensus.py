"""From a panel of judgments to one consensus per item, and the run's score from those.

Rules (only judges with status "ok" take part):
- N/A: an item is N/A when more than half of the judges say N/A. A tie (even panel, half
  N/A) is not N/A: the item is scored from the judges that gave points, because an item
  that half the panel found applicable should not silently drop out of the score.
- Scaled items: the median of the points given (odd panels pick the middle judge; even
  panels take the mean of the two middle values).
- Binary items: majority of the votes; a tie gives 0, since a requirement that no
  majority found met is not met (and half points would be meaningless for binary items).
- The run's score is `score_items` over consensus + command items: never a mean of judge
  scores. Each judge's own score (same function, its own items) is kept for the spread.

No ok judge at all raises `NoJudgeSucceeded`: the caller marks the run as an error
(stage "judge") so a later session re-judges it.
"""

from __future__ import annotations

from collections.abc import Mapping
from statistics import median

from pytest_scylla.judges.scoring import score_items, weighted_score
from pytest_scylla.records import (
    ConsensusRecord,
    ItemJudgment,
    ItemScore,
    JudgeRecord,
    ScoreRecord,
)
from pytest_scylla.spec.rubric import NormalizedItem, NormalizedRubric

SAME_VALUE_TOLERANCE = 1e-9


class NoJudgeSucceeded(Exception):
    def __init__(self, judges_failed: list[str]) -> None:
        names = ", ".join(judges_failed) or "none configured"
        super().__init__(f"no judge produced a valid judgment (failed: {names})")
        self.judges_failed = judges_failed


def _format(value: float | None) -> str:
    return "N/A" if value is None else f"{value:g}"


def consensus_points(item: NormalizedItem, votes: list[float | None]) -> float | None:
    """The consensus achieved points for one item from the judges' votes (None = N/A)."""
    na_votes = sum(vote is None for vote in votes)
    if na_votes * 2 > len(votes):
        return None
    points = [vote for vote in votes if vote is not None]
    if item.binary:
        full = sum(vote >= item.points - SAME_VALUE_TOLERANCE for vote in points)
        return item.points if full * 2 > len(points) else 0.0
    return median(points)


def _same(values: list[float | None]) -> bool:
    first = values[0]
    if first is None:
        return all(value is None for value in values)
    return all(value is not None and abs(value - first) <= SAME_VALUE_TOLERANCE for value in values)


def _judge_points(
    rubric: NormalizedRubric,
    judged: Mapping[str, ItemJudgment],
    command_items: Mapping[str, ItemScore],
) -> dict[str, float | None]:
    """One judge's achieved points per item it judged, beside the command items' points
    (which no judge overrides); unjudged items are left out, as score_items leaves them."""
    points = {
        item.id: judged[item.id].achieved
        for category in rubric.categories
        for item in category.items
        if item.id in judged and item.id not in command_items
    }
    points.update(
        (item_id, item.achieved)
        for item_id, item in command_items.items()
        if item.source != "unjudged"
    )
    return points


def build_consensus(
    rubric: NormalizedRubric,
    command_items: Mapping[str, ItemScore],
    judges: list[JudgeRecord],
    *,
    pass_threshold: float,
    grade_scale: Mapping[str, float] | None = None,
) -> tuple[ScoreRecord, ConsensusRecord]:
    """Consensus score of a run; sets `score` on every ok JudgeRecord (its own score)."""
    ok = [judge for judge in judges if judge.status == "ok"]
    failed = [judge.model for judge in judges if judge.status != "ok"]
    if not ok:
        raise NoJudgeSucceeded(failed)

    consensus: dict[str, ItemScore] = dict(command_items)
    agreeing = 0
    judged_count = 0
    for category in rubric.categories:
        for item in category.items:
            if item.id in command_items:
                continue
            voters = [judge for judge in ok if item.id in judge.items]
            if not voters:
                continue  # left to score_items as unjudged
            votes = [judge.items[item.id].achieved for judge in voters]
            judged_count += 1
            agreeing += _same(votes)
            value = consensus_points(item, votes)
            summary = ", ".join(
                f"{judge.model}={_format(vote)}" for judge, vote in zip(voters, votes, strict=True)
            )
            consensus[item.id] = ItemScore(
                item_id=item.id,
                category=category.name,
                max_points=item.points,
                achieved=value,
                source="judges",
                reason=f"consensus {_format(value)} from {len(voters)} judges ({summary})",
            )

    result = score_items(rubric, consensus, pass_threshold=pass_threshold, grade_scale=grade_scale)
    judge_scores: dict[str, float] = {}
    for judge in ok:
        # Only its score: the same arithmetic as the consensus, without a record per item.
        own_score, _ = weighted_score(rubric, _judge_points(rubric, judge.items, command_items))
        judge.score = own_score
        judge_scores[judge.model] = own_score
    record = ConsensusRecord(
        judges_used=[judge.model for judge in ok],
        judges_failed=failed,
        judge_scores=judge_scores,
        score_range=max(judge_scores.values()) - min(judge_scores.values()),
        item_agreement=agreeing / judged_count if judged_count else None,
    )
    return result, record


def commands_only_score(
    rubric: NormalizedRubric,
    command_items: Mapping[str, ItemScore],
    pass_threshold: float,
    grade_scale: Mapping[str, float] | None = None,
) -> ScoreRecord:
    """`--judge-model none`: items without a command stay "unjudged" and the score covers
    the command items only (ScoreRecord.partial says so whenever an item was left out)."""
    return score_items(
        rubric, command_items, pass_threshold=pass_threshold, grade_scale=grade_scale
    )

"""Parts of an aggregate beyond pass rate and score: spend, criteria, judges and agreement.

Unknown is never zero here: an agent that reports no cost (the command and oracle agents)
has its runs left out of the cost means and counted (`cost_known`), so a report prints "n/a"
instead of "$0.0000"; the same for tokens.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field

from pytest_scylla.records import RunRecord, TokenUsage
from pytest_scylla.stats import Interval, JudgeAgreement, cost_of_pass_interval, krippendorff_alpha
from pytest_scylla.stats._common import percentile_bounds, resampled_sums
from pytest_scylla.stats.intervals import flagged

#: Seed of every bootstrap and permutation in the aggregates: regenerating gives the same bytes.
SEED = 0
#: Resamples of every bootstrap and permutation test unless a comment says otherwise.
RESAMPLES = 10_000
#: Judge agreement resamples items; above this many drawn item indices (items x resamples) it
#: uses fewer resamples (never below MIN_AGREEMENT_RESAMPLES), and its interval says how many.
AGREEMENT_DRAW_BUDGET = 20_000_000
MIN_AGREEMENT_RESAMPLES = 1_000
TOKEN_KINDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)


def cost_known(record: RunRecord) -> bool:
    """Whether the agent reported its spend (the command and oracle agents do not)."""
    return record.agent is not None and record.agent.cost_usd is not None


def tokens_known(record: RunRecord) -> bool:
    return record.agent is not None and bool(record.agent.tokens_by_model)


def run_token_counts(record: RunRecord) -> tuple[int, int, int, int]:
    """Agent tokens over every attempt of the run, by kind (TOKEN_KINDS order).

    Plain sums: adding TokenUsage models validates a new model per addition, which was a
    tenth of a 10,000-run aggregate.
    """
    usages = list(record.agent.tokens_by_model.values()) if record.agent else []
    usages += [attempt.tokens for attempt in record.attempts]
    fresh = output = creation = read = 0
    for usage in usages:
        fresh += usage.input_tokens
        output += usage.output_tokens
        creation += usage.cache_creation_input_tokens
        read += usage.cache_read_input_tokens
    return (fresh, output, creation, read)


def run_tokens(record: RunRecord) -> TokenUsage:
    """Agent tokens over every attempt of the run."""
    return TokenUsage(**dict(zip(TOKEN_KINDS, run_token_counts(record), strict=True)))


class CostSummary(BaseModel):
    """Agent spend and tokens of judged runs, over the runs whose agent reported them."""

    runs: int = Field(description="judged runs")
    cost_known: int = Field(description="of them, runs whose agent reported its cost")
    mean_cost: float | None = Field(description="over cost_known runs, every attempt's spend")
    total_cost: float | None
    cost_of_pass: Interval | None = Field(
        description="mean cost / pass rate over the cost_known runs, bootstrap over whole "
        "sub-tests (tiers with two or more) or runs (unit says which); estimate and high may be "
        "infinite (nothing passed); None without a known cost, and at the experiment level"
    )
    tokens_known: int
    mean_tokens: float | None
    mean_tokens_by_kind: dict[str, float] = Field(default_factory=dict)


def cost_of_pass_by_clusters(
    clusters: Sequence[Sequence[RunRecord]], seed: int = SEED
) -> Interval | None:
    """Cost-of-Pass (total cost / passes over the priced runs) with a percentile bootstrap
    over whole sub-tests, as the tier's other intervals resample; None without a priced run.

    Resampling 10 sub-tests instead of 3,000 runs is also what keeps a 10,000-run regenerate
    fast: one draw per cluster, not per run.
    """
    sums = []
    for cluster in clusters:
        priced = [record for record in cluster if cost_known(record)]
        if priced:
            sums.append(
                (
                    math.fsum(record.total_agent_cost_usd for record in priced),
                    float(sum(record.outcome == "passed" for record in priced)),
                )
            )
    if not sums:
        return None
    table = np.array(sums)
    cost, passes = resampled_sums(table, RESAMPLES, seed).T
    with np.errstate(divide="ignore", invalid="ignore"):
        estimates = np.where(passes > 0, cost / passes, math.inf)
    low, high = percentile_bounds(estimates, 0.95)
    total_cost, passes = table.sum(axis=0)
    interval = Interval(
        estimate=float(total_cost / passes) if passes else math.inf,
        low=low,
        high=high,
        confidence=0.95,
        method="cluster percentile bootstrap (whole sub-tests, runs kept)",
        unit="subtest",
        resamples=RESAMPLES,
    )
    return flagged(interval, len(sums))


def cost_summary(
    judged: Sequence[RunRecord],
    clusters: Sequence[Sequence[RunRecord]] | None = None,
    *,
    interval: bool = True,
    seed: int = SEED,
) -> CostSummary:
    """Spend and tokens of the judged runs. Cost-of-Pass: bootstrap over whole sub-tests when
    `clusters` holds two or more, else over runs; none at all with interval=False."""
    priced = [record for record in judged if cost_known(record)]
    costs = [record.total_agent_cost_usd for record in priced]
    counted = [record for record in judged if tokens_known(record)]
    usages = [run_token_counts(record) for record in counted]
    cost_of_pass = None
    if costs and interval:
        if clusters is not None and sum(1 for c in clusters if c) >= 2:
            cost_of_pass = cost_of_pass_by_clusters(clusters, seed)
        else:
            passed = [r.outcome == "passed" for r in priced]
            cost_of_pass = cost_of_pass_interval(costs, passed, resamples=RESAMPLES, seed=seed)
    return CostSummary(
        runs=len(judged),
        cost_known=len(priced),
        mean_cost=statistics.fmean(costs) if costs else None,
        total_cost=math.fsum(costs) if costs else None,
        cost_of_pass=cost_of_pass,
        tokens_known=len(counted),
        mean_tokens=statistics.fmean(sum(usage) for usage in usages) if usages else None,
        mean_tokens_by_kind={
            kind: statistics.fmean(usage[index] for usage in usages)
            for index, kind in enumerate(TOKEN_KINDS)
        }
        if usages
        else {},
    )


class Achievement(BaseModel):
    """Mean achieved points as a fraction of the maximum, over the runs that scored it."""

    category: str
    mean: float | None
    runs: int = Field(description="runs where it applied (N/A and unjudged left out)")


def criteria_means(
    judged: Sequence[RunRecord],
) -> tuple[dict[str, Achievement], dict[str, Achievement]]:
    """(per category, per rubric item), in rubric order as the records list them."""
    categories: dict[str, list[float]] = {}
    items: dict[str, tuple[str, list[float]]] = {}
    for record in judged:
        if record.result is None:
            continue
        for name, value in record.result.category_scores.items():
            bucket = categories.setdefault(name, [])
            if value is not None:
                bucket.append(value)
        for item in record.result.items:
            _, bucket = items.setdefault(item.item_id, (item.category, []))
            if item.achieved is not None and item.max_points > 0:
                bucket.append(min(max(item.achieved / item.max_points, 0.0), 1.0))

    def mean(values: list[float]) -> float | None:
        return statistics.fmean(values) if values else None

    return (
        {
            name: Achievement(category=name, mean=mean(values), runs=len(values))
            for name, values in categories.items()
        },
        {
            item_id: Achievement(category=category, mean=mean(values), runs=len(values))
            for item_id, (category, values) in items.items()
        },
    )


class JudgeSummary(BaseModel):
    """One judge model over the runs it was asked about."""

    asked: int = Field(description="runs this judge was asked about (cached answers included)")
    failed: int = Field(description="runs it gave no usable answer for")
    mean_score: float | None = Field(description="its own score, over the runs it answered")


def judge_summaries(runs: Sequence[RunRecord]) -> dict[str, JudgeSummary]:
    scores: dict[str, list[float]] = {}
    asked: dict[str, int] = {}
    failed: dict[str, int] = {}
    for record in runs:
        for judge in record.judges:
            asked[judge.model] = asked.get(judge.model, 0) + 1
            bucket = scores.setdefault(judge.model, [])
            if judge.status == "failed":
                failed[judge.model] = failed.get(judge.model, 0) + 1
            elif judge.score is not None:
                bucket.append(judge.score)
    return {
        model: JudgeSummary(
            asked=asked[model],
            failed=failed.get(model, 0),
            mean_score=statistics.fmean(scores[model]) if scores[model] else None,
        )
        for model in sorted(asked)
    }


def agreement_resamples(items: int) -> int:
    """Resamples for the agreement bootstrap: RESAMPLES, fewer only beyond the draw budget."""
    if items == 0:
        return RESAMPLES
    return max(MIN_AGREEMENT_RESAMPLES, min(RESAMPLES, AGREEMENT_DRAW_BUDGET // items))


def judge_agreement(runs: Sequence[RunRecord], seed: int = SEED) -> JudgeAgreement | None:
    """Krippendorff's alpha (interval) over the LLM-judged item scores of every run.

    An item is one rubric item of one run; its values are the judges' achieved points as a
    fraction of the item's maximum (N/A and failed judges are missing). None with fewer than
    two judges in any run.
    """
    models = sorted({judge.model for record in runs for judge in record.judges})
    if len(models) < 2:
        return None
    row = {model: index for index, model in enumerate(models)}
    columns: list[list[float | None]] = []
    for record in runs:
        if record.result is None:
            continue
        maxima = {item.item_id: item.max_points for item in record.result.items}
        answers = [judge for judge in record.judges if judge.status == "ok"]
        judged_items = sorted({item_id for judge in answers for item_id in judge.items})
        for item_id in judged_items:
            maximum = maxima.get(item_id)
            if not maximum:
                continue
            column: list[float | None] = [None] * len(models)
            for judge in answers:
                verdict = judge.items.get(item_id)
                if verdict is not None and verdict.achieved is not None:
                    column[row[judge.model]] = verdict.achieved / maximum
            columns.append(column)
    if not columns:
        return None
    ratings = [[column[index] for column in columns] for index in range(len(models))]
    return krippendorff_alpha(ratings, resamples=agreement_resamples(len(columns)), seed=seed)

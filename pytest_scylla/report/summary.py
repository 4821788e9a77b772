"""A summary across experiments (tasks): `summary.md` and `summary.json` at the results root.

Written when a session aggregated several experiments (a session over several tasks, or a
regenerate of a whole results tree). Tiers are compared over tasks, not runs: each task
gives one value per tier (its mean score), and the paired Wilcoxon signed-rank test asks
whether the later tier is higher on the same tasks. Runs of one task are not independent
evidence about other tasks, so pooling runs across tasks would overstate the evidence.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping

from pydantic import BaseModel, Field

from pytest_scylla.aggregate import ExperimentResult
from pytest_scylla.report.markdown import escape_markdown, markdown_table
from pytest_scylla.report.tables import NOT_AVAILABLE, Table, fmt_p, fmt_percent, fmt_score
from pytest_scylla.stats import ALPHA, SignedRankResult, holm_correction, signed_rank_test
from pytest_scylla.stats.tier_tests import comparison_pairs

SUMMARY_FILES = ("summary.md", "summary.json")
#: Below this many tasks with both tiers a paired comparison is shown but never significant.
MIN_TASKS = 5


class TaskTier(BaseModel):
    judged: int
    errors: int
    pass_rate: float | None
    mean_score: float | None


class PairedComparison(BaseModel):
    """Later tier (b) vs earlier tier (a) over the tasks that have judged runs in both."""

    group_a: str
    group_b: str
    tasks: list[str]
    mean_difference: float = Field(description="mean over tasks of b's minus a's mean score")
    test: SignedRankResult
    p_adjusted: float = Field(description="Holm over every row of the summary")
    significant: bool
    note: str | None = None


class CrossExperimentSummary(BaseModel):
    experiments: list[str]
    tiers: list[str]
    by_task: dict[str, dict[str, TaskTier]] = Field(description="experiment -> tier -> figures")
    comparisons: list[PairedComparison]
    alpha: float = ALPHA
    minimum_tasks: int = MIN_TASKS


def summarize_experiments(results: Mapping[str, ExperimentResult]) -> CrossExperimentSummary:
    experiments = sorted(results)
    tiers = sorted({tier for result in results.values() for tier in result.tiers})
    by_task = {
        experiment: {
            tier_id: TaskTier(
                judged=tier.counts.judged,
                errors=tier.counts.error,
                pass_rate=tier.stats.pass_rate,
                mean_score=tier.stats.mean_score,
            )
            for tier_id, tier in results[experiment].tiers.items()
        }
        for experiment in experiments
    }

    def paired(a: str, b: str) -> list[str]:
        return [
            experiment
            for experiment in experiments
            if by_task[experiment].get(a) is not None
            and by_task[experiment].get(b) is not None
            and by_task[experiment][a].mean_score is not None
            and by_task[experiment][b].mean_score is not None
        ]

    has_runs = [any(by_task[e].get(t) and by_task[e][t].judged for e in experiments) for t in tiers]
    rows: list[tuple[str, str, list[str]]] = []
    for i, j in comparison_pairs(tiers, has_runs) if tiers else []:
        tasks = paired(tiers[i], tiers[j])
        if tasks:
            rows.append((tiers[i], tiers[j], tasks))
    tests = []
    for a, b, tasks in rows:
        later = [by_task[e][b].mean_score or 0.0 for e in tasks]
        earlier = [by_task[e][a].mean_score or 0.0 for e in tasks]
        tests.append((signed_rank_test(later, earlier), later, earlier))
    adjusted = holm_correction([test.p for test, _, _ in tests])
    comparisons = []
    for (a, b, tasks), (test, later, earlier), p_adjusted in zip(
        rows, tests, adjusted, strict=True
    ):
        few = len(tasks) < MIN_TASKS
        comparisons.append(
            PairedComparison(
                group_a=a,
                group_b=b,
                tasks=tasks,
                mean_difference=statistics.fmean(
                    x - y for x, y in zip(later, earlier, strict=True)
                ),
                test=test,
                p_adjusted=p_adjusted,
                significant=p_adjusted < ALPHA and not few,
                note=f"too few tasks ({len(tasks)}; at least {MIN_TASKS} needed)" if few else None,
            )
        )
    return CrossExperimentSummary(
        experiments=experiments, tiers=tiers, by_task=by_task, comparisons=comparisons
    )


SUMMARY_EXPLANATION = (
    "One value per task and tier: the tier's mean score over its judged runs. Each tier is "
    "compared with the nearest earlier tier and with the first tier over the tasks that have "
    "judged runs in both: two-sided Wilcoxon signed-rank test on the paired task means "
    "(exact p; zero differences dropped), Holm-adjusted over all rows; significant means "
    f"adjusted p < {ALPHA} with at least {MIN_TASKS} tasks."
)


def _cell(figures: TaskTier | None) -> str:
    if figures is None:
        return "-"
    if figures.judged == 0:
        return f"no judged runs ({figures.errors} errors)"
    return (
        f"{fmt_percent(figures.pass_rate)} pass, score {fmt_score(figures.mean_score)} "
        f"({figures.judged} runs, {figures.errors} errors)"
    )


def render_summary_markdown(summary: CrossExperimentSummary) -> str:
    tasks = Table(
        ["Experiment", *summary.tiers],
        [
            [experiment, *(_cell(summary.by_task[experiment].get(t)) for t in summary.tiers)]
            for experiment in summary.experiments
        ],
    )
    comparisons = Table(
        [
            "Comparison",
            "Tasks",
            "Mean score difference",
            "W",
            "p",
            "Holm p",
            "Significant",
            "Notes",
        ],
        [
            [
                f"{c.group_b} vs {c.group_a}",
                str(len(c.tasks)),
                f"{c.mean_difference:+.3f}",
                f"{c.test.statistic:g}",
                f"{fmt_p(c.test.p)} ({c.test.method})",
                fmt_p(c.p_adjusted),
                "yes" if c.significant else "no",
                c.note or "",
            ]
            for c in summary.comparisons
        ],
    )
    parts = [
        "# Summary across experiments",
        "",
        f"- Experiments: {escape_markdown(', '.join(summary.experiments))}",
        "",
        "## Tiers by task",
        "",
        markdown_table(tasks),
        "",
        "## Tier comparisons over tasks",
        "",
        markdown_table(comparisons) if comparisons.rows else NOT_AVAILABLE,
        "",
        SUMMARY_EXPLANATION,
    ]
    return "\n".join(parts) + "\n"


def summary_files(results: Mapping[str, ExperimentResult]) -> dict[str, str]:
    """File name -> text, for the results root."""
    summary = summarize_experiments(results)
    return {
        "summary.md": render_summary_markdown(summary),
        "summary.json": summary.model_dump_json(indent=2) + "\n",
    }

"""The report's tables and header lines as plain text, shared by the Markdown and HTML renderers.

Building the rows once keeps both reports showing the same numbers with the same wording;
each renderer only decides how to escape and lay them out. Display rules (issue 12 item 6):
unknown prints "n/a" with the count it is over; an interval over fewer than 5 units carries
"†" and a note; a constant or one-unit interval is not printed as an interval; bootstrap
figures get three significant digits, what 10,000 resamples support.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from pytest_scylla.aggregate import (
    CostSummary,
    ExperimentResult,
    OutcomeCounts,
    SubTestResult,
    TierResult,
)
from pytest_scylla.aggregate_details import TOKEN_KINDS, Achievement
from pytest_scylla.report.build import TIER_NAMES, judge_mode_text
from pytest_scylla.report.model import ReportInput
from pytest_scylla.stats import Interval, SummaryStats, wilson_interval
from pytest_scylla.stats.intervals import SMALL_SAMPLE_NOTE

NOT_AVAILABLE = "n/a"
INFINITE_COST_OF_PASS = "∞ (no passes)"
SMALL = "†"
SMALL_NOTE = f"{SMALL} {SMALL_SAMPLE_NOTE}."


@dataclass(frozen=True)
class Table:
    """A table of text cells; every row has one cell per header; notes print under it."""

    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


# --- value formatting -----------------------------------------------------------------------


def fmt_percent(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else f"{value * 100:.1f}%"


def fmt_score(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else f"{value:.3f}"


def fmt_usd(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else f"${value:.4f}"


def fmt_usd3(value: float) -> str:
    """Three significant digits (trailing zeros kept): a bootstrap figure supports no more."""
    if math.isinf(value):
        return "∞"
    return f"${value:#.3g}"


def fmt_count(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else f"{value:,.0f}"


def fmt_seconds(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else f"{value:.1f} s"


def fmt_p(value: float | None) -> str:
    if value is None:
        return NOT_AVAILABLE
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def fmt_signed(value: float) -> str:
    return "0.000" if abs(value) < 0.0005 else f"{value:+.3f}"


def _bound(value: float, show: Callable[[float], str]) -> str:
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return show(value)


def fmt_interval(interval: Interval | None, show: Callable[[float], str] = fmt_score) -> str:
    """`estimate [low, high]`, "†" when its units are few; a degenerate interval (one unit,
    constant values, every resample equal) shows the estimate alone and says so."""
    if interval is None:
        return NOT_AVAILABLE
    estimate = _bound(interval.estimate, show)
    if interval.low == interval.high:
        return f"{estimate} (no interval: every resample equal)"
    if math.isinf(interval.low) and math.isinf(interval.high):
        return f"{estimate} (no interval: too few runs)"
    text = f"{estimate} [{_bound(interval.low, show)}, {_bound(interval.high, show)}]"
    return text + f" {SMALL}" if interval.small_sample else text


def interval_unit(interval: Interval | None, subtests: int) -> str:
    """What a tier interval resampled: whole sub-tests, or the runs of its only sub-test."""
    if interval is None:
        return NOT_AVAILABLE
    if interval.unit == "subtest":
        return f"sub-tests ({subtests})"
    return "runs (1 sub-test)"


def fmt_wilson(summary: SummaryStats) -> str:
    """Run-level pass rate with its Wilson interval (meaningful from one run on)."""
    if summary.n == 0:
        return NOT_AVAILABLE
    low, high = wilson_interval(summary.passes, summary.n)
    text = f"{fmt_percent(summary.pass_rate)} [{fmt_percent(low)}, {fmt_percent(high)}]"
    return text + f" {SMALL}" if summary.n < 5 else text


def fmt_cost_of_pass(cost: CostSummary | None) -> str:
    # An infinite Cost-of-Pass is a finding (nothing passed), not missing data: say so.
    if cost is None or cost.cost_of_pass is None:
        return NOT_AVAILABLE
    interval = cost.cost_of_pass
    if math.isinf(interval.estimate):
        return INFINITE_COST_OF_PASS
    return fmt_interval(interval, fmt_usd3)


def fmt_known(value: str, known: int, runs: int) -> str:
    """A mean over the runs that reported it: says how many when not all did."""
    if known == 0:
        return NOT_AVAILABLE
    return value if known == runs else f"{value} ({known} of {runs} runs)"


def fmt_mean_cost(cost: CostSummary | None) -> str:
    if cost is None:
        return NOT_AVAILABLE
    return fmt_known(fmt_usd(cost.mean_cost), cost.cost_known, cost.runs)


def fmt_mean_tokens(cost: CostSummary | None) -> str:
    if cost is None:
        return NOT_AVAILABLE
    return fmt_known(fmt_count(cost.mean_tokens), cost.tokens_known, cost.runs)


def fmt_ks(values: dict[int, float]) -> str:
    if not values:
        return NOT_AVAILABLE
    return ", ".join(f"{k}: {fmt_percent(v)}" for k, v in sorted(values.items()))


def fmt_counts(counts: OutcomeCounts) -> str:
    """Passed / failed / timed out / errors; timed-out runs are among passed and failed."""
    return f"{counts.passed} / {counts.failed} / {counts.timed_out} / {counts.error}"


def fmt_executions(counts: OutcomeCounts) -> str:
    """Runs plus earlier attempts kept (runs executed again): what was paid for."""
    total = counts.total + counts.earlier_attempts
    return (
        f"{total} ({counts.earlier_attempts} repeated)" if counts.earlier_attempts else str(total)
    )


def tier_label(tier_id: str) -> str:
    name = TIER_NAMES.get(tier_id)
    return f"{tier_id} {name}" if name else tier_id


def _list(values: list[str]) -> str:
    return ", ".join(values) if values else NOT_AVAILABLE


# --- header ---------------------------------------------------------------------------------


def header_lines(report: ReportInput) -> list[tuple[str, str]]:
    """(label, text) pairs under the title: what was measured, by whom, and how."""
    result = report.result
    settings = result.settings
    models = ", ".join(settings.models) or "not recorded"
    panels = "; ".join(", ".join(panel) for panel in settings.judge_panels) or "none"
    lines = [
        ("Experiment", result.experiment_id),
        ("Agent", f"{_list(settings.agents)} (model: {models})"),
        ("Judged by", f"{judge_mode_text(result)}; judge models: {panels}"),
        ("Pass threshold", _list(settings.pass_thresholds)),
        ("Sandbox", _list(settings.sandboxes)),
        (
            "Versions",
            f"pytest-scylla {_list(settings.plugin_versions)}; agent CLI "
            f"{_list(settings.cli_versions)}",
        ),
        (
            "Statistics",
            f"seed {result.seed}, {result.resamples:,} bootstrap and permutation "
            "resamples (judge agreement may use fewer: its interval says how many)",
        ),
        ("Runs", runs_line(result.counts)),
        ("Cost", cost_line(result)),
    ]
    attempts = attempts_line(result.counts)
    if attempts:
        lines.append(("Attempts", attempts))
    return lines


def runs_line(counts: OutcomeCounts) -> str:
    return (
        f"{counts.total} ({counts.passed} passed, {counts.failed} failed, {counts.error} "
        f"errors; {counts.timed_out} of the judged runs timed out)"
    )


def cost_line(result: ExperimentResult) -> str:
    runs = [
        run
        for tier in result.tiers.values()
        for subtest in tier.subtests.values()
        for run in subtest.runs
    ]
    unknown = sum(1 for run in runs if run.agent_cost_usd is None)
    if runs and unknown == len(runs):
        agent = "agent n/a (the agent reports no cost)"
    elif unknown:
        agent = f"agent {fmt_usd(result.agent_cost_usd)} ({unknown} runs reported no cost)"
    else:
        agent = f"agent {fmt_usd(result.agent_cost_usd)}"
    return f"{agent}, judges {fmt_usd(result.judge_cost_usd)}"


def attempts_line(counts: OutcomeCounts) -> str | None:
    """Runs executed more than once, or re-drawn on request; None when there were none."""
    if not counts.earlier_attempts and not counts.replaced_judged_runs:
        return None
    line = f"{counts.earlier_attempts} earlier attempt(s) kept, their spend included in costs"
    if counts.replaced_judged_runs:
        line += (
            f"; {counts.replaced_judged_runs} judged run(s) replaced by --scylla-rerun-failed "
            "(re-drawing only failed runs biases the pass rate upwards)"
        )
    return line


# --- tables ---------------------------------------------------------------------------------

COUNTS_HEADER = "Passed / failed / timed out / errors"


def _small_notes(rows: list[list[str]]) -> list[str]:
    return [SMALL_NOTE] if any(SMALL in cell for row in rows for cell in row) else []


def tier_table(report: ReportInput) -> Table:
    headers = [
        "Tier",
        "Runs",
        COUNTS_HEADER,
        "Executions",
        "Pass rate [95% CI]",
        "Pass rate, errors as failures [Wilson]",
        "Mean score [95% CI]",
        "Intervals resample",
        "Median score",
        "pass@k",
        "pass^k",
        "Cost-of-Pass [95% CI]",
        "Mean cost",
        "Mean tokens",
        "Best sub-test",
    ]
    rows = []
    for tier_id, tier in report.result.tiers.items():
        s = tier.stats
        sensitivity = tier.errors_as_failures
        rows.append(
            [
                tier_label(tier_id),
                str(tier.counts.total),
                fmt_counts(tier.counts),
                fmt_executions(tier.counts),
                fmt_interval(tier.pass_rate_interval, fmt_percent),
                fmt_interval(sensitivity.errors_as_failures, fmt_percent)
                if sensitivity
                else NOT_AVAILABLE,
                fmt_interval(tier.mean_score_interval),
                interval_unit(
                    tier.mean_score_interval,
                    sum(1 for sub in tier.subtests.values() if sub.stats.n),
                ),
                fmt_score(s.median_score),
                fmt_ks(s.pass_at_k),
                fmt_ks(tier.pass_hat_k),
                fmt_cost_of_pass(tier.cost),
                fmt_mean_cost(tier.cost),
                fmt_mean_tokens(tier.cost),
                tier.best_subtest or NOT_AVAILABLE,
            ]
        )
    return Table(headers, rows, _small_notes(rows))


def subtest_row(subtest_id: str, subtest: SubTestResult, best: str | None) -> list[str]:
    s = subtest.stats
    return [
        subtest_id + (" (best)" if subtest_id == best else ""),
        str(subtest.counts.total),
        fmt_counts(subtest.counts),
        fmt_wilson(s),
        fmt_interval(subtest.score_interval),
        fmt_score(s.median_score),
        fmt_score(s.score_std),
        f"{fmt_score(s.score_min)}-{fmt_score(s.score_max)}" if s.n else NOT_AVAILABLE,
        fmt_ks(s.pass_at_k),
        fmt_ks(subtest.pass_hat_k),
        fmt_cost_of_pass(subtest.cost),
        fmt_mean_cost(subtest.cost),
        fmt_mean_tokens(subtest.cost),
        fmt_seconds(s.mean_duration),
    ]


def subtest_table(tier: TierResult) -> Table:
    headers = [
        "Sub-test",
        "Runs",
        COUNTS_HEADER,
        "Pass rate [Wilson 95%]",
        "Mean score [95% CI, run bootstrap]",
        "Median score",
        "Std",
        "Min-max",
        "pass@k",
        "pass^k",
        "Cost-of-Pass [95% CI]",
        "Mean cost",
        "Mean tokens",
        "Mean duration",
    ]
    rows = [
        subtest_row(subtest_id, subtest, tier.best_subtest)
        for subtest_id, subtest in tier.subtests.items()
    ]
    return Table(headers, rows, _small_notes(rows))


def omnibus_line(result: ExperimentResult) -> str | None:
    tests = result.tier_tests
    if tests is None or tests.omnibus is None:
        return None
    k = tests.omnibus
    return (
        f"Kruskal-Wallis over {k.groups} tiers with runs ({k.n} runs): H = {k.h:.3f}, "
        f"p = {fmt_p(k.p)} ({k.method})"
    )


def _negated(interval: Interval) -> Interval:
    return interval.model_copy(
        update={"estimate": -interval.estimate, "low": -interval.high, "high": -interval.low}
    )


def comparison_table(report: ReportInput) -> Table:
    headers = [
        "Comparison",
        "Runs",
        "U",
        "p",
        "Holm p",
        "Significant",
        "Cliff's δ, later vs earlier [95% CI]",
        "Magnitude",
        "Score shift (Hodges-Lehmann) [95% CI]",
        "Pass-rate difference [Newcombe 95%]",
        "Detectable |δ| at these runs",
        "Runs per tier for the observed δ",
        "Notes",
    ]
    result = report.result
    rows: list[list[str]] = []
    if result.tier_tests is None:
        return Table(headers, rows)
    effects = {(e.group_a, e.group_b): e for e in result.effects}
    for c in result.tier_tests.comparisons:
        effect = effects.get((c.group_a, c.group_b))
        kind = " and ".join(
            label for flag, label in ((c.previous, "previous"), (c.baseline, "baseline")) if flag
        )
        rows.append(
            [
                f"{c.group_b} vs {c.group_a} ({kind})",
                f"{c.n_b} vs {c.n_a}",
                f"{c.u_statistic:g}",
                f"{fmt_p(c.p_value)} ({c.method})",
                fmt_p(c.p_adjusted),
                "yes" if c.significant else "no",
                fmt_interval(_negated(c.cliffs_delta), fmt_signed),
                c.magnitude,
                fmt_interval(effect.shift, fmt_signed) if effect else NOT_AVAILABLE,
                fmt_interval(effect.pass_rate_difference, fmt_signed) if effect else NOT_AVAILABLE,
                "none at these runs" if c.detectable_delta is None else f"{c.detectable_delta:.2f}",
                NOT_AVAILABLE if c.runs_needed is None else str(c.runs_needed),
                c.note or "",
            ]
        )
    notes = _small_notes(rows)
    tests = result.tier_tests
    if tests.empty_groups:
        notes.append(f"Tiers without judged runs, skipped: {', '.join(tests.empty_groups)}.")
    return Table(headers, rows, notes)


def criteria_table(report: ReportInput) -> Table:
    """Rows: categories, then rubric items; columns: tiers; cells: mean fraction of max."""
    tiers = report.result.tiers
    headers = ["Criterion", *tiers]
    categories: list[str] = []
    items: dict[str, str] = {}
    for tier in tiers.values():
        categories += [name for name in tier.categories if name not in categories]
        for item_id, achievement in tier.items.items():
            items.setdefault(item_id, achievement.category)
    rows = []
    for name in categories:
        rows.append(
            [f"category {name}"]
            + [_achievement(tier.categories.get(name)) for tier in tiers.values()]
        )
    for item_id, category in items.items():
        rows.append(
            [f"item {item_id} ({category})"]
            + [_achievement(tier.items.get(item_id)) for tier in tiers.values()]
        )
    return Table(headers, rows)


def _achievement(achievement: Achievement | None) -> str:
    if achievement is None or achievement.mean is None:
        return NOT_AVAILABLE
    return f"{achievement.mean * 100:.1f}% (n={achievement.runs})"


def judge_table(report: ReportInput) -> Table:
    headers = ["Judge", "Runs asked", "Failures", "Mean score"]
    rows = [
        [model, str(j.asked), str(j.failed), fmt_score(j.mean_score)]
        for model, j in report.result.judges.items()
    ]
    return Table(headers, rows)


def agreement_lines(report: ReportInput) -> list[str]:
    result = report.result
    lines = []
    agreement = result.judge_agreement
    if agreement is None:
        lines.append("Judge agreement: n/a (fewer than two judges scored the same items).")
    elif agreement.alpha is None:
        lines.append(
            f"Krippendorff's alpha: n/a (the {agreement.items} items' scores do not vary)."
        )
    else:
        interval = agreement.interval
        shown = fmt_interval(interval) if interval else fmt_score(agreement.alpha)
        resamples = f", {interval.resamples:,} resamples" if interval and interval.resamples else ""
        lines.append(
            f"Krippendorff's alpha (interval metric) on item scores: {shown} "
            f"({agreement.items} items scored by {agreement.judges} judges, bootstrap over "
            f"items{resamples})."
        )
    for tier_id, tier in result.tiers.items():
        if tier.mean_judge_score_range is not None:
            lines.append(
                f"{tier_id}: judges' score range per run (max - min of their scores) mean "
                f"{fmt_score(tier.mean_judge_score_range)}, largest "
                f"{fmt_score(tier.max_judge_score_range)}."
            )
    return lines


TOKEN_LABELS = {
    "input_tokens": "Input",
    "output_tokens": "Output",
    "cache_creation_input_tokens": "Cache write",
    "cache_read_input_tokens": "Cache read",
}


def token_table(report: ReportInput) -> Table:
    headers = ["Tier", "Runs with tokens", *(TOKEN_LABELS[kind] for kind in TOKEN_KINDS)]
    rows = []
    for tier_id, tier in report.result.tiers.items():
        cost = tier.cost
        if cost is None or not cost.mean_tokens_by_kind:
            rows.append([tier_id, "0", *([NOT_AVAILABLE] * len(TOKEN_KINDS))])
            continue
        rows.append(
            [tier_id, f"{cost.tokens_known} of {cost.runs}"]
            + [fmt_count(cost.mean_tokens_by_kind.get(kind)) for kind in TOKEN_KINDS]
        )
    return Table(headers, rows)


# Sentences both reports print as they are.
INTERVALS_NOTE = (
    "Pass rate, scores, pass@k, pass^k and Cost-of-Pass cover the judged runs: passed and "
    "failed, timed-out runs included (graded on the workspace they left). Errors (harness or "
    "API failures) are counted beside them and, in the sensitivity column, as failures. "
    "Tier intervals (Cost-of-Pass too) resample whole sub-tests when the tier has two or more, "
    "since runs are nested in them, else the runs of its one sub-test (column 'Intervals "
    "resample'); sub-test intervals resample runs, or are Wilson for pass rates. "
    "Cost-of-Pass = mean agent cost per run (every attempt's spend) / pass rate, over the "
    "runs whose agent reported a cost; unknown costs and tokens print n/a and stay out of "
    "means. pass^k: the chance that k runs all pass (pass@k: that one of k does)."
)
NOT_COUNTED_TITLE = "Not counted"
NO_SUBTESTS = "No sub-tests."
NO_COMPARISONS = "No comparisons (fewer than two tiers)."
COMPARISON_EXPLANATION = (
    "Each tier is compared with the nearest earlier tier with runs and with the first tier, "
    "on per-run scores: two-sided Mann-Whitney U with an exact p (small, untied groups) or a "
    "permutation p, Holm-adjusted over all rows; significant means adjusted p < 0.05 with at "
    "least 5 runs in both tiers. Effects read later tier minus earlier tier. Planning "
    "columns use the corrected alpha (0.05 / number of comparisons) and 80% power: the "
    "smallest |Cliff's δ| these runs could detect, and the runs per tier the observed δ would "
    "need (Noether)."
)

"""The report's tables as plain text cells, shared by the Markdown and HTML renderers.

Building the rows once keeps both reports showing the same numbers with the same wording;
each renderer only decides how to escape and lay them out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pytest_scylla.report.model import ReportInput, RunCounts, TierReport
from pytest_scylla.stats import SummaryStats, TierComparison

NOT_AVAILABLE = "n/a"
INFINITE_COST_OF_PASS = "∞ (no passes)"


@dataclass(frozen=True)
class Table:
    """A titled table of text cells; every row has one cell per header."""

    headers: list[str]
    rows: list[list[str]]


# --- value formatting -----------------------------------------------------------------------


def fmt_percent(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else f"{value * 100:.1f}%"


def fmt_score(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else f"{value:.3f}"


def fmt_interval(interval: tuple[float, float] | None, percent: bool = False) -> str:
    if interval is None:
        return NOT_AVAILABLE
    fmt = fmt_percent if percent else fmt_score
    return f"[{fmt(interval[0])}, {fmt(interval[1])}]"


def fmt_usd(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else f"${value:.4f}"


def fmt_cost_of_pass(summary: SummaryStats) -> str:
    # An infinite Cost-of-Pass is a finding (nothing passed), not missing data: say so.
    if summary.cost_of_pass is None:
        return NOT_AVAILABLE
    if math.isinf(summary.cost_of_pass):
        return INFINITE_COST_OF_PASS
    return fmt_usd(summary.cost_of_pass)


def fmt_count(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else f"{value:,.0f}"


def fmt_seconds(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else f"{value:.1f} s"


def fmt_p(value: float | None) -> str:
    if value is None:
        return NOT_AVAILABLE
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def fmt_pass_at_k(summary: SummaryStats) -> str:
    if not summary.pass_at_k:
        return NOT_AVAILABLE
    return ", ".join(f"@{k} {fmt_percent(v)}" for k, v in sorted(summary.pass_at_k.items()))


def rate_with_ci(summary: SummaryStats) -> str:
    return f"{fmt_percent(summary.pass_rate)} {fmt_interval(summary.pass_rate_ci, percent=True)}"


def run_counts(summary: SummaryStats, counts: RunCounts | None) -> RunCounts:
    """The counts, or (when a caller built the report without them) the judged runs."""
    if counts is not None:
        return counts
    return RunCounts(passed=summary.passes, failed=summary.n - summary.passes)


def fmt_counts(counts: RunCounts) -> str:
    """Passed / failed / timed out / errors; timed-out runs are among passed and failed."""
    return f"{counts.passed} / {counts.failed} / {counts.timed_out} / {counts.error}"


def fmt_runs(counts: RunCounts) -> str:
    return str(counts.passed + counts.failed + counts.error)


def score_with_ci(summary: SummaryStats) -> str:
    if summary.mean_score is None:
        return NOT_AVAILABLE
    return f"{fmt_score(summary.mean_score)} {fmt_interval(summary.mean_score_ci)}"


# --- tables ---------------------------------------------------------------------------------


def tier_table(report: ReportInput) -> Table:
    headers = [
        "Tier",
        "Runs",
        COUNTS_HEADER,
        "Pass rate [95% CI]",
        "Mean score [95% CI]",
        "Median score",
        "Cost-of-Pass",
        "Mean cost",
        "Mean tokens",
        "Best sub-test",
    ]
    rows = []
    for tier in report.tiers:
        s = tier.summary
        rows.append(
            [
                tier_label(tier),
                fmt_runs(run_counts(s, tier.counts)),
                fmt_counts(run_counts(s, tier.counts)),
                rate_with_ci(s),
                score_with_ci(s),
                fmt_score(s.median_score),
                fmt_cost_of_pass(s),
                fmt_usd(s.mean_cost),
                fmt_count(s.mean_tokens),
                tier.best_subtest or NOT_AVAILABLE,
            ]
        )
    return Table(headers, rows)


def subtest_table(tier: TierReport) -> Table:
    headers = [
        "Sub-test",
        "Runs",
        COUNTS_HEADER,
        "Pass rate [95% CI]",
        "Mean score [95% CI]",
        "Median score",
        "Std",
        "Min-max",
        "pass@k",
        "Cost-of-Pass",
        "Mean cost",
        "Mean tokens",
        "Mean duration",
    ]
    rows = []
    for subtest in tier.subtests:
        s = subtest.summary
        label = subtest.subtest_id + (f" {subtest.name}" if subtest.name else "")
        if subtest.subtest_id == tier.best_subtest:
            label += " (best)"
        rows.append(
            [
                label,
                fmt_runs(run_counts(s, subtest.counts)),
                fmt_counts(run_counts(s, subtest.counts)),
                rate_with_ci(s),
                score_with_ci(s),
                fmt_score(s.median_score),
                fmt_score(s.score_std),
                f"{fmt_score(s.score_min)}-{fmt_score(s.score_max)}" if s.n else NOT_AVAILABLE,
                fmt_pass_at_k(s),
                fmt_cost_of_pass(s),
                fmt_usd(s.mean_cost),
                fmt_count(s.mean_tokens),
                fmt_seconds(s.mean_duration),
            ]
        )
    return Table(headers, rows)


def comparison_notes(comparison: TierComparison) -> str:
    notes = []
    if comparison.note:
        notes.append(comparison.note)
    if comparison.runs_needed_for_power is None and comparison.p_value is not None:
        notes.append("no observed difference")
    elif comparison.runs_needed_for_power is not None and (comparison.power or 0.0) < 0.8:
        notes.append(f"{comparison.runs_needed_for_power} runs per tier needed for 80% power")
    return "; ".join(notes)


def comparison_table(report: ReportInput) -> Table:
    headers = [
        "Comparison",
        "Runs",
        "U",
        "p",
        "Adjusted p (Holm)",
        "Cliff's δ",
        "Magnitude",
        "Significant",
        "Power",
        "Runs for 80% power",
        "Notes",
    ]
    rows = []
    for c in report.comparisons:
        delta = NOT_AVAILABLE if c.cliffs_delta is None else f"{c.cliffs_delta:+.3f}"
        rows.append(
            [
                f"{c.group_a} vs {c.group_b}",
                f"{c.n_a} vs {c.n_b}",
                NOT_AVAILABLE if c.u_statistic is None else f"{c.u_statistic:g}",
                fmt_p(c.p_value),
                fmt_p(c.p_adjusted),
                delta,
                c.magnitude or NOT_AVAILABLE,
                "yes" if c.significant else "no",
                fmt_percent(c.power),
                NOT_AVAILABLE if c.runs_needed_for_power is None else str(c.runs_needed_for_power),
                comparison_notes(c),
            ]
        )
    return Table(headers, rows)


def tier_label(tier: TierReport) -> str:
    return f"{tier.tier_id} {tier.name}" if tier.name else tier.tier_id


def cost_line(report: ReportInput) -> str:
    total = report.agent_cost_usd + report.judge_cost_usd
    return (
        f"agent {fmt_usd(report.agent_cost_usd)}, judges {fmt_usd(report.judge_cost_usd)}, "
        f"total {fmt_usd(total)}"
    )


def attempts_line(report: ReportInput) -> str | None:
    """Runs executed more than once, or re-drawn on request; None when there were none."""
    counts = report.counts
    if not counts.earlier_attempts and not counts.replaced_judged_runs:
        return None
    line = f"{counts.earlier_attempts} earlier attempt(s) kept, their spend included in costs"
    if counts.replaced_judged_runs:
        line += (
            f"; {counts.replaced_judged_runs} judged run(s) replaced by --scylla-rerun-failed "
            "(re-drawing only failed runs biases the pass rate upwards)"
        )
    return line


# Sentences both reports print as they are.
COUNTS_HEADER = "Passed / failed / timed out / errors"
INTERVALS_NOTE = (
    "Pass rate, scores, pass@k and Cost-of-Pass cover the judged runs: passed and failed, "
    "timed-out runs included (graded on the workspace they left). Errors (harness or API "
    "failures) are counted beside them, not scored. "
    "Pass-rate intervals are Wilson 95%; score intervals are 95% bootstrap. "
    "Cost-of-Pass = mean cost per run (every attempt's spend) / pass rate."
)
NOT_COUNTED_TITLE = "Not counted"
NO_SUBTESTS = "No sub-tests."
NO_COMPARISONS = "No comparisons (fewer than two tiers)."

COMPARISON_EXPLANATION = (
    "Two-sided Mann-Whitney U tests on per-run {metric}: each tier vs the next and vs the "
    "first tier, p-values Holm-adjusted over all comparisons; significant means adjusted "
    "p < 0.05. Cliff's δ > 0 means the first tier tends to score higher (magnitude after "
    "Romano et al.). Power and runs needed (Noether's approximation) take the observed effect "
    "as the true one."
)

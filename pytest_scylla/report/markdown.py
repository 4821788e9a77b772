"""Render an experiment report as GitHub-flavoured Markdown (report.md)."""

from __future__ import annotations

from pytest_scylla.report.model import ReportInput
from pytest_scylla.report.tables import (
    COMPARISON_EXPLANATION,
    INTERVALS_NOTE,
    NO_COMPARISONS,
    NO_SUBTESTS,
    NOT_COUNTED_TITLE,
    Table,
    attempts_line,
    comparison_table,
    cost_line,
    subtest_table,
    tier_label,
    tier_table,
)


def escape_markdown(text: str) -> str:
    """Make text safe inside a Markdown table cell or heading.

    Names come from fixture files, so a `|` would break the table and raw `<`/`&` would be
    taken as HTML by renderers; newlines would end the row.
    """
    return (
        text.replace("\\", "\\\\")
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("|", "\\|")
        .replace("`", "\\`")
        .replace("*", "\\*")
        .replace("\r", " ")
        .replace("\n", " ")
    )


def markdown_table(table: Table) -> str:
    lines = [
        "| " + " | ".join(escape_markdown(h) for h in table.headers) + " |",
        "|" + "|".join(" --- " for _ in table.headers) + "|",
    ]
    lines += ["| " + " | ".join(escape_markdown(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def render_markdown(report: ReportInput) -> str:
    """The whole report: header, tier table, per-tier sub-test tables, comparisons."""
    title = escape_markdown(report.experiment_name or report.experiment_id)
    parts = [
        f"# Experiment report: {title}",
        "",
        f"- Experiment: {escape_markdown(report.experiment_id)}",
        f"- Judged by: {escape_markdown(report.judge_mode)}",
        f"- Cost: {escape_markdown(cost_line(report))}",
        f"- Generated: {report.generated_at.isoformat(timespec='seconds')}",
    ]
    attempts = attempts_line(report)
    if attempts:
        parts.append(f"- Attempts: {escape_markdown(attempts)}")
    parts += [
        "",
        "## Tiers",
        "",
        markdown_table(tier_table(report)),
        "",
        INTERVALS_NOTE,
    ]
    for tier in report.tiers:
        parts += ["", f"## {escape_markdown(tier_label(tier))}: sub-tests", ""]
        if tier.subtests:
            parts.append(markdown_table(subtest_table(tier)))
        else:
            parts.append(NO_SUBTESTS)
    parts += ["", "## Tier comparisons", ""]
    if report.comparisons:
        parts += [
            markdown_table(comparison_table(report)),
            "",
            # Our own sentence, so only the metric name (from the caller) is escaped.
            COMPARISON_EXPLANATION.format(metric=escape_markdown(report.comparison_metric)),
        ]
    else:
        parts.append(NO_COMPARISONS)
    if report.notes:
        parts += ["", f"## {NOT_COUNTED_TITLE}", ""]
        parts += [f"- {escape_markdown(note)}" for note in report.notes]
    return "\n".join(parts) + "\n"

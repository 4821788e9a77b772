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
    agreement_lines,
    comparison_table,
    criteria_table,
    header_lines,
    judge_table,
    omnibus_line,
    subtest_table,
    tier_label,
    tier_table,
    token_table,
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
    for note in table.notes:
        lines += ["", escape_markdown(note)]
    return "\n".join(lines)


def render_markdown(report: ReportInput) -> str:
    """The whole report: header, tiers, sub-tests, comparisons, criteria, judges, tokens."""
    result = report.result
    title = escape_markdown(report.experiment_name or report.experiment_id)
    parts = [f"# Experiment report: {title}", ""]
    parts += [f"- {label}: {escape_markdown(text)}" for label, text in header_lines(report)]
    parts += ["", "## Tiers", "", markdown_table(tier_table(report)), "", INTERVALS_NOTE]
    for tier_id, tier in result.tiers.items():
        parts += ["", f"## {escape_markdown(tier_label(tier_id))}: sub-tests", ""]
        parts.append(markdown_table(subtest_table(tier)) if tier.subtests else NO_SUBTESTS)
    parts += ["", "## Tier comparisons", ""]
    table = comparison_table(report)
    if table.rows:
        omnibus = omnibus_line(result)
        if omnibus:
            parts += [escape_markdown(omnibus), ""]
        parts += [markdown_table(table), "", COMPARISON_EXPLANATION]
    else:
        parts.append(NO_COMPARISONS)
    criteria = criteria_table(report)
    if criteria.rows:
        parts += ["", "## Criteria by tier (mean achieved points as a share of the maximum)", ""]
        parts.append(markdown_table(criteria))
    parts += ["", "## Judges", ""]
    judges = judge_table(report)
    if judges.rows:
        parts += [markdown_table(judges), ""]
    parts += [f"- {escape_markdown(line)}" for line in agreement_lines(report)]
    parts += ["", "## Agent tokens by kind (mean per run)", "", markdown_table(token_table(report))]
    notes = [*result.damaged_records, *result.excluded_records]
    if notes:
        parts += ["", f"## {NOT_COUNTED_TITLE}", ""]
        parts += [f"- {escape_markdown(note)}" for note in notes]
    return "\n".join(parts) + "\n"

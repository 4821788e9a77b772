"""Render an experiment report as one self-contained HTML file (report.html).

No external stylesheets, fonts, images or scripts: the file must open offline, be safe to
attach to a ticket, and show the same numbers as report.md (both use report.tables).
"""

from __future__ import annotations

from html import escape

from pytest_scylla.report.model import ReportInput
from pytest_scylla.report.plots import all_charts
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

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 0.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
.note { color: #555; font-size: 0.9em; }
"""


def _is_numeric(cell: str) -> bool:
    # Right-align cells that start like a number, so columns of values line up.
    return bool(cell) and (cell[0].isdigit() or cell[0] in "$+-<[∞")


def html_table(table: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    rows = []
    for row in table.rows:
        cells = "".join(
            f'<td class="num">{escape(c)}</td>' if _is_numeric(c) else f"<td>{escape(c)}</td>"
            for c in row
        )
        rows.append(f"<tr>{cells}</tr>")
    notes = "".join(f'<p class="note">{escape(note)}</p>' for note in table.notes)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{notes}"


def render_html(report: ReportInput) -> str:
    """The whole report as an HTML document with inline CSS and inline SVG plots."""
    result = report.result
    title = f"Experiment report: {report.experiment_name or report.experiment_id}"
    body = [f"<h1>{escape(title)}</h1>", "<ul>"]
    body += [f"<li>{escape(label)}: {escape(text)}</li>" for label, text in header_lines(report)]
    body += [
        "</ul>",
        "<h2>Tiers</h2>",
        html_table(tier_table(report)),
        f'<p class="note">{escape(INTERVALS_NOTE)}</p>',
        '<div class="plots">',
        *all_charts(result),
        "</div>",
    ]
    for tier_id, tier in result.tiers.items():
        body.append(f"<h2>{escape(tier_label(tier_id))}: sub-tests</h2>")
        body.append(
            html_table(subtest_table(tier)) if tier.subtests else f"<p>{escape(NO_SUBTESTS)}</p>"
        )
    body.append("<h2>Tier comparisons</h2>")
    table = comparison_table(report)
    if table.rows:
        omnibus = omnibus_line(result)
        if omnibus:
            body.append(f"<p>{escape(omnibus)}</p>")
        body.append(html_table(table))
        body.append(f'<p class="note">{escape(COMPARISON_EXPLANATION)}</p>')
    else:
        body.append(f"<p>{escape(NO_COMPARISONS)}</p>")
    criteria = criteria_table(report)
    if criteria.rows:
        body.append("<h2>Criteria by tier (mean achieved points as a share of the maximum)</h2>")
        body.append(html_table(criteria))
    body.append("<h2>Judges</h2>")
    judges = judge_table(report)
    if judges.rows:
        body.append(html_table(judges))
    body.append("<ul>" + "".join(f"<li>{escape(line)}</li>" for line in agreement_lines(report)))
    body.append("</ul><h2>Agent tokens by kind (mean per run)</h2>")
    body.append(html_table(token_table(report)))
    notes = [*result.damaged_records, *result.excluded_records]
    if notes:
        body.append(f"<h2>{escape(NOT_COUNTED_TITLE)}</h2><ul>")
        body += [f"<li>{escape(note)}</li>" for note in notes]
        body.append("</ul>")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )

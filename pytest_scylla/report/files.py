"""Every file written beside an experiment's aggregates: report.md, report.html and the CSVs."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_scylla.aggregate import ExperimentResult
from pytest_scylla.records import RunRecord
from pytest_scylla.report.build import report_input
from pytest_scylla.report.csv import CSV_FILES, render_csvs
from pytest_scylla.report.html import render_html
from pytest_scylla.report.markdown import render_markdown

EXPERIMENT_REPORT_FILES = ("report.md", "report.html", *CSV_FILES)


def experiment_files(
    result: ExperimentResult, records: Sequence[RunRecord], experiment_name: str = ""
) -> dict[str, str]:
    """File name -> text; a pure function of the records, so regenerating gives the same bytes."""
    report = report_input(result, experiment_name)
    return {
        "report.md": render_markdown(report),
        "report.html": render_html(report),
        **render_csvs(result, records),
    }

"""What the Markdown and HTML reports render: an experiment aggregate and its display name.

The aggregate is read from the run records (aggregate.py); the renderers never compute a
statistic, they only format what the aggregate holds, so report.md, report.html and the CSV
files show the same numbers.
"""

from __future__ import annotations

from pydantic import BaseModel

from pytest_scylla.aggregate import ExperimentResult


class ReportInput(BaseModel):
    """Everything a human report shows for one experiment (no clock: byte-identical output)."""

    result: ExperimentResult
    experiment_name: str = ""

    @property
    def experiment_id(self) -> str:
        return self.result.experiment_id

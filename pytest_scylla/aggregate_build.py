"""What an experiment's aggregates and reports are, built from its records: the controller's
CPU-heavy part of writing them (reading every record, the statistics, rendering the
reports), pure and picklable so it can also run in another process (aggregate_pipeline.py).
Writing, redaction, warnings and hooks stay with the controller."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pytest_scylla.aggregate import ExperimentResult, aggregate_experiment
from pytest_scylla.aggregate_inputs import records_fingerprint
from pytest_scylla.report.files import experiment_files
from pytest_scylla.results_layout import load_experiment_records


@dataclass
class BuiltAggregates:
    # aggregate_inputs.records_fingerprint of the record files before the build read them:
    # a build is used only while they still stamp the same.
    records: str
    result: ExperimentResult
    rendered: dict[str, str]  # file name -> text, not yet redacted
    damaged: list[str]  # "path: why" of records not counted
    cli_versions: list[str]
    fixture_sha256: list[str]


def build_aggregates(
    experiment_dir: Path, experiment_id: str, name: str, threads: int = 1
) -> BuiltAggregates:
    """`threads`: see aggregate_experiment; more than one only when the session's runs are
    over and no other process needs the cores."""
    with _collector_paused():
        return _build(experiment_dir, experiment_id, name, threads)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Reading thousands of records allocates millions of objects that all stay alive until
    the build ends, and the garbage collector's passes over them found nothing to free:
    they cost a fifth of a 2,000-run build (1.5 s against 1.25 s, benchmarks). Records hold
    no reference cycles: they are freed as ever when dropped, and the collector, back on
    after the build, finds any cycle left."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _build(experiment_dir: Path, experiment_id: str, name: str, threads: int) -> BuiltAggregates:
    records_read = records_fingerprint(experiment_dir)[0]
    loaded = load_experiment_records(experiment_dir)
    records = loaded.records
    result = aggregate_experiment(experiment_id, records, loaded.damaged, threads)
    return BuiltAggregates(
        records=records_read,
        result=result,
        rendered=experiment_files(result, records, name),
        damaged=list(loaded.damaged),
        cli_versions=sorted(
            {r.agent.cli_version for r in records if r.agent and r.agent.cli_version}
        ),
        fixture_sha256=sorted({r.fixture_sha256 for r in records if r.fixture_sha256}),
    )

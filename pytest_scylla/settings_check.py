"""Before the first run: do this session's options match the records already on disk?

A run reported from disk under other options would be relabelled with them, and a new run
pooled with old ones into one statistic (issue 11, finding 5). The check compares the
settings each selected run would get with the settings its record holds, and stops the
session with one line when they differ. Records are read as summaries (a few fields), and
the wanted settings are computed once per sub-test, not once per run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_scylla.record_summary import (
    RUN_RECORD_FILE,
    RecordSummary,
    SettingsReader,
    legacy_values,
    read_summary_or_none,
)
from pytest_scylla.run_settings import (
    COMPARED_FIELDS,
    RunSettings,
    differences,
    only_judging_differs,
    option_names,
    run_settings_for,
)

EXPERIMENT_FILE = "test.yaml"  # collect.EXPERIMENT_FILE

if TYPE_CHECKING:
    from pytest_scylla.settings import ScyllaSettings
    from pytest_scylla.spec.catalogue import ResolvedSubTest
    from pytest_scylla.spec.load_experiment import Experiment


@dataclass(frozen=True)
class PlannedRun:
    """One selected run: what the session would do for it."""

    experiment: Experiment
    subtest: ResolvedSubTest
    run_number: int

    def record_path(self, results_dir: Path) -> Path:
        # One join instead of six: this runs once per selected run, 10,000 times a session.
        experiment, subtest = self.experiment.id, self.subtest
        return results_dir / (
            f"{experiment}/{subtest.tier}/{subtest.id}/run-{self.run_number:02d}/{RUN_RECORD_FILE}"
        )


@dataclass
class Conflict:
    """The first example of each differing field, and how many records differ."""

    examples: dict[str, tuple[object, object]] = field(default_factory=dict)  # field: disk, now
    records: int = 0

    @property
    def fields(self) -> list[str]:
        return [name for name in COMPARED_FIELDS if name in self.examples]

    def message(self, results_dir: Path) -> str:
        parts: dict[str, str] = {}
        for name in self.fields:
            option = option_names([name])[0]
            on_disk, now = self.examples[name]
            # judge_mode and judge_panel share an option: the panel says more, keep one.
            parts[option] = f"{option} (on disk: {_show(on_disk)}; now: {_show(now)})"
        parts_text = "; ".join(parts.values())
        ways_out = [
            "the options the records were made with",
            "--fresh (old results are moved aside)",
        ]
        ways_out.append("another --results-dir")
        if only_judging_differs(self.fields):
            ways_out.append("--scylla-rejudge (only judging differs)")
        return (
            f"pytest-scylla: {self.records} run record(s) in {results_dir} were made with other "
            f"options: {parts_text}. Use {', '.join(ways_out[:-1])} or {ways_out[-1]}"
        )


_NODE_ID = re.compile(
    r"^(?P<file>.+?)::(?P<tier>T[0-6])::(?P<subtest>[^:\[]+)\[run-(?P<run>\d+)\]$"
)


def planned_from_node_ids(
    node_ids: Iterable[str], rootpath: Path, tiers_dir: Path | None
) -> list[PlannedRun]:
    """The runs behind xdist's collected ids (`exp/test.yaml::T0::00-empty[run-03]`): with
    xdist the controller collects nothing, so it loads the experiments itself to check."""
    from pytest_scylla.spec.load_experiment import load_experiment

    experiments: dict[str, Experiment | None] = {}
    planned: list[PlannedRun] = []
    for node_id in node_ids:
        match = _NODE_ID.match(node_id)
        if match is None or not match["file"].endswith(EXPERIMENT_FILE):
            continue
        if match["file"] not in experiments:
            try:
                experiments[match["file"]] = load_experiment(rootpath / match["file"], tiers_dir)
            except Exception:  # the workers report a malformed experiment themselves
                experiments[match["file"]] = None
        experiment = experiments[match["file"]]
        if experiment is None:
            continue
        subtests = {subtest.id: subtest for subtest in experiment.catalogue.subtests(match["tier"])}
        subtest = subtests.get(match["subtest"])
        if subtest is not None:
            planned.append(PlannedRun(experiment, subtest, int(match["run"])))
    return planned


def read_planned(
    planned: Iterable[PlannedRun], results_dir: Path
) -> list[tuple[PlannedRun, RecordSummary | None]]:
    """Each planned run with the summary of its record (None: missing or damaged)."""
    return [(run, read_summary_or_none(run.record_path(results_dir))) for run in planned]


def read_planned_settings(
    planned: Iterable[PlannedRun], results_dir: Path
) -> list[tuple[PlannedRun, RunSettings | RecordSummary | None]]:
    """Each planned run with its record's settings only: what the check needs, fast."""
    reader = SettingsReader()
    return [(run, reader.read(run.record_path(results_dir))) for run in planned]


def find_conflict(
    planned: Iterable[tuple[PlannedRun, RunSettings | RecordSummary | None]],
    settings: ScyllaSettings,
) -> Conflict | None:
    """The differences between the records of the planned runs and this session's settings."""
    wanted_by_subtest: dict[tuple[str, str, str], RunSettings] = {}
    compared: dict[tuple[tuple[str, str, str], object], dict[str, tuple[object, object]]] = {}
    conflict = Conflict()
    for run, summary in planned:
        if summary is None:
            continue
        key = (run.experiment.id, run.subtest.tier, run.subtest.id)
        wanted = wanted_by_subtest.get(key)
        if wanted is None:
            wanted = run_settings_for(settings, run.experiment, run.subtest)
            wanted_by_subtest[key] = wanted
        # Runs of one sub-test share their settings: compare each distinct value once.
        seen_key = (key, _identity(summary))
        differing = compared.get(seen_key)
        if differing is None:
            differing = record_differences(summary, wanted)
            compared[seen_key] = differing
        if differing:
            conflict.records += 1
            for name, values in differing.items():
                conflict.examples.setdefault(name, values)
    return conflict if conflict.records else None


def _identity(summary: RunSettings | RecordSummary) -> object:
    """Equal for records whose compared settings are equal (an old record: itself)."""
    recorded = summary if isinstance(summary, RunSettings) else summary.settings
    if recorded is None:
        return id(summary)
    return tuple(
        tuple(value) if isinstance(value, list) else value
        for value in (getattr(recorded, name) for name in COMPARED_FIELDS)
    )


def record_differences(
    summary: RunSettings | RecordSummary, wanted: RunSettings
) -> dict[str, tuple[object, object]]:
    """Field: (on disk, now) for each compared field that differs."""
    recorded = summary if isinstance(summary, RunSettings) else summary.settings
    if recorded is not None:
        return {
            name: (getattr(recorded, name), getattr(wanted, name))
            for name in differences(recorded, wanted)
        }
    assert isinstance(summary, RecordSummary)
    # A record from before settings were stored: compare what it shows.
    found: dict[str, tuple[object, object]] = {}
    for name, on_disk in legacy_values(summary).items():
        now = getattr(wanted, name)
        if isinstance(on_disk, float) and isinstance(now, float):
            if abs(on_disk - now) > 1e-9:
                found[name] = (on_disk, now)
        elif on_disk != now:
            found[name] = (on_disk, now)
    return found


def _show(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(entry) for entry in value) or "none"
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]  # a sha256: enough to tell two apart
    return str(value)

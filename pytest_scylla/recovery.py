"""Recovery from the results folder alone: `pytest --scylla-regenerate results/`,
`pytest --scylla-rejudge results/test-001 [--add-judge M]`, `pytest --scylla-status results/`.

Upstream's `regenerate_results.py results/` and `rerun_judges.py results/x/` took only a
folder. So the first session saves what a judge needs beside the records
(`<results>/<experiment>/experiment/`: test.yaml, config.yaml, prompt, criteria, rubric;
never the repository, never the solution), and a results folder on the command line is
collected from the records found in it. Regenerate and rejudge take their settings from the
records, never from command-line defaults.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_scylla.collect import EXPERIMENT_FILE, RunItem, scylla_session
from pytest_scylla.record_summary import (
    RUN_RECORD_FILE,
    RecordSummary,
    SettingsReader,
    read_summary_or_none,
)
from pytest_scylla.records import write_text_if_changed
from pytest_scylla.run_settings import RunSettings
from pytest_scylla.settings import NO_JUDGE, ScyllaSettings
from pytest_scylla.spec.catalogue import ResolvedSubTest, catalogue_layers, load_catalogue
from pytest_scylla.spec.errors import SpecError
from pytest_scylla.spec.experiment import ExperimentSpec, SourceSpec
from pytest_scylla.spec.load_experiment import CONFIG_FILE, Experiment, read_judging_files
from pytest_scylla.spec.loading import confined_path, parse_model
from pytest_scylla.spec.subtest import ResourcesSpec, SubTestSpec

MANIFEST_FILE = "manifest.json"  # the controller's session manifest (controller.MANIFEST_FILE)
SNAPSHOT_DIR = "experiment"
# Marks a snapshot folder: its test.yaml is never collected as an experiment to run.
SNAPSHOT_MARKER = ".scylla-snapshot"
_RUN_DIR = re.compile(r"^run-(\d+)$")
_TIER_DIR = re.compile(r"^T[0-6]$")


# ---- the snapshot ---------------------------------------------------------------------------


def snapshot_experiment(test_file: Path, spec: ExperimentSpec, results_dir: Path) -> Path:
    """Copy the files a judge reads into `<results>/<id>/experiment/` (unchanged files stay)."""
    directory = test_file.parent
    target = results_dir / spec.id / SNAPSHOT_DIR
    relative_files = [
        EXPERIMENT_FILE,
        spec.task.prompt_file,
        spec.validation.criteria_file,
        spec.validation.rubric_file,
    ]
    if (directory / CONFIG_FILE).is_file():
        relative_files.append(CONFIG_FILE)
    for relative in relative_files:
        # Confined like every fixture path: the snapshot never reaches outside the experiment.
        source = confined_path(directory, relative, source_file=test_file, field=relative)
        write_text_if_changed(target / relative, source.read_text(encoding="utf-8"))
    write_text_if_changed(
        target / SNAPSHOT_MARKER,
        "What the judges of these runs read, saved for --scylla-regenerate/--scylla-rejudge.\n",
    )
    return target


def load_snapshot(results_folder: Path, fixture_hash: str) -> Experiment:
    """The experiment as saved beside its records, for judging and scoring only."""
    directory = results_folder / SNAPSHOT_DIR
    test_file = directory / EXPERIMENT_FILE
    if not test_file.is_file():
        raise SpecError(
            results_folder,
            [
                (
                    SNAPSHOT_DIR,
                    "no saved experiment (results made before pytest-scylla saved one); "
                    "give the experiment directory with the same option instead",
                )
            ],
        )
    spec = parse_model(test_file, ExperimentSpec)
    # The repository and the solution were never copied: no agent runs from a results folder.
    spec = spec.model_copy(update={"source": SourceSpec(), "solution": None, "dry_run": None})
    judging = read_judging_files(directory, spec, test_file)
    return Experiment(
        directory=directory,
        test_file=test_file,
        spec=spec,
        config=judging.config,
        prompt=judging.prompt,
        criteria=judging.criteria,
        rubric=judging.rubric,
        normalized_rubric=judging.rubric.normalized(),
        source_dir=None,
        solution=None,
        dry_run_script=None,
        catalogue=load_catalogue(catalogue_layers(directory, None)),
        fixture_hash=fixture_hash,
    )


# ---- which folders a session targets -----------------------------------------------------


def is_results_folder(path: Path) -> bool:
    """An experiment's results: its manifest, or the saved experiment of a session that
    was stopped before it wrote the manifest."""
    return (path / MANIFEST_FILE).is_file() or (path / SNAPSHOT_DIR / SNAPSHOT_MARKER).is_file()


def results_folders_in(path: Path) -> list[Path]:
    """The experiment result folders a command-line path names: itself, or its children."""
    if not path.is_dir():
        return []
    if is_results_folder(path):
        return [path]
    return sorted(child for child in path.iterdir() if child.is_dir() and is_results_folder(child))


def import_upstream_arguments(config: pytest.Config, results_dir: Path) -> None:
    """Upstream results folders on the command line are imported under results_dir (the
    source is only read) and replaced there by the imported folder, which then recovers as
    any results folder does. Only the controller writes; xdist workers get its paths."""
    from pytest_scylla.upstream import UpstreamError, upstream_arguments

    try:
        args, _ = upstream_arguments(
            list(config.args), results_dir, write=not hasattr(config, "workerinput"), config=config
        )
    except UpstreamError as error:
        raise pytest.UsageError(f"pytest-scylla: {error}") from None
    config.args[:] = args


def results_root_of(args: list[str]) -> Path | None:
    """The results directory that results-folder arguments live in (None: none given).

    `results/` and `results/test-001` both name `results/` as the place records are read
    from and aggregates written to.
    """
    roots: set[Path] = set()
    for argument in args:
        path = Path(argument.split("::", 1)[0])
        for folder in results_folders_in(path):
            roots.add(folder.parent)
    if len(roots) > 1:
        listed = ", ".join(sorted(str(root) for root in roots))
        raise pytest.UsageError(f"pytest-scylla: results folders from several places: {listed}")
    return roots.pop() if roots else None


def targeted_folders(args: list[str], results_dir: Path) -> list[Path]:
    """Result folders of the session: results folders given, and those of experiments given."""
    folders: list[Path] = []
    for argument in args:
        path = Path(argument.split("::", 1)[0])
        found = results_folders_in(path)
        if found:
            folders += found
            continue
        test_files = [path] if path.name == EXPERIMENT_FILE else []
        if path.is_dir():
            test_files = sorted(path.glob(EXPERIMENT_FILE)) + sorted(
                path.glob(f"*/{EXPERIMENT_FILE}")
            )
        for test_file in test_files:
            experiment_id = _experiment_id(test_file)
            if experiment_id is not None:
                folders.append(results_dir / experiment_id)
    return list(dict.fromkeys(folders))


def _experiment_id(test_file: Path) -> str | None:
    try:
        data = yaml.safe_load(test_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None  # collection reports it properly
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def record_paths(folder: Path) -> list[Path]:
    """Every `<tier>/<sub-test>/run-NN/run_result.json` under an experiment's results.

    os.scandir rather than a glob: on 10,000 runs it is several times faster."""
    found: list[Path] = []
    for tier in _subfolders(folder):
        if not _TIER_DIR.match(tier.name):
            continue
        for subtest in _subfolders(Path(tier.path)):
            for run in _subfolders(Path(subtest.path)):
                record = os.path.join(run.path, RUN_RECORD_FILE)
                if _RUN_DIR.match(run.name) and os.path.isfile(record):
                    found.append(Path(record))
    return sorted(found)


def _subfolders(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return [entry for entry in entries if entry.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def run_number(record_path: Path) -> int | None:
    match = _RUN_DIR.match(record_path.parent.name)
    return int(match.group(1)) if match else None


# ---- settings from the records ----------------------------------------------------------


class FoundRecords:
    """The record files of each results folder a recovery targets, walked once: the session's
    settings are read from them at configure, and the collection makes an item of each
    before any run writes one (record_paths costs 20 ms per 2,000 runs)."""

    def __init__(self) -> None:
        self._found: dict[Path, list[Path]] = {}

    def paths(self, folder: Path) -> list[Path]:
        found = self._found.get(folder)
        if found is None:
            found = self._found[folder] = record_paths(folder)
        return found

    def take(self, folder: Path) -> list[Path]:
        """The folder's record files, forgotten here: it is collected once."""
        found = self._found.pop(folder, None)
        return record_paths(folder) if found is None else found


FOUND_RECORDS = pytest.StashKey[FoundRecords]()


def settings_from_records(
    settings: ScyllaSettings,
    explicit: set[str],
    folders: list[Path],
    found: FoundRecords | None = None,
) -> ScyllaSettings:
    """The session settings for a regenerate or rejudge: what the records were made with.

    Agent, model and judge panel come from the records (a rejudge may still choose another
    panel with --judge-model, and --add-judge adds to it); the pass threshold stays the
    records' unless --pass-threshold is given (regenerate re-decides every run with it).
    """
    reader = SettingsReader()  # only each record's settings: fast on 10,000 records
    found = found or FoundRecords()
    summaries = [
        summary
        for folder in folders
        for path in found.paths(folder)
        if (summary := reader.read(path)) is not None
    ]
    if not summaries:
        return settings
    update: dict[str, Any] = {}
    agents = list(dict.fromkeys(summary_agent(summary) for summary in summaries))
    # No agent runs in a recovery: the agent and model only label the runs, as recorded.
    if len(agents) == 1:
        update["agent"] = agents[0]
    models = list(dict.fromkeys(m for s in summaries if (m := summary_model(s)) is not None))
    if len(models) == 1:
        update["model"] = models[0]
    if update.get("agent", settings.agent) == "command" and not settings.agent_command:
        # Only the template's hash is recorded, and no agent runs in a recovery.
        update["agent_command"] = "recorded-only-as-a-hash {prompt_file}"
    keep_panel = settings.rejudge and "judge_model" in explicit
    if not keep_panel:
        panel: list[str] = []
        for summary in summaries:
            for model in summary_panel(summary):
                if model not in panel:
                    panel.append(model)
        added = [m for m in settings.add_judges if m not in panel] if settings.rejudge else []
        panel += added
        update["judge_model"] = panel[0] if panel else NO_JUDGE
        update["add_judges"] = panel[1:]
    sandboxes = list(dict.fromkeys(r.sandbox for s in summaries if (r := recorded(s))))
    if len(sandboxes) == 1:
        update["sandbox"] = sandboxes[0]
    if "pass_threshold" not in explicit:
        thresholds = {t for s in summaries if (t := recorded_threshold(s)) is not None}
        if len(thresholds) > 1:
            listed = ", ".join(f"{t:g}" for t in sorted(thresholds))
            raise pytest.UsageError(
                f"pytest-scylla: the records were decided with pass thresholds {listed}; "
                "give --pass-threshold to decide them together"
            )
        if thresholds:
            update["pass_threshold"] = thresholds.pop()
    return settings.model_copy(update=update)


Recorded = RunSettings | RecordSummary  # a record's settings, or an old record's summary


def recorded(summary: Recorded) -> RunSettings | None:
    return summary if isinstance(summary, RunSettings) else summary.settings


def summary_agent(summary: Recorded) -> str:
    settings = recorded(summary)
    if settings is not None:
        return settings.agent
    assert isinstance(summary, RecordSummary)
    return summary.agent_name


def summary_model(summary: Recorded) -> str | None:
    settings = recorded(summary)
    if settings is not None:
        return settings.model
    assert isinstance(summary, RecordSummary)
    return summary.model


def summary_panel(summary: Recorded) -> list[str]:
    settings = recorded(summary)
    if settings is not None:
        return settings.judge_panel
    assert isinstance(summary, RecordSummary)
    return summary.judge_models


def recorded_threshold(summary: Recorded) -> float | None:
    """A threshold the user chose on a command line; None when the rubric's applied (or an
    old record, which does not say where its threshold came from)."""
    settings = recorded(summary)
    if settings is not None and settings.pass_threshold_source == "command-line":
        return settings.pass_threshold
    return None


# ---- collecting a results folder -------------------------------------------------------------


class ResultsFolder(pytest.Directory):
    """`<results>/<experiment>/`: one item per run record found in it."""

    def collect(self) -> Iterator[RecordedTier]:
        session = scylla_session(self.config)
        folder = self.path
        runs: dict[str, dict[str, list[int]]] = {}
        fixture_hash = ""
        found = self.config.stash.get(FOUND_RECORDS, None)
        for path in found.take(folder) if found else record_paths(folder):
            number = run_number(path)
            if number is None:
                continue
            tier, subtest = path.parent.parent.parent.name, path.parent.parent.name
            runs.setdefault(tier, {}).setdefault(subtest, []).append(number)
            if not fixture_hash:
                summary = read_summary_or_none(path)
                if summary is not None:
                    fixture_hash = (
                        summary.settings.fixture_sha256
                        if summary.settings
                        else summary.fixture_sha256 or ""
                    )
        experiment = load_snapshot(folder, fixture_hash)
        session.experiments[experiment.id] = experiment
        wanted = session.settings.tiers
        for tier in sorted(runs):
            if wanted is None or tier in wanted:
                yield RecordedTier.from_parent(
                    self, name=tier, experiment=experiment, runs=runs[tier]
                )

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, SpecError):
            return f"malformed experiment:\n{excinfo.value.render()}"
        return str(super().repr_failure(excinfo))


class RecordedTier(pytest.Collector):
    def __init__(
        self, *, experiment: Experiment, runs: dict[str, list[int]], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.experiment = experiment
        self.runs = runs
        self.add_marker(getattr(pytest.mark, self.name))

    def collect(self) -> Iterator[RunItem]:
        for subtest_id in sorted(self.runs):
            subtest = recorded_subtest(self.experiment, self.name, subtest_id)
            for number in sorted(self.runs[subtest_id]):
                yield RunItem.for_run(self, self.experiment, subtest, number)


def recorded_subtest(experiment: Experiment, tier: str, subtest_id: str) -> ResolvedSubTest:
    """The catalogue's sub-test of that name, or a stand-in: only its tier and id are used
    to find the records, and no workspace is materialized in a recovery."""
    try:
        for subtest in experiment.catalogue.subtests(tier):
            if subtest.id == subtest_id:
                return subtest
    except SpecError:
        pass
    return ResolvedSubTest(
        tier, subtest_id, SubTestSpec(name=subtest_id), ResourcesSpec(), experiment.test_file
    )

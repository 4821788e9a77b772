"""Controller-only work: checks before the first run, and everything written after the last.

With xdist the controller collects nothing and runs nothing: run records reach it inside
test reports, and it alone writes aggregates, the manifest and the reports.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import BaseModel, Field

import pytest_scylla
from pytest_scylla.artifacts import ARTIFACTS_ATTRIBUTE, unpack_run
from pytest_scylla.collect import EXPERIMENT_FILE
from pytest_scylla.records import (
    RUN_RECORD_FILE,
    RunRecord,
    atomic_write_json,
    dump_record,
    run_dir,
    write_text_if_changed,
)
from pytest_scylla.redact import Redactor, session_redactor
from pytest_scylla.results_layout import RunKey
from pytest_scylla.settings import ScyllaSettings

if TYPE_CHECKING:
    from pytest_scylla.aggregate import ExperimentResult
    from pytest_scylla.aggregate_inputs import AggregateInputs
    from pytest_scylla.aggregate_pipeline import AggregatePipeline

MANIFEST_FILE = "manifest.json"
# How a run reaches the controller (plugin.pytest_runtest_makereport sets them on the setup
# report): its record and experiment file as attributes, and whether it was read from disk.
RECORD_ATTRIBUTE = "scylla_record"
EXPERIMENT_FILE_ATTRIBUTE = "scylla_experiment_file"
FROM_DISK_PROPERTY = "scylla_from_disk"
# [experiment, tier, sub-test, run]: which run folder the record belongs in, known without
# parsing it (a resume reports thousands of records the controller's disk already holds).
RUN_KEY_ATTRIBUTE = "scylla_run_key"
# Set instead of RECORD_ATTRIBUTE when the run was read from disk, unchanged, by the
# controller's own process (no xdist): the record is already where the controller keeps it,
# so its text need not ride along (nor be redacted, nor compared: a second of a resume).
RECORD_ON_DISK_ATTRIBUTE = "scylla_record_on_disk"


def reported_from_disk(report: pytest.TestReport) -> bool:
    """Whether the run of this report was read from disk (nothing new was paid for)."""
    return bool(dict(report.user_properties).get(FROM_DISK_PROPERTY, False))


def carries_run(report: pytest.TestReport) -> bool:
    """Whether the report is a run's setup report with its record (or its record's place)."""
    return (
        getattr(report, RECORD_ATTRIBUTE, None) is not None
        or getattr(report, RECORD_ON_DISK_ATTRIBUTE, False) is True
    )


def reported_run_key(report: pytest.TestReport) -> RunKey | None:
    value = getattr(report, RUN_KEY_ATTRIBUTE, None)
    if isinstance(value, list | tuple) and len(value) == 4:
        experiment_id, tier, subtest, run = value
        if all(isinstance(part, str) for part in (experiment_id, tier, subtest)) and (
            isinstance(run, int)
        ):
            return RunKey(experiment_id, tier, subtest, run)
    return None


def reported_experiment_id(report: pytest.TestReport) -> str | None:
    """The experiment of the run a report carries, parsing its record only when needed."""
    key = reported_run_key(report)
    if key is not None:
        return key.experiment_id
    payload = getattr(report, RECORD_ATTRIBUTE, None)
    return RunRecord.model_validate_json(payload).experiment_id if payload is not None else None


def _display_name(test_file: Path) -> str:
    from pytest_scylla.spec.experiment import ExperimentSpec
    from pytest_scylla.spec.loading import parse_model

    try:
        return parse_model(test_file, ExperimentSpec).name
    except Exception:  # a report should not fail over a display name
        return ""


def targets_experiments(config: pytest.Config) -> bool:
    """Whether this invocation may run experiments (our own test suite must not need keys)."""
    for argument in config.args:
        path = Path(argument.split("::", 1)[0])
        if path.name == EXPERIMENT_FILE:
            return True
        if path.is_dir() and any(
            _is_experiment_file(found)
            for pattern in (EXPERIMENT_FILE, f"*/{EXPERIMENT_FILE}", f"*/*/{EXPERIMENT_FILE}")
            for found in path.glob(pattern)
        ):
            return True
    return False


def _is_experiment_file(test_file: Path) -> bool:
    """Not the copy saved beside results (recovery.SNAPSHOT_MARKER): nothing runs from it."""
    return test_file.is_file() and not (test_file.parent / ".scylla-snapshot").is_file()


_targets_experiments = targets_experiments  # the name preflight uses


def _missing_credentials(settings: ScyllaSettings) -> str | None:
    """The one line naming which part lacks which credential (credentials.py decides what
    each part will use, so what passes here is what the runs get)."""
    from pytest_scylla.credentials import judge_credentials, missing_credentials

    agent = None
    if settings.agent == "claude-code" and not settings.rejudge:
        agent = f"agent claude-code ({settings.model})"
    missing = missing_credentials(
        agent=agent, judges=settings.judge_models, judge_backend=settings.judge_backend
    )
    if missing is not None or not settings.judge_models:
        return missing
    chosen = judge_credentials(settings.judge_backend)
    if chosen is not None and chosen.backend == "cli":
        from pytest_scylla.agents.claude_code import ClaudeNotFound, find_claude

        try:
            find_claude(settings.claude_bin)
        except ClaudeNotFound as error:
            return f"pytest-scylla: the judges use the Claude Code CLI (a Claude login): {error}"
    return None


def _targets_results(config: pytest.Config) -> bool:
    """Whether a results folder is on the command line (recovery from the folder alone)."""
    from pytest_scylla.recovery import results_folders_in

    return any(results_folders_in(Path(argument.split("::", 1)[0])) for argument in config.args)


def preflight(config: pytest.Config, settings: ScyllaSettings) -> None:
    """Stop before the first run, with one line, when a run could not possibly work."""
    if settings.regenerate and settings.rejudge:
        raise pytest.UsageError("--scylla-regenerate and --scylla-rejudge exclude each other")
    if settings.agent == "command" and not settings.agent_command:
        raise pytest.UsageError(
            "--agent command needs --agent-command 'TEMPLATE' ({prompt_file}, {workspace}, {model})"
        )
    if settings.status and (settings.fresh or settings.build_image):
        raise pytest.UsageError(
            "--scylla-status changes nothing: drop --fresh/--scylla-build-image to see a status"
        )
    from pytest_scylla.option_checks import (
        TimeoutHint,
        check_names,
        timeout_hint,
        without_plugin_judges,
    )

    check_names(config, settings)
    if timeout_hint(config, settings) and _targets_experiments(config):
        config.pluginmanager.register(TimeoutHint(), "scylla-timeout-hint")
    recovering = settings.regenerate or settings.rejudge or settings.status
    if config.option.collectonly or settings.status:
        return  # a status needs no agent, no judge, no network and no credentials
    if not _targets_experiments(config) and not (recovering and _targets_results(config)):
        return
    if settings.fake_api is not None and not settings.regenerate:
        from pytest_scylla.testing.session_server import start_session_fake_api

        start_session_fake_api(config, settings.fake_api)
    if not settings.regenerate:
        missing = _missing_credentials(without_plugin_judges(config, settings))
        if missing is not None:
            raise pytest.UsageError(missing)  # before the lock: a refused session writes nothing
    _lock_results(config, settings)
    if settings.regenerate:
        return
    if settings.sandbox == "docker" and not settings.rejudge:  # a rejudge starts no agent
        from pytest_scylla.sandbox.preflight import prepare_docker

        prepare_docker(config, settings)
    if settings.fresh:
        lock = config.pluginmanager.get_plugin(RESULTS_LOCK_PLUGIN)
        if lock is not None:
            lock.release()  # the lock file is not moved aside with the old results
            config.pluginmanager.unregister(lock)
        _move_aside(settings.results_dir)
        _lock_results(config, settings)


RESULTS_LOCK_PLUGIN = "scylla-results-lock"


def _lock_results(config: pytest.Config, settings: ScyllaSettings) -> None:
    """One session per results folder (results_lock.py); released at unconfigure."""
    from pytest_scylla.results_lock import ResultsLocked, acquire

    try:
        lock = acquire(settings.results_dir)
    except ResultsLocked as error:
        raise pytest.UsageError(f"pytest-scylla: {error}") from None
    config.pluginmanager.register(lock, RESULTS_LOCK_PLUGIN)


def _move_aside(results_dir: Path) -> None:
    """--fresh keeps the old results: they are moved, never deleted."""
    if results_dir.exists() and any(results_dir.iterdir()):
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        target = results_dir.with_name(f"{results_dir.name}.old-{stamp}")
        counter = 1
        while target.exists():
            target = results_dir.with_name(f"{results_dir.name}.old-{stamp}-{counter}")
            counter += 1
        shutil.move(str(results_dir), str(target))


class SessionManifest(BaseModel):
    """`manifest.json`: what was run, so a result can be traced to its options."""

    plugin_version: str
    written_at: str
    options: dict[str, Any]
    agent: str
    model: str
    judge_models: list[str]
    sandbox: str
    cli_versions: list[str] = Field(default_factory=list)
    fixture_sha256: list[str] = Field(default_factory=list)
    invocation: list[str] = Field(default_factory=list)

    def redacted(self, redactor: Redactor) -> SessionManifest:
        """A copy with every string redacted: options hold templates (`--agent-command 'curl
        -H "x-api-key: ..."'`), the invocation holds whatever was typed."""
        return SessionManifest.model_validate(redactor.tree(self.model_dump(mode="json")))


class ResultsCollector:
    """Gathers run records from reports (local or xdist) and writes what comes after."""

    def __init__(self, config: pytest.Config, settings: ScyllaSettings) -> None:
        self.config = config
        self.settings = settings
        self.experiment_ids: dict[str, str] = {}  # experiment id -> its test.yaml
        self.new_runs = 0
        self.disk_runs = 0
        self.judgments_new = 0
        self.judgments_cached = 0
        self.results: dict[str, ExperimentResult] = {}
        self.notes: list[str] = []  # damaged files and left-out records, for the summary
        # The Claude login's tokens too: a report or manifest must not carry them either.
        self.redactor = session_redactor()
        self.step_summaries: list[str] = []  # Markdown for GITHUB_STEP_SUMMARY, per experiment
        self.imported_only = False  # --scylla-import-upstream with nothing else to run
        self.imported_ids: set[str] = set()  # experiments this session imported from upstream
        # Without xdist: each item's experiment, and how many of its items are still to be
        # reported; an experiment done is aggregated in the background (aggregate_pipeline).
        self.item_experiment: dict[str, str] = {}
        self.items_left: dict[str, int] = {}
        self.session_items_left = 0  # of every kind, while an experiment's are counted
        self.names: dict[str, str] = {}  # test.yaml -> the experiment's name, read once
        self.built_early: str | None = None  # the experiment built before its runs
        self.pipeline: AggregatePipeline | None = None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from pytest_scylla.aggregate_pipeline import MIN_RUNS
        from pytest_scylla.collect import RunItem

        if self.settings.status or self.config.option.collectonly:
            return
        counts: dict[str, int] = {}
        for item in session.items:
            if isinstance(item, RunItem):
                counts[item.experiment.id] = counts.get(item.experiment.id, 0) + 1
        if len(counts) < 2:
            return  # one experiment: nothing to do meanwhile
        self.items_left = {key: count for key, count in counts.items() if count >= MIN_RUNS}
        self.session_items_left = len(session.items)
        self.item_experiment = {
            item.nodeid: item.experiment.id
            for item in session.items
            if isinstance(item, RunItem) and item.experiment.id in self.items_left
        }
        if self.settings.regenerate:
            last = next(item for item in reversed(session.items) if isinstance(item, RunItem))
            if last.experiment.id in self.items_left:
                self._build_before_its_runs(last.experiment.id, last.experiment.test_file)

    def _build_before_its_runs(self, experiment_id: str, test_file: Path) -> None:
        """The session's last experiment, built while the session starts (aggregate_pipeline:
        its records seldom change in a regenerate, and this core is idle until the first
        experiment's runs are reported)."""
        from pytest_scylla.aggregate_pipeline import AggregatePipeline

        self.experiment_ids.setdefault(experiment_id, str(test_file))
        if self.pipeline is None:
            self.pipeline = AggregatePipeline()
        name = self._experiment_name(experiment_id)
        self.pipeline.start(self.settings.results_dir / experiment_id, experiment_id, name)
        self.built_early = experiment_id

    def _count_done(self, report: pytest.TestReport) -> None:
        self.session_items_left -= 1
        experiment_id = self.item_experiment.pop(report.nodeid, None)
        if experiment_id is None:
            return
        self.items_left[experiment_id] -= 1
        if self.items_left[experiment_id] == 0 and experiment_id in self.experiment_ids:
            self._aggregate_in_background(experiment_id)

    def _aggregate_in_background(self, experiment_id: str) -> None:
        from pytest_scylla.aggregate_pipeline import AggregatePipeline

        if self.settings.regenerate:  # it always builds again: no need to ask
            experiment_dir = self.settings.results_dir / experiment_id
            name = self._experiment_name(experiment_id)
            if experiment_id == self.built_early and self._early_build_stands(experiment_id):
                return
        else:
            experiment_dir, fingerprint, name = self._aggregation_inputs(experiment_id)
            if self._current_inputs(experiment_dir, fingerprint, name) is not None:
                return  # the session's end takes them as they are
        if self.pipeline is None:
            self.pipeline = AggregatePipeline()
        runs_over = self.session_items_left == 0
        self.pipeline.start(experiment_dir, experiment_id, name, runs_over=runs_over)

    def _early_build_stands(self, experiment_id: str) -> bool:
        """Whether the build made before the experiment's runs read its records as they are
        now (no run rewrote one); the session's end checks again before taking it. Its runs
        were the session's last: waiting for that build, if it goes on, holds up nothing."""
        from pytest_scylla.aggregate_inputs import records_fingerprint

        assert self.pipeline is not None
        read = self.pipeline.records_read(experiment_id)
        current = records_fingerprint(self.settings.results_dir / experiment_id)[0]
        return read is not None and read == current

    def _aggregation_inputs(self, experiment_id: str) -> tuple[Path, tuple[str, int], str]:
        """The experiment's folder, its records' fingerprint (taken before any of them is
        read: a record written meanwhile makes the next session aggregate again) and its
        display name."""
        from pytest_scylla.aggregate_inputs import records_fingerprint

        experiment_dir = self.settings.results_dir / experiment_id
        fingerprint = records_fingerprint(experiment_dir)
        return experiment_dir, fingerprint, self._experiment_name(experiment_id)

    def _current_inputs(
        self, experiment_dir: Path, fingerprint: tuple[str, int], name: str
    ) -> AggregateInputs | None:
        """What the aggregates on disk were built from, when they can be taken as they are
        (never by --scylla-regenerate, which always builds them again)."""
        from pytest_scylla.aggregate_inputs import builder_version, current_inputs

        if self.settings.regenerate:
            return None
        return current_inputs(experiment_dir, fingerprint, builder_version(), name)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown" and self.item_experiment:
            self._count_done(report)
        payload = getattr(report, RECORD_ATTRIBUTE, None)
        if payload is None:
            key = reported_run_key(report) if carries_run(report) else None
            if key is not None:  # a record read by this process, carried as a marker
                self._count_from_disk(report, key, None)
            return
        unpacked_into = None
        key = reported_run_key(report) if reported_from_disk(report) else None
        if key is not None:
            unpacked_into = self._unpack(report, key)
            if self._already_here(report, key, unpacked_into, payload):
                return
        record = RunRecord.model_validate_json(payload)
        self.experiment_ids[record.experiment_id] = getattr(report, EXPERIMENT_FILE_ATTRIBUTE, "")
        from_disk = dict(report.user_properties).get(FROM_DISK_PROPERTY, False)
        if from_disk:
            self.disk_runs += 1
        else:
            self.new_runs += 1
            for judge in record.judges:
                if judge.cached:
                    self.judgments_cached += 1
                elif judge.attempts:
                    self.judgments_new += 1
        folder = run_dir(
            self.settings.results_dir, record.experiment_id, record.tier, record.subtest, record.run
        )
        if unpacked_into != folder:
            self._unpack(report, RunKey.of(record))
        # A worker on another host has its own disk; on a shared disk this is a no-op.
        write_text_if_changed(folder / RUN_RECORD_FILE, dump_record(record))
        self.config.hook.pytest_scylla_run_finished(
            config=self.config, record=record, from_disk=from_disk
        )

    def _unpack(self, report: pytest.TestReport, key: RunKey) -> Path:
        """The run's files other than its record, into the run's folder (returned)."""
        folder = run_dir(
            self.settings.results_dir, key.experiment_id, key.tier, key.subtest, key.run
        )
        payload = getattr(report, ARTIFACTS_ATTRIBUTE, None)
        if isinstance(payload, str):
            # The run's other files first: the record marks a complete run folder.
            for problem in unpack_run(payload, folder).problems:
                self._warn(problem)
        return folder

    def _already_here(
        self, report: pytest.TestReport, key: RunKey, folder: Path, payload: str
    ) -> bool:
        """A run read from disk whose record this disk holds byte for byte (a shared results
        folder, or no xdist at all): counted without parsing or writing it. Bytes, not
        models: any other text, or no such file, takes the full path."""
        try:
            if (folder / RUN_RECORD_FILE).read_bytes() != payload.encode("utf-8"):
                return False
        except OSError:
            return False
        self._count_from_disk(report, key, payload)
        return True

    def _count_from_disk(self, report: pytest.TestReport, key: RunKey, payload: str | None) -> None:
        """A run read from disk whose record file the controller holds as it was read."""
        self.experiment_ids[key.experiment_id] = getattr(report, EXPERIMENT_FILE_ATTRIBUTE, "")
        self.disk_runs += 1
        hook = self.config.hook.pytest_scylla_run_finished
        if not hook.get_hookimpls():  # parsed only for a plugin that asks for the record
            return
        if payload is None:
            from pytest_scylla.results_layout import load_run_record

            folder = run_dir(
                self.settings.results_dir, key.experiment_id, key.tier, key.subtest, key.run
            )
            record = load_run_record(folder / RUN_RECORD_FILE, key)
        else:
            record = RunRecord.model_validate_json(payload)
        if record is not None:
            hook(config=self.config, record=record, from_disk=True)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        from pytest_scylla.results_layout import newer_schema_records

        newer = newer_schema_records(self.settings.results_dir)
        if newer:
            shown = ", ".join(newer[:3]) + (f" and {len(newer) - 3} more" if len(newer) > 3 else "")
            raise pytest.UsageError(
                f"pytest-scylla: run records written by a newer pytest-scylla: {shown}; "
                "upgrade pytest-scylla or choose another --results-dir"
            )
        if self.settings.import_upstream is not None:
            self._import_upstream(self.settings.import_upstream)

    def _import_upstream(self, source: Path) -> None:
        from pytest_scylla.recovery import SNAPSHOT_DIR
        from pytest_scylla.upstream import UpstreamError, import_upstream, refuse_cache_inside

        try:
            refuse_cache_inside(self.config, source)
            imported = import_upstream(source, self.settings.results_dir, self.redactor)
        except UpstreamError as error:
            raise pytest.UsageError(f"pytest-scylla: {self.redactor(str(error))}") from None
        test_file = imported.folder / SNAPSHOT_DIR / EXPERIMENT_FILE
        self.experiment_ids[imported.experiment_id] = str(test_file)
        self.imported_ids.add(imported.experiment_id)
        for note in imported.notes:
            self.notes.append(f"import: {note}")
        self.imported_only = self.config.args_source != pytest.Config.ArgsSource.ARGS

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session: pytest.Session) -> bool | None:
        # `pytest --scylla-import-upstream SRC` alone imports; it runs no test of the folder.
        return True if self.imported_only else None

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from pytest_scylla.collect import scylla_session

        if self.settings.status or session.exitstatus == pytest.ExitCode.USAGE_ERROR:
            return  # a status, or a session stopped before its first run, writes nothing
        if self.imported_only and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            session.exitstatus = pytest.ExitCode.OK  # an import collects nothing by design
        if self.config.option.collectonly:
            return  # it holds no lock on the results folder (results_lock.py): hands off
        # A run interrupted before any report still leaves an experiment to aggregate.
        for experiment in scylla_session(self.config).experiments.values():
            if (self.settings.results_dir / experiment.id).is_dir():
                self.experiment_ids.setdefault(experiment.id, str(experiment.test_file))
        try:
            if self.pipeline is not None:
                self.pipeline.build_waiting_here()
            for experiment_id in sorted(self.experiment_ids):
                try:
                    self._aggregate(experiment_id)
                except Exception as error:  # one experiment's results must not sink the others
                    self._warn(
                        f"{self.settings.results_dir / experiment_id}: aggregates not written "
                        f"({error.__class__.__name__}: {self.redactor(str(error))})"
                    )
        finally:
            if self.pipeline is not None:
                self.pipeline.close()
        if len(self.results) > 1:  # several tasks: tiers compared over them, at the root
            self._write_summary()
        self._append_step_summary()

    def _write_summary(self) -> None:
        from pytest_scylla.report.summary import summary_files
        from pytest_scylla.results_layout import rewrite_derived_file

        try:
            for name, text in summary_files(self.results).items():
                path = self.settings.results_dir / name
                warning = rewrite_derived_file(path, self.redactor(text))
                if warning:
                    self._warn(warning)
        except Exception as error:  # the experiments' own reports are already written
            self._warn(f"summary not written ({error.__class__.__name__}: {error})")

    def _append_step_summary(self) -> None:
        from pytest_scylla.ci_report import STEP_SUMMARY_VARIABLE, append_step_summary

        try:
            append_step_summary(os.environ, self.step_summaries, self.redactor)
        except OSError as error:  # a CI nicety: the results themselves are written
            self._warn(f"{STEP_SUMMARY_VARIABLE}: not written ({error.__class__.__name__})")

    def _aggregate(self, experiment_id: str) -> None:
        # Imported here: numpy/scipy cost most of a second, and every pytest run loads the plugin.
        from pytest_scylla.aggregate import write_aggregates
        from pytest_scylla.aggregate_build import build_aggregates
        from pytest_scylla.aggregate_inputs import (
            AggregateInputs,
            builder_version,
            forget_inputs,
            save_inputs,
            written_stamps,
        )
        from pytest_scylla.aggregate_pipeline import THREADS_WHEN_RUNS_ARE_OVER
        from pytest_scylla.ci_report import step_summary_markdown
        from pytest_scylla.results_layout import rewrite_derived_file

        experiment_dir, fingerprint, name = self._aggregation_inputs(experiment_id)
        if self._reuse_aggregates(experiment_dir, fingerprint, name):
            return
        forget_inputs(experiment_dir)
        built = None
        if self.pipeline is not None:
            built = self.pipeline.take(experiment_id, fingerprint[0])
        if built is None:
            # The session's runs are over: its statistics may take a second core.
            built = build_aggregates(
                experiment_dir, experiment_id, name, THREADS_WHEN_RUNS_ARE_OVER
            )
        for damaged in built.damaged:
            self._warn(damaged)
        result = built.result
        for excluded in result.excluded_records:
            self._warn(f"{experiment_dir / excluded}")
        for warning in write_aggregates(experiment_dir, result):
            self._warn(warning)
        # report.md, report.html and the CSV exports (judges' reasoning included: redacted).
        rendered = {file_name: self.redactor(text) for file_name, text in built.rendered.items()}
        for file_name, text in rendered.items():
            problem = rewrite_derived_file(experiment_dir / file_name, text)
            if problem:
                self._warn(problem)
        self.step_summaries.append(step_summary_markdown(rendered["report.md"], experiment_dir))
        cli_versions, fixture_sha256 = built.cli_versions, built.fixture_sha256
        self._write_manifest(experiment_dir, cli_versions, fixture_sha256)
        self.results[experiment_id] = result
        self.config.hook.pytest_scylla_experiment_aggregated(config=self.config, result=result)
        if not built.damaged:  # damaged records are named again by every session
            inputs = AggregateInputs(
                plugin_version=builder_version(),
                experiment_name=name,
                records=fingerprint[0],
                record_count=fingerprint[1],
                written=written_stamps(experiment_dir, sorted(rendered)),
                cli_versions=cli_versions,
                fixture_sha256=fixture_sha256,
            )
            save_inputs(experiment_dir, inputs)

    def _reuse_aggregates(
        self, experiment_dir: Path, fingerprint: tuple[str, int], name: str
    ) -> bool:
        """Aggregates and reports built from exactly these record files are taken as they
        are on disk (aggregate_inputs.py): the same records give the same bytes."""
        from pytest_scylla.aggregate import AGGREGATE_FILE, ExperimentResult
        from pytest_scylla.ci_report import step_summary_markdown

        inputs = self._current_inputs(experiment_dir, fingerprint, name)
        if inputs is None:
            return False
        try:
            result = ExperimentResult.model_validate_json(
                (experiment_dir / AGGREGATE_FILE).read_bytes()
            )
            report_markdown = (experiment_dir / "report.md").read_text("utf-8")
        except (OSError, ValueError):
            return False
        for excluded in result.excluded_records:
            self._warn(f"{experiment_dir / excluded}")
        self.step_summaries.append(step_summary_markdown(report_markdown, experiment_dir))
        self._write_manifest(experiment_dir, inputs.cli_versions, inputs.fixture_sha256)
        self.results[result.experiment_id] = result
        self.config.hook.pytest_scylla_experiment_aggregated(config=self.config, result=result)
        return True

    def _warn(self, message: str) -> None:
        """Shown twice on purpose: in pytest's warnings summary and in our own section."""
        from pytest_scylla.session import ScyllaWarning

        self.notes.append(message)
        warnings.warn(ScyllaWarning(message), stacklevel=2)

    def _experiment_name(self, experiment_id: str) -> str:
        test_file = self.experiment_ids.get(experiment_id)
        if not test_file:
            return ""
        known = self.names.get(test_file)
        if known is None:
            known = self.names[test_file] = _display_name(Path(test_file))
        return known

    def _write_manifest(
        self, experiment_dir: Path, cli_versions: list[str], fixture_sha256: list[str]
    ) -> None:
        manifest_file = experiment_dir / MANIFEST_FILE
        if experiment_dir.name in self.imported_ids:
            return  # no option of this session made these runs: upstream_import.json says what did
        if self.settings.regenerate and manifest_file.is_file():
            # Regenerating runs nothing; only a pass threshold re-decides the runs, and says so.
            if self.settings.pass_threshold is not None:
                kept = SessionManifest.model_validate_json(manifest_file.read_text("utf-8"))
                kept.options["pass_threshold"] = self.settings.pass_threshold
                atomic_write_json(manifest_file, kept.redacted(self.redactor))
            return
        options = self.settings.model_dump(mode="json")
        manifest = SessionManifest(
            plugin_version=pytest_scylla.__version__,
            written_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            options=options,
            agent=self.settings.agent,
            model=self.settings.model,
            judge_models=self.settings.judge_models,
            sandbox=self.settings.sandbox,
            cli_versions=cli_versions,
            fixture_sha256=fixture_sha256,
            invocation=list(self.config.invocation_params.args),
        )
        atomic_write_json(experiment_dir / MANIFEST_FILE, manifest.redacted(self.redactor))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results and not self.notes:
            return
        from pytest_scylla.report.tables import cost_line
        from pytest_scylla.report.terminal import tier_table

        writer = terminalreporter
        writer.section("pytest-scylla")
        for experiment_id, result in self.results.items():
            mode = ", ".join(result.judge_modes) or "-"
            writer.write_line(
                f"{experiment_id}  agent: {', '.join(result.agent_names)}  judging: {mode}"
            )
            for line in tier_table(result):
                writer.write_line("  " + line)
            writer.write_line(
                f"  spend: {cost_line(result)}  results: {self.settings.results_dir / experiment_id}"
            )
            counts = result.counts
            if counts.earlier_attempts or counts.replaced_judged_runs:
                writer.write_line(
                    f"  earlier attempts kept (their spend counted): {counts.earlier_attempts};"
                    f" judged runs replaced by --scylla-rerun-failed: {counts.replaced_judged_runs}"
                )
        for note in self.notes:
            writer.write_line(f"warning: {note}")
        writer.write_line(
            f"runs: {self.new_runs} executed, {self.disk_runs} from disk;"
            f" judgments: {self.judgments_new} new, {self.judgments_cached} cached"
        )

"""Upstream ProjectScylla results, read into our run records.

An upstream experiment folder (`<experiment>/T0/00/run_01/run_result.json`, with
`agent/`, `judge/judge_0N/judgment.json`, `config/experiment.json` and the task's
`prompt.md`, `criteria.md`, `rubric.yaml` at its top) becomes a results folder of ours:
`<results>/<id>/T0/00/run-01/run_result.json`, the judging files saved as for
`--scylla-regenerate`, and `upstream_import.json` saying where it came from. The source is
only read.

The mapping keeps upstream's own numbers: its consensus score, grade and pass flag (a
majority vote of its judges, which may contradict score and threshold: such runs are
named), its cost and agent durations, each judge's score and per-item points (N/A as None).
What upstream did not record stays empty: no checks, no workspace listing, no run settings,
no judge tokens or judge cost. Tokens per model come from the agent's own `modelUsage`
when its output was kept (upstream's `token_stats` miss the side models), else from
`token_stats` under the agent's model. `--scylla-regenerate` of the imported folder then
re-derives every score with this plugin's consensus from the judges' items.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from pytest_scylla.records import (
    RUN_RECORD_FILE,
    AgentRecord,
    ConsensusRecord,
    ItemJudgment,
    JudgeRecord,
    RunError,
    RunRecord,
    ScoreRecord,
    StageDurations,
    TokenUsage,
    atomic_write_json,
    dump_record,
    write_text_if_changed,
)
from pytest_scylla.recovery import SNAPSHOT_DIR, SNAPSHOT_MARKER
from pytest_scylla.redact import Redactor, secrets_from_env
from pytest_scylla.results_layout import record_paths, run_dir
from pytest_scylla.spec.experiment import TIER_IDS

IMPORT_FILE = "upstream_import.json"
DEFAULT_PASS_THRESHOLD = 0.60  # upstream's own default, as ours
NOT_AVAILABLE = "n/a"
UPSTREAM_AGENT = "claude-code"  # upstream runs only the Claude Code CLI
_RUN_FOLDER = re.compile(r"run_(\d+)")
_MODEL_LINE = re.compile(r"^\*\*Model\*\*:\s*(\S+)", re.MULTILINE)
_CLI_LINE = re.compile(r"^\*\*Claude Code Version\*\*:\s*(\S+)", re.MULTILINE)
TASK_FILES = ("prompt.md", "criteria.md", "rubric.yaml")
# Upstream folders are never enormous; a cap keeps a stray huge file from filling memory.
MAX_FILE_BYTES = 16 * 1024 * 1024


class UpstreamError(Exception):
    """The folder is not an upstream results tree, or cannot be imported where asked."""


# ---- upstream's file formats (only the fields we map) ---------------------------------------


class _Upstream(BaseModel):
    model_config = ConfigDict(extra="ignore")


class UpstreamTokenStats(_Upstream):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0


class UpstreamJudge(_Upstream):
    model: str
    score: float | None = None
    passed: bool | None = None
    grade: str | None = None
    reasoning: str = ""
    judge_number: int


class UpstreamRunResult(_Upstream):
    """`run_01/run_result.json`."""

    run_number: int
    exit_code: int | None = None
    token_stats: UpstreamTokenStats | None = None
    cost_usd: float | None = None
    duration_seconds: float | None = None
    agent_duration_seconds: float | None = None
    judge_duration_seconds: float | None = None
    judge_score: float | None = None
    judge_passed: bool | None = None
    judge_grade: str | None = None
    judge_reasoning: str = ""
    judges: list[UpstreamJudge] = []


class UpstreamItem(_Upstream):
    achieved: float | str | None = None  # "N/A" for a not-applicable item
    max: float | str | None = None
    reason: str = ""


class UpstreamCategory(_Upstream):
    items: dict[str, UpstreamItem] = {}


class UpstreamJudgment(_Upstream):
    """`judge/judge_0N/judgment.json`."""

    score: float | None = None
    is_valid: bool = True
    reasoning: str = ""
    criteria_scores: dict[str, UpstreamCategory] = {}


class UpstreamExperimentConfig(_Upstream):
    """`config/experiment.json`."""

    experiment_id: str
    task_repo: str | None = None
    task_commit: str | None = None
    language: str = ""
    models: list[str] = []
    judge_models: list[str] = []
    tiers_to_run: list[str] = []
    timeout_seconds: float | None = None


class UpstreamTiming(_Upstream):
    agent_duration_seconds: float | None = None
    judge_duration_seconds: float | None = None
    measured_at: str | None = None


class UpstreamAgentOutput(_Upstream):
    """The `result` object Claude Code printed with `--output-format json`."""

    is_error: bool = False
    num_turns: int | None = None
    result: str | None = None
    total_cost_usd: float | None = None
    modelUsage: dict[str, dict[str, Any]] = {}


class UpstreamImport(BaseModel):
    """`upstream_import.json`: where an imported results folder came from."""

    source: str
    imported_at: str
    runs: int
    notes: list[str] = []


# ---- detection ------------------------------------------------------------------------------


def upstream_run_files(folder: Path) -> list[Path]:
    """Upstream run records under an experiment folder: `T*/<sub-test>/run_NN/run_result.json`."""
    return sorted(
        path
        for path in folder.glob(f"T*/*/run_*/{RUN_RECORD_FILE}")
        if _RUN_FOLDER.fullmatch(path.parent.name) and path.parts[-4] in TIER_IDS
    )


def is_upstream_results(folder: Path) -> bool:
    """An upstream experiment folder: run_NN run folders (ours are run-NN) and its config."""
    return folder.is_dir() and bool(upstream_run_files(folder))


# ---- reading ----------------------------------------------------------------------------------


def _read_bytes(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """A regular file's first bytes, never through a symlink: a link in an upstream folder
    (to ~/.claude/.credentials.json, say) must not be read into our results."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise OSError(f"{path}: not a regular file")
        return handle.read(limit)


def _is_regular(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _read_json(path: Path) -> Any:
    raw = _read_bytes(path, MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise UpstreamError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    # Upstream writes NaN for undefined statistics; Python's json reads it.
    return json.loads(raw.decode("utf-8"))


def _parse(path: Path, model: type[_Upstream]) -> Any:
    try:
        return model.model_validate(_read_json(path))
    except (OSError, ValueError, ValidationError) as error:
        raise UpstreamError(
            f"{path}: not upstream's format ({error.__class__.__name__})"
        ) from error


def _optional(path: Path, model: type[_Upstream]) -> Any:
    return _parse(path, model) if _is_regular(path) else None


def _read_text(path: Path) -> str | None:
    if not _is_regular(path):
        return None
    return _read_bytes(path).decode("utf-8", errors="replace")


def experiment_config(folder: Path) -> UpstreamExperimentConfig:
    config = _optional(folder / "config" / "experiment.json", UpstreamExperimentConfig)
    if config is not None:
        return config
    checkpoint = folder / "checkpoint.json"
    if _is_regular(checkpoint):
        data = _read_json(checkpoint)
        if isinstance(data, dict) and isinstance(data.get("experiment_id"), str):
            return UpstreamExperimentConfig(experiment_id=data["experiment_id"])
    return UpstreamExperimentConfig(experiment_id=folder.name)


@dataclass
class _RunContext:
    experiment_id: str
    model: str | None
    pass_threshold: float
    notes: list[str] = field(default_factory=list)


def _agent_output(agent_dir: Path) -> UpstreamAgentOutput | None:
    """The CLI's final JSON object from `agent/stdout.log`, when it was kept whole."""
    text = _read_text(agent_dir / "stdout.log")
    if not text:
        return None
    for line in reversed(text.strip().splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("type") == "result":
            try:
                return UpstreamAgentOutput.model_validate(data)
            except ValidationError:
                return None
    return None


def _usage_by_model(output: UpstreamAgentOutput) -> dict[str, TokenUsage]:
    return {
        model: TokenUsage(
            input_tokens=int(usage.get("inputTokens", 0)),
            output_tokens=int(usage.get("outputTokens", 0)),
            cache_creation_input_tokens=int(usage.get("cacheCreationInputTokens", 0)),
            cache_read_input_tokens=int(usage.get("cacheReadInputTokens", 0)),
        )
        for model, usage in output.modelUsage.items()
    }


def _agent_record(run: UpstreamRunResult, run_path: Path, context: _RunContext) -> AgentRecord:
    agent_dir = run_path / "agent"
    model_info = _read_text(agent_dir / "MODEL.md") or ""
    model_match = _MODEL_LINE.search(model_info)
    cli_match = _CLI_LINE.search(model_info)
    model = model_match.group(1) if model_match else context.model
    output = _agent_output(agent_dir)
    tokens: dict[str, TokenUsage] = {}
    if output is not None and output.modelUsage:
        tokens = _usage_by_model(output)
    elif run.token_stats is not None:
        stats = run.token_stats
        tokens = {
            model or NOT_AVAILABLE: TokenUsage(
                input_tokens=stats.input_tokens,
                output_tokens=stats.output_tokens,
                cache_creation_input_tokens=stats.cache_creation_tokens,
                cache_read_input_tokens=stats.cache_read_tokens,
            )
        }
    return AgentRecord(
        agent=UPSTREAM_AGENT,
        model=model,
        cli_version=cli_match.group(1) if cli_match else None,
        exit_code=run.exit_code,
        is_error=output.is_error if output else False,
        duration_s=run.agent_duration_seconds or 0.0,
        turns=output.num_turns if output else None,
        cost_usd=run.cost_usd,
        tokens_by_model=tokens,
        result_text=output.result if output else None,
    )


def _judge_items(judgment: UpstreamJudgment) -> dict[str, ItemJudgment]:
    items: dict[str, ItemJudgment] = {}
    for category in judgment.criteria_scores.values():
        for item_id, item in category.items.items():
            achieved = item.achieved if isinstance(item.achieved, int | float) else None
            items[item_id] = ItemJudgment(achieved=achieved, reason=item.reason)
    return items


def _judge_records(run: UpstreamRunResult, run_path: Path) -> list[JudgeRecord]:
    judges: list[JudgeRecord] = []
    for judge in sorted(run.judges, key=lambda j: j.judge_number):
        judge_dir = run_path / "judge" / f"judge_{judge.judge_number:02d}"
        judgment = _optional(judge_dir / "judgment.json", UpstreamJudgment)
        timing = _optional(judge_dir / "timing.json", UpstreamTiming)
        valid = judge.score is not None and (judgment is None or judgment.is_valid)
        judges.append(
            JudgeRecord(
                model=judge.model,
                status="ok" if valid else "failed",
                error=None if valid else "upstream marked this judgment invalid or unscored",
                items=_judge_items(judgment) if judgment else {},
                overall_reasoning=judge.reasoning,
                score=judge.score,
                latency_s=(timing.judge_duration_seconds or 0.0) if timing else 0.0,
            )
        )
    return judges


def _consensus(judges: list[JudgeRecord]) -> ConsensusRecord:
    scores: dict[str, float] = {}
    for number, judge in enumerate(judges, start=1):
        if judge.score is None:
            continue
        # Two judges of one model stay apart (upstream numbers its judges).
        name = judge.model if judge.model not in scores else f"{judge.model}#{number}"
        scores[name] = judge.score
    return ConsensusRecord(
        judges_used=[j.model for j in judges if j.status == "ok"],
        judges_failed=[j.model for j in judges if j.status != "ok"],
        judge_scores=scores,
        score_range=max(scores.values()) - min(scores.values()) if scores else None,
    )


def _iso_minus(stamp: str | None, seconds: float | None) -> str | None:
    if stamp is None or seconds is None:
        return None
    try:
        return (dt.datetime.fromisoformat(stamp) - dt.timedelta(seconds=seconds)).isoformat()
    except ValueError:
        return None


def run_record(run_file: Path, context: _RunContext, tier: str, subtest: str) -> RunRecord:
    """One upstream run as our record (not yet redacted)."""
    run = _parse(run_file, UpstreamRunResult)
    run_path = run_file.parent
    agent = _agent_record(run, run_path, context)
    judges = _judge_records(run, run_path)
    number = run.run_number
    label = f"{tier}/{subtest} run {number}"
    result = None
    error = None
    if run.judge_score is None:
        error = RunError(stage="judge", message="upstream recorded no judge score")
    else:
        passed = bool(run.judge_passed)
        result = ScoreRecord(
            score=run.judge_score,
            grade=run.judge_grade or NOT_AVAILABLE,
            passed=passed,
            pass_threshold=context.pass_threshold,
            category_scores={},
            items=[],
        )
        if passed != (run.judge_score >= context.pass_threshold):
            context.notes.append(
                f"{label}: upstream's pass flag ({passed}, its judges' majority vote) "
                f"contradicts score {run.judge_score:.3f} against threshold "
                f"{context.pass_threshold:.2f}; kept as upstream decided"
            )
    agent_timing = _optional(run_path / "agent" / "timing.json", UpstreamTiming)
    judge_timing = _optional(run_path / "judge" / "timing.json", UpstreamTiming)
    started = _iso_minus(
        agent_timing.measured_at if agent_timing else None, run.agent_duration_seconds
    )
    finished = judge_timing.measured_at if judge_timing else None
    return RunRecord(
        experiment_id=context.experiment_id,
        tier=tier,
        subtest=subtest,
        run=number,
        node_id=f"{context.experiment_id}::{tier}::{subtest}[run-{number:02d}]",
        agent_name=UPSTREAM_AGENT,
        model=agent.model,
        judge_mode="llm",
        judge_models=list(dict.fromkeys(j.model for j in judges)),
        outcome=("passed" if result.passed else "failed") if result else "error",
        error=error,
        agent=agent,
        judges=judges,
        consensus=_consensus(judges) if judges else None,
        result=result,
        durations=StageDurations(
            agent_s=run.agent_duration_seconds or 0.0, judge_s=run.judge_duration_seconds or 0.0
        ),
        started_at=started or NOT_AVAILABLE,
        finished_at=finished or NOT_AVAILABLE,
        stage="judged" if result else "agent-done",
    )


def _pass_threshold(folder: Path) -> float:
    rubric_file = folder / "rubric.yaml"
    if _is_regular(rubric_file):
        try:
            rubric = yaml.safe_load(_read_bytes(rubric_file).decode("utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            rubric = None
        grading = rubric.get("grading") if isinstance(rubric, dict) else None
        value = grading.get("pass_threshold") if isinstance(grading, dict) else None
        if isinstance(value, int | float):
            return float(value)
    return DEFAULT_PASS_THRESHOLD


@dataclass
class ImportedExperiment:
    experiment_id: str
    folder: Path  # <results>/<id>
    records: list[RunRecord]
    notes: list[str]


def read_upstream(folder: Path) -> tuple[UpstreamExperimentConfig, list[RunRecord], list[str]]:
    """Every run of an upstream experiment folder as our records, with notes on the mapping."""
    if not is_upstream_results(folder):
        raise UpstreamError(f"{folder}: no upstream run folders (T*/<sub-test>/run_NN/)")
    config = experiment_config(folder)
    context = _RunContext(
        experiment_id=config.experiment_id,
        model=config.models[0] if len(config.models) == 1 else None,
        pass_threshold=_pass_threshold(folder),
    )
    records = []
    for run_file in upstream_run_files(folder):
        tier, subtest = run_file.parts[-4], run_file.parts[-3]
        record = run_record(run_file, context, tier, subtest)
        folder_number = int(_RUN_FOLDER.fullmatch(run_file.parent.name).group(1))  # type: ignore[union-attr]
        if record.run != folder_number:
            raise UpstreamError(
                f"{run_file}: run_number {record.run} but its folder is run {folder_number}"
            )
        records.append(record)
    return config, records, context.notes


# ---- writing ----------------------------------------------------------------------------------


def _snapshot(source: Path, target: Path, config: UpstreamExperimentConfig) -> None:
    """The judging files as `--scylla-regenerate` reads them, with a test.yaml made from
    upstream's experiment config (upstream kept none in its results)."""
    directory = target / SNAPSHOT_DIR
    spec: dict[str, Any] = {
        "id": config.experiment_id,
        "name": config.experiment_id,
        "description": f"imported from upstream results {source.name}",
        "language": config.language,
        "source": {"repo": config.task_repo, "hash": config.task_commit},
        "task": {"prompt_file": "prompt.md"},
        "validation": {"criteria_file": "criteria.md", "rubric_file": "rubric.yaml"},
        "tiers": [t for t in config.tiers_to_run if t in TIER_IDS] or list(TIER_IDS),
    }
    if config.timeout_seconds:
        spec["task"]["timeout_seconds"] = config.timeout_seconds
    write_text_if_changed(directory / "test.yaml", yaml.safe_dump(spec, sort_keys=False))
    for name in TASK_FILES:
        text = _read_text(source / name)
        if text is not None:
            write_text_if_changed(directory / name, text)
    write_text_if_changed(
        directory / SNAPSHOT_MARKER,
        "What the judges of these runs read, imported from upstream results.\n",
    )


def import_upstream(
    source: Path, results_dir: Path, redactor: Redactor | None = None
) -> ImportedExperiment:
    """Convert an upstream experiment folder into `<results_dir>/<id>/` (source only read).

    Refuses a target that holds records of its own (not of an import of the same source):
    an import never overwrites runs made here.
    """
    source = source.resolve()
    config, records, notes = read_upstream(source)
    target = results_dir / config.experiment_id
    previous = target / IMPORT_FILE
    if record_paths(target):
        earlier = (
            UpstreamImport.model_validate_json(previous.read_text()) if previous.is_file() else None
        )
        if earlier is None or earlier.source != str(source):
            raise UpstreamError(
                f"{target}: already holds run records not imported from {source}; "
                "choose another --results-dir"
            )
    redactor = redactor or Redactor(secrets_from_env())
    written = []
    for record in records:
        clean = RunRecord.model_validate(redactor.tree(record.model_dump(mode="json")))
        path = run_dir(results_dir, clean.experiment_id, clean.tier, clean.subtest, clean.run)
        write_text_if_changed(path / RUN_RECORD_FILE, dump_record(clean))
        written.append(clean)
    _snapshot(source, target, config)
    notes = [
        *notes,
        "judge tokens and judge cost: not recorded upstream (0 here)",
        "checks and workspace files: not recorded upstream (none here)",
    ]
    atomic_write_json(
        previous,
        UpstreamImport(
            source=str(source),
            imported_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            runs=len(written),
            notes=redactor.tree(notes),
        ),
    )
    return ImportedExperiment(config.experiment_id, target, written, notes)


def pytest_cache_inside(config: pytest.Config, source: Path) -> Path | None:
    """Where pytest's cache would be written, when that is inside the upstream folder.

    pytest picks its rootdir before plugins declare their options, so a path given as an
    option's value (`--scylla-import-upstream SRC`) or on the command line can make SRC the
    rootdir, and `.pytest_cache/` would land in the folder an import promises not to touch.
    """
    if not config.pluginmanager.has_plugin("cacheprovider"):
        return None
    cache_dir = Path(os.path.expanduser(str(config.getini("cache_dir"))))
    cache_dir = (config.rootpath / cache_dir).resolve()
    return cache_dir if cache_dir.is_relative_to(source.resolve()) else None


def refuse_cache_inside(config: pytest.Config, source: Path) -> None:
    cache_dir = pytest_cache_inside(config, source)
    if cache_dir is not None:
        raise UpstreamError(
            f"pytest would write its cache into the upstream folder ({cache_dir}), which an "
            "import only reads; add --rootdir=. (or -p no:cacheprovider, or -o cache_dir=DIR)"
        )


def upstream_arguments(
    args: list[str], results_dir: Path, *, write: bool, config: pytest.Config | None = None
) -> tuple[list[str], list[ImportedExperiment]]:
    """Command-line paths with each upstream experiment folder replaced by its imported
    results folder under results_dir (imported when `write`: the controller; xdist workers
    only compute the same paths), so `--scylla-regenerate UPSTREAM` works on a copy."""
    replaced: list[str] = []
    imported: list[ImportedExperiment] = []
    for argument in args:
        path = Path(argument.split("::", 1)[0])
        if "::" in argument or not is_upstream_results(path):
            replaced.append(argument)
            continue
        if write:
            if config is not None:
                refuse_cache_inside(config, path)
            done = import_upstream(path, results_dir)
            imported.append(done)
            replaced.append(str(done.folder))
        else:
            replaced.append(str(results_dir / experiment_config(path.resolve()).experiment_id))
    return replaced, imported

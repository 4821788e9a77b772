"""Run records: the one source of truth for a run, and how they reach the disk.

Every file is written atomically (temp file in the same folder, fsync, `os.replace`), so a
killed worker or Ctrl-C leaves either the old file or the new one, never half of one.
Records are versioned: an older `schema_version` is migrated when read (`migrate`), a newer
one is refused (`NewerSchema`), since its meaning cannot be guessed.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, Field, ValidationError

from pytest_scylla.run_settings import RunSettings

SCHEMA_VERSION = 2
RUN_RECORD_FILE = "run_result.json"

Outcome = Literal["passed", "failed", "error"]
# Where an error happened; "interrupted" is Ctrl-C or SIGTERM/SIGHUP, "harness" an exception
# of our own code (its traceback is in the run folder's error.log).
Stage = Literal[
    "workspace", "sandbox", "agent", "checks", "judge", "score", "interrupted", "harness"
]
# How far a run got: "started" (the agent phase did not finish: a new attempt is needed),
# "agent-done" (agent output, checks and diff are on disk; judging is left),
# "judged" (complete: passed or failed).
RunStage = Literal["started", "agent-done", "judged"]


class TokenUsage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens
            + other.cache_creation_input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
        )

    @property
    def total(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )


def sum_usage(usages: list[TokenUsage] | dict[str, TokenUsage]) -> TokenUsage:
    values = usages.values() if isinstance(usages, dict) else usages
    total = TokenUsage()
    for usage in values:
        total = total + usage
    return total


class AgentRecord(BaseModel):
    """What the agent did, parsed from its own report (for Claude Code: the stream)."""

    agent: str
    model: str | None = None
    cli_version: str | None = None
    exit_code: int | None = None
    timed_out: bool = False
    # The agent ran to its end (success or its own failure). False = infrastructure problem:
    # the run is an error and the agent phase is redone on resume.
    finished: bool = True
    is_error: bool = False  # the agent reported its own failure (e.g. result.is_error)
    error_reason: str | None = None
    duration_s: float = 0.0
    turns: int | None = None
    cost_usd: float | None = None
    tokens_by_model: dict[str, TokenUsage] = Field(default_factory=dict)
    result_text: str | None = None
    api_error_status: int | None = None

    @property
    def tokens(self) -> TokenUsage:
        return sum_usage(self.tokens_by_model)


class CheckResult(BaseModel):
    name: str
    command: str
    exit_code: int | None
    timed_out: bool = False
    duration_s: float = 0.0
    output_tail: str = ""  # last part of stdout+stderr, redacted

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


class ChecksRecord(BaseModel):
    baseline: list[CheckResult] = Field(default_factory=list)
    # Node id of the run whose baseline this is, when it was reused: runs that start from the
    # same commit, in the same kind of sandbox, share one baseline per worker process.
    baseline_from: str | None = None
    after: list[CheckResult] = Field(default_factory=list)
    rubric_commands: dict[str, CheckResult] = Field(default_factory=dict)  # by rubric item id


class WorkspaceRecord(BaseModel):
    """What the agent left in its workspace (the workspace itself is removed)."""

    files: list[str] = Field(default_factory=list)  # tracked and untracked, after the run
    files_changed: int = 0
    insertions: int = 0
    deletions: int = 0
    diff_file: str = "workspace.diff"
    # Changed files too big for the diff: their content shows as a one-line note there.
    cut: list[str] = Field(default_factory=list)


class ItemJudgment(BaseModel):
    """One judge's verdict on one rubric item; achieved None means N/A."""

    achieved: float | None
    reason: str = ""


class JudgeRecord(BaseModel):
    model: str
    status: Literal["ok", "failed"]
    error: str | None = None
    items: dict[str, ItemJudgment] = Field(default_factory=dict)
    overall_reasoning: str = ""
    score: float | None = None  # this judge's own score, with the command items
    tokens: TokenUsage = TokenUsage()
    cost_usd: float = 0.0
    latency_s: float = 0.0
    attempts: int = 0
    cached: bool = False  # reused from the judge cache: no request was made
    prompt_sha256: str | None = None
    # How the model was reached: "api" (anthropic SDK) or "cli" (the Claude Code CLI, for a
    # Claude login); None in records written before the CLI backend existed, or by a
    # plugin's own judge.
    backend: str | None = None


class ItemScore(BaseModel):
    item_id: str
    category: str
    max_points: float
    achieved: float | None  # None: N/A or unjudged (see source)
    source: Literal["command", "judges", "unjudged"]
    reason: str = ""


class ScoreRecord(BaseModel):
    score: float
    grade: str
    passed: bool
    pass_threshold: float
    category_scores: dict[str, float | None]
    items: list[ItemScore]
    unjudged_items: list[str] = Field(default_factory=list)
    partial: bool = False  # some items were not judged: the score covers judged items only


class ConsensusRecord(BaseModel):
    judges_used: list[str] = Field(default_factory=list)
    judges_failed: list[str] = Field(default_factory=list)
    judge_scores: dict[str, float] = Field(default_factory=dict)
    score_range: float | None = None  # max - min of the judges' own scores
    item_agreement: float | None = None  # share of items all judges scored the same


class RunError(BaseModel):
    stage: Stage
    message: str


class StageDurations(BaseModel):
    workspace_s: float = 0.0
    agent_s: float = 0.0
    checks_s: float = 0.0
    judge_s: float = 0.0


class AttemptRecord(BaseModel):
    """An earlier execution of the same run, kept when the run was executed again.

    Its files were moved to `files` (relative to the run folder), never deleted.
    """

    attempt: int  # 1 for the first execution
    outcome: Outcome
    stage: RunStage
    error: RunError | None = None
    timed_out: bool = False
    exit_code: int | None = None
    agent_cost_usd: float = 0.0
    judge_cost_usd: float = 0.0
    tokens: TokenUsage = TokenUsage()
    started_at: str | None = None
    finished_at: str | None = None
    files: str  # e.g. "attempts/1"


class JudgeSpend(Protocol):
    cost_usd: float
    cached: bool


class RunTotals:
    """What a run cost and how its agent ended, over every attempt: the same arithmetic for
    a full `RunRecord` and for the `RunHead` a resume reads (record_head.py)."""

    if TYPE_CHECKING:  # the models that mix this in declare these fields
        agent: AgentRecord | None
        attempts: list[AttemptRecord]

        @property
        def judges(self) -> Sequence[JudgeSpend]: ...

    @property
    def timed_out(self) -> bool:
        return self.agent is not None and self.agent.timed_out

    @property
    def exit_code(self) -> int | None:
        return self.agent.exit_code if self.agent else None

    @property
    def judge_cost_usd(self) -> float:
        return sum(judge.cost_usd for judge in self.judges if not judge.cached)

    @property
    def agent_cost_usd(self) -> float:
        """This attempt's agent spend (see total_agent_cost_usd for every attempt)."""
        return self.agent.cost_usd or 0.0 if self.agent else 0.0

    @property
    def total_agent_cost_usd(self) -> float:
        """Agent spend over every attempt of the run: what the run really cost."""
        return self.agent_cost_usd + sum(attempt.agent_cost_usd for attempt in self.attempts)

    @property
    def total_judge_cost_usd(self) -> float:
        return self.judge_cost_usd + sum(attempt.judge_cost_usd for attempt in self.attempts)

    @property
    def total_tokens(self) -> int:
        own = self.agent.tokens.total if self.agent else 0
        return own + sum(attempt.tokens.total for attempt in self.attempts)


class RunRecord(RunTotals, BaseModel):
    schema_version: int = SCHEMA_VERSION
    experiment_id: str
    tier: str
    subtest: str
    run: int
    node_id: str
    agent_name: str
    model: str | None = None
    judge_mode: str  # "llm" or "commands-only"
    judge_models: list[str] = Field(default_factory=list)
    outcome: Outcome
    error: RunError | None = None
    agent: AgentRecord | None = None
    checks: ChecksRecord | None = None
    workspace: WorkspaceRecord | None = None
    judges: list[JudgeRecord] = Field(default_factory=list)
    consensus: ConsensusRecord | None = None
    result: ScoreRecord | None = None
    config_manifest_sha256: str | None = None
    fixture_sha256: str | None = None
    durations: StageDurations = StageDurations()
    started_at: str
    finished_at: str
    stage: RunStage = "judged"
    attempts: list[AttemptRecord] = Field(default_factory=list)  # earlier executions
    # A judged run replaced on request (--scylla-rerun-failed): reports flag such runs, since
    # re-drawing only low scorers biases the statistics.
    replaced_judged_run: bool = False
    # Rebuilt from the saved agent output after its record was damaged or missing.
    rebuilt_from: list[str] = Field(default_factory=list)
    settings: RunSettings | None = None  # what produced this record (None before version 2)

    @property
    def agent_phase_done(self) -> bool:
        return (
            self.agent is not None
            and self.agent.finished
            and self.checks is not None
            and self.workspace is not None
        )

    def as_attempt(self, number: int, files: str) -> AttemptRecord:
        """This record summarized as an earlier attempt of its run."""
        return AttemptRecord(
            attempt=number,
            outcome=self.outcome,
            stage=self.stage,
            error=self.error,
            timed_out=self.timed_out,
            exit_code=self.exit_code,
            agent_cost_usd=self.agent_cost_usd,
            judge_cost_usd=self.judge_cost_usd,
            tokens=self.agent.tokens if self.agent else TokenUsage(),
            started_at=self.started_at,
            finished_at=self.finished_at,
            files=files,
        )


def run_dir(results_dir: Path, experiment_id: str, tier: str, subtest: str, run: int) -> Path:
    """The folder of one run's files (kept for callers; results_layout owns the layout)."""
    from pytest_scylla.results_layout import run_dir as layout_run_dir

    return layout_run_dir(results_dir, experiment_id, tier, subtest, run)


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


# What atomic_write_text's temporary files are called: `.<name>.<8 random chars>.tmp`.
_UNFINISHED_WRITE = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


def remove_unfinished_writes(folder: Path, keep: Collection[str]) -> list[Path]:
    """Delete the temporary files of atomic writes that never finished under `folder` (a
    process killed between writing and renaming), and return them; the sub-folders named in
    `keep` are not looked into (earlier attempts, files named by someone else). Their text
    never became a file: they are no result, and an attempt moved aside must not carry
    them. Only for a folder no live process writes to."""
    removed = []
    for path in folder.rglob("*.tmp"):
        if path.relative_to(folder).parts[0] in keep:
            continue
        if _UNFINISHED_WRITE.fullmatch(path.name) and path.is_file() and not path.is_symlink():
            path.unlink()
            removed.append(path)
    return removed


def write_text_if_changed(path: Path, text: str) -> bool:
    """Write atomically unless the file already holds exactly this text (keeps mtimes and
    bytes of unchanged results untouched); returns whether it wrote."""
    # Bytes, not text: a file damaged into non-UTF-8 is simply different, not an error.
    if path.is_file() and path.read_bytes() == text.encode("utf-8"):
        return False
    atomic_write_text(path, text)
    return True


def _json_text(model: BaseModel) -> str:
    """The text of a model's JSON file: indented, ending with a newline."""
    return model.model_dump_json(indent=2) + "\n"


def atomic_write_json(path: Path, model: BaseModel) -> None:
    atomic_write_text(path, _json_text(model))


def write_json_if_changed(path: Path, model: BaseModel) -> bool:
    """write_text_if_changed for a model, formatted as atomic_write_json formats it."""
    return write_text_if_changed(path, _json_text(model))


def dump_record(record: RunRecord) -> str:
    return _json_text(record)


class DamagedRecord(Exception):
    """A run record exists but cannot be read: reported by name and treated as missing."""


class NewerSchema(Exception):
    """A record written by a newer pytest-scylla: this version cannot know what it means."""


def migrate(data: dict[str, Any], path: Path | str) -> dict[str, Any]:
    """A record's JSON brought to SCHEMA_VERSION; raises NewerSchema for a newer one."""
    version = data.get("schema_version", 1)
    if not isinstance(version, int):
        raise ValueError(f"schema_version {version!r} is not a number")
    if version > SCHEMA_VERSION:
        raise NewerSchema(
            f"{path}: run record schema_version {version} is newer than this pytest-scylla "
            f"understands ({SCHEMA_VERSION}); upgrade pytest-scylla or use another --results-dir"
        )
    if version < 2:
        # Version 1 had no stage: a judged outcome is complete; an error whose agent phase
        # finished needs judging only; any other error needs the agent again.
        data = dict(data)
        agent = data.get("agent") or {}
        agent_done = (
            bool(agent)
            and agent.get("finished", True)
            and data.get("checks") is not None
            and data.get("workspace") is not None
        )
        if data.get("outcome") in ("passed", "failed"):
            data["stage"] = "judged"
        else:
            data["stage"] = "agent-done" if agent_done else "started"
        data["schema_version"] = SCHEMA_VERSION
    return data


def parse_record(raw: bytes, path: Path | str) -> RunRecord:
    """A record from its file's bytes, migrated; DamagedRecord or NewerSchema otherwise."""
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return RunRecord.model_validate(migrate(data, path))
    except NewerSchema:
        raise
    except (ValueError, ValidationError) as error:
        raise DamagedRecord(f"{path}: damaged run record ({error.__class__.__name__})") from error

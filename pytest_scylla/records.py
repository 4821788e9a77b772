"""Run records: the one source of truth for a run, and how they reach the disk.

Every file is written atomically (temp file in the same folder, fsync, `os.replace`), so a
killed worker or Ctrl-C leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

SCHEMA_VERSION = 1
RUN_RECORD_FILE = "run_result.json"

Outcome = Literal["passed", "failed", "error"]
Stage = Literal["workspace", "sandbox", "agent", "checks", "judge", "score"]


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


class RunRecord(BaseModel):
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

    @property
    def agent_phase_done(self) -> bool:
        return (
            self.agent is not None
            and self.agent.finished
            and self.checks is not None
            and self.workspace is not None
        )

    @property
    def judge_cost_usd(self) -> float:
        return sum(judge.cost_usd for judge in self.judges if not judge.cached)

    @property
    def agent_cost_usd(self) -> float:
        return self.agent.cost_usd or 0.0 if self.agent else 0.0


def run_dir(results_dir: Path, experiment_id: str, tier: str, subtest: str, run: int) -> Path:
    """The folder of one run's files: `<results>/<experiment>/<tier>/<sub-test>/run-NN`."""
    return results_dir / experiment_id / tier / subtest / f"run-{run:02d}"


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


def write_text_if_changed(path: Path, text: str) -> bool:
    """Write atomically unless the file already holds exactly this text (keeps mtimes and
    bytes of unchanged results untouched); returns whether it wrote."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
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


def load_record(path: Path) -> RunRecord | None:
    if not path.is_file():
        return None
    try:
        return RunRecord.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError) as error:
        raise DamagedRecord(
            f"{path}: damaged run record ({error.__class__.__name__}); running it again"
        ) from error

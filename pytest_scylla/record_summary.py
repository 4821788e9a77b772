"""What the settings check, `--scylla-status` and recovery need from a run record, read cheaply.

A full `RunRecord` validation costs most of a millisecond; these summaries read only the
fields they declare (pydantic ignores the rest while parsing the JSON), so 10,000 records
take well under a second. Old records without `settings` still give the fields they had.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pytest_scylla.run_settings import RunSettings

RUN_RECORD_FILE = "run_result.json"  # the same name records.py writes (not imported: cheap)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class AgentSummary(_Lenient):
    finished: bool = True
    timed_out: bool = False
    cost_usd: float | None = None


class JudgeSummary(_Lenient):
    model: str
    status: str
    cost_usd: float = 0.0
    cached: bool = False


class ResultSummary(_Lenient):
    passed: bool
    pass_threshold: float
    partial: bool = False


class ErrorSummary(_Lenient):
    stage: str = ""
    message: str = ""


class RecordSummary(_Lenient):
    experiment_id: str
    tier: str
    subtest: str
    run: int
    agent_name: str
    model: str | None = None
    judge_mode: str = "llm"
    judge_models: list[str] = Field(default_factory=list)
    outcome: str
    error: ErrorSummary | None = None
    agent: AgentSummary | None = None
    # Only whether the agent phase left them matters; Any skips validating their contents.
    checks: Any = None
    workspace: Any = None
    judges: list[JudgeSummary] = Field(default_factory=list)
    result: ResultSummary | None = None
    fixture_sha256: str | None = None
    settings: RunSettings | None = None
    # Earlier attempts of this run (kept by the runner when a run is executed again).
    attempts: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def agent_phase_done(self) -> bool:
        """The same rule as `RunRecord.agent_phase_done`: judging can start from the disk."""
        return (
            self.agent is not None
            and self.agent.finished
            and self.checks is not None
            and self.workspace is not None
        )

    @property
    def agent_cost_usd(self) -> float:
        return (self.agent.cost_usd or 0.0) if self.agent else 0.0

    @property
    def judge_cost_usd(self) -> float:
        return sum(judge.cost_usd for judge in self.judges if not judge.cached)

    @property
    def judged_by(self) -> set[str]:
        return {judge.model for judge in self.judges if judge.status == "ok"}

    @property
    def judge_incomplete(self) -> bool:
        """Judged by fewer models than its panel asked for (a partial consensus)."""
        if self.judge_mode != "llm" or not self.agent_phase_done:
            return False
        return not set(self.judge_models) <= self.judged_by or bool(
            self.result and self.result.partial
        )

    @property
    def attempt_count(self) -> int:
        return len(self.attempts) + 1

    def attempts_cost_usd(self) -> float:
        """Agent and judge spend of the earlier attempts, whatever their exact shape."""
        total = 0.0
        for attempt in self.attempts:
            for key in ("agent_cost_usd", "judge_cost_usd", "cost_usd"):
                value = attempt.get(key)
                if isinstance(value, int | float):
                    total += float(value)
        return total


class DamagedSummary(Exception):
    """The record exists but cannot be read."""


def read_summary(path: Path) -> RecordSummary | None:
    """The summary of the record at `path`, None when there is none."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise DamagedSummary(f"{path}: {error}") from error
    try:
        return RecordSummary.model_validate_json(data)
    except (ValidationError, ValueError) as error:
        raise DamagedSummary(f"{path}: damaged run record") from error


def read_summary_or_none(path: Path) -> RecordSummary | None:
    """As `read_summary`, with a damaged record counted as missing (the runner redoes it)."""
    try:
        return read_summary(path)
    except DamagedSummary:
        return None


# How records.dump_record writes the top-level key (indent 2): a newline never occurs inside
# a JSON string, so this byte sequence can only be the record's own `settings`.
_SETTINGS_KEY = b'\n  "settings": '
_DECODER = json.JSONDecoder()


class SettingsReader:
    """The `settings` of many records, fast: only that object is parsed, and records with
    byte-identical settings (all runs of a sub-test) share one validated model."""

    def __init__(self) -> None:
        self._parsed: dict[bytes, RunSettings] = {}

    def read(self, path: Path) -> RunSettings | RecordSummary | None:
        """The record's settings; its summary when it has none (an older record) or is
        written some other way; None when there is no readable record."""
        try:
            raw = path.read_bytes()
        except OSError:
            return None
        start = raw.rfind(_SETTINGS_KEY)
        if start >= 0:
            start += len(_SETTINGS_KEY)
            end = raw.find(b"\n  }", start)
            segment = raw[start : end + 4] if end >= 0 else b""
            known = self._parsed.get(segment)
            if known is not None:
                return known
            try:
                value, _ = _DECODER.raw_decode(segment.decode("utf-8"))
                settings = RunSettings.model_validate(value) if value is not None else None
            except (ValueError, ValidationError):
                settings = None
            if settings is not None:
                self._parsed[segment] = settings
                return settings
        try:
            return RecordSummary.model_validate_json(raw)
        except ValidationError:
            return None


def legacy_values(summary: RecordSummary) -> dict[str, object]:
    """The comparable settings an old record (no `settings`) still shows, by field name."""
    values: dict[str, object] = {
        "agent": summary.agent_name,
        "judge_mode": summary.judge_mode,
        "judge_panel": list(summary.judge_models),
    }
    if summary.model is not None:
        values["model"] = summary.model
    if summary.fixture_sha256 is not None:
        values["fixture_sha256"] = summary.fixture_sha256
    if summary.result is not None:
        values["pass_threshold"] = summary.result.pass_threshold
    return values

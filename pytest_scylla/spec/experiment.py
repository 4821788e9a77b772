"""Models of `test.yaml` and `config.yaml`, compatible with upstream task directories."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

TIER_IDS = ("T0", "T1", "T2", "T3", "T4", "T5", "T6")
TierId = Annotated[str, Field(pattern=r"^T[0-6]$")]
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class SourceSpec(BaseModel):
    """Where the starting repository comes from: a shipped folder (`path`) or a git repo."""

    model_config = ConfigDict(extra="forbid")

    repo: str | None = None
    hash: str | None = None
    path: str | None = None  # a repository shipped inside the experiment (works offline)
    ref: str | None = None


class TaskSpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    prompt_file: str = "prompt.md"
    timeout_seconds: float | None = Field(default=None, gt=0)


class ValidationSpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    criteria_file: str = "expected/criteria.md"
    rubric_file: str = "expected/rubric.yaml"


class CheckCommand(BaseModel):
    """A pipeline step run before and after the agent (build, lint, tests)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    command: str
    timeout_seconds: float = Field(default=300, gt=0)


class ExperimentSpec(BaseModel):
    """`test.yaml`."""

    model_config = ConfigDict(extra="allow")

    id: str
    name: str = ""
    description: str = ""
    language: str = ""
    source: SourceSpec = SourceSpec()
    task: TaskSpec = TaskSpec()
    validation: ValidationSpec = ValidationSpec()
    tiers: list[str] = Field(default_factory=lambda: list(TIER_IDS))
    checks: list[CheckCommand] = Field(default_factory=list)
    solution: str | None = None  # script or patch applied by the oracle agent
    dry_run: str | None = None  # scripted model for a zero-cost run of the real agent

    @field_validator("id")
    @classmethod
    def _id_is_a_safe_path_part(cls, value: str) -> str:
        if not _SAFE_ID.match(value):
            raise ValueError(f"{value!r} must be letters, digits, '.', '_' or '-'")
        return value

    @field_validator("tiers")
    @classmethod
    def _known_tiers(cls, value: list[str]) -> list[str]:
        unknown = [tier for tier in value if tier not in TIER_IDS]
        if unknown:
            raise ValueError(f"unknown tier {', '.join(unknown)} (known: {', '.join(TIER_IDS)})")
        if len(set(value)) != len(value):
            raise ValueError("a tier is listed twice")
        return value


class ExperimentConfig(BaseModel):
    """`config.yaml`: per-experiment overrides."""

    model_config = ConfigDict(extra="allow")

    timeout_seconds: float | None = Field(default=None, gt=0)
    max_cost_usd: float | None = Field(default=None, ge=0)

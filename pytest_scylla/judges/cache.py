"""A disk cache of validated judgments, keyed on the exact request.

Same model + byte-identical request = same question; re-asking it (a re-run after a crash,
a regenerated report, a benchmark repeated) would only spend money. The request carries
nothing stochastic (no timestamps, no random ids), so equal runs give equal keys. Only
validated answers are stored: a failure is never cached.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from pytest_scylla.records import ItemJudgment, JudgeRecord, TokenUsage, atomic_write_json

CACHE_SCHEMA_VERSION = 1


class CacheEntry(BaseModel):
    """One file `<directory>/<key[:2]>/<key>.json`."""

    schema_version: int = CACHE_SCHEMA_VERSION
    key: str
    model: str
    items: dict[str, ItemJudgment]
    overall_reasoning: str
    tokens: TokenUsage
    cost_usd: float = 0.0  # what the original request cost; a hit costs nothing
    prompt_sha256: str | None = None


def canonical_json(obj: Any) -> str:
    """The one JSON form that is hashed or compared: sorted keys, no spaces, text as is."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_key(model: str, canonical_request: str) -> str:
    """sha256 of the model and the canonical JSON (`canonical_json`) of the whole request."""
    return hashlib.sha256(f"{model}\n{canonical_request}".encode()).hexdigest()


class JudgeCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> JudgeRecord | None:
        """The cached judgment as a JudgeRecord with cached=True, or None."""
        path = self._path(key)
        try:
            entry = CacheEntry.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, ValidationError):
            return None  # missing or damaged: ask the model again
        if entry.schema_version != CACHE_SCHEMA_VERSION or entry.key != key:
            return None
        return JudgeRecord(
            model=entry.model,
            status="ok",
            items=entry.items,
            overall_reasoning=entry.overall_reasoning,
            tokens=entry.tokens,
            cost_usd=entry.cost_usd,
            attempts=0,
            cached=True,
            prompt_sha256=entry.prompt_sha256,
        )

    def put(self, key: str, record: JudgeRecord) -> None:
        if record.status != "ok":
            return
        entry = CacheEntry(
            key=key,
            model=record.model,
            items=record.items,
            overall_reasoning=record.overall_reasoning,
            tokens=record.tokens,
            cost_usd=record.cost_usd,
            prompt_sha256=record.prompt_sha256,
        )
        atomic_write_json(self._path(key), entry)

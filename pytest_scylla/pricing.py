"""USD prices per million tokens, and the cost of a TokenUsage.

Prices live in `data/pricing.yaml` so a price change is a data edit. A model id matches an
entry exactly or through the longest entry that is a prefix of it followed by `-` (dated ids
such as `claude-sonnet-4-5-20250929` resolve to `claude-sonnet-4-5`). An unknown model is an
error (`UnknownModelPrice`) unless the caller asks for `cost_or_none`: a silently zero cost
would make Cost-of-Pass look free.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from pytest_scylla.records import TokenUsage

PER_MILLION = 1_000_000


class ModelPrice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_write: float = Field(ge=0)  # 5-minute ephemeral cache write
    cache_read: float = Field(ge=0)

    def cost(self, usage: TokenUsage) -> float:
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_creation_input_tokens * self.cache_write
            + usage.cache_read_input_tokens * self.cache_read
        ) / PER_MILLION


class UnknownModelPrice(KeyError):
    """No price for a model: fix `data/pricing.yaml` or pass a table that has it."""

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.model = model

    def __str__(self) -> str:
        return (
            f"no price known for model {self.model!r}: add it (or a prefix of it) to "
            "pytest_scylla/data/pricing.yaml"
        )


class PricingTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: dict[str, ModelPrice]
    aliases: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> PricingTable:
        """The packaged table, or the YAML file at `path`."""
        if path is None:
            return _packaged()
        return cls.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))

    def price_for(self, model: str) -> ModelPrice:
        model = self.aliases.get(model, model)
        if model in self.models:
            return self.models[model]
        # Longest prefix first, so claude-opus-4-5-... is not priced as claude-opus-4.
        for prefix in sorted(self.models, key=len, reverse=True):
            if model.startswith(prefix + "-"):
                return self.models[prefix]
        raise UnknownModelPrice(model)

    def knows(self, model: str) -> bool:
        try:
            self.price_for(model)
        except UnknownModelPrice:
            return False
        return True

    def cost(self, model: str, usage: TokenUsage) -> float:
        """USD for `usage` on `model`; raises UnknownModelPrice for a model not in the table."""
        return self.price_for(model).cost(usage)

    def cost_or_none(self, model: str, usage: TokenUsage) -> float | None:
        """Like `cost`, but None for an unknown model (the caller records "cost unknown")."""
        try:
            return self.cost(model, usage)
        except UnknownModelPrice:
            return None


@cache
def _packaged() -> PricingTable:
    text = resources.files("pytest_scylla").joinpath("data/pricing.yaml").read_text("utf-8")
    return PricingTable.model_validate(yaml.safe_load(text))

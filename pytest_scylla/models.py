"""Model names as users type them: upstream's short names, and which models we can price.

Upstream's scripts took `opus-4-5`, `sonnet-4-5`, `haiku-4-5`; the API and Claude Code
want `claude-opus-4-5`. A short name maps to `claude-<name>` when the price table knows
that id (dated short names such as `sonnet-4-5-20250929` too). A model the table cannot
price is refused at start-up, before an agent is paid for, unless the user says
`--scylla-allow-unpriced-model` (a new model: its cost is then recorded as 0).
"""

from __future__ import annotations

from pytest_scylla.pricing import PricingTable

CLAUDE_PREFIX = "claude-"


def resolve_model_name(name: str, pricing: PricingTable | None = None) -> str:
    """`opus-4-5` -> `claude-opus-4-5`; any other name is returned as given."""
    table = pricing or PricingTable.load()
    if table.knows(name) or name.startswith(CLAUDE_PREFIX):
        return name
    full = CLAUDE_PREFIX + name
    return full if table.knows(full) else name


def priced_models(pricing: PricingTable | None = None) -> list[str]:
    """The ids and aliases the price table knows (dated ids of a family resolve too)."""
    table = pricing or PricingTable.load()
    return sorted(table.models) + sorted(table.aliases)


def short_names(pricing: PricingTable | None = None) -> list[str]:
    table = pricing or PricingTable.load()
    return sorted(model.removeprefix(CLAUDE_PREFIX) for model in table.models)


def is_priced(name: str, pricing: PricingTable | None = None) -> bool:
    return (pricing or PricingTable.load()).knows(name)

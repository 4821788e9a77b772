"""The pricing table against the costs Claude Code itself recorded in upstream's dry run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import UPSTREAM

from pytest_scylla.pricing import PricingTable, UnknownModelPrice
from pytest_scylla.records import TokenUsage

DRY_RUNS = UPSTREAM / "dryrun-test-001"


def upstream_model_usage() -> list[tuple[str, TokenUsage, float]]:
    found: list[tuple[str, TokenUsage, float]] = []
    for log in sorted(DRY_RUNS.glob("*/*/run_01/agent/stdout.log")):
        for line in log.read_text(encoding="utf-8").splitlines():
            if '"type":"result"' not in line.replace(" ", ""):
                continue
            event = json.loads(line)
            for model, usage in (event.get("modelUsage") or {}).items():
                tokens = TokenUsage(
                    input_tokens=usage["inputTokens"],
                    output_tokens=usage["outputTokens"],
                    cache_creation_input_tokens=usage["cacheCreationInputTokens"],
                    cache_read_input_tokens=usage["cacheReadInputTokens"],
                )
                found.append((model, tokens, usage["costUSD"]))
    return found


@pytest.mark.skipif(not DRY_RUNS.is_dir(), reason="upstream dry-run data not available")
def test_matches_upstream_cost_usd_within_one_percent() -> None:
    table = PricingTable.load()
    entries = upstream_model_usage()
    assert len({model for model, _, _ in entries}) >= 3  # sonnet, haiku and opus seen
    for model, tokens, cost_usd in entries:
        ours = table.cost(model, tokens)
        assert ours == pytest.approx(cost_usd, rel=0.01), (model, tokens, cost_usd, ours)


def test_longest_prefix_wins() -> None:
    table = PricingTable.load()
    assert table.price_for("claude-opus-4-5-20251101").input == 5.0
    assert table.price_for("claude-opus-4-20250514").input == 15.0
    assert table.price_for("claude-opus-4-1-20250805").input == 15.0
    assert table.price_for("claude-haiku-4-5").output == 5.0
    assert table.price_for("sonnet") == table.price_for("claude-sonnet-4-6")


def test_prefix_needs_a_dash_boundary() -> None:
    table = PricingTable.load()
    with pytest.raises(UnknownModelPrice):
        table.price_for("claude-opus-40")


def test_unknown_model_is_a_clear_error() -> None:
    table = PricingTable.load()
    with pytest.raises(UnknownModelPrice, match=r"pricing\.yaml"):
        table.cost("gpt-4o", TokenUsage(input_tokens=10))
    assert table.cost_or_none("gpt-4o", TokenUsage(input_tokens=10)) is None
    assert not table.knows("gpt-4o")


def test_cost_arithmetic() -> None:
    table = PricingTable.load()
    usage = TokenUsage(
        input_tokens=1_000_000,
        output_tokens=1_000_000,
        cache_creation_input_tokens=1_000_000,
        cache_read_input_tokens=1_000_000,
    )
    assert table.cost("claude-sonnet-4-5", usage) == pytest.approx(3 + 15 + 3.75 + 0.30)


def test_load_from_path(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "models:\n  judge-x: {input: 1, output: 2, cache_write: 0, cache_read: 0}\n",
        encoding="utf-8",
    )
    table = PricingTable.load(path)
    assert table.cost("judge-x", TokenUsage(input_tokens=500_000, output_tokens=500_000)) == 1.5

"""The terminal's spend line: an agent that reports no cost shows n/a, never $0."""

from __future__ import annotations

import pytest
from experiment_factory import write_experiment


def test_an_agent_without_a_cost_prints_na_not_zero(pytester: pytest.Pytester) -> None:
    experiment = write_experiment(pytester.path, "exp-spend")
    result = pytester.runpytest(
        str(experiment), "--runs", "1", "--max-subtests", "1", "--agent", "oracle",
        "--judge-model", "none", "--results-dir", str(pytester.path / "results"),
        "-p", "no:cacheprovider",
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    spend = [line for line in result.outlines if line.strip().startswith("spend:")]
    assert len(spend) == 1, result.outlines
    assert "agent n/a (the agent reports no cost)" in spend[0]
    assert "$0.0000" not in spend[0].split(",")[0]

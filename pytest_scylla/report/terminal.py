"""The tier table printed at the end of a session."""

from __future__ import annotations

import math

from pytest_scylla.aggregate import ExperimentResult


def _money(value: float | None) -> str:
    if value is None:
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"${value:.4f}"


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def tier_table(result: ExperimentResult) -> list[str]:
    header = (
        "tier",
        "runs",
        "pass",
        "fail",
        "error",
        "pass rate",
        "95% CI",
        "mean",
        "median",
        "agent $",
        "judge $",
        "cost/pass",
        "best sub-test",
    )
    rows = [header]
    for tier, tier_result in result.tiers.items():
        stats = tier_result.stats
        low, high = stats.pass_rate_ci if stats.n else (None, None)
        rows.append(
            (
                tier,
                str(tier_result.counts.total),
                str(tier_result.counts.passed),
                str(tier_result.counts.failed),
                str(tier_result.counts.error),
                _number(stats.pass_rate, 2) if stats.n else "n/a",
                f"{low:.2f}-{high:.2f}" if low is not None and high is not None else "n/a",
                _number(stats.mean_score),
                _number(stats.median_score),
                _money(tier_result.agent_cost_usd),
                _money(tier_result.judge_cost_usd),
                _money(stats.cost_of_pass) if stats.n else "n/a",
                tier_result.best_subtest or "-",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines

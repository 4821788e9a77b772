"""The tier table printed at the end of a session.

Runs = pass + fail + error; "timeout" counts the judged runs (pass or fail) whose agent ran
out of time, so the pass rate visibly includes them. Errors stand beside the rate.
"""

from __future__ import annotations

import math

from pytest_scylla.aggregate import ExperimentResult
from pytest_scylla.report.tables import NOT_AVAILABLE, fmt_score, fmt_usd


def _money(value: float | None) -> str:
    return "inf" if value is not None and math.isinf(value) else fmt_usd(value)


def _rate(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else f"{value:.2f}"


def tier_table(result: ExperimentResult) -> list[str]:
    header = (
        "tier",
        "runs",
        "pass",
        "fail",
        "timeout",
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
        # Wilson's interval is (0, 1) without runs: show n/a instead.
        low, high = stats.pass_rate_ci if stats.n else (None, None)
        known = any(
            run.agent_cost_usd is not None
            for subtest in tier_result.subtests.values()
            for run in subtest.runs
        )
        rows.append(
            (
                tier,
                str(tier_result.counts.total),
                str(tier_result.counts.passed),
                str(tier_result.counts.failed),
                str(tier_result.counts.timed_out),  # of the judged runs: inside pass + fail
                str(tier_result.counts.error),
                _rate(stats.pass_rate),  # over judged runs, timed-out ones included
                f"{low:.2f}-{high:.2f}" if low is not None and high is not None else NOT_AVAILABLE,
                fmt_score(stats.mean_score),
                fmt_score(stats.median_score),
                # Unknown spend (the agent reports none) is n/a, never $0.
                _money(tier_result.agent_cost_usd if known else None),
                _money(tier_result.judge_cost_usd),
                _money(stats.cost_of_pass),  # None without judged runs or known costs
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

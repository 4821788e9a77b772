"""pytest-scylla in a CI step: per-run JUnit properties, the GitHub step summary, the exit policy.

- `--junitxml`: each run's outcome, score, grade, cost and tokens become `<property>`s of its
  test case. pytest's junitxml writes the properties of the teardown report, which pytest
  builds from `item.user_properties`; they are added when the setup report is made, so the
  teardown report carries them through the plugin's redacting makereport wrapper.
- `GITHUB_STEP_SUMMARY`: the tier table of each experiment, as Markdown, appended (a step's
  earlier commands wrote there too) and redacted.
- `--scylla-fail-on error|failed|never`: which outcomes make the exit status non-zero, so an
  experiment can run in CI and go red only when the harness could not finish a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import pytest

from pytest_scylla.record_head import RunHead
from pytest_scylla.records import RunRecord
from pytest_scylla.redact import Redactor

STEP_SUMMARY_VARIABLE = "GITHUB_STEP_SUMMARY"
NOT_AVAILABLE = "n/a"
PROPERTY_PREFIX = "scylla_"
FailOn = Literal["error", "failed", "never"]
# The marker every run item carries (collect.RunItem), seen in report.keywords on the controller.
RUN_MARKER = "scylla"


# ---- JUnit properties ---------------------------------------------------------------------


def junit_properties(record: RunRecord | RunHead) -> list[tuple[str, object]]:
    """The run's CI-relevant figures as (name, value) pairs; n/a where the run has none.

    Costs and tokens cover every attempt of the run: what the run really cost.
    """
    result = record.result
    agent = record.agent
    # Unknown is not zero: an agent that reports no cost (nop, oracle, most commands) says n/a.
    cost_known = (agent is not None and agent.cost_usd is not None) or any(
        attempt.agent_cost_usd for attempt in record.attempts
    )
    tokens_known = (agent is not None and bool(agent.tokens_by_model)) or any(
        attempt.tokens.total for attempt in record.attempts
    )
    pairs: list[tuple[str, object]] = [
        ("outcome", record.outcome),
        ("score", f"{result.score:.4f}" if result else NOT_AVAILABLE),
        ("grade", result.grade if result else NOT_AVAILABLE),
        ("pass_threshold", f"{result.pass_threshold:.2f}" if result else NOT_AVAILABLE),
        (
            "agent_cost_usd",
            f"{record.total_agent_cost_usd:.6f}" if cost_known else NOT_AVAILABLE,
        ),
        ("judge_cost_usd", f"{record.total_judge_cost_usd:.6f}"),
        ("tokens", record.total_tokens if tokens_known else NOT_AVAILABLE),
        ("judge_mode", record.judge_mode),
        ("timed_out", record.timed_out),
        ("error_stage", record.error.stage if record.error else NOT_AVAILABLE),
    ]
    return [(PROPERTY_PREFIX + name, value) for name, value in pairs]


def add_junit_properties(item: pytest.Item, record: RunRecord | RunHead) -> None:
    """Put the run's properties on the item once (a report is made per stage)."""
    names = {name for name, _ in item.user_properties}
    for name, value in junit_properties(record):
        if name not in names:
            item.user_properties.append((name, value))


# ---- GITHUB_STEP_SUMMARY ------------------------------------------------------------------


def step_summary_markdown(report_markdown: str, results_path: Path) -> str:
    """One experiment's part of the step summary: report.md's summary (its header lines and
    tier table, up to the section after "Tiers"), headings one level down, and where the
    full report is."""
    lines = report_markdown.splitlines()
    kept: list[str] = []
    sections = 0
    for line in lines:
        if line.startswith("## "):
            sections += 1
            if sections > 1:
                break
        kept.append("#" + line if line.startswith("#") else line)
    while kept and not kept[-1].strip():
        kept.pop()
    kept += ["", f"Full report: `{results_path / 'report.md'}`", ""]
    return "\n".join(kept)


def append_step_summary(
    environ: Mapping[str, str], parts: list[str], redactor: Redactor
) -> Path | None:
    """Append the parts to the file GITHUB_STEP_SUMMARY names (never truncating it); the
    path written, or None when the variable is unset or empty or there is nothing to add."""
    target = environ.get(STEP_SUMMARY_VARIABLE, "")
    if not target or not parts:
        return None
    path = Path(target)
    text = redactor("\n".join(parts))
    # O_APPEND: other commands of the step may append to the same file.
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text if text.endswith("\n") else text + "\n")
    return path


# ---- the exit policy ----------------------------------------------------------------------


class ExitPolicy:
    """Sets the session's exit status from what failed, per `--scylla-fail-on`.

    `error`: red only for errors (harness or API errors of runs, collection errors, other
    tests' failures and errors); a run that was judged and scored low is not one.
    `never`: green whenever the session ran to its end with runs collected.
    `failed`: red for failed and errored runs alike, as pytest itself decides.
    Usage errors, internal errors, interruptions and empty sessions keep pytest's status.
    Registered on the controller only: with xdist every report reaches it.
    """

    def __init__(self, fail_on: FailOn) -> None:
        self.fail_on = fail_on
        self.low_scores = 0  # judged runs below their pass threshold
        self.errors = 0  # anything else that failed

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.errors += 1

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not report.failed:
            return
        if report.when == "call" and RUN_MARKER in report.keywords:
            self.low_scores += 1
        else:
            self.errors += 1

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        session.exitstatus = self.exit_status(session.exitstatus)

    def exit_status(self, status: int | pytest.ExitCode) -> int | pytest.ExitCode:
        if status != pytest.ExitCode.TESTS_FAILED:
            return status  # ok, interrupted, usage or internal error, nothing collected
        if self.fail_on == "never":
            return pytest.ExitCode.OK
        if self.fail_on == "error" and self.errors == 0:
            return pytest.ExitCode.OK
        return status

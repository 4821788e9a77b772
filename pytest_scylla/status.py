"""`--scylla-status`: what is on disk, what the same command would execute, and its cost.

No agent, no judge, no network, no credentials: only the run records are read (as
summaries). The decision of what a run still needs mirrors the runner's: a complete run is
reused, an errored one resumes from the step that failed, a missing one runs in full.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from pytest_scylla.record_summary import RecordSummary
from pytest_scylla.settings import ScyllaSettings
from pytest_scylla.settings_check import Conflict, PlannedRun


class Counts(BaseModel):
    runs: int = 0
    passed: int = 0
    failed: int = 0
    timed_out: int = 0
    errored: int = 0
    missing: int = 0
    judge_incomplete: int = 0
    attempts: int = 0
    agent_runs: int = 0  # what the same command without --scylla-status would execute
    judge_calls: int = 0
    cannot_judge: int = 0  # rejudge only: no finished agent output to judge

    def add(self, other: Counts) -> None:
        for name in Counts.model_fields:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Spend:
    """Spend seen on disk, to price the work still to do."""

    agent_usd: float = 0.0
    agent_runs: int = 0
    judge_usd: float = 0.0
    judge_calls: int = 0

    def mean_agent(self) -> float | None:
        return self.agent_usd / self.agent_runs if self.agent_runs else None

    def mean_judge(self) -> float | None:
        return self.judge_usd / self.judge_calls if self.judge_calls else None


@dataclass
class ExperimentStatus:
    experiment_id: str
    subtests: dict[tuple[str, str], Counts] = field(default_factory=dict)
    spend: Spend = field(default_factory=Spend)

    def total(self) -> Counts:
        total = Counts()
        for counts in self.subtests.values():
            total.add(counts)
        return total


def build_status(
    planned: list[tuple[PlannedRun, RecordSummary | None]], settings: ScyllaSettings
) -> list[ExperimentStatus]:
    experiments: dict[str, ExperimentStatus] = {}
    llm_needed: dict[str, bool] = {}
    for run, summary in planned:
        experiment = run.experiment
        status = experiments.setdefault(experiment.id, ExperimentStatus(experiment.id))
        counts = status.subtests.setdefault((run.subtest.tier, run.subtest.id), Counts())
        if experiment.id not in llm_needed:
            # A rubric whose every item is a command asks no judge anything.
            llm_needed[experiment.id] = any(
                item.command is None for item in experiment.normalized_rubric.items()
            )
        counts.runs += 1
        _count_disk(counts, summary)
        _count_spend(status.spend, summary)
        agent_runs, judge_calls, cannot_judge = work_to_do(
            summary, settings, llm=llm_needed[experiment.id]
        )
        counts.agent_runs += agent_runs
        counts.judge_calls += judge_calls
        counts.cannot_judge += cannot_judge
    return list(experiments.values())


def _count_disk(counts: Counts, summary: RecordSummary | None) -> None:
    if summary is None:
        counts.missing += 1
        return
    counts.attempts += summary.attempt_count
    if summary.outcome == "passed":
        counts.passed += 1
    elif summary.outcome == "failed":
        counts.failed += 1
    else:
        counts.errored += 1
    if summary.agent is not None and summary.agent.timed_out:
        counts.timed_out += 1
    if summary.judge_incomplete:
        counts.judge_incomplete += 1


def _count_spend(spend: Spend, summary: RecordSummary | None) -> None:
    if summary is None:
        return
    if summary.agent is not None and summary.agent.cost_usd is not None:
        spend.agent_usd += summary.agent.cost_usd
        spend.agent_runs += 1
    for judge in summary.judges:
        if judge.status == "ok" and not judge.cached:
            spend.judge_usd += judge.cost_usd
            spend.judge_calls += 1


def work_to_do(
    summary: RecordSummary | None, settings: ScyllaSettings, *, llm: bool
) -> tuple[int, int, int]:
    """(agent runs, judge calls, runs a rejudge cannot judge) for one run, as the runner
    would decide under these settings."""
    panel = settings.judge_models if llm else []
    if settings.regenerate:
        return 0, 0, 0
    if settings.rejudge:
        if summary is None or not summary.agent_phase_done:
            return 0, 0, 1
        new_judges = set(settings.add_judges) - summary.judged_by
        return 0, len(new_judges) if new_judges and llm else len(panel), 0
    if summary is None:
        return 1, len(panel), 0
    rerun = summary.outcome == "failed" and settings.rerun_failed
    if summary.outcome != "error" and not rerun and set(panel) <= summary.judged_by:
        return 0, 0, 0
    if summary.agent_phase_done and not rerun:
        return 0, len(set(panel) - summary.judged_by), 0
    return 1, len(panel), 0


def render_status(
    statuses: list[ExperimentStatus],
    settings: ScyllaSettings,
    conflict: Conflict | None,
    results_dir: Path,
) -> list[str]:
    lines = [
        f"pytest-scylla status of {results_dir} (nothing was run)",
        "  columns: runs selected; passed, failed, timed out, errored, missing on disk;"
        " judge-incomplete; attempts; agent runs and judge calls still to do",
    ]
    header = (
        f"  {'tier/sub-test':<32} {'runs':>5} {'pass':>5} {'fail':>5} {'t/out':>5} {'error':>5}"
        f" {'miss':>5} {'j-inc':>5} {'att':>5} {'agent':>6} {'judge':>6}"
    )
    grand = Counts()
    for status in statuses:
        lines.append(status.experiment_id)
        lines.append(header)
        for (tier, subtest), counts in sorted(status.subtests.items()):
            lines.append(_row(f"{tier}/{subtest}", counts))
        total = status.total()
        grand.add(total)
        lines.append(_row("total", total))
        if conflict is None:
            lines.append("  " + _cost_line(total, status.spend))
    if conflict is not None:
        lines.append("the same command would stop before the first run:")
        lines.append("  " + conflict.message(results_dir))
        return lines
    mode = "regenerate" if settings.regenerate else "rejudge" if settings.rejudge else "run"
    lines.append(
        f"the same command without --scylla-status ({mode}) would execute "
        f"{grand.agent_runs} agent run(s) and {grand.judge_calls} judge call(s)"
    )
    if grand.cannot_judge:
        lines.append(
            f"  {grand.cannot_judge} run(s) cannot be rejudged: agent missing or errored"
            " (a plain resume runs them)"
        )
    if settings.max_cost is not None:
        lines.append("  " + _budget_line(statuses, settings.max_cost))
    return lines


def _budget_line(statuses: list[ExperimentStatus], max_cost: float) -> str:
    """What remains, priced at the means on disk, against --max-cost (budget.py)."""
    expected, unpriced = 0.0, 0
    for status in statuses:
        total = status.total()
        for to_do, mean in (
            (total.agent_runs, status.spend.mean_agent()),
            (total.judge_calls, status.spend.mean_judge()),
        ):
            if to_do and mean is None:
                unpriced += to_do
            expected += (mean or 0.0) * to_do
    verdict = "within" if expected <= max_cost else "OVER"
    unknown = f" (+ {unpriced} unpriced run(s)/call(s))" if unpriced else ""
    return (
        f"budget: expected cost of what remains ${expected:.4f}{unknown}, {verdict} "
        f"--max-cost ${max_cost:.4f} (the session stops starting runs once it spent that)"
    )


def _row(label: str, counts: Counts) -> str:
    return (
        f"  {label:<32} {counts.runs:>5} {counts.passed:>5} {counts.failed:>5}"
        f" {counts.timed_out:>5} {counts.errored:>5} {counts.missing:>5}"
        f" {counts.judge_incomplete:>5} {counts.attempts:>5} {counts.agent_runs:>6}"
        f" {counts.judge_calls:>6}"
    )


def _cost_line(total: Counts, spend: Spend) -> str:
    parts = [
        f"spent: agent ${spend.agent_usd:.4f}, judges ${spend.judge_usd:.4f}",
        _expected("agent", total.agent_runs, spend.mean_agent(), "run"),
        _expected("judges", total.judge_calls, spend.mean_judge(), "call"),
    ]
    return "; ".join(parts)


def _expected(what: str, to_do: int, mean: float | None, unit: str) -> str:
    if to_do == 0:
        return f"expected {what} $0 (nothing to do)"
    if mean is None:
        return f"expected {what}: unknown (no {unit} priced on disk yet) x {to_do}"
    return f"expected {what} ${mean * to_do:.4f} ({to_do} x mean ${mean:.4f}/{unit})"

"""Aggregates built from run records on disk: sub-test, tier and experiment `result.json`.

Built from the disk, never from memory, so a session that was killed and resumed, a
`--scylla-regenerate` and an uninterrupted session all produce the same files.

What counts (design section 1): every judged run (passed or failed, timed-out runs
included: the agent's timeout is its own failure) is in n, the pass rate, pass@k and
Cost-of-Pass; errored runs (harness or API) are counted beside them, never silently left
out. A run's cost is the spend of all its attempts. Records of a sub-test made with other
settings than the rest are named and left out: different setups are never pooled.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, Field

from pytest_scylla.aggregate_details import (
    RESAMPLES,
    SEED,
    Achievement,
    CostSummary,
    JudgeSummary,
    cost_known,
    cost_summary,
    criteria_means,
    judge_agreement,
    judge_summaries,
    run_token_counts,
    tokens_known,
)
from pytest_scylla.records import RunRecord
from pytest_scylla.results_layout import AGGREGATE_FILE, rewrite_derived_file, run_dir
from pytest_scylla.run_settings import RunSettings, differences, option_names
from pytest_scylla.stats import (
    PASS_AT_K,
    ErrorSensitivity,
    Interval,
    JudgeAgreement,
    SummaryStats,
    TierTests,
    cluster_bootstrap_mean,
    compare_tiers,
    error_sensitivity,
    hodges_lehmann,
    mean_interval,
    pass_at_k,
    pass_hat_k,
    pass_rate_difference,
    wilson_interval,
)
from pytest_scylla.stats.intervals import flagged

__all__ = ["AGGREGATE_FILE", "aggregate_experiment", "write_aggregates"]


class RunSummary(BaseModel):
    run: int
    outcome: str
    score: float | None
    grade: str | None
    timed_out: bool = False
    exit_code: int | None = None
    attempts: int = 1  # executions of this run, this one included
    agent_cost_usd: float | None  # every attempt; None: the agent reports no cost
    judge_cost_usd: float
    tokens: int | None  # None: the agent reports no tokens
    duration_s: float
    judge_score_range: float | None = None
    error: str | None = None  # "stage: message" of an errored run


class OutcomeCounts(BaseModel):
    """Runs by outcome; `timed_out` counts the judged runs (passed or failed) that timed out."""

    passed: int = 0
    failed: int = 0
    error: int = 0
    timed_out: int = 0
    earlier_attempts: int = 0  # executions redone: spend counted, outcome superseded
    replaced_judged_runs: int = 0  # judged runs re-drawn on request (--scylla-rerun-failed)

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.error

    @property
    def judged(self) -> int:
        return self.passed + self.failed


def pass_hat_ks(stats: SummaryStats) -> dict[int, float]:
    """pass^k (every one of k runs passes) beside pass@k, for the same k."""
    return {k: pass_hat_k(stats.n, stats.passes, k) for k in PASS_AT_K if k <= stats.n}


class SubTestResult(BaseModel):
    experiment_id: str
    tier: str
    subtest: str
    counts: OutcomeCounts
    stats: SummaryStats  # cost fields over the runs whose agent reported a cost (see cost)
    score_interval: Interval | None = None  # mean score, bootstrap over runs
    pass_hat_k: dict[int, float] = Field(default_factory=dict)
    cost: CostSummary | None = None
    agent_cost_usd: float
    judge_cost_usd: float
    mean_judge_score_range: float | None  # judge agreement: smaller is better
    runs: list[RunSummary]


class TierResult(BaseModel):
    experiment_id: str
    tier: str
    counts: OutcomeCounts
    stats: SummaryStats  # run-level intervals; the cluster ones below are the tier's
    # Pass rate and mean score with a bootstrap over whole sub-tests (runs are nested in them).
    pass_rate_interval: Interval | None = None
    mean_score_interval: Interval | None = None
    pass_hat_k: dict[int, float] = Field(default_factory=dict)
    errors_as_failures: ErrorSensitivity | None = None
    cost: CostSummary | None = None
    categories: dict[str, Achievement] = Field(default_factory=dict)
    items: dict[str, Achievement] = Field(default_factory=dict)
    judges: dict[str, JudgeSummary] = Field(default_factory=dict)
    mean_judge_score_range: float | None = None
    max_judge_score_range: float | None = None
    agent_cost_usd: float
    judge_cost_usd: float
    best_subtest: str | None
    subtests: dict[str, SubTestResult]

    @property
    def scores(self) -> list[float]:
        """Scores of the judged runs, sub-test by sub-test in run order: what tiers are
        compared on."""
        return [
            run.score
            for subtest in self.subtests.values()
            for run in subtest.runs
            if run.score is not None
        ]


class TierEffect(BaseModel):
    """How much a later tier (b) differs from an earlier one (a); positive: b is higher."""

    group_a: str
    group_b: str
    pass_rate_difference: Interval  # b - a, Newcombe
    shift: Interval  # Hodges-Lehmann b - a of per-run scores, Moses interval


class SettingsSummary(BaseModel):
    """What produced the counted runs, from the records' own settings (each value once)."""

    agents: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    judge_panels: list[list[str]] = Field(default_factory=list)
    pass_thresholds: list[str] = Field(default_factory=list)  # "0.7 (rubric)"
    sandboxes: list[str] = Field(default_factory=list)
    plugin_versions: list[str] = Field(default_factory=list)
    cli_versions: list[str] = Field(default_factory=list)


class ExperimentResult(BaseModel):
    experiment_id: str
    judge_modes: list[str]
    agent_names: list[str]
    models: list[str]
    settings: SettingsSummary = SettingsSummary()
    counts: OutcomeCounts
    cost: CostSummary | None = None
    agent_cost_usd: float  # known spend only: see cost.cost_known
    judge_cost_usd: float
    tiers: dict[str, TierResult]
    tier_tests: TierTests | None = None
    effects: list[TierEffect] = Field(default_factory=list)  # one per tier_tests comparison
    judges: dict[str, JudgeSummary] = Field(default_factory=dict)
    judge_agreement: JudgeAgreement | None = None
    seed: int = SEED
    resamples: int = RESAMPLES
    damaged_records: list[str] = Field(default_factory=list)  # unreadable or misplaced
    # Records left out because their settings differ from the rest of their sub-test.
    excluded_records: list[str] = Field(default_factory=list)


def _judged(record: RunRecord) -> bool:
    """A run that was judged (passed or failed); errored runs are counted, not scored."""
    return record.outcome != "error" and record.result is not None


def _summary(record: RunRecord) -> RunSummary:
    result = record.result if _judged(record) else None
    return RunSummary(
        run=record.run,
        outcome=record.outcome,
        score=result.score if result else None,
        grade=result.grade if result else None,
        timed_out=record.timed_out,
        exit_code=record.exit_code,
        attempts=1 + len(record.attempts),
        agent_cost_usd=record.total_agent_cost_usd if cost_known(record) else None,
        judge_cost_usd=record.total_judge_cost_usd,
        tokens=sum(run_token_counts(record)) if tokens_known(record) else None,
        duration_s=round(record.durations.agent_s, 3),
        judge_score_range=record.consensus.score_range if record.consensus else None,
        error=f"{record.error.stage}: {record.error.message}"
        if record.outcome == "error" and record.error
        else None,
    )


def _stats(
    judged: list[RunRecord], cost: CostSummary, score_interval: Interval | None
) -> SummaryStats:
    """The run-level summary. Its score interval is `score_interval` (the sub-test's bootstrap
    over runs; None for a tier, whose intervals resample sub-tests): no second bootstrap."""
    scores = [record.result.score for record in judged if record.result]
    n, passes = len(scores), sum(record.outcome == "passed" for record in judged)
    durations = [record.durations.agent_s for record in judged]
    known_costs = [record.total_agent_cost_usd for record in judged if cost_known(record)]
    cost_of_pass = cost.cost_of_pass.estimate if cost.cost_of_pass else None
    return SummaryStats(
        n=n,
        passes=passes,
        pass_rate=passes / n if n else None,
        pass_rate_ci=wilson_interval(passes, n),
        mean_score=statistics.fmean(scores) if n else None,
        mean_score_ci=(score_interval.low, score_interval.high) if score_interval else None,
        median_score=statistics.median(scores) if n else None,
        median_score_ci=None,
        score_std=statistics.stdev(scores) if n >= 2 else None,
        score_min=min(scores) if n else None,
        score_max=max(scores) if n else None,
        pass_at_k={k: pass_at_k(n, passes, k) for k in PASS_AT_K if k <= n},
        # Cost-of-Pass is about the agent setup under test; judging is the measurement's cost.
        # A run's cost is what all its attempts spent; unknown costs are left out, not $0.
        mean_cost=cost.mean_cost,
        median_cost=statistics.median(known_costs) if known_costs else None,
        total_cost=cost.total_cost or 0.0,
        cost_of_pass=cost_of_pass,
        cost_of_pass_infinite=cost_of_pass is not None and math.isinf(cost_of_pass),
        mean_tokens=cost.mean_tokens,
        total_tokens=sum(sum(run_token_counts(r)) for r in judged if tokens_known(r)),
        mean_duration=statistics.fmean(durations) if durations else None,
        median_duration=statistics.median(durations) if durations else None,
        small_sample_intervals=0 < n < 5,
    )


def _judged_runs(records: list[RunRecord]) -> list[RunRecord]:
    return [record for record in records if _judged(record)]


def _counts(records: list[RunRecord]) -> OutcomeCounts:
    # Tallied in plain ints, then one model: assigning model fields per record cost a
    # pydantic setattr each.
    outcomes = Counter(record.outcome for record in records)
    return OutcomeCounts(
        passed=outcomes["passed"],
        failed=outcomes["failed"],
        error=outcomes["error"],
        timed_out=sum(1 for r in records if r.outcome != "error" and r.timed_out),
        earlier_attempts=sum(len(record.attempts) for record in records),
        replaced_judged_runs=sum(record.replaced_judged_run for record in records),
    )


def _best(subtests: dict[str, SubTestResult]) -> str | None:
    candidates = [result for result in subtests.values() if result.stats.n > 0]
    if not candidates:
        return None
    # Highest pass rate, then highest mean score, then cheapest: what a team would pick.
    return max(
        candidates,
        key=lambda result: (
            result.stats.pass_rate or 0.0,
            result.stats.mean_score or 0.0,
            -(result.stats.mean_cost or 0.0),
        ),
    ).subtest


def split_by_settings(
    runs: list[RunRecord], *, scope: str = "sub-test"
) -> tuple[list[RunRecord], list[str]]:
    """(the runs made with the prevailing settings, notes on the others).

    The prevailing settings are those of most runs, ties going to the most recent run.
    Across an experiment (`scope="experiment"`) the sub-test's own hash is left out of the
    comparison: sub-tests differ by design, the agent, model, panel or threshold may not.
    A record without settings (written before they were recorded) cannot be shown to
    differ and is kept.
    """
    ignored = {"plugin_version"} | ({"subtest_sha256"} if scope == "experiment" else set())
    keyed: list[tuple[str, RunRecord, RunSettings]] = [
        (record.settings.model_dump_json(exclude=ignored), record, record.settings)
        for record in runs
        if record.settings is not None
    ]
    if not keyed:
        return runs, []
    tally = Counter(key for key, _, _ in keyed)
    latest: dict[str, str] = {}
    for key, record, _ in keyed:
        latest[key] = max(latest.get(key, ""), record.finished_at)
    prevailing_key = max(tally, key=lambda key: (tally[key], latest[key]))
    prevailing = next(settings for key, _, settings in keyed if key == prevailing_key)
    different = {id(record): settings for key, record, settings in keyed if key != prevailing_key}
    kept, notes = [], []
    for record in runs:
        settings = different.get(id(record))
        if settings is None:
            kept.append(record)
            continue
        fields = [field for field in differences(settings, prevailing) if field not in ignored]
        what = ", ".join(option_names(fields)) if fields else "settings"
        folder = run_dir(Path(), record.experiment_id, record.tier, record.subtest, record.run)
        notes.append(f"{folder}: made with other {what} than the {scope}'s other runs; not counted")
    return kept, notes


def _judge_score_ranges(runs: list[RunRecord]) -> list[float]:
    """Each judged run's spread between its judges' scores (judge agreement)."""
    return [
        r.consensus.score_range for r in runs if r.consensus and r.consensus.score_range is not None
    ]


def _subtest_result(
    experiment_id: str, tier: str, subtest: str, runs: list[RunRecord]
) -> SubTestResult:
    judged = _judged_runs(runs)
    cost = cost_summary(judged)
    scores = [r.result.score for r in judged if r.result]
    score_interval = mean_interval(scores, resamples=RESAMPLES, seed=SEED) if scores else None
    stats = _stats(judged, cost, score_interval)
    ranges = _judge_score_ranges(runs)
    return SubTestResult(
        experiment_id=experiment_id,
        tier=tier,
        subtest=subtest,
        counts=_counts(runs),
        stats=stats,
        score_interval=score_interval,
        pass_hat_k=pass_hat_ks(stats),
        cost=cost,
        agent_cost_usd=sum(r.total_agent_cost_usd for r in runs if cost_known(r)),
        judge_cost_usd=sum(r.total_judge_cost_usd for r in runs),
        mean_judge_score_range=statistics.fmean(ranges) if ranges else None,
        runs=[_summary(r) for r in runs],
    )


def _tier_interval(clusters: list[list[float]], *, pass_rate: bool) -> Interval | None:
    """The tier's interval: a bootstrap over whole sub-tests when there are two or more with
    runs (runs are nested in them); with one, over its runs (Wilson for a pass rate), since
    one cluster has nothing to resample. `unit` says which."""
    filled = [cluster for cluster in clusters if cluster]
    if not filled:
        return None
    if len(filled) >= 2:
        return cluster_bootstrap_mean(filled, level="subtest", resamples=RESAMPLES, seed=SEED)
    runs = filled[0]
    if not pass_rate:
        return mean_interval(runs, resamples=RESAMPLES, seed=SEED)
    passes = int(sum(runs))
    low, high = wilson_interval(passes, len(runs))
    interval = Interval(
        estimate=passes / len(runs), low=low, high=high, confidence=0.95, method="Wilson score"
    )
    return flagged(interval, len(runs))


def _tier_result(
    experiment_id: str, tier: str, subtests: dict[str, SubTestResult], runs: list[RunRecord]
) -> TierResult:
    judged = _judged_runs(runs)
    cost = cost_summary(judged, [[r for r in judged if r.subtest == sub] for sub in subtests])
    stats = _stats(judged, cost, None)
    counts = _counts(runs)
    # Clusters: each sub-test's judged runs, in sub-test order.
    passed_by_subtest = [
        [1.0 if run.outcome == "passed" else 0.0 for run in result.runs if run.score is not None]
        for result in subtests.values()
    ]
    scores_by_subtest = [
        [run.score for run in result.runs if run.score is not None] for result in subtests.values()
    ]
    categories, items = criteria_means(judged)
    ranges = _judge_score_ranges(runs)
    return TierResult(
        experiment_id=experiment_id,
        tier=tier,
        counts=counts,
        stats=stats,
        pass_rate_interval=_tier_interval(passed_by_subtest, pass_rate=True),
        mean_score_interval=_tier_interval(scores_by_subtest, pass_rate=False),
        pass_hat_k=pass_hat_ks(stats),
        errors_as_failures=error_sensitivity(counts.passed, counts.judged, counts.error),
        cost=cost,
        categories=categories,
        items=items,
        judges=judge_summaries(runs),
        mean_judge_score_range=statistics.fmean(ranges) if ranges else None,
        max_judge_score_range=max(ranges) if ranges else None,
        agent_cost_usd=sum(r.total_agent_cost_usd for r in runs if cost_known(r)),
        judge_cost_usd=sum(r.total_judge_cost_usd for r in runs),
        best_subtest=_best(subtests),
        subtests=subtests,
    )


def _effects(tiers: dict[str, TierResult], tests: TierTests) -> list[TierEffect]:
    effects = []
    for test in tests.comparisons:
        a, b = tiers[test.group_a], tiers[test.group_b]
        effects.append(
            TierEffect(
                group_a=test.group_a,
                group_b=test.group_b,
                pass_rate_difference=pass_rate_difference(
                    b.stats.passes, b.stats.n, a.stats.passes, a.stats.n
                ),
                shift=hodges_lehmann(b.scores, a.scores),
            )
        )
    return effects


def _settings_summary(records: list[RunRecord]) -> SettingsSummary:
    def unique(values: list[str]) -> list[str]:
        return sorted(set(values))

    with_settings = [record.settings for record in records if record.settings is not None]
    thresholds = [f"{s.pass_threshold:g} ({s.pass_threshold_source})" for s in with_settings] + [
        f"{record.result.pass_threshold:g} (source not recorded)"
        for record in records
        if record.settings is None and record.result is not None
    ]
    panels = {tuple(s.judge_panel) for s in with_settings} | {
        tuple(r.judge_models) for r in records if r.settings is None
    }
    return SettingsSummary(
        agents=unique([r.agent_name for r in records]),
        models=unique([r.model for r in records if r.model] + [s.model for s in with_settings]),
        judge_panels=[list(panel) for panel in sorted(panels) if panel],
        pass_thresholds=unique(thresholds),
        sandboxes=unique([s.sandbox for s in with_settings]),
        plugin_versions=unique([s.plugin_version for s in with_settings if s.plugin_version]),
        cli_versions=unique(
            [r.agent.cli_version for r in records if r.agent and r.agent.cli_version]
        ),
    )


def aggregate_experiment(
    experiment_id: str, records: list[RunRecord], damaged: list[str], threads: int = 1
) -> ExperimentResult:
    """`threads`: for the tier comparisons (compare_tiers), to a caller with cores to spare."""
    pooled, excluded = split_by_settings(records, scope="experiment")
    by_tier: dict[str, dict[str, list[RunRecord]]] = {}
    for record in sorted(pooled, key=lambda r: (r.tier, r.subtest, r.run)):
        by_tier.setdefault(record.tier, {}).setdefault(record.subtest, []).append(record)
    tiers: dict[str, TierResult] = {}
    counted: list[RunRecord] = []
    for tier, subtests in sorted(by_tier.items()):
        subtest_results = {}
        tier_runs: list[RunRecord] = []
        for subtest, all_runs in subtests.items():
            runs, notes = split_by_settings(all_runs)
            excluded += notes
            tier_runs += runs
            subtest_results[subtest] = _subtest_result(experiment_id, tier, subtest, runs)
        counted += tier_runs
        tiers[tier] = _tier_result(experiment_id, tier, subtest_results, tier_runs)
    scores_by_tier = {tier: tier_result.scores for tier, tier_result in tiers.items()}
    tests = (
        compare_tiers(scores_by_tier, resamples=RESAMPLES, seed=SEED, threads=threads)
        if len(scores_by_tier) > 1
        else None
    )
    judged = _judged_runs(counted)
    return ExperimentResult(
        experiment_id=experiment_id,
        judge_modes=sorted({r.judge_mode for r in counted}),
        agent_names=sorted({r.agent_name for r in counted}),
        models=sorted({r.model for r in counted if r.model}),
        settings=_settings_summary(counted),
        counts=_counts(counted),
        cost=cost_summary(judged, interval=False),  # Cost-of-Pass is per tier, not pooled
        agent_cost_usd=sum(r.total_agent_cost_usd for r in counted if cost_known(r)),
        judge_cost_usd=sum(r.total_judge_cost_usd for r in counted),
        tiers=tiers,
        tier_tests=tests,
        effects=_effects(tiers, tests) if tests else [],
        judges=judge_summaries(counted),
        judge_agreement=judge_agreement(judged),
        damaged_records=damaged,
        excluded_records=excluded,
    )


def write_aggregates(experiment_dir: Path, result: ExperimentResult) -> list[str]:
    """Write every result.json of the experiment; warnings for damaged files rebuilt."""
    warnings: list[str] = []

    def write(path: Path, model: BaseModel) -> None:
        warning = rewrite_derived_file(path, model.model_dump_json(indent=2) + "\n")
        if warning:
            warnings.append(warning)

    for tier, tier_result in result.tiers.items():
        for subtest, subtest_result in tier_result.subtests.items():
            write(experiment_dir / tier / subtest / AGGREGATE_FILE, subtest_result)
        write(experiment_dir / tier / AGGREGATE_FILE, tier_result)
    write(experiment_dir / AGGREGATE_FILE, result)
    return warnings

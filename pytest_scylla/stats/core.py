"""Statistics for runs, sub-tests and tiers (DESIGN section 7).

Everything here is a pure function of its arguments: no I/O, no global random state. The
bootstrap takes its seed as a parameter so a report regenerated from the same run records is
byte-identical.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_serializer, model_validator

from pytest_scylla.stats._common import SMALL_SAMPLE, check_alpha, check_confidence, z_quantile
from pytest_scylla.stats.planning import minimum_detectable_effect
from pytest_scylla.stats.rank_tests import RankSumResult, TestMethod, rank_sum_test

Statistic = Literal["mean", "median"]
Magnitude = Literal["negligible", "small", "medium", "large"]

#: Below this many runs in either group a comparison is flagged as not meaning much.
MIN_RUNS_PER_GROUP = 5
#: Family-wise significance level used for the "significant" flag (after Holm).
ALPHA = 0.05
#: The k of pass@k reported in summaries (only those with k <= n).
PASS_AT_K = (1, 3, 5)
#: The power compare_groups asks runs_needed_for_power about.
TARGET_POWER = 0.8

# Romano et al. (2006) thresholds for |Cliff's delta|.
_CLIFF_SMALL = 0.147
_CLIFF_MEDIUM = 0.33
_CLIFF_LARGE = 0.474


_z = z_quantile
_check_confidence = check_confidence
_check_alpha = check_alpha


# --- one group ------------------------------------------------------------------------------


def wilson_interval(passes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a pass rate.

    Chosen over the normal (Wald) interval because it stays inside [0, 1] and is not
    degenerate at 0 or n passes, which is common with 10 runs. n == 0 gives (0.0, 1.0):
    with no runs every rate is possible.
    """
    _check_confidence(confidence)
    if n < 0 or not 0 <= passes <= max(n, 0):
        raise ValueError(f"need 0 <= passes <= n, got passes={passes}, n={n}")
    if n == 0:
        return (0.0, 1.0)
    z = _z(1 - (1 - confidence) / 2)
    p = passes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At 0 (or n) passes the bound is exactly 0 (or 1); the formula leaves float noise there.
    low = 0.0 if passes == 0 else max(0.0, centre - half)
    high = 1.0 if passes == n else min(1.0, centre + half)
    return (low, high)


def bootstrap_ci(
    values: Sequence[float],
    statistic: Statistic = "mean",
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean or median.

    Deterministic for a given seed. With one value the interval is (v, v): there is no
    variation to resample, and a point interval is more honest in a table than NaN. An empty
    input raises ValueError because no interval exists; callers report "n/a" instead.
    """
    _check_confidence(confidence)
    if statistic not in ("mean", "median"):
        raise ValueError(f"statistic must be 'mean' or 'median', got {statistic!r}")
    if resamples < 1:
        raise ValueError("resamples must be >= 1")
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if not np.all(np.isfinite(data)):
        raise ValueError("bootstrap_ci needs finite values")
    if data.size == 1 or np.all(data == data[0]):
        return (float(data[0]), float(data[0]))
    rng = np.random.default_rng(seed)
    # One (resamples x n) index matrix: vectorized, and runs are at most a few hundred.
    samples = data[rng.integers(0, data.size, size=(resamples, data.size))]
    reduce = np.mean if statistic == "mean" else np.median
    estimates = reduce(samples, axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(estimates, [tail, 100 - tail])
    return (float(low), float(high))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n runs with c passes: 1 - C(n-c, k) / C(n, k).

    Computed as 1 - prod_{i=n-c+1..n} (1 - k/i) (Chen et al. 2021), which never forms the
    huge binomials. k > n raises ValueError: the estimator is undefined there, and a silent
    value would look like a measurement.
    """
    if n < 1 or k < 1:
        raise ValueError(f"need n >= 1 and k >= 1, got n={n}, k={k}")
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if k > n:
        raise ValueError(f"pass@{k} is undefined with only {n} runs")
    if n - c < k:
        # Every draw of k runs contains a pass.
        return 1.0
    product = float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=float)))
    return 1.0 - product


def cost_of_pass(mean_cost: float, pass_rate: float) -> float:
    """Cost-of-Pass (upstream): mean cost per run / pass rate; math.inf when nothing passed."""
    if mean_cost < 0 or not 0.0 <= pass_rate <= 1.0:
        raise ValueError(
            f"need mean_cost >= 0 and 0 <= pass_rate <= 1, got {mean_cost}, {pass_rate}"
        )
    if pass_rate == 0.0:
        return math.inf
    return mean_cost / pass_rate


# --- two groups -----------------------------------------------------------------------------


class MannWhitneyResult(BaseModel):
    """Two-sided Mann-Whitney U test; u is scipy's U of the first sample."""

    model_config = ConfigDict(frozen=True)

    u: float
    p: float
    n_a: int
    n_b: int


class WilcoxonResult(BaseModel):
    """Wilcoxon signed-rank test over paired values (e.g. one value per task)."""

    model_config = ConfigDict(frozen=True)

    statistic: float
    p: float
    n_pairs: int
    n_nonzero: int = Field(description="pairs whose difference is not zero (the ones ranked)")


def _as_nonempty(name: str, values: Sequence[float]) -> np.ndarray:
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError(f"{name} is empty")
    return data


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> MannWhitneyResult:
    """Two-sided Mann-Whitney U via scipy (exact for small samples without ties)."""
    from scipy import stats as scipy_stats  # here: importing scipy costs over half a second

    xa, xb = _as_nonempty("a", a), _as_nonempty("b", b)
    result = scipy_stats.mannwhitneyu(xa, xb, alternative="two-sided")
    p = float(result.pvalue)
    # scipy yields NaN when every value is tied (zero variance): no evidence of a difference.
    return MannWhitneyResult(
        u=float(result.statistic), p=1.0 if math.isnan(p) else p, n_a=xa.size, n_b=xb.size
    )


def wilcoxon_paired(a: Sequence[float], b: Sequence[float]) -> WilcoxonResult:
    """Two-sided Wilcoxon signed-rank test of a[i] - b[i] (zero differences dropped).

    Use it when both groups were measured on the same tasks. If every difference is zero the
    test has nothing to rank and the result is statistic 0, p 1.
    """
    from scipy import stats as scipy_stats  # here: importing scipy costs over half a second

    xa, xb = _as_nonempty("a", a), _as_nonempty("b", b)
    if xa.size != xb.size:
        raise ValueError(f"paired samples differ in length: {xa.size} vs {xb.size}")
    nonzero = int(np.count_nonzero(xa - xb))
    if nonzero == 0:
        return WilcoxonResult(statistic=0.0, p=1.0, n_pairs=xa.size, n_nonzero=0)
    result = scipy_stats.wilcoxon(xa, xb, alternative="two-sided")
    return WilcoxonResult(
        statistic=float(result.statistic),
        p=float(result.pvalue),
        n_pairs=xa.size,
        n_nonzero=nonzero,
    )


def cliffs_delta(a: Sequence[float], b: Sequence[float]) -> float:
    """Cliff's delta = P(a > b) - P(a < b) over all pairs; in [-1, 1], ties count zero."""
    xa, xb = _as_nonempty("a", a), _as_nonempty("b", b)
    return float(np.sign(xa[:, None] - xb[None, :]).mean())


def cliffs_magnitude(delta: float) -> Magnitude:
    """Romano et al. (2006) label for |delta|: < .147 negligible, < .33 small, < .474 medium."""
    size = abs(delta)
    if size < _CLIFF_SMALL:
        return "negligible"
    if size < _CLIFF_MEDIUM:
        return "small"
    if size < _CLIFF_LARGE:
        return "medium"
    return "large"


def holm_correction(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order.

    The i-th smallest p (0-based) is multiplied by (m - i); a running maximum keeps the
    adjusted values monotone in the raw order, and they are capped at 1.
    """
    raw = np.asarray(pvalues, dtype=float)
    if raw.size == 0:
        return []
    if np.any(np.isnan(raw)) or np.any((raw < 0) | (raw > 1)):
        raise ValueError("p-values must be in [0, 1]")
    m = raw.size
    order = np.argsort(raw, kind="stable")
    scaled = raw[order] * (m - np.arange(m))
    adjusted_sorted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return [float(p) for p in adjusted]


# --- power ----------------------------------------------------------------------------------


def _exact_min_runs(alpha: float) -> int:
    """Smallest equal group size at which an exact two-sided Mann-Whitney test can reach alpha.

    With n per group the most extreme outcome has p = 2 / C(2n, n); below this size no data,
    however separated, is significant, whatever an asymptotic formula says.
    """
    n = 1
    while 2 / math.comb(2 * n, n) > alpha:
        n += 1
    return n


def runs_needed_for_power(
    a: Sequence[float], b: Sequence[float], power: float = TARGET_POWER, alpha: float = 0.05
) -> int | None:
    """Runs per group a two-sided Mann-Whitney test needs to detect the observed effect.

    Noether's (1987) formula with equal groups: the observed effect enters as
    p' = P(X > Y) + P(X = Y) / 2 = (delta + 1) / 2, and the total is
    N = (z_{1-alpha/2} + z_{power})^2 / (3 (p' - 1/2)^2), i.e. N / 2 per group. The answer is
    raised to the smallest size at which the exact test can reach alpha at all. It treats the
    observed effect as the true one, so it is a planning hint, not a guarantee. None when the
    observed effect is zero (no finite number of runs would do).
    """
    if not 0 < power < 1 or not 0 < alpha < 1:
        raise ValueError("power and alpha must be in (0, 1)")
    return _runs_from_delta(cliffs_delta(a, b), power, alpha)


def _runs_from_delta(delta: float, power: float, alpha: float) -> int | None:
    """runs_needed_for_power for a known Cliff's delta; power and alpha already checked."""
    if delta == 0.0:
        return None
    shift = abs(delta) / 2  # |p' - 1/2|
    z_sum = _z(1 - alpha / 2) + _z(power)
    per_group = math.ceil(z_sum**2 / (3 * shift**2) / 2)
    return max(per_group, _exact_min_runs(alpha))


def mann_whitney_power(a: Sequence[float], b: Sequence[float], alpha: float = 0.05) -> float:
    """Approximate power of the two-sided Mann-Whitney test at the current group sizes.

    Inverts Noether's normal approximation for unequal groups:
    power = Phi(lam - z) + Phi(-lam - z), lam = |p' - 1/2| * sqrt(12 n_a n_b / (n_a + n_b)),
    z = z_{1-alpha/2}, with the observed effect taken as true. Both tails are kept so a zero
    effect gives exactly alpha.
    """
    _check_alpha(alpha)
    return _power_from_delta(cliffs_delta(a, b), len(a), len(b), alpha)


def _power_from_delta(delta: float, n_a: int, n_b: int, alpha: float) -> float:
    """mann_whitney_power for a known Cliff's delta and group sizes; alpha already checked."""
    lam = abs(delta) / 2 * math.sqrt(12 * n_a * n_b / (n_a + n_b))
    z = _z(1 - alpha / 2)
    normal = NormalDist()
    return normal.cdf(lam - z) + normal.cdf(-lam - z)


def too_few_runs(n_a: int, n_b: int, minimum: int = MIN_RUNS_PER_GROUP) -> bool:
    """True when either group has fewer than `minimum` runs."""
    return min(n_a, n_b) < minimum


def too_few_runs_note(n_a: int, n_b: int, minimum: int = MIN_RUNS_PER_GROUP) -> str | None:
    """A sentence for reports when a comparison has too few runs to mean anything, else None."""
    if not too_few_runs(n_a, n_b, minimum):
        return None
    return f"too few runs to mean anything ({n_a} vs {n_b}; at least {minimum} per group needed)"


# --- summaries ------------------------------------------------------------------------------


class SummaryStats(BaseModel):
    """Statistics of one sub-test or tier over its runs.

    JSON has no infinity, so an infinite Cost-of-Pass (nothing passed) is written as
    `"cost_of_pass": null` with `"cost_of_pass_infinite": true`, and read back as math.inf.
    `cost_of_pass` null with the flag false means there were no runs at all. Fields that need
    at least one run are None when n == 0; `score_std` (sample, ddof=1) needs two.
    """

    n: int
    passes: int
    pass_rate: float | None
    pass_rate_ci: tuple[float, float]
    mean_score: float | None
    mean_score_ci: tuple[float, float] | None
    median_score: float | None
    median_score_ci: tuple[float, float] | None
    score_std: float | None
    score_min: float | None
    score_max: float | None
    pass_at_k: dict[int, float] = Field(description="k -> unbiased pass@k, for k in (1,3,5), k<=n")
    mean_cost: float | None
    median_cost: float | None
    total_cost: float
    cost_of_pass: float | None
    cost_of_pass_infinite: bool = False
    mean_tokens: float | None
    total_tokens: int
    mean_duration: float | None
    median_duration: float | None
    small_sample_intervals: bool = Field(
        default=False,
        description=f"1 to {SMALL_SAMPLE - 1} runs: the bootstrap score intervals cover far less "
        "than 95% (0.70 at 3 runs in simulation) and need a note",
    )

    @model_validator(mode="before")
    @classmethod
    def _read_infinite_cost_of_pass(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and data.get("cost_of_pass_infinite")
            and data.get("cost_of_pass") is None
        ):
            return {**data, "cost_of_pass": math.inf}
        return data

    @model_validator(mode="after")
    def _flag_matches_value(self) -> SummaryStats:
        infinite = self.cost_of_pass is not None and math.isinf(self.cost_of_pass)
        if infinite != self.cost_of_pass_infinite:
            raise ValueError("cost_of_pass_infinite must be true exactly when cost_of_pass is inf")
        return self

    @field_serializer("cost_of_pass", when_used="json")
    def _write_infinite_as_null(self, value: float | None) -> float | None:
        return None if value is not None and math.isinf(value) else value


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _median(values: Sequence[float]) -> float | None:
    return float(np.median(values)) if len(values) else None


def summarize(
    scores: list[float],
    passed: list[bool],
    costs: list[float],
    durations: list[float],
    tokens: list[int],
    seed: int = 0,
) -> SummaryStats:
    """Summarize the runs of one sub-test or tier; the lists are per run, in the same order."""
    n = len(scores)
    lengths = {len(passed), len(costs), len(durations), len(tokens)}
    if lengths != {n}:
        raise ValueError("scores, passed, costs, durations and tokens must have equal lengths")
    passes = sum(1 for flag in passed if flag)
    pass_rate = passes / n if n else None
    mean_cost = _mean(costs)
    return SummaryStats(
        n=n,
        passes=passes,
        pass_rate=pass_rate,
        pass_rate_ci=wilson_interval(passes, n),
        mean_score=_mean(scores),
        mean_score_ci=bootstrap_ci(scores, "mean", seed=seed) if n else None,
        median_score=_median(scores),
        median_score_ci=bootstrap_ci(scores, "median", seed=seed) if n else None,
        score_std=float(np.std(scores, ddof=1)) if n >= 2 else None,
        score_min=float(min(scores)) if n else None,
        score_max=float(max(scores)) if n else None,
        pass_at_k={k: pass_at_k(n, passes, k) for k in PASS_AT_K if k <= n},
        mean_cost=mean_cost,
        median_cost=_median(costs),
        total_cost=float(sum(costs)),
        cost_of_pass=(
            cost_of_pass(mean_cost, pass_rate)
            if mean_cost is not None and pass_rate is not None
            else None
        ),
        cost_of_pass_infinite=n > 0 and passes == 0,
        mean_tokens=_mean(tokens),
        total_tokens=int(sum(tokens)),
        mean_duration=_mean(durations),
        median_duration=_median(durations),
        small_sample_intervals=0 < n < SMALL_SAMPLE,
    )


# --- between groups -------------------------------------------------------------------------


class TierComparison(BaseModel):
    """One pairwise comparison of two groups (tiers) of per-run values.

    `p_adjusted` is Holm-adjusted over every comparison returned by the same compare_groups
    call. Test fields are None when either group has no runs. `power` and
    `runs_needed_for_power` are computed at the corrected alpha (alpha / tests).
    """

    group_a: str
    group_b: str
    consecutive: bool = Field(description="a and b are neighbours in the given order")
    vs_first: bool = Field(description="a is the first group (the baseline)")
    n_a: int
    n_b: int
    u_statistic: float | None
    p_value: float | None
    p_adjusted: float | None
    cliffs_delta: float | None
    magnitude: Magnitude | None
    significant: bool
    too_few_runs: bool
    note: str | None
    power: float | None = Field(description="approximate power at the current n")
    runs_needed_for_power: int | None = Field(
        description="runs per group for 80% power at the observed effect; None if effect is 0"
    )
    method: TestMethod | None = Field(
        default=None, description="how p was computed (rank_sum_test)"
    )
    detectable_delta: float | None = Field(
        None, description="|Cliff's delta| detectable with 80% power at the current n"
    )


def _comparison_pairs(names: list[str]) -> list[tuple[int, int]]:
    consecutive = [(i, i + 1) for i in range(len(names) - 1)]
    # Each vs the first; (0, 1) is already a consecutive pair.
    baseline = [(0, j) for j in range(2, len(names))]
    return consecutive + baseline


def compare_groups(
    groups: dict[str, list[float]],
    alpha: float = ALPHA,
    minimum_runs: int = MIN_RUNS_PER_GROUP,
) -> list[TierComparison]:
    """Compare groups in the given order: every consecutive pair, then each vs the first.

    Mann-Whitney U with an exact or permutation p (rank_sum_test: the normal approximation
    was anti-conservative with tied scores) and Holm correction over the whole family, Cliff's
    delta as the effect size, a note when a group has too few runs (such a row is never
    significant), and the runs per group needed for 80% power, planned at alpha / tests.
    compare_tiers (tier_tests.py) supersedes it: it skips empty tiers in the chain.
    """
    names = list(groups)
    pairs = _comparison_pairs(names)
    tests: list[RankSumResult | None] = []
    for i, j in pairs:
        a, b = groups[names[i]], groups[names[j]]
        tests.append(rank_sum_test(a, b) if a and b else None)
    tested = [t.p for t in tests if t is not None]
    if tested:
        # Power needs a valid alpha, but only for pairs that were tested.
        _check_alpha(alpha)
    planning_alpha = alpha / max(1, len(tested))
    adjusted_iter = iter(holm_correction(tested))

    comparisons: list[TierComparison] = []
    for (i, j), test in zip(pairs, tests, strict=True):
        a, b = groups[names[i]], groups[names[j]]
        n_a, n_b = len(a), len(b)
        p_adjusted = next(adjusted_iter) if test is not None else None
        delta = cliffs_delta(a, b) if test is not None else None
        note = too_few_runs_note(n_a, n_b, minimum_runs)
        if test is None:
            note = f"no runs to compare ({n_a} vs {n_b})"
        comparisons.append(
            TierComparison(
                group_a=names[i],
                group_b=names[j],
                consecutive=j == i + 1,
                vs_first=i == 0,
                n_a=n_a,
                n_b=n_b,
                u_statistic=test.u if test else None,
                p_value=test.p if test else None,
                p_adjusted=p_adjusted,
                cliffs_delta=delta,
                magnitude=cliffs_magnitude(delta) if delta is not None else None,
                significant=(
                    p_adjusted is not None
                    and p_adjusted < alpha
                    and not too_few_runs(n_a, n_b, minimum_runs)
                ),
                too_few_runs=too_few_runs(n_a, n_b, minimum_runs),
                note=note,
                power=(
                    _power_from_delta(delta, n_a, n_b, planning_alpha)
                    if delta is not None
                    else None
                ),
                runs_needed_for_power=(
                    _runs_from_delta(delta, TARGET_POWER, planning_alpha)
                    if delta is not None
                    else None
                ),
                method=test.method if test else None,
                detectable_delta=(
                    minimum_detectable_effect(n_a, n_b, planning_alpha).cliffs_delta
                    if test
                    else None
                ),
            )
        )
    return comparisons

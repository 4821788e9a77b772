"""Tier comparisons with exact p-values, a chain over empty tiers, and planning at the
corrected alpha (issue 12, items 1-3).

The successor of compare_groups for reports: each tier is compared with the first tier (the
baseline) and with the nearest earlier tier that has runs, so a tier without judged runs
neither breaks the chain nor hides the comparison across it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack

from pydantic import BaseModel, ConfigDict, Field

from pytest_scylla.stats._common import RESAMPLES, SMALL_SAMPLE, check_alpha
from pytest_scylla.stats.core import ALPHA, Magnitude, cliffs_magnitude, holm_correction
from pytest_scylla.stats.effects import cliffs_delta_intervals
from pytest_scylla.stats.intervals import Interval
from pytest_scylla.stats.planning import (
    TARGET_POWER,
    corrected_alpha,
    minimum_detectable_effect,
    runs_needed_per_group,
)
from pytest_scylla.stats.rank_tests import (
    KruskalWallisResult,
    TestMethod,
    kruskal_wallis,
    rank_sum_test,
)


class TierTest(BaseModel):
    """One pairwise comparison of tiers' per-run values (a: the earlier tier).

    `significant` needs p_adjusted < alpha and at least `minimum_runs` runs in both tiers:
    below that an exact p is still reported, but a row never claims significance.
    """

    model_config = ConfigDict(frozen=True)

    group_a: str
    group_b: str
    previous: bool = Field(description="a is the nearest earlier tier with runs")
    baseline: bool = Field(description="a is the first tier")
    n_a: int
    n_b: int
    u_statistic: float
    p_value: float
    method: TestMethod
    p_adjusted: float = Field(description="Holm over every row of the same compare_tiers call")
    cliffs_delta: Interval
    magnitude: Magnitude
    significant: bool
    too_few_runs: bool
    note: str | None
    detectable_delta: float | None = Field(
        description=f"|Cliff's delta| detectable with {TARGET_POWER:.0%} power at these n and "
        "the corrected alpha; None if no effect is"
    )
    runs_needed: int | None = Field(
        description=f"runs per tier for {TARGET_POWER:.0%} power against the observed delta at "
        "the corrected alpha; None if the observed delta is 0"
    )


class TierTests(BaseModel):
    """Every comparison of one compare_tiers call, with the omnibus test and the alphas."""

    model_config = ConfigDict(frozen=True)

    comparisons: list[TierTest]
    omnibus: KruskalWallisResult | None = Field(description="Kruskal-Wallis over tiers with runs")
    alpha: float = Field(description="family-wise level of the significant flag (Holm)")
    corrected_alpha: float | None = Field(
        description="alpha / number of tests: what planning figures use; None without tests"
    )
    empty_groups: list[str] = Field(description="tiers without runs, skipped by the chain")


def comparison_pairs(names: Sequence[str], has_runs: Sequence[bool]) -> list[tuple[int, int]]:
    """Index pairs (a, b), a < b: b vs its nearest earlier tier with runs, then b vs the first.

    Tiers without runs are skipped; the pair with the first tier is not repeated when it is
    also the nearest.
    """
    pairs: list[tuple[int, int]] = []
    previous: int | None = 0 if has_runs[0] else None
    for j in range(1, len(names)):
        if not has_runs[j]:
            continue
        if previous is not None:
            pairs.append((previous, j))
        if has_runs[0] and previous != 0:
            pairs.append((0, j))
        previous = j
    return pairs


def compare_tiers(
    groups: Mapping[str, Sequence[float]],
    alpha: float = ALPHA,
    minimum_runs: int = SMALL_SAMPLE,
    resamples: int = RESAMPLES,
    seed: int = 0,
    threads: int = 1,
) -> TierTests:
    """Compare tiers in the given order (the first is the baseline).

    For the tier comparison table and its omnibus line. Per pair: Mann-Whitney with an exact
    or permutation p (rank_sum_test), Holm over all pairs, Cliff's delta with a bootstrap
    interval, the minimum detectable delta at the current n and the runs per tier needed
    against the observed delta, both at alpha / number of tests. Deterministic for a seed.

    `threads` > 1: the omnibus test's permutations are drawn in another thread meanwhile
    (numpy draws them without the interpreter lock; every test has its own seeded draws, so
    the result is the same). For a caller with a core to spare.
    """
    check_alpha(alpha)
    names = list(groups)
    has_runs = [len(groups[name]) > 0 for name in names]
    with_runs = [list(groups[name]) for name, ok in zip(names, has_runs, strict=True) if ok]
    with ExitStack() as stack:
        omnibus_later: Future[KruskalWallisResult] | None = None
        if threads > 1 and len(with_runs) > 1:
            pool = stack.enter_context(ThreadPoolExecutor(1))
            omnibus_later = pool.submit(kruskal_wallis, with_runs, resamples, seed, minimum_runs)
        comparisons, planning_alpha, pairs = _pairwise(
            names, groups, has_runs, alpha, minimum_runs, resamples, seed
        )
        if omnibus_later is not None:
            omnibus: KruskalWallisResult | None = omnibus_later.result()
        elif len(with_runs) > 1:
            omnibus = kruskal_wallis(with_runs, resamples, seed, minimum_runs)
        else:
            omnibus = None
    return TierTests(
        comparisons=comparisons,
        omnibus=omnibus,
        alpha=alpha,
        corrected_alpha=planning_alpha if pairs else None,
        empty_groups=[name for name, ok in zip(names, has_runs, strict=True) if not ok],
    )


def _pairwise(
    names: list[str],
    groups: Mapping[str, Sequence[float]],
    has_runs: list[bool],
    alpha: float,
    minimum_runs: int,
    resamples: int,
    seed: int,
) -> tuple[list[TierTest], float, list[tuple[int, int]]]:
    """The pairwise comparisons, the alpha they are planned at, and the pairs."""
    pairs = comparison_pairs(names, has_runs) if names else []
    tests = [rank_sum_test(groups[names[i]], groups[names[j]], resamples, seed) for i, j in pairs]
    # One bootstrap per tier, shared by every comparison it is in.
    deltas = cliffs_delta_intervals(
        [groups[name] for name in names], pairs, resamples=resamples, seed=seed
    )
    adjusted = holm_correction([t.p for t in tests])
    planning_alpha = corrected_alpha(alpha, len(pairs)) if pairs else alpha
    comparisons = []
    for (i, j), test, p_adjusted, delta in zip(pairs, tests, adjusted, deltas, strict=True):
        a, b = groups[names[i]], groups[names[j]]
        few = min(len(a), len(b)) < minimum_runs
        comparisons.append(
            TierTest(
                group_a=names[i],
                group_b=names[j],
                previous=_is_previous(i, j, has_runs),
                baseline=i == 0,
                n_a=len(a),
                n_b=len(b),
                u_statistic=test.u,
                p_value=test.p,
                method=test.method,
                p_adjusted=p_adjusted,
                cliffs_delta=delta,
                magnitude=cliffs_magnitude(delta.estimate),
                significant=p_adjusted < alpha and not few,
                too_few_runs=few,
                note=(
                    f"too few runs to mean anything ({len(a)} vs {len(b)}; at least "
                    f"{minimum_runs} per group needed)"
                    if few
                    else None
                ),
                detectable_delta=minimum_detectable_effect(
                    len(a), len(b), planning_alpha
                ).cliffs_delta,
                runs_needed=runs_needed_per_group(delta.estimate, planning_alpha),
            )
        )
    return comparisons, planning_alpha, pairs


def _is_previous(i: int, j: int, has_runs: Sequence[bool]) -> bool:
    return all(not has_runs[k] for k in range(i + 1, j))

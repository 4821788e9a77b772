"""Time the issue-12 statistics at the scale of a large experiment.

10,000 runs (5 tiers x 2,000, scores on a 0.25 grid as judges give them, 200 sub-tests),
10,000 resamples: what aggregating such an experiment would spend in statistics.

The last block times compare_tiers and its three parts on one experiment of the
`bench_regenerate.py --tree` benchmark: 7 tiers of 588, 295, 285, 287, 197, 192 and 95 runs
whose consensus scores take about 50 distinct values (11 comparisons). There every part
samples (permutation tests, bootstrap): CPU time, not Python overhead, is the cost.

    python benchmarks/bench_stats.py [--runs 10000] [--resamples 10000]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout

from pytest_scylla import stats


def timed(label: str, call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    elapsed = time.perf_counter() - start
    print(f"{label:<58} {elapsed * 1000:9.1f} ms")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--resamples", type=int, default=10_000)
    args = parser.parse_args()
    runs, resamples = args.runs, args.resamples
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, runs) / 4
    passed = scores >= 0.75
    costs = rng.gamma(2.0, 0.05, runs)
    tiers = {f"T{i}": list(part) for i, part in enumerate(np.array_split(scores, 5))}
    subtests = np.array_split(passed.astype(float), 200)
    judges = np.clip(scores + rng.normal(0, 0.1, (3, runs)), 0, 1).tolist()
    half = runs // 2
    continuous = rng.normal(size=runs)

    start = time.perf_counter()
    import scipy.stats  # noqa: F401  (imported lazily by the tests that need it)

    print(
        f"{'import scipy.stats (once per process)':<58} {(time.perf_counter() - start) * 1000:9.1f} ms"
    )
    total = 0.0
    total += timed(
        f"mean_interval, {runs} runs",
        lambda: stats.mean_interval(scores, resamples=resamples),
    )
    total += timed(
        f"cluster_bootstrap_mean, 200 sub-tests, {runs} runs",
        lambda: stats.cluster_bootstrap_mean(subtests, resamples=resamples),
    )
    total += timed(
        f"cost_of_pass_interval, {runs} runs",
        lambda: stats.cost_of_pass_interval(costs, passed, resamples=resamples),
    )
    total += timed(
        f"cliffs_delta_interval, {half} vs {runs - half}",
        lambda: stats.cliffs_delta_interval(scores[:half], scores[half:], resamples=resamples),
    )
    total += timed(
        f"rank_sum_test (permutation), {half} vs {runs - half}",
        lambda: stats.rank_sum_test(scores[:half], scores[half:], resamples=resamples),
    )
    total += timed(
        f"compare_tiers, 5 tiers x {runs // 5}",
        lambda: stats.compare_tiers(tiers, resamples=resamples),
    )
    total += timed(
        f"krippendorff_alpha, 3 judges x {runs} runs",
        lambda: stats.krippendorff_alpha(judges, resamples=resamples),
    )
    total += timed(
        f"hodges_lehmann, continuous {half} vs {runs - half}",
        lambda: stats.hodges_lehmann(continuous[:half], continuous[half:]),
    )
    total += timed(
        f"signed_rank_test, {runs // 50} tasks (exact)",
        lambda: stats.signed_rank_test(continuous[:200], continuous[200:400]),
    )
    print(f"{'total':<58} {total * 1000:9.1f} ms")
    tree_experiment(rng, resamples)


def tree_experiment(rng: np.random.Generator, resamples: int) -> None:
    """compare_tiers on tiers shaped like one experiment of the regenerate benchmark."""
    sizes = (588, 295, 285, 287, 197, 192, 95)
    grid = np.arange(30, 72) / 72  # consensus scores: means of 1-3 judges on a rubric grid
    tiers = {
        f"T{index}": list(rng.choice(grid[index : index + 36], size)) + [0.0] * 3
        for index, size in enumerate(sizes)
    }
    groups = list(tiers.values())
    pairs = stats.comparison_pairs(list(tiers), [True] * len(tiers))
    print(f"\none experiment of the tree benchmark: {sum(map(len, groups))} runs, 7 tiers")
    total = timed(
        f"compare_tiers, {len(pairs)} comparisons",
        lambda: stats.compare_tiers(tiers, resamples=resamples),
    )
    timed(
        f"  rank_sum_test x {len(pairs)}",
        lambda: [stats.rank_sum_test(groups[i], groups[j], resamples) for i, j in pairs],
    )
    timed("  kruskal_wallis", lambda: stats.kruskal_wallis(groups, resamples))
    timed(
        "  cliffs_delta_intervals (each tier drawn once)",
        lambda: stats.cliffs_delta_intervals(groups, pairs, resamples=resamples),
    )
    print(f"{'x 5 experiments':<58} {total * 5000:9.1f} ms")


if __name__ == "__main__":
    main()

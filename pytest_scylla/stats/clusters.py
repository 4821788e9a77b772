"""Intervals that respect nesting: runs within sub-tests (issue 12, item 3).

Runs of one sub-test share a task, so they are not independent draws of the tier; an interval
that treats a tier's runs as independent is too narrow when sub-tests differ. The cluster
bootstrap here resamples whole clusters (sub-tests) with replacement and keeps each cluster's
runs as they are. It does not also resample runs within clusters: that two-stage scheme counts
the within-cluster variation twice and is too wide (Davison and Hinkley 1997, section 3.8).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pytest_scylla.stats._common import (
    RESAMPLES,
    check_confidence,
    check_resamples,
    percentile_bounds,
    resampled_sums,
)
from pytest_scylla.stats.intervals import Interval, flagged


def cluster_bootstrap_mean(
    clusters: Sequence[Sequence[float]],
    level: str = "subtest",
    confidence: float = 0.95,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Mean over all runs (pass rate for 0/1 values) with a cluster percentile bootstrap.

    For tier pass rate and mean score intervals: `clusters` holds each sub-test's per-run
    values and `level` names what a cluster is (it is written into the result's `unit`). The
    estimate pools runs (sum of values / number of runs), as the tier's pass rate does; a
    resample draws as many clusters as there are, with replacement. Empty clusters are
    ignored; with fewer than 5 clusters the result is flagged small_sample.
    """
    check_confidence(confidence)
    check_resamples(resamples)
    sums, sizes = [], []
    for index, cluster in enumerate(clusters):
        values = np.asarray(cluster, dtype=float)
        if values.size == 0:
            continue
        if not np.all(np.isfinite(values)):
            raise ValueError(f"cluster {index} must hold finite values")
        sums.append(values.sum())
        sizes.append(values.size)
    if not sums:
        raise ValueError("cluster_bootstrap_mean needs at least one run")
    cluster_sums, cluster_sizes = np.array(sums), np.array(sizes, dtype=float)
    resampled = resampled_sums(np.column_stack([cluster_sums, cluster_sizes]), resamples, seed)
    estimates = resampled[:, 0] / resampled[:, 1]
    low, high = percentile_bounds(estimates, confidence)
    interval = Interval(
        estimate=float(cluster_sums.sum() / cluster_sizes.sum()),
        low=low,
        high=high,
        confidence=confidence,
        method="cluster percentile bootstrap (whole clusters, runs kept)",
        unit=level,
        resamples=resamples,
    )
    return flagged(interval, cluster_sums.size)

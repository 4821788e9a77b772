"""The interval model every new statistic returns, and a flagged bootstrap of one group."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from pytest_scylla.stats._common import (
    RESAMPLES,
    SMALL_SAMPLE,
    as_nonempty,
    check_confidence,
    check_resamples,
    percentile_bounds,
    resampled_sums,
)

SMALL_SAMPLE_NOTE = (
    f"fewer than {SMALL_SAMPLE} per group: a percentile bootstrap covers far less than its "
    "nominal level here (about 70% for a 95% interval at 3 runs)"
)


class Interval(BaseModel):
    """A point estimate with its interval.

    Bounds may be infinite (a Cost-of-Pass with resamples that pass nothing, a rank-based
    interval that no data this small can bound); JSON writes them as "Infinity".
    """

    model_config = ConfigDict(frozen=True, ser_json_inf_nan="strings")

    estimate: float
    low: float
    high: float
    confidence: float
    method: str = Field(description="how the interval was computed")
    unit: str = Field(
        default="run", description="what was resampled or counted: run, subtest, item"
    )
    resamples: int | None = None
    small_sample: bool = Field(
        default=False, description=f"a group has fewer than {SMALL_SAMPLE} units: read with care"
    )
    note: str | None = None


def flagged(interval: Interval, units: int) -> Interval:
    """The interval with small_sample and its note set when there are too few units."""
    if units >= SMALL_SAMPLE:
        return interval
    return interval.model_copy(update={"small_sample": True, "note": SMALL_SAMPLE_NOTE})


def mean_interval(
    values: Sequence[float],
    confidence: float = 0.95,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of a mean over runs, flagged when runs are few.

    What bootstrap_ci("mean") computes, for reports that must say when n < 5 (the nominal 95%
    covered 0.70 at n = 3 in simulation). Resamples come from resampled_sums: shared draws
    for few runs, counts over the distinct values for many, so 10,000 resamples of 10,000
    tied scores take milliseconds.
    """
    check_confidence(confidence)
    check_resamples(resamples)
    data = as_nonempty("values", values)
    estimates = resampled_sums(data[:, None], resamples, seed)[:, 0] / data.size
    low, high = percentile_bounds(estimates, confidence)
    interval = Interval(
        estimate=float(data.mean()),
        low=low,
        high=high,
        confidence=confidence,
        method="percentile bootstrap",
        resamples=resamples,
    )
    return flagged(interval, data.size)

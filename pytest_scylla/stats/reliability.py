"""pass^k and the error sensitivity summary (issue 12, item 4)."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from pytest_scylla.stats.core import wilson_interval
from pytest_scylla.stats.intervals import Interval


def pass_hat_k(n: int, c: int, k: int) -> float:
    """Unbiased pass^k from n runs with c passes: C(c, k) / C(n, k).

    The chance that k runs drawn without replacement all pass: reliability, where pass@k
    (some run passes) is capability; report them side by side. Computed as the product
    prod_{i<k} (c - i) / (n - i), which never forms the huge binomials. k > n raises
    ValueError: the estimator is undefined there.
    """
    if n < 1 or k < 1:
        raise ValueError(f"need n >= 1 and k >= 1, got n={n}, k={k}")
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if k > n:
        raise ValueError(f"pass^{k} is undefined with only {n} runs")
    if c < k:
        return 0.0
    return math.prod((c - i) / (n - i) for i in range(k))


class ErrorSensitivity(BaseModel):
    """The pass rate with errored runs left out (the main figure) and counted as failures.

    A run that errored (harness failure, timeout, judge failure) has no judged outcome; if the
    two rates differ much, the errors matter for the conclusion.
    """

    model_config = ConfigDict(frozen=True)

    judged: int
    errors: int
    passes: int
    pass_rate: Interval | None = Field(description="passes / judged (Wilson); None if none judged")
    errors_as_failures: Interval | None = Field(
        description="passes / (judged + errors) (Wilson); None without any run"
    )


def error_sensitivity(
    passes: int, judged: int, errors: int, confidence: float = 0.95
) -> ErrorSensitivity:
    """Pass rate over judged runs beside the pass rate that counts errored runs as failures."""
    if judged < 0 or errors < 0 or not 0 <= passes <= judged:
        raise ValueError(
            f"need 0 <= passes <= judged and errors >= 0, got {passes}, {judged}, {errors}"
        )

    def rate(n: int) -> Interval | None:
        if n == 0:
            return None
        low, high = wilson_interval(passes, n, confidence)
        return Interval(
            estimate=passes / n, low=low, high=high, confidence=confidence, method="Wilson score"
        )

    return ErrorSensitivity(
        judged=judged,
        errors=errors,
        passes=passes,
        pass_rate=rate(judged),
        errors_as_failures=rate(judged + errors),
    )

"""How small an effect the current runs can detect, and how many runs a real one needs.

Issue 12, item 2: "significant" means a Holm-adjusted p below alpha over every comparison,
so planning at alpha = .05 promised power the table could not deliver; and post-hoc power at
the observed effect says nothing p does not. Both answers here use the corrected alpha (Holm's
first step, alpha / number of tests) and Noether's (1987) normal approximation for the
Mann-Whitney test, with effects in Cliff's delta (probability of superiority (delta + 1) / 2).
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from pytest_scylla.stats._common import check_alpha, check_power, z_quantile

TARGET_POWER = 0.8


class DetectableEffect(BaseModel):
    """The smallest effect a two-sided Mann-Whitney test detects with the given power.

    None fields: no effect at all can be detected (even complete separation, delta = 1, falls
    short at these group sizes and this alpha).
    """

    model_config = ConfigDict(frozen=True)

    cliffs_delta: float | None = Field(description="|delta| detectable with `power`")
    superiority: float | None = Field(description="the same as P(a > b) + P(a = b) / 2")
    alpha: float = Field(description="the per-test alpha used (already corrected)")
    power: float
    n_a: int
    n_b: int


def corrected_alpha(alpha: float, tests: int) -> float:
    """Holm's first (strictest) threshold, alpha / tests: what the smallest p must beat."""
    check_alpha(alpha)
    if tests < 1:
        raise ValueError(f"tests must be >= 1, got {tests}")
    return alpha / tests


def _exact_floor_reached(n_a: int, n_b: int, alpha: float) -> bool:
    """Whether the exact two-sided test at these sizes can reach alpha at all.

    Its most extreme outcome (complete separation, no ties) has p = 2 / C(n_a + n_b, n_a).
    """
    # In logs: C(n_a + n_b, n_a) has tens of thousands of digits at the sizes planning asks about.
    log_ways = math.lgamma(n_a + n_b + 1) - math.lgamma(n_a + 1) - math.lgamma(n_b + 1)
    return math.log(2) - log_ways <= math.log(alpha) + 1e-12


def minimum_detectable_effect(
    n_a: int, n_b: int, alpha: float, power: float = TARGET_POWER
) -> DetectableEffect:
    """Smallest |Cliff's delta| detected with `power` by a Mann-Whitney test at these sizes.

    Replaces post-hoc power in the comparison table: "with 10 runs per tier, only differences
    of delta >= 0.62 would show at the corrected alpha". Pass the corrected alpha
    (corrected_alpha). From Noether: delta = 2 (z_{1-alpha/2} + z_power) /
    sqrt(12 n_a n_b / (n_a + n_b)).
    """
    check_alpha(alpha)
    check_power(power)
    if n_a < 1 or n_b < 1:
        raise ValueError(f"need at least one run per group, got {n_a} and {n_b}")
    delta = 2 * (z_quantile(1 - alpha / 2) + z_quantile(power))
    delta /= math.sqrt(12 * n_a * n_b / (n_a + n_b))
    reachable = delta <= 1 and _exact_floor_reached(n_a, n_b, alpha)
    return DetectableEffect(
        cliffs_delta=delta if reachable else None,
        superiority=(delta + 1) / 2 if reachable else None,
        alpha=alpha,
        power=power,
        n_a=n_a,
        n_b=n_b,
    )


def runs_needed_per_group(delta: float, alpha: float, power: float = TARGET_POWER) -> int | None:
    """Runs per group (equal groups) for `power` against a true Cliff's delta `delta`.

    Pass the corrected alpha. Noether: N = (z_{1-alpha/2} + z_power)^2 / (3 (delta / 2)^2) in
    total, raised to the smallest size whose exact test can reach alpha at all. None for
    delta = 0: no number of runs detects no effect.
    """
    check_alpha(alpha)
    check_power(power)
    if not -1 <= delta <= 1:
        raise ValueError(f"Cliff's delta must be in [-1, 1], got {delta}")
    if delta == 0:
        return None
    z_sum = z_quantile(1 - alpha / 2) + z_quantile(power)
    per_group = math.ceil(z_sum**2 / (3 * (abs(delta) / 2) ** 2) / 2)
    while not _exact_floor_reached(per_group, per_group, alpha):
        per_group += 1
    return per_group


def minimum_detectable_pass_rate_difference(
    baseline_rate: float, n_a: int, n_b: int, alpha: float, power: float = TARGET_POWER
) -> float | None:
    """Smallest rise in pass rate above `baseline_rate` detected with `power`.

    For "with 10 runs per tier and a 30% baseline, only a rise to 95% would show". Uses
    Cohen's h (arcsine) for two independent proportions: h = (z_{1-alpha/2} + z_power)
    sqrt(1/n_a + 1/n_b); None when even a 100% pass rate is not far enough.
    """
    check_alpha(alpha)
    check_power(power)
    if not 0 <= baseline_rate <= 1:
        raise ValueError(f"baseline_rate must be in [0, 1], got {baseline_rate}")
    if n_a < 1 or n_b < 1:
        raise ValueError(f"need at least one run per group, got {n_a} and {n_b}")
    h = (z_quantile(1 - alpha / 2) + z_quantile(power)) * math.sqrt(1 / n_a + 1 / n_b)
    angle = math.asin(math.sqrt(baseline_rate)) + h / 2
    if angle > math.pi / 2:
        return None
    return math.sin(angle) ** 2 - baseline_rate

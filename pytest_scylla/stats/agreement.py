"""Agreement between judges (issue 12, item 5): Krippendorff's alpha and per-run spread."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pytest_scylla.stats._common import (
    RESAMPLES,
    check_confidence,
    check_resamples,
    percentile_bounds,
    resampled_sums,
)
from pytest_scylla.stats.intervals import Interval, flagged


class JudgeAgreement(BaseModel):
    """Krippendorff's alpha (interval metric) over items scored by several judges.

    `alpha` is None when the pairable scores do not vary at all (alpha is 0/0 there).
    """

    model_config = ConfigDict(frozen=True)

    alpha: float | None
    interval: Interval | None = Field(description="bootstrap over items; None with alpha None")
    judges: int
    items: int = Field(description="items with at least two scores (the ones that count)")
    scores: int = Field(description="pairable scores: those on counted items")


def _ratings_matrix(ratings: Sequence[Sequence[float | None]]) -> np.ndarray:
    matrix = np.array([[np.nan if v is None else v for v in row] for row in ratings], dtype=float)
    if matrix.ndim != 2 or matrix.size == 0:
        raise ValueError("ratings must be a non-empty judges x items table of equal rows")
    if np.any(np.isinf(matrix)):
        raise ValueError("ratings must be finite or missing")
    return matrix


def _alpha_from_sums(sums: np.ndarray) -> np.ndarray:
    """Alpha from sums of per-item totals, one row per (re)sample of items.

    per-item columns: scores m_u, sum, sum of squares, and the item's disagreement
    sum_{i != j} (v_i - v_j)^2 / (m_u - 1). With n = sum m_u pairable scores:
    D_o = sum disagreement / n and D_e = 2 (n S2 - S1^2) / (n (n - 1)).
    """
    n, total, squares, disagreement = sums.T
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = 2 * (n * squares - total**2) / (n * (n - 1))
        return 1 - (disagreement / n) / expected


def krippendorff_alpha(
    ratings: Sequence[Sequence[float | None]],
    confidence: float = 0.95,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> JudgeAgreement:
    """Krippendorff's alpha for interval data, judges x items, None (or NaN) for missing.

    For "judge agreement" (DESIGN section 7): items are runs, values the judges' scores.
    Items with fewer than two scores carry no pairing and are left out, as Krippendorff
    prescribes. The interval is a percentile bootstrap over items (resampling whole items with
    their scores); resamples whose scores do not vary are dropped. Flagged small_sample below
    5 items.
    """
    check_confidence(confidence)
    check_resamples(resamples)
    matrix = _ratings_matrix(ratings)
    present = ~np.isnan(matrix)
    per_count = present.sum(axis=0)
    pairable = per_count >= 2
    values = np.where(present, matrix, 0.0)[:, pairable]
    m = per_count[pairable].astype(float)
    total = values.sum(axis=0)
    squares = (values**2).sum(axis=0)
    disagreement = 2 * (m * squares - total**2) / np.maximum(m - 1, 1)
    per_item = np.column_stack([m, total, squares, disagreement])
    base = {"judges": matrix.shape[0], "items": int(m.size), "scores": int(m.sum())}
    if m.size == 0:
        return JudgeAgreement(alpha=None, interval=None, **base)
    alpha = float(_alpha_from_sums(per_item.sum(axis=0, keepdims=True))[0])
    if not np.isfinite(alpha):
        return JudgeAgreement(alpha=None, interval=None, **base)
    estimates = _alpha_from_sums(resampled_sums(per_item, resamples, seed))
    estimates = estimates[np.isfinite(estimates)]
    low, high = percentile_bounds(estimates, confidence) if estimates.size else (alpha, alpha)
    interval = Interval(
        estimate=alpha,
        low=low,
        high=high,
        confidence=confidence,
        method="percentile bootstrap over items",
        unit="item",
        resamples=int(estimates.size),
    )
    return JudgeAgreement(alpha=alpha, interval=flagged(interval, m.size), **base)


def score_ranges(ratings: Sequence[Sequence[float | None]]) -> list[float | None]:
    """Per item (run): highest minus lowest judge score; None with fewer than two scores.

    For spotting runs the judges disagree on, next to the consensus score.
    """
    matrix = _ratings_matrix(ratings)
    present = ~np.isnan(matrix)
    high = np.where(present, matrix, -np.inf).max(axis=0)
    low = np.where(present, matrix, np.inf).min(axis=0)
    enough = present.sum(axis=0) >= 2
    return [float(h - lo) if ok else None for h, lo, ok in zip(high, low, enough, strict=True)]

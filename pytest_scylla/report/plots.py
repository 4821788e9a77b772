"""Inline SVG plots for the HTML report, drawn by hand so the report needs no assets or JS.

Both plots share one layout: a y axis from 0 to 1 (pass rates and scores both live there) and
one column per tier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

from pytest_scylla.report.model import TierReport

WIDTH = 640
HEIGHT = 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 28, 44
_BAR = "#4c78a8"
_INK = "#222"
_GRID = "#ddd"
_GOLDEN = 0.6180339887498949


@dataclass(frozen=True)
class _Frame:
    """Maps data coordinates (column index, value in [0, 1]) to SVG pixels."""

    columns: int

    @property
    def plot_width(self) -> float:
        return WIDTH - _LEFT - _RIGHT

    @property
    def column_width(self) -> float:
        return self.plot_width / max(self.columns, 1)

    def x(self, column: int, offset: float = 0.0) -> float:
        """Centre of a column, shifted by offset (a fraction of the column width)."""
        return _LEFT + (column + 0.5 + offset) * self.column_width

    def y(self, value: float) -> float:
        clamped = min(max(value, 0.0), 1.0)
        return _TOP + (1.0 - clamped) * (HEIGHT - _TOP - _BOTTOM)


def _num(value: float) -> str:
    return f"{value:.1f}"


def _text(x: float, y: float, content: str, anchor: str = "middle", size: int = 11) -> str:
    return (
        f'<text x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}" font-size="{size}" '
        f'fill="{_INK}">{escape(content)}</text>'
    )


def _line(x1: float, y1: float, x2: float, y2: float, colour: str = _INK, width: float = 1) -> str:
    return (
        f'<line x1="{_num(x1)}" y1="{_num(y1)}" x2="{_num(x2)}" y2="{_num(y2)}" '
        f'stroke="{colour}" stroke-width="{width}"/>'
    )


def _axes(frame: _Frame, title: str, y_label: str, tier_labels: Sequence[str]) -> list[str]:
    parts = [_text(WIDTH / 2, 16, title, size=13)]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = frame.y(tick)
        parts.append(_line(_LEFT, y, WIDTH - _RIGHT, y, _GRID))
        parts.append(_text(_LEFT - 6, y + 4, f"{tick:.2f}", anchor="end", size=10))
    parts.append(_line(_LEFT, frame.y(0), WIDTH - _RIGHT, frame.y(0)))
    parts.append(_line(_LEFT, frame.y(0), _LEFT, frame.y(1)))
    for column, label in enumerate(tier_labels):
        parts.append(_text(frame.x(column), HEIGHT - _BOTTOM + 16, label))
    mid = (frame.y(0) + frame.y(1)) / 2
    parts.append(
        f'<text x="14" y="{_num(mid)}" text-anchor="middle" font-size="11" fill="{_INK}" '
        f'transform="rotate(-90 14 {_num(mid)})">{escape(y_label)}</text>'
    )
    return parts


def _svg(title: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def pass_rate_chart(tiers: Sequence[TierReport]) -> str:
    """Bars of pass rate per tier with Wilson 95% interval whiskers."""
    title = "Pass rate per tier (Wilson 95% CI)"
    frame = _Frame(len(tiers))
    body = _axes(frame, title, "pass rate", [t.tier_id for t in tiers])
    half_bar = 0.3 * frame.column_width
    for column, tier in enumerate(tiers):
        summary = tier.summary
        centre = frame.x(column)
        if summary.pass_rate is None:
            body.append(_text(centre, frame.y(0) - 6, "no runs", size=10))
            continue
        top = frame.y(summary.pass_rate)
        body.append(
            f'<rect x="{_num(centre - half_bar)}" y="{_num(top)}" width="{_num(2 * half_bar)}" '
            f'height="{_num(frame.y(0) - top)}" fill="{_BAR}">'
            f"<title>{escape(tier.tier_id)}: {summary.passes}/{summary.n} passed</title></rect>"
        )
        low, high = summary.pass_rate_ci
        cap = half_bar / 3
        body.append(_line(centre, frame.y(low), centre, frame.y(high)))
        body.append(_line(centre - cap, frame.y(low), centre + cap, frame.y(low)))
        body.append(_line(centre - cap, frame.y(high), centre + cap, frame.y(high)))
        body.append(_text(centre, frame.y(high) - 5, f"{summary.pass_rate * 100:.0f}%", size=10))
    return _svg(title, body)


def score_chart(tiers: Sequence[TierReport]) -> str:
    """Box plot (quartiles, median, min-max whiskers) with every run's score as a dot."""
    title = "Scores per tier (box: quartiles and median; dots: runs)"
    frame = _Frame(len(tiers))
    body = _axes(frame, title, "score", [t.tier_id for t in tiers])
    half_box = 0.25 * frame.column_width
    for column, tier in enumerate(tiers):
        centre = frame.x(column)
        if not tier.scores:
            body.append(_text(centre, frame.y(0) - 6, "no runs", size=10))
            continue
        values = np.asarray(tier.scores, dtype=float)
        low, q1, median, q3, high = np.percentile(values, [0, 25, 50, 75, 100])
        body.append(_line(centre, frame.y(low), centre, frame.y(q1)))
        body.append(_line(centre, frame.y(q3), centre, frame.y(high)))
        body.append(
            f'<rect x="{_num(centre - half_box)}" y="{_num(frame.y(q3))}" '
            f'width="{_num(2 * half_box)}" height="{_num(frame.y(q1) - frame.y(q3))}" '
            f'fill="#e8eef6" stroke="{_BAR}"/>'
        )
        body.append(
            _line(centre - half_box, frame.y(median), centre + half_box, frame.y(median), _INK, 2)
        )
        for index, score in enumerate(values):
            # Deterministic jitter (golden-ratio sequence) so the same data draws the same plot.
            offset = ((index * _GOLDEN) % 1.0 - 0.5) * 0.4
            body.append(
                f'<circle cx="{_num(frame.x(column, offset))}" cy="{_num(frame.y(score))}" '
                f'r="3" fill="{_BAR}" fill-opacity="0.6"/>'
            )
    return _svg(title, body)

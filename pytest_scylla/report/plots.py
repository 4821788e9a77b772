"""Inline SVG plots for the HTML report, drawn by hand so the report needs no assets or JS.

Every plot is a pure function of the aggregate (no clock, no random state: jitter is a
golden-ratio sequence), so regenerating gives the same bytes. Plots with a [0, 1] axis (pass
rates, scores) share `_Frame`; the others scale their own axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

from pytest_scylla.aggregate import ExperimentResult
from pytest_scylla.aggregate_details import TOKEN_KINDS
from pytest_scylla.stats import Interval

WIDTH = 640
HEIGHT = 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 28, 44
RATE_LABEL_Y = HEIGHT - _BOTTOM + 30  # pass_rate_chart: a second line under the tier names
_BAR = "#4c78a8"
_ACCENT = "#e45756"
_INK = "#222"
_GRID = "#ddd"
_GOLDEN = 0.6180339887498949
_KIND_COLOURS = ("#4c78a8", "#f58518", "#54a24b", "#b279a2")
_JUDGE_COLOURS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#b279a2", "#9d755d")


@dataclass(frozen=True)
class _Frame:
    """Maps data coordinates (column index, value in [0, top]) to SVG pixels."""

    columns: int
    top: float = 1.0

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
        clamped = min(max(value, 0.0), self.top)
        return _TOP + (1.0 - clamped / self.top) * (HEIGHT - _TOP - _BOTTOM)


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


def _rect(x: float, y: float, width: float, height: float, fill: str, tip: str = "") -> str:
    title = f"<title>{escape(tip)}</title>" if tip else ""
    return (
        f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(width)}" height="{_num(height)}" '
        f'fill="{fill}">{title}</rect>'
    )


def _tick_label(value: float, top: float) -> str:
    if top <= 1.0:
        return f"{value:.2f}"
    if top >= 10_000:
        return f"{value / 1000:.0f}k"  # narrow enough to stay clear of the axis label
    return f"{value:.3g}"


def _axes(frame: _Frame, title: str, y_label: str, labels: Sequence[str]) -> list[str]:
    parts = [_text(WIDTH / 2, 16, title, size=13)]
    for step in range(5):
        tick = frame.top * step / 4
        y = frame.y(tick)
        parts.append(_line(_LEFT, y, WIDTH - _RIGHT, y, _GRID))
        parts.append(_text(_LEFT - 6, y + 4, _tick_label(tick, frame.top), anchor="end", size=10))
    parts.append(_line(_LEFT, frame.y(0), WIDTH - _RIGHT, frame.y(0)))
    parts.append(_line(_LEFT, frame.y(0), _LEFT, frame.y(frame.top)))
    for column, label in enumerate(labels):
        parts.append(_text(frame.x(column), HEIGHT - _BOTTOM + 16, label))
    mid = (frame.y(0) + frame.y(frame.top)) / 2
    parts.append(
        f'<text x="14" y="{_num(mid)}" text-anchor="middle" font-size="11" fill="{_INK}" '
        f'transform="rotate(-90 14 {_num(mid)})">{escape(y_label)}</text>'
    )
    return parts


def _svg(title: str, body: list[str], height: int = HEIGHT) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def _whisker(frame: _Frame, centre: float, low: float, high: float, cap: float) -> list[str]:
    return [
        _line(centre, frame.y(low), centre, frame.y(high)),
        _line(centre - cap, frame.y(low), centre + cap, frame.y(low)),
        _line(centre - cap, frame.y(high), centre + cap, frame.y(high)),
    ]


def _no_runs(frame: _Frame, centre: float) -> str:
    return _text(centre, frame.y(0) - 6, "no runs", size=10)


def pass_rate_chart(result: ExperimentResult) -> str:
    """Bars of pass rate per tier with the sub-test bootstrap 95% interval."""
    title = "Pass rate per tier (95% CI, bootstrap over sub-tests)"
    tiers = list(result.tiers.items())
    frame = _Frame(len(tiers))
    body = _axes(frame, title, "pass rate", [tier_id for tier_id, _ in tiers])
    half_bar = 0.3 * frame.column_width
    for column, (tier_id, tier) in enumerate(tiers):
        centre = frame.x(column)
        interval = tier.pass_rate_interval
        if interval is None:
            body.append(_no_runs(frame, centre))
            continue
        top = frame.y(interval.estimate)
        tip = f"{tier_id}: {tier.stats.passes}/{tier.stats.n} passed"
        body.append(_rect(centre - half_bar, top, 2 * half_bar, frame.y(0) - top, _BAR, tip))
        body += _whisker(frame, centre, interval.low, interval.high, half_bar / 3)
        label = f"{interval.estimate * 100:.0f}%" + (" †" if interval.small_sample else "")
        # Under the tier's name: above the bar it ran into the whisker of a rate near 100%.
        body.append(_text(centre, RATE_LABEL_Y, label, size=10))
    return _svg(title, body)


def score_chart(result: ExperimentResult) -> str:
    """Box plot (quartiles, median, min-max whiskers) with every run's score as a dot."""
    title = "Scores per tier (box: quartiles and median; dots: runs)"
    tiers = list(result.tiers.items())
    frame = _Frame(len(tiers))
    body = _axes(frame, title, "score", [tier_id for tier_id, _ in tiers])
    half_box = 0.25 * frame.column_width
    for column, (_, tier) in enumerate(tiers):
        centre = frame.x(column)
        scores = tier.scores
        if not scores:
            body.append(_no_runs(frame, centre))
            continue
        values = np.asarray(scores, dtype=float)
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
        # At most 400 dots per tier: beyond that they hide each other and bloat the file.
        step = max(1, math.ceil(values.size / 400))
        for index, score in enumerate(values[::step]):
            offset = ((index * _GOLDEN) % 1.0 - 0.5) * 0.4
            body.append(
                f'<circle cx="{_num(frame.x(column, offset))}" cy="{_num(frame.y(score))}" '
                f'r="3" fill="{_BAR}" fill-opacity="0.5"/>'
            )
    return _svg(title, body)


def _finite_top(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v) and v > 0]
    return max(finite) * 1.1 if finite else 1.0


def cost_of_pass_chart(result: ExperimentResult) -> str:
    """Cost-of-Pass per tier with its bootstrap interval; an infinite bound is an arrow."""
    title = "Cost-of-Pass per tier (USD, 95% CI)"
    tiers = list(result.tiers.items())
    intervals: list[Interval | None] = [
        tier.cost.cost_of_pass if tier.cost else None for _, tier in tiers
    ]
    bounds = [v for i in intervals if i for v in (i.estimate, i.high)]
    frame = _Frame(len(tiers), top=_finite_top(bounds))
    body = _axes(frame, title, "USD per pass", [tier_id for tier_id, _ in tiers])
    half_bar = 0.3 * frame.column_width
    for column, interval in enumerate(intervals):
        centre = frame.x(column)
        if interval is None:
            body.append(_text(centre, frame.y(0) - 6, "cost n/a", size=10))
            continue
        if math.isinf(interval.estimate):
            body.append(_text(centre, frame.y(0) - 6, "∞ (no passes)", size=10))
            continue
        top = frame.y(interval.estimate)
        body.append(_rect(centre - half_bar, top, 2 * half_bar, frame.y(0) - top, _BAR))
        high = interval.high if math.isfinite(interval.high) else frame.top
        body += _whisker(frame, centre, interval.low, high, half_bar / 3)
        if not math.isfinite(interval.high):
            body.append(_text(centre, frame.y(frame.top) + 10, "↑ ∞", size=10))
    return _svg(title, body)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: cheaper-or-equal and scoring higher-or-equal,
    strictly better in one; sorted by cost."""
    front = []
    for i, (cost, score) in enumerate(points):
        dominated = any(
            (c <= cost and s >= score) and (c < cost or s > score)
            for j, (c, s) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i])


def cost_score_chart(result: ExperimentResult) -> str:
    """One dot per sub-test: mean agent cost against mean score; the Pareto frontier joined."""
    title = "Mean cost against mean score per sub-test (line: Pareto frontier)"
    labels: list[str] = []
    points: list[tuple[float, float]] = []
    for tier_id, tier in result.tiers.items():
        for subtest_id, subtest in tier.subtests.items():
            summary = subtest.cost
            if summary and summary.mean_cost is not None and subtest.stats.mean_score is not None:
                labels.append(f"{tier_id}/{subtest_id}")
                points.append((summary.mean_cost, subtest.stats.mean_score))
    body = [_text(WIDTH / 2, 16, title, size=13)]
    if not points:
        body.append(_text(WIDTH / 2, HEIGHT / 2, "no sub-test with a known cost", size=12))
        return _svg(title, body)
    x_top = _finite_top([p[0] for p in points])
    frame = _Frame(1)

    def x(cost: float) -> float:
        return _LEFT + cost / x_top * frame.plot_width

    for step in range(5):
        tick = step / 4
        body.append(_line(_LEFT, frame.y(tick), WIDTH - _RIGHT, frame.y(tick), _GRID))
        body.append(_text(_LEFT - 6, frame.y(tick) + 4, f"{tick:.2f}", anchor="end", size=10))
        body.append(_text(x(x_top * tick), HEIGHT - _BOTTOM + 16, f"${x_top * tick:.3g}", size=10))
    body.append(_line(_LEFT, frame.y(0), WIDTH - _RIGHT, frame.y(0)))
    body.append(_line(_LEFT, frame.y(0), _LEFT, frame.y(1)))
    body.append(_text(WIDTH / 2, HEIGHT - 8, "mean agent cost per run (USD)", size=11))
    front = pareto_front(points)
    path = " ".join(f"{_num(x(points[i][0]))},{_num(frame.y(points[i][1]))}" for i in front)
    body.append(f'<polyline points="{path}" fill="none" stroke="{_ACCENT}" stroke-width="1.5"/>')
    for index, (cost, score) in enumerate(points):
        colour = _ACCENT if index in front else _BAR
        body.append(
            f'<circle cx="{_num(x(cost))}" cy="{_num(frame.y(score))}" r="4" fill="{colour}">'
            f"<title>{escape(labels[index])}: ${cost:.4f}, score {score:.3f}</title></circle>"
        )
    return _svg(title, body)


def token_chart(result: ExperimentResult) -> str:
    """Stacked bars of mean agent tokens per run by kind, per tier."""
    title = "Agent tokens per run by kind (mean over runs that reported them)"
    tiers = list(result.tiers.items())
    stacks = [tier.cost.mean_tokens_by_kind if tier.cost else {} for _, tier in tiers]
    totals = [sum(stack.values()) for stack in stacks]
    frame = _Frame(len(tiers), top=_finite_top(totals))
    body = _axes(frame, title, "tokens", [tier_id for tier_id, _ in tiers])
    half_bar = 0.3 * frame.column_width
    for column, stack in enumerate(stacks):
        centre = frame.x(column)
        if not stack:
            body.append(_text(centre, frame.y(0) - 6, "tokens n/a", size=10))
            continue
        base = 0.0
        for kind, colour in zip(TOKEN_KINDS, _KIND_COLOURS, strict=True):
            value = stack.get(kind, 0.0)
            top, bottom = frame.y(base + value), frame.y(base)
            body.append(
                _rect(
                    centre - half_bar,
                    top,
                    2 * half_bar,
                    bottom - top,
                    colour,
                    f"{kind}: {value:,.0f}",
                )
            )
            base += value
    for index, (kind, colour) in enumerate(zip(TOKEN_KINDS, _KIND_COLOURS, strict=True)):
        x = _LEFT + 10 + index * 140
        body.append(_rect(x, HEIGHT - 14, 10, 10, colour))
        body.append(
            _text(
                x + 14,
                HEIGHT - 5,
                kind.replace("_input_tokens", "").replace("_tokens", ""),
                "start",
                10,
            )
        )
    return _svg(title, body)


def _heat_colour(value: float) -> str:
    """White (0) to blue (1)."""
    red = round(255 - value * (255 - 0x4C))
    green = round(255 - value * (255 - 0x78))
    blue = round(255 - value * (255 - 0xA8))
    return f"#{red:02x}{green:02x}{blue:02x}"


def criteria_heatmap(result: ExperimentResult) -> str:
    """Rows: rubric categories then items; columns: tiers; colour: mean share of max points."""
    title = "Criteria by tier (mean achieved share of max points)"
    tiers = list(result.tiers.items())
    rows: list[tuple[str, list[float | None]]] = []
    seen: list[str] = []
    for _, tier in tiers:
        seen += [name for name in tier.categories if name not in seen]
    for name in seen:
        rows.append(
            (name, [t.categories[name].mean if name in t.categories else None for _, t in tiers])
        )
    items: list[str] = []
    for _, tier in tiers:
        items += [item for item in tier.items if item not in items]
    for item in items:
        rows.append(
            (f"  {item}", [t.items[item].mean if item in t.items else None for _, t in tiers])
        )
    row_height, label_width = 18, 160
    height = _TOP + 24 + row_height * max(len(rows), 1) + 10
    body = [_text(WIDTH / 2, 16, title, size=13)]
    if not rows:
        body.append(_text(WIDTH / 2, 60, "no criteria recorded", size=12))
        return _svg(title, body, height=80)
    cell_width = (WIDTH - label_width - _RIGHT) / max(len(tiers), 1)
    for column, (tier_id, _) in enumerate(tiers):
        body.append(_text(label_width + (column + 0.5) * cell_width, _TOP + 14, tier_id))
    for index, (label, values) in enumerate(rows):
        y = _TOP + 24 + index * row_height
        body.append(_text(label_width - 6, y + 13, label.strip()[:24], anchor="end", size=10))
        for column, value in enumerate(values):
            x = label_width + column * cell_width
            fill = "#eeeeee" if value is None else _heat_colour(value)
            body.append(_rect(x, y, cell_width - 2, row_height - 2, fill))
            text = "n/a" if value is None else f"{value * 100:.0f}%"
            body.append(_text(x + cell_width / 2, y + 12, text, size=10))
    return _svg(title, body, height=height)


def judge_chart(result: ExperimentResult) -> str:
    """Each judge's mean score per tier (one colour per judge), with the agreement in the title."""
    agreement = result.judge_agreement
    alpha = (
        f"Krippendorff's alpha {agreement.alpha:.3f}"
        if agreement is not None and agreement.alpha is not None
        else "agreement n/a"
    )
    title = f"Mean score per judge and tier ({alpha})"
    tiers = list(result.tiers.items())
    models = list(result.judges)
    frame = _Frame(len(tiers))
    body = _axes(frame, title, "judge's mean score", [tier_id for tier_id, _ in tiers])
    if not models:
        body.append(_text(WIDTH / 2, HEIGHT / 2, "no LLM judges", size=12))
        return _svg(title, body)
    for index, model in enumerate(models):
        colour = _JUDGE_COLOURS[index % len(_JUDGE_COLOURS)]
        offset = (index - (len(models) - 1) / 2) * 0.12
        for column, (_, tier) in enumerate(tiers):
            judge = tier.judges.get(model)
            if judge is None or judge.mean_score is None:
                continue
            body.append(
                f'<circle cx="{_num(frame.x(column, offset))}" cy="{_num(frame.y(judge.mean_score))}" '
                f'r="5" fill="{colour}"><title>{escape(model)}: {judge.mean_score:.3f} '
                f"({judge.failed} failed of {judge.asked})</title></circle>"
            )
        body.append(_rect(_LEFT + 10 + index * 180, HEIGHT - 14, 10, 10, colour))
        body.append(_text(_LEFT + 24 + index * 180, HEIGHT - 5, model[:26], "start", 10))
    return _svg(title, body)


def all_charts(result: ExperimentResult) -> list[str]:
    return [
        pass_rate_chart(result),
        score_chart(result),
        cost_score_chart(result),
        cost_of_pass_chart(result),
        token_chart(result),
        criteria_heatmap(result),
        judge_chart(result),
    ]

"""Small inline SVG charts drawn from numbers: columns, a line, horizontal bars.

No chart library and no script: each function returns one ``<svg>`` string whose every text is
escaped, with ``<title>`` tooltips, sized by ``viewBox`` so it scales with the page.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["Series", "bar_chart", "column_chart", "line_chart", "nice_ticks"]

Format = Callable[[float], str]

_W, _H = 720, 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 12, 28, 36
_MAX_X_LABELS = 12
_TICK_STEPS = (1.0, 2.0, 2.5, 5.0)  # times a power of ten


@dataclass(frozen=True)
class Series:
    """One named row of values (``None`` = no data at that point), drawn in one colour."""

    name: str
    color: str
    values: Sequence[float | None]


def nice_ticks(value: float, resolution: float) -> list[float]:
    """The y-axis ticks of a chart whose largest value is ``value``: 0, then at most four equal
    round steps (1, 2, 2.5 or 5 times a power of ten) up to a top at or above it.

    Every step is a multiple of ``resolution``, the smallest difference the axis labels show
    (``0.0001`` for dollars), so no two labels read the same. Rejected: quarters of a round
    maximum, whose ``$0.005`` and ``$0.0125`` round alike at two decimals.
    """
    if not math.isfinite(value) or value <= 0:
        value = resolution
    raw = value / 4
    low = math.floor(math.log10(resolution))
    high = math.ceil(math.log10(max(raw, resolution))) + 1
    step = min(
        m * 10.0**k
        for k in range(low, high + 1)
        for m in _TICK_STEPS
        if m * 10.0**k >= raw * (1 - 1e-9) and _multiple(m * 10.0**k, resolution)
    )
    count = max(1, math.ceil(value / step - 1e-9))
    return [round(step * i, 12) for i in range(count + 1)]


def _multiple(step: float, resolution: float) -> bool:
    ratio = step / resolution
    return ratio >= 1 - 1e-9 and abs(ratio - round(ratio)) < 1e-6


def _empty(message: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {_W} 80" role="img" aria-label="{escape(message)}">'
        f'<text x="{_W / 2}" y="44" text-anchor="middle" class="muted">{escape(message)}</text>'
        "</svg>"
    )


def _frame(
    labels: Sequence[str], ticks: Sequence[float], fmt: Format, series: Sequence[Series]
) -> list[str]:
    """Grid lines with y labels, x labels, and a legend when there are several series."""
    parts: list[str] = []
    top = ticks[-1]
    for tick in ticks:
        y = _y(tick, top)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text class="axis" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(fmt(tick))}</text>"
        )
    every = max(1, math.ceil(len(labels) / _MAX_X_LABELS))
    for index, label in enumerate(labels):
        if index % every == 0 or index == len(labels) - 1:
            x = _x_center(index, len(labels))
            parts.append(
                f'<text class="axis" x="{x:.1f}" y="{_H - _BOTTOM + 16}" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    if len(series) > 1:
        x = _LEFT
        for item in series:
            parts.append(
                f'<rect x="{x}" y="6" width="10" height="10" fill="{escape(item.color)}"/>'
            )
            parts.append(f'<text class="axis" x="{x + 14}" y="15">{escape(item.name)}</text>')
            x += 24 + 8 * len(item.name)
    return parts


def _x_center(index: int, count: int) -> float:
    width = (_W - _LEFT - _RIGHT) / max(count, 1)
    return _LEFT + width * (index + 0.5)


def _y(value: float, top: float) -> float:
    return _TOP + (_H - _TOP - _BOTTOM) * (1 - value / top)


def _svg(label: str, parts: list[str]) -> str:
    body = "".join(parts)
    return (
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="{escape(label)}">'
        f"{body}</svg>"
    )


def column_chart(
    label: str,
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Format,
    *,
    resolution: float,
    tips: Sequence[str] | None = None,
) -> str:
    """Grouped vertical columns, one group per label (e.g. dollars saved and spent per day).

    ``resolution`` is the smallest difference ``fmt`` shows (the axis steps are no finer);
    ``tips`` gives one tooltip per label, shared by the group's columns.
    """
    values = [v for item in series for v in item.values if v is not None]
    if not labels or not values:
        return _empty(f"{label}: no data yet")
    ticks = nice_ticks(max(values), resolution)
    top = ticks[-1]
    group = (_W - _LEFT - _RIGHT) / len(labels)
    width = max(group * 0.8 / len(series), 0.5)
    parts = _frame(labels, ticks, fmt, series)
    for index, name in enumerate(labels):
        start = _x_center(index, len(labels)) - width * len(series) / 2
        for number, item in enumerate(series):
            value = item.values[index]
            if not value:
                continue
            y = _y(value, top)
            tip = f"{name} · {item.name}: {fmt(value)}"
            parts.append(
                f'<rect x="{start + number * width:.1f}" y="{y:.1f}" width="{width:.1f}" '
                f'height="{_H - _BOTTOM - y:.1f}" fill="{escape(item.color)}">'
                f"<title>{escape(tip if tips is None else tips[index])}</title></rect>"
            )
    return _svg(label, parts)


def line_chart(
    label: str,
    labels: Sequence[str],
    series: Series,
    fmt: Format,
    top: float,
    *,
    resolution: float,
    tips: Sequence[str] | None = None,
) -> str:
    """One line with a dot per point on an axis up to ``top`` at least; ``None`` values leave
    a gap (e.g. hit rate per day).

    ``resolution`` is the smallest difference ``fmt`` shows; ``tips`` replaces the default
    ``"label: value"`` tooltip of each point.
    """
    ticks = nice_ticks(top, resolution)
    top = ticks[-1]
    if not labels or all(value is None for value in series.values):
        return _empty(f"{label}: no data yet")
    color = escape(series.color)
    segments: list[str] = []
    dots: list[str] = []
    previous: float | None = None
    for index, value in enumerate(series.values):
        if value is not None:
            x, y = _x_center(index, len(labels)), _y(value, top)
            segments.append(f"{'M' if previous is None else 'L'}{x:.1f},{y:.1f}")
            tip = escape(f"{labels[index]}: {fmt(value)}" if tips is None else tips[index])
            dots.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"><title>{tip}</title></circle>'
            )
        previous = value  # after a gap (None) the next point starts a new segment
    line = f'<path d="{" ".join(segments)}" fill="none" stroke="{color}" stroke-width="2"/>'
    return _svg(label, [*_frame(labels, ticks, fmt, [series]), line, *dots])


def bar_chart(label: str, items: Sequence[tuple[str, float]], fmt: Format, color: str) -> str:
    """Horizontal bars, one per named item, longest scale first (e.g. entries by provider)."""
    if not items:
        return _empty(f"{label}: no data yet")
    row, name_w = 26, 200
    height = row * len(items) + 12
    top = max(value for _, value in items) or 1.0
    span = _W - name_w - 120
    parts: list[str] = []
    for index, (name, value) in enumerate(items):
        y = 6 + index * row
        shown = name if len(name) <= 28 else name[:27] + "…"
        width = max(span * value / top, 1.0 if value else 0.0)
        parts.append(
            f'<text class="axis" x="{name_w - 8}" y="{y + 15}" text-anchor="end">'
            f"<title>{escape(name)}</title>{escape(shown)}</text>"
            f'<rect x="{name_w}" y="{y + 3}" width="{width:.1f}" height="{row - 8}" '
            f'fill="{escape(color)}"><title>{escape(f"{name}: {fmt(value)}")}</title></rect>'
            f'<text class="axis" x="{name_w + width + 6:.1f}" y="{y + 15}">{escape(fmt(value))}</text>'
        )
    return (
        f'<svg class="chart" viewBox="0 0 {_W} {height}" role="img" aria-label="{escape(label)}">'
        f"{''.join(parts)}</svg>"
    )

"""Charts drawn as SVG on the server: the geometry of bars and of a line, which the templates in
templates/usage/partials/ turn into SVG (labels escaped like any other text), each beside a table
that holds the same numbers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

BAR_HEIGHT = 22
BAR_GAP = 6
BAR_AREA_WIDTH = 100.0  # percent of the chart's width, after the labels' column

LINE_WIDTH = 600
LINE_HEIGHT = 180
LINE_PADDING = 8


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    count: int
    y: int
    width: float  # percent of the bar area


@dataclass(frozen=True)
class BarChart:
    bars: list[Bar]
    height: int

    @property
    def empty(self) -> bool:
        return not self.bars


def bar_chart(rows: list[tuple[str, int, int]]) -> BarChart:
    """Horizontal bars of (label, value, count) rows, the longest the largest value."""
    peak = max((value for _, value, _ in rows), default=0)
    bars = [
        Bar(
            label=label,
            value=value,
            count=count,
            y=index * (BAR_HEIGHT + BAR_GAP),
            width=round(BAR_AREA_WIDTH * value / peak, 2) if peak else 0.0,
        )
        for index, (label, value, count) in enumerate(rows)
    ]
    return BarChart(bars=bars, height=max(len(bars) * (BAR_HEIGHT + BAR_GAP) - BAR_GAP, 0))


@dataclass(frozen=True)
class Point:
    day: date
    value: int
    x: float
    y: float


@dataclass(frozen=True)
class LineChart:
    points: list[Point]
    path: str
    area: str
    peak: int
    width: int = LINE_WIDTH
    height: int = LINE_HEIGHT

    @property
    def empty(self) -> bool:
        return not self.points


def line_chart(series: list[tuple[date, int]]) -> LineChart:
    """A line through (day, value) pairs in day order, from zero up to the peak value."""
    if not series:
        return LineChart(points=[], path="", area="", peak=0)
    peak = max(value for _, value in series)
    first, last = series[0][0], series[-1][0]
    span = max((last - first).days, 1)
    inner_w, inner_h = LINE_WIDTH - 2 * LINE_PADDING, LINE_HEIGHT - 2 * LINE_PADDING
    points = []
    for day, value in series:
        x = LINE_PADDING + inner_w * ((day - first).days / span if len(series) > 1 else 0.5)
        y = LINE_PADDING + inner_h * (1 - (value / peak if peak else 0))
        points.append(Point(day=day, value=value, x=round(x, 1), y=round(y, 1)))
    path = "M" + " L".join(f"{p.x},{p.y}" for p in points)
    bottom = LINE_HEIGHT - LINE_PADDING
    area = f"{path} L{points[-1].x},{bottom} L{points[0].x},{bottom} Z"
    return LineChart(points=points, path=path, area=area, peak=peak)

"""Line charts as plain SVG geometry, drawn on the server: the run page's CPU and memory.

No chart framework and no JavaScript: the template draws a polyline inside a fixed viewBox,
and the numbers a reader needs (peak, totals) are written out beside it as text.
"""

from dataclasses import dataclass
from datetime import datetime

WIDTH = 600
HEIGHT = 120
PAD_LEFT = 4
PAD_TOP = 8
PAD_BOTTOM = 4


@dataclass(frozen=True)
class LineChart:
    points: str  # the polyline's "x,y x,y ..." in viewBox units
    area: str  # the same line closed down to the x axis, for a light fill
    y_max: float  # the value at the top of the chart
    peak: float  # the largest value drawn
    start: datetime
    end: datetime
    width: int = WIDTH
    height: int = HEIGHT


def line_chart(series: list[tuple[datetime, float]], *, floor_max: float = 0.0) -> LineChart | None:
    """Scales (time, value) points into the viewBox; the top is a little above the largest
    value (and at least `floor_max`, e.g. 100 for a percentage), the left and right edges the
    first and last times. None when there is nothing to draw."""
    series = [(moment, float(value)) for moment, value in series if value is not None]
    if not series:
        return None
    start, end = series[0][0], series[-1][0]
    span = max((end - start).total_seconds(), 1.0)
    # A little headroom above the peak, so the line never runs along the top edge.
    peak = max(value for _, value in series)
    y_max = max(floor_max, 1.15 * peak) or 1.0
    plot_width = WIDTH - PAD_LEFT
    plot_height = HEIGHT - PAD_TOP - PAD_BOTTOM
    coordinates = []
    for moment, value in series:
        x = PAD_LEFT + plot_width * (moment - start).total_seconds() / span
        y = PAD_TOP + plot_height * (1 - value / y_max)
        coordinates.append((x, y))
    if len(coordinates) == 1:  # one sample: a short flat line, so it is visible
        x, y = coordinates[0]
        coordinates = [(PAD_LEFT, y), (WIDTH, y)]
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates)
    base = HEIGHT - PAD_BOTTOM
    area = f"{coordinates[0][0]:.1f},{base} {points} {coordinates[-1][0]:.1f},{base}"
    return LineChart(points=points, area=area, y_max=y_max, peak=peak, start=start, end=end)


def cpu_percent(series: list[tuple[datetime, float]]) -> list[tuple[datetime, float]]:
    """CPU use in % of one core between consecutive samples of cumulative CPU seconds. A
    count that drops is a new attempt starting from zero."""
    points = []
    for (before, used_before), (after, used) in zip(series, series[1:], strict=False):
        elapsed = (after - before).total_seconds()
        if elapsed <= 0:
            continue
        spent = used - used_before if used >= used_before else used
        points.append((after, 100.0 * spent / elapsed))
    return points

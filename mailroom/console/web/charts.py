"""Server-rendered SVG charts: lines over time, stacked bars over time (with marked bands, such
as a mailbox's silence) and a timeline in lanes. No script — the CSP forbids it — and every
label goes through :func:`mailroom.console.web.templates.esc` like any other value (mailbox
addresses and reasons come from mail). Colours are classes (``s0``…``s7``) in the stylesheet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mailroom.console.web.templates import Html, esc, join, tag

WIDTH, HEIGHT = 460, 170  # drawn at about this size, three to a row on a wide screen
TIMELINE_WIDTH = 720
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 10, 24
MAX_POINTS = 240  # per line; longer series are reduced to this many buckets
PALETTE = ("#1f6feb", "#d9480f", "#2b8a3e", "#862e9c", "#c92a2a", "#0b7285", "#5c940d",
           "#495057")
COLOURS = len(PALETTE)


@dataclass
class Series:
    name: str
    points: list[tuple[float, float | None]]  # (epoch seconds, value); None: a gap


@dataclass
class Band:
    """A marked stretch of time, e.g. a mailbox's silence."""

    start: float
    end: float
    label: str


@dataclass
class Stack:
    """Bars over time: bucket starts (epoch seconds), their width, one count list per name."""

    starts: list[float]
    width_s: float
    counts: dict[str, list[int]] = field(default_factory=dict)


def nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^n at or above ``value`` (an axis that reads well)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value)


def _number(v: float) -> str:
    return f"{v:.0f}" if v >= 10 or v == int(v) else f"{v:.1f}" if v >= 1 else f"{v:.2f}"


def _time_label(t: float, span_s: float) -> str:
    at = datetime.fromtimestamp(t, UTC)
    return at.strftime("%H:%M" if span_s <= 2 * 86400 else "%m-%d")


class _Frame:
    """Maps time and value to the plot area, and draws its axes."""

    def __init__(self, x0: float, x1: float, y_max: float) -> None:
        self.x0, self.x1 = x0, max(x1, x0 + 1)
        self.y_max = nice_max(y_max)
        self.w, self.h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(self, t: float) -> float:
        return LEFT + (t - self.x0) / (self.x1 - self.x0) * self.w

    def y(self, v: float) -> float:
        return TOP + self.h - min(v, self.y_max) / self.y_max * self.h

    def axes(self, unit: str) -> Html:
        parts = []
        for frac in (0.0, 0.5, 1.0):
            v, y = self.y_max * frac, self.y(self.y_max * frac)
            parts.append(tag("line", x1=LEFT, x2=WIDTH - RIGHT, y1=f"{y:.1f}", y2=f"{y:.1f}",
                             cls="grid"))
            parts.append(tag("text", f"{_number(v)}{unit}", x=LEFT - 4, y=f"{y + 4:.1f}",
                             cls="tick", text_anchor="end"))
        span = self.x1 - self.x0
        for i in range(5):
            t = self.x0 + span * i / 4
            anchor = "start" if i == 0 else "end" if i == 4 else "middle"
            parts.append(tag("text", _time_label(t, span), x=f"{self.x(t):.1f}",
                             y=HEIGHT - 8, cls="tick", text_anchor=anchor))
        return join(parts)


def _svg(title: str, content: Html, **attrs: str) -> Html:
    return tag("svg", tag("title", title) + content, viewBox=f"0 0 {WIDTH} {HEIGHT}",
               width=WIDTH, height=HEIGHT, role="img", cls="chart", **attrs)


def _legend(names: Sequence[str]) -> Html:
    if len(names) < 2:
        return Html("")
    return tag("ul", join(tag("li", tag("span", "", cls=f"sw s{i % COLOURS}") + esc(name))
                          for i, name in enumerate(names)), cls="legend")


def reduce(points: list[tuple[float, float | None]], x0: float, x1: float, how: str = "max",
           buckets: int = MAX_POINTS) -> list[tuple[float, float | None]]:
    """At most ``buckets`` points: the max (or mean) of each equal slice of [x0, x1], placed at
    the slice's last sample; a slice holding only gaps stays a gap, an empty one is left out.
    A day of minute samples is 1,440 points a line — more than the chart has pixels."""
    if len(points) <= buckets:
        return points
    width = (x1 - x0) / buckets or 1.0
    slices: dict[int, list[tuple[float, float | None]]] = {}
    for t, v in points:
        slices.setdefault(int((t - x0) // width), []).append((t, v))
    out: list[tuple[float, float | None]] = []
    for _, members in sorted(slices.items()):
        values = [v for _, v in members if v is not None]
        value = (None if not values else max(values) if how == "max"
                 else sum(values) / len(values))
        out.append((members[-1][0], value))
    return out


def line_chart(title: str, series: Sequence[Series], x0: float, x1: float, *, unit: str = "",
               how: str = "max", **attrs: str) -> Html:
    """One line per series; a None value breaks the line (no sample there). Series longer than
    :data:`MAX_POINTS` are reduced (``how``: "max" or "mean" per slice)."""
    series = [Series(s.name, reduce(s.points, x0, x1, how)) for s in series]
    values = [v for s in series for _, v in s.points if v is not None]
    frame = _Frame(x0, x1, max(values, default=0.0))
    parts = [frame.axes(unit)]
    for i, s in enumerate(series):
        runs: list[list[str]] = [[]]
        for t, v in s.points:
            if v is None or t < x0 or t > x1:
                runs.append([])
            else:
                runs[-1].append(f"{frame.x(t):.1f},{frame.y(v):.1f}")
        for run in runs:
            if len(run) == 1:  # a lone sample is a dot, not an invisible line
                cx, cy = run[0].split(",")
                parts.append(tag("circle", cx=cx, cy=cy, r=2, cls=f"dot s{i % COLOURS}"))
            elif run:
                parts.append(tag("polyline", points=" ".join(run), cls=f"line s{i % COLOURS}"))
    if not values:
        parts.append(tag("text", "no samples yet", x=WIDTH / 2, y=HEIGHT / 2, cls="none",
                         text_anchor="middle"))
    return tag("figure", _svg(title, join(parts), **attrs) +
               tag("figcaption", title) + _legend([s.name for s in series]))


def bar_chart(title: str, stack: Stack, x0: float, x1: float, *, bands: Sequence[Band] = (),
              unit: str = "", **attrs: str) -> Html:
    """Stacked bars per bucket; bands drawn behind them, hatched and labelled."""
    totals = [sum(c[i] for c in stack.counts.values()) for i in range(len(stack.starts))]
    frame = _Frame(x0, x1, max([*totals, 2]))  # counts: whole numbers on the axis
    parts = [frame.axes(unit)]
    for band in bands:
        left, right = frame.x(max(band.start, x0)), frame.x(min(band.end, x1))
        if right - left < 1:
            continue
        parts.append(tag("rect", x=f"{left:.1f}", y=TOP, width=f"{right - left:.1f}",
                         height=frame.h, cls="band"))
        parts.append(tag("text", band.label, x=f"{(left + right) / 2:.1f}", y=TOP + 14,
                         cls="bandlabel", text_anchor="middle"))
    bar_w = max(1.0, frame.w * stack.width_s / (frame.x1 - frame.x0) - 1)
    for i, start in enumerate(stack.starts):
        if start < x0 or start >= x1:
            continue
        base = 0
        for k, (name, counts) in enumerate(stack.counts.items()):
            n = counts[i]
            if not n:
                continue
            top, bottom = frame.y(base + n), frame.y(base)
            parts.append(tag("rect", tag("title", f"{name}: {n}"), x=f"{frame.x(start):.1f}",
                             y=f"{top:.1f}", width=f"{bar_w:.1f}",
                             height=f"{max(bottom - top, 0.5):.1f}", cls=f"bar s{k % COLOURS}"))
            base += n
    return tag("figure", _svg(title, join(parts), **attrs) +
               tag("figcaption", title) + _legend(list(stack.counts)))


def timeline(title: str, lanes: Sequence[str], events: Sequence[tuple[float, str, str]],
             **attrs: str) -> Html:
    """Events (epoch seconds, lane, label) as dots in one row per lane, in time order; the
    time axis shows seconds since the first event."""
    lane_h = 34
    height = TOP + lane_h * max(len(lanes), 1) + BOTTOM
    times = [t for t, _, _ in events]
    t0, t1 = min(times, default=0.0), max(times, default=0.0)
    span = max(t1 - t0, 1e-3)
    w = TIMELINE_WIDTH - LEFT - RIGHT - 90  # room for the last label

    def x(t: float) -> float:
        return LEFT + 40 + (t - t0) / span * (w - 40) if t1 > t0 else LEFT + 40 + (w - 40) / 2

    parts = []
    for i, lane in enumerate(lanes):
        y = TOP + lane_h * i + lane_h / 2
        parts.append(tag("line", x1=LEFT + 30, x2=TIMELINE_WIDTH - RIGHT, y1=y, y2=y, cls="grid"))
        parts.append(tag("text", lane, x=LEFT + 24, y=y + 4, cls="tick", text_anchor="end"))
    previous: tuple[float, float] | None = None
    for n, (t, lane, label) in enumerate(events):
        y = TOP + lane_h * lanes.index(lane) + lane_h / 2
        if previous is not None:
            parts.append(tag("line", x1=f"{previous[0]:.1f}", y1=f"{previous[1]:.1f}",
                             x2=f"{x(t):.1f}", y2=f"{y:.1f}", cls="link"))
        previous = (x(t), y)
        parts.append(tag("circle", tag("title", f"{lane}: {label} at +{t - t0:.3f} s"),
                         cx=f"{x(t):.1f}", cy=f"{y:.1f}", r=5, cls=f"dot s{n % COLOURS}"))
        parts.append(tag("text", label, x=f"{x(t) + 7:.1f}", y=f"{y - 7:.1f}", cls="event"))
    for frac in (0.0, 1.0):
        parts.append(tag("text", f"+{span * frac:.3f} s" if t1 > t0 else "+0 s",
                         x=f"{x(t0 + span * frac):.1f}", y=height - 8, cls="tick",
                         text_anchor="middle"))
    svg = tag("svg", tag("title", title) + join(parts), viewBox=f"0 0 {TIMELINE_WIDTH} {height}",
              width=TIMELINE_WIDTH, height=height, role="img", cls="chart", **attrs)
    return tag("figure", svg + tag("figcaption", title))


CHART_CSS = """
figure{margin:.4em 0 1em}figcaption{color:#555;font-size:12px}
svg.chart{background:#fff;border:1px solid #ddd;max-width:100%;height:auto}
svg .grid{stroke:#e4e4e4;stroke-width:1}svg .tick{font-size:11px;fill:#666}
svg .line{fill:none;stroke-width:1.6}svg .none{fill:#999;font-size:12px}
svg .band{fill:#fdecea;stroke:#e8a39c;stroke-dasharray:4 3}
svg .bandlabel{fill:#b3261e;font-size:11px;font-weight:600}
svg .link{stroke:#bbb;stroke-width:1}svg .event{font-size:10px;fill:#333}
ul.legend{list-style:none;padding:0;margin:.2em 0;display:flex;flex-wrap:wrap;gap:.3em 1em}
.sw{display:inline-block;width:.8em;height:.8em;margin-right:.3em;vertical-align:-1px}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(400px,470px));gap:0 1.5em}
""" + "".join(
    f".s{i}{{stroke:{c};fill:{c}}}.sw.s{i}{{background:{c}}}" for i, c in enumerate(PALETTE))

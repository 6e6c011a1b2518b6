"""Stage history: throughput and lag of every stage over the last hour and the last day, as SVG
charts from the sampler's rows (:mod:`mailroom.console.web.data.history`). Refreshes every
minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from mailroom.console.web.charts import Series, line_chart
from mailroom.console.web.data import history as data
from mailroom.console.web.templates import Html, join, link, page, tag

if TYPE_CHECKING:
    from mailroom.console.web.app import Dashboard, Request, Response

RANGES = (("hour", timedelta(hours=1)), ("day", timedelta(days=1)))
REFRESH_S = 60
ORDER = ("ingest", "unwrap", "route", "persist")


def _order(stage: str) -> tuple[int, str]:
    return (ORDER.index(stage) if stage in ORDER else len(ORDER), stage)


def charts(found: dict[str, list[data.Sample]], span: timedelta, now: datetime,
           name: str) -> Html:
    stages = sorted(found, key=_order)
    x0, x1 = (now - span).timestamp(), now.timestamp()
    rate = [Series(s, [(t.timestamp(), v) for t, v in data.throughput(found[s])])
            for s in stages if s != "ingest"]
    behind = [Series(s, [(p.minute.timestamp(), float(p.messages_behind)) for p in found[s]])
              for s in stages]
    seconds = [Series(s, [(p.minute.timestamp(), p.seconds_behind) for p in found[s]])
               for s in stages]
    return tag("div", join([
        line_chart(f"Throughput, messages/s, last {name}", rate, x0, x1, how="mean",
                   id=f"throughput-{name}"),
        line_chart(f"Messages behind, last {name}", behind, x0, x1, id=f"behind-{name}"),
        line_chart(f"Seconds behind, last {name}", seconds, x0, x1, unit=" s",
                   id=f"seconds-{name}"),
    ]), cls="charts")


def _charts_now(found: dict[str, list[data.Sample]], span: timedelta, name: str) -> Html:
    return charts(found, span, datetime.now(UTC), name)


def show(app: Dashboard, request: Request) -> Response:
    from mailroom.console.web.app import Response

    parts = [tag("p", join([
        "One sample per stage per minute while the dashboard runs; throughput is committed "
        "offsets per second between samples. ", link("/stages", "Live stages")]), cls="muted")]
    for name, span in RANGES:
        # Drawn with each read of the samples (every 20 s at most), behind the page, for every
        # viewer.
        drawn = app.history.drawn(span, partial(_charts_now, span=span, name=name))
        parts += [tag("h2", f"Last {name}"), drawn]
    return Response(page("Stage history", join(parts), current="/stages", who=request.session,
                         refresh_s=REFRESH_S))

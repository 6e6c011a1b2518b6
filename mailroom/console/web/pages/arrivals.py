"""Arrivals per mailbox over time (``mailroom run stats``' smallest window, every kept window),
with silence marked: a mailbox that has had no mail for a while is a hatched band saying since
when — next to its last poll, which tells a quiet mailbox from one nobody reads."""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING

from mailroom.console.web.charts import Band, Stack, bar_chart
from mailroom.console.web.data import mailboxes as mailbox_data
from mailroom.console.web.data.volume import VolumeSnapshot
from mailroom.console.web.templates import Html, ago, duration, join, link, page, tag

if TYPE_CHECKING:
    from mailroom.console.web.app import Dashboard, Request, Response

SILENCE_WINDOWS = 2  # no mail for two whole windows or more (2 h with 1 h windows) is marked


def silence(counts: dict[int, int], size_ms: int, x0: float, now: float) -> Band | None:
    """The band from the end of the last window with mail to now, when it is long enough."""
    with_mail = [start for start, n in counts.items() if n]
    if not with_mail:
        return Band(x0, now, f"no mail in the last {duration(now - x0)}")
    since = (max(with_mail) + size_ms) / 1000
    if now - since < SILENCE_WINDOWS * size_ms / 1000:
        return None
    return Band(since, now, f"silent for {duration(now - since)}")


def chart(title: str, counts: dict[int, int], snap: VolumeSnapshot, keep: int, now: float,
          **attrs: str) -> tuple[Html, Band | None]:
    window = snap.arrival_window
    assert window is not None
    size_s = window.size_ms / 1000
    first = window.start(int((now - keep * size_s) * 1000))
    starts = list(range(first, int(now * 1000) + 1, window.size_ms))
    stack = Stack([s / 1000 for s in starts], size_s,
                  {"messages": [counts.get(s, 0) for s in starts]})
    x0 = first / 1000
    band = silence(counts, window.size_ms, x0, now)
    return bar_chart(title, stack, x0, now, bands=[band] if band else [], **attrs), band


def show(app: Dashboard, request: Request) -> Response:
    from mailroom.console.web.app import Response

    with app.db(autocommit=True) as conn:
        boxes = mailbox_data.mailboxes(conn)
    snap = app.volume.snapshot()
    parts = [tag("p", join([f"Messages arriving per mailbox ({app.settings.stats_windows} "
                            "windows, counted by mailroom run stats); silence of ",
                            f"{SILENCE_WINDOWS} windows or more is marked. ",
                            link("/", "Mailboxes")]), cls="muted")]
    if snap.error:
        parts.append(tag("p", f"Arrivals unavailable: {snap.error}", cls="st bad"))
    elif snap.arrival_window is None or not snap.arrivals:
        # Nothing counted at all says nothing about the mailboxes: no silence is marked.
        parts.append(tag("p", "Nothing counted yet (is mailroom run stats running?).",
                         cls="muted", id="no-arrivals"))
    else:
        now = time.time()
        keep = app.settings.stats_keep_windows
        charts = []
        for m in boxes:
            counts = snap.arrivals.get(m.address.lower(), {})
            # Drawn once per snapshot of the stats table (every 5 s at most), for every viewer.
            svg, band = app.drawn.get(("arrivals", m.id, m.address), snap, partial(
                chart, f"{m.address}: messages per {snap.arrival_window.name}", counts, snap,
                keep, now, id=f"arrivals-{m.id}"))
            poll = f"last poll {ago(m.last_poll)}" if m.last_poll else "never polled"
            state = tag("span", band.label, cls="st bad") if band else tag("span", "receiving",
                                                                           cls="st ok")
            charts.append(tag("div", join([tag("h2", m.address), svg,
                                           tag("p", join([state, f" · {poll} · {m.status}"]),
                                               cls="muted")]), cls="mailbox-chart"))
        parts.append(tag("div", join(charts), cls="charts") if charts else
                     tag("p", "no mailboxes (mailroom mailbox add)", cls="muted"))
    return Response(page("Arrivals", join(parts), current="/", who=request.session))

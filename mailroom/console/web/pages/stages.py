"""Stages: lag per consumer group and partition (messages and seconds), status, throughput;
mail volume per mailbox and top senders in the current windows (``mailroom run stats``).

Refreshes itself with ``<meta http-equiv=refresh>``: live without any script, so the
Content-Security-Policy can forbid scripts entirely.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mailroom.console.web.data.volume import VolumeSnapshot
from mailroom.console.web.templates import (
    Html,
    duration,
    join,
    link,
    page,
    status,
    table,
    tag,
    when,
)

if TYPE_CHECKING:
    from mailroom.console.web.app import Dashboard, Request, Response

REFRESH_S = 5


def show(app: Dashboard, request: Request) -> Response:
    from mailroom.console.web.app import Response

    snap = app.stages.snapshot()
    parts: list[Html] = [tag("p", link("/stages/history", "History: throughput and lag over "
                                       "the last hour and day"))]
    if snap.report is None:
        parts.append(tag("p", f"Lag unavailable: {snap.error}", cls="st bad"))
    else:
        r = snap.report
        groups = [
            (g.stage, g.group, status(g.status if g.members or not g.messages_behind
                                      else "no process") if not g.error else status("error"),
             g.members, g.messages_behind, duration(g.seconds_behind),
             "—" if g.stage not in snap.throughput else f"{snap.throughput[g.stage]:.1f}/s",
             g.offsets_in, g.error)
            for g in r.groups
        ]
        ingest_behind = sum(b.backlog or 0 for b in r.mailboxes)
        groups.insert(0, ("ingest", "(mail servers)", status(r.ingest_status), "—",
                          ingest_behind, duration(max((b.seconds_behind for b in r.mailboxes),
                                                      default=0.0)), "—", "postgresql",
                          r.ingest_error))
        parts.append(table(("Stage", "Consumer group", "Status", "Processes", "Messages behind",
                            "Seconds behind", "Throughput", "Offsets in", "Error"), groups,
                           id="stages"))
        parts.append(tag("h2", "Partitions"))
        rows = [
            (g.stage, p.topic, p.partition, status(p.status),
             "—" if p.committed is None else p.committed, p.end, p.messages_behind
             if p.exact else f"≈{p.messages_behind}", f"{p.seconds_behind:.1f}")
            for g in r.groups for p in g.partitions
        ]
        parts.append(table(("Stage", "Topic", "Partition", "Status", "Committed", "End",
                            "Messages behind", "Seconds behind"), rows,
                           empty="no partitions (topics not created?)", id="partitions"))
        parts.append(tag("p", f"Sampled {r.taken_at:%H:%M:%S} UTC; refreshes every "
                              f"{REFRESH_S} s.", cls="muted"))
    parts.append(volume_section(app.volume.snapshot()))
    return Response(page("Stages", join(parts), current="/stages", who=request.session,
                         refresh_s=REFRESH_S))



def volume_section(v: VolumeSnapshot) -> Html:
    """Messages per receiving mailbox and per top sender in each current window. Addresses
    come from mail (attacker-controlled): ``table`` escapes every cell."""
    parts = [tag("h2", "Volume")]
    if v.error:
        parts.append(tag("p", f"Volume unavailable: {v.error}", cls="st bad"))
        return join(parts)
    if not v.starts:
        parts.append(tag("p", "Nothing counted yet (is mailroom run stats running?).",
                         cls="muted"))
        return join(parts)
    heads = [f"{name} from {when(datetime.fromtimestamp(v.starts[name] / 1000, UTC))}"
             if name in v.starts else name for name in v.windows]
    for title, rows, key in (("Mailbox", v.mailboxes, "volume-mailboxes"),
                             ("Sender", v.senders, "volume-senders")):
        parts.append(table((title, *heads),
                           [(address, *(counts.get(n, 0) for n in v.windows))
                            for address, counts in rows], empty="none", id=key))
    if v.undecodable:
        parts.append(tag("p", "Undecodable records: " + ", ".join(
            f"{counts} in {name}" for name, counts in v.undecodable.items()), cls="st warn"))
    parts.append(tag("p", "Current windows: those holding the newest arrival counted (event "
                          "time); top senders only.", cls="muted"))
    return join(parts)

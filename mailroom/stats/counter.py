"""One counter's table value, and applying one event to it exactly once (pure, unit-tested).

faust delivers records more than once even without a crash: after a restart its recovery
resumes the stream partitions, lets the agents run, and only then seeks them back to the
committed offsets (faust-streaming 0.15.3, ``Recovery.on_recovery_completed``), so whatever was
processed in between comes again; a rebalance or a crash re-delivers everything since the last
commit (~3 s). Kafka transactions do not help: faust enables them only under its own Worker,
and the in-memory table would keep the first application anyway.

So each counter remembers, per partition of ``unwrapped``, the highest source offset it has
counted, in the same changelog record as the counts. An event carries its email's source
coordinates; one at or below that mark was counted already and is dropped. This is exact
because fanout handles a source partition in offset order and waits for each event's ack, and
every counter lives in one events partition (read in order): when a counter has seen offset N
of source partition P, it has seen every earlier offset of P that moves it. Replays of the
stats group (offsets reset) therefore change nothing either.

Value in the changelog (JSON)::

    {"windows": {"1h": {"<start ms>": n, ...}, "1d": {...}},
     "counted": {"<source partition>": <highest source offset counted>}}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mailroom.stats import windows as w

Value = dict[str, Any]  # {"windows": w.Volume, "counted": {partition: offset}}


def volume_of(value: Mapping[str, Any] | None) -> w.Volume:
    """The windows of a table value ({} for none)."""
    if value and "windows" not in value:
        return dict(value)  # written before "counted" existed: the value was the windows
    return dict((value or {}).get("windows") or {})


def apply(value: Mapping[str, Any] | None, source: tuple[int, int] | None, at_ms: int,
          windows: Iterable[w.Window], keep: int) -> Value | None:
    """``value`` with one message at ``at_ms`` counted, or None when the source record
    (``(partition, offset)`` in ``unwrapped``) was counted already: nothing to write.
    ``source`` None (an event written before events carried it) is always counted."""
    counted = {str(k): int(v) for k, v in ((value or {}).get("counted") or {}).items()}
    if source is not None:
        partition, offset = source
        if counted.get(str(partition), -1) >= offset:
            return None
        counted[str(partition)] = offset
    return {"windows": w.add(volume_of(value), windows, at_ms, keep), "counted": counted}

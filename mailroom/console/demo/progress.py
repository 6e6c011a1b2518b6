"""How far the pipeline has got: raw records ingested, consumer lag, records in PostgreSQL.

Lag comes from the ops tooling (:mod:`mailroom.console.ops.lag`, which reads persist's offsets of
record in PostgreSQL and skips transaction markers), so the demo waits on exactly what
``mailroom lag`` would show.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mailroom.console.demo.pipeline import Children
from mailroom.console.ops.groups import Cluster
from mailroom.console.ops.lag import sample
from mailroom.db import connect
from mailroom.errors import MailroomError
from mailroom.settings import Settings


class PipelineFailed(MailroomError):
    """A stage process died, or the pipeline did not get there in time."""


def behind(cluster: Cluster, settings: Settings) -> dict[str, int]:
    """Messages not yet consumed, per stream stage."""
    return {g.stage: g.messages_behind for g in sample(cluster, settings, scan_limit=1000)}


def raw_count(cluster: Cluster, settings: Settings) -> int:
    """Records on the raw topic: one per message ingest fetched from a mailbox."""
    tps = [tp for tp in cluster.partitions("unwrap")]
    ends = cluster.end_offsets(tps)
    begins = cluster.beginning_offsets(tps)
    return sum(ends[tp] - begins[tp] for tp in tps)


def query_one(settings: Settings, query: str, params: tuple[object, ...] = ()) -> object:
    with connect(settings) as conn:
        row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def query_rows(settings: Settings, query: str,
               params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with connect(settings) as conn:
        return [tuple(r) for r in conn.execute(query, params).fetchall()]


def wait_for(
    what: str, check: Callable[[], bool], children: Children, timeout_s: float,
    interval_s: float = 0.5,
) -> None:
    """Poll ``check`` until true; a dead child or the timeout ends the wait with the reason."""
    deadline = time.monotonic() + timeout_s
    while not check():
        for child in children.dead():
            raise PipelineFailed(
                f"{child.name} exited with {child.process.returncode} while waiting for {what}; "
                f"its log ({child.log_path}) ends:\n{children.tail(child)}"
            )
        if time.monotonic() > deadline:
            raise PipelineFailed(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def caught_up(cluster: Cluster, settings: Settings, raw_expected: int) -> Callable[[], bool]:
    """True once ingest published every appended copy and no stage has anything left."""

    def check() -> bool:
        if raw_count(cluster, settings) < raw_expected:
            return False
        return not any(behind(cluster, settings).values())

    return check

"""The durable attempt counter: a message that keeps killing a stage is dead-lettered unparsed.

A handler exception is caught and dead-lettered by the runner, but some failures take the whole
process with them: a segfault in a C extension, the OOM killer, a hang that the hard watchdog
ends with ``_exit``, a bug in the runner. Kafka then redelivers from the last committed offset,
and without a memory of earlier attempts the stage would crash on the same record forever. This
module is that memory, in PostgreSQL (table ``stage_attempts``, migration 0010).

Design — batch level, one round trip per poll, not per message
---------------------------------------------------------------
One row per (consumer group, topic, partition) says which range a process last *started*:
``first_offset`` (the committed position it started from), ``last_offset`` (the end of the batch
it took) and ``attempts``. Before a batch is processed the runner calls :meth:`AttemptLog.begin`
for every partition of the batch in ONE statement, committed on its own (autocommit) before any
processing, so a crash cannot roll it back:

- a start at a *new* first offset (the previous batch was committed) resets ``attempts`` to 1 —
  this is also how the counter is "cleared": committing moves the next start forward, so no
  delete and no pruning is ever needed (the table holds groups × partitions rows);
- a start at the *same* first offset as the previous one means no commit happened in between:
  a process died (or hung and was evicted) somewhere in ``first..last``. ``suspect_end``
  becomes the end of that range. ``attempts`` goes up only when that range was the one record
  alone — a death inside a whole batch does not say which record did it.

While an offset is ``<= suspect_end`` the runner handles that partition *one record at a time*
(begin one offset, handle it, flush, commit; the row then holds exactly that one offset), so
the killer is isolated — the next start lands exactly on it, alone, and its count grows — while
the innocent records before it go through and are committed. When a record's count exceeds
``settings.max_attempts`` the runner dead-letters it with reason ``crash_loop`` without
decoding it, commits past it and goes on. Past ``suspect_end`` the partition is back to whole
batches.

A record that kills the process is therefore dead-lettered after ``max_attempts`` deaths with
it alone in flight, plus the one death in the batch it first came in. That limit applies when
the handler runs in the consumer's own process (``stage_isolation=inline``): with worker
children (``process``) a record cannot kill the consumer — the worker pool counts the deaths a
record causes itself — so the runner's own deaths (killed from outside) only make it go one
record at a time, and never dead-letter healthy mail. The happy path costs one
statement per poll() — never one per message; the careful path costs a statement and a commit
per suspect record, only after a crash.

Rebalances: the row belongs to the group, not the member, so a second process that takes over
the partition of a dead one sees the same first offset and counts on. A clean hand-over commits
first, so the new owner starts at a new offset and the count resets. A member that loses its
partition before committing anything (rare: the runner finishes a batch before polling again)
adds one false attempt, which ``max_attempts`` absorbs.

PostgreSQL away: a lost connection is reopened at the next :meth:`AttemptLog.begin` (with the
``connect`` the log was given); a release that could not be written is kept and written before
that begin, so an outage never counts as a death of the records in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import psycopg

from mailroom.db.outage import LOST, renewed

Step = Literal["batch", "one", "crash_loop"]


@dataclass(frozen=True)
class Start:
    """A range a process is about to process on one partition."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int


@dataclass(frozen=True)
class Standing:
    """What the counter says about a range just begun."""

    attempts: int  # how many times in a row a process started at this first offset (>= 1)
    suspect_end: int  # records up to here were in flight when a process died; -1: none

    def step(self, offset: int, max_attempts: int) -> Step:
        """How to handle the record at ``offset`` (the first of the range just begun)."""
        return next_step(offset, self, max_attempts)


def next_step(offset: int, standing: Standing, max_attempts: int) -> Step:
    """Pure decision: dead-letter unparsed, handle alone, or handle the whole batch."""
    if standing.attempts > max_attempts:
        return "crash_loop"
    if offset <= standing.suspect_end:
        return "one"
    return "batch"


_SUSPECT_END = """CASE
        WHEN a.first_offset = EXCLUDED.first_offset AND NOT a.released
             THEN GREATEST(a.suspect_end, a.last_offset)
        WHEN EXCLUDED.first_offset <= a.suspect_end THEN a.suspect_end
        ELSE -1 END"""

# ON CONFLICT's SET sees the old row as ``a``; every expression is computed from it.
_BEGIN = f"""
INSERT INTO stage_attempts AS a (group_id, topic, partition, first_offset, last_offset, attempts)
SELECT %(group)s, s.topic, s.partition, s.first_offset, s.last_offset, 1
  FROM unnest(%(topics)s::text[], %(partitions)s::int[], %(firsts)s::bigint[],
              %(lasts)s::bigint[]) AS s(topic, partition, first_offset, last_offset)
ON CONFLICT (group_id, topic, partition) DO UPDATE SET
    -- Only a death with this record ALONE in flight counts against it; a death somewhere in a
    -- whole batch only makes the batch suspect.
    attempts = CASE WHEN a.first_offset = EXCLUDED.first_offset AND NOT a.released
                     AND a.last_offset = a.first_offset THEN a.attempts + 1 ELSE 1 END,
    released = false,
    suspect_end = {_SUSPECT_END},
    first_offset = EXCLUDED.first_offset,
    -- A suspect record is handled alone: record exactly that, so its next death counts.
    last_offset = CASE WHEN EXCLUDED.first_offset <= {_SUSPECT_END}
                       THEN EXCLUDED.first_offset ELSE EXCLUDED.last_offset END,
    started_at = now()
RETURNING topic, partition, attempts, suspect_end
"""


class AttemptLog:
    """The counter of one consumer group. ``conn`` must be in autocommit mode: every begin is
    durable before the records it covers are touched."""

    def __init__(self, conn: psycopg.Connection, group_id: str,
                 connect: Callable[[], psycopg.Connection] | None = None) -> None:
        if not conn.autocommit:
            raise ValueError("AttemptLog needs an autocommit connection (each begin is durable)")
        self.conn = conn
        self.group_id = group_id
        self.connect = connect  # reopens a lost connection (autocommit); None: never
        self._owed: list[tuple[str, int, int]] = []  # releases the database was away for

    def _usable(self) -> psycopg.Connection:
        if self.connect is not None:
            self.conn = renewed(self.conn, self.connect)
        return self.conn

    def begin(self, starts: Sequence[Start]) -> dict[tuple[str, int], Standing]:
        """Record that processing of these ranges starts now; one statement for all of them."""
        if not starts:
            return {}
        conn = self._usable()
        while self._owed:  # first: a begin at a released offset must not count as a death
            self._release(conn, *self._owed[0])
            self._owed.pop(0)
        params = {
            "group": self.group_id,
            "topics": [s.topic for s in starts],
            "partitions": [s.partition for s in starts],
            "firsts": [s.first_offset for s in starts],
            "lasts": [s.last_offset for s in starts],
        }
        rows = conn.execute(_BEGIN, params).fetchall()
        return {(topic, part): Standing(att, end) for topic, part, att, end in rows}

    def release(self, topic: str, partition: int, first_offset: int) -> None:
        """Take back the begin at ``first_offset``: the stop there was not a crash (the stage
        paused before an unreadable record, the broker or the database failed), so it must not
        count. With the database away it is kept and written before the next begin."""
        try:
            self._release(self._usable(), topic, partition, first_offset)
        except LOST:
            self._owed.append((topic, partition, first_offset))

    def _release(self, conn: psycopg.Connection, topic: str, partition: int,
                 first_offset: int) -> None:
        conn.execute(
            "UPDATE stage_attempts SET released = true"
            " WHERE group_id = %s AND topic = %s AND partition = %s AND first_offset = %s",
            (self.group_id, topic, partition, first_offset),
        )

    def standing(self, topic: str, partition: int) -> Standing | None:
        """The current row (for tests and ``mailroom doctor``); None when never begun."""
        row = self.conn.execute(
            "SELECT attempts, suspect_end FROM stage_attempts"
            " WHERE group_id = %s AND topic = %s AND partition = %s",
            (self.group_id, topic, partition),
        ).fetchone()
        return None if row is None else Standing(row[0], row[1])

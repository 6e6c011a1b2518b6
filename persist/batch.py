"""One batch of plans in one transaction: thread locks, a savepoint per plan, re-evaluation.

Locks: every plan names the threads it may touch — its own Message-ID (or dedupe key), the
Message-IDs it correlates or bounces on, its tokens and Thread-Index root. The keys of the whole
batch are taken up front as transaction-level advisory locks, in one sorted order, so two
persist processes whose batches share threads queue instead of deadlocking, and two emails of
one thread in different partitions never update the same case at once. (Re-evaluating a watcher
can touch one more thread; PostgreSQL detects the rare resulting deadlock and the caller retries
the whole batch — nothing is lost, it only waits.)

Bad data: a plan PostgreSQL refuses (NUL bytes, over-long index keys, a broken reference) is
rolled back to its savepoint and reported as a failure for the dead-letter topic; the batch
goes on. Unexpected exceptions are failures too (a bug must not block the partition).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg

from mailroom.codec import Codec
from mailroom.db.arrays import int_array, text_array
from mailroom.errors import MalformedRecordError
from mailroom.records.action import Plan
from mailroom.records.steps import MarkDeliveryFailed, UpsertEmailActivity
from mailroom.stage.execute import crash_summary
from persist import correlate
from persist.apply import Applied, apply_plan
from persist.batchrows import BatchRows
from persist.park import expire, watchers

log = logging.getLogger(__name__)

#: SQLSTATE classes that mean "this data": 22 data exception, 23 integrity, 54 program limit.
_BAD_DATA = ("22", "23", "54")
#: Worth retrying the whole batch: deadlock, serialization failure.
RETRY_BATCH = ("40P01", "40001")

MAX_CASCADE = 1000  # re-evaluations one landing may trigger (a cycle guard)


@dataclass
class Item:
    plan: Plan
    encoded: bytes  # the plan as read from the topic (parked plans keep these bytes)
    received_ms: int  # the record's broker timestamp


@dataclass
class Result:
    applied: Applied | None = None
    failure: tuple[str, str] | None = None  # (reason code, reason) for the dead letter
    reevaluated: list[tuple[Plan, Applied]] = field(default_factory=list)


def lock_keys(plan: Plan) -> set[str]:
    keys = {"m:" + plan.message_id if plan.message_id else "k:" + plan.dedupe_key}
    for c in plan.correlation:
        if key := correlate.METHODS[type(c)].lock(c):
            keys.add(key)
    for step in plan.steps_of(MarkDeliveryFailed):
        keys.add("m:" + step.message_id)
    return keys | correlate.landing_locks(plan)


def _lock_id(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


def lock_threads(conn: psycopg.Connection, plans: Sequence[Plan]) -> int:
    """Take every plan's thread locks, in ascending order, in one round trip."""
    ids = sorted({_lock_id(k) for p in plans for k in lock_keys(p)})
    # One statement for all: a function scan of unnest yields the array's elements in order and
    # the (volatile, parallel-restricted) lock function runs row by row in that order, so the
    # order of acquisition stays certain — without a statement per lock (an email takes up to
    # four: its Message-ID, conversation, subject and the threads it names).
    if ids:
        conn.execute("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(%s::bigint[]) AS k",
                     (int_array(ids),))
    return len(ids)


def _classify(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate or ""
        if state in RETRY_BATCH:
            raise exc
        if isinstance(exc, psycopg.DataError) or state[:2] in _BAD_DATA:
            return "refused_by_database", f"PostgreSQL refused the plan: {exc}".strip()
        if isinstance(exc, psycopg.OperationalError):
            raise exc  # the database is gone or failing: retry the batch, do not dead-letter
    if isinstance(exc, MalformedRecordError):
        return "undecodable", str(exc)
    return "crash", crash_summary(exc)


def apply_batch(conn: psycopg.Connection, codec: Codec, items: Sequence[Item]) -> list[Result]:
    """Apply ``items`` in order inside the caller's open transaction."""
    conn.execute("SELECT set_config('mailroom.writer', 'persist', true)")
    lock_threads(conn, [i.plan for i in items])
    if items:
        expire(conn, max(i.received_ms for i in items))
    # Pipeline mode: a statement whose result nobody reads (savepoints, queue items, parties,
    # watches, regarding) is sent without waiting; only a read (fetchone) costs a round trip.
    # An error then surfaces at the next read or when the plan's savepoint block ends — still
    # inside that block, so the plan alone is rolled back and classified as before.
    with conn.pipeline():
        watched = Watched.read(conn, items)
        return _apply_items(conn, codec, items, watched)


def _known_rows(conn: psycopg.Connection, items: Sequence[Item]) -> BatchRows:
    """The activity rows of the batch's dedupe keys, and as many ids as it may insert."""
    upserting = [i.plan for i in items if not i.plan.skipped
                 and i.plan.steps_of(UpsertEmailActivity)]
    return BatchRows.read(conn, (p.dedupe_key for p in upserting),
                          wanted=len({(p.dedupe_key, p.content_hash) for p in upserting}))


class Watched:
    """Which Message-IDs of the batch's own emails may have plans waiting on them, so that
    landing looks for watchers only where there can be some (one read per plan was a round
    trip per plan). Read once after the thread locks — no other process can add a watch on a
    thread this batch holds — and kept up to date with the watches the batch's plans add.
    Message-IDs from outside the batch (reached by re-evaluation) are looked up as before."""

    def __init__(self, known: set[str], ids: set[str]) -> None:
        self.known = known  # Message-IDs whose watches were read
        self.ids = ids  # of those and of the batch's own watches: the ones watched

    @classmethod
    def read(cls, conn: psycopg.Connection, items: Sequence[Item]) -> Watched:
        known = {key for i in items for upsert in i.plan.steps_of(UpsertEmailActivity)
                 for key in correlate.landing_keys(i.plan, upsert)}
        rows = conn.execute(
            "SELECT DISTINCT message_id FROM persist_watches WHERE message_id = ANY(%s::text[])",
            (text_array(sorted(known)),), prepare=False,  # planned each batch (persist.batchrows)
        ).fetchall() if known else []
        return cls(known, {r[0] for r in rows})

    def add(self, applied: Applied) -> None:
        self.ids.update(applied.waiting)

    def watchers(self, conn: psycopg.Connection, message_id: str) -> list[tuple[bytes, int]]:
        if message_id in self.known and message_id not in self.ids:
            return []
        return watchers(conn, message_id)


def _apply_items(
    conn: psycopg.Connection, codec: Codec, items: Sequence[Item], watched: Watched
) -> list[Result]:
    """Optimistically, the whole batch under one savepoint: a savepoint per plan costs a
    subtransaction in PostgreSQL and a pipeline sync each, and nearly every batch has no bad
    plan. If one fails, the batch is rolled back to that savepoint and applied again plan by
    plan, each in its own savepoint, so the bad plan alone is reported (same results)."""
    began = set(watched.ids)
    try:
        with conn.transaction():
            known = _known_rows(conn, items)
            results = [_apply_item(conn, codec, item, watched, known) for item in items]
            known.flush(conn)
            return results
    except Exception as exc:  # noqa: BLE001 - classified below; the guarded pass names the plan
        _classify(exc)  # re-raises what must retry the whole batch (deadlock, lost database)
        log.info("a plan of the batch failed (%s): applying plan by plan", type(exc).__name__)
    watched.ids = began  # the failed pass's watches were rolled back
    return [_apply_item(conn, codec, item, watched, None) for item in items]


def _apply_item(
    conn: psycopg.Connection, codec: Codec, item: Item, watched: Watched,
    known: BatchRows | None,
) -> Result:
    """``known`` set: the optimistic pass (any failure fails the pass); None: guarded, the
    plan in its own savepoint."""
    result = Result()
    if known is not None:
        result.applied = apply_plan(conn, codec, item.plan, item.encoded, item.received_ms,
                                    known)
        watched.add(result.applied)
        result.reevaluated = _cascade(conn, codec, result.applied.landed, watched, known)
        return result
    try:
        with conn.transaction():
            result.applied = apply_plan(conn, codec, item.plan, item.encoded, item.received_ms)
    except Exception as exc:  # noqa: BLE001 - classified: retried, or dead-lettered
        result.failure = _classify(exc)
        log.warning("plan %s failed: %s", item.plan.dedupe_key, result.failure[1][:300])
    if result.applied is not None:
        watched.add(result.applied)
        result.reevaluated = _cascade(conn, codec, result.applied.landed, watched, None)
    return result


def _cascade(
    conn: psycopg.Connection, codec: Codec, landed: list[str], watched: Watched,
    known: BatchRows | None,
) -> list[tuple[Plan, Applied]]:
    """Re-apply the plans waiting on Message-IDs that just landed (and what those land).
    In the optimistic pass (``known`` set), a failure fails the batch's pass."""
    guarded = known is None
    done: list[tuple[Plan, Applied]] = []
    queue = list(landed)
    while queue and len(done) < MAX_CASCADE:
        message_id = queue.pop(0)
        for encoded, received_ms in watched.watchers(conn, message_id):
            plan = codec.decode_record(encoded, Plan)
            try:
                if guarded:
                    with conn.transaction():
                        applied = apply_plan(conn, codec, plan, encoded, received_ms)
                else:
                    applied = apply_plan(conn, codec, plan, encoded, received_ms, known)
            except Exception as exc:  # noqa: BLE001 - the watcher stays parked; say why
                if not guarded:
                    raise
                code, reason = _classify(exc)
                log.error("re-evaluating %s after %s landed failed (%s): %s",
                          plan.dedupe_key, message_id, code, reason[:300])
                continue
            applied.detail["reevaluated_after"] = message_id
            watched.add(applied)
            done.append((plan, applied))
            queue.extend(applied.landed)
            if applied.event == "persisted" and plan.message_id \
                    and plan.message_id not in applied.landed:
                # Stored before, and its answer may just have changed: the emails that
                # inherited from it (they watch its Message-ID while it waits) look again.
                queue.append(plan.message_id)
    return done

"""Publishing the mailbox configuration to the compacted ``<prefix>.mailboxes`` topic.

PostgreSQL is where mailboxes live; the topic is derived from it, one record per mailbox keyed
by its id, so compaction keeps the latest state of every mailbox for ever. Credentials stay in
the database: the record says where and what to poll, never how to log in.

Called after every change (``mailroom mailbox add|enable|disable|approve|reject|auth-results|
process-from``, a status change made by the runner) once the database transaction has
committed, and by ``mailroom mailbox publish`` to resync the whole topic (e.g. after a restore,
a lost change, or an upgrade that added fields to the record). The other stages read their
mailbox configuration from this topic (``mailroom/mailboxes.py``), so what they need is here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import psycopg

from ingest import store
from ingest.model import Direction, Mailbox, Profile
from ingest.publish import Producer
from mailroom.codec import Codec
from mailroom.records.mailbox import MailboxRecord
from mailroom.settings import Settings


def record(mailbox: Mailbox, profile: Profile) -> MailboxRecord:
    """The topic's view of one mailbox (no credentials, by construction)."""
    assert mailbox.id is not None
    return MailboxRecord(
        mailbox_id=str(mailbox.id), address=mailbox.address,
        owner_kind=mailbox.owner_kind.value, owner_id=mailbox.owner_id or None,
        via_mailbox_id=str(mailbox.via_mailbox_id) if mailbox.via_mailbox_id else None,
        profile=profile.name, protocol=profile.protocol.value, host=profile.host,
        port=profile.port,
        folders=tuple(f.name for f in mailbox.folders if f.direction is Direction.INCOMING),
        outgoing_folders=tuple(
            f.name for f in mailbox.folders if f.direction is Direction.OUTGOING
        ),
        after_ingest=mailbox.after_ingest.value, enabled=mailbox.enabled,
        approved=mailbox.approved, status=mailbox.status, status_detail=mailbox.status_detail,
        check_auth_results=mailbox.check_auth_results, approval_at=mailbox.approval_at,
        process_from=mailbox.process_from,
    )


#: What the other stages decide with (unwrap's forwarders, route's owners): a mailbox whose
#: topic record differs on one of these is acted on as it was, not as it is. ``status`` and
#: ``updated_at`` move with every poll problem and decide nothing there.
DECIDING = ("address", "owner_kind", "owner_id", "via_mailbox_id", "enabled", "approved",
            "check_auth_results", "approval_at", "process_from", "folders",
            "outgoing_folders")


def drift(conn: psycopg.Connection, published: Mapping[str, MailboxRecord]) -> list[str]:
    """Where the mailboxes topic (``published``: id → latest record, as the mailbox directory
    reads it) disagrees with the database on what the other stages decide with: a mailbox
    saved while the broker was away and never published, a change not published, a mailbox
    deleted whose record stayed. One line per mailbox; empty when they agree."""
    profiles = {p.id: p for p in store.profiles(conn)}
    out: list[str] = []
    seen: set[str] = set()
    for m in store.mailboxes(conn):
        assert m.id is not None
        seen.add(str(m.id))
        now = record(m, profiles[m.profile_id])
        was = published.get(str(m.id))
        if was is None:
            out.append(f"{m.address}: not on the topic")
            continue
        differs = [f for f in DECIDING if getattr(was, f) != getattr(now, f)]
        if differs:
            out.append(f"{m.address}: {', '.join(differs)} differ")
    out += [f"{r.address} (id {mid}): on the topic, not in the database"
            for mid, r in sorted(published.items()) if mid not in seen]
    return out


def key(mailbox_id: int | str) -> bytes:
    """The Kafka key: the mailbox id. Its hash picks the partition, and so the ingest process
    that serves the mailbox (kafka-python's default partitioner: murmur2, as Java's)."""
    return str(mailbox_id).encode()


def publish(settings: Settings, conn: psycopg.Connection, producer: Producer,
            ids: Iterable[int] | None = None, codec: Codec | None = None,
            timeout_s: float = 30.0) -> int:
    """Send the current state of the mailboxes ``ids`` (all when None) and wait for the broker.

    Reads committed database state, so call it after the change's commit. Returns how many
    records were sent; a broker failure raises (the change is in the database either way, and
    ``mailroom mailbox publish`` repairs the topic).
    """
    codec = codec or Codec.from_settings(settings)
    wanted = None if ids is None else set(ids)
    profiles = {p.id: p for p in store.profiles(conn)}
    futures = []
    for m in store.mailboxes(conn, ids=wanted):  # a status change: one row, not a scan
        assert m.id is not None
        value = codec.encode_record(record(m, profiles[m.profile_id]))
        futures.append(producer.send(settings.topic("mailboxes"), key=key(m.id), value=value))
    producer.flush(timeout=timeout_s)
    for future in futures:
        future.get(timeout=timeout_s)
    return len(futures)


def publish_now(settings: Settings, conn: psycopg.Connection,
                ids: Iterable[int] | None = None) -> int:
    """:func:`publish` with a producer of its own (for the CLI)."""
    from kafka import KafkaProducer  # heavy: only when something is published

    from mailroom.kafka import producer_config

    # A short metadata wait: a missing topic or broker is reported, not waited on for a minute.
    producer = KafkaProducer(**producer_config(settings, "mailroom-mailbox-publish"),
                             max_block_ms=10_000)
    try:
        return publish(settings, conn, producer, ids)
    finally:
        producer.close()

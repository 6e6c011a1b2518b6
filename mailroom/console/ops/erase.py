"""``mailroom erase``: remove everything stored about one email or one address, for good.

What an erasure covers, found in PostgreSQL (:func:`find`):

- the email activities — by Message-ID (every copy and collision under it), or, by address,
  every activity the address sent, received or was copied on (sender, participants, parties
  with Bcc) — and with them their mailboxes, parties, attachments, queue items, delivery
  failures and collision notes (``ON DELETE CASCADE``);
- the cases those activities opened, and contacts persist created for the address;
- attachment contents no remaining activity uses, and their blobs; the raw mail's claim-check
  blob when unwrap's trace names one; the blobs of its parked plans;
- every trace event of the mail — by its Message-ID, dedupe key or raw identity, and by address
  any event whose detail mentions it (then everything of that mail too) — and parked plans.

Blobs go persist's way (:mod:`persist.privacy`): condemned, and deleted in the erasure's own
transaction when their content was not put for ``condemned_blob_grace_hours`` — no mail still in
flight can carry them — or else by persist's first batch after that time (``blobs_due_by``): an
email with the same file between unwrap and persist keeps its bytes.

Then, in the same transaction (:func:`execute`), the erasure list (:mod:`mailroom.erasure`)
gains the digests of every identifier found (and of the address), so route and persist never
store that mail again, whatever a replay or a retried dead letter brings, and ``erasures``
records what was removed: counts and row ids, never content, nor the address itself. The
transaction holds the erasure lock exclusively: a persist batch in flight finishes first, and
every later batch sees the list.

Not reachable from here, kept until their retention ends (docs/privacy.md): the topics' copies
(``raw`` 30 days, ``dlq`` 180 days, …) and bodies moved to the blob store by claim check.
"""

from __future__ import annotations

import getpass
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from mailroom import erasure
from mailroom.codec import Codec
from mailroom.errors import ConfigError, MalformedRecordError, UnknownSchemaError
from mailroom.msgids import normalise_message_id
from mailroom.records.action import Plan
from mailroom.settings import Settings
from persist import traces
from persist.privacy import blob_grace, claimed_blobs, forget_blobs, sweep_blobs

SELECTORS = ("message_id", "address")


@dataclass(frozen=True)
class Selector:
    kind: str  # message_id | address
    value: str  # normalised

    @classmethod
    def message_id(cls, value: str) -> Selector:
        # Normalised as unwrap normalised the stored one (mailroom.msgids), so they meet.
        normalised = normalise_message_id(value)
        if not normalised:
            raise ConfigError("--message-id: empty")
        return cls("message_id", normalised)

    @classmethod
    def address(cls, value: str) -> Selector:
        address = value.strip().lower()
        local, at, domain = address.rpartition("@")
        if not (at and local and domain):
            raise ConfigError(f"--address {value!r}: not an address (name@domain)")
        return cls("address", address)

    @property
    def digest(self) -> str:
        if self.kind == "address":
            return erasure.address_digest(self.value)
        return erasure.id_digest(self.value)


@dataclass
class Found:
    """What an erasure removes: ids and counts, never content."""

    selector: Selector
    activity_ids: list[int] = field(default_factory=list)
    case_ids: list[int] = field(default_factory=list)
    cases_kept: list[int] = field(default_factory=list)  # other emails regard them: title erased
    contact_ids: list[str] = field(default_factory=list)
    attachment_shas: list[str] = field(default_factory=list)  # contents no one else uses
    blob_refs: list[str] = field(default_factory=list)
    # topic, partition, offset, position in the record
    trace_keys: list[tuple[str, int, int, int]] = field(default_factory=list)
    pending: list[tuple[str, str, str]] = field(default_factory=list)  # persist_pending_plans
    identifiers: set[str] = field(default_factory=set)  # Message-IDs, dedupe keys, raw ids
    counts: dict[str, int] = field(default_factory=dict)  # dependent rows, by table
    kept: list[str] = field(default_factory=list)  # imported records that still name it
    # Set by execute: the blobs deleted at once, and when persist deletes the rest at the latest
    # (their content was put within the grace: mail in flight may carry it).
    blobs_deleted: list[str] = field(default_factory=list)
    blobs_due_by: datetime | None = None

    def digests(self) -> dict[str, str]:
        """digest → kind, for the erasure list."""
        out = {erasure.id_digest(i): "id" for i in self.identifiers}
        if self.selector.kind == "address":
            out[self.selector.digest] = "address"
        return out

    def summary(self) -> dict[str, int]:
        return {
            "email_activities": len(self.activity_ids), **self.counts,
            "cases": len(self.case_ids), "case_titles": len(self.cases_kept),
            "contacts": len(self.contact_ids),
            "attachment_contents": len(self.attachment_shas), "blobs": len(self.blob_refs),
            "message_traces": len(self.trace_keys), "persist_pending_plans": len(self.pending),
            "erasure_list": len(self.digests()),
        }

    def as_json(self) -> dict[str, Any]:
        return {"selector": self.selector.kind, "digest": self.selector.digest,
                "counts": self.summary(), "activity_ids": self.activity_ids,
                "case_ids": self.case_ids, "case_titles_erased": self.cases_kept,
                "contact_ids": self.contact_ids,
                "blob_refs": self.blob_refs, "blobs_deleted": self.blobs_deleted,
                "blobs_due_by": self.blobs_due_by.isoformat() if self.blobs_due_by else None,
                "kept": self.kept}


def _activities(conn: psycopg.Connection, s: Selector) -> list[tuple[int, str, str | None]]:
    if s.kind == "message_id":
        query = ("SELECT id, dedupe_key, message_id FROM email_activities "
                 "WHERE message_id = %(v)s OR dedupe_key = %(v)s")
    else:
        query = ("SELECT id, dedupe_key, message_id FROM email_activities "
                 "WHERE sender = %(v)s OR %(v)s = ANY(participants) OR id IN "
                 "(SELECT activity_id FROM activity_parties WHERE address = %(v)s)")
    return [(r[0], r[1], r[2]) for r in conn.execute(query + " ORDER BY id", {"v": s.value})]


def _mentions(address: str) -> re.Pattern[str]:
    """The address as a whole word of a trace's detail (not bob@x inside jimbob@x)."""
    return re.compile(r"(?<![\w.%+-])" + re.escape(address) + r"(?![\w-]|\.\w)", re.IGNORECASE)


_TRACE_IDS = "SELECT topic, topic_partition, topic_offset, key, message_id, dedupe_key, " \
             "raw_identity, detail, topic_index FROM message_traces"


def _traces(conn: psycopg.Connection, found: Found) -> None:
    """Every trace event of the found mail; the identifiers of mail whose trace mentions the
    address join the found ones (twice: a raw identity leads to the events keyed by it)."""
    rows: dict[tuple[str, int, int, int], tuple[Any, ...]] = {}
    if found.selector.kind == "address":
        word = _mentions(found.selector.value)
        for row in conn.execute(_TRACE_IDS + " WHERE detail::text ILIKE %s",
                                (f"%{found.selector.value}%",)):
            if word.search(str(row[7])):
                rows[(row[0], row[1], row[2], row[8])] = row
    for _ in range(2):
        for row in rows.values():
            found.identifiers.update(i for i in row[3:7] if i)
        ids = sorted(found.identifiers)
        for row in conn.execute(
            _TRACE_IDS + " WHERE " + traces.named("i", raw_identity=False), {"i": ids},
        ):
            rows[(row[0], row[1], row[2], row[8])] = row
    for row in rows.values():
        found.identifiers.update(i for i in row[3:7] if i)
        claim = row[7].get("raw_claim_check") if isinstance(row[7], dict) else None
        if claim:
            found.blob_refs.append(str(claim))
    found.trace_keys = sorted(rows)


def _pending(conn: psycopg.Connection, codec: Codec, found: Found) -> None:
    digests = set(found.digests())
    for key, chash, mailbox, encoded in conn.execute(
        "SELECT dedupe_key, content_hash, receiving_mailbox, plan FROM persist_pending_plans"
    ):
        hit = key in found.identifiers
        if not hit and found.selector.kind != "address":
            continue
        try:
            plan: Plan | None = codec.decode_record(bytes(encoded), Plan)
        except (MalformedRecordError, UnknownSchemaError):
            plan = None
        if not hit and plan is not None:
            hit = bool(erasure.plan_digests(plan) & digests)
        if hit:
            found.pending.append((key, chash, mailbox))
            if plan is not None:  # never stored: its attachments' blobs are known only here
                found.blob_refs.extend(claimed_blobs(codec, plan))


def _count(conn: psycopg.Connection, table: str, ids: list[int]) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table} WHERE activity_id = ANY(%s)",
                       (ids,)).fetchone()
    return int(row[0]) if row else 0


def find(conn: psycopg.Connection, codec: Codec, selector: Selector) -> Found:
    """What the erasure would remove (reads only)."""
    found = Found(selector)
    activities = _activities(conn, selector)
    found.activity_ids = [a[0] for a in activities]
    found.identifiers = {i for a in activities for i in a[1:] if i}
    if selector.kind == "message_id":
        found.identifiers.add(selector.value)
    ids = found.activity_ids
    for table in ("activity_mailboxes", "activity_parties", "activity_attachments",
                  "queue_items", "activity_delivery_failures"):
        found.counts[table] = _count(conn, table, ids)
    opened = [r[0] for r in conn.execute(
        "SELECT id FROM cases WHERE originating_activity_id = ANY(%s) ORDER BY id", (ids,))]
    # A case other emails are regarding stays theirs; only its title (the subject) goes.
    shared = {r[0] for r in conn.execute(
        "SELECT DISTINCT regarding FROM email_activities WHERE regarding = ANY(%s) "
        "AND NOT id = ANY(%s)", ([f"case:{c}" for c in opened], ids))}
    found.case_ids = [c for c in opened if f"case:{c}" not in shared]
    found.cases_kept = [c for c in opened if f"case:{c}" in shared]
    rows = conn.execute(
        "SELECT DISTINCT c.sha256, c.blob_ref FROM activity_attachments a "
        "JOIN attachment_contents c ON c.sha256 = a.sha256 WHERE a.activity_id = ANY(%(ids)s) "
        "AND NOT EXISTS (SELECT 1 FROM activity_attachments o WHERE o.sha256 = c.sha256 "
        "AND NOT o.activity_id = ANY(%(ids)s)) ORDER BY c.sha256", {"ids": ids}).fetchall()
    found.attachment_shas = [r[0] for r in rows]
    found.blob_refs = [r[1] for r in rows if r[1]]
    if selector.kind == "address":
        found.contact_ids = [r[0] for r in conn.execute(
            "SELECT contact_id FROM persist_created_contacts WHERE address = %s",
            (selector.value,))]
        found.kept = [r[0] for r in conn.execute(
            "SELECT record_kind || ':' || record_id FROM email_addresses WHERE address = %s "
            "AND NOT (record_kind = 'contact' AND record_id = ANY(%s)) ORDER BY 1",
            (selector.value, found.contact_ids))]
    _traces(conn, found)
    _pending(conn, codec, found)
    found.blob_refs = sorted(set(found.blob_refs))
    return found


def _delete(conn: psycopg.Connection, sql: str, params: Iterable[Any]) -> None:
    conn.execute(sql, tuple(params))


def execute(conn: psycopg.Connection, codec: Codec, selector: Selector,
            requested_by: str = "", grace: timedelta | None = None) -> tuple[int, Found]:
    """Erase in one transaction (committed here); returns the audit record's id and what
    was removed. ``grace``: the blobs' (None: the setting's default)."""
    grace = blob_grace(Settings()) if grace is None else grace
    with conn.transaction():
        # Exclusive: waits for persist batches in flight; later ones see the list.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (erasure.LOCK_ID,))
        found = find(conn, codec, selector)
        ids = found.activity_ids
        identifiers = sorted(found.identifiers)
        _delete(conn, "UPDATE route_tokens SET activity_dedupe_key = NULL "
                "WHERE activity_dedupe_key = ANY(%s)", [identifiers])
        _delete(conn, "DELETE FROM cases WHERE id = ANY(%s)", [found.case_ids])
        _delete(conn, "UPDATE cases SET title = '(erased)' WHERE id = ANY(%s)",
                [found.cases_kept])
        _delete(conn, "DELETE FROM email_activities WHERE id = ANY(%s)", [ids])
        _delete(conn, "DELETE FROM attachment_contents WHERE sha256 = ANY(%s)",
                [found.attachment_shas])
        # Persist's way: a blob a remaining attachment still uses stays (content-addressed);
        # the others are condemned, and swept below once the parked plans are gone too.
        forget_blobs(conn, found.blob_refs)
        if found.contact_ids:
            _delete(conn, "DELETE FROM email_addresses WHERE record_kind = 'contact' "
                    "AND record_id = ANY(%s)", [found.contact_ids])
            _delete(conn, "DELETE FROM contacts WHERE id = ANY(%s)", [found.contact_ids])
            _delete(conn, "DELETE FROM persist_created_contacts WHERE address = %s",
                    [selector.value])
        with conn.cursor() as cur:
            cur.executemany(
                "DELETE FROM message_traces WHERE topic = %s AND topic_partition = %s "
                "AND topic_offset = %s AND topic_index = %s", found.trace_keys)
            cur.executemany(
                "DELETE FROM persist_pending_plans WHERE dedupe_key = %s AND content_hash = %s "
                "AND receiving_mailbox = %s", found.pending)
        _sweep(conn, found, grace)
        row = conn.execute(
            "INSERT INTO erasures (selector_kind, selector_digest, requested_by, counts, "
            "activity_ids, case_ids, contact_ids, blob_refs) VALUES (%s, %s, %s, %s, %s, %s, "
            "%s, %s) RETURNING id",
            (selector.kind, selector.digest, requested_by or getpass.getuser(),
             Jsonb(found.summary()), ids, found.case_ids, found.contact_ids, found.blob_refs),
        ).fetchone()
        assert row is not None
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO erasure_list (digest, kind, erasure_id) VALUES (%s, %s, %s) "
                "ON CONFLICT (digest) DO NOTHING",
                [(d, kind, row[0]) for d, kind in sorted(found.digests().items())])
    return int(row[0]), found


def _sweep(conn: psycopg.Connection, found: Found, grace: timedelta) -> None:
    """Delete the condemned blobs no mail in flight can carry (any that are due, not only this
    erasure's); note when persist deletes the rest of this erasure's at the latest."""
    found.blobs_deleted = sorted(set(sweep_blobs(conn, grace, limit=None))
                                 & set(found.blob_refs))
    row = conn.execute("SELECT max(last_referenced_at) FROM blobs WHERE sha256 = ANY(%s) "
                       "AND condemned_at IS NOT NULL", (found.blob_refs,)).fetchone()
    found.blobs_due_by = row[0] + grace if row and row[0] is not None else None


def history(conn: psycopg.Connection, limit: int = 20) -> list[tuple[Any, ...]]:
    """The latest erasures' audit records (id, kind, when, by whom, counts)."""
    return conn.execute(
        "SELECT id, selector_kind, erased_at, requested_by, counts FROM erasures "
        "ORDER BY id DESC LIMIT %s", (limit,)).fetchall()

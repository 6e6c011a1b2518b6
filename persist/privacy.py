"""What persist does for privacy, once per batch, before the plans are applied.

- **Erased mail is dropped.** `mailroom erase` removes an email's records and lists its digests
  (:mod:`mailroom.erasure`); the actions and trace topics still hold its plans and events for
  their retention, and a replay or a retried dead letter would store them again. The batch, in
  its own transaction, takes the erasure lock shared (an erasure waits for it, and a batch begun
  after the erasure sees the list) and looks up all its digests in one query.
- **Claim-check blobs of mail that must not be kept are condemned**: those a privacy skip names
  (route/privacy.py) and those of dropped erased plans — unwrap stores them before route has
  decided, and stores them again when a replay brings the mail back. A blob a stored attachment
  uses is not condemned (the store is content-addressed: the same file in another email).
- **Condemned blobs whose grace has run out are deleted** (:func:`sweep_blobs`, every batch).

Why condemned, not deleted at once: another, tracked email carrying the same file may be between
unwrap, which put the blob, and persist, which has not yet stored the attachment row pointing at
it. Every put of the content moves the blob's ``last_referenced_at``, so a blob not put for the
grace (``condemned_blob_grace_hours``, longer than mail is in flight) is carried by no mail still
in flight; the sweep then deletes it unless a stored attachment (its mark is lifted) or a parked
plan (its clock starts again) uses it. The clock is the last put, not the condemnation: erasing
mail unwrapped long ago frees its bytes at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Protocol

import psycopg

from mailroom import erasure
from mailroom.codec import Codec
from mailroom.errors import ConfigError, MalformedRecordError, UnknownSchemaError
from mailroom.records.action import Plan
from mailroom.records.email import Email
from mailroom.records.steps import Skip
from mailroom.settings import Settings

#: Condemned blobs one sweep looks at, at most: a batch's extra work stays bounded.
SWEEP_LIMIT = 32


def blob_grace(settings: Settings) -> timedelta:
    """How long a condemned blob is kept after the last put of its content."""
    hours = settings.condemned_blob_grace_hours
    if hours < 0:
        raise ConfigError(f"condemned_blob_grace_hours must be 0 or more, got {hours}")
    return timedelta(hours=hours)


class Named(Protocol):
    """What a trace event is erased by (a TraceEvent, or persist's row of one)."""

    @property
    def key(self) -> str: ...
    @property
    def message_id(self) -> str | None: ...
    @property
    def dedupe_key(self) -> str | None: ...


def screen(conn: psycopg.Connection, codec: Codec, plans: Sequence[Plan],
           events: Sequence[Named], grace: timedelta | None = None,
           ) -> tuple[set[int], set[int]]:
    """(positions of the erased plans, positions of the erased trace events); condemns the
    blobs of what must not be kept and sweeps those whose ``grace`` (None: the setting's
    default) has run out."""
    erasure.hold(conn)
    plan_digests = [erasure.plan_digests(p) for p in plans]
    # An event is erased by its key, Message-ID and dedupe key (erasure.trace_digests): a
    # message's events share them (four events an email), so each is hashed once a batch and
    # the events are looked at one by one only when one of them is listed.
    names = {n for e in events for n in (e.key, e.message_id, e.dedupe_key) if n}
    by_digest: dict[str, set[str]] = {}
    for n in names:
        by_digest.setdefault(erasure.id_digest(n), set()).add(n)
    hit = erasure.listed(conn, set().union(by_digest, *plan_digests))
    gone = {i for i, d in enumerate(plan_digests) if d & hit}
    blobs = {ref for i, p in enumerate(plans) if i not in gone
             for skip in p.steps_of(Skip) for ref in skip.blobs}
    for i in gone:
        blobs |= claimed_blobs(codec, plans[i])
    forget_blobs(conn, blobs)
    sweep_blobs(conn, blob_grace(Settings()) if grace is None else grace)
    erased = set().union(*(by_digest[d] for d in hit if d in by_digest))
    return gone, {i for i, e in enumerate(events) if erased
                  and (e.key in erased or e.message_id in erased or e.dedupe_key in erased)}


def claimed_blobs(codec: Codec, plan: Plan) -> set[str]:
    """The claim-check blobs a plan names: its skip's, its email's attachments'."""
    refs = {ref for skip in plan.steps_of(Skip) for ref in skip.blobs}
    if plan.email:
        try:
            email = codec.decode_record(plan.email, Email)
        except (MalformedRecordError, UnknownSchemaError):
            return refs  # dropped all the same; its blobs age out with the blob store's retention
        refs |= {a.blob_ref for a in email.attachments if a.blob_ref}
    return refs


def forget_blobs(conn: psycopg.Connection, refs: Iterable[str]) -> None:
    """Condemn the blobs no stored attachment uses: :func:`sweep_blobs` deletes them when their
    grace has run out. Rows are locked in sha256 order, so two batches never deadlock here."""
    wanted = sorted(refs)
    if not wanted:
        return
    conn.execute(
        "UPDATE blobs SET condemned_at = now() WHERE sha256 IN (SELECT b.sha256 FROM blobs b "
        "WHERE b.sha256 = ANY(%s) AND b.condemned_at IS NULL AND NOT EXISTS "
        "(SELECT 1 FROM attachment_contents c WHERE c.blob_ref = b.sha256) "
        "ORDER BY b.sha256 FOR UPDATE)", (wanted,))


def sweep_blobs(conn: psycopg.Connection, grace: timedelta,
                limit: int | None = SWEEP_LIMIT) -> list[str]:
    """Delete condemned blobs whose content was not put for ``grace`` (and their chunks) unless
    something still uses them; return the deleted ones' sha256.

    - a stored attachment uses it (an email carrying the same file was stored since): the mark
      is lifted, the blob is that email's now;
    - a parked plan mentions it (its encoding holds the sha256 as written, Avro strings are not
      transformed): its clock starts again, the plan may be applied after a long wait.

    Rows another transaction holds are skipped (``SKIP LOCKED``): a put of the same content
    (it moves ``last_referenced_at``), another batch's sweep. Cheap when nothing is due: one
    probe of a partial index.
    """
    due = [row[0] for row in conn.execute(
        "SELECT sha256 FROM blobs WHERE condemned_at IS NOT NULL AND last_referenced_at < "
        "now() - %s ORDER BY last_referenced_at LIMIT %s FOR UPDATE SKIP LOCKED",
        (grace, limit))]
    if not due:
        return []
    stored = {row[0] for row in conn.execute(
        "SELECT DISTINCT blob_ref FROM attachment_contents WHERE blob_ref = ANY(%s)", (due,))}
    unstored = sorted(set(due) - stored)
    waiting = {row[0] for row in conn.execute(
        "SELECT s FROM unnest(%s::text[]) AS s WHERE EXISTS (SELECT 1 FROM "
        "persist_pending_plans p WHERE position(convert_to(s, 'UTF8') IN p.plan) > 0)",
        (unstored,))} if unstored else set()
    if stored:
        conn.execute("UPDATE blobs SET condemned_at = NULL WHERE sha256 = ANY(%s)",
                     (sorted(stored),))
    if waiting:
        conn.execute("UPDATE blobs SET last_referenced_at = now() WHERE sha256 = ANY(%s)",
                     (sorted(waiting),))
    gone = sorted(set(due) - stored - waiting)
    if gone:
        conn.execute("DELETE FROM blobs WHERE sha256 = ANY(%s)", (gone,))
        conn.execute("DELETE FROM blob_chunks WHERE sha256 = ANY(%s)", (gone,))
    return gone

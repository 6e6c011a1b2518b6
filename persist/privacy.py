"""What persist does for privacy, once per batch, before the plans are applied.

- **Erased mail is dropped.** `mailroom erase` removes an email's records and lists its digests
  (:mod:`mailroom.erasure`); the actions and trace topics still hold its plans and events for
  their retention, and a replay or a retried dead letter would store them again. The batch, in
  its own transaction, takes the erasure lock shared (an erasure waits for it, and a batch begun
  after the erasure sees the list) and looks up all its digests in one query.
- **Claim-check blobs of mail that must not be kept are deleted**: those a privacy skip names
  (route/privacy.py) and those of dropped erased plans — unwrap stores them before route has
  decided, and stores them again when a replay brings the mail back. A blob a stored attachment
  uses stays (the store is content-addressed: the same file in another email).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import psycopg

from mailroom import erasure
from mailroom.codec import Codec
from mailroom.errors import MalformedRecordError, UnknownSchemaError
from mailroom.records.action import Plan
from mailroom.records.email import Email
from mailroom.records.steps import Skip
from mailroom.records.trace import TraceEvent


def screen(conn: psycopg.Connection, codec: Codec, plans: Sequence[Plan],
           events: Sequence[TraceEvent]) -> tuple[set[int], set[int]]:
    """(positions of the erased plans, positions of the erased trace events); deletes the
    blobs of what must not be kept."""
    erasure.hold(conn)
    plan_digests = [erasure.plan_digests(p) for p in plans]
    event_digests = [erasure.trace_digests(e) for e in events]
    hit = erasure.listed(conn, set().union(*plan_digests, *event_digests))
    gone = {i for i, d in enumerate(plan_digests) if d & hit}
    blobs = {ref for i, p in enumerate(plans) if i not in gone
             for skip in p.steps_of(Skip) for ref in skip.blobs}
    for i in gone:
        blobs |= _claimed(codec, plans[i])
    forget_blobs(conn, blobs)
    return gone, {i for i, d in enumerate(event_digests) if d & hit}


def _claimed(codec: Codec, plan: Plan) -> set[str]:
    refs = {ref for skip in plan.steps_of(Skip) for ref in skip.blobs}
    if plan.email:
        try:
            email = codec.decode_record(plan.email, Email)
        except (MalformedRecordError, UnknownSchemaError):
            return refs  # dropped all the same; its blobs age out with the blob store's retention
        refs |= {a.blob_ref for a in email.attachments if a.blob_ref}
    return refs


def forget_blobs(conn: psycopg.Connection, refs: Iterable[str]) -> None:
    wanted = sorted(refs)
    if not wanted:
        return
    conn.execute(
        "WITH gone AS (DELETE FROM blobs b WHERE sha256 = ANY(%s) AND NOT EXISTS "
        "(SELECT 1 FROM attachment_contents c WHERE c.blob_ref = b.sha256) RETURNING sha256) "
        "DELETE FROM blob_chunks WHERE sha256 IN (SELECT sha256 FROM gone)", (wanted,))

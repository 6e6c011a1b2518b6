"""Writing the email activity and the rows that hang off it: receiving mailboxes, parties,
attachments. Every write is keyed by a natural key, so applying a plan twice changes nothing.

Copies merge: each copy adds its receiving mailbox and parties; the copy with the best rank
(copy precedence: direct > forwarded rfc822/.eml > .msg/TNEF > inline) supplies the content,
and among equal ranks the first stored keeps it — a replay applies copies in the same order
(one key, one partition), so it decides the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from mailroom.db import statements
from mailroom.db.arrays import text_array
from mailroom.records.action import Plan
from mailroom.records.email import Email
from mailroom.records.steps import UpsertEmailActivity
from persist.batchrows import BatchRows

_RANK = {"direct": 0, "forwarded_rfc822": 1, "forwarded_eml": 1, "msg": 2, "tnef": 2,
         "inline": 3}


def copy_rank(copy_kind: str) -> int:
    return _RANK.get(copy_kind, 9)


@dataclass(frozen=True)
class Stored:
    id: int
    new: bool  # this plan inserted the row
    collision: bool  # the row is a collision (same dedupe key, different content hash)
    content_from_this_copy: bool


def stored_message_ids(conn: psycopg.Connection, ids: list[str]) -> set[str]:
    """Those of ``ids`` (normalised Message-IDs, :mod:`mailroom.msgids`) an email activity is
    stored for — collisions aside — by the Message-ID index: what a backfill need not fetch
    again (``mailroom mailbox backfill``; the table is persist's, so the read is too)."""
    if not ids:
        return set()
    rows = conn.execute(
        "SELECT message_id FROM email_activities WHERE message_id = ANY(%s) AND NOT collision",
        (ids,),
    ).fetchall()
    return {r[0] for r in rows}


def last_forward_arrivals(conn: psycopg.Connection, mailbox_id: str) -> dict[str, datetime]:
    """{forwarder: newest arrival} of the mail stored as received through forward mailbox
    ``mailbox_id`` (``mailroom rules status``: a forwarder whose mail stopped)."""
    rows = conn.execute(
        "SELECT m.forwarded_by, max(COALESCE(a.received_at, a.created_at)) "
        "FROM activity_mailboxes m JOIN email_activities a ON a.id = m.activity_id "
        "WHERE m.mailbox_id = %s AND m.forwarded_by <> '' GROUP BY m.forwarded_by",
        (mailbox_id,),
    ).fetchall()
    return {str(r[0]): r[1] for r in rows if r[1] is not None}


MAILBOX_COLUMNS = ("activity_id, mailbox_id, accepting_owner, copy_kind, delivery_path, "
                   "forwarded_by")
PARTY_COLUMNS = "activity_id, role, address, record, name, outcome, detail"
CONTENT_COLUMNS = "sha256, size, content, blob_ref"
ATTACHMENT_COLUMNS = ("activity_id, position, sha256, name, content_type, size, content_id, "
                      "inline, omitted")

_CONTENT = ("message_id, direction, subject, text_body, html_body, sent_at, copy_kind, "
            "copy_rank, delivery_path, sender, thread_root, subject_hash, participants, "
            "customer, automated, case_rule")
#: What correlation decided, written with a new row (see :func:`upsert`).
_LINKED = "parent_id, correlation_method, correlation_rank, correlation_refused"


def _content(plan: Plan, email: Email, p: UpsertEmailActivity) -> tuple[object, ...]:
    kind = p.copy_kind or email.delivery.copy_kind
    return (
        plan.message_id, p.direction or email.direction, email.subject,
        email.text_body, email.html_body, p.sent_at or email.date, kind,
        copy_rank(kind), " / ".join(email.delivery.path), p.sender,
        # An array literal: psycopg's dump of a list costs more (mailroom.db.arrays).
        p.thread_root, p.subject_hash, text_array(p.participants), p.customer,
        p.automated, p.case_rule,
    )


def upsert(
    conn: psycopg.Connection, plan: Plan, email: Email, params: UpsertEmailActivity,
    received_ms: int, known: BatchRows | None = None, *,
    parent: tuple[int | None, str, int] | None = None, refused: str = "",
) -> Stored:
    """``parent`` (parent id, method, rank) and ``refused`` (the candidates the customer guard
    refused): written with the row when it is new, saving an UPDATE of the row just inserted
    (a non-HOT update: the refused column is indexed) — a stored row is left to
    :func:`set_correlation` and :func:`set_refused`."""
    received = datetime.fromtimestamp(received_ms / 1000, UTC) if received_ms >= 0 else None
    if known is not None:
        rows = known.of(conn, plan.dedupe_key)
    else:
        rows = [list(r) for r in conn.execute(
            "SELECT id, content_hash, copy_rank, collision FROM email_activities "
            "WHERE dedupe_key = %s ORDER BY id FOR UPDATE", (plan.dedupe_key,),
        ).fetchall()]
    same = next((r for r in rows if r[1] == plan.content_hash), None)
    content = _content(plan, email, params)
    if same is not None:
        activity_id, _, rank, collision = same
        assert isinstance(activity_id, int) and isinstance(rank, int)
        richer = False
        if copy_rank(str(content[6])) < rank:
            # A richer copy supplies the content — unless a CRM user has edited the record
            # (first write wins for what users edit).
            # RETURNING + fetch, not rowcount: batches run in pipeline mode, where rowcount is
            # not known yet (it read 0, so the richer copy's attachments were never stored).
            sets = ", ".join(f"{c.strip()} = %s" for c in _CONTENT.split(","))
            richer = conn.execute(
                f"UPDATE email_activities SET {sets} WHERE id = %s AND user_edited_at IS NULL "
                "RETURNING id", (*content, activity_id),
            ).fetchone() is not None
            if richer:
                same[2] = copy_rank(str(content[6]))
        statements.run(
            conn,
            "UPDATE email_activities SET received_at = LEAST(received_at, %s) "
            "WHERE id = %s AND received_at IS DISTINCT FROM LEAST(received_at, %s)",
            (received, activity_id, received),
        )
        stored = Stored(activity_id, False, bool(collision), richer)
    else:
        real = next((r[0] for r in rows if not r[3]), None)
        collision = bool(rows)
        linked = (*(parent or (None, "", None)), refused)
        columns = (f"dedupe_key, content_hash, collision, received_at, {_CONTENT}, "
                   f"{_LINKED}", ", ".join(["%s"] * 24))
        if known is not None:
            # The id is known ahead: the insert is sent without waiting for an answer.
            activity_id = known.next_id(conn)
            statements.run(
                conn,
                f"INSERT INTO email_activities (id, {columns[0]}) VALUES (%s, {columns[1]})",
                (activity_id, plan.dedupe_key, plan.content_hash, collision, received, *content,
                 *linked),
            )
            rows.append([activity_id, plan.content_hash, content[7], collision])
        else:
            row = statements.run(
                conn,
                f"INSERT INTO email_activities ({columns[0]}) VALUES ({columns[1]}) RETURNING id",
                (plan.dedupe_key, plan.content_hash, collision, received, *content, *linked),
            ).fetchone()
            assert row is not None
            activity_id = row[0]
        if collision:
            conn.execute(
                "INSERT INTO email_collisions (dedupe_key, content_hash, activity_id, "
                "real_activity_id) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (plan.dedupe_key, plan.content_hash, activity_id, real),
            )
        stored = Stored(activity_id, True, collision, True)
    if stored.content_from_this_copy:
        _attachments(conn, stored.id, email, replace=not stored.new, known=known)
    d = email.delivery
    mailbox = (stored.id, params.receiving_mailbox or plan.receiving_mailbox,
               params.accepting_owner or plan.accepting_owner, d.copy_kind,
               " / ".join(d.path),
               d.forwarded_by_user or (f"queue:{d.forwarded_by_queue}" if d.forwarded_by_queue
                                       else ""))
    if known is not None:
        known.mailboxes.append(mailbox)
    else:
        conn.execute(f"INSERT INTO activity_mailboxes ({MAILBOX_COLUMNS}) VALUES "
                     "(%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING", mailbox)
    return stored


def _attachments(
    conn: psycopg.Connection, activity_id: int, email: Email, replace: bool,
    known: BatchRows | None = None,
) -> None:
    """The content copy's attachments (replacing a poorer copy's); content stored once.
    With ``known``, the rows are kept behind and written with the batch's (no statement per
    email: nothing in the pass reads them back)."""
    if replace:
        conn.execute("DELETE FROM activity_attachments WHERE activity_id = %s", (activity_id,))
        if known is not None:
            known.drop_attachments(activity_id)
    if not email.attachments:
        return
    contents = [
        (a.sha256, a.size, a.content, None if a.content is not None else a.blob_ref)
        for a in email.attachments if a.sha256 and (a.content is not None or a.blob_ref)
    ]
    stored = {c[0] for c in contents}
    rows = [(activity_id, i, a.sha256 if a.sha256 in stored else None, a.name,
             a.content_type, a.size, a.content_id, a.inline, a.omitted)
            for i, a in enumerate(email.attachments)]
    if known is not None:
        for content in contents:
            known.contents.setdefault(str(content[0]), content)
        known.attachments.extend(rows)
        return
    with conn.cursor() as cur:
        if contents:
            cur.executemany(
                f"INSERT INTO attachment_contents ({CONTENT_COLUMNS}) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING", contents,
            )
        cur.executemany(
            f"INSERT INTO activity_attachments ({ATTACHMENT_COLUMNS}) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", rows,
        )


def set_correlation(
    conn: psycopg.Connection, activity_id: int, parent_id: int | None, method: str, rank: int
) -> bool:
    """Store the parent when this candidate is preferred to the one stored (or none is)."""
    cur = conn.execute(
        "UPDATE email_activities SET parent_id = %s, correlation_method = %s, "
        "correlation_rank = %s WHERE id = %s AND (correlation_rank IS NULL "
        "OR correlation_rank > %s OR (correlation_rank = %s AND parent_id IS DISTINCT FROM %s))",
        (parent_id, method, rank, activity_id, rank, rank, parent_id),
    )
    return cur.rowcount > 0


def set_refused(conn: psycopg.Connection, activity_id: int, refused: str) -> None:
    """The candidates the customer guard refused ('' for none): the review list's column."""
    conn.execute(
        "UPDATE email_activities SET correlation_refused = %s WHERE id = %s "
        "AND correlation_refused <> %s", (refused, activity_id, refused),
    )


def set_regarding(conn: psycopg.Connection, activity_id: int, regarding: str) -> None:
    conn.execute(
        "UPDATE email_activities SET regarding = %s WHERE id = %s AND regarding <> %s",
        (regarding, activity_id, regarding),
    )


def link_parties(conn: psycopg.Connection, rows: list[tuple[object, ...]],
                 known: BatchRows | None = None) -> None:
    if not rows:
        return
    if known is not None:
        known.parties.extend(rows)
        return
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO activity_parties ({PARTY_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING", rows,
        )

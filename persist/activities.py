"""Writing the email activity and the rows that hang off it: receiving mailboxes, parties,
attachments. Every write is keyed by a natural key, so applying a plan twice changes nothing.

Copies merge: each copy adds its receiving mailbox and parties; the copy with the best rank
(copy precedence: direct > forwarded rfc822/.eml > .msg/TNEF > inline) supplies the content,
and among equal ranks the first stored keeps it — a replay applies copies in the same order
(one key, one partition), so it decides the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from mailroom.records.action import Plan
from mailroom.records.email import Email

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


#: Ids taken from the sequence at once when a batch runs out (gaps are harmless: a serial).
_ID_CHUNK = 64


@dataclass
class KnownRows:
    """The ``email_activities`` rows of a batch's dedupe keys, read (and locked) in one query
    when the batch starts, and ids for its new rows taken from the sequence ahead: a plan's
    upsert then needs no read of its own. Reading and inserting plan by plan cost two round
    trips per plan, a quarter of persist's time.

    Kept up to date with the batch's own inserts and content changes, so a second copy of an
    email later in the batch meets the first. Only for a pass that is all or nothing (the
    optimistic pass of a batch): a plan rolled back to its own savepoint would leave it wrong.
    A dedupe key from outside the batch (a re-evaluated plan) is read when met, as before.
    """

    # dedupe key -> its rows as [id, content_hash, copy_rank, collision], in id order
    rows: dict[str, list[list[object]]] = field(default_factory=dict)
    _ids: list[int] = field(default_factory=list)
    wanted: int = 0  # ids the batch's plans may need

    @classmethod
    def read(cls, conn: psycopg.Connection, keys: Iterable[str], wanted: int) -> KnownRows:
        known = cls(wanted=wanted)
        known.fetch(conn, sorted(set(keys)))
        return known

    def fetch(self, conn: psycopg.Connection, keys: list[str]) -> None:
        for key in keys:
            self.rows.setdefault(key, [])
        if not keys:
            return
        for key, *row in conn.execute(
            "SELECT dedupe_key, id, content_hash, copy_rank, collision FROM email_activities "
            "WHERE dedupe_key = ANY(%s) ORDER BY id FOR UPDATE", (keys,),
        ).fetchall():
            self.rows[key].append(row)

    def of(self, conn: psycopg.Connection, key: str) -> list[list[object]]:
        if key not in self.rows:
            self.fetch(conn, [key])
        return self.rows[key]

    def next_id(self, conn: psycopg.Connection) -> int:
        if not self._ids:
            n = max(self.wanted, _ID_CHUNK)
            self.wanted = 0
            self._ids = [r[0] for r in conn.execute(
                "SELECT nextval(pg_get_serial_sequence('email_activities', 'id')) "
                "FROM generate_series(1, %s)", (n,),
            ).fetchall()]
            self._ids.reverse()  # handed out in ascending order: ids follow the batch's order
        return self._ids.pop()


_CONTENT = ("message_id, direction, subject, text_body, html_body, sent_at, copy_kind, "
            "copy_rank, delivery_path, sender, thread_root, subject_hash, participants, "
            "customer, automated, case_rule")


def _content(plan: Plan, email: Email, p: Mapping[str, str]) -> tuple[object, ...]:
    kind = p.get("copy_kind") or email.delivery.copy_kind
    return (
        plan.message_id, p.get("direction") or email.direction, email.subject,
        email.text_body, email.html_body, p.get("sent_at") or email.date, kind,
        copy_rank(kind), " / ".join(email.delivery.path), p.get("sender", ""),
        p.get("thread_root", ""), p.get("subject_hash", ""),
        [a for a in p.get("participants", "").split(",") if a], p.get("customer", ""),
        p.get("automated", ""), p.get("case_rule", ""),
    )


def upsert(
    conn: psycopg.Connection, plan: Plan, email: Email, params: Mapping[str, str],
    received_ms: int, known: KnownRows | None = None,
) -> Stored:
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
        conn.execute(
            "UPDATE email_activities SET received_at = LEAST(received_at, %s) "
            "WHERE id = %s AND received_at IS DISTINCT FROM LEAST(received_at, %s)",
            (received, activity_id, received),
        )
        stored = Stored(activity_id, False, bool(collision), richer)
    else:
        real = next((r[0] for r in rows if not r[3]), None)
        collision = bool(rows)
        columns = (f"dedupe_key, content_hash, collision, received_at, {_CONTENT}",
                   ", ".join(["%s"] * 20))
        if known is not None:
            # The id is known ahead: the insert is sent without waiting for an answer.
            activity_id = known.next_id(conn)
            conn.execute(
                f"INSERT INTO email_activities (id, {columns[0]}) VALUES (%s, {columns[1]})",
                (activity_id, plan.dedupe_key, plan.content_hash, collision, received, *content),
            )
            rows.append([activity_id, plan.content_hash, content[7], collision])
        else:
            row = conn.execute(
                f"INSERT INTO email_activities ({columns[0]}) VALUES ({columns[1]}) RETURNING id",
                (plan.dedupe_key, plan.content_hash, collision, received, *content),
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
        _attachments(conn, stored.id, email, replace=not stored.new)
    d = email.delivery
    conn.execute(
        "INSERT INTO activity_mailboxes (activity_id, mailbox_id, accepting_owner, copy_kind, "
        "delivery_path, forwarded_by) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (stored.id, params.get("receiving_mailbox") or plan.receiving_mailbox,
         params.get("accepting_owner") or plan.accepting_owner, d.copy_kind,
         " / ".join(d.path), d.forwarded_by_user or ""),
    )
    return stored


def _attachments(
    conn: psycopg.Connection, activity_id: int, email: Email, replace: bool
) -> None:
    """The content copy's attachments (replacing a poorer copy's); content stored once."""
    if replace:
        conn.execute("DELETE FROM activity_attachments WHERE activity_id = %s", (activity_id,))
    if not email.attachments:
        return
    contents = [
        (a.sha256, a.size, a.content, None if a.content is not None else a.blob_ref)
        for a in email.attachments if a.sha256 and (a.content is not None or a.blob_ref)
    ]
    with conn.cursor() as cur:
        if contents:
            cur.executemany(
                "INSERT INTO attachment_contents (sha256, size, content, blob_ref) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING", contents,
            )
        stored = {c[0] for c in contents}
        cur.executemany(
            "INSERT INTO activity_attachments (activity_id, position, sha256, name, "
            "content_type, size, content_id, inline, omitted) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(activity_id, i, a.sha256 if a.sha256 in stored else None, a.name,
              a.content_type, a.size, a.content_id, a.inline, a.omitted)
             for i, a in enumerate(email.attachments)],
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


def set_regarding(conn: psycopg.Connection, activity_id: int, regarding: str) -> None:
    conn.execute(
        "UPDATE email_activities SET regarding = %s WHERE id = %s AND regarding <> %s",
        (regarding, activity_id, regarding),
    )


def link_parties(conn: psycopg.Connection, rows: list[tuple[object, ...]]) -> None:
    if not rows:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO activity_parties (activity_id, role, address, record, name, outcome, "
            "detail) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING", rows,
        )

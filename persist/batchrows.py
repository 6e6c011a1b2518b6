"""What one all-or-nothing pass over a batch of plans reads ahead and writes behind.

Ahead: the ``email_activities`` rows of the batch's dedupe keys, read (and locked) in one query
when the pass starts, ids for its new rows taken from the sequence at once, and which of its
plans are pending (parked or watching): a plan's upsert then needs no read of its own, and a plan
with nothing pending no delete. Reading and inserting plan by plan cost two round trips per plan,
a quarter of persist's time.

Behind: rows no plan of the pass reads back — the receiving mailboxes, parties and attachments
of its activities, and the attachments' contents — collected and written with one set-based
statement each at the end of the pass (``unnest`` of one array per column), instead of a
statement per row (and a firing of the change feed's trigger per statement).

Kept up to date with the pass's own inserts, content changes and watches, so a second copy of an
email later in the batch meets the first. Only for a pass that is all or nothing (the optimistic
pass of a batch): a plan rolled back to its own savepoint would leave it wrong, so the plan-by-plan
pass works without it. A dedupe key from outside the batch (a re-evaluated plan) is read when
met, as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import psycopg

from mailroom.db.arrays import LITERAL, text_array

#: Ids taken from the sequence at once when a pass runs out (gaps are harmless: a serial).
_ID_CHUNK = 64

Ident = tuple[str, str, str]  # a pending plan: dedupe key, content hash, receiving mailbox


@dataclass
class BatchRows:
    # dedupe key -> its rows as [id, content_hash, copy_rank, collision], in id order
    rows: dict[str, list[list[object]]] = field(default_factory=dict)
    _ids: list[int] = field(default_factory=list)
    wanted: int = 0  # ids the batch's plans may need
    pending: set[Ident] = field(default_factory=set)  # of the dedupe keys in ``rows``
    mailboxes: list[tuple[object, ...]] = field(default_factory=list)
    parties: list[tuple[object, ...]] = field(default_factory=list)
    #: sha256 -> (sha256, size, content, blob_ref): the first of a sha256 is kept, as
    #: ``ON CONFLICT DO NOTHING`` statement by statement kept it
    contents: dict[str, tuple[object, ...]] = field(default_factory=dict)
    attachments: list[tuple[object, ...]] = field(default_factory=list)

    @classmethod
    def read(cls, conn: psycopg.Connection, keys: Iterable[str], wanted: int) -> BatchRows:
        known = cls(wanted=wanted)
        known.fetch(conn, sorted(set(keys)))
        return known

    def fetch(self, conn: psycopg.Connection, keys: list[str]) -> None:
        for key in keys:
            self.rows.setdefault(key, [])
        if not keys:
            return
        # Both planned for each batch, never prepared: psycopg prepares a statement on its
        # fifth run, and PostgreSQL's generic plan is then the one costed on the table as it
        # was — on a new deployment's nearly empty table a sequential scan, kept while the
        # table grows (until an ANALYZE happens to invalidate it): 2–8 ms a batch at a few
        # thousand rows, and growing with them. A plan a batch costs ~0.1 ms.
        for key, *row in conn.execute(
            "SELECT dedupe_key, id, content_hash, copy_rank, collision FROM email_activities "
            "WHERE dedupe_key = ANY(%s::text[]) ORDER BY id FOR UPDATE", (text_array(keys),),
            prepare=False,
        ).fetchall():
            self.rows[key].append(row)
        self.pending.update(conn.execute(
            "SELECT dedupe_key, content_hash, receiving_mailbox FROM persist_pending_plans "
            "WHERE dedupe_key = ANY(%s::text[])", (text_array(keys),), prepare=False,
        ).fetchall())

    def of(self, conn: psycopg.Connection, key: str) -> list[list[object]]:
        if key not in self.rows:
            self.fetch(conn, [key])
        return self.rows[key]

    def may_be_pending(self, ident: Ident) -> bool:
        """False only when the plan is known to have nothing pending."""
        return ident[0] not in self.rows or ident in self.pending

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

    def drop_attachments(self, activity_id: int) -> None:
        """An activity's attachments kept behind, given up (a richer copy replaces them)."""
        self.attachments = [a for a in self.attachments if a[0] != activity_id]

    def flush(self, conn: psycopg.Connection) -> None:
        """Write what was kept behind (inside the pass's transaction)."""
        from persist.activities import (
            ATTACHMENT_COLUMNS,
            CONTENT_COLUMNS,
            MAILBOX_COLUMNS,
            PARTY_COLUMNS,
        )

        if self.mailboxes:
            _insert_all(conn, "activity_mailboxes", MAILBOX_COLUMNS,
                        ("bigint", "text", "text", "text", "text", "text"), self.mailboxes)
        if self.parties:
            _insert_all(conn, "activity_parties", PARTY_COLUMNS,
                        ("bigint", "text", "text", "text", "text", "text", "text"), self.parties)
        if self.contents:  # before the attachments that refer to them
            _insert_all(conn, "attachment_contents", CONTENT_COLUMNS,
                        ("text", "bigint", "bytea", "text"), list(self.contents.values()))
        if self.attachments:
            _insert_all(conn, "activity_attachments", ATTACHMENT_COLUMNS,
                        ("bigint", "integer", "text", "text", "text", "bigint", "text",
                         "boolean", "text"), self.attachments, on_conflict=False)
        self.mailboxes, self.parties, self.contents, self.attachments = [], [], {}, []


def _insert_all(conn: psycopg.Connection, table: str, columns: str, types: tuple[str, ...],
                rows: list[tuple[object, ...]], *, on_conflict: bool = True) -> None:
    """``on_conflict``: a row already there is left as it is (else the conflict is an error,
    as the statement per row made it)."""
    # Binary for bytes: in text, every byte of an attachment would travel as two hex digits.
    # The rest as array literals (mailroom.db.arrays): psycopg's dump of a list, element by
    # element, cost more than the statement.
    arrays = [list(column) if t == "bytea" else LITERAL[t](column)
              for t, column in zip(types, zip(*rows, strict=True), strict=True)]
    unnest = ", ".join(f"%b::{t}[]" if t == "bytea" else f"%s::{t}[]" for t in types)
    conn.execute(f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({unnest})"
                 + (" ON CONFLICT DO NOTHING" if on_conflict else ""), arrays)

"""``mailroom import``: load a CSV file of reference records, all or nothing.

The whole file is checked first — the format (``reference_csv``), then against the database:
owners and accounts must exist, and a user's or queue's address must not already belong to
another user or queue. Any bad row refuses the whole file, listing every bad row; otherwise
every record is upserted by id in one transaction. Re-importing a file is safe: unchanged
records stay untouched, changed ones are updated, and when the file has an ``emails`` column
each record's addresses are replaced by the file's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from mailroom.db.reference_csv import KINDS, Kind, Record, RowError, parse
from mailroom.errors import ConfigError, PermanentError


class ImportRejected(PermanentError):  # noqa: N818 - the name says what it is
    """The file has bad rows; nothing was imported. ``errors`` lists every one."""

    def __init__(self, source: str, errors: list[RowError]) -> None:
        self.source = source
        self.errors = sorted(errors)
        lines = "\n".join(f"  {e}" for e in self.errors)
        super().__init__(
            f"{source}: refused, nothing imported; {len(self.errors)} problem(s):\n{lines}"
        )


@dataclass(frozen=True)
class ImportResult:
    kind: str
    inserted: int
    updated: int
    unchanged: int
    addresses: int | None  # None: the file had no emails column, addresses left as they were

    def __str__(self) -> str:
        text = (f"{self.kind}: {self.inserted} new, {self.updated} updated, "
                f"{self.unchanged} unchanged")
        if self.addresses is not None:
            text += f"; {self.addresses} email address(es)"
        return text


def kind_named(word: str) -> Kind:
    try:
        return KINDS[word]
    except KeyError:
        raise ConfigError(f"unknown record kind {word!r}; one of: {', '.join(KINDS)}") from None


def import_csv(
    conn: psycopg.Connection, kind: Kind, lines: Iterable[str], *, source: str = "input"
) -> ImportResult:
    """Import one CSV file (its lines, e.g. an open text file) of ``kind``, all or nothing."""
    header, records, errors = parse(kind, lines)
    if not header:  # no usable header: there is nothing to check rows against
        raise ImportRejected(source, errors)
    with conn.transaction():
        # Concurrent imports of the same kind queue up, so the checks below stay true until
        # commit; readers (route) are not blocked by this lock mode.
        conn.execute(
            sql.SQL("LOCK TABLE {}, email_addresses IN SHARE ROW EXCLUSIVE MODE").format(
                sql.Identifier(kind.table)
            )
        )
        errors += _check_references(conn, kind, records)
        errors += _check_mailbox_addresses(conn, kind, records)
        if errors:
            raise ImportRejected(source, errors)
        inserted, updated = _upsert(conn, kind, records)
        addresses = _replace_addresses(conn, kind, records) if "emails" in header else None
    return ImportResult(kind.word, inserted, updated, len(records) - inserted - updated,
                        addresses)


def _check_references(
    conn: psycopg.Connection, kind: Kind, records: list[Record]
) -> list[RowError]:
    errors: list[RowError] = []
    for column in kind.columns:
        if not column.references or not column.db:
            continue
        wanted = sorted({r.values[column.db] for r in records if r.values.get(column.db)})
        if not wanted:
            continue
        found = {
            row[0]
            for row in conn.execute(
                sql.SQL("SELECT id FROM {} WHERE id = ANY(%s)").format(
                    sql.Identifier(column.references)
                ),
                (wanted,),
            )
        }
        singular = column.references.rstrip("s")
        errors += [
            RowError(r.row, column.name, f"unknown {singular} {r.values[column.db]!r} "
                     f"(import {column.references} first)")
            for r in records
            if r.values.get(column.db) and r.values[column.db] not in found
        ]
    return errors


def _check_mailbox_addresses(
    conn: psycopg.Connection, kind: Kind, records: list[Record]
) -> list[RowError]:
    """A user's or queue's address names one mailbox owner (a unique index says so too; this
    turns a constraint violation into row-numbered errors)."""
    if kind.record_kind not in ("user", "queue"):
        return []
    errors: list[RowError] = []
    first_row_of: dict[str, int] = {}
    for record in records:
        for address in record.emails:
            if address in first_row_of:
                errors.append(RowError(record.row, "emails", f"address {address} is also on "
                                       f"row {first_row_of[address]}"))
            else:
                first_row_of[address] = record.row
    if not first_row_of:
        return errors
    ids = [r.id for r in records]
    taken = conn.execute(
        "SELECT address, record_kind, record_id FROM email_addresses "
        "WHERE record_kind IN ('user', 'queue') AND address = ANY(%s) "
        "AND NOT (record_kind = %s AND record_id = ANY(%s))",  # those are being replaced
        (list(first_row_of), kind.record_kind, ids),
    ).fetchall()
    errors += [
        RowError(first_row_of[address], "emails",
                 f"address {address} already belongs to {owner_kind} {owner_id!r}")
        for address, owner_kind, owner_id in taken
    ]
    return errors


def _upsert(conn: psycopg.Connection, kind: Kind, records: list[Record]) -> tuple[int, int]:
    """Insert or update every record; return (inserted, updated). An identical row is left
    alone (its updated_at too), so re-importing the same file changes nothing."""
    if not records:
        return 0, 0
    existing = {
        row[0]
        for row in conn.execute(
            sql.SQL("SELECT id FROM {} WHERE id = ANY(%s)").format(sql.Identifier(kind.table)),
            ([r.id for r in records],),
        )
    }
    columns = ["id", *[c for c in records[0].values if c != "id"]]
    target = sql.Identifier(kind.table)
    others = [sql.Identifier(c) for c in columns[1:]]
    query = sql.SQL(
        "INSERT INTO {table} ({cols}) VALUES ({params}) ON CONFLICT (id) DO UPDATE SET "
        "({others}) = ROW({excluded}), updated_at = now() "
        "WHERE ({current}) IS DISTINCT FROM ({excluded}) RETURNING id"
    ).format(
        table=target,
        cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
        params=sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        others=sql.SQL(", ").join(others),
        excluded=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(c) for c in others),
        current=sql.SQL(", ").join(sql.SQL("{}.{}").format(target, c) for c in others),
    )
    written = 0
    with conn.cursor() as cur:
        cur.executemany(query, [[r.values[c] for c in columns] for r in records],
                        returning=True)
        while True:
            written += len(cur.fetchall())
            if not cur.nextset():
                break
    inserted = sum(1 for r in records if r.id not in existing)
    return inserted, written - inserted


def _replace_addresses(conn: psycopg.Connection, kind: Kind, records: list[Record]) -> int:
    conn.execute(
        "DELETE FROM email_addresses WHERE record_kind = %s AND record_id = ANY(%s)",
        (kind.record_kind, [r.id for r in records]),
    )
    rows = [
        (kind.record_kind, r.id, address, i == 0)
        for r in records
        for i, address in enumerate(r.emails)
    ]
    if rows:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO email_addresses (record_kind, record_id, address, is_primary) "
                "VALUES (%s, %s, %s, %s)",
                rows,
            )
    return len(rows)

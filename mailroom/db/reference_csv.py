"""The CSV formats of the reference records, and the checks a file passes without a database.

Pure functions: a file's rows in, parsed records and row errors out. ``reference_import``
adds the checks that need the database (owners, accounts, mailbox-owner addresses) and writes.

Rows are numbered as a spreadsheet shows them: the header is row 1, the first record row 2.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    name: str  # the CSV header
    db: str | None  # the table's column; None for ``emails`` (stored in email_addresses)
    doc: str
    required: bool = False
    references: str | None = None  # table whose id this must be: 'users' or 'accounts'


@dataclass(frozen=True)
class Kind:
    word: str  # the CLI word and file kind: 'users', 'contacts', ...
    record_kind: str  # email_addresses.record_kind: 'user', 'contact', ...
    table: str
    columns: tuple[Column, ...]
    one_of: tuple[str, ...] = ()  # at least one of these must be non-empty

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


_ID = Column("id", "id", "natural id, e.g. u-alice; the key for re-imports", required=True)
_EMAILS = Column("emails", None, "addresses separated by ';', the first is the primary")
_OWNER = Column("owner", "owner_id", "id of the owning user (must exist)", references="users")

KINDS: dict[str, Kind] = {
    k.word: k
    for k in (
        Kind("users", "user", "users", (
            _ID, Column("name", "full_name", "full name", required=True), _EMAILS)),
        Kind("queues", "queue", "queues", (
            _ID, Column("name", "name", "queue name", required=True), _EMAILS)),
        Kind("accounts", "account", "accounts", (
            _ID, Column("name", "name", "company name", required=True), _OWNER, _EMAILS)),
        Kind("contacts", "contact", "contacts", (
            _ID,
            Column("first_name", "first_name", "given name"),
            Column("last_name", "last_name", "family name"),
            Column("account", "account_id", "id of the contact's account (must exist)",
                   references="accounts"),
            _OWNER, _EMAILS,
        ), one_of=("first_name", "last_name")),
        Kind("leads", "lead", "leads", (
            _ID,
            Column("first_name", "first_name", "given name"),
            Column("last_name", "last_name", "family name"),
            Column("company", "company", "company name"),
            _OWNER, _EMAILS,
        ), one_of=("first_name", "last_name", "company")),
    )
}

# A pragmatic addr-spec: dot-atom local part, dotted domain of LDH labels (IDN domains in their
# xn-- form). Quoted local parts are legal but never seen in CRM data; rejecting them catches
# far more typos than it refuses real addresses.
_ADDRESS = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$"
)
_BAD_ID = re.compile(r"[\s\x00-\x1f]")


@dataclass(frozen=True, order=True)
class RowError:
    row: int
    column: str
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row else "file"
        return f"{where}, column {self.column}: {self.message}" if self.column else \
            f"{where}: {self.message}"


@dataclass
class Record:
    row: int
    id: str
    values: dict[str, str | None]  # table column -> value (None: no owner/account)
    emails: list[str] = field(default_factory=list)


def normalise_address(text: str) -> str | None:
    """The address lower-cased and trimmed, or None when it is not a plain address."""
    address = text.strip().lower()
    return address if _ADDRESS.match(address) else None


def _parse_emails(row: int, text: str) -> tuple[list[str], list[RowError]]:
    addresses: list[str] = []
    errors: list[RowError] = []
    for part in text.split(";"):
        if not part.strip():
            continue
        address = normalise_address(part)
        if address is None:
            hint = " (write the bare address, without a display name)" if "<" in part else ""
            errors.append(RowError(row, "emails", f"bad email address {part.strip()!r}{hint}"))
        elif address not in addresses:  # the same address twice on one record means once
            addresses.append(address)
    return addresses, errors


def check_header(kind: Kind, header: list[str] | None) -> list[RowError]:
    if not header:
        return [RowError(0, "", "the file is empty; the first line must name the columns")]
    known = {c.name for c in kind.columns}
    errors = [
        RowError(1, name or "(blank)", f"unknown column for {kind.word}; "
                 f"the columns are: {', '.join(c.name for c in kind.columns)}")
        for name in header if name not in known
    ]
    errors += [RowError(1, name, "column appears more than once")
               for name in sorted({n for n in header if header.count(n) > 1})]
    errors += [RowError(1, c.name, "required column is missing")
               for c in kind.columns if c.required and c.name not in header]
    if kind.one_of and not any(n in header for n in kind.one_of):
        wanted = ", ".join(kind.one_of)
        errors.append(RowError(1, "", f"needs at least one of the columns {wanted}"))
    return errors


def parse(kind: Kind, lines: Iterable[str]) -> tuple[list[str], list[Record], list[RowError]]:
    """Parse a CSV file of ``kind``: (header, records, errors). Every bad row is reported,
    not only the first, so one round of fixes makes the file importable. ``records`` holds
    every row with the right number of fields, bad ones included (see below)."""
    reader = csv.reader(lines)
    raw_header = next(reader, None)
    header = [h.strip().lower() for h in raw_header] if raw_header else None
    errors = check_header(kind, header)
    if errors or header is None:
        return header or [], [], errors
    records: list[Record] = []
    first_row_of: dict[str, int] = {}
    for row_number, fields in enumerate(reader, start=2):
        if not any(f.strip() for f in fields):
            continue  # a blank line, e.g. at the end of a hand-edited file
        if len(fields) != len(header):
            errors.append(RowError(row_number, "", f"has {len(fields)} fields, the header "
                                   f"has {len(header)} (an unquoted comma?)"))
            continue
        cells = {name: value.strip() for name, value in zip(header, fields, strict=True)}
        row_errors: list[RowError] = []
        record_id = cells.get("id", "")
        if not record_id:
            row_errors.append(RowError(row_number, "id", "missing id"))
        elif _BAD_ID.search(record_id):
            row_errors.append(RowError(row_number, "id", f"id {record_id!r} contains spaces "
                                       "or control characters"))
        elif record_id in first_row_of:
            row_errors.append(RowError(row_number, "id", f"duplicate id {record_id!r} (also on "
                                       f"row {first_row_of[record_id]})"))
        else:
            first_row_of[record_id] = row_number
        for column in kind.columns:
            if column.required and column.name != "id" and not cells.get(column.name):
                row_errors.append(RowError(row_number, column.name, "missing value"))
        if kind.one_of and not any(cells.get(n) for n in kind.one_of):
            row_errors.append(RowError(row_number, "/".join(kind.one_of),
                                       "at least one of these must be filled in"))
        emails, email_errors = _parse_emails(row_number, cells.get("emails", ""))
        row_errors += email_errors
        errors += row_errors
        # Rows with errors are still returned, so the database checks (owner, account) can
        # report their problems in the same round; nothing is written while any error stands.
        # Only the file's columns: a re-import without, say, ``owner`` leaves owners as they
        # are. Empty references are NULL; empty names are '' (the columns are NOT NULL).
        values = {c.db: cells[c.name] or (None if c.references else "")
                  for c in kind.columns if c.db and c.name in header}
        records.append(Record(row_number, record_id, values, emails))
    return header, records, errors

"""CSV import of reference records: format checks (pure) and all-or-nothing loading (real DB)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mailroom import cli
from mailroom.db.reference_csv import KINDS, normalise_address, parse
from mailroom.db.reference_import import ImportRejected, import_csv

USERS = """id,name,emails
u-alice,Alice Archer,Alice@Example.com; alice.archer@example.com
u-bob,Bob Baker,bob@example.com
"""

CONTACTS = """id,first_name,last_name,account,owner,emails
c-carol,Carol,Cook,a-acme,u-alice,carol@acme.example
c-dave,Dave,,,u-bob,dave@acme.example;DAVE@acme.example
"""

ACCOUNTS = "id,name,owner,emails\na-acme,Acme Ltd,u-alice,info@acme.example\n"


def _lines(text: str) -> io.StringIO:
    return io.StringIO(text, newline="")


# --- the format, no database ------------------------------------------------------------------


def test_addresses_are_normalised_lower_case() -> None:
    assert normalise_address("  Alice@Example.COM ") == "alice@example.com"
    for bad in ("alice", "alice@", "@example.com", "a b@example.com", "Eve <e@x.com>",
                "alice@localhost", "a@@example.com", "a..b@example.com"):
        assert normalise_address(bad) is None, bad


def test_every_bad_row_is_reported_with_row_and_column() -> None:
    text = (
        "id,first_name,last_name,company,owner,emails\n"
        "l-1,Ann,,,,ann@example.com\n"
        ",Bert,,,,\n"  # row 3: no id
        "l-1,Ann,,,,\n"  # row 4: duplicate
        "l-4,,,,,\n"  # row 5: no name at all
        "l-5,Eve,,,,eve@example.com;not-an-address\n"  # row 6
        "l-6,too,many,fields,,,\n"  # row 7
    )
    _header, _records, errors = parse(KINDS["leads"], _lines(text))
    found = [(e.row, e.column) for e in errors]
    assert found == [(3, "id"), (4, "id"), (5, "first_name/last_name/company"),
                     (6, "emails"), (7, "")]
    assert "also on row 2" in str(errors[1])
    assert "not-an-address" in str(errors[3])


def test_header_problems_are_reported_before_any_row() -> None:
    _h, _r, errors = parse(KINDS["users"], _lines("ID,Colour\nu-a,blue\n"))
    messages = [str(e) for e in errors]
    assert any("column colour: unknown column" in m for m in messages)
    assert any("column name: required column is missing" in m for m in messages)


def test_first_address_is_primary_and_duplicates_collapse() -> None:
    _h, records, errors = parse(KINDS["users"], _lines(USERS))
    assert not errors
    assert records[0].emails == ["alice@example.com", "alice.archer@example.com"]
    assert records[0].values == {"id": "u-alice", "full_name": "Alice Archer"}


# --- loading, on the real PostgreSQL ----------------------------------------------------------


def _rows(conn, table: str) -> list[tuple]:
    return conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()


@pytest.mark.integration
def test_a_file_with_one_bad_row_is_refused_whole(db_conn) -> None:
    import_csv(db_conn, KINDS["users"], _lines(USERS))
    import_csv(db_conn, KINDS["accounts"], _lines(ACCOUNTS))
    import_csv(db_conn, KINDS["contacts"], _lines(CONTACTS))
    before = _rows(db_conn, "contacts"), _rows(db_conn, "email_addresses")

    bad = CONTACTS.replace("Carol,Cook", "Caroline,Cook") + (
        "c-erin,Erin,,,u-nobody,erin@acme.example\n"  # row 4: unknown owner
    )
    with pytest.raises(ImportRejected) as info:
        import_csv(db_conn, KINDS["contacts"], _lines(bad), source="contacts.csv")
    assert [(e.row, e.column) for e in info.value.errors] == [(4, "owner")]
    assert "contacts.csv" in str(info.value) and "row 4, column owner" in str(info.value)
    assert "u-nobody" in str(info.value)
    # Nothing changed: not Carol's rename in row 2, not the good rows' addresses.
    assert (_rows(db_conn, "contacts"), _rows(db_conn, "email_addresses")) == before


@pytest.mark.integration
def test_reimport_upserts_by_id_and_replaces_addresses(db_conn) -> None:
    first = import_csv(db_conn, KINDS["users"], _lines(USERS))
    assert (first.inserted, first.updated, first.unchanged, first.addresses) == (2, 0, 0, 3)
    again = import_csv(db_conn, KINDS["users"], _lines(USERS))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)

    changed = (
        "id,name,emails\n"
        "u-alice,Alice Archer-Smith,alice@example.com\n"
        "u-carl,Carl Cole,carl@example.com\n"
    )
    third = import_csv(db_conn, KINDS["users"], _lines(changed))
    assert (third.inserted, third.updated, third.unchanged) == (1, 1, 0)
    assert db_conn.execute(
        "SELECT full_name FROM users WHERE id = 'u-alice'"
    ).fetchone()[0] == "Alice Archer-Smith"
    assert db_conn.execute(
        "SELECT record_id, address, is_primary FROM email_addresses ORDER BY address"
    ).fetchall() == [
        ("u-alice", "alice@example.com", True),
        ("u-bob", "bob@example.com", True),  # not in the file: untouched
        ("u-carl", "carl@example.com", True),
    ]


@pytest.mark.integration
def test_a_file_without_an_emails_column_keeps_the_addresses(db_conn) -> None:
    import_csv(db_conn, KINDS["users"], _lines(USERS))
    result = import_csv(db_conn, KINDS["users"], _lines("id,name\nu-bob,Robert Baker\n"))
    assert result.addresses is None
    assert db_conn.execute(
        "SELECT count(*) FROM email_addresses WHERE record_id = 'u-bob'"
    ).fetchone()[0] == 1


@pytest.mark.integration
def test_a_users_address_cannot_also_be_a_queues(db_conn) -> None:
    import_csv(db_conn, KINDS["users"], _lines(USERS))
    queues = (
        "id,name,emails\n"
        "q-support,Support,support@example.com\n"
        "q-x,X,BOB@example.com\n"
        "q-y,Y,support@example.com\n"
    )
    with pytest.raises(ImportRejected) as info:
        import_csv(db_conn, KINDS["queues"], _lines(queues))
    messages = [str(e) for e in info.value.errors]
    assert messages == [
        "row 3, column emails: address bob@example.com already belongs to user 'u-bob'",
        "row 4, column emails: address support@example.com is also on row 2",
    ]
    assert _rows(db_conn, "queues") == []


@pytest.mark.integration
def test_cli_import_names_the_bad_row_and_exits_non_zero(
    db_schema, db_conn, tmp_path: Path, capsys
) -> None:
    users = tmp_path / "users.csv"
    users.write_text("\ufeff" + USERS)  # a spreadsheet's byte-order mark is fine
    assert cli.main(["import", "users", str(users), "--schema", db_schema]) == 0
    assert "users: 2 new" in capsys.readouterr().out

    bad = tmp_path / "leads.csv"
    bad.write_text("id,first_name,company,owner,emails\nl-1,Lou,,u-alice,lou@x.example\n"
                   "l-2,Lee,,u-alice,lee@@x.example\n")
    assert cli.main(["import", "leads", str(bad), "--schema", db_schema]) == 1
    err = capsys.readouterr().err
    assert "refused, nothing imported" in err and "row 3, column emails" in err
    assert _rows(db_conn, "leads") == []

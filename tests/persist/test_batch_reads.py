"""A batch's activity rows are read once and its ids taken ahead: what that must not change, and
what it saves (reads that wait on PostgreSQL, counted on a real connection)."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
import pytest
from persistbuild import apply, config, email, make_plan, rows

from mailroom.codec import Codec
from mailroom.records.email import Attachment, Email

pytestmark = pytest.mark.integration  # needs the local stack's PostgreSQL


class CountingCursor(psycopg.Cursor[Any]):
    """Counts the reads of results (in pipeline mode each one waits for PostgreSQL) and the
    statements sent (each costs PostgreSQL a parse-bind-execute and persist a round of psycopg)."""

    reads = 0
    statements = 0

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        CountingCursor.statements += 1
        return super().execute(query, params, **kwargs)

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
        rows = list(params_seq)
        CountingCursor.statements += len(rows)
        super().executemany(query, rows, **kwargs)

    def fetchone(self) -> Any:
        CountingCursor.reads += 1
        return super().fetchone()

    def fetchall(self) -> list[Any]:
        CountingCursor.reads += 1
        return super().fetchall()


def reads_to_apply(db: psycopg.Connection, codec: Codec, n: int, first: int) -> int:
    return counted(db, codec, n, first)[0]


def counted(db: psycopg.Connection, codec: Codec, n: int, first: int) -> tuple[int, int]:
    """(reads, statements) to apply ``n`` new emails as one batch."""
    everyone = config(track={"default": "all"}, queues={})  # no case rules: activities only
    return count_applying(db, codec, [
        make_plan(codec, email(message_id=f"m{first + i}@customer.example",
                               subject=f"Question {first + i}"), everyone)
        for i in range(n)])


def count_applying(db: psycopg.Connection, codec: Codec, plans: list[Any]) -> tuple[int, int]:
    """(reads, statements) to apply ``plans`` as one batch, each of them stored."""
    db.cursor_factory = CountingCursor
    CountingCursor.reads = CountingCursor.statements = 0
    try:
        results = apply(db, codec, *plans)
    finally:
        db.cursor_factory = psycopg.Cursor
    assert all(r.applied and r.applied.event == "persisted" for r in results)
    return CountingCursor.reads, CountingCursor.statements


def test_new_emails_cost_no_read_each(db: psycopg.Connection, codec: Codec) -> None:
    few = reads_to_apply(db, codec, 3, first=100)
    many = reads_to_apply(db, codec, 30, first=200)
    # Reading the rows and inserting plan by plan read twice per plan: 54 more for 27 more
    # plans. Now a batch reads the same few times whatever its size.
    assert many == few, (few, many)
    assert rows(db, "SELECT count(*) FROM email_activities") == [(33,)]


def test_rows_nobody_reads_back_are_written_once_per_batch(db: psycopg.Connection,
                                                           codec: Codec) -> None:
    _, few = counted(db, codec, 3, first=100)
    _, many = counted(db, codec, 30, first=200)
    # Per new email what remains is its thread lock and its activity row. Its receiving
    # mailbox, its two parties and the delete of a pending plan it never had were four more.
    assert (many - few) / 27 <= 2, (few, many)
    assert rows(db, "SELECT count(*) FROM activity_mailboxes") == [(33,)]
    assert rows(db, "SELECT count(*) FROM activity_parties") == [(66,)]


def test_a_pending_plan_of_the_batch_is_still_forgotten(db: psycopg.Connection,
                                                        codec: Codec) -> None:
    everyone = config(track={"default": "all"}, queues={})
    reply = email(message_id="r@customer.example", in_reply_to="p@customer.example", minutes=3)
    apply(db, codec, make_plan(codec, reply, everyone))
    assert rows(db, "SELECT count(*) FROM persist_pending_plans") == [(1,)]
    parent = email(message_id="p@customer.example")
    # The parent lands in the same batch as a second copy of the reply: the reply's plan is
    # re-evaluated, linked, and waits on nothing any more.
    apply(db, codec, make_plan(codec, parent, everyone), make_plan(codec, reply, everyone))
    assert rows(db, "SELECT count(*) FROM persist_pending_plans") == [(0,)]
    assert rows(db, "SELECT count(*) FROM persist_watches") == [(0,)]
    assert rows(db, "SELECT p.dedupe_key FROM email_activities a JOIN email_activities p "
                    "ON p.id = a.parent_id") == [("p@customer.example",)]


def test_ids_follow_the_order_of_the_batch(db: psycopg.Connection, codec: Codec) -> None:
    everyone = config(track={"default": "all"})
    keys = [f"o{i}@customer.example" for i in range(5)]
    apply(db, codec, *[make_plan(codec, email(message_id=k), everyone) for k in keys])
    assert [r[0] for r in rows(db, "SELECT dedupe_key FROM email_activities ORDER BY id")] == keys


def test_richer_copy_later_in_the_same_batch_supplies_the_content(
    db: psycopg.Connection, codec: Codec
) -> None:
    msg = email(copy_kind="msg", body="from the .msg copy")
    direct = email(mailbox="13", to=("support@acme.example", "sales@acme.example"),
                   body="from the direct copy")
    poorer_again = email(copy_kind="inline", mailbox="11", body="from an inline copy")
    results = apply(db, codec, *[make_plan(codec, e) for e in (msg, direct, poorer_again)])
    assert all(r.failure is None for r in results)
    assert rows(db, "SELECT copy_kind, copy_rank, text_body FROM email_activities") == [
        ("direct", 0, "from the direct copy")]
    assert results[1].applied and "richer copy" in results[1].applied.detail["content"]
    assert results[2].applied and "content" not in results[2].applied.detail


def test_forged_copy_in_the_same_batch_is_a_collision(db: psycopg.Connection,
                                                      codec: Codec) -> None:
    forged = email(subject="Pay this invoice", body="forged", content_hash="h-forged")
    results = apply(db, codec, make_plan(codec, email()), make_plan(codec, forged),
                    make_plan(codec, email()))
    assert all(r.failure is None for r in results)
    assert rows(db, "SELECT subject, collision FROM email_activities ORDER BY id") == [
        ("Printer broken", False), ("Pay this invoice", True)]
    assert rows(db, "SELECT r.subject FROM email_collisions c "
                    "JOIN email_activities r ON r.id = c.real_activity_id") == [
        ("Printer broken",)]


def test_a_failed_plan_sends_the_batch_plan_by_plan_with_the_same_end(
    db: psycopg.Connection, codec: Codec
) -> None:
    bad = email(message_id="bad@customer.example", subject="nul \x00 byte")
    good = [email(message_id=f"g{i}@customer.example") for i in range(3)]
    results = apply(db, codec, *[make_plan(codec, e) for e in (good[0], bad, *good[1:], good[0])])
    assert [r.failure is not None for r in results] == [False, True, False, False, False]
    assert rows(db, "SELECT dedupe_key FROM email_activities ORDER BY id") == [
        ("g0@customer.example",), ("g1@customer.example",), ("g2@customer.example",)]


def _with_attachments(i: int) -> Email:
    """A new email carrying its own file and the logo every email of the batch carries."""
    return email(message_id=f"a{i}@customer.example", subject=f"Invoice {i}", attachments=(
        Attachment(f"invoice-{i}.pdf", "application/pdf", 9, f"{i:064x}",
                   content=b"%PDF-" + bytes([i % 256]) * 4),
        Attachment("logo.png", "image/png", 4, "ab" * 32, content=b"\x89PNG",
                   content_id="logo", inline=True),
    ))


def test_attachments_are_written_once_per_batch(db: psycopg.Connection, codec: Codec) -> None:
    everyone = config(track={"default": "all"}, queues={})

    def statements(first: int, n: int) -> int:
        return count_applying(db, codec, [make_plan(codec, _with_attachments(first + i),
                                                    everyone) for i in range(n)])[1]

    few, many = statements(100, 3), statements(200, 30)
    # A statement per email for its file's content and one per attachment row were three
    # more per email (and a firing of the change feed's trigger for each).
    assert (many - few) / 27 <= 2, (few, many)
    assert rows(db, "SELECT count(*), count(DISTINCT sha256) FROM activity_attachments") == [
        (66, 34)]
    assert rows(db, "SELECT count(*) FROM attachment_contents") == [(34,)]
    assert rows(db, "SELECT a.name, a.position, a.inline, c.content FROM activity_attachments a "
                    "JOIN attachment_contents c USING (sha256) JOIN email_activities e "
                    "ON e.id = a.activity_id WHERE e.dedupe_key = 'a201@customer.example' "
                    "ORDER BY a.position") == [
        ("invoice-201.pdf", 0, False, b"%PDF-" + bytes([201]) * 4),
        ("logo.png", 1, True, b"\x89PNG")]


def test_richer_copy_in_the_same_batch_replaces_the_attachments(
    db: psycopg.Connection, codec: Codec, caplog: pytest.LogCaptureFixture
) -> None:
    poor = email(copy_kind="msg", attachments=(
        Attachment("scan.pdf", "application/pdf", 3, "11" * 32, content=b"old"),
        Attachment("note.txt", "text/plain", 2, "22" * 32, content=b"hi"),
    ))
    rich = email(mailbox="13", attachments=(
        Attachment("scan-full.pdf", "application/pdf", 4, "33" * 32, content=b"full"),
    ))
    with caplog.at_level(logging.INFO, logger="persist.batch"):
        results = apply(db, codec, make_plan(codec, poor), make_plan(codec, rich))
    assert all(r.failure is None for r in results)
    assert "plan by plan" not in caplog.text  # the batch's one pass held
    assert rows(db, "SELECT position, name, sha256 FROM activity_attachments") == [
        (0, "scan-full.pdf", "33" * 32)]


def test_the_batch_read_of_its_rows_is_planned_for_each_batch(db: psycopg.Connection,
                                                               codec: Codec) -> None:
    # A prepared statement's generic plan is costed on the table as it was when psycopg
    # prepared it (its fifth run): on a new deployment's nearly empty table, a sequential scan
    # of email_activities, then kept for every batch while the table grows.
    for batch in range(8):
        counted(db, codec, 2, first=1000 + 10 * batch)
    prepared = [r[0] for r in rows(db, "SELECT statement FROM pg_prepared_statements")]
    assert any("INSERT INTO email_activities" in s for s in prepared), prepared  # it does prepare
    # The batch's reads of its activity rows, its pending plans and its watched Message-IDs.
    assert not [s for s in prepared if " = ANY(" in s], prepared


def test_a_reply_to_a_stored_email_costs_one_read(db: psycopg.Connection, codec: Codec) -> None:
    # Resolving In-Reply-To read the parent, then the customer guard read it again, then
    # whether its own plan still waits: three waits on PostgreSQL in the batch's pipeline.
    everyone = config(track={"default": "all"}, queues={})
    apply(db, codec, *[make_plan(codec, email(message_id=f"p{i}@customer.example",
                                              subject=f"Question {i}"), everyone)
                       for i in range(10)])

    def reads_for(plans: list[Any]) -> int:
        return count_applying(db, codec, plans)[0]

    replies = reads_for([make_plan(codec, email(
        message_id=f"r{i}@customer.example", subject=f"Re: Question {i}",
        in_reply_to=f"p{i}@customer.example", minutes=5), everyone) for i in range(10)])
    new = reads_for([make_plan(codec, email(message_id=f"n{i}@customer.example",
                                            subject=f"Other {i}"), everyone)
                     for i in range(10)])
    assert replies - new <= 10, (replies, new)
    linked = rows(db, "SELECT count(*) FROM email_activities WHERE parent_id IS NOT NULL "
                      "AND correlation_method = 'in_reply_to'")
    assert linked == [(10,)]

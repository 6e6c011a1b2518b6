"""Evaluating and applying plans on a real PostgreSQL schema (plans made by route's plan())."""

from __future__ import annotations

import psycopg
import pytest
from persistbuild import apply, config, email, make_plan, rows, snapshot

from mailroom.codec import Codec

pytestmark = pytest.mark.integration  # needs the local stack's PostgreSQL


def clear_records(db: psycopg.Connection) -> None:
    """Back to no mail at all (reference data stays), to replay plans in another order."""
    for table in ("activity_parties", "activity_mailboxes", "queue_items", "cases",
                  "persist_pending_plans", "email_activities"):
        db.execute(f"DELETE FROM {table}")
    db.commit()


def test_new_email_becomes_activity_with_parties(db: psycopg.Connection, codec: Codec) -> None:
    [res] = apply(db, codec, make_plan(codec, email()))
    assert res.failure is None and res.applied and res.applied.event == "persisted"
    assert rows(db, "SELECT dedupe_key, subject, direction, copy_kind, collision "
                    "FROM email_activities") == [
        ("m1@customer.example", "Printer broken", "incoming", "direct", False)]
    assert rows(db, "SELECT role, address, record, outcome FROM activity_parties "
                    "ORDER BY role") == [
        ("from", "ann@customer.example", "contact:c-ann", "resolved"),
        ("to", "support@acme.example", "queue:support", "resolved")]
    # queue rule "known customers" fired: a case regarding the email, and its queue item
    [(case_id, title, status)] = rows(db, "SELECT id, title, status FROM cases")
    assert (title, status) == ("Printer broken", "active")
    assert rows(db, "SELECT regarding FROM email_activities") == [(f"case:{case_id}",)]
    assert rows(db, "SELECT queue_id FROM queue_items") == [("support",)]


def test_applying_twice_changes_nothing(db: psycopg.Connection, codec: Codec) -> None:
    p = make_plan(codec, email())
    apply(db, codec, p)
    before = snapshot(db)
    apply(db, codec, p)
    assert snapshot(db) == before


def test_reply_correlates_by_in_reply_to_and_updates_the_active_case(
    db: psycopg.Connection, codec: Codec
) -> None:
    apply(db, codec, make_plan(codec, email()))
    reply = email(message_id="m2@customer.example", subject="Re: Printer broken",
                  in_reply_to="m1@customer.example", minutes=5)
    apply(db, codec, make_plan(codec, reply))
    got = dict((r[0], r[1:]) for r in rows(
        db, "SELECT a.dedupe_key, p.dedupe_key, a.correlation_method, a.regarding "
            "FROM email_activities a LEFT JOIN email_activities p ON p.id = a.parent_id"))
    [(case_id,)] = rows(db, "SELECT id FROM cases")  # no second case: the reply updated it
    assert got["m2@customer.example"] == ("m1@customer.example", "in_reply_to", f"case:{case_id}")


def _thread(codec: Codec) -> tuple:
    # The parent reaches the support queue (tracks all mail; opens a case) ...
    parent = make_plan(codec, email(mailbox="10", subject="Quote", message_id="p@acme.example",
                                    to=("support@acme.example", "alice@acme.example")))
    # Alice's mailbox tracks only replies: the reply's activity step waits on its parent.
    reply = make_plan(codec, email(mailbox="11", to=("alice@acme.example",),
                                   subject="Re: Quote", message_id="r@customer.example",
                                   in_reply_to="p@acme.example", minutes=3))
    return parent, reply


def test_reply_before_parent_is_parked_then_ends_as_parent_first(
    persist_settings: object, db: psycopg.Connection, codec: Codec
) -> None:
    parent, reply = _thread(codec)
    assert parent.steps[0].condition is None and reply.steps[0].condition is not None
    [res] = apply(db, codec, reply)
    assert res.applied and res.applied.event == "parked"
    assert rows(db, "SELECT count(*) FROM email_activities") == [(0,)]
    [res] = apply(db, codec, parent)
    assert [a.event for _, a in res.reevaluated] == ["persisted"]
    reply_first = snapshot(db)
    # the same plans, parent first, in a clean state
    clear_records(db)
    apply(db, codec, parent)
    apply(db, codec, reply)
    assert snapshot(db) == reply_first
    assert ("r@customer.example", False, "Re: Quote", "direct", "p@acme.example",
            "in_reply_to", "case:case|p@acme.example") in reply_first["activities"]
    assert reply_first["pending"] == []


def test_grandchild_before_its_ancestors_ends_as_in_order(
    db: psycopg.Connection, codec: Codec
) -> None:
    """A reply to a reply, both before the original: what the grandchild inherits (regarding,
    case) is settled only when its parent is — the end state equals the in-order one."""
    original = make_plan(codec, email())
    reply = make_plan(codec, email(message_id="m2@customer.example", subject="Re: Printer broken",
                                   in_reply_to="m1@customer.example", minutes=5))
    again = make_plan(codec, email(message_id="m3@customer.example",
                                   subject="Re: Re: Printer broken",
                                   in_reply_to="m2@customer.example", minutes=9))
    apply(db, codec, reply)
    apply(db, codec, again)
    [res] = apply(db, codec, original)
    assert {p.dedupe_key for p, _ in res.reevaluated} >= {"m2@customer.example",
                                                          "m3@customer.example"}
    out_of_order = snapshot(db)
    clear_records(db)
    apply(db, codec, original)
    apply(db, codec, reply)
    apply(db, codec, again)
    assert snapshot(db) == out_of_order
    [(case_id,)] = rows(db, "SELECT id FROM cases WHERE NOT provisional")
    assert rows(db, "SELECT dedupe_key, regarding FROM email_activities ORDER BY 1") == [
        (f"m{n}@customer.example", f"case:{case_id}") for n in (1, 2, 3)]
    assert out_of_order["pending"] == []


def test_one_email_from_three_mailboxes_is_one_activity(
    db: psycopg.Connection, codec: Codec
) -> None:
    to = ("support@acme.example", "alice@acme.example", "bob@acme.example")
    everyone = config(track={"default": "all"})
    plans = [make_plan(codec, email(mailbox=m, to=to), everyone) for m in ("10", "11", "12")]
    apply(db, codec, *plans)
    assert rows(db, "SELECT count(*) FROM email_activities") == [(1,)]
    assert rows(db, "SELECT mailbox_id FROM activity_mailboxes ORDER BY 1") == [
        ("10",), ("11",), ("12",)]
    assert rows(db, "SELECT count(*) FROM cases") == [(1,)]


def test_richer_copy_supplies_the_content(db: psycopg.Connection, codec: Codec) -> None:
    msg = email(copy_kind="msg", body="from the .msg copy")
    direct = email(mailbox="13", to=("support@acme.example", "sales@acme.example"),
                   body="from the direct copy")
    apply(db, codec, make_plan(codec, msg))
    [res] = apply(db, codec, make_plan(codec, direct))
    assert rows(db, "SELECT copy_kind, text_body FROM email_activities") == [
        ("direct", "from the direct copy")]
    # the trace says so (and the richer copy's attachments replaced the poorer copy's)
    assert res.applied is not None
    assert res.applied.detail["content"] == "richer copy (direct) supplies the content"


def test_forged_copy_is_a_collision_and_the_real_one_is_untouched(
    db: psycopg.Connection, codec: Codec
) -> None:
    apply(db, codec, make_plan(codec, email()))
    before = rows(db, "SELECT id, subject, text_body, regarding FROM email_activities")
    forged = email(subject="Pay this invoice", body="forged", content_hash="h-forged",
                   sender="mallory@evil.example")
    [res] = apply(db, codec, make_plan(codec, forged))
    assert res.failure is None
    assert rows(db, "SELECT id, subject, text_body, regarding FROM email_activities "
                    "WHERE NOT collision") == before
    assert rows(db, "SELECT a.subject, c.real_activity_id FROM email_collisions c "
                    "JOIN email_activities a ON a.id = c.activity_id") == [
        ("Pay this invoice", before[0][0])]


def test_user_edited_case_title_is_kept_on_replay(db: psycopg.Connection, codec: Codec) -> None:
    p = make_plan(codec, email())
    apply(db, codec, p)
    db.execute("UPDATE cases SET title = 'Printer on floor 3 broken'")  # as a CRM user
    db.commit()
    apply(db, codec, p)
    assert rows(db, "SELECT title FROM cases") == [("Printer on floor 3 broken",)]


def test_user_deleted_case_is_not_recreated_on_replay(
    db: psycopg.Connection, codec: Codec
) -> None:
    p = make_plan(codec, email())
    apply(db, codec, p)
    db.execute("UPDATE cases SET deleted_at = now()")  # the documented soft delete
    db.commit()
    [res] = apply(db, codec, p)
    assert rows(db, "SELECT count(*), count(deleted_at) FROM cases") == [(1, 1)]
    assert res.applied and "deleted" in res.applied.detail["case"]


def test_removed_rows_come_back_on_replay(db: psycopg.Connection, codec: Codec) -> None:
    p = make_plan(codec, email())
    apply(db, codec, p)
    before = snapshot(db)
    db.execute("DELETE FROM activity_parties")
    db.execute("DELETE FROM queue_items")
    db.commit()
    apply(db, codec, p)
    assert snapshot(db) == before


def test_value_postgres_refuses_fails_that_plan_only(db: psycopg.Connection, codec: Codec) -> None:
    bad = make_plan(codec, email(message_id="bad@customer.example", body="nul \x00 byte"))
    good = make_plan(codec, email(message_id="good@customer.example"))
    results = apply(db, codec, bad, good)
    assert results[0].failure and results[0].failure[0] == "refused_by_database"
    assert results[1].failure is None
    assert rows(db, "SELECT dedupe_key FROM email_activities") == [("good@customer.example",)]


def test_queue_reply_before_parent_withdraws_its_provisional_case(
    db: psycopg.Connection, codec: Codec
) -> None:
    """In a queue that tracks all mail the early reply is stored (and opens a case) at once;
    when its parent lands, the thread's case wins, as if the parent had come first."""
    parent = make_plan(codec, email(message_id="p@customer.example"))
    reply = make_plan(codec, email(message_id="r@customer.example", subject="Re: Printer broken",
                                   in_reply_to="p@customer.example", minutes=2))
    apply(db, codec, reply)
    assert rows(db, "SELECT case_key, provisional FROM cases") == [
        ("case|r@customer.example", True)]
    apply(db, codec, parent)
    reply_first = snapshot(db)
    clear_records(db)
    apply(db, codec, parent)
    apply(db, codec, reply)
    assert snapshot(db) == reply_first
    assert [c[0] for c in reply_first["cases"]] == ["case|p@customer.example"]


def test_one_batch_out_of_order_ends_as_in_order(db: psycopg.Connection, codec: Codec) -> None:
    """The grandchild, its parent and the original in ONE batch (the batch reads who waits on
    its emails once, then keeps track of the watches its own plans add): as if in order."""
    original = make_plan(codec, email())
    reply = make_plan(codec, email(message_id="m2@customer.example", subject="Re: Printer broken",
                                   in_reply_to="m1@customer.example", minutes=5))
    again = make_plan(codec, email(message_id="m3@customer.example",
                                   subject="Re: Re: Printer broken",
                                   in_reply_to="m2@customer.example", minutes=9))
    results = apply(db, codec, again, reply, original)
    assert all(r.failure is None for r in results)
    assert {p.dedupe_key for p, _ in results[2].reevaluated} >= {"m2@customer.example",
                                                                 "m3@customer.example"}
    one_batch = snapshot(db)
    clear_records(db)
    for plan in (original, reply, again):
        apply(db, codec, plan)
    assert snapshot(db) == one_batch and one_batch["pending"] == []


def test_a_bad_plan_in_an_out_of_order_batch_costs_only_itself(
    db: psycopg.Connection, codec: Codec
) -> None:
    """The batch is first applied whole; a refused plan sends it plan by plan, and the waiting
    reply still threads when its parent lands later in the same batch."""
    reply = make_plan(codec, email(message_id="m2@customer.example", subject="Re: Printer broken",
                                   in_reply_to="m1@customer.example", minutes=5))
    bad = make_plan(codec, email(message_id="bad@customer.example", body="nul \x00 byte"))
    results = apply(db, codec, reply, bad, make_plan(codec, email()))
    assert results[1].failure and results[1].failure[0] == "refused_by_database"
    assert [p.dedupe_key for p, _ in results[2].reevaluated] == ["m2@customer.example"]
    assert rows(db, "SELECT dedupe_key, parent_id IS NOT NULL FROM email_activities "
                    "ORDER BY 1") == [("m1@customer.example", False),
                                      ("m2@customer.example", True)]

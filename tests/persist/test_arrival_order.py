"""Order independence of every correlation method, on a real PostgreSQL schema: the same
emails applied in every order — one batch each, or all in one batch — end in the same threads
with the same regarding records and cases as the parent-first order. Replies carry only the
method under test (no In-Reply-To or References), so nothing else can link them."""

from __future__ import annotations

import base64
import itertools
from typing import Any

import psycopg
import pytest
from persistbuild import apply, config, email, make_plan, rows

from mailroom.codec import Codec
from mailroom.records.action import Plan
from mailroom.records.email import Email
from persist import park

pytestmark = pytest.mark.integration  # needs the local stack's PostgreSQL

HEADER = bytes(range(22))  # an Outlook conversation's Thread-Index header
SMART = config(correlation={"smart": True, "smart_min_participants": 1})


def thread_index(replies: int) -> str:
    return base64.b64encode(HEADER + bytes(range(1, 1 + 5 * replies))).decode()


def thread_index_emails() -> list[Email]:
    return [email(message_id=f"t{n}@customer.example", thread_index=thread_index(n),
                  subject=("RE: " if n else "") + "Printer broken", minutes=5 * n)
            for n in range(3)]


def token_emails(token: str) -> list[Email]:
    """Our original with a token, the customer's reply (only the token links it), and our
    second mail on the token (no In-Reply-To either)."""
    out = {"mailbox": "11", "sender": "alice@acme.example", "to": ("ann@customer.example",),
           "direction": "outgoing"}
    return [
        email(message_id="o1@acme.example", subject=f"Your printer [{token}]", minutes=-10,
              **out),
        email(message_id="r1@customer.example", subject=f"Re: Your printer [{token}]"),
        email(message_id="o2@acme.example", subject=f"Re: Your printer [{token}]", minutes=10,
              **out),
    ]


def smart_emails() -> list[Email]:
    return [
        email(message_id="s1@customer.example", subject="Toner empty"),
        email(message_id="s2@customer.example", subject="Re: Toner empty", minutes=5),
        email(message_id="s3@customer.example", subject="AW: Re: Toner empty", minutes=9),
    ]


def clean(db: psycopg.Connection) -> None:
    db.execute("TRUNCATE email_activities, cases, queue_items, persist_pending_plans, "
               "persist_watches CASCADE")
    db.execute("UPDATE route_tokens SET activity_dedupe_key = NULL")
    db.commit()


def outcome(db: psycopg.Connection) -> dict[str, Any]:
    """Each email's thread (the first email reached by following parents), its regarding
    record (a case by its natural key), and the cases and pending plans left."""
    found = rows(db, "SELECT a.dedupe_key, p.dedupe_key, CASE WHEN a.regarding LIKE 'case:%%' "
                     "THEN (SELECT 'case:' || c.case_key FROM cases c WHERE 'case:' || c.id = "
                     "a.regarding) ELSE a.regarding END FROM email_activities a "
                     "LEFT JOIN email_activities p ON p.id = a.parent_id")
    parent = {key: up for key, up, _ in found}

    def root(key: str) -> str:
        seen = [key]
        while parent.get(seen[-1]) and parent[seen[-1]] not in seen:
            seen.append(parent[seen[-1]])
        return seen[-1]

    return {
        "threads": {key: root(key) for key in parent},
        "regarding": {key: regarding for key, _, regarding in found},
        "cases": rows(db, "SELECT case_key, provisional FROM cases WHERE deleted_at IS NULL "
                          "ORDER BY 1"),
        "pending": rows(db, "SELECT dedupe_key FROM persist_pending_plans ORDER BY 1"),
    }


def every_order(db: psycopg.Connection, codec: Codec, plans: list[Plan]) -> dict[str, Any]:
    """Apply the plans in order (parent first), then in every other order, one batch per plan
    and all in one batch; each must end as the first did. Returns the parent-first outcome."""
    apply(db, codec, *plans)
    expected = outcome(db)
    for order in itertools.permutations(plans):
        for one_batch in (False, True):
            clean(db)
            if one_batch:
                apply(db, codec, *order)
            else:
                for p in order:
                    apply(db, codec, p)
            got = outcome(db)
            keys = [p.dedupe_key for p in order]
            assert got == expected, (keys, "one batch" if one_batch else "a batch each")
        clean(db)
    return expected


def test_thread_index_replies_in_any_order(db: psycopg.Connection, codec: Codec) -> None:
    plans = [make_plan(codec, e) for e in thread_index_emails()]
    expected = every_order(db, codec, plans)
    assert set(expected["threads"].values()) == {"t0@customer.example"}
    assert expected["cases"] == [("case|t0@customer.example", False)]
    assert expected["pending"] == []


def test_token_replies_in_any_order_and_the_original_is_never_a_child(
    db: psycopg.Connection, codec: Codec
) -> None:
    [(number,)] = rows(db, "INSERT INTO route_tokens (regarding_kind, regarding_id) "
                           "VALUES ('account', 'a-customer') RETURNING number")
    db.commit()
    plans = [make_plan(codec, e) for e in token_emails(f"CRM:{number:07d}")]
    expected = every_order(db, codec, plans)
    # Every email in the original's thread; the original itself is nobody's child.
    assert set(expected["threads"].values()) == {"o1@acme.example"}
    assert expected["pending"] == []


def test_smart_replies_in_any_order(db: psycopg.Connection, codec: Codec) -> None:
    plans = [make_plan(codec, e, SMART) for e in smart_emails()]
    expected = every_order(db, codec, plans)
    assert set(expected["threads"].values()) == {"s1@customer.example"}
    assert expected["cases"] == [("case|s1@customer.example", False)]
    assert expected["pending"] == []


def test_a_wait_on_what_only_a_conversation_names_is_bounded(
    db: psycopg.Connection, codec: Codec
) -> None:
    """A reply to a conversation that never comes does not wait for ever: a week of broker
    time later its watch is gone (and its provisional case is its own); a Message-ID's wait
    is not bounded."""
    _, reply, _ = thread_index_emails()
    orphan = email(message_id="x1@customer.example", subject="Re: Toner",
                   in_reply_to="never@customer.example", minutes=1)
    apply(db, codec, make_plan(codec, reply), make_plan(codec, orphan), ts=1_000)
    assert outcome(db)["pending"] == [("t1@customer.example",), ("x1@customer.example",)]
    assert outcome(db)["cases"] == [("case|t1@customer.example", True),
                                    ("case|x1@customer.example", True)]
    later = email(message_id="n1@customer.example", subject="Paper jam", minutes=60)
    apply(db, codec, make_plan(codec, later), ts=1_000 + park.SOFT_WAIT_MS - 10)
    assert len(outcome(db)["pending"]) == 2  # not yet
    apply(db, codec, make_plan(codec, later), ts=1_000 + park.SOFT_WAIT_MS + 10)
    got = outcome(db)
    assert got["pending"] == [("x1@customer.example",)]
    assert ("case|t1@customer.example", False) in got["cases"]

"""For a user or queue behind a forward mailbox, "process email from" is judged by the original's
arrival at their mailbox (its topmost Received, else its Date) — not by when the forward reached
the forward mailbox — and each original skipped says why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from mailroom.console.demo.mail import forward
from mailroom.console.demo.scenario import Letter
from mailroom.records.raw import RawMail
from unwrap.arrival import arrival
from unwrap.context import Forwarder, UnwrapContext
from unwrap.forwarders import FORWARDED_BY_HEADER
from unwrap.unwrap import Unwrapped, unwrap, unwrap_all

AUTHSERV = "mx.acme.example"
CUTOFF = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _letter(minutes: int) -> Letter:
    return Letter(f"m{minutes}", "ann@customer.example", ("alice@acme.example",),
                  f"Sent {minutes}", CUTOFF + timedelta(minutes=minutes), "Hello.")


def _run(data: bytes) -> Unwrapped:
    raw = RawMail(mailbox_id="7", mailbox_address="crm-forward@acme.example",
                  owner_kind="forward", owner_id=None, folder="INBOX", direction="incoming",
                  protocol="imap", uidvalidity=1, uid=1, fetched_at=datetime.now(UTC),
                  size=len(data), content=data)
    ctx = UnwrapContext(forwarders={"7": {
        "alice@acme.example": Forwarder("user", "u-alice", CUTOFF)}}, authserv_id=AUTHSERV)
    result = unwrap_all(raw, ctx)
    assert isinstance(result, Unwrapped), result
    assert unwrap(raw, ctx) == result.emails
    return result


def test_an_original_sent_before_the_cutoff_is_skipped_with_its_reason() -> None:
    early = _run(forward(_letter(-1), "alice@acme.example", "crm-forward@acme.example",
                         AUTHSERV))
    assert early.emails == []
    [skip] = early.skipped
    assert skip.email.message_id == "m-1.demo@mail.acme.example"
    assert "(Date header) at alice@acme.example" in skip.reason
    assert "'process email from' 2026-03-02T09:00:00+00:00" in skip.reason
    on_time = _run(forward(_letter(0), "alice@acme.example", "crm-forward@acme.example",
                           AUTHSERV))
    assert len(on_time.emails) == 1 and on_time.skipped == ()


def test_the_originals_received_stamp_is_its_arrival_not_its_date() -> None:
    # sent the evening before, arrived at Alice's server a minute after the cut-off
    original = EmailMessage()
    original["Received"] = ("from mx.customer.example by mx.acme.example; "
                            "Mon, 02 Mar 2026 09:01:00 +0000")
    original["From"] = "ann@customer.example"
    original["Date"] = "Sun, 01 Mar 2026 20:00:00 +0000"
    original["Message-ID"] = "<late@customer.example>"
    original.set_content("Hi")
    assert arrival(original) == (CUTOFF + timedelta(minutes=1), "Received header")
    redirected = (f"Authentication-Results: {AUTHSERV}; spf=pass "
                  "smtp.mailfrom=alice@acme.example\r\n"
                  f"{FORWARDED_BY_HEADER}: alice@acme.example\r\n").encode() + original.as_bytes()
    result = _run(redirected)
    assert [e.message_id for e in result.emails] == ["late@customer.example"]


def test_an_unreadable_received_stamp_falls_back_to_the_date_in_utc() -> None:
    original = EmailMessage()
    # an offset past any integer the stdlib's reader converts: unreadable, not a crash
    original["Received"] = "from x by y; Mon, 02 Mar 2026 09:01:00 +9999999999999999999"
    original["Date"] = "Mon, 02 Mar 2026 10:00:00 +0100"
    assert arrival(original) == (CUTOFF, "Date header")
    assert arrival(original)[0].utcoffset() == timedelta(0)  # type: ignore[union-attr]

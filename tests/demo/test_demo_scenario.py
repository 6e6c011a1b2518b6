"""The demo's pure parts: the scenario is consistent and its mail is real RFC 5322."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import default
from pathlib import Path

import pytest

from mailroom.console.demo import mail, seed
from mailroom.console.demo.pipeline import child_environment
from mailroom.console.demo.scenario import EXPECTED, LETTERS, MAILBOXES, letters_by_key
from mailroom.console.demo.summary import skip_reason
from mailroom.records.raw import RawMail
from mailroom.settings import Settings


def _parse(data: bytes):  # noqa: ANN202 - EmailMessage
    return BytesParser(policy=default).parsebytes(data)


def test_every_letter_goes_to_a_mailbox_of_the_scenario_and_replies_name_a_letter() -> None:
    locals_ = {m.local for m in MAILBOXES}
    keys = letters_by_key()
    for letter in LETTERS:
        assert {local for local, _ in seed.deliveries(letter)} <= locals_
        if letter.in_reply_to:
            assert letter.in_reply_to in keys
    assert sum(EXPECTED.correlation.values()) == 5


def test_forwards_carry_the_original_as_message_rfc822() -> None:
    letter = letters_by_key()["order-damaged"]
    msg = _parse(seed.render(letter, "CRM:0001000"))
    assert msg["From"] == "alice@acme.example" and msg["To"] == "crm-forward@acme.example"
    inner = next(p for p in msg.walk() if p.get_content_type() == "message/rfc822")
    original = inner.get_payload()[0]
    assert original["Message-ID"] == f"<{letter.message_id}>"
    assert original["From"] == "jane@contoso.example"


def test_msg_forward_carries_the_committed_msg_of_the_direct_copy() -> None:
    """The .msg-forwarded copy lands first, the direct copy (phase 2) then supplies
    the content — only if both give one dedupe key and one content hash."""
    from unwrap.context import UnwrapContext
    from unwrap.msgfile import read_msg
    from unwrap.unwrap import unwrap

    forwarded, direct = [x for x in LETTERS if x.key == "new-address"]
    assert (forwarded.forward_as, forwarded.phase, direct.phase) == ("msg", 1, 2)
    msg = _parse(seed.render(forwarded, "CRM:0001000"))
    part = next(p for p in msg.walk() if p.get_content_type() == "application/vnd.ms-outlook")
    assert part.get_filename() == "Updated delivery address.msg"
    data = part.get_payload(decode=True)
    assert data == mail.msg_file(forwarded)
    original, warnings = read_msg(data)
    assert warnings == []
    assert original["Message-ID"] == f"<{direct.message_id}>"
    assert (original["From"], original["Subject"]) == ("jane@contoso.example",
                                                      "Updated delivery address")

    ctx = UnwrapContext(forwarders={"fwd": {"alice@acme.example": "u-alice"}},
                        authserv_id="mx.acme.example")
    copies = [unwrap(_raw(seed.render(forwarded, "T"), "forward", "fwd"), ctx),
              unwrap(_raw(seed.render(direct, "T"), "user", "dave"), ctx)]
    assert all(isinstance(c, list) and len(c) == 1 for c in copies), copies
    by_msg, by_direct = (c[0] for c in copies)  # type: ignore[index]
    assert (by_msg.delivery.copy_kind, by_direct.delivery.copy_kind) == ("msg", "direct")
    assert by_msg.delivery.forwarded_by_user == "u-alice"
    assert by_msg.dedupe_key == by_direct.dedupe_key == direct.message_id
    assert by_msg.content_hash == by_direct.content_hash


def test_committed_demo_msg_is_what_the_generator_builds() -> None:
    pytest.importorskip("msgforge")  # a dev extra: only the fixture generator needs it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unwrap"))
    from make_msg_fixtures import demo_msg

    assert demo_msg() == mail.msg_file(letters_by_key()["new-address"])


def _raw(data: bytes, kind: str, mailbox: str) -> RawMail:
    return RawMail(mailbox_id=mailbox, mailbox_address=f"{mailbox}@acme.example",
                   owner_kind=kind, owner_id=None, folder="INBOX",  # type: ignore[arg-type]
                   direction="incoming", protocol="imap",
                   fetched_at=datetime(2026, 3, 2, tzinfo=UTC), size=len(data), uidvalidity=1,
                   uid=1, content=data)


def test_bounce_is_a_failed_delivery_status_report_and_reply_threads() -> None:
    msg = _parse(seed.render(letters_by_key()["printer-bounce"], "CRM:0001000"))
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert "Action: failed" in msg.as_string()
    assert msg["In-Reply-To"] == "<printer-answer.demo@mail.acme.example>"


def test_the_token_and_the_forgery() -> None:
    keys = letters_by_key()
    quote = _parse(seed.render(keys["quote-reply"], "CRM:0001000"))
    assert quote["Subject"] == "Re: Your quote CRM:0001000"
    forgery = next(x for x in LETTERS if x.key == "printer-forgery")
    assert forgery.message_id == keys["printer"].message_id


def test_skip_reasons_drop_the_mailbox_and_the_explanation() -> None:
    assert skip_reason("user:u-bob (mailbox 1) tracks replies: not a reply (no In-Reply-To)") \
        == "tracks replies: not a reply"


def test_children_get_the_demo_settings_and_login_names_follow_the_prefix() -> None:
    settings = Settings(topic_prefix="test.t1", database_url="dbname=x")
    env = child_environment(settings)
    assert env["MAILROOM_TOPIC_PREFIX"] == "test.t1" and env["MAILROOM_DATABASE_URL"] == "dbname=x"
    assert seed.login_name(settings, "alice") == "test-t1-alice"


def test_the_demo_runs_the_secure_setup_and_its_forwards_pass_it() -> None:
    """Forwards are believed only on Acme's receiving server's Authentication-Results: the demo
    sets that server's authserv-id for every stage and its forwards carry the stamp."""
    from mailroom.console.demo.scenario import AUTHSERV_ID
    from unwrap.context import Rejection, UnwrapContext
    from unwrap.unwrap import unwrap

    settings = seed.secure(Settings())
    assert settings.unwrap_authserv_id == AUTHSERV_ID
    assert child_environment(settings)["MAILROOM_UNWRAP_AUTHSERV_ID"] == AUTHSERV_ID
    assert seed.secure(Settings(unwrap_authserv_id="mx.other.example")).unwrap_authserv_id \
        == "mx.other.example"

    forwarders = {"fwd": {f"{m.local}@acme.example": m.owner_id
                          for m in MAILBOXES if m.via_forward}}
    ctx = UnwrapContext(forwarders=forwarders, authserv_id=AUTHSERV_ID)
    outcomes: dict[str, str] = {}
    for letter in LETTERS:
        if letter.forwarded_by:
            result = unwrap(_raw(seed.render(letter, "T"), "forward", "fwd"), ctx)
            outcomes[letter.key] = result.reason_code if isinstance(result, Rejection) else "ok"
    assert outcomes.pop("spoofed") == "not_a_forwarder"
    assert outcomes.pop("forged-forward") == "auth_failed"
    assert set(outcomes.values()) == {"ok"}
    # the same mail without the authserv-id configured: nothing is believed
    unset = UnwrapContext(forwarders=forwarders)
    pricing = letters_by_key()["pricing"]
    result = unwrap(_raw(seed.render(pricing, "T"), "forward", "fwd"), unset)
    assert isinstance(result, Rejection) and result.reason_code == "auth_missing"

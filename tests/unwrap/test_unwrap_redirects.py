"""Redirect-style forwards: the original arrives intact and the forwarder is a claim, believed
only on what our receiving server vouches for — and forged claims are refused, each with its
recorded reason."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from mailroom.records.email import Email
from mailroom.records.raw import RawMail
from unwrap.context import Forwarder, Rejection, UnwrapContext
from unwrap.forwarders import FORWARDED_BY_HEADER
from unwrap.redirects import UNCHECKED_REDIRECT_NOTE
from unwrap.unwrap import unwrap

OURS = "mx.corp.example"
FWD_ID, FWD = "fwd", "crm-fwd@corp.example"
FORWARDERS = {FWD_ID: {"alice@corp.example": "u-alice",
                       "sales@corp.example": Forwarder("queue", "q-sales")}}
# What our receiving server stamps on a redirect our own Sieve rule sent on: the envelope sender
# is the forwarding mailbox (sieve_redirect_envelope_from = recipient), so SPF passes for it.
HOP_PASS = f"{OURS}; spf=pass smtp.mailfrom=alice@corp.example"


def original(**extra: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Ann Customer <ann@customer.example>"
    msg["To"] = "alice@corp.example"
    msg["Subject"] = "Order 77"
    msg["Date"] = "Tue, 11 Mar 2025 10:00:00 +0000"
    msg["Message-ID"] = "<order-77@customer.example>"
    msg["DKIM-Signature"] = "v=1; a=rsa-sha256; d=customer.example; s=s1; b=abc"
    for name, value in extra.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("Please ship order 77.")
    return msg


def redirected(*top: tuple[str, str], msg: EmailMessage | None = None) -> bytes:
    """``msg`` (default: the original) with ``top`` headers prepended, first one topmost —
    as servers stamp them on the way."""
    data = (msg or original()).as_bytes()
    head = "".join(f"{name}: {value}\r\n" for name, value in top).encode()
    return head + data


def run(data: bytes, *, unchecked: bool = False, authserv_id: str = OURS
        ) -> list[Email] | Rejection:
    raw = RawMail(mailbox_id=FWD_ID, mailbox_address=FWD, owner_kind="forward", owner_id=None,
                  folder="INBOX", direction="incoming", protocol="imap", uidvalidity=1, uid=1,
                  fetched_at=datetime.now(UTC), size=len(data), content=data)
    ctx = UnwrapContext(forwarders=FORWARDERS, authserv_id=authserv_id,
                        unchecked_forward_mailboxes=frozenset({FWD_ID} if unchecked else ()))
    return unwrap(raw, ctx)


def one(result: list[Email] | Rejection) -> Email:
    assert isinstance(result, list) and len(result) == 1, result
    return result[0]


def code(result: list[Email] | Rejection) -> str:
    assert isinstance(result, Rejection), result
    return result.reason_code


MARK = (FORWARDED_BY_HEADER, "alice@corp.example")


def test_sieve_redirect_is_the_original_attributed_to_the_forwarder() -> None:
    email = one(run(redirected(("Authentication-Results", HOP_PASS), ("Delivered-To", FWD),
                               MARK, ("Delivered-To", "alice@corp.example"))))
    d = email.delivery
    assert (d.forwarded_by_user, d.forwarder_address) == ("u-alice", "alice@corp.example")
    assert d.copy_kind == "direct" and d.path == (f"redirected ({FORWARDED_BY_HEADER})",)
    assert email.message_id == "order-77@customer.example"  # the original, not a wrapper
    assert email.from_address is not None
    assert email.from_address.address == "ann@customer.example"
    assert not any("not checked" in w for w in email.warnings)


def test_delivered_to_stamp_of_the_forwarders_mailbox_is_a_claim() -> None:
    # a plain redirect rule (no Mailroom header): the topmost stamp below our own mailbox's
    email = one(run(redirected(("Authentication-Results", HOP_PASS), ("Delivered-To", FWD),
                               ("Delivered-To", "alice@corp.example"))))
    assert email.delivery.forwarded_by_user == "u-alice"
    assert email.delivery.path == ("redirected (Delivered-To)",)


def test_a_queues_redirect_is_the_queues_mail() -> None:
    hop = f"{OURS}; spf=pass smtp.mailfrom=sales@corp.example"
    email = one(run(redirected(("Authentication-Results", hop),
                               (FORWARDED_BY_HEADER, "sales@corp.example"))))
    assert (email.delivery.forwarded_by_queue, email.delivery.forwarded_by_user) == (
        "q-sales", None)


def test_gmail_style_envelope_and_arc_seal_vouch_too() -> None:
    gmail = f"{OURS}; spf=pass smtp.mailfrom=alice+caf_=crm-fwd=corp.example@corp.example"
    assert one(run(redirected(("Authentication-Results", gmail), MARK)))
    arc = f"{OURS}; arc=pass; spf=fail smtp.mailfrom=bounces@relay.example"
    seal = ("ARC-Seal", "i=2; a=rsa-sha256; cv=pass; d=corp.example; s=arc; b=xyz")
    older = ("ARC-Seal", "i=1; a=rsa-sha256; cv=none; d=customer.example; s=arc; b=xyz")
    assert one(run(redirected(("Authentication-Results", arc), seal, MARK, older)))


@pytest.mark.parametrize("headers, reason", [
    # a forger writes our header straight to the forward mailbox: nothing vouches for it
    ((MARK,), "auth_missing"),
    ((MARK, ("Authentication-Results", "evil.example; spf=pass smtp.mailfrom=alice@corp.example")),
     "auth_missing"),
    # our server saw the forger's own envelope: SPF passes, but for the forger's domain
    ((("Authentication-Results", f"{OURS}; spf=pass smtp.mailfrom=eve@evil.example"), MARK),
     "auth_failed"),
    # ... or SPF for the forwarder's domain fails (sent from outside with her address)
    ((("Authentication-Results", f"{OURS}; spf=fail smtp.mailfrom=alice@corp.example"), MARK),
     "auth_failed"),
    # the original's own DKIM and DMARC pass, but they vouch for the original sender only
    ((("Authentication-Results", f"{OURS}; dkim=pass header.d=customer.example; dmarc=pass "
       "header.from=customer.example"), MARK), "auth_failed"),
    # conflicting results for the forwarder's domain
    ((("Authentication-Results", f"{OURS}; spf=pass smtp.mailfrom=alice@corp.example; "
       "spf=fail smtp.mailfrom=alice@corp.example"), MARK), "auth_failed"),
    # a pass with our id written lower down by the forger: only the topmost one is read
    ((("Authentication-Results", f"{OURS}; spf=softfail smtp.mailfrom=alice@corp.example"),
      MARK, ("Authentication-Results", HOP_PASS)), "auth_failed"),
    # ARC pass, but the newest seal is the forger's (or two seals claim the newest instance)
    ((("Authentication-Results", f"{OURS}; arc=pass"),
      ("ARC-Seal", "i=1; cv=none; d=evil.example; s=a; b=x"), MARK), "auth_failed"),
    ((("Authentication-Results", f"{OURS}; arc=pass"),
      ("ARC-Seal", "i=1; cv=none; d=corp.example; s=a; b=x"),
      ("ARC-Seal", "i=1; cv=none; d=evil.example; s=a; b=x"), MARK), "auth_failed"),
    # the claim names someone who does not forward to this mailbox
    ((("Authentication-Results", f"{OURS}; spf=pass smtp.mailfrom=eve@evil.example"),
      (FORWARDED_BY_HEADER, "eve@evil.example")), "not_a_forwarder"),
    # two different marks (our rule deletes the sender's before adding one): ambiguous
    ((("Authentication-Results", HOP_PASS), MARK,
      (FORWARDED_BY_HEADER, "sales@corp.example")), "forwarder_ambiguous"),
    # a crafted mark that is not one plain address
    ((("Authentication-Results", HOP_PASS),
      (FORWARDED_BY_HEADER, "alice@corp.example <eve@evil.example>")), "forwarder_unparseable"),
])
def test_forged_redirect_claims_are_refused_with_their_reason(
        headers: tuple[tuple[str, str], ...], reason: str) -> None:
    result = run(redirected(*headers))
    assert code(result) == reason
    assert result.reason  # type: ignore[union-attr] - the recorded explanation


def test_no_authserv_id_configured_fails_closed() -> None:
    result = run(redirected(("Authentication-Results", HOP_PASS), MARK), authserv_id="")
    assert code(result) == "auth_missing" and "unwrap_authserv_id" in result.reason  # type: ignore[union-attr]


def test_a_forged_stamp_below_the_real_ones_is_never_read() -> None:
    # the topmost stamp (below our own mailbox's) names a stranger: no redirect claim at all,
    # so the message is judged as before — no forwarded original in it
    data = redirected(("Authentication-Results", HOP_PASS), ("Delivered-To", FWD),
                      ("Delivered-To", "list-member@elsewhere.example"),
                      ("Delivered-To", "alice@corp.example"))
    assert code(run(data)) == "not_forwarded"


def test_the_opt_out_believes_the_claim_and_says_so() -> None:
    email = one(run(redirected(MARK), unchecked=True))
    assert email.delivery.forwarded_by_user == "u-alice"
    assert UNCHECKED_REDIRECT_NOTE in email.warnings


def test_a_redirected_message_with_an_attached_message_stays_one_original() -> None:
    # Ann forwarded something to Alice as an attachment; Alice's rule redirects Ann's mail:
    # the original is Ann's message, not what Ann attached.
    msg = original()
    inner = original()
    del inner["Message-ID"]
    inner["Message-ID"] = "<inner@elsewhere.example>"
    msg.add_attachment(inner)
    email = one(run(redirected(("Authentication-Results", HOP_PASS), MARK, msg=msg)))
    assert email.message_id == "order-77@customer.example"


def test_a_forward_as_attachment_from_a_forwarder_is_unchanged_by_its_stamps() -> None:
    outer = EmailMessage()
    outer["Authentication-Results"] = f"{OURS}; dmarc=pass header.from=corp.example"
    outer["Delivered-To"] = "alice@corp.example"
    outer["From"] = "alice@corp.example"
    outer["To"] = FWD
    outer["Subject"] = "Fw: Order 77"
    outer["Message-ID"] = "<fw-77@corp.example>"
    outer.set_content("FYI")
    outer.add_attachment(original())
    email = one(run(outer.as_bytes()))
    assert email.delivery.copy_kind == "forwarded_rfc822"
    assert email.message_id == "order-77@customer.example"

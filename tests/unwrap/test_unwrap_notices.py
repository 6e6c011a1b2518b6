"""Delivery notices in every common form, auto-replies, and ordinary mail that must stay so.

Fixtures: ``fixtures/notices/`` (written by ``make_notice_fixtures.py`` from each server's
published format). Each bounce must name its failed recipients (addresses only) and the
Message-ID of the returned original, and it must survive the Avro round trip with them.
"""

from __future__ import annotations

import pytest
from unwrap_helpers import direct

from mailroom.codec import Codec
from mailroom.records.email import Email
from mailroom.schemas import shipped_schemas_dir

BOB = ("bob@customer.example",)
ORIGINAL = "quote-7@corp.example"

BOUNCES = {
    "qmail.eml": BOB,  # the pipe recipient is no address and is left out
    "exim.eml": BOB,
    "postfix_plain.eml": BOB,
    "sendmail_plain.eml": BOB,  # the source route is dropped
    "gmail.eml": BOB,
    "yahoo.eml": BOB,
    "exchange2003.eml": BOB,
    "opensmtpd.eml": BOB,
    "ses.eml": BOB,
    "workmail.eml": BOB,
    "google_groups.eml": ("sales-team@groups.example",),
    "mailru.eml": BOB,
    "domino.eml": BOB,
    "dsn_in_mixed.eml": BOB,
    "dsn_sloppy.eml": BOB,  # "Action : failed" after an unindented continuation line
    "sieve_reject.eml": BOB,  # an MDN "deleted" by a Sieve reject (RFC 5429)
}


def notice(name: str) -> Email:
    (email,) = direct(f"notices/{name}")
    return email


@pytest.mark.parametrize("name", sorted(BOUNCES))
def test_bounce_forms_are_classified_with_recipients_and_original(name: str) -> None:
    email = notice(name)
    assert email.report.kind == "bounce", email.report
    assert email.report.failed_recipients == BOUNCES[name]
    assert email.report.original_message_id == ORIGINAL


@pytest.mark.parametrize("name", ["exim_delayed.eml", "gmail_delayed.eml"])
def test_delay_warnings_are_delayed_not_bounces(name: str) -> None:
    email = notice(name)
    assert email.report.kind == "delayed", email.report
    assert email.report.original_message_id == ORIGINAL


@pytest.mark.parametrize("name", ["person_quotes_bounce.eml", "auto_generated.eml",
                                  "null_sender_unclassified.eml"])
def test_no_false_reports(name: str) -> None:
    assert notice(name).report.kind == "none"


@pytest.mark.parametrize("name, marker", [
    ("oof_exchange.eml", "Auto-Submitted: auto-replied"),
    ("oof_german.eml", "Abwesenheitsnotiz:"),
    ("oof_french.eml", "Réponse automatique :"),
    ("x_autoreply.eml", "X-Autoreply: yes"),
    ("x_autorespond.eml", "X-Autorespond"),
    ("precedence_auto_reply.eml", "Precedence: auto_reply"),
])
def test_auto_replies_get_their_kind(name: str, marker: str) -> None:
    report = notice(name).report
    assert report.kind == "auto_reply"
    assert marker in (report.detail or "")


def test_null_sender_and_autorespond_markers_are_kept() -> None:
    assert notice("null_sender_unclassified.eml").markers.return_path == "<>"
    assert notice("x_autorespond.eml").markers.x_autorespond == "Thank you for your mail"


def test_bounce_survives_the_topic() -> None:
    path = shipped_schemas_dir()
    assert path is not None
    codec = Codec.load(path)
    email = notice("exim.eml")
    back = codec.decode_record(codec.encode_record(email), Email)
    assert back.report == email.report
    assert back.report.original_message_id == ORIGINAL


def test_an_unreadable_notice_says_so() -> None:
    email = notice("null_sender_unclassified.eml")
    assert any("sent like a delivery notice" in w for w in email.warnings)
    assert not any("delivery notice" in w for w in notice("oof_german.eml").warnings)


def test_generated_ordinary_mail_is_never_a_report() -> None:
    """The benchmark's mail generator (replies, forwards, large attachments) as direct mail."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "mailgen.py"
    spec = importlib.util.spec_from_file_location("bench_mailgen_notices", path)
    assert spec is not None and spec.loader is not None
    mailgen = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mailgen  # dataclasses look their module up there
    spec.loader.exec_module(mailgen)
    for mix in mailgen.MIXES:
        for mail in mailgen.MailMaker(mix, mailgen.DEFAULT_SIZE, "mime").batch(0, 40):
            (email,) = direct(mail.data)
            assert email.report.kind == "none", (mix, mail.kind, email.report)
            assert not any("delivery notice" in w for w in email.warnings)

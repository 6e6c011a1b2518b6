"""`mailroom dlq` and `mailroom trace` on the real stack: unwrap rejects a forward from a user
who is not a forwarder; retried unchanged it fails again with its retry count carried along;
after the forwarder is added in the database, the retry becomes an Email; the trace tells the
whole story (fetched, dead-lettered, retried, unwrapped)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ops_helpers import start_stage
from pipeline_testing import produce, read_all, stop, wait_for

from ingest import announce, credentials, store
from ingest.model import Mailbox, OwnerKind, Profile, Protocol
from mailroom.codec import Codec
from mailroom.console.ops import dlq_command, trace_command
from mailroom.console.ops.dlq import read_letters
from mailroom.db import connect
from mailroom.records.raw import RawMail
from mailroom.settings import Settings

pytestmark = pytest.mark.integration
FIXTURE = Path(__file__).resolve().parents[1] / "unwrap" / "fixtures" / "fwd_rfc822_outlook.eml"


def forward_raw(mailbox_id: str) -> RawMail:
    data = FIXTURE.read_bytes()
    return RawMail(mailbox_id=mailbox_id, mailbox_address="crm-fwd@corp.example",
                   owner_kind="forward", folder="INBOX", direction="incoming", protocol="imap",
                   fetched_at=datetime(2026, 11, 1, 8, 0, tzinfo=UTC), size=len(data),
                   uidvalidity=1, uid=42, content=data,
                   server_date=datetime(2026, 11, 1, 7, 59, tzinfo=UTC))


def ns(**kw: object) -> argparse.Namespace:
    base = dict(stage=None, reason=None, verbose=False, id=None, all=False, json=False)
    base.update(kw)
    return argparse.Namespace(**base)


def test_dead_letter_retried_after_the_fix_becomes_an_email_and_trace_shows_it(
    ops_settings: Settings, capsys
) -> None:
    s = ops_settings.replace(stage_isolation="inline", unwrap_authserv_id="mx.crm.example")
    codec = Codec.from_settings(s)
    with connect(s) as conn:
        pid = store.add_profile(conn, Profile("corp", Protocol.IMAP, "imap.corp.example", 993))
        secret = credentials.encrypt(s, "pw")
        fwd = store.add_mailbox(conn, Mailbox("crm-fwd@corp.example", OwnerKind.FORWARD, pid,
                                              "crm-fwd", secret))
        conn.commit()
        announce.publish_now(s, conn)  # what unwrap reads its forwarders from
    raw = forward_raw(str(fwd))
    produce(s, s.topic("raw"), [(raw.identity.encode(), codec.encode_record(raw))])
    env = {"MAILROOM_UNWRAP_AUTHSERV_ID": s.unwrap_authserv_id}

    proc = start_stage(s, "unwrap", **env)
    try:
        wait_for(lambda: read_letters(s, codec))
        # Retried unchanged: fails again, and the new letter counts the retry.
        dlq_command.run(s, ns(verb="retry", all=True, stage="unwrap", reason="not_a_forwarder"))
        letters = wait_for(lambda: len(read_letters(s, codec)) == 2 and read_letters(s, codec))
    finally:
        stop(proc)
    assert [x.letter.retries for x in letters] == [0, 1]
    assert {x.letter.reason_code for x in letters} == {"not_a_forwarder"}

    capsys.readouterr()
    dlq_command.run(s, ns(verb="list"))
    assert "unwrap     not_a_forwarder               2" in capsys.readouterr().out
    dlq_command.run(s, ns(verb="show", id=letters[1].id))
    shown = capsys.readouterr().out
    assert f"source              {s.topic('raw')}/" in shown
    assert f"identity            {raw.identity}" in shown and "retries             1" in shown
    assert "RawMail" in shown and "alice@corp.example" in shown

    # The cause fixed: Alice's rule forwards through the forward mailbox.
    with connect(s) as conn:
        store.add_mailbox(conn, Mailbox("alice@corp.example", OwnerKind.USER, pid, "alice",
                                        credentials.encrypt(s, "pw"), owner_id="u-alice",
                                        via_mailbox_id=fwd))
        conn.commit()
        announce.publish_now(s, conn)
    dlq_command.run(s, ns(verb="retry", id=letters[1].id))
    proc = start_stage(s, "unwrap", **env)
    try:
        [email] = wait_for(lambda: read_all(s, "unwrapped"))
    finally:
        stop(proc)
    assert email.key == b"Quote-1@customer.example"
    assert codec.decode_any(email.value).delivery.forwarded_by_user == "u-alice"

    capsys.readouterr()
    assert trace_command.run(s, ns(name="<Quote-1@Customer.Example>")) == 0
    story = capsys.readouterr().out
    order = [line.split()[2:4] for line in story.splitlines() if line[:2] == "20"]
    assert order[0] == ["ingest", "fetched"] and "crm-fwd@corp.example" in story
    assert order.count(["unwrap", "dead_lettered"]) == 2
    assert order.count(["dlq", "retried"]) == 2
    assert order[-1] == ["unwrap", "unwrapped"]
    assert "forwarded_by=u-alice <alice@corp.example>" in story
    assert "=> last step: unwrap unwrapped" in story

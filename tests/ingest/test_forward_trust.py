"""A forward mailbox whose forwards could not be trusted is not polled (fail closed), and doctor
says FAIL, until the authserv-id of the receiving server is set or the operator switches the
Authentication-Results check off for that one forward mailbox."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from ingest_helpers import add_mailbox, ingestor, message, read_raw, seed_maildir

from ingest import store
from ingest.model import OwnerKind
from mailroom.cli import build_parser
from mailroom.console import doctor
from mailroom.console.stack import dovecot
from mailroom.errors import ConfigError
from mailroom.settings import Settings

pytestmark = pytest.mark.integration


def _cli(settings: Settings, *argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    return int(args.func(settings, args) or 0)


def _trust(settings: Settings, db: psycopg.Connection) -> list[doctor.Finding]:
    return [f for f in doctor._check_mailboxes(settings, db) if f.component == "trust"]


def test_forward_mailbox_without_authserv_id_is_refused_until_opted_out(
    db_settings: Settings, db: psycopg.Connection, topics: Settings
) -> None:
    unset = db_settings.replace(unwrap_authserv_id="")
    name, password = "t" + uuid.uuid4().hex[:10], "pw"
    dovecot.add_user(db_settings, name, password)
    seed_maildir(db_settings, name, [message(1, subject="forwarded")])
    fwd = add_mailbox(db, db_settings, name, password, owner=OwnerKind.FORWARD)

    assert ingestor(unset, db).run_once() == 0  # the mail stays on the server
    refused = store.mailbox(db, fwd.address)
    assert refused.status == "refused" and "MAILROOM_UNWRAP_AUTHSERV_ID" in refused.status_detail
    [finding] = _trust(unset, db)
    assert finding.level == "FAIL" and fwd.address in finding.detail
    assert _trust(db_settings, db) == []  # with the authserv-id set: nothing to say

    # The operator's explicit opt-out for this forward mailbox (its server cannot stamp).
    assert _cli(unset, "mailbox", "auth-results", fwd.address, "off") == 0
    opted_out = store.mailbox(db, fwd.address)
    assert not opted_out.check_auth_results and opted_out.status == "new"
    assert [f.level for f in _trust(unset, db)] == ["WARN"]
    assert ingestor(unset, db).run_once() == 1
    assert [r.mailbox_address for r in read_raw(unset, 1)] == [fwd.address]

    assert _cli(unset, "mailbox", "auth-results", fwd.address, "on") == 0
    assert store.mailbox(db, fwd.address).check_auth_results


def test_the_opt_out_is_for_forward_mailboxes_only(
    db_settings: Settings, db: psycopg.Connection
) -> None:
    user = add_mailbox(db, db_settings, "u" + uuid.uuid4().hex[:10], "pw")
    with pytest.raises(ConfigError, match="only a forward mailbox"):
        _cli(db_settings, "mailbox", "auth-results", user.address, "off")
    assert store.mailbox(db, user.address).check_auth_results

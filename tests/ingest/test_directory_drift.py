"""Doctor's comparison of the mailboxes topic with the database (``ingest.announce.drift``):
unwrap and route know mailboxes from the topic only, so a mailbox saved while the broker was
away, a change never published, or a deleted mailbox's stale record is named — and nothing is
named when they agree, whatever the mailboxes' poll status says. On the real PostgreSQL."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest

from ingest import announce, credentials, store
from ingest.model import Mailbox, OwnerKind, Profile, Protocol
from mailroom.records.mailbox import MailboxRecord
from mailroom.settings import Settings

pytestmark = pytest.mark.integration


def _published(db: psycopg.Connection) -> dict[str, MailboxRecord]:
    """The topic as ``mailroom mailbox publish`` would write it now."""
    profiles = {p.id: p for p in store.profiles(db)}
    return {str(m.id): announce.record(m, profiles[m.profile_id]) for m in store.mailboxes(db)}


def test_drift_names_what_the_stages_would_get_wrong(db: psycopg.Connection,
                                                     db_settings: Settings) -> None:
    pid = store.add_profile(db, Profile("local", Protocol.IMAP, "127.0.0.1", 10993))
    secret = credentials.encrypt(db_settings, "s3cret")
    bob = store.add_mailbox(db, Mailbox("bob@corp.example", OwnerKind.USER, pid, "u-bob", secret))
    store.add_mailbox(db, Mailbox("sales@corp.example", OwnerKind.QUEUE, pid, "sales", secret))
    published = _published(db)
    assert announce.drift(db, published) == []

    # A poll problem changes the status, which nobody downstream decides with.
    store.set_status(db, bob, "retrying", "host unreachable")
    assert announce.drift(db, published) == []

    # Saved while the broker was away: not on the topic; approved without a publish: differs.
    store.add_mailbox(db, Mailbox("carol@corp.example", OwnerKind.USER, pid, "u-carol", secret))
    stale = dict(published)
    stale[str(bob)] = dataclasses.replace(published[str(bob)], approved=False)
    stale["999"] = dataclasses.replace(published[str(bob)], mailbox_id="999",
                                       address="gone@corp.example")
    assert announce.drift(db, stale) == [
        "bob@corp.example: approved differ",
        "carol@corp.example: not on the topic",
        "gone@corp.example (id 999): on the topic, not in the database",
    ]

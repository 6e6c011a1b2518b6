"""Route takes a mailbox's owner from the mailbox directory (the mailboxes topic), and an email
from a mailbox its snapshot does not know, written after the directory was last read, reads the
directory again first: a mailbox added a moment ago gives its mail its owner (on the real broker).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from pipeline_testing import own_topics, produce
from routebuild import config, email, reference

from mailroom.codec import Codec
from mailroom.mailboxes import CLOCK_SKEW_MS, MailboxDirectory
from mailroom.records.mailbox import MailboxRecord
from mailroom.settings import Settings
from mailroom.stage.types import Context, Source
from route import stage

pytestmark = pytest.mark.integration


@pytest.fixture
def directory(isolated_settings: Settings) -> Iterator[MailboxDirectory]:
    with own_topics(isolated_settings, {"mailboxes": 1}):
        found = MailboxDirectory(isolated_settings)
        try:
            yield found
        finally:
            found.close()


def context(written_ms: int) -> Context:
    return Context("route", Source("t.unwrapped", 0, 7, b"k", b"", written_ms))


def test_mail_of_a_mailbox_added_after_the_snapshot_gets_its_owner(
        isolated_settings: Settings, directory: MailboxDirectory) -> None:
    handler = stage.RouteHandler(None, stage.Snapshot(reference(), config(), time.monotonic()))
    handler.directory = directory
    directory.sync()  # the stage read the topic before the mailbox existed
    # Its mail carries no owner of its own: the mailbox's configuration says whose it is.
    mail = email(mailbox="20", owner="queue:", message_id="new-box@customer.example")
    read_before = directory.synced_ms

    record = MailboxRecord(
        mailbox_id="20", address="help@acme.example", owner_kind="queue", profile="corp",
        protocol="imap", host="imap.acme.example", port=993, folders=("INBOX",),
        after_ingest="flag", enabled=True, approved=True, status="ok", owner_id="support")
    produce(isolated_settings, isolated_settings.topic("mailboxes"),
            [(b"20", Codec.from_settings(isolated_settings).encode_record(record))])

    # An email written long before the last read does not ask the broker (a backlog of a
    # deleted mailbox must not cost a request each): no owner, skipped.
    (old,) = handler(mail, context(read_before - CLOCK_SKEW_MS - 1)).traces
    assert old.event == "skipped" and directory.synced_ms == read_before

    (trace,) = handler(mail, context(int(time.time() * 1000))).traces
    assert trace.event == "routed" and trace.detail["accepted_by"] == "queue:support"
    assert handler.snapshot is not None and "20" in handler.snapshot.reference.mailboxes

"""The mailbox directory reads the compacted mailboxes topic on the real broker: everything on
it at the first sync, then what each later sync finds appended (a mailbox added or changed after
the reader started), tombstones as deletions — and a sync always reaches the end the broker had
when it began, so a record acknowledged before it is never missed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pipeline_testing import own_topics, produce

from mailroom.codec import Codec
from mailroom.errors import TransientError
from mailroom.mailboxes import DirectoryUnavailable, MailboxDirectory
from mailroom.records.mailbox import MailboxRecord
from mailroom.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def topic_settings(isolated_settings: Settings) -> Iterator[Settings]:
    with own_topics(isolated_settings, {"mailboxes": 3}):
        yield isolated_settings


def mailbox(mid: str, address: str, **changes: Any) -> MailboxRecord:
    fields: dict[str, Any] = dict(
        mailbox_id=mid, address=address, owner_kind="user", profile="corp", protocol="imap",
        host="imap.corp.example", port=993, folders=("INBOX",), after_ingest="flag",
        enabled=True, approved=True, status="ok", owner_id=f"u-{mid}")
    fields.update(changes)
    return MailboxRecord(**fields)


def publish(settings: Settings, *records: MailboxRecord | tuple[str, None]) -> None:
    codec = Codec.from_settings(settings)
    produce(settings, settings.topic("mailboxes"), [
        (r[0].encode(), None) if isinstance(r, tuple)
        else (r.mailbox_id.encode(), codec.encode_record(r)) for r in records])


def test_sync_reads_everything_then_what_was_appended(topic_settings: Settings) -> None:
    s = topic_settings
    approved_at = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    publish(s, *(mailbox(str(i), f"user{i}@corp.example") for i in range(1, 21)))
    directory = MailboxDirectory(s)
    try:
        first = directory.sync()
        assert sorted(first, key=int) == [str(i) for i in range(1, 21)]
        assert directory.sync() is first  # nothing new: the same mapping, nothing to rebuild

        # Added, changed and deleted after the directory started: the next sync has them all.
        publish(s, mailbox("21", "new@corp.example", approved=False),
                mailbox("3", "user3@corp.example", approved=False, approval_at=approved_at,
                        check_auth_results=False),
                ("7", None))
        now = directory.sync()
        assert now is not first and "7" not in now and len(now) == 20
        assert now["21"].approval == "pending"
        assert (now["3"].approval, now["3"].approval_at, now["3"].check_auth_results) == (
            "rejected", approved_at, False)
    finally:
        directory.close()


def test_a_missing_topic_is_transient_not_an_empty_directory(
        isolated_settings: Settings) -> None:
    directory = MailboxDirectory(isolated_settings)  # no topics created
    try:
        with pytest.raises(DirectoryUnavailable, match="does not exist") as raised:
            directory.sync()
        assert isinstance(raised.value, TransientError)
        assert directory.records() == {}
    finally:
        directory.close()

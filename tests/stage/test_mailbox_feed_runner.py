"""The runner reads the mailbox directory for its workers, on the real broker: a mailbox
published a moment before its record is in the copy the record is decided with (and so is a
change, and a deletion); while the directory cannot be read nothing is decided — the batch is
redone once it can, never decided with an older copy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kafka import TopicPartition
from kafka_helpers import decoded, produce, wait_for
from mailbox_toy import SPEC, mailbox, raw
from pipeline_testing import own_topics, read_all
from runner_thread import RunnerThread

from mailroom import kafka
from mailroom.codec import Codec
from mailroom.mailboxes import MailboxDirectory
from mailroom.records.mailbox import MailboxRecord
from mailroom.settings import Settings
from mailroom.stage.mailboxcopy import MailboxFeed
from mailroom.stage.run import build_runner

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(stage_settings: Settings) -> Settings:
    return stage_settings.replace(stage_isolation="process", stage_workers=2,
                                  stage_budget_ms=20_000)


def publish(s: Settings, *records: MailboxRecord | tuple[str, None]) -> None:
    codec = Codec.from_settings(s)
    produce(s, "mailboxes", [
        (r[0], None) if isinstance(r, tuple)  # type: ignore[misc]
        else (r.mailbox_id, codec.encode_record(r)) for r in records])


def send(s: Settings, uid: int, mailbox_id: str) -> None:
    record = raw(uid, mailbox_id)
    produce(s, "in", [(record.identity, Codec.from_settings(s).encode_record(record))])


def owners(s: Settings) -> dict[int, str]:
    """uid → the owner the handler's copy gave its mailbox, for every output so far."""
    codec = Codec.from_settings(s)
    return {int(e.detail["uid"]): e.detail["owner"] for e in decoded(codec, read_all(s, "out"))}


@pytest.fixture
def running(settings: Settings) -> Iterator[list[RunnerThread]]:
    started: list[RunnerThread] = []
    yield started
    for r in started:
        if r.thread.is_alive():
            r.stop()


def test_a_mailbox_published_just_before_its_record_is_in_the_workers_copy(
        settings: Settings, running: list[RunnerThread]) -> None:
    s = settings
    with own_topics(s, {"mailboxes": 1}):
        publish(s, mailbox("1", "ann"))
        running.append(RunnerThread(build_runner(SPEC, s)))
        send(s, 1, "1")
        wait_for(lambda: 1 in owners(s), timeout=60)
        # Each published after the runner's last read, each right before its record.
        publish(s, mailbox("2", "bob"))
        send(s, 2, "2")
        wait_for(lambda: 2 in owners(s), timeout=60)
        publish(s, mailbox("1", "cid"))
        send(s, 3, "1")
        wait_for(lambda: 3 in owners(s), timeout=60)
        publish(s, ("2", None))
        send(s, 4, "2")
        wait_for(lambda: 4 in owners(s), timeout=60)
        running[0].stop()
    assert owners(s) == {1: "ann", 2: "bob", 3: "cid", 4: "unknown"}
    assert read_all(s, "dlq") == []


def test_while_the_directory_cannot_be_read_the_batch_waits_and_is_redone(
        settings: Settings, running: list[RunnerThread]) -> None:
    s = settings
    with own_topics(s, {"mailboxes": 1}):
        # A record this process cannot read ahead of Ann's mailbox: the directory cannot be
        # read to the end, though her mailbox was published before her mail was written.
        produce(s, "mailboxes", [("0", b"this is not avro")])
        publish(s, mailbox("1", "ann"))
        send(s, 1, "1")
        running.append(RunnerThread(build_runner(SPEC, s)))
        runner = running[0].runner
        wait_for(lambda: "mailbox directory" in runner.status.degraded, timeout=60)
        # Not decided without it (nor with what was read before the unreadable record).
        assert read_all(s, "out") == [] and read_all(s, "dlq") == []
        admin = kafka.make_admin(s)
        try:  # the unreadable record goes (as retention would take it): readable again
            admin.delete_records({TopicPartition(s.topic("mailboxes"), 0): 1})
        finally:
            admin.close()
        wait_for(lambda: read_all(s, "out"), timeout=60)
        wait_for(lambda: not runner.status.degraded)  # cleared once the batch is done
        running[0].stop()
    assert owners(s) == {1: "ann"}
    assert read_all(s, "dlq") == []


def test_the_feed_hands_over_the_whole_directory_once_then_what_changed(
        settings: Settings) -> None:
    s = settings
    with own_topics(s, {"mailboxes": 1}):
        publish(s, mailbox("1", "ann"))
        feed = MailboxFeed(MailboxDirectory(s))
        try:
            first = feed.changes()
            assert first is not None and first.whole and set(first.changed) == {"1"}
            assert feed.changes() is None  # nothing appended: nothing to send
            publish(s, mailbox("2", "bob"))
            later = feed.changes()
            assert later is not None and not later.whole and set(later.changed) == {"2"}
        finally:
            feed.close()

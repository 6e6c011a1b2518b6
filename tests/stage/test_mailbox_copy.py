"""The mailbox directory stays in the runner: the worker processes of the stages that decide
with it (unwrap, route) import no Kafka client, and hold a copy the runner keeps current —
the whole directory before a worker's first record, then what changed, ahead of the records
it matters to (``mailroom.stage.mailboxcopy``)."""

from __future__ import annotations

import os
import signal

import pytest
from mailbox_toy import SPEC, mailbox, raw, reporting

from mailroom.codec import Codec
from mailroom.settings import Settings
from mailroom.stage import Context, Source
from mailroom.stage.budget import InlineExecutor
from mailroom.stage.mailboxcopy import MailboxChanges, MailboxCopy
from mailroom.stage.workers import ProcessExecutor
from route.stage import SPEC as ROUTE
from unwrap.stage import spec as unwrap_spec

# The route handler loads its reference snapshot when it is made: nothing answers here, so it
# logs and goes on (as at a start with PostgreSQL away) instead of waiting for the local stack.
NO_DATABASE = "postgresql://mailroom@127.0.0.1:1/mailroom?connect_timeout=1"


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec.from_settings(Settings())


def contexts(codec: Codec, *mailbox_ids: str) -> list[Context]:
    return [Context("toy", Source("t.in", 0, uid, b"k", codec.encode_record(raw(uid, mid)),
                                  1_700_000_000_000))
            for uid, mid in enumerate(mailbox_ids)]


@pytest.mark.parametrize("stage", [unwrap_spec(), ROUTE], ids=["unwrap", "route"])
def test_a_worker_of_unwrap_or_route_imports_no_kafka_client(stage, codec: Codec) -> None:
    assert stage.reads_mailboxes
    executor = ProcessExecutor(reporting(stage), Settings(database_url=NO_DATABASE,
                                                          stage_budget_ms=20_000), workers=1)
    try:
        executor.send_mailboxes(MailboxChanges.of({"1": mailbox("1", "u-1")}))
        (verdict,) = executor.run_batch(contexts(codec, "1"))
        assert verdict is not None and verdict.kind == "ok", verdict
        assert verdict.traces[0].detail["kafka"] == ""  # not imported, so no consumer either
    finally:
        executor.close()


def owners(verdicts: list) -> list[str]:
    return [v.traces[0].detail["owner"] for v in verdicts]


def test_workers_get_the_whole_copy_first_then_the_changes(codec: Codec) -> None:
    executor = ProcessExecutor(SPEC, Settings(stage_budget_ms=20_000), workers=2)
    try:
        executor.send_mailboxes(MailboxChanges.of({"1": mailbox("1", "ann")}))
        first = executor.run_batch(contexts(codec, "1", "1", "2", "1"))
        assert owners(first) == ["ann", "ann", "unknown", "ann"]
        pids = {v.traces[0].detail["pid"] for v in first}
        assert len(pids) == 2  # both children decided, each with the copy

        # A mailbox changed, one added: every child has both before the next records.
        changes = MailboxChanges.between({"1": mailbox("1", "ann")},
                                         {"1": mailbox("1", "bob"), "2": mailbox("2", "cid")})
        assert set(changes.changed) == {"1", "2"} and not changes.whole
        executor.send_mailboxes(changes)
        assert owners(executor.run_batch(contexts(codec, "1", "2", "1", "2"))) == [
            "bob", "cid", "bob", "cid"]

        # A child lost between batches: the one started for it gets the whole copy first.
        for pid in pids:
            os.kill(int(pid), signal.SIGKILL)
        executor.send_mailboxes(MailboxChanges(removed=frozenset({"1"})))
        again = executor.run_batch(contexts(codec, "1", "2", "2", "1"))
        assert owners(again) == ["unknown", "cid", "cid", "unknown"]
        assert not pids & {v.traces[0].detail["pid"] for v in again}
    finally:
        executor.close()


def test_inline_the_handler_gets_the_copy_in_the_runners_process(codec: Codec) -> None:
    executor = InlineExecutor(SPEC, codec, Settings())
    executor.send_mailboxes(MailboxChanges.of({"1": mailbox("1", "ann")}))
    assert owners(executor.run_batch(contexts(codec, "1", "2"))) == ["ann", "unknown"]


def test_changes_between_two_reads() -> None:
    old = {"1": mailbox("1", "ann"), "2": mailbox("2", "bob")}
    # Reread from the start after a failure: equal records are new objects, yet no change.
    assert MailboxChanges.between(old, {k: mailbox(k, r.owner_id or "") for k, r in
                                        old.items()}).empty
    changes = MailboxChanges.between(old, {"1": old["1"], "3": mailbox("3", "cid")})
    assert (set(changes.changed), changes.removed) == ({"3"}, frozenset({"2"}))
    assert dict(changes.apply(old)) == {"1": old["1"], "3": mailbox("3", "cid")}
    assert set(old) == {"1", "2"}  # the copy it was applied to is left as it was


def test_a_handler_without_use_mailboxes_is_refused_at_once() -> None:
    with pytest.raises(TypeError, match="use_mailboxes"):
        MailboxCopy(lambda record, context: None)

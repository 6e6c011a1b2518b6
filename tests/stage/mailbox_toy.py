"""Toy stages that decide with the mailbox directory, for the runner's tests: which owner the
handler's copy gives a record's mailbox, and which Kafka modules its process has imported.

Module level on purpose: with process isolation the worker imports the handler by reference.
Nothing here imports a Kafka client (the worker must not get one through this module).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from mailroom.records import RawMail, TraceEvent
from mailroom.records.mailbox import MailboxRecord
from mailroom.settings import Settings
from mailroom.stage import Context, Handler, Outcome, Output, StageSpec, Trace

AT = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)


def kafka_modules() -> str:
    """The kafka-python modules this process has imported, comma-separated ('' for none)."""
    return ",".join(sorted(m for m in sys.modules if m == "kafka" or m.startswith("kafka.")))


def raw(uid: int, mailbox_id: str) -> RawMail:
    return RawMail(
        mailbox_id=mailbox_id, mailbox_address=f"box{mailbox_id}@example.com",
        owner_kind="user", folder="INBOX", direction="incoming", protocol="imap",
        uidvalidity=1, uid=uid, fetched_at=AT, size=1, content=b"x",
    )


def mailbox(mid: str, owner: str) -> MailboxRecord:
    return MailboxRecord(
        mailbox_id=mid, address=f"box{mid}@example.com", owner_kind="user", profile="corp",
        protocol="imap", host="imap.example.com", port=993, folders=("INBOX",),
        after_ingest="flag", enabled=True, approved=True, status="ok", owner_id=owner,
        updated_at=AT)


class OwnerReader:
    """Answers each record with the owner its copy of the directory gives the record's mailbox
    ('unknown' when none), its process id and that process's Kafka modules."""

    def __init__(self, settings: Settings) -> None:
        self.mailboxes: Mapping[str, MailboxRecord] = {}

    def use_mailboxes(self, mailboxes: Mapping[str, MailboxRecord]) -> None:
        self.mailboxes = mailboxes

    def __call__(self, record: RawMail, context: Context) -> Outcome:
        found = self.mailboxes.get(record.mailbox_id)
        detail = {"uid": str(record.uid), "owner": (found.owner_id or "") if found else "unknown",
                  "pid": str(os.getpid()), "kafka": kafka_modules()}
        event = TraceEvent(key=record.identity, stage="toy", event="owner", at=AT, detail=detail)
        return Outcome(outputs=[Output("out", record.identity, event)],
                       traces=[Trace(record.identity, "owner", detail)])


SPEC = StageSpec(name="toy", input_topic="in", make_handler=OwnerReader, input_type=RawMail,
                 reads_mailboxes=True)


class ImportReport:
    """A real stage's handler, made as its worker makes it; answers with the Kafka modules its
    process has imported by then."""

    def __init__(self, make: Callable[[Settings], Handler], settings: Settings) -> None:
        self.inner = make(settings)

    def use_mailboxes(self, mailboxes: Mapping[str, MailboxRecord]) -> None:
        self.inner.use_mailboxes(mailboxes)  # type: ignore[attr-defined]

    def __call__(self, record: RawMail, context: Context) -> Outcome:
        return Outcome(traces=[Trace(record.identity, "imports", {"kafka": kafka_modules()})])


def reporting(spec: StageSpec) -> StageSpec:
    """``spec``'s handler in a worker, answering with what its process imported."""
    return StageSpec(name=spec.name, input_topic="in", input_type=RawMail,
                     make_handler=functools.partial(ImportReport, spec.make_handler),
                     reads_mailboxes=spec.reads_mailboxes)

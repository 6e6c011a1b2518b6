"""Typed records of the kernel topics; each maps to a schema in ``schemas/`` by its ``SCHEMA``.

:data:`RECORD_TYPES` lists every record class by schema name, so generic tools (``mailroom dlq
show``, ``mailroom trace``) can turn any topic value into its record. A stage adding a record
type (e.g. ``email.py``) adds it here.
"""

from __future__ import annotations

from mailroom.records.action import Plan, Step
from mailroom.records.base import AvroRecord, utc_millis
from mailroom.records.change import RecordChange
from mailroom.records.deadletter import DeadLetter
from mailroom.records.email import Email
from mailroom.records.mailbox import MailboxRecord
from mailroom.records.raw import RawMail, raw_identity
from mailroom.records.trace import TraceBatch, TraceColumns, TraceEvent

RECORD_TYPES: dict[str, type[AvroRecord]] = {
    cls.SCHEMA: cls for cls in (RawMail, Email, Plan, TraceEvent, TraceBatch, TraceColumns,
                              DeadLetter, MailboxRecord, RecordChange)
}

__all__ = [
    "RECORD_TYPES",
    "AvroRecord",
    "DeadLetter",
    "Email",
    "MailboxRecord",
    "Plan",
    "RawMail",
    "RecordChange",
    "Step",
    "TraceBatch",
    "TraceColumns",
    "TraceEvent",
    "raw_identity",
    "utc_millis",
]

"""``mailroom rules preview FILE``: what a candidate rules file would change, before loading it.

The stored ``unwrapped`` records of a window are planned twice with route's own pure planner —
once with the rules in force, once with the candidate — and the two plans of each email
compared: tracked or skipped, cases and queue items, correlation candidates, contacts. Reading
is the only I/O, and it leaves no trace: a consumer without a group (partitions assigned,
positions sought by timestamp, nothing committed) and a database connection that only reads
the reference snapshot and the current rules.

What the preview can say is what route decides. Persist still evaluates the plans' conditions
against its state (does the correlation resolve, do the case rules allow a new case), so a
planned case or link is a proposal; the report says so.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from kafka import KafkaConsumer, TopicPartition

from mailroom import kafka
from mailroom.codec import Codec
from mailroom.db import connect
from mailroom.errors import ConfigError, MailroomError, TransientError
from mailroom.mailboxes import MailboxDirectory
from mailroom.records.action import Plan
from mailroom.records.email import Email
from mailroom.records.steps import (
    CreateContact,
    CreateOrUpdateCase,
    CreateQueueItem,
    Skip,
    UpsertEmailActivity,
)
from mailroom.settings import Settings
from route import loader, store
from route.config import RouteConfig
from route.mail import norm
from route.plan import plan
from route.reference import ReferenceData

#: Kinds of change, in the order the report lists them.
KINDS = (
    "newly_tracked", "newly_skipped", "tracking_changed",
    "case_created", "case_not_created", "case_changed",
    "queue_item_created", "queue_item_not_created", "queue_item_changed",
    "correlation_changed", "contact_created", "contact_not_created",
)

CAVEAT = ("Correlation candidates and cases are what route would propose; persist still decides "
          "the final link and applies the case rules (reopen window, rate limit) to its state.")

_UNITS = {"m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def parse_since(text: str) -> timedelta:
    """``30m``, ``12h``, ``7d``, ``2w``: how far back the window starts."""
    found = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", text)
    if not found or int(found[1]) == 0:
        raise ConfigError(f"--since {text!r}: expected a positive number with m, h, d or w "
                          "(e.g. 7d)")
    return timedelta(seconds=int(found[1]) * _UNITS[found[2]])


@dataclass(frozen=True)
class Summary:
    """What one plan decided, in the terms the preview compares."""

    tracking: str  # "tracked", "tracked if a reply to tracked mail", "skipped"
    owner: str  # whose filter accepted, "" when skipped
    why: str  # the filter's or skip rule's reason
    case: str  # the rule item that opens it ("queue:ID rule N 'NAME'"), "" for none
    queue_item: str
    queue_rule: str  # the queue rule decision's detail
    candidates: tuple[str, ...]  # "method=value"
    correlation: str  # the correlation decision's detail
    contacts: tuple[str, ...]


def _detail(p: Plan, rule: str) -> str:
    return "; ".join(f"{d.outcome}: {d.detail}" for d in p.decisions if d.rule == rule)


def summarise(p: Plan) -> Summary:
    skips = p.steps_of(Skip)
    conditional = any(s.condition is not None for s in p.steps_of(UpsertEmailActivity))
    if skips:
        tracking, why = "skipped", f"{skips[0].rule}: {skips[0].reason}"
    else:
        tracking = "tracked if a reply to tracked mail" if conditional else "tracked"
        why = _detail(p, "filter")
    cases = p.steps_of(CreateOrUpdateCase)
    items = p.steps_of(CreateQueueItem)
    return Summary(
        tracking=tracking, owner=p.accepting_owner, why=why,
        case=", ".join(c.rule_item or f"queue:{c.queue}" for c in cases),
        queue_item=", ".join(i.rule_item or f"queue:{i.queue}" for i in items),
        queue_rule=_detail(p, "queue_rule") or _detail(p, "case"),
        candidates=tuple(f"{c.method}={c.value}" for c in p.correlation),
        correlation=_detail(p, "correlation"),
        contacts=tuple(c.address for c in p.steps_of(CreateContact)),
    )


@dataclass(frozen=True)
class Change:
    """One difference for one copy of one email: ``rule`` is what decided under the candidate."""

    kind: str
    dedupe_key: str
    mailbox: str
    subject: str
    sender: str
    before: str
    after: str
    rule: str


def _presence(name: str, before: str, after: str) -> str:
    if before == after:
        return ""
    if not before:
        return f"{name}_created"
    return f"{name}_not_created" if not after else f"{name}_changed"


def compare(email: Email, current: Plan, candidate: Plan) -> list[Change]:
    """The differences between the plans of one email under the current and candidate rules."""
    a, b = summarise(current), summarise(candidate)

    def change(kind: str, before: str, after: str, rule: str) -> Change:
        return Change(kind, email.dedupe_key, email.delivery.mailbox_id, email.subject or "",
                      norm(email.from_address), before or "none", after or "none", rule)

    out: list[Change] = []
    if (a.tracking, a.owner) != (b.tracking, b.owner):
        kind = ("newly_tracked" if a.tracking == "skipped" else
                "newly_skipped" if b.tracking == "skipped" else "tracking_changed")
        out.append(change(kind, _owned(a), _owned(b), b.why))
    if kind := _presence("case", a.case, b.case):
        out.append(change(kind, a.case, b.case, b.queue_rule or b.why))
    if kind := _presence("queue_item", a.queue_item, b.queue_item):
        out.append(change(kind, a.queue_item, b.queue_item, b.queue_rule or b.why))
    if a.candidates != b.candidates:
        out.append(change("correlation_changed", ", ".join(a.candidates),
                          ", ".join(b.candidates), b.correlation))
    if a.contacts != b.contacts:
        kind = "contact_created" if len(b.contacts) > len(a.contacts) else "contact_not_created"
        out.append(change(kind, ", ".join(a.contacts), ", ".join(b.contacts),
                          _detail(candidate, "parties.create_contact") or b.why))
    return out


def _owned(s: Summary) -> str:
    return f"{s.tracking} for {s.owner}" if s.owner else s.tracking


@dataclass
class Report:
    """Counts per kind of change over the window, and up to ``limit`` examples of each."""

    since: datetime
    limit: int
    emails: int = 0  # copies planned (one per unwrapped record)
    changed: int = 0  # copies with at least one change
    unreadable: int = 0  # records that do not decode as an Email (route dead-letters them)
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[Change]] = field(default_factory=dict)

    def add(self, changes: list[Change]) -> None:
        self.emails += 1
        self.changed += bool(changes)
        for c in changes:
            self.counts[c.kind] += 1
            shown = self.examples.setdefault(c.kind, [])
            if len(shown) < self.limit:
                shown.append(c)

    def as_data(self) -> dict[str, object]:
        return {
            "since": self.since.isoformat(), "emails": self.emails, "changed": self.changed,
            "unchanged": self.emails - self.changed, "unreadable": self.unreadable,
            "counts": {k: self.counts[k] for k in KINDS if self.counts[k]},
            "examples": {k: [asdict(c) for c in self.examples[k]]
                         for k in KINDS if k in self.examples},
            "note": CAVEAT,
        }

    def lines(self) -> Iterator[str]:
        yield (f"{self.emails} emails since {self.since:%Y-%m-%d %H:%M} UTC: {self.changed} "
               f"would be planned differently, {self.emails - self.changed} the same")
        if self.unreadable:
            yield f"{self.unreadable} records did not decode as emails (not compared)"
        for kind in KINDS:
            if not self.counts[kind]:
                continue
            yield f"{kind.replace('_', ' ')}: {self.counts[kind]}"
            for c in self.examples.get(kind, []):
                yield f"  {c.dedupe_key} (mailbox {c.mailbox}) {c.subject!r} from {c.sender}"
                yield f"    {c.before} -> {c.after}"
                yield f"    decided by: {c.rule}"
        yield f"note: {CAVEAT}"


def preview(
    records: Iterable[tuple[bytes, Email | None]], reference: ReferenceData,
    current: RouteConfig, candidate: RouteConfig, since: datetime, limit: int = 5,
) -> Report:
    """The pure part: plan each (encoded, email) both ways and collect the differences."""
    report = Report(since=since, limit=limit)
    for value, email in records:
        if email is None:
            report.unreadable += 1
            continue
        report.add(compare(email, plan(email, reference, current, value),
                           plan(email, reference, candidate, value)))
    return report


def read_window(
    settings: Settings, since: datetime, codec: Codec, stall_s: float = 30.0
) -> Iterator[tuple[bytes, Email | None]]:
    """Every ``unwrapped`` record from ``since`` up to the end as it was when reading began.

    No group: partitions are assigned and sought here, so no production offset is read,
    created or moved (and nothing is committed)."""
    config = {**kafka.consumer_config(settings, "", client_id="mailroom-rules-preview"),
              "group_id": None}
    consumer = KafkaConsumer(**config)
    try:
        topic = settings.topic("unwrapped")
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise ConfigError(f"topic {topic} does not exist (mailroom topics create)")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        since_ms = int(since.timestamp() * 1000)
        starts = consumer.offsets_for_times({tp: since_ms for tp in tps})
        for tp in tps:
            found = starts.get(tp)
            # No record at or after `since` in this partition: nothing of it is in the window.
            consumer.seek(tp, ends[tp] if found is None else found.offset)
        last_progress = time.monotonic()
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            batch = consumer.poll(timeout_ms=500)
            if batch:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > stall_s:
                raise TransientError(f"reading {topic}: no record for {stall_s:.0f} s before "
                                     "the end of the window")
            for tp, records in batch.items():
                for r in records:
                    # Past the window's end (written while reading), a tombstone, or older
                    # than `since` though written after a newer record (the seek finds the
                    # first record at or after `since`, not only such records).
                    if r.offset >= ends[tp] or r.value is None or r.timestamp < since_ms:
                        continue
                    yield r.value, _decode(codec, r.value)
    finally:
        consumer.close(autocommit=False)


def _decode(codec: Codec, value: bytes) -> Email | None:
    try:
        return codec.decode_record(value, Email)
    except MailroomError:
        return None


def run(settings: Settings, candidate: RouteConfig, since: timedelta, limit: int) -> Report:
    """The preview of ``candidate`` against the rules in force over the last ``since``."""
    directory = MailboxDirectory(settings)
    try:
        mailboxes = directory.sync()
    finally:
        directory.close()
    with connect(settings) as conn:
        reference, current = loader.load(conn, mailboxes), store.load(conn)
        conn.rollback()  # read only: nothing to keep
    start = datetime.now(UTC) - since
    records = read_window(settings, start, Codec.from_settings(settings))
    return preview(records, reference, current, candidate, start, limit)

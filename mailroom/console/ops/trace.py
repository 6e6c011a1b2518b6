"""``mailroom trace``: every stage's step for one message, in time order, and where it stopped.

A message is named by its Message-ID (normalised as unwrap does), its dedupe key or its raw
identity (``mailbox/folder/uidvalidity/uid``). Events are keyed by the dedupe key, or by the raw
identity before unwrap (ingest's and unwrap's dead letters), so one query becomes two rounds:
the events under the name asked for, then those under every raw identity and dedupe key those
events mention (unwrap's ``unwrapped`` event carries both — that is the link).

Two sources, merged and de-duplicated by the event's own place on the trace topic:

- persist's ``message_traces`` table (persist consumes the trace topic into PostgreSQL; it
  outlives the topic's retention);
- the trace topic itself, only the partitions the keys hash to (the producer's partitioner: murmur2;
  a record carries the events of one stage's batch that fall in its partition), for what persist has
  not stored yet or when persist is not running: read from persist's offset of record on each
  partition (``persist_offsets``, committed in the same transaction as the rows, so every event
  before it is in the table), else from the beginning. The dashboard tells a story per email page,
  and a trace topic read from the start is the whole retention of a busy pipeline every time. What
  persist passed over without a row stays unread there too: mail erased since (``mailroom erase``),
  and a range a replay skipped.

The raw record an ``unwrapped`` or unwrap ``dead_lettered`` event points to (its source
coordinates) is read from the raw topic, giving the *fetched* step — which mailbox, folder and
UID, when ingest fetched it and the server's arrival date — even where ingest itself emitted
no trace event.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from kafka import KafkaConsumer, TopicPartition

from mailroom import kafka
from mailroom.codec import Codec
from mailroom.console.ops.groups import stage_group
from mailroom.db import connect
from mailroom.errors import MailroomError
from mailroom.records import TraceEvent
from mailroom.records.raw import RawMail
from mailroom.settings import Settings
from mailroom.tracing import events_of, partition_of
from persist import traces
from persist.offsets import committed_offsets

SCAN_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Step:
    at: datetime
    stage: str
    event: str
    key: str
    detail: dict[str, str] = field(default_factory=dict)
    where: str = ""  # the event's place (trace topic coordinates) or what it was derived from

    def line(self) -> str:
        detail = "; ".join(f"{k}={v}" for k, v in sorted(self.detail.items()))
        return f"{self.at:%Y-%m-%d %H:%M:%S.%f}"[:-3] + f"  {self.stage:<8} {self.event:<14} " \
               f"{self.key}\n{'':25}{detail}"


def candidates(name: str) -> set[str]:
    """The names a message may be keyed by: as given, and as a normalised Message-ID."""
    names = {name.strip()}
    inner = name.strip().strip("<>").strip()
    local, at, domain = inner.rpartition("@")
    if at:
        names.add(f"{local}@{domain.lower()}")
    names.add(inner)
    return {n for n in names if n}


def place(topic: str, partition: int, offset: int, index: int) -> str:
    """An event's place on the trace topic: its record, and its position in the record when
    the record carries several (the same text from the table and from the topic)."""
    return f"{topic}/{partition}@{offset}" + (f"#{index}" if index else "")


class Tracer:
    def __init__(self, settings: Settings, codec: Codec) -> None:
        self.settings = settings
        self.codec = codec
        self._consumer: KafkaConsumer | None = None
        # kafka-python keeps metadata of the assigned topics only: once the raw topic is
        # assigned, asking the trace topic's partitions again fetches every topic's metadata
        # (a shared broker's thousands of partitions, a quarter of a second each time).
        self._partitions: dict[str, list[int]] = {}

    @property
    def consumer(self) -> KafkaConsumer:
        """Made at first use: a story persist's table tells alone connects to no broker."""
        if self._consumer is None:
            config = kafka.consumer_config(self.settings, "unused", client_id="mailroom-trace")
            config["group_id"] = None
            self._consumer = KafkaConsumer(**config)
        return self._consumer

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()

    def partitions(self, topic: str) -> list[int]:
        if topic not in self._partitions:
            found = sorted(self.consumer.partitions_for_topic(topic) or [])
            if not found:
                return []  # not there yet: ask again next time
            self._partitions[topic] = found
        return self._partitions[topic]

    def trace_ends(self) -> dict[TopicPartition, int]:
        """The trace topic's end offset per partition (for :meth:`story`'s ``ends``)."""
        topic = self.settings.topic("trace")
        tps = [TopicPartition(topic, p) for p in self.partitions(topic)]
        return dict(self.consumer.end_offsets(tps)) if tps else {}

    # --- sources ---------------------------------------------------------------------------
    def from_table(self, conn: psycopg.Connection, names: set[str]) -> dict[str, TraceEvent]:
        rows = conn.execute(
            "SELECT topic, topic_partition, topic_offset, key, stage, event, at, message_id, "
            "dedupe_key, raw_identity, source_topic, source_partition, source_offset, detail, "
            "topic_index "
            "FROM message_traces WHERE " + traces.named("n"), {"n": list(names)},
        ).fetchall()
        out = {}
        for r in rows:
            event = TraceEvent(key=r[3], stage=r[4], event=r[5], at=r[6], message_id=r[7],
                               dedupe_key=r[8], raw_identity=r[9], source_topic=r[10],
                               source_partition=r[11], source_offset=r[12], detail=r[13] or {})
            out[place(r[0], r[1], r[2], r[14])] = event
        return out

    def stored_up_to(self, conn: psycopg.Connection) -> dict[TopicPartition, int]:
        """Per trace partition, persist's next offset: the events before it are in the table."""
        topic = self.settings.topic("trace")
        return {tp: offset for tp, offset
                in committed_offsets(conn, stage_group(self.settings, "persist")).items()
                if tp.topic == topic}

    def from_topic(self, names: set[str],
                   start: dict[TopicPartition, int] | None = None,
                   ends: dict[TopicPartition, int] | None = None) -> dict[str, TraceEvent]:
        """The events under ``names`` on the trace topic, each partition read from ``start``
        (where it has one) or from its beginning; with ``ends`` (every trace partition's end
        offset), a partition ``start`` has reached is not read at all."""
        topic = self.settings.topic("trace")
        parts = sorted(tp.partition for tp in ends) if ends else self.partitions(topic)
        if not parts:
            return {}
        tps = sorted({TopicPartition(topic, partition_of(n.encode("utf-8"), parts))
                      for n in names}, key=lambda tp: tp.partition)
        if ends:  # no stored offset: from the beginning, of which there is nothing before 0
            tps = [tp for tp in tps if (start or {}).get(tp, 0) < ends.get(tp, 1)]
            if not tps:
                return {}
        found: dict[str, TraceEvent] = {}
        for r in self._scan(tps, start):
            if r.value is None:
                continue
            try:
                events = events_of(self.codec, r.value)  # a batch holds other keys' events too
            except MailroomError:
                continue
            for index, event in enumerate(events):
                if event.key in names:
                    found[place(r.topic, r.partition, r.offset, index)] = event
        return found

    def _scan(self, tps: list[TopicPartition], start: dict[TopicPartition, int] | None = None,
              stop_after: int | None = None) -> list[Any]:
        self.consumer.assign(tps)
        for tp in tps:
            if start and tp in start:  # below the log start: the consumer resets to earliest
                self.consumer.seek(tp, start[tp])
            else:
                self.consumer.seek_to_beginning(tp)
        ends = self.consumer.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + SCAN_TIMEOUT_S
        while any(self.consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline or (stop_after and len(out) >= stop_after):
                break
            for records in self.consumer.poll(timeout_ms=300).values():
                out.extend(records)
        return out

    def raw_record(self, topic: str, partition: int, offset: int) -> RawMail | None:
        tp = TopicPartition(topic, partition)
        for r in self._scan([tp], {tp: offset}, stop_after=1):
            if r.offset == offset and r.value is not None:
                try:
                    return self.codec.decode_record(r.value, RawMail)
                except MailroomError:
                    return None
        return None

    # --- the story -------------------------------------------------------------------------
    def story(self, name: str, conn: psycopg.Connection | None = None,
              ends: dict[TopicPartition, int] | None = None) -> list[Step]:
        """``conn``: a connection to read persist's tables on (left open), else one of its
        own. ``ends``: every trace partition's end offset as the caller read it a moment ago
        (the dashboard, once for all its viewers): where persist has stored up to it the topic
        is not read — events sent since that reading may be missing, as they would be a
        moment earlier."""
        names = candidates(name)
        events: dict[str, TraceEvent] = {}
        stored: dict[TopicPartition, int] = {}
        own = conn is None
        if own:
            try:
                conn = connect(self.settings)
            except MailroomError:
                conn = None  # no database: the topic alone
        try:
            if conn is not None:
                # Before the table is read: whatever is below these offsets is in it by then.
                stored = self.stored_up_to(conn)
            for _ in range(2):  # the name, then the identities its events link to
                if conn is not None:
                    events.update(self.from_table(conn, names))
                events.update(self.from_topic(names, stored, ends))
                linked = {v for e in events.values()
                          for v in (e.key, e.dedupe_key, e.raw_identity) if v}
                if linked <= names:
                    break
                names |= linked
        finally:
            if own and conn is not None:
                conn.close()
        steps = [Step(e.at, e.stage, e.event, e.key, dict(e.detail), where)
                 for where, e in events.items()]
        # Ingest emits its own "fetched" event; the raw record stands in only where it did not
        # (older records, or a trace event lost with a crash before it was sent).
        traced = {e.key for e in events.values() if e.stage == "ingest"}
        steps.extend(s for s in self.fetched_steps(events.values(), traced)
                     if s.key not in traced)
        return sorted(steps, key=lambda s: (s.at, s.where))

    def fetched_steps(self, events: Any, traced: set[str] | None = None) -> list[Step]:
        """The *fetched* step from the raw record an event points to — not read for a raw
        identity in ``traced`` (ingest's own event tells it: no read of the raw topic)."""
        raw_topic = self.settings.topic("raw")
        seen: set[tuple[int, int]] = set()
        out = []
        for e in events:
            if e.source_topic != raw_topic or e.source_partition is None:
                continue
            if traced and (e.raw_identity or e.key) in traced:
                continue
            at = (e.source_partition, e.source_offset)
            if at in seen:
                continue
            seen.add(at)
            raw = self.raw_record(raw_topic, *at)
            if raw is None:
                continue
            detail = {"mailbox": f"{raw.mailbox_address} ({raw.owner_kind} {raw.mailbox_id})",
                      "folder": raw.folder, "protocol": raw.protocol, "size": str(raw.size),
                      "server_date": raw.server_date.isoformat() if raw.server_date else "-"}
            out.append(Step(raw.fetched_at, "ingest", "fetched", raw.identity, detail,
                            f"{raw_topic}/{at[0]}@{at[1]}"))
        return out


def where_it_stopped(steps: list[Step]) -> str:
    """One line: how far the message got."""
    if not steps:
        return "no trace of this message (wrong name, or older than the trace's retention)"
    last = steps[-1]
    if any(s.stage == "persist" and s.event == "persisted" for s in steps):
        return "persisted"
    if last.event == "dead_lettered":
        return (f"stopped at {last.stage}: dead-lettered {last.detail.get('reason_code', '')}: "
                f"{last.detail.get('reason', '')}")
    return f"last step: {last.stage} {last.event} at {last.at:%Y-%m-%d %H:%M:%S} UTC"

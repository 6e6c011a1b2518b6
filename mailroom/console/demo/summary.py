"""The demo's summary: records by kind, skips and dead letters by reason, correlation methods.

Records and correlation methods are read from PostgreSQL; skips from persist's trace events
(``message_traces``: one per copy whose plan was a skip); dead letters from the dead-letter topic
itself, read from the beginning without joining any group.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from kafka import KafkaConsumer, TopicPartition

from mailroom import kafka
from mailroom.codec import Codec
from mailroom.db import connect
from mailroom.records.deadletter import DeadLetter
from mailroom.settings import Settings

#: Record kind → the query that counts it (what a CRM user would call a record).
RECORD_QUERIES: dict[str, str] = {
    "email activities": "SELECT count(*) FROM email_activities",
    "receiving mailbox links": "SELECT count(*) FROM activity_mailboxes",
    "parties": "SELECT count(*) FROM activity_parties",
    "cases": "SELECT count(*) FROM cases WHERE deleted_at IS NULL",
    "queue items": "SELECT count(*) FROM queue_items WHERE deleted_at IS NULL",
    "contacts created": "SELECT count(*) FROM persist_created_contacts",
    "collisions": "SELECT count(*) FROM email_collisions",
    "delivery failures": "SELECT count(*) FROM activity_delivery_failures",
}

# A route skip's reason names the mailbox (its id differs per run); the filter's verdict after
# the colon is what the reader wants grouped.
_SKIPS = """
SELECT coalesce(detail->>'reason', '')
  FROM message_traces WHERE stage = 'persist' AND event = 'skipped'
"""


@dataclass
class Figures:
    records: dict[str, int] = field(default_factory=dict)
    skips: dict[str, int] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)
    correlation: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def skip_reason(text: str) -> str:
    """'user:u-bob (mailbox 3) tracks replies: not a reply (...)' → 'tracks replies: not a
    reply'; a filter's verdict without the mailbox id and the parenthesised explanation."""
    reason = text.split(";")[0]
    if ")" in reason and " tracks " in reason:
        reason = "tracks " + reason.split(" tracks ", 1)[1]
    return reason.split(" (")[0].strip()


def records(settings: Settings) -> dict[str, int]:
    with connect(settings) as conn:
        return {kind: int(conn.execute(q).fetchone()[0]) for kind, q in RECORD_QUERIES.items()}


def correlation_methods(settings: Settings) -> dict[str, int]:
    with connect(settings) as conn:
        rows = conn.execute(
            "SELECT correlation_method, count(*) FROM email_activities "
            "WHERE correlation_method <> '' GROUP BY 1 ORDER BY 1").fetchall()
    return {str(m): int(n) for m, n in rows}


def skips(settings: Settings) -> dict[str, int]:
    with connect(settings) as conn:
        rows = conn.execute(_SKIPS).fetchall()
    return dict(sorted(Counter(skip_reason(str(r[0])) for r in rows).items()))


def dead_letters(settings: Settings) -> dict[str, int]:
    """``stage: reason_code`` → count, over the whole dead-letter topic."""
    config = kafka.consumer_config(settings, "unused", client_id="mailroom-demo")
    config["group_id"] = None  # reading the topic must not join (or create) any group
    consumer = KafkaConsumer(**config)
    codec = Codec.from_settings(settings)
    found: Counter[str] = Counter()
    try:
        topic = settings.topic("dlq")
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return {}
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    letter = codec.decode_record(record.value, DeadLetter)
                    found[f"{letter.stage}: {letter.reason_code}"] += 1
    finally:
        consumer.close()
    return dict(sorted(found.items()))


def gather(settings: Settings, seconds: float) -> Figures:
    return Figures(records(settings), skips(settings), dead_letters(settings),
                   correlation_methods(settings), round(seconds, 1))


def render(figures: Figures) -> list[str]:
    def section(title: str, counts: dict[str, int]) -> list[str]:
        body = [f"    {name}: {n}" for name, n in counts.items()] or ["    (none)"]
        return [f"  {title}:", *body]

    return [
        *section("records created", figures.records),
        *section("skipped (not tracked)", figures.skips),
        *section("dead letters", figures.dead_letters),
        *section("correlation methods", figures.correlation),
        f"  time taken: {figures.seconds:.1f} s",
    ]

"""The dead-letter topic read again and again by one kept reader (the dashboard's): each read
fetches only the letters that arrived since the last and keeps the others as they were read;
letters the topic no longer holds (past retention) drop out; the one-shot ``read_letters`` of
``mailroom dlq`` reads the same."""

from __future__ import annotations

import time

import pytest
from kafka import TopicPartition

from mailroom import kafka
from mailroom.codec import Codec
from mailroom.console.ops.dlq import LetterReader, read_letters
from mailroom.deadletters import DeadLetterWriter
from mailroom.settings import Settings
from mailroom.stage.types import Source

pytestmark = pytest.mark.integration


def dead_letters(settings: Settings, codec: Codec, *offsets: int) -> None:
    """Records of the raw topic unwrap gave up on, as its runner dead-letters them."""
    producer = kafka.make_producer(settings)
    try:
        writer = DeadLetterWriter(producer, codec, settings)
        for offset in offsets:
            source = Source(settings.topic("raw"), 0, offset, f"mbx/INBOX/1/{offset}".encode(),
                            b"not a raw record", int(time.time() * 1000))
            writer.send_and_wait("unwrap", "mime_unparseable", "no MIME structure", source, 1)
    finally:
        producer.close()


def sources(letters: list) -> list[int]:
    return sorted(x.letter.source_offset for x in letters)


def test_a_kept_reader_fetches_only_new_letters(ops_settings: Settings) -> None:
    codec = Codec.from_settings(ops_settings)
    dead_letters(ops_settings, codec, 1, 2, 3)
    reader = LetterReader(ops_settings, codec)
    try:
        first = reader.read()
        assert sources(first) == [1, 2, 3]
        assert reader.read() == first  # nothing new: the same letters
        dead_letters(ops_settings, codec, 4)
        second = reader.read()
        assert sources(second) == [1, 2, 3, 4]
        # The letters read before are kept, not fetched and decoded again.
        assert {id(x) for x in first} <= {id(x) for x in second}
        assert [(x.partition, x.offset) for x in second] == sorted(
            (x.partition, x.offset) for x in second)  # oldest first per partition

        # Retention removes the oldest letter of a partition: it drops out of the kept ones.
        gone = second[0]
        admin = kafka.make_admin(ops_settings)
        try:
            admin.delete_records({TopicPartition(ops_settings.topic("dlq"), gone.partition):
                                  gone.offset + 1})
        finally:
            admin.close()
        third = reader.read()
        assert (gone.partition, gone.offset) not in {(x.partition, x.offset) for x in third}
        assert len(third) == 3
        assert [x.id for x in read_letters(ops_settings, codec)] == [x.id for x in third]
    finally:
        reader.close()

"""A stage's consumer polls through a broker's death instead of raising out of its loop.

kafka-python 3 may raise a retriable error from ``poll`` when a broker dies (its coordinator
look-up and the metadata refresh after it both sent to the dead node); a stage whose loop met
that exited. Here kafka-python's poll is made to raise once as it does then, on a consumer of
the real broker: the kernel's consumer returns nothing, counts it, and the next poll reads the
records. An error that is not retriable still raises.
"""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from mailroom import kafka
from mailroom.settings import Settings

pytestmark = pytest.mark.integration  # needs the local stack's broker


def _raising_once(error: Exception) -> object:
    plain = KafkaConsumer.poll
    raised: list[Exception] = []

    def poll(self: KafkaConsumer, *args: object, **kwargs: object) -> object:
        if not raised:
            raised.append(error)
            raise error
        return plain(self, *args, **kwargs)

    return poll


def test_a_retriable_poll_failure_is_polled_through(
    isolated_settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = isolated_settings
    topic = settings.topic("poll-outage")
    admin = KafkaAdminClient(**kafka.admin_config(settings))
    admin.create_topics([NewTopic(topic, 1, 1)])
    producer = KafkaProducer(**kafka.producer_config(settings))
    consumer = kafka.make_consumer(settings, settings.topic("poll-outage-group"), [topic])
    try:
        producer.send(topic, value=b"after the outage")
        producer.flush()
        monkeypatch.setattr(KafkaConsumer, "poll", _raising_once(
            KafkaConnectionError("111 ECONNREFUSED")))
        assert consumer.poll(timeout_ms=1000) == {}
        assert consumer.poll_failures == 1
        got: list[bytes] = []
        for _ in range(30):
            for records in consumer.poll(timeout_ms=1000).values():
                got += [r.value for r in records]
            if got:
                break
        assert got == [b"after the outage"]
        assert consumer.poll_failures == 1
    finally:
        monkeypatch.undo()
        consumer.close()
        producer.close()
        admin.delete_topics([topic])
        admin.close()


def test_an_error_that_is_not_retriable_still_raises(
    isolated_settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = isolated_settings
    consumer = kafka.make_consumer(settings, settings.topic("poll-refused-group"))
    try:
        monkeypatch.setattr(KafkaConsumer, "poll", _raising_once(
            TopicAuthorizationFailedError("not allowed")))
        with pytest.raises(TopicAuthorizationFailedError):
            consumer.poll(timeout_ms=100)
        assert consumer.poll_failures == 0
    finally:
        monkeypatch.undo()
        consumer.close()

"""What one hop costs in kafka-python: CPU per record to produce and to consume, by thread.

    .venv/bin/python bench/kafka_client.py [--records 3000] [--size 27000] [--rounds 3]
                                           [--batch-bytes 1048576,4194304]
                                           [--values mail|synthetic] [--compression none,lz4]

On the local broker, in a topic of its own (one partition, removed afterwards): the product's
producer (``mailroom.kafka.producer_config``: acks=all, idempotence, its linger and batch size)
sends records of the pipeline's typical size in slices of a stage's batch and flushes after
each, as a stage does; then the product's consumer (``consumer_config``) reads them all back.
For each, the user and system CPU of every thread of this process per record (the caller's
thread and kafka-python's own IO threads), best of the rounds — CPU, not wall, because the
machine is shared. ``--batch-bytes`` runs the producer once per producer batch size given;
``--compression`` the whole hop once per codec (``kafka_compression``), each in its own topic.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != _HERE)]

from kafka import KafkaProducer  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402

from mailroom import kafka  # noqa: E402
from mailroom import settings as settings_module  # noqa: E402
from mailroom.settings import Settings  # noqa: E402

SLICE = 500  # records per flush: a stage's batch (stage_max_poll_records)
_TICK = os.sysconf("SC_CLK_TCK")

Usage = dict[str, tuple[float, float]]  # thread name -> (user s, system s)


def thread_cpu() -> Usage:
    """User and system CPU seconds of each live thread of this process, by thread name."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: Usage = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended between the listing and the read
        name = _kind(names.get(int(tid), f"thread {tid}"))
        user, system = out.get(name, (0.0, 0.0))
        out[name] = (user + int(fields[11]) / _TICK, system + int(fields[12]) / _TICK)
    return out


def _kind(name: str) -> str:
    """Thread names without the client ids in them, so rounds compare."""
    if name.startswith("kafka-io"):
        return "consumer io thread"
    if "network-thread" in name:
        return "producer network thread"
    return "caller" if name == "MainThread" else name


def per_record(before: Usage, after: Usage, n: int) -> dict[str, tuple[float, float]]:
    """µs of user and system CPU per record, by thread."""
    return {name: ((u - before.get(name, (0, 0))[0]) * 1e6 / n,
                   (s - before.get(name, (0, 0))[1]) * 1e6 / n)
            for name, (u, s) in after.items()}


def produce(settings: Settings, topic: str, values: list[bytes], batch_bytes: int
            ) -> dict[str, tuple[float, float]]:
    config = kafka.producer_config(settings, "bench-produce")
    config["batch_size"] = batch_bytes
    producer = KafkaProducer(**config)
    try:
        producer.send(topic, key=b"warm", value=b"x").get(timeout=30)  # metadata, connection
        before = thread_cpu()
        for start in range(0, len(values), SLICE):
            for i, value in enumerate(values[start:start + SLICE], start):
                producer.send(topic, key=str(i).encode(), value=value)
            producer.flush()
        return per_record(before, thread_cpu(), len(values))
    finally:
        producer.close()


def consume(settings: Settings, topic: str, n: int) -> dict[str, tuple[float, float]]:
    """Reads ``n`` records (after the warm-up record); the clock starts at the first poll
    that returns records, so joining the group is not charged."""
    consumer = kafka.make_consumer(settings, f"bench-consume-{uuid.uuid4().hex[:6]}", [topic])
    try:
        before, counted = None, 0
        deadline = time.monotonic() + 120
        while counted < n and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=1000, max_records=SLICE)
            got = sum(len(records) for records in batch.values())
            if got and before is None:
                before = thread_cpu()  # this first poll's records are not counted
                continue
            counted += got if before is not None else 0
        if before is None or counted == 0:
            raise RuntimeError(f"consumed nothing from {topic}")
        return per_record(before, thread_cpu(), counted)
    finally:
        consumer.close()


def best(rounds: int, run: Callable[[], dict[str, tuple[float, float]]]
         ) -> dict[str, tuple[float, float]]:
    """Each thread's lowest total per record across the rounds."""
    results = [run() for _ in range(rounds)]
    names = {name for r in results for name in r}
    return {name: min((r.get(name, (0.0, 0.0)) for r in results), key=sum) for name in names}


def show(label: str, usage: dict[str, tuple[float, float]]) -> None:
    total = sum(u + s for u, s in usage.values())
    parts = ", ".join(f"{name} {u:.0f}+{s:.0f}" for name, (u, s) in sorted(usage.items())
                      if u + s > 0)
    print(f"  {label:<28} {total:6.0f} µs CPU a record (user+system: {parts})", flush=True)


def mail_values(n: int, size: int) -> list[bytes]:
    """The bytes of ``bench/e2e.py``'s mail (same mix and seed), those a stage would send as a
    record (the few over the claim-check size travel as a reference instead)."""
    from bench import mailgen

    mails = mailgen.MailMaker("realistic", size, "kafka-client").batch(0, n)
    small = [m.data for m in mails if len(m.data) < 1024 * 1024]
    return [small[i % len(small)] for i in range(n)]


def hop(settings: Settings, topic: str, values: list[bytes], sizes: list[int], rounds: int,
        records: int) -> None:
    codec = settings.kafka_compression
    for size in sizes:
        show(f"{codec}: produce, batches of {size // 1024:,} KB",
             best(rounds, lambda size=size: produce(settings, topic, values, size)))
    show(f"{codec}: consume", best(rounds, lambda: consume(settings, topic, records)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=3000)
    p.add_argument("--size", type=int, default=27_000, help="bytes of a record's value")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-bytes", default="",
                   help="producer batch sizes to compare (default: the product's)")
    p.add_argument("--values", choices=("mail", "synthetic"), default="mail",
                   help="the bench's mail (default), or half random, half repeated bytes")
    p.add_argument("--compression", default="",
                   help="codecs to compare, e.g. none,lz4 (default: the product's setting)")
    args = p.parse_args()
    settings = settings_module.load()
    product = kafka.producer_config(settings)["batch_size"]
    sizes = [int(b) for b in args.batch_bytes.split(",") if b] or [product]
    codecs = [c for c in args.compression.split(",") if c] or [settings.kafka_compression]
    if args.values == "mail":
        values = mail_values(args.records, args.size)
    else:
        values = [os.urandom(args.size // 2) + b"y" * (args.size - args.size // 2)
                  for _ in range(min(args.records, 50))]
        values = [values[i % len(values)] for i in range(args.records)]
    mean = sum(map(len, values)) // len(values)
    print(f"kafka-python, {args.records} records ({args.values}, {mean:,} bytes on average), one "
          f"partition, best of {args.rounds}; the product's batch size is {product:,} bytes")
    admin = kafka.make_admin(settings)
    for codec in codecs:
        coded = settings.replace(kafka_compression=codec)
        topic = settings.topic(f"bench-kafka-client-{uuid.uuid4().hex[:6]}")
        admin.create_topics([NewTopic(topic, 1, 1, topic_configs={
            "max.message.bytes": str(settings.max_record_bytes)})])
        try:
            hop(coded, topic, values, sizes, args.rounds, args.records)
        finally:
            admin.delete_topics([topic])
    admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

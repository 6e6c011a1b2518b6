"""Stage processes on the real stack: metrics and health endpoints that move with the work;
two unwrap (and two route) processes share the partitions, and a SIGKILL'd one's partitions
move to the other with nothing lost."""

from __future__ import annotations

import re
import signal
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from ops_helpers import start_stage
from pipeline_testing import free_port, http_get, produce, read_all, stop, wait_for

from mailroom.codec import Codec
from mailroom.records.raw import RawMail
from mailroom.settings import Settings
from unwrap.context import UnwrapContext
from unwrap.unwrap import unwrap

pytestmark = pytest.mark.integration


def metric(port: int, name: str, stage: str = "unwrap") -> float:
    _, text = http_get(port, "/metrics")
    m = re.search(rf'^{name}\{{stage="{stage}"\}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def raws(start: int, n: int) -> list[RawMail]:
    out = []
    for uid in range(start, start + n):
        msg = EmailMessage()
        msg["From"] = "carol@customer.example"
        msg["To"] = "bob@corp.example"
        msg["Subject"] = f"Order {uid}"
        msg["Date"] = "Mon, 10 Mar 2025 09:00:00 +0000"
        msg["Message-ID"] = f"<o{uid}@customer.example>"
        msg.set_content("hi")
        data = msg.as_bytes()
        out.append(RawMail(mailbox_id="7", mailbox_address="bob@corp.example",
                           owner_kind="user", owner_id="u-bob", folder="INBOX",
                           direction="incoming", protocol="imap",
                           fetched_at=datetime(2025, 3, 10, 9, 1, tzinfo=UTC), size=len(data),
                           uidvalidity=1, uid=uid, content=data))
    return out


def send(s: Settings, codec: Codec, items: list[RawMail]) -> None:
    produce(s, s.topic("raw"), [(r.identity.encode(), codec.encode_record(r)) for r in items])


def test_metrics_and_health_move_with_the_work(ops_settings: Settings) -> None:
    port = free_port()
    s = ops_settings.replace(stage_isolation="inline", metrics_port=port)
    codec = Codec.from_settings(s)
    proc = start_stage(s, "unwrap")
    try:
        wait_for(lambda: http_get(port, "/readyz")[0] == 200)  # joined, partitions assigned
        assert http_get(port, "/healthz")[0] == 200
        send(s, codec, raws(1, 5))
        wait_for(lambda: metric(port, "mailroom_records_in_total") == 5)
        assert metric(port, "mailroom_records_out_total") == 5
        assert metric(port, "mailroom_dead_letters_total") == 0
        assert metric(port, "mailroom_processing_seconds_count") == 5
        assert metric(port, "mailroom_end_to_end_seconds_count") == 5
        _, text = http_get(port, "/metrics")
        assert 'mailroom_lag_messages{partition="0",stage="unwrap"' in text
        # Arrival time travels on to the next stage's input.
        [first, *_] = read_all(s, "unwrapped")
        assert dict(first.headers)["mailroom-arrived"].isdigit()
    finally:
        stop(proc)
    assert http_get(port, "/healthz")[0] == 0, "the endpoints end with the process"


def emails(codec: Codec, items: list[RawMail]) -> list[tuple[bytes, bytes]]:
    """Route's input: what the unwrap stage makes of the raws, keyed by dedupe key."""
    out = []
    for raw in items:
        [email] = unwrap(raw, UnwrapContext())
        out.append((email.dedupe_key.encode(), codec.encode_record(email)))
    return out


# stage -> (its input topic, its output topic, how its input is made from raws)
STAGES = {
    "unwrap": ("raw", "unwrapped",
               lambda codec, items: [(r.identity.encode(), codec.encode_record(r))
                                     for r in items]),
    "route": ("unwrapped", "actions", emails),
}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_two_processes_share_and_a_killed_ones_partitions_move(
        ops_settings: Settings, stage: str) -> None:
    source, sink, make_input = STAGES[stage]
    a_port, b_port = free_port(), free_port()
    s = ops_settings.replace(stage_isolation="inline")
    codec = Codec.from_settings(s)

    def feed(start: int, n: int) -> None:
        produce(s, s.topic(source), make_input(codec, raws(start, n)))

    def out_keys() -> set[bytes]:
        return {r.key for r in read_all(s, sink)}

    def records_in(port: int) -> float:
        return metric(port, "mailroom_records_in_total", stage)

    a = start_stage(s.replace(metrics_port=a_port), stage)
    b = start_stage(s.replace(metrics_port=b_port), stage)
    try:
        for port in (a_port, b_port):  # each has a partition (two partitions, two members)
            wait_for(lambda port=port: http_get(port, "/readyz")[0] == 200)
        feed(1, 40)
        wait_for(lambda: len(out_keys()) == 40)
        # A batch is counted after its output is flushed and its offsets committed: the last
        # outputs can be read a moment before their batch is in the metrics.
        wait_for(lambda: records_in(a_port) + records_in(b_port) == 40)
        assert records_in(a_port) > 0
        assert records_in(b_port) > 0, "both do work"

        a.send_signal(signal.SIGKILL)
        a.wait(timeout=10)
        feed(41, 40)
        # After the session timeout the group gives A's partition to B: nothing lost.
        wait_for(lambda: len(out_keys()) == 80, timeout=45)
        expected = {f"o{uid}@customer.example".encode() for uid in range(1, 81)}
        assert out_keys() == expected
        assert records_in(b_port) >= 40
    finally:
        if a.poll() is None:
            a.kill()
        stop(b)

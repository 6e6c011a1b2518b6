"""The pictures: stage history (sampled into PostgreSQL, bounded), arrivals per mailbox with a
silence marker (from the real stats app), dead letters by reason over time, one email's trace as
a timeline — server-rendered SVG, no script, labels escaped."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import webseed
from test_web_http import Client
from webseed import Running

from mailroom.codec import Codec
from mailroom.console.web.charts import Series, line_chart, timeline
from mailroom.console.web.data import history
from mailroom.db import connect
from mailroom.kafka import make_producer
from mailroom.metrics import ARRIVED_HEADER
from mailroom.records.email import Address, Delivery, Email
from mailroom.settings import env_name
from mailroom.stats.read import read_volumes

pytestmark = pytest.mark.integration


def _svg(page: str, chart_id: str) -> str:
    found = re.search(rf'<svg[^>]* id="{re.escape(chart_id)}"[^>]*>(.*?)</svg>', page, re.S)
    assert found, f"no chart {chart_id}"
    return found[1]


def test_stage_history_is_sampled_bounded_and_drawn(dashboard: Running) -> None:
    settings = dashboard.settings
    assert history.sample_once(settings, dashboard.app.stages) >= 4  # ingest and the groups
    with connect(settings) as db:
        stages = {r[0] for r in db.execute("SELECT stage FROM web_stage_samples").fetchall()}
        assert {"ingest", "unwrap", "route", "persist"} <= stages
        # Half an hour of route at 6 messages a minute, a stage whose name needs escaping, and a
        # sample older than the two days kept.
        db.execute("DELETE FROM web_stage_samples WHERE stage = 'route'")
        db.execute("INSERT INTO web_stage_samples SELECT 'route', date_trunc('minute', now()) "
                   "- make_interval(mins => 30 - i), 1000 + 6 * i, 40 - i, 2.5 FROM "
                   "generate_series(0, 29) i")
        db.execute("INSERT INTO web_stage_samples VALUES ('<b>x</b>', now() - interval '5 min',"
                   " 1, 7, 1), ('route', now() - interval '3 days', 0, 0, 0)")
        db.commit()
    history.sample_once(settings, dashboard.app.stages)
    with connect(settings) as db:
        assert db.execute("SELECT count(*) FROM web_stage_samples WHERE minute < now() - "
                          "interval '2 days'").fetchone() == (0,)

    client = Client(dashboard.url)
    client.login(*dashboard.logins["viewer"])
    status, _, page, _ = client.request("GET", "/stages/history")
    assert status == 200 and "<script" not in page and "<b>x</b>" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    for name in ("hour", "day"):
        for chart in ("throughput", "behind", "seconds"):
            assert _svg(page, f"{chart}-{name}")
        rate = _svg(page, f"throughput-{name}")
        assert "no samples yet" not in rate and "<polyline" in rate
    # 6 messages a minute is 0.1/s: the axis tops out at 0.1 and the line sits on it.
    assert ">0.10</text>" in _svg(page, "throughput-hour")
    route = list(dashboard.app.stages.snapshot().report.groups)
    assert route  # the live page still works beside the history
    status, _, page, _ = client.request("GET", "/stages")
    assert status == 200 and 'href="/stages/history"' in page


def _email(n: int, mailbox: str) -> Email:
    return Email(
        dedupe_key=f"a{n}@example.org", content_hash=f"h{n}", subject=f"s{n}",
        direction="incoming", from_address=Address("", "someone@ext.example"),
        delivery=Delivery(mailbox_id=mailbox.split("@")[0], mailbox_address=mailbox,
                          owner_kind="queue", owner_id=None, folder="INBOX",
                          copy_kind="direct"),
    )


def test_arrivals_per_mailbox_mark_silence(dashboard: Running, codec: Codec,
                                           tmp_path: Path) -> None:
    settings = dashboard.settings
    with connect(settings) as db:
        ids = {name: webseed.add_mailbox(db, settings, name, "pw")
               for name in ("quiet", "busy", "never")}
    client = Client(dashboard.url)
    client.login(*dashboard.logins["viewer"])
    # Before the stats app has counted anything, no mailbox is called silent.
    page = client.request("GET", "/mailboxes/arrivals")[2]
    assert 'id="no-arrivals"' in page and "silent" not in page and "no mail" not in page
    dashboard.app.volume.min_interval_s = 0  # the next page load reads the counts afresh
    now_ms = int(time.time() * 1000)
    producer = make_producer(settings)
    for n, (mailbox, ago_ms) in enumerate([("quiet@example.com", 6 * 3600_000),
                                           ("quiet@example.com", 6 * 3600_000 + 60_000),
                                           ("busy@example.com", 60_000)]):
        producer.send(settings.topic("unwrapped"), key=f"a{n}".encode(),
                      value=codec.encode_record(_email(n, mailbox)),
                      headers=[(ARRIVED_HEADER, str(now_ms - ago_ms).encode())])
    producer.flush()
    producer.close()
    env = {**os.environ, **{env_name(k): str(v) for k, v in {
        "topic_prefix": settings.topic_prefix, "topic_partitions": settings.topic_partitions,
        "metrics_port": 0, "state_dir": tmp_path}.items()}}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mailroom"), "run", "stats"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(read_volumes(settings)) < 3:
            assert time.monotonic() < deadline and proc.poll() is None, "stats never counted"
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0

    status, _, page, _ = client.request("GET", "/mailboxes/arrivals")
    assert status == 200
    quiet, busy, never = (_svg(page, f"arrivals-{ids[n]}") for n in ("quiet", "busy", "never"))
    assert 'class="band"' in quiet and re.search(r"silent for [56]\.\d h", quiet), quiet
    assert "<title>messages: 2</title>" in quiet
    assert 'class="band"' not in busy and "<title>messages: 1</title>" in busy
    assert "no mail in the last" in never and 'class="bar' not in never
    _, _, home, _ = client.request("GET", "/")
    assert 'href="/mailboxes/arrivals"' in home


def test_dead_letters_over_time_and_the_trace_timeline(dashboard: Running, codec) -> None:
    webseed.dead_letter(dashboard.settings, codec)
    webseed.dead_letter(dashboard.settings, codec)
    with connect(dashboard.settings) as db:
        seeded = webseed.activity(db, codec)
        # The email's journey as the stages record it (persist stores the trace topic here).
        for n, (stage, event, ms) in enumerate([("ingest", "fetched", 0),
                                                ("unwrap", "unwrapped", 200),
                                                ("route", "routed", 500),
                                                ("persist", "persisted", 900)]):
            db.execute("INSERT INTO message_traces (topic, topic_partition, topic_offset, key, "
                       "stage, event, at, dedupe_key) VALUES ('t', 0, %s, %s, %s, %s, "
                       "now() - interval '1 min' + make_interval(secs => %s), %s)",
                       (n, seeded.dedupe_key, stage, event, ms / 1000, seeded.dedupe_key))
        db.commit()
    client = Client(dashboard.url)
    client.login(*dashboard.logins["viewer"])
    _, _, page, _ = client.request("GET", "/dead-letters")
    for chart in ("dead-letters-hour", "dead-letters-day"):
        assert "<title>unwrap/mime_unparseable: 2</title>" in _svg(page, chart)
    _, _, page, _ = client.request("GET", f"/emails/{seeded.activity_id}")
    chart = _svg(page, "trace-timeline")
    for stage, event in (("ingest", "fetched"), ("unwrap", "unwrapped"), ("route", "routed"),
                         ("persist", "persisted")):
        assert f">{stage}</text>" in chart and f">{event}</text>" in chart
    assert chart.count("<circle") == 4 and "+0.900 s" in chart


def test_charts_escape_their_labels_and_mark_gaps() -> None:
    evil = '"><script>alert(1)</script>'
    line = line_chart(evil, [Series(evil, [(0, 1.0), (60, None), (120, 2.0), (180, 3.0)])],
                      0, 180)
    assert "<script>" not in line and "&lt;script&gt;" in line
    assert line.count("<polyline") == 1 and line.count("<circle") == 1  # the gap splits it
    steps = timeline(evil, [evil], [(0.0, evil, evil), (1.5, evil, "b")])
    assert "<script>" not in steps and "+1.500 s" in steps


def test_long_series_are_reduced_to_what_a_chart_can_show() -> None:
    from mailroom.console.web.charts import MAX_POINTS, reduce

    day = [(float(60 * i), float(i % 10) if i % 100 else None) for i in range(1440)]
    peaks = reduce(day, 0, 86400)
    assert len(peaks) <= MAX_POINTS and max(v for _, v in peaks if v is not None) == 9
    means = reduce(day, 0, 86400, how="mean")
    assert all(v is None or 0 <= v <= 9 for _, v in means)
    assert reduce(day[:50], 0, 86400) == day[:50]

"""bench/web: page times of the dashboard with many people looking at once.

    .venv/bin/python bench/web.py [VIEWERS] [ROUNDS] [--think S]   # default 50, 10, 0 s

Starts ``mailroom web`` as its own process on 127.0.0.1 over a scratch schema and topics of the
local stack, seeded like the demo but bigger: 2,000 email activities with their cases (route's
plans applied by persist's batch apply), each with its raw record and its trace (ingest's,
unwrap's, route's and persist's events, sent by the stages' emitter and stored by the real
``mailroom run persist``, which is then stopped at the topic's end: persist current), 10
mailboxes, 40 dead letters, a day of stage samples. The server logs in to PostgreSQL as the
dashboard's own role (a login user in ``mailroom_web``, made for the run), as a deployment's
does. Then VIEWERS threads — each its own account session and keep-alive connection — load every
page ROUNDS times (the mailboxes, stages, stage history, arrivals, dead letters, emails, one
email with its trace — each viewer its own —, cases, a search), all at once, each pausing after
a page before the next — a pause drawn from S/2 to 3S/2 for ``--think S`` (also before its first
page, so the viewers do not click in step); 0: none, every viewer always has a request in
flight. Prints p50 / p90 / p99 per page and overall, and the server's CPU time per page;
everything it made is dropped afterwards. Loopback only; bounded in requests and time.
``--profile FILE`` records the server with py-spy during the pages; ``--baseline DIR`` then
loads the same pages from another checkout's dashboard (a git worktree of an older commit) in
the same run, against the same data.

The machine is shared and its load moves the figures, so each run measures its own yardstick
first: the same viewers loading the stylesheet (the same server, HTTP stack and threads; no
session check, no database) — and prints the load average at the start and the end. Compare
page times with the yardstick of the same run, not with another run's wall clock.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import logging
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import psutil

_REPO = Path(__file__).resolve().parents[1]
sys.path[0] = str(_REPO)
sys.path.insert(1, str(_REPO / "tests"))

from kafka import KafkaConsumer, TopicPartition  # noqa: E402
from persistbuild import email, make_plan  # noqa: E402
from pipeline_testing import REFERENCE_SQL  # noqa: E402
from psycopg.conninfo import make_conninfo  # noqa: E402

from ingest import credentials, store  # noqa: E402
from ingest.model import Mailbox, OwnerKind, Profile, Protocol, Tls  # noqa: E402
from mailroom import settings as settings_module  # noqa: E402
from mailroom.codec import Codec  # noqa: E402
from mailroom.console.ops.groups import stage_group  # noqa: E402
from mailroom.console.web import accounts  # noqa: E402
from mailroom.db import connect  # noqa: E402
from mailroom.db.migrate import migrate  # noqa: E402
from mailroom.deadletters import DeadLetterWriter  # noqa: E402
from mailroom.kafka import consumer_config, make_admin, make_producer  # noqa: E402
from mailroom.records.raw import RawMail  # noqa: E402
from mailroom.settings import Settings, env_name  # noqa: E402
from mailroom.stage.types import Source  # noqa: E402
from mailroom.topics import ensure_topics, topic_specs  # noqa: E402
from mailroom.tracing import Tracer  # noqa: E402
from persist.batch import Item, apply_batch  # noqa: E402
from persist.offsets import committed_offsets  # noqa: E402

ACTIVITIES = 2_000
MAILBOXES = 10
DEAD_LETTERS = 40
DEADLINE_S = 600  # the whole load phase stops by then whatever is left
PASSWORD = "bench viewer password"


def seed(settings: Settings, codec: Codec) -> int:
    """The demo's kinds of data, more of them; returns one activity id to open."""
    with connect(settings) as conn:
        migrate(conn)
        conn.execute(REFERENCE_SQL)
        pid = store.add_profile(conn, Profile("bench", Protocol.IMAP, "127.0.0.1", 1,
                                              tls=Tls.NONE))
        for i in range(MAILBOXES):
            store.add_mailbox(conn, Mailbox(
                f"box{i}@acme.example", OwnerKind.QUEUE, pid, f"box{i}",
                credentials.encrypt(settings, "not used"), owner_id="support"))
        plans = [make_plan(codec, email(message_id=f"w{i}@customer.example",
                                        subject=f"Issue {i} <printer>", minutes=i,
                                        body="x" * 2000)) for i in range(ACTIVITIES)]
        items = [Item(p, codec.encode_record(p), i) for i, p in enumerate(plans)]
        for i in range(0, len(items), 500):
            with conn.transaction():
                apply_batch(conn, codec, items[i:i + 500])
        conn.execute(
            "INSERT INTO web_stage_samples SELECT s, date_trunc('minute', now()) - "
            "make_interval(mins => 1440 - i), 1000 + 40 * i, (i * 7) % 50, (i * 13) % 40 "
            "FROM generate_series(0, 1439) i, unnest(ARRAY['unwrap', 'route', 'persist']) s")
        passwords = accounts.Passwords()
        for n in range(4):  # a few accounts; viewers share them, each with its own session
            accounts.add(conn, passwords, f"viewer{n}", accounts.Role.viewer, PASSWORD)
        activity = conn.execute("SELECT max(id) FROM email_activities").fetchone()[0]
        conn.commit()
    producer = make_producer(settings)
    try:
        writer = DeadLetterWriter(producer, codec, settings)
        for i in range(DEAD_LETTERS):
            source = Source(settings.topic("raw"), 0, i, f"mbx/INBOX/1/{i}".encode(),
                            b"not a raw record", int(time.time() * 1000))
            writer.send_and_wait("unwrap", "mime_unparseable", "no MIME structure", source, 1)
    finally:
        producer.close()
    return int(activity)


def seed_traces(settings: Settings, codec: Codec, env: dict[str, str]) -> int:
    """Each activity's journey as a running pipeline leaves it: its raw record on the raw
    topic; ingest's, unwrap's, route's and persist's trace events sent by the stages' own
    emitter (a record per trace partition per unit of 100 emails, as a stage's unit sends
    them); then the real ``mailroom run persist`` until it has stored every event
    (``message_traces``) and its offsets reach the trace topic's end — persist current, as
    in the demo. Returns the events sent."""
    with connect(settings) as conn:
        emails = conn.execute("SELECT dedupe_key, message_id FROM email_activities "
                              "ORDER BY id").fetchall()
        boxes = [r[0] for r in conn.execute("SELECT id::text FROM ingest_mailboxes")]
    raw_topic, sent = settings.topic("raw"), 0
    producer = make_producer(settings)
    try:
        tracers = {stage: Tracer(producer, codec, settings, stage)
                   for stage in ("ingest", "unwrap", "route", "persist")}
        for first in range(0, len(emails), 100):
            unit = []
            for n, (dedupe_key, message_id) in enumerate(emails[first:first + 100], first):
                content = (f"Message-ID: <{message_id}>\r\nSubject: Issue {n}\r\n\r\n"
                           + "x" * 2000).encode()
                raw = RawMail(mailbox_id=boxes[n % len(boxes)],
                              mailbox_address=f"box{n % len(boxes)}@acme.example",
                              owner_kind="queue", folder="INBOX", direction="incoming",
                              protocol="imap", fetched_at=datetime.now(UTC),
                              size=len(content), uidvalidity=1, uid=n + 1, content=content,
                              server_date=datetime.now(UTC))
                unit.append((dedupe_key, message_id, raw, producer.send(
                    raw_topic, key=raw.identity.encode(), value=codec.encode_record(raw))))
            for dedupe_key, message_id, raw, future in unit:
                meta = future.get(timeout=30)
                source = Source(raw_topic, meta.partition, meta.offset, raw.identity.encode(),
                                None, meta.timestamp)
                tracers["ingest"].add(raw.identity, "fetched", {
                    "mailbox": raw.mailbox_address, "folder": "INBOX",
                    "direction": "incoming", "size": str(raw.size), "claim_check": "no"},
                    raw_identity=raw.identity)
                tracers["unwrap"].add(dedupe_key, "unwrapped", {
                    "copy_kind": "original", "original": "1 of 1",
                    "mailbox": f"{raw.mailbox_address} (queue {raw.mailbox_id})"},
                    source=source, message_id=message_id, dedupe_key=dedupe_key,
                    raw_identity=raw.identity)
                tracers["route"].add(dedupe_key, "routed", {
                    "00 autoreply": "no: no auto-reply header", "01 filters": "pass",
                    "02 correlation": "new thread", "steps": "activity, parties, case"},
                    message_id=message_id, dedupe_key=dedupe_key)
                tracers["persist"].add(dedupe_key, "persisted", {"activity": "stored"},
                                       dedupe_key=dedupe_key)
                sent += 4
            for tracer in tracers.values():
                tracer.send()
        producer.flush(30)
    finally:
        producer.close()
    persist = subprocess.Popen([str(Path(sys.executable).parent / "mailroom"), "run",
                                "persist"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        ends = end_offsets(settings, settings.topic("trace"))
        deadline = time.monotonic() + 300
        while True:
            with connect(settings) as conn:
                stored = committed_offsets(conn, stage_group(settings, "persist"))
            if all(stored.get(tp, -1) >= end for tp, end in ends.items()):
                break
            if time.monotonic() > deadline or persist.poll() is not None:
                raise SystemExit(f"persist did not store the trace: {stored} of {ends}")
            time.sleep(0.5)
    finally:
        persist.send_signal(signal.SIGTERM)
        persist.wait(60)
    return sent


def end_offsets(settings: Settings, topic: str) -> dict[TopicPartition, int]:
    config = consumer_config(settings, "unused")
    config["group_id"] = None
    consumer = KafkaConsumer(**config)
    try:
        return consumer.end_offsets([TopicPartition(topic, p)
                                     for p in range(settings.topic_partitions)])
    finally:
        consumer.close()


class Viewer(threading.Thread):
    """One person: logs in, then loads every page ``rounds`` times on one connection."""

    def __init__(self, url: str, account: str, pages: list[str], rounds: int,
                 deadline: float, start: threading.Barrier, think_s: float = 0.0,
                 seed: int = 0) -> None:
        super().__init__(daemon=True)
        self.think_s = think_s
        # People neither start nor click in step: each pause is drawn from S/2 … 3S/2 (mean
        # S) and the first page comes after a pause too, so the viewers' requests spread over
        # time as fifty people's would, not fifty at once every S seconds.
        self.random = random.Random(seed)
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.account, self.pages, self.rounds = account, pages, rounds
        self.deadline, self.start_line = deadline, start
        self.times: list[tuple[str, float]] = []
        self.errors: list[str] = []
        self.cookie = ""

    def _get(self, conn: http.client.HTTPConnection, method: str, path: str,
             body: str | None = None, cookie: str = "") -> tuple[int, str, list[str]]:
        headers = {"Cookie": cookie} if cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body, headers)
            resp = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closed the idle keep-alive connection (after 5 s): like a browser,
            # open a new one and ask again.
            conn.close()
            conn.request(method, path, body, headers)
            resp = conn.getresponse()
        return resp.status, resp.read().decode(), resp.headers.get_all("Set-Cookie") or []

    def run(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            _, page, cookies = self._get(conn, "GET", "/login")
            pre = cookies[0].split(";")[0]
            token = re.search(r'name="csrf" value="([^"]+)"', page)[1]  # type: ignore[index]
            form = urlencode({"csrf": token, "account": self.account, "password": PASSWORD})
            status, _, cookies = self._get(conn, "POST", "/login", form, pre)
            assert status == 303, f"login: {status}"
            self.cookie = next(c for c in cookies if c.startswith("mailroom_session=")
                               ).split(";")[0]
        except Exception as exc:  # noqa: BLE001 - reported, not raised, from a thread
            self.errors.append(f"login: {exc}")
            self.start_line.abort()
            return
        try:
            self.start_line.wait()
            if self.think_s:
                time.sleep(self.random.uniform(0, self.think_s))
            for _ in range(self.rounds):
                for path in self.pages:
                    if time.monotonic() > self.deadline:
                        return
                    began = time.perf_counter()
                    status, _, _ = self._get(conn, "GET", path, cookie=self.cookie)
                    self.times.append((path, time.perf_counter() - began))
                    if status != 200:
                        self.errors.append(f"{path}: {status}")
                    if self.think_s:
                        time.sleep(self.random.uniform(self.think_s / 2, self.think_s * 1.5))
        except Exception as exc:  # noqa: BLE001
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cores)"


def cpu_s(pid: int) -> float:
    """The server's CPU time so far (every thread of it: uvicorn's loop, the page threads,
    the Kafka clients' network threads)."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def run_viewers(url: str, pages: Callable[[int], list[str]], viewers: int, rounds: int,
                think_s: float, server_pid: int
                ) -> tuple[list[tuple[str, float]], list[str], float, float]:
    """Viewer ``i`` loads ``pages(i)`` ``rounds`` times; also returns the server's CPU seconds
    meanwhile (the logins before the start excluded) — a figure the machine's load moves
    far less than the page times."""
    deadline = time.monotonic() + DEADLINE_S
    start_line = threading.Barrier(viewers + 1)  # the clock starts when every viewer is in
    threads = [Viewer(url, f"viewer{i % 4}", pages(i), rounds, deadline, start_line, think_s,
                      seed=i) for i in range(viewers)]
    for t in threads:
        t.start()
    with contextlib.suppress(threading.BrokenBarrierError):  # a failed login: reported below
        start_line.wait(DEADLINE_S)
    began, cpu_began = time.perf_counter(), cpu_s(server_pid)
    for t in threads:
        t.join(DEADLINE_S + 120)
    return ([x for t in threads for x in t.times], [e for t in threads for e in t.errors],
            time.perf_counter() - began, cpu_s(server_pid) - cpu_began)


def start_server(env: dict[str, str], checkout: Path | None = None
                 ) -> tuple[subprocess.Popen[str], str]:
    """``mailroom web`` on a free port; ``checkout``: that source tree's code instead of ours
    (its packages first on the path; the same database, topics and role)."""
    command = [str(Path(sys.executable).parent / "mailroom"), "web", "--port", "0"]
    if checkout is not None:
        env = {**env, "PYTHONPATH": str(checkout)}
        command = [sys.executable, "-c", "import sys; from mailroom.cli import main; "
                   "sys.exit(main(sys.argv[1:]))", "web", "--port", "0"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, cwd=checkout)
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.startswith("dashboard: "):
        server.kill()
        raise SystemExit(f"mailroom web did not start: {line!r}")
    return server, line.split()[1]


def main(viewers: int = 50, rounds: int = 10, think_s: float = 0.0,
         profile: Path | None = None, baseline: Path | None = None) -> None:
    logging.disable(logging.WARNING)  # the dead-letter writer logs each letter it seeds
    print(f"start: {load()}")
    base = settings_module.load()
    codec = Codec.from_settings(base)
    name = "bench_web_" + uuid.uuid4().hex[:8]
    login = f"mailroom_web_{name}"
    settings = base.replace(topic_prefix=f"bench.{name}", topic_partitions=2,
                            database_url=f"{base.dsn} options='-csearch_path={name}'")
    with connect(base, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {name}")
    kafka_admin = make_admin(settings)
    specs = topic_specs(settings)
    server: subprocess.Popen[str] | None = None
    try:
        ensure_topics(kafka_admin, specs)
        started = time.perf_counter()
        activity = seed(settings, codec)
        print(f"seeded {ACTIVITIES} activities, {MAILBOXES} mailboxes, {DEAD_LETTERS} dead "
              f"letters, a day of stage samples in {time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        events = seed_traces(settings, codec, {**os.environ, **{
            env_name(k): str(getattr(settings, k))
            for k in ("database_url", "topic_prefix", "topic_partitions")}})
        print(f"{events} trace events of the activities stored by persist in "
              f"{time.perf_counter() - started:.0f} s")
        with connect(base, autocommit=True) as admin:  # the dashboard's role (0065)
            admin.execute(f"CREATE ROLE {login} LOGIN IN ROLE mailroom_web")
        env = {**os.environ, **{env_name(k): str(v) for k, v in {
            "database_url": make_conninfo(settings.dsn, user=login),
            "topic_prefix": settings.topic_prefix,
            "topic_partitions": settings.topic_partitions}.items()}}
        server, url = start_server(env)
        def pages(i: int) -> list[str]:  # each viewer opens an email of its own
            return ["/", "/stages", "/stages/history", "/mailboxes/arrivals", "/dead-letters",
                    "/emails", f"/emails/{activity - i}", "/cases",
                    "/search?" + urlencode({"q": "ann@customer.example"})]

        print(f"{viewers} viewers, {rounds} rounds, think time {think_s:g} s")
        print(f"yardstick: the stylesheet, no database ({load()})")
        yardstick = run_viewers(url, lambda i: ["/static/mailroom.css"] * len(pages(i)),
                                viewers, rounds, think_s, server.pid)
        report(*yardstick, viewers)
        spy = None
        if profile is not None:
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record",
                                    "-p", str(server.pid), "--format", "raw", "-o",
                                    str(profile), "-r", "50"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        print(f"pages ({load()})")
        report(*run_viewers(url, pages, viewers, rounds, think_s, server.pid), viewers)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        if baseline is not None:  # the same pages from another checkout's dashboard, now
            old, old_url = start_server(env, baseline)
            try:
                print(f"pages, the dashboard of {baseline} ({load()})")
                report(*run_viewers(old_url, pages, viewers, rounds, think_s, old.pid),
                       viewers)
            finally:
                old.send_signal(signal.SIGTERM)
                old.wait(60)
        print(f"end: {load()}")
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
        try:
            kafka_admin.delete_topics([s.name for s in specs])
        finally:
            kafka_admin.close()
        with connect(base, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {name} CASCADE")
            admin.execute(f"DROP ROLE IF EXISTS {login}")


def report(times: list[tuple[str, float]], errors: list[str], took: float, cpu: float,
           viewers: int) -> None:
    if not times:
        raise SystemExit(f"no page loaded; errors: {errors[:5]}")
    print(f"{len(times)} page loads by {viewers} concurrent viewers in {took:.1f} s "
          f"({len(times) / took:.1f} pages/s), {len(errors)} errors {errors[:3]}; "
          f"server CPU {cpu:.1f} s, {cpu / len(times) * 1000:.1f} ms a page")
    print(f"{'page':<28} {'n':>5} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
    by_page: dict[str, list[float]] = {}
    for path, seconds in times:
        by_page.setdefault(re.sub(r"\d+$", "ID", path.split("?")[0]), []).append(seconds)
    for path, values in [*sorted(by_page.items()), ("all pages", [s for _, s in times])]:
        print(f"{path:<28} {len(values):>5} {statistics.median(values) * 1000:>8.0f} "
              f"{percentile(values, 0.9) * 1000:>8.0f} {percentile(values, 0.99) * 1000:>8.0f}")
    print(f"p99 page time, {viewers} concurrent viewers: "
          f"{percentile([s for _, s in times], 0.99) * 1000:.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("viewers", type=int, nargs="?", default=50)
    parser.add_argument("rounds", type=int, nargs="?", default=10)
    parser.add_argument("--think", type=float, default=0.0, metavar="S",
                        help="seconds each viewer waits after a page (default 0)")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="py-spy the server during the page phase (raw collapsed stacks)")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="then the same pages from the dashboard of another checkout "
                        "(e.g. a git worktree of an older commit), in the same run")
    args = parser.parse_args()
    main(args.viewers, args.rounds, args.think, args.profile, args.baseline)

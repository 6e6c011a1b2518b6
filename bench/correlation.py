"""Correlation you can trust, measured: a labelled set of threads (``bench/labelled.py``) through
the real unwrap, route and persist stages on the local stack, in several arrival orders.

    .venv/bin/python bench/correlation.py [--scale 3] [--orders in_order,reverse,shuffled]

Each order runs in a world of its own (schema, topics): every message is produced to the raw
topic as ingest would (its bytes, its mailbox — the support queue's inbox, or our agent's Sent
folder for outgoing mail), and ``mailroom run unwrap|route|persist`` do the rest, with smart
matching on. Orders: ``in_order`` (each thread's first emails, then the replies, one
generation at a time, the traps last), ``reverse`` (the traps and the deepest replies first,
the first emails last — every reply before what it refers to), ``shuffled`` (all at once,
in a seeded random order, spread over the partitions).

What persist recorded is then compared with the truth:

* pairwise **precision / recall** over threads: two emails in one recorded thread (following
  the parents) that truly belong together, against all such pairs recorded / all true pairs;
* **per method**: the links each correlation method made and how many are right;
* **per category**: the emails whose recorded thread is exactly their true thread;
* **cross-customer**: recorded pairs whose senders are of two different customers (or
  domains, for unknown senders) — our staff may be in any thread;
* **first emails recorded as a child**: a thread's original made the child of one of its
  replies (a later email of ours that claimed the token first).

Exits 1 unless every order has no cross-customer pair, precision ≥ 0.99, recall ≥ 0.98, no
dead letter and no original recorded as a child.

Ingest is left out on purpose: it fetches bytes and does not correlate. Prints a table per
order, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != _HERE)]

from psycopg import sql  # noqa: E402

from bench import harness  # noqa: E402
from bench.labelled import AGENT, CUSTOMERS, OURS, QUEUE, LabelledSet, Message  # noqa: E402
from ingest import announce, credentials, store  # noqa: E402
from ingest.model import Mailbox, OwnerKind, Profile, Protocol  # noqa: E402
from mailroom import kafka  # noqa: E402
from mailroom import settings as settings_module  # noqa: E402
from mailroom.codec import Codec  # noqa: E402
from mailroom.console.demo.seed import command  # noqa: E402
from mailroom.db import connect  # noqa: E402
from mailroom.records.raw import RawMail  # noqa: E402
from mailroom.settings import Settings  # noqa: E402

ORDERS = ("in_order", "reverse", "shuffled")
PHASE_TIMEOUT_S = 300.0
RULES = """
[track]
default = "all"
[correlation]
smart = true
"""


def reference_sql() -> str:
    rows = ["INSERT INTO users (id, full_name) VALUES ('u-agent', 'Agent');",
            "INSERT INTO queues (id, name) VALUES ('support', 'Support');",
            f"INSERT INTO email_addresses (record_kind, record_id, address, is_primary) VALUES "
            f"('user', 'u-agent', '{AGENT}', true), ('queue', 'support', '{QUEUE}', true);"]
    for c in range(CUSTOMERS):
        rows.append(f"INSERT INTO accounts (id, name, owner_id) VALUES "
                    f"('acc-{c}', 'Customer {c}', 'u-agent');")
        for who in ("contact", "colleague"):
            for n in range(3):
                cid = f"{who}{n}-c{c}"
                rows.append(f"INSERT INTO contacts (id, first_name, last_name, account_id, "
                            f"owner_id) VALUES ('{cid}', '{who}', '{n}', 'acc-{c}', 'u-agent');")
                rows.append(f"INSERT INTO email_addresses (record_kind, record_id, address, "
                            f"is_primary) VALUES ('contact', '{cid}', '{who}{n}@c{c}.example', "
                            f"true);")
    return "\n".join(rows)


class Run:
    """One order's world: its schema and topics, reference records, mailboxes, rules."""

    def __init__(self, base: Settings, order: str) -> None:
        self.order = order
        self.world = harness.world(base, f"corr_{order}")
        self.settings = self.world.settings.replace(topic_partitions=4)
        self.world = harness.World(self.world.name, self.settings, base, self.world.password)
        self.codec = Codec.from_settings(self.settings)
        self.uids: Counter[str] = Counter()

    def create(self) -> None:
        w = self.world
        with connect(w.base, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(w.name)))
        harness.create_storage(w)
        with connect(self.settings) as conn:
            conn.execute(reference_sql())
            pid = store.add_profile(conn, Profile("corr", Protocol.IMAP, f"imap.{OURS}", 993))
            secret = credentials.encrypt(self.settings, "unused")
            self.queue_box = str(store.add_mailbox(conn, Mailbox(
                QUEUE, OwnerKind.QUEUE, pid, "support", secret, owner_id="support")))
            self.agent_box = str(store.add_mailbox(conn, Mailbox(
                AGENT, OwnerKind.USER, pid, "agent", secret, owner_id="u-agent")))
            conn.commit()
            announce.publish_now(self.settings, conn)  # route reads mailboxes from their topic
        with tempfile.TemporaryDirectory(prefix="mailroom-corr-") as tmp:
            rules = Path(tmp) / "rules.toml"
            rules.write_text(RULES)
            command(self.settings, ["rules", "load", str(rules)])

    def issue_token(self, account: str) -> int:
        with connect(self.settings) as conn:
            row = conn.execute("INSERT INTO route_tokens (regarding_kind, regarding_id) "
                               "VALUES ('account', %s) RETURNING number", (account,)).fetchone()
            conn.commit()
        assert row is not None
        return int(row[0])

    def raw(self, m: Message) -> RawMail:
        box, address, kind, owner, folder = (
            (self.agent_box, AGENT, "user", "u-agent", "Sent") if m.outgoing
            else (self.queue_box, QUEUE, "queue", "support", "INBOX"))
        self.uids[folder] += 1
        return RawMail(
            mailbox_id=box, mailbox_address=address, owner_kind=kind,  # type: ignore[arg-type]
            owner_id=owner, folder=folder,
            direction="outgoing" if m.outgoing else "incoming",  # type: ignore[arg-type]
            protocol="imap", fetched_at=datetime.now(UTC), size=len(m.data),
            uidvalidity=1, uid=self.uids[folder], content=m.data,
        )

    def send(self, messages: list[Message]) -> None:
        producer = kafka.make_producer(self.settings)
        try:
            for m in messages:
                r = self.raw(m)
                producer.send(self.settings.topic("raw"), key=r.identity.encode(),
                              value=self.codec.encode_record(r))
            producer.flush()
        finally:
            producer.close()

    def wait_stored(self, poller: harness.Poller, ids: list[str],
                    procs: harness.StageProcesses) -> None:
        deadline = time.monotonic() + PHASE_TIMEOUT_S
        while True:
            [(n,)] = poller.query("SELECT count(*) FROM email_activities WHERE message_id = "
                                  "ANY(%s) AND NOT collision", (ids,))
            if n == len(ids):
                return
            dead = procs.dead()
            if dead or time.monotonic() > deadline:
                raise SystemExit(f"{self.order}: {n} of {len(ids)} stored; dead letters: "
                                 f"{harness.dead_letters(self.settings)}; {dead}")
            time.sleep(0.5)

    def recorded(self, poller: harness.Poller) -> list[tuple[str, str | None, str, str]]:
        return [(r[0], r[1], r[2], r[3]) for r in poller.query(
            "SELECT a.message_id, p.message_id, a.correlation_method, a.correlation_refused "
            "FROM email_activities a LEFT JOIN email_activities p ON p.id = a.parent_id "
            "WHERE NOT a.collision")]


def phases(messages: list[Message], order: str, seed: int) -> list[list[Message]]:
    if order == "shuffled":
        mixed = list(messages)
        random.Random(seed).shuffle(mixed)
        return [mixed]
    depths = sorted({m.depth for m in messages}, reverse=order == "reverse")
    return [[m for m in messages if m.depth == d] for d in depths]


def run_order(base: Settings, order: str, scale: int, seed: int) -> dict[str, Any]:
    run = Run(base, order)
    started = time.monotonic()
    try:
        run.create()
        messages = LabelledSet(run.issue_token, seed=seed, scale=scale).build()
        with tempfile.TemporaryDirectory(prefix="mailroom-corr-logs-") as logs:
            procs = harness.StageProcesses(run.world, Path(logs))
            poller = harness.Poller(run.settings)
            try:
                for stage in ("persist", "route", "unwrap"):
                    procs.start(stage)
                for phase in phases(messages, order, seed):
                    run.send(phase)
                    run.wait_stored(poller, [m.message_id for m in phase], procs)
                recorded = run.recorded(poller)
                dead = harness.dead_letters(run.settings)
            finally:
                procs.stop()
                poller.close()
    finally:
        harness.remove(run.world)
    figures = score(messages, recorded)
    figures.update(order=order, messages=len(messages), dead_letters=dead,
                   seconds=round(time.monotonic() - started, 1))
    return figures


# --- scoring (pure) ----------------------------------------------------------------------------


def party(m: Message) -> str:
    """Whose mail it is for the cross-customer count: the account, an unknown sender's domain,
    or '' for our own staff (who may be in any thread)."""
    if m.customer:
        return m.customer
    sender = _sender(m)
    return "" if sender.endswith("@" + OURS) else sender.rpartition("@")[2]


def _sender(m: Message) -> str:
    for line in m.data.decode("utf-8", "replace").splitlines():
        if line.lower().startswith("from:"):
            return line.split(":", 1)[1].strip().lower()
    return ""


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def score(messages: list[Message], recorded: list[tuple[str, str | None, str, str]]
          ) -> dict[str, Any]:
    truth = {m.message_id: m for m in messages}
    parent = {mid: up for mid, up, _, _ in recorded}

    def root(mid: str) -> str:
        seen = [mid]
        while parent.get(seen[-1]) and parent[seen[-1]] not in seen:
            seen.append(parent[seen[-1]])  # type: ignore[arg-type]
        return seen[-1]

    threads = {mid: root(mid) for mid in parent}
    members: dict[str, set[str]] = defaultdict(set)
    for mid, r in threads.items():
        members[r].add(mid)
    true_members: dict[str, set[str]] = defaultdict(set)
    for m in messages:
        true_members[m.thread].add(m.message_id)

    both = Counter((threads[mid], truth[mid].thread) for mid in threads)
    right = sum(_pairs(n) for n in both.values())
    recorded_pairs = sum(_pairs(len(s)) for s in members.values())
    true_pairs = sum(_pairs(len(s)) for s in true_members.values())
    cross = 0
    for group in members.values():
        parties = [party(truth[mid]) for mid in group]
        cross += sum(1 for i, a in enumerate(parties) for b in parties[i + 1:]
                     if a and b and a != b)

    methods: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for mid, up, method, _ in recorded:
        if up is not None:
            methods[method][0] += 1
            methods[method][1] += truth[mid].thread == truth[up].thread
    categories: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for m in messages:
        categories[m.category][0] += 1
        categories[m.category][1] += members[threads[m.message_id]] == true_members[m.thread]
    # A thread's first email recorded as a child (of its own reply: a token claimed first).
    inverted = sum(1 for mid, up, _, _ in recorded
                   if up is not None and truth[mid].depth == 0 and truth[mid].category == "new"
                   and truth[up].thread == truth[mid].thread)
    return {
        "precision": round(right / recorded_pairs, 4) if recorded_pairs else 1.0,
        "first_emails_as_children": inverted,
        "recall": round(right / true_pairs, 4) if true_pairs else 1.0,
        "pairs": {"recorded": recorded_pairs, "true": true_pairs, "right": right},
        "cross_customer_pairs": cross,
        "refused": sum(1 for *_, refused in recorded if refused),
        "methods": {k: {"links": v[0], "right": v[1],
                        "precision": round(v[1] / v[0], 4) if v[0] else None}
                    for k, v in sorted(methods.items())},
        "categories": {k: {"emails": v[0], "right": v[1]} for k, v in sorted(categories.items())},
    }


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({model or platform.processor() or 'unknown cpu'}), "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")


def report(f: dict[str, Any]) -> None:
    print(f"\n== {f['order']}: {f['messages']} messages, {f['seconds']} s, "
          f"dead letters {f['dead_letters']}")
    print(f"precision {f['precision']:.4f}  recall {f['recall']:.4f}  "
          f"(pairs recorded {f['pairs']['recorded']}, true {f['pairs']['true']}, "
          f"right {f['pairs']['right']})  cross-customer pairs {f['cross_customer_pairs']}  "
          f"refused candidates {f['refused']}  first emails recorded as a child "
          f"{f['first_emails_as_children']}")
    print(f"{'method':<14}{'links':>7}{'right':>7}{'precision':>11}")
    for k, v in f["methods"].items():
        p = "-" if v["precision"] is None else f"{v['precision']:.4f}"
        print(f"{k:<14}{v['links']:>7}{v['right']:>7}{p:>11}")
    print(f"{'category':<20}{'emails':>7}{'in their true thread':>22}")
    for k, v in f["categories"].items():
        print(f"{k:<20}{v['emails']:>7}{v['right']:>22}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=3, help="threads: 24 per unit, and traps")
    parser.add_argument("--orders", default=",".join(ORDERS))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    base = settings_module.load()
    results = []
    for order in args.orders.split(","):
        if order not in ORDERS:
            parser.error(f"unknown order {order!r} (one of {', '.join(ORDERS)})")
        results.append(run_order(base, order, args.scale, args.seed))
        report(results[-1])
    print(json.dumps({"machine": machine(), "scale": args.scale, "seed": args.seed,
                      "runs": results}))
    ok = all(r["cross_customer_pairs"] == 0 and r["precision"] >= 0.99 and r["recall"] >= 0.98
             and not r["dead_letters"] and not r["first_emails_as_children"] for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

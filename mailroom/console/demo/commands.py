"""``mailroom demo``: seed a small company, run every stage, summarise, keep running.

What a user expects from running it twice is a fresh demo each time, so the demo first resets what
it owns — the database schema it connects to, the topics and consumer groups under its topic prefix,
its Dovecot users (see :mod:`mailroom.console.demo.seed`) — then seeds, starts the four stages as
separate ``mailroom run STAGE`` processes (and ``mailroom web`` when it exists), appends phase-1
mail, waits until the early reply is parked, appends phase 2, waits until every lag is zero, and
prints the summary — then, beside it, a preview of a rules change
(:mod:`~mailroom.console.demo.rules_preview`), the forwarding rules deployed and one message sent
through them (:mod:`~mailroom.console.demo.forwarding_rule`), and an erasure. Then it follows
new records until Ctrl-C or SIGTERM, which stops every child with SIGTERM and exits 0.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import time
from pathlib import Path
from types import FrameType

from mailroom.console.demo import (
    erasure,
    forwarding_rule,
    progress,
    rules_preview,
    seed,
    summary,
)
from mailroom.console.demo.pipeline import Children
from mailroom.console.demo.scenario import DOMAIN, EXPECTED, letters_by_key
from mailroom.console.ops.groups import Cluster
from mailroom.db import connect
from mailroom.errors import ConfigError
from mailroom.settings import Settings

WAIT_S = 240.0


class Stop(Exception):  # noqa: N818 - a signal, not an error
    """SIGINT or SIGTERM arrived: stop the children and leave."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="seed demo mailboxes and mail, run the pipeline, summarise")
    p.add_argument("--once", action="store_true",
                   help="exit after the summary instead of following new mail")
    p.add_argument("--summary-json", type=Path, metavar="FILE",
                   help="also write the summary's figures to FILE as JSON")
    p.add_argument("--web-port", type=int, default=18080,
                   help="port of the dashboard the demo starts (0 picks a free one)")
    p.add_argument("--timeout", type=float, default=WAIT_S,
                   help="seconds each phase may take before the demo gives up")
    p.add_argument("--allow-reset", action="store_true",
                   help="reset the demo's schema and topics even on a database or broker that "
                        "is not the local stack's")
    p.set_defaults(func=run)


def _on_local_stack(settings: Settings) -> bool:
    """True when the database and broker are the embedded local stack's, which the demo owns."""
    from psycopg.conninfo import conninfo_to_dict

    db = conninfo_to_dict(settings.dsn)
    local_db = db.get("host") in ("127.0.0.1", "localhost") and str(
        db.get("port", "")) == str(settings.postgres_port)
    local_kafka = settings.bootstrap_servers == [f"127.0.0.1:{settings.kafka_port}"]
    return local_db and local_kafka


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def run(settings: Settings, args: argparse.Namespace) -> int:
    if not (args.allow_reset or _on_local_stack(settings)):
        # The demo drops its schema and topics: never do that to someone's real services.
        raise ConfigError("mailroom demo resets its database schema and topics, and the settings "
                          "point at services other than the local stack; rerun with "
                          "--allow-reset if that is really meant")
    settings = seed.secure(settings)  # the children inherit it (demo.pipeline)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    started = time.monotonic()
    children = Children(settings, settings.state_path / "demo" / settings.topic_prefix)
    summarised = False
    try:
        print("Mailroom demo — resetting the demo's own state "
              f"(schema, topics {settings.topic_prefix}.*, mail users)", flush=True)
        schema = seed.reset(settings)
        print(f"  database schema {schema!r} recreated and migrated; topics recreated")
        print("Seeding Acme through the product's commands:")
        token = seed.seed_company(settings)
        children.start_stages()
        print("Started " + ", ".join(f"{c.name} (pid {c.process.pid})" for c in children.children)
              + f" as separate processes (logs: {children.log_dir})", flush=True)
        play(settings, children, token, args.timeout)
        figures = summary.gather(settings, time.monotonic() - started)
        print("\nSummary", flush=True)
        print("\n".join(summary.render(figures)))
        if args.summary_json:
            args.summary_json.write_text(json.dumps(figures.as_dict(), indent=2))
        _start_web(settings, children, args.web_port)
        summarised = True
        print("\n".join(_mismatches(figures)), flush=True)
        print("\n".join(rules_preview.show(settings)), flush=True)
        print("\n".join(forwarding_rule.show(settings, children, args.timeout)), flush=True)
        print("\n".join(erasure.show(settings)), flush=True)
        if args.once:
            return 0
        _follow(settings, children)
    except Stop as why:
        print(f"\n{why}: stopping every process", flush=True)
    finally:
        codes = children.stop()
        if codes:
            print("stopped: " + ", ".join(f"{n} (exit {c})" for n, c in codes.items()),
                  flush=True)
    return 0 if summarised else 130


def play(settings: Settings, children: Children, token: str, timeout_s: float) -> None:
    letters = letters_by_key()
    reply = letters["renewal-reply"].message_id
    with Cluster(settings) as cluster:
        first = seed.append_phase(settings, 1, token)
        print(f"Appended {first} phase-1 copies to Dovecot; waiting for every stage…", flush=True)
        progress.wait_for("phase 1 to be processed",
                          progress.caught_up(cluster, settings, first), children, timeout_s)
        progress.wait_for("the reply to 'Contract renewal' to be parked", lambda: bool(
            progress.query_one(settings, "SELECT count(*) FROM persist_pending_plans "
                               "WHERE parked AND dedupe_key = %s", (reply,))),
                          children, timeout_s)
        print("  the reply to 'Contract renewal' is parked: its parent is not stored yet")
        second = seed.append_phase(settings, 2, token)
        print(f"Appended {second} phase-2 copies (the parent, a direct copy, a forgery)…",
              flush=True)
        progress.wait_for("phase 2 to be processed",
                          progress.caught_up(cluster, settings, first + second), children,
                          timeout_s)


def _mismatches(figures: summary.Figures) -> list[str]:
    """Where the run differs from what the scenario fixes in advance (normally nothing)."""
    out = []
    for name in ("records", "skips", "dead_letters", "correlation"):
        expected, got = getattr(EXPECTED, name), getattr(figures, name)
        for key, n in expected.items():
            if got.get(key, 0) != n:
                out.append(f"  ! {name} {key}: expected {n}, got {got.get(key, 0)}")
    return out or ["  every figure is what the scenario expects"]


def _start_web(settings: Settings, children: Children, port: int) -> None:
    """Start ``mailroom web`` (when this build has it) and print its address and a login."""
    from mailroom.cli import build_parser

    choices = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    if "web" not in choices:
        print("  dashboard: `mailroom web` is not available in this build yet")
        return
    child = children.start("web", ["web", "--port", str(port)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and child.process.poll() is None:
        text = child.log_path.read_text(errors="replace")
        found = re.search(r"^dashboard: (\S+)", text, re.MULTILINE)
        if found:
            print(f"  dashboard: {found.group(1)} (pid {child.process.pid})")
            from mailroom.console.web.accounts import Passwords, demo_admin

            with connect(settings) as conn:  # an admin account with a fresh password per run
                name, password = demo_admin(conn, Passwords())
                conn.commit()
            print(f"  dashboard login: account {name}, password {password}")
            return
        time.sleep(0.2)
    print(f"  dashboard: did not start; see {child.log_path}")


def _follow(settings: Settings, children: Children) -> None:
    print(f"\nFollowing new records (append mail to e.g. support@{DOMAIN}: IMAP 127.0.0.1:"
          f"{settings.imap_port}, user {seed.login_name(settings, 'support')}, password "
          f"{seed.PASSWORD}). Ctrl-C stops everything.", flush=True)
    with connect(settings, autocommit=True) as conn:
        last = int(conn.execute("SELECT coalesce(max(id), 0) FROM email_activities")
                   .fetchone()[0])
        while True:
            for child in children.dead():
                print(f"  {child.name} exited ({child.process.returncode}); see "
                      f"{child.log_path}", flush=True)
                children.children.remove(child)
            rows = conn.execute(
                "SELECT id, sender, subject, correlation_method, regarding FROM email_activities"
                " WHERE id > %s ORDER BY id", (last,)).fetchall()
            for ident, sender, subject, method, regarding in rows:
                extra = f" [{method} → {regarding}]" if method else ""
                print(f"  new email activity #{ident}: {sender}: {subject!r}{extra}", flush=True)
                last = int(ident)
            time.sleep(1.0)

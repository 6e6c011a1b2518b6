"""The end-to-end acceptance: mailbox → records, every stage its own process — and again with
route deciding inside unwrap's processes (``route_in_unwrap``), which must give the same records.

Real Dovecot, Kafka and PostgreSQL; this module's own topic prefix, consumer groups, database
schema and mail users. The demo scenario's mail goes in (phase 2 — the parent of a parked
reply, the direct copy of a forwarded message, a forgery — only once phase 1 is processed and
the reply is parked), and the *whole* record set is compared with the one written out below.
Then the actions topic is replayed from the earliest offset after lost rows, a user's edit
and a user's deletion.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_records import snapshot
from pipeline_testing import drop_schema_and_topics

from mailroom.codec import Codec
from mailroom.console.demo import seed
from mailroom.console.demo.commands import play
from mailroom.console.demo.pipeline import Children
from mailroom.console.demo.progress import caught_up, raw_count, wait_for
from mailroom.console.demo.scenario import AUTHSERV_ID
from mailroom.console.ops.groups import Cluster
from mailroom.console.ops.trace import Tracer
from mailroom.db import connect
from mailroom.settings import Settings

pytestmark = pytest.mark.integration

ACME = "queue:q-support rule"
KNOWN, ELSE = f"{ACME} 1 'known customers'", f"{ACME} 2 'everyone else'"
FORGERY = "Printer on fire - invoice overdue (collision)"
BOUNCE = "Undelivered Mail Returned to Sender"
QUOTE = "Re: Your quote CRM:0001000"
CONTOSO, FABRIKAM = "account:a-contoso", "account:a-fabrikam"
FWD, DIRECT, MSG = "forwarded_rfc822", "direct", "msg"
SUPPORT, FORWARD, DAVE = "support@acme.example", "crm-forward@acme.example", "dave@acme.example"
BULK, SALES = "Bulk order: 200 chairs", "sales@acme.example"
LARS_ID, FORGER_ID = "mr-90bbe2d7ce3247d8", "mr-59b591f74333f673"

# (subject, copy kind, direction, correlation method, parent, regarding, automated, customer)
ACTIVITIES = {
    ("Automatic reply: Fabrikam pricing", DIRECT, "incoming", "", "", "", True, FABRIKAM),
    ("Contract renewal", FWD, "incoming", "", "", "", False, CONTOSO),
    ("Do you ship to Norway?", DIRECT, "incoming", "", "", "", False, ""),
    ("Invoice 2026-031 question", FWD, "incoming", "", "", "", False, CONTOSO),
    ("Order 4411 arrived damaged", FWD, "incoming", "", "", "", False, CONTOSO),
    ("Printer on fire", DIRECT, "incoming", "", "", "case:Printer on fire", False, CONTOSO),
    (FORGERY, DIRECT, "incoming", "", "", "", False, ""),
    # parked until its parent (phase 2) landed, then threaded as if the parent came first
    ("Re: Contract renewal", FWD, "incoming", "in_reply_to", "Contract renewal", "", False,
     CONTOSO),
    ("Re: Order 4411 arrived damaged", FWD, "incoming", "in_reply_to",
     "Order 4411 arrived damaged", "", False, CONTOSO),
    ("Re: Printer on fire", DIRECT, "outgoing", "in_reply_to", "Printer on fire",
     "case:Printer on fire", False, CONTOSO),
    (QUOTE, DIRECT, "incoming", "token", "", "contact:c-ravi", False, FABRIKAM),
    ("Site visit next week", DIRECT, "incoming", "", "", "case:Site visit next week", False,
     CONTOSO),
    (BOUNCE, DIRECT, "incoming", "in_reply_to", "Re: Printer on fire", "case:Printer on fire",
     True, ""),
    # the copy forwarded as an Outlook .msg landed first; the direct copy supplied the content
    ("Updated delivery address", DIRECT, "incoming", "", "", "", False, CONTOSO),
    # forwarded by the sales queue's rule: the queue's mail
    (BULK, FWD, "incoming", "", "", "", False, FABRIKAM),
}
# (subject, mailbox, accepting owner, copy kind, forwarded by)
MAILBOXES = {
    ("Automatic reply: Fabrikam pricing", SUPPORT, "queue:q-support", DIRECT, ""),
    ("Contract renewal", FORWARD, "user:u-alice", FWD, "u-alice"),
    ("Do you ship to Norway?", SUPPORT, "queue:q-support", DIRECT, ""),
    ("Invoice 2026-031 question", FORWARD, "user:u-carol", FWD, "u-carol"),
    ("Order 4411 arrived damaged", FORWARD, "user:u-alice", FWD, "u-alice"),
    ("Printer on fire", SUPPORT, "queue:q-support", DIRECT, ""),
    (FORGERY, SUPPORT, "queue:q-support", DIRECT, ""),
    ("Re: Contract renewal", FORWARD, "user:u-bob", FWD, "u-bob"),
    ("Re: Order 4411 arrived damaged", FORWARD, "user:u-alice", FWD, "u-alice"),
    ("Re: Printer on fire", SUPPORT, "queue:q-support", DIRECT, ""),
    (QUOTE, DAVE, "user:u-dave", DIRECT, ""),
    ("Site visit next week", DAVE, "user:u-dave", DIRECT, ""),
    ("Site visit next week", "erin@acme.example", "user:u-erin", DIRECT, ""),  # over POP3
    ("Site visit next week", SUPPORT, "queue:q-support", DIRECT, ""),
    (BOUNCE, SUPPORT, "queue:q-support", DIRECT, ""),
    ("Updated delivery address", FORWARD, "user:u-alice", MSG, "u-alice"),
    ("Updated delivery address", DAVE, "user:u-dave", DIRECT, ""),
    (BULK, FORWARD, "queue:q-sales", FWD, "queue:q-sales"),
}
_R = "resolved"
# (subject, role, address, record, outcome)
PARTIES = {
    ("Automatic reply: Fabrikam pricing", "from", "ravi@fabrikam.example", "contact:c-ravi", _R),
    ("Automatic reply: Fabrikam pricing", "to", SUPPORT, "queue:q-support", _R),
    ("Contract renewal", "from", "jane@contoso.example", "contact:c-jane", _R),
    ("Contract renewal", "to", "alice@acme.example", "user:u-alice", _R),
    ("Contract renewal", "to", "bob@acme.example", "user:u-bob", _R),
    ("Do you ship to Norway?", "from", "lars@example.net", f"contact:{LARS_ID}", _R),
    ("Do you ship to Norway?", "to", SUPPORT, "queue:q-support", _R),
    ("Invoice 2026-031 question", "from", "mia@contoso.example", "contact:c-mia", _R),
    ("Invoice 2026-031 question", "to", "carol@acme.example", "user:u-carol", _R),
    ("Order 4411 arrived damaged", "from", "jane@contoso.example", "contact:c-jane", _R),
    ("Order 4411 arrived damaged", "to", "alice@acme.example", "user:u-alice", _R),
    ("Printer on fire", "from", "jane@contoso.example", "contact:c-jane", _R),
    ("Printer on fire", "to", SUPPORT, "queue:q-support", _R),
    (FORGERY, "from", "billing@evil.example", f"contact:{FORGER_ID}", _R),
    (FORGERY, "to", SUPPORT, "queue:q-support", _R),
    ("Re: Contract renewal", "from", "mia@contoso.example", "contact:c-mia", _R),
    ("Re: Contract renewal", "to", "bob@acme.example", "user:u-bob", _R),
    ("Re: Order 4411 arrived damaged", "from", "jane@contoso.example", "contact:c-jane", _R),
    ("Re: Order 4411 arrived damaged", "to", "alice@acme.example", "user:u-alice", _R),
    ("Re: Printer on fire", "from", SUPPORT, "queue:q-support", _R),
    ("Re: Printer on fire", "to", "j.doe@contoso.example", "", "unknown"),
    ("Re: Printer on fire", "to", "jane@contoso.example", "contact:c-jane", _R),
    (QUOTE, "from", "ravi@fabrikam.example", "contact:c-ravi", _R),
    (QUOTE, "to", DAVE, "user:u-dave", _R),
    ("Site visit next week", "cc", SUPPORT, "queue:q-support", _R),
    ("Site visit next week", "from", "mia@contoso.example", "contact:c-mia", _R),
    ("Site visit next week", "to", DAVE, "user:u-dave", _R),
    ("Site visit next week", "to", "erin@acme.example", "user:u-erin", _R),
    (BOUNCE, "from", "mailer-daemon@mx.contoso.example", "", "unknown"),
    (BOUNCE, "to", SUPPORT, "queue:q-support", _R),
    ("Updated delivery address", "from", "jane@contoso.example", "contact:c-jane", _R),
    ("Updated delivery address", "to", "alice@acme.example", "user:u-alice", _R),
    ("Updated delivery address", "to", DAVE, "user:u-dave", _R),
    (BULK, "from", "ravi@fabrikam.example", "contact:c-ravi", _R),
    (BULK, "to", SALES, "queue:q-sales", _R),
}
# (title, customer, queue, status, originating email, deleted)
CASES = {
    ("Printer on fire", CONTOSO, "q-support", "active", "Printer on fire", False),
    ("Site visit next week", CONTOSO, "q-support", "active", "Site visit next week", False),
}
QUEUE_ITEMS = {
    ("q-support", "Automatic reply: Fabrikam pricing", KNOWN),  # automated: no case
    ("q-support", "Do you ship to Norway?", ELSE),
    ("q-support", "Printer on fire", KNOWN),
    ("q-support", FORGERY, ELSE),
    ("q-support", "Site visit next week", KNOWN),
    ("q-support", BOUNCE, ELSE),
    ("q-sales", BULK, "queue:q-sales rule 1 'sales enquiries'"),  # a queue behind the forward
}
EXPECTED = {
    "activities": ACTIVITIES,
    "mailboxes": MAILBOXES,
    "parties": PARTIES,
    "cases": CASES,
    "queue_items": QUEUE_ITEMS,
    "collisions": {("printer.demo@mail.acme.example", FORGERY, "Printer on fire")},
    "delivery_failures": {("Re: Printer on fire", "j.doe@contoso.example", BOUNCE)},
    "created_contacts": {("billing@evil.example", FORGER_ID), ("lars@example.net", LARS_ID)},
}


class Run:
    def __init__(self, settings: Settings, children: Children, copies: int) -> None:
        self.settings, self.children, self.copies = settings, children, copies


@pytest.fixture(scope="module", params=["split", "fused"])
def run(base_settings: Settings, tmp_path_factory: pytest.TempPathFactory,
        request: pytest.FixtureRequest) -> Iterator[Run]:
    name = "e2e" + uuid.uuid4().hex[:8]
    schema = f"test_{name}"
    # The secure setup: forwards are believed only on Acme's receiving server's
    # Authentication-Results, which the scenario's mail carries.
    settings = base_settings.replace(
        topic_prefix=f"test.{name}",
        database_url=f"{base_settings.dsn} options='-c search_path={schema}'",
        unwrap_authserv_id=AUTHSERV_ID,
        route_in_unwrap=request.param == "fused",
    )
    children = Children(settings, Path(tmp_path_factory.mktemp("e2e-logs")))
    try:
        seed.reset(settings)
        token = seed.seed_company(settings, say=lambda _: None)
        children.start_stages()
        play(settings, children, token, timeout_s=150)
        with Cluster(settings) as cluster:
            copies = raw_count(cluster, settings)
        yield Run(settings, children, copies)
    finally:
        codes = children.stop()
        drop_schema_and_topics(base_settings, schema, settings.topic_prefix)
    assert all(code == 0 for code in codes.values()), codes  # SIGTERM: every stage exits 0


def test_scenario_mail_gives_exactly_the_expected_records(run: Run) -> None:
    assert run.copies == 23  # every appended copy was ingested once
    with connect(run.settings) as conn:
        got = snapshot(conn)
    for table, rows in EXPECTED.items():
        assert got[table] == rows, (
            f"{table}: missing {sorted(rows - got[table])}, unexpected "
            f"{sorted(got[table] - rows)}")
    assert not run.children.dead()


def test_msg_copy_landed_first_and_the_direct_copy_supplied_the_content(run: Run) -> None:
    """The .msg-forwarded copy is stored first (phase 1), its direct copy (phase 2)
    then supplies the content; both receiving mailboxes stay linked, each with its path."""
    subject, key = "Updated delivery address", "new-address.demo@mail.acme.example"
    with connect(run.settings) as conn:
        activity = conn.execute("SELECT copy_kind, delivery_path FROM email_activities "
                                "WHERE subject = %s", (subject,)).fetchall()
        links = conn.execute(
            "SELECT m.copy_kind, m.delivery_path FROM activity_mailboxes m JOIN "
            "email_activities a ON a.id = m.activity_id WHERE a.subject = %s "
            "ORDER BY m.copy_kind", (subject,)).fetchall()
    assert activity == [(DIRECT, "")]
    assert links == [(DIRECT, ""), (MSG, "part 2: application/vnd.ms-outlook "
                                         "'Updated delivery address.msg'")]

    def persisted() -> list[tuple[object, ...]]:
        with connect(run.settings) as conn:
            return conn.execute(
                "SELECT detail->>'content' FROM message_traces WHERE stage = 'persist' AND "
                "key = %s AND detail ? 'activity' ORDER BY at, topic_offset", (key,)).fetchall()

    wait_for("persist's trace of both copies", lambda: len(persisted()) >= 2, run.children, 60)
    assert persisted() == [(None,), ("richer copy (direct) supplies the content",)]


def test_trace_of_a_forwarded_message_shows_all_four_stages(run: Run) -> None:
    """`mailroom trace` of a forwarded original tells the whole story."""
    tracer = Tracer(run.settings, Codec.from_settings(run.settings))
    try:
        def story() -> list:
            steps = tracer.story("<order-damaged.demo@mail.acme.example>")
            return steps if {s.stage for s in steps} >= {"ingest", "unwrap", "route",
                                                          "persist"} else []

        wait_for("the trace of every stage", story, run.children, 60)
        steps = story()
    finally:
        tracer.close()
    by_stage = {s.stage: s for s in steps}
    assert [s.stage for s in steps].count("ingest") == 1  # one fetch, told once
    assert by_stage["ingest"].event == "fetched"
    assert by_stage["ingest"].detail["mailbox"].startswith("crm-forward@acme.example")
    unwrapped = by_stage["unwrap"]
    assert unwrapped.event == "unwrapped"
    assert unwrapped.detail["forwarded_by"].startswith("u-alice <alice@acme.example>")
    assert unwrapped.detail["via_forward_mailbox"]
    assert by_stage["route"].event == "routed"
    assert by_stage["persist"].event == "persisted"
    assert [s.stage for s in steps].index("ingest") < [s.stage for s in steps].index("persist")


def test_replay_restores_lost_rows_and_respects_user_edits_and_deletions(run: Run) -> None:
    s = run.settings
    with connect(s, autocommit=True) as conn:
        # (a) lost data: a whole email (with its parties and mailbox rows), a queue item, and
        # the parties of another email
        conn.execute("DELETE FROM email_activities WHERE subject = 'Invoice 2026-031 question'")
        conn.execute("DELETE FROM queue_items WHERE activity_id = (SELECT id FROM "
                     "email_activities WHERE subject = 'Do you ship to Norway?')")
        conn.execute("DELETE FROM activity_parties WHERE activity_id = (SELECT id FROM "
                     "email_activities WHERE subject = %s)", (QUOTE,))
        # (b) a CRM user renames a case; (c) a CRM user deletes one (the tombstone path)
        conn.execute("UPDATE cases SET title = 'Printer fire: technician sent' "
                     "WHERE title = 'Printer on fire'")
        conn.execute("UPDATE cases SET deleted_at = now() WHERE title = 'Site visit next week'")
    persist = next(c for c in run.children.children if c.name == "persist")
    persist.process.terminate()
    assert persist.process.wait(30) == 0
    run.children.children.remove(persist)
    persist.log_file.close()
    out = seed.command(s, ["replay", "persist", "--to-earliest", "--execute"])
    assert "persist" in out
    run.children.start("persist", ["run", "persist"])
    with Cluster(s) as cluster:
        wait_for("the replay", caught_up(cluster, s, run.copies), run.children, 120)
    with connect(s) as conn:
        got = snapshot(conn)
    expected = dict(EXPECTED)
    expected["cases"] = {
        ("Printer fire: technician sent", CONTOSO, "q-support", "active", "Printer on fire",
         False),
        ("Site visit next week", CONTOSO, "q-support", "active", "Site visit next week", True),
    }
    for table, rows in expected.items():
        assert got[table] == rows, (
            f"{table}: missing {sorted(rows - got[table])}, unexpected "
            f"{sorted(got[table] - rows)}")

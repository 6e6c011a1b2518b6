"""`mailroom erase` on the real stack: mail processed by unwrap, route and persist (separate
processes), erased by address and by Message-ID — dry run first, then executed — and then every
stage replayed from the earliest offset: nothing erased comes back, the rest is as before.

Privacy exclusions ride along: a mail from a domain on the receiving user's never-track list is
skipped with its reason, and nothing of its content reaches PostgreSQL.

Claim-check blobs of what is skipped or erased are condemned, and go once their content was not
put for the grace (an hour here): the test moves their clock back, and persist's next batch
deletes them.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import psycopg
import pytest
from ops_helpers import stage_env, start_stage
from pipeline_testing import produce, stop, wait_for

from mailroom.codec import Codec
from mailroom.console.ops import replay_command
from mailroom.console.ops.groups import Cluster
from mailroom.db import connect
from mailroom.records.raw import RawMail
from mailroom.settings import Settings

pytestmark = pytest.mark.integration

CAROL = "carol@customer.example"
GRACE = {"MAILROOM_CONDEMNED_BLOB_GRACE_HOURS": "1"}  # every process, the CLI's included
BIG = os.urandom(300 * 1024)  # over unwrap's blob threshold: travels by claim check
PRIVATE_SCAN = os.urandom(300 * 1024)


def raw(uid: int, sender: str, subject: str, cc: str = "", attachment: bytes = b"",
        sensitivity: str = "") -> RawMail:
    msg = EmailMessage()
    if sensitivity:
        msg["Sensitivity"] = sensitivity
    msg["From"] = sender
    msg["To"] = "bob@corp.example"
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = "Mon, 10 Mar 2025 09:00:00 +0000"
    msg["Message-ID"] = f"<order-{uid}@customer.example>"
    msg.set_content(f"Body of {subject}.")
    if attachment:
        msg.add_attachment(attachment, maintype="application", subtype="octet-stream",
                           filename="scan.bin")
    data = msg.as_bytes()
    return RawMail(mailbox_id="7", mailbox_address="bob@corp.example", owner_kind="user",
                   owner_id="u-bob", folder="INBOX", direction="incoming", protocol="imap",
                   fetched_at=datetime(2025, 3, 10, 9, 1, tzinfo=UTC), size=len(data),
                   uidvalidity=1, uid=uid, content=data)


MAILS = [
    raw(1, f"Carol <{CAROL}>", "Carol's order", attachment=BIG),  # erased by address
    raw(2, "dave@other.example", "Dave copies Carol", cc=CAROL),  # erased by address (Cc)
    raw(3, "dave@other.example", "Dave's first"),  # erased by Message-ID
    raw(4, "dave@other.example", "Dave's second"),  # kept
    raw(5, "eve@private.example", "Secret plan"),  # never-track list of u-bob
    raw(6, "dave@other.example", "Medical leave", attachment=PRIVATE_SCAN,
        sensitivity="Private"),  # skipped: Sensitivity
]
LATER = raw(7, "dave@other.example", "Dave's third")  # a batch after the grace


def mailroom(s: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([str(Path(sys.executable).with_name("mailroom")), *args],
                         env=stage_env(s, **GRACE), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out


def scalar(db: psycopg.Connection, sql: str, *params: object) -> object:
    row = db.execute(sql, params).fetchone()
    db.commit()
    return row[0] if row else None


def condemned(db: psycopg.Connection, sha256: str) -> bool:
    """The blob is still there, condemned."""
    return scalar(db, "SELECT count(*) FROM blobs WHERE sha256 = %s AND condemned_at IS NOT "
                  "NULL", sha256) == 1


def activities(db: psycopg.Connection) -> list[str]:
    rows = db.execute("SELECT message_id FROM email_activities ORDER BY message_id").fetchall()
    db.commit()
    return [r[0] for r in rows]


def traces_mentioning(db: psycopg.Connection, *needles: str) -> int:
    return int(scalar(db, "SELECT count(*) FROM message_traces WHERE "
                      + " OR ".join(["(coalesce(key, '') || coalesce(message_id, '') || "
                                     "coalesce(dedupe_key, '') || detail::text) ILIKE %s"]
                                    * len(needles)),
                      *[f"%{n}%" for n in needles]) or 0)


def run_pipeline(s: Settings, db: psycopg.Connection, until: object) -> None:
    procs = [start_stage(s, stage, **GRACE) for stage in ("unwrap", "route", "persist")]
    try:
        wait_for(until, timeout=120)
        with Cluster(s) as cluster:
            for stage in ("unwrap", "route", "persist"):
                assert replay_command.follow(cluster, s, stage, timeout=120) == 0
    finally:
        for proc in procs:
            stop(proc)


def test_erased_mail_never_comes_back_after_replaying_every_stage(ops_settings: Settings,
                                                                   capsys) -> None:
    s = ops_settings.replace(stage_isolation="inline")
    codec = Codec.from_settings(s)
    with connect(s) as db:
        db.execute("INSERT INTO users (id, full_name) VALUES ('u-bob', 'Bob B')")
        db.execute("UPDATE route_settings SET default_filter = 'all'")
        db.commit()
        listed = mailroom(s, "privacy", "exclude", "--user", "u-bob", "--domain",
                          "private.example", "--note", "his partner's company").stdout
        assert "private.example" in listed and "1 entry on the list" in listed

        produce(s, s.topic("raw"), [(r.identity.encode(), codec.encode_record(r))
                                    for r in MAILS])
        persisted = ("SELECT count(*) FROM message_traces WHERE stage = 'persist' "
                     "AND event IN ('persisted', 'skipped')")
        run_pipeline(s, db, lambda: scalar(db, persisted) == len(MAILS))
        assert activities(db) == [f"order-{i}@customer.example" for i in (1, 2, 3, 4)]
        # The excluded mail: skipped with its reason and ids, its content nowhere.
        reason = scalar(db, "SELECT detail->>'reason' FROM message_traces WHERE stage = "
                        "'persist' AND key = 'order-5@customer.example'")
        assert "never-track list of user:u-bob" in str(reason)
        assert traces_mentioning(db, "private.example", "Secret plan", "eve@") == 0
        sensitive = scalar(db, "SELECT detail->>'reason' FROM message_traces WHERE stage = "
                           "'persist' AND key = 'order-6@customer.example'")
        assert "Private" in str(sensitive)
        assert traces_mentioning(db, "Medical leave") == 0  # attachment names: docs/privacy.md
        private_blob = hashlib.sha256(PRIVATE_SCAN).hexdigest()
        assert condemned(db, private_blob), "kept for the grace: mail in flight may carry it"
        blob = scalar(db, "SELECT blob_ref FROM attachment_contents WHERE blob_ref IS NOT NULL")
        assert blob and scalar(db, "SELECT count(*) FROM blobs WHERE sha256 = %s", blob) == 1
        assert traces_mentioning(db, CAROL) > 0
        before_traces = scalar(db, "SELECT count(*) FROM message_traces")

        # Dry run: what it would remove, nothing removed.
        dry = json.loads(mailroom(s, "erase", "--address", CAROL.upper(), "--json").stdout)
        assert dry["counts"]["email_activities"] == 2
        assert dry["counts"]["attachment_contents"] == 1 and dry["blob_refs"] == [blob]
        assert CAROL not in json.dumps(dry)
        assert len(activities(db)) == 4 and scalar(db, "SELECT count(*) FROM erasures") == 0

        out = mailroom(s, "erase", "--address", CAROL, "--execute", "--by", "dpo").stdout
        assert "erased: audit record" in out
        assert "blobs deleted now: 0 of 1; persist deletes the rest by" in out
        mailroom(s, "erase", "--message-id", "<order-3@Customer.Example>", "--execute")
        assert activities(db) == ["order-4@customer.example"]
        assert traces_mentioning(db, CAROL, "order-1@", "order-2@", "order-3@") == 0
        assert condemned(db, blob), "unwrap put it a moment ago"
        assert scalar(db, "SELECT count(*) FROM activity_parties WHERE address = %s", CAROL) == 0
        audit = db.execute("SELECT selector_kind, requested_by, counts, activity_ids "
                           "FROM erasures ORDER BY id").fetchall()
        db.commit()
        assert [(a[0], a[1]) for a in audit][0] == ("address", "dpo")
        assert audit[0][2]["email_activities"] == 2 and len(audit[0][3]) == 2
        assert audit[1][0] == "message_id" and audit[1][2]["email_activities"] == 1
        assert CAROL not in json.dumps([a[2] for a in audit])
        history = mailroom(s, "erase", "--history").stdout
        assert "address" in history and "dpo" in history

        # Replay every stage from the earliest offset: raw still holds all the mail.
        for stage in ("unwrap", "route", "persist"):
            mailroom(s, "replay", stage, "--to-earliest", "--execute")
        replayed = ("SELECT count(*) FROM message_traces WHERE stage = 'persist' AND event = "
                    "'persisted' AND key = 'order-4@customer.example'")
        # Waits for the replay to reach persist, then every stage drains (run_pipeline). The
        # count passes 2 on the way, not at a point one can wait for: the events of one batch
        # are stored together.
        run_pipeline(s, db, lambda: scalar(db, replayed) >= 2)
        # Three stages replayed at once: persist reads its old plan again, and route makes two
        # new ones (its old Email read again, and the one unwrap emits again), each persisted.
        assert scalar(db, replayed) == 1 + 3, "order-4 persisted once per plan of the replay"

        assert activities(db) == ["order-4@customer.example"], "nothing erased came back"
        assert traces_mentioning(db, CAROL, "order-1@", "order-2@", "order-3@") == 0
        assert traces_mentioning(db, "private.example", "Secret plan", "eve@") == 0
        assert scalar(db, "SELECT count(*) FROM activity_parties WHERE address = %s", CAROL) == 0
        assert scalar(db, "SELECT count(*) FROM attachment_contents") == 0
        assert condemned(db, blob) and condemned(db, private_blob), "unwrap stored them again"
        assert scalar(db, "SELECT count(*) FROM message_traces") > before_traces, "replayed"

        # The grace runs out (their clock moved back past it); persist's next batch, of any
        # mail, deletes them with their chunks.
        db.execute("UPDATE blobs SET last_referenced_at = last_referenced_at - interval "
                   "'2 hours' WHERE sha256 = ANY(%s)", ([blob, private_blob],))
        db.commit()
        produce(s, s.topic("raw"), [(LATER.identity.encode(), codec.encode_record(LATER))])
        later = ("SELECT count(*) FROM message_traces WHERE stage = 'persist' AND event = "
                 "'persisted' AND key = 'order-7@customer.example'")
        run_pipeline(s, db, lambda: scalar(db, later) == 1)
        assert scalar(db, "SELECT count(*) FROM blobs WHERE sha256 = ANY(%s)",
                      [blob, private_blob]) == 0, "persist removed them"
        assert scalar(db, "SELECT count(*) FROM blob_chunks WHERE sha256 = ANY(%s)",
                      [blob, private_blob]) == 0
    capsys.readouterr()

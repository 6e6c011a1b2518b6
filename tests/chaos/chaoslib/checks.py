"""The exact checks after a run has drained: what the product guarantees, counted.

Each check compares what is there with what the mails say must be there — written out from the
mail specs, never read back from the database — and names the first differences. Natural keys
are checked by counting, not by trusting the tables' constraints: the schema is allowed to
change, the guarantee is not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from hashlib import sha256

import psycopg
from imapclient import IMAPClient
from kafka import TopicPartition

from chaoslib import mail
from chaoslib.seed import World
from chaoslib.stages import Stages
from ingest.model import DEFAULT_KEYWORD
from mailroom.codec import Codec
from mailroom.console.ops import dlq
from mailroom.console.ops.groups import Cluster
from mailroom.console.ops.lag import sample
from mailroom.db import connect

#: table -> its natural key (the columns that say "the same record")
NATURAL_KEYS: dict[str, str] = {
    "email_activities": "dedupe_key, content_hash",
    "activity_mailboxes": "activity_id, mailbox_id",
    "activity_parties": "activity_id, role, address",
    "activity_attachments": "activity_id, position",
    "attachment_contents": "sha256",
    "activity_delivery_failures": "activity_id, recipient",
    "email_collisions": "dedupe_key, content_hash",
    "cases": "case_key",
    "queue_items": "queue_id, activity_id",
    "persist_created_contacts": "address",
    "message_traces": "topic, topic_partition, topic_offset, topic_index",
    "persist_offsets": "group_id, topic, partition",
    "blobs": "sha256",
    "ingest_checkpoints": "mailbox_id, folder",
    "ingest_pending_actions": "mailbox_id, folder, uidvalidity, uid",
}
#: tables the run's mail must leave empty (no case or queue rule fires for a user's mail; every
#: sender is a known contact; nothing is forged, bounced or left parked)
EMPTY = ("cases", "queue_items", "persist_created_contacts", "email_collisions",
         "activity_delivery_failures", "persist_pending_plans", "persist_watches")
SHOWN = 5  # differences named per check


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _diff(what: str, want: Iterable[object], got: Iterable[object]) -> str:
    """'' when equal as multisets; else what is missing, unexpected and doubled."""
    w, g = Counter(want), Counter(got)
    if w == g:
        return ""
    missing = sorted(map(str, (w - g).elements()))
    extra = sorted(map(str, (g - w).elements()))
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing, e.g. {missing[:SHOWN]}")
    if extra:
        parts.append(f"{len(extra)} unexpected or doubled, e.g. {extra[:SHOWN]}")
    return f"{what}: " + "; ".join(parts)


def _check(name: str, ok_text: str, *problems: str) -> Check:
    found = [p for p in problems if p]
    return Check(name, not found, " | ".join(found) if found else ok_text)


# --- PostgreSQL -------------------------------------------------------------------------------
def activities(conn: psycopg.Connection, mails: tuple[mail.MailSpec, ...]) -> Check:
    rows = conn.execute(
        "SELECT message_id, subject, copy_kind, collision, deleted_at IS NULL, "
        "text_body IS NOT NULL AND html_body IS NOT NULL FROM email_activities").fetchall()
    want = [(m.message_id, m.subject, "forwarded_rfc822", False, True, True) for m in mails]
    return _check("one activity per mail", f"{len(rows)} activities, one per mail",
                  _diff("(message_id, subject, copy_kind, collision, live, both bodies)",
                        want, map(tuple, rows)))


def threads(conn: psycopg.Connection, mails: tuple[mail.MailSpec, ...]) -> Check:
    rows = conn.execute(
        "SELECT a.message_id, p.message_id, a.correlation_method FROM email_activities a "
        "LEFT JOIN email_activities p ON p.id = a.parent_id").fetchall()
    want = [(m.message_id, f"m{m.parent}.chaos@customer.example", "in_reply_to")
            if m.parent is not None else (m.message_id, None, "") for m in mails]
    replies = sum(m.parent is not None for m in mails)
    return _check("replies threaded", f"{replies} replies threaded onto their parent",
                  _diff("(message_id, parent, method)", want, map(tuple, rows)))


def mailboxes(conn: psycopg.Connection, mails: tuple[mail.MailSpec, ...]) -> Check:
    ids = dict(conn.execute("SELECT address, id::text FROM ingest_mailboxes").fetchall())
    rows = conn.execute(
        "SELECT a.message_id, m.mailbox_id, m.accepting_owner, m.copy_kind, m.forwarded_by "
        "FROM activity_mailboxes m JOIN email_activities a ON a.id = m.activity_id").fetchall()
    # the mailbox the copy was received in (the forward mailbox), accepted by the forwarder
    want = [(m.message_id, ids.get(mail.FORWARD_ADDRESS), f"user:{m.forwarder[0]}",
             "forwarded_rfc822", m.forwarder[0]) for m in mails]
    return _check("one mailbox link per mail", f"{len(rows)} links, each accepted by its "
                  "forwarder",
                  _diff("(message_id, mailbox, owner, copy kind, forwarded by)", want,
                        map(tuple, rows)))


def parties(conn: psycopg.Connection, mails: tuple[mail.MailSpec, ...]) -> Check:
    rows = conn.execute(
        "SELECT a.message_id, p.role, p.address, p.record FROM activity_parties p "
        "JOIN email_activities a ON a.id = p.activity_id").fetchall()
    want = []
    for m in mails:
        want += [(m.message_id, "from", m.sender[2], f"contact:{m.sender[0]}"),
                 (m.message_id, "to", m.forwarder[1], f"user:{m.forwarder[0]}"),
                 (m.message_id, "cc", mail.DESK[1], f"user:{mail.DESK[0]}")]
    return _check("three parties per mail", f"{len(rows)} parties, all resolved",
                  _diff("(message_id, role, address, record)", want, map(tuple, rows)))


def attachments(conn: psycopg.Connection, mails: tuple[mail.MailSpec, ...]) -> Check:
    digest = {v: sha256(mail.attachment(v)).hexdigest()
              for v in {m.attachment_variant for m in mails}}
    rows = conn.execute(
        "SELECT a.message_id, t.sha256, t.content_type FROM activity_attachments t "
        "JOIN email_activities a ON a.id = t.activity_id").fetchall()
    want = [(m.message_id, digest[m.attachment_variant], "application/pdf") for m in mails]
    contents = conn.execute("SELECT sha256 FROM attachment_contents").fetchall()
    return _check("one attachment per mail, content stored once",
                  f"{len(rows)} attachments sharing {len(contents)} stored contents",
                  _diff("(message_id, sha256, type)", want, map(tuple, rows)),
                  _diff("attachment contents", digest.values(), (r[0] for r in contents)))


def nothing_else(conn: psycopg.Connection) -> Check:
    counts = {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in EMPTY}
    busy = {t: n for t, n in counts.items() if n}
    return _check("no other records", "no cases, queue items, created contacts, collisions, "
                  "delivery failures or parked plans",
                  f"rows where none belong: {busy}" if busy else "")


def natural_keys(conn: psycopg.Connection) -> Check:
    doubled = {}
    for table, key in NATURAL_KEYS.items():
        rows, distinct = conn.execute(
            f"SELECT count(*), count(DISTINCT ({key})) FROM {table}").fetchone()
        if rows != distinct:
            doubled[table] = rows - distinct
    real = conn.execute("SELECT count(*) - count(DISTINCT dedupe_key) FROM email_activities "
                        "WHERE NOT collision").fetchone()[0]
    if real:
        doubled["email_activities (dedupe key)"] = real
    return _check("no duplicate rows", f"{len(NATURAL_KEYS)} tables, every natural key once",
                  f"rows doubled per table: {doubled}" if doubled else "")


def traces(conn: psycopg.Connection, mails: tuple[mail.MailSpec, ...]) -> Check:
    """Every stage said what it did with every mail (mailroom trace would tell the story)."""
    rows = conn.execute(
        "SELECT DISTINCT dedupe_key, stage FROM message_traces WHERE dedupe_key IS NOT NULL "
        "AND stage IN ('unwrap', 'route', 'persist')").fetchall()
    fetched = conn.execute(
        "SELECT count(DISTINCT raw_identity) FROM message_traces "
        "WHERE stage = 'ingest' AND event = 'fetched'").fetchone()[0]
    want = [(m.message_id, s) for m in mails for s in ("unwrap", "route", "persist")]
    return _check("every stage traced every mail", f"{fetched} fetched, each unwrapped, "
                  "routed and persisted in the trace",
                  _diff("(dedupe key, stage)", want, map(tuple, rows)),
                  "" if fetched == len(mails) else
                  f"ingest traced {fetched} distinct fetches of {len(mails)} mails")


def ingest_owes_nothing(conn: psycopg.Connection) -> tuple[str, int]:
    """('' or the problem, the checkpoint's last UID) of the forward mailbox's INBOX."""
    owed = conn.execute("SELECT count(*) FROM ingest_pending_actions").fetchone()[0]
    row = conn.execute(
        "SELECT c.last_uid, c.backlog FROM ingest_checkpoints c JOIN ingest_mailboxes m "
        "ON m.id = c.mailbox_id WHERE m.address = %s AND c.folder = 'INBOX'",
        (mail.FORWARD_ADDRESS,)).fetchone()
    if row is None:
        return "no checkpoint for the forward mailbox's INBOX", 0
    problems = []
    if owed:
        problems.append(f"{owed} server actions still owed (ingest_pending_actions)")
    if row[1]:
        problems.append(f"ingest's last measured backlog is {row[1]}")
    return "; ".join(problems), int(row[0])


# --- the mail server, the broker ------------------------------------------------------------
def mail_server(w: World, problem: str, last_uid: int) -> Check:
    """Every message is still there (the action is 'flag'), flagged, and at or below the
    checkpoint."""
    with IMAPClient("127.0.0.1", port=w.base.imap_port, ssl=False, timeout=30) as imap:
        imap.login(w.login, w.password)
        imap.select_folder("INBOX", readonly=True)
        uids = imap.search(["ALL"])
        unflagged = imap.search(["UNKEYWORD", DEFAULT_KEYWORD])
    above = [u for u in uids if u > last_uid]
    return _check(
        "nothing unacknowledged on the mail server",
        f"{len(uids)} messages in the forward mailbox, every one flagged {DEFAULT_KEYWORD}",
        problem,
        "" if len(uids) == len(w.mails) else f"{len(uids)} messages on the server, "
                                              f"{len(w.mails)} delivered",
        f"{len(unflagged)} not flagged, e.g. UIDs {unflagged[:SHOWN]}" if unflagged else "",
        f"{len(above)} above the checkpoint (last UID {last_uid})" if above else "")


def topic_records(cluster: Cluster, topic: str) -> int:
    parts = cluster.consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in parts]
    ends, begins = cluster.end_offsets(tps), cluster.beginning_offsets(tps)
    return sum(ends[tp] - begins[tp] for tp in tps)


def dead_letters(w: World, cluster: Cluster) -> Check:
    n = topic_records(cluster, w.settings.topic("dlq"))
    if not n:
        return Check("no dead letters", True, "the dead-letter topic is empty")
    letters = dlq.read_letters(w.settings, Codec.from_settings(w.settings))
    why = ", ".join(f"{stage} {reason} {count}"
                    for (stage, reason), count in sorted(dlq.counts(letters).items()))
    first = [f"{x.letter.source_topic}/{x.letter.source_partition}@"
             f"{x.letter.source_offset}: {x.letter.reason[:160]}"
             for x in letters[:SHOWN] if x.letter is not None]
    return Check("no dead letters", False, f"{n} on {w.settings.topic('dlq')}: {why}; "
                 f"e.g. {first}")


def lag(w: World, cluster: Cluster) -> Check:
    groups = sample(cluster, w.settings)
    behind = {g.group: g.messages_behind for g in groups if g.messages_behind or g.error}
    errors = {g.group: g.error for g in groups if g.error}
    return _check("consumer lag 0", f"{len(groups)} stage groups, nothing behind",
                  f"behind: {behind}" if behind else "", f"unreadable: {errors}" if errors else "")


def stages_stayed_up(stages: Stages) -> Check:
    """No stage exits on its own — not on a kill of another stage, not on a database restart
    (the bench started each exited stage again, so the other checks still mean something)."""
    exits = Counter(f"{e.stage} rc {e.returncode}" for e in stages.exits)
    problems = []
    if exits:
        first = stages.exits[0]
        problems.append(f"stages exited on their own: {dict(exits)}; first: {first.stage} at "
                        f"+{first.at_s:.0f} s, its log ends:\n{first.log_tail}")
    if stages.leftovers:
        problems.append(f"processes outlived a SIGKILL of their group: {stages.leftovers}")
    return _check("stages stayed up", "no stage exited on its own", *problems)


def run_all(w: World, stages: Stages, cluster: Cluster) -> list[Check]:
    mails = w.mails
    with connect(w.settings) as conn:
        db_checks: list[Callable[[psycopg.Connection], Check]] = [
            lambda c: activities(c, mails), lambda c: threads(c, mails),
            lambda c: mailboxes(c, mails), lambda c: parties(c, mails),
            lambda c: attachments(c, mails), nothing_else, natural_keys,
            lambda c: traces(c, mails),
        ]
        out = [check(conn) for check in db_checks]
        owed_problem, last_uid = ingest_owes_nothing(conn)
    out.append(mail_server(w, owed_problem, last_uid))
    out.append(dead_letters(w, cluster))
    out.append(lag(w, cluster))
    out.append(stages_stayed_up(stages))
    return out

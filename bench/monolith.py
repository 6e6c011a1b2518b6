"""The baseline: what a small team would write in an afternoon instead of the pipeline.

One process, no Kafka: for each mailbox, IMAP FETCH in batches of 200 (imapclient) → stdlib
``email`` parse with ``compat32`` → the forwarded message/rfc822 original (forward mailbox) or
the message itself (a user's mailbox) → COPY into a PostgreSQL table of its own. It reads with
BODY.PEEK on a read-only SELECT, so it changes nothing on the server and can run again.

    .venv/bin/python bench/monolith.py --schema S --password PW LOGIN[:forward] ...

Prints one JSON line: emails, seconds, CPU seconds of this process.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from email.utils import parsedate_to_datetime
from pathlib import Path

# Run as a script, this folder comes first on the path, and its ingest.py, unwrap.py, ...
# would shadow the packages of the same name.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import psycopg  # noqa: E402
from imapclient import IMAPClient  # noqa: E402
from psycopg import sql  # noqa: E402

from mailroom import settings as settings_module  # noqa: E402

BATCH = 200
# The bodies compressed as the pipeline's are (lz4, migration 0077): the same storage, so the
# comparison is of the programs, not of a setting either could have.
TABLE = """CREATE TABLE IF NOT EXISTS monolith_emails (
    mailbox text NOT NULL, uid bigint NOT NULL, forwarded_by text NOT NULL,
    message_id text, sender text, subject text, sent_at timestamptz,
    text_body text COMPRESSION lz4, html_body text COMPRESSION lz4, attachments int NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp())"""
COLUMNS = ("mailbox", "uid", "forwarded_by", "message_id", "sender", "subject", "sent_at",
           "text_body", "html_body", "attachments")


def originals(msg: Message, forward: bool) -> list[Message]:
    """The messages a forward carries as attachments (top level only), or the message."""
    if not forward:
        return [msg]
    if not msg.is_multipart():
        return []
    return [part.get_payload(0) for part in msg.get_payload()
            if part.get_content_type() == "message/rfc822"]


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True) or b""
    return payload.decode(part.get_content_charset() or "us-ascii", "replace")


def row(mailbox: str, uid: int, forwarder: str, msg: Message) -> tuple[object, ...]:
    text = html = None
    attachments = 0
    for part in msg.walk():
        kind = part.get_content_type()
        if part.is_multipart():
            continue
        if kind == "text/plain" and text is None and not part.get_filename():
            text = _text(part)
        elif kind == "text/html" and html is None and not part.get_filename():
            html = _text(part)
        else:
            attachments += 1
    message_id = (msg.get("Message-ID") or "").strip().strip("<>") or None
    try:
        sent_at = parsedate_to_datetime(msg["Date"]) if msg["Date"] else None
    except (TypeError, ValueError):
        sent_at = None
    return (mailbox, uid, forwarder, message_id, msg.get("From"), msg.get("Subject"), sent_at,
            text, html, attachments)


def fetch(client: IMAPClient) -> Iterator[list[tuple[int, bytes]]]:
    client.select_folder("INBOX", readonly=True)
    uids = client.search("ALL")
    for i in range(0, len(uids), BATCH):
        got = client.fetch(uids[i:i + BATCH], ["BODY.PEEK[]"])
        yield [(uid, data[b"BODY[]"]) for uid, data in sorted(got.items())]


def run_mailbox(conn: psycopg.Connection, port: int, login: str, password: str,
                forward: bool) -> int:
    n = 0
    with IMAPClient("127.0.0.1", port=port, ssl=False, timeout=60) as client:
        client.login(login, password)
        for batch in fetch(client):
            rows = []
            for uid, data in batch:
                msg = message_from_bytes(data)  # compat32, the stdlib's fast policy
                forwarder = msg.get("From", "") if forward else ""
                rows += [row(login, uid, forwarder, o) for o in originals(msg, forward)]
            with conn.cursor() as cur, cur.copy(
                sql.SQL("COPY monolith_emails ({}) FROM STDIN").format(
                    sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))) as copy:
                for r in rows:
                    copy.write_row(r)
            conn.commit()
            n += len(rows)
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schema", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("mailboxes", nargs="+", metavar="LOGIN[:forward]")
    args = parser.parse_args()
    settings = settings_module.load()
    dsn = f"{settings.dsn} options='-csearch_path={args.schema}'"
    started, cpu = time.perf_counter(), time.process_time()
    with psycopg.connect(dsn) as conn:
        conn.execute(TABLE)
        conn.execute("TRUNCATE monolith_emails")
        conn.commit()
        n = sum(run_mailbox(conn, settings.imap_port, login, args.password, kind == "forward")
                for login, _, kind in (m.partition(":") for m in args.mailboxes))
    print(json.dumps({"emails": n, "seconds": time.perf_counter() - started,
                      "cpu_s": time.process_time() - cpu}), flush=True)


if __name__ == "__main__":
    main()

"""POP3 ingest of one mailbox (the standard library's poplib).

The checkpoint is the *set* of UIDLs already published: POP3 message numbers last one session
and UIDLs are opaque, unordered strings. A message is published, its UIDL recorded (fenced),
and only then — when the mailbox says so — deleted with DELE, which the server applies at QUIT.
A message published but not deleted before a crash is still on the server with a recorded UIDL:
the next session deletes it without publishing it again.
"""

from __future__ import annotations

import logging
import poplib
import re

from ingest import store
from ingest.errors import ServerBusy
from ingest.job import Job
from ingest.model import AfterIngest, Folder
from ingest.progress import FETCH_BUDGET_BYTES, batches, pop3_new
from ingest.publish import publish
from mailroom import faults
from mailroom.errors import TransientError

log = logging.getLogger(__name__)

AFTER_PUBLISH = faults.register(
    "ingest:pop3_after_publish", "POP3: the broker has the batch, the UIDLs are not recorded"
)
AFTER_RECORD = faults.register(
    "ingest:pop3_after_record", "POP3: UIDLs recorded, DELE/QUIT not done"
)
_UIDL = re.compile(rb"^(\d+) (\S+)$")


def server_uidls(conn: poplib.POP3) -> dict[int, str]:
    _resp, lines, _octets = conn.uidl()
    result = {}
    for line in lines:
        match = _UIDL.match(line)
        if match:
            result[int(match.group(1))] = match.group(2).decode("ascii", "replace")
    return result


def server_sizes(conn: poplib.POP3) -> dict[int, int]:
    """Message number -> size in octets (LIST), to bound the bytes of each batch."""
    _resp, lines, _octets = conn.list()
    sizes = {}
    for line in lines:
        number, _, size = line.partition(b" ")
        if number.isdigit() and size.strip().isdigit():
            sizes[int(number)] = int(size.strip())
    return sizes


def retrieve(conn: poplib.POP3, number: int) -> bytes:
    # RETR gives lines without their CRLF and with dot-stuffing removed; joining them with
    # CRLF gives back the message as stored (the POP3 wire form is always CRLF).
    _resp, lines, _octets = conn.retr(number)
    return b"\r\n".join(lines) + b"\r\n"


def ingest(job: Job, conn: poplib.POP3, batch_size: int) -> int:
    folder = job.mailbox.folders[0] if job.mailbox.folders else Folder()
    try:
        on_server = server_uidls(conn)
    except poplib.error_proto as exc:
        if b"[IN-USE]" in (exc.args[0] if exc.args else b""):
            raise ServerBusy(f"POP3 mailbox {job.mailbox.address} in use: {exc}") from exc
        raise
    published_before = store.published_uidls(job.conn, job.mailbox_id)
    delete = job.mailbox.after_ingest is AfterIngest.DELETE
    if delete:
        # Published in an earlier session that crashed before QUIT: delete them now.
        for number, uidl in on_server.items():
            if uidl in published_before:
                conn.dele(number)
    store.forget_uidls(job.conn, job.mailbox_id, set(on_server.values()))
    job.conn.commit()
    new = pop3_new(on_server, published_before)
    published = 0
    uidl_of = dict(new)
    groups = batches([number for number, _ in new], server_sizes(conn), batch_size,
                     FETCH_BUDGET_BYTES)
    for n, numbers in enumerate(groups):
        batch = [(number, uidl_of[number]) for number in numbers]
        raws = [job.raw(folder, retrieve(conn, number), uidl=uidl) for number, uidl in batch]
        results = publish(job.settings, job.codec, job.producer, raws, job.put_blob)
        faults.point(job.settings, AFTER_PUBLISH)
        acked = {s.raw.uidl for s in results if s.ok}
        store.add_uidls(job.conn, job.mailbox_id, [u for u in acked if u], job.generation)
        job.conn.commit()
        faults.point(job.settings, AFTER_RECORD)
        if delete:
            for number, uidl in batch:
                if uidl in acked:
                    conn.dele(number)
        published += len(acked)
        job.published += len(acked)
        if len(acked) < len(batch):
            raise TransientError(
                f"the broker did not acknowledge {len(batch) - len(acked)} message(s) of "
                f"{job.mailbox.address}; they are fetched again next session"
            )
        if n + 1 < len(groups):
            job.between_batches()
    return published

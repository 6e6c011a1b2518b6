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
from dataclasses import dataclass

from ingest import cutoff as cutoff_mod
from ingest import store
from ingest.errors import MessageUnfetched, ServerBusy
from ingest.job import Job
from ingest.model import AfterIngest, Folder
from ingest.progress import FETCH_BUDGET_BYTES, fetch_groups, pop3_new
from ingest.publish import publish
from ingest.unfetchable import Ledger, pop3_message, unfetched
from mailroom import faults
from mailroom.errors import TransientError
from mailroom.records.raw import RawMail

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
    ledger = Ledger(job)
    delete = job.mailbox.after_ingest is AfterIngest.DELETE
    if delete:
        # Published in an earlier session that crashed before QUIT: delete them now. (Never a
        # dead-lettered one: it did not reach the topic.)
        for number, uidl in on_server.items():
            if uidl in published_before:
                conn.dele(number)
    store.forget_uidls(job.conn, job.mailbox_id, set(on_server.values()))
    ledger.prune_pop3(set(on_server.values()))
    job.conn.commit()
    new = pop3_new(on_server, published_before | ledger.pop3_dead_lettered()
                   | store.skipped_uidls(job.conn, job.mailbox_id))
    new = _skip_early(job, ledger, conn, folder, new)
    suspects = ledger.pop3_suspects()
    published = 0
    uidl_of = dict(new)
    sizes = server_sizes(conn)
    # Too large by the server's count: never retrieved, dead-lettered alone and passed.
    limit = job.settings.ingest_max_message_bytes
    oversize = {number: sizes[number] for number in uidl_of if sizes.get(number, 0) > limit}
    groups = fetch_groups([number for number, _ in new], sizes, batch_size, FETCH_BUDGET_BYTES,
                          {n for n, u in new if u in suspects} | oversize.keys())
    for n, numbers in enumerate(groups):
        if len(numbers) == 1 and numbers[0] in oversize:
            ledger.too_large(pop3_message(job, folder.name, uidl_of[numbers[0]]),
                             oversize[numbers[0]])
            if n + 1 < len(groups):
                job.between_batches()
            continue
        batch = [(number, uidl_of[number]) for number in numbers]
        raws, failure = _retrieve(job, ledger, conn, folder, batch)
        results = publish(job.settings, job.codec, job.producer, raws, job.put_blob)
        faults.point(job.settings, AFTER_PUBLISH)
        acked = {s.raw.uidl for s in results if s.ok}
        store.add_uidls(job.conn, job.mailbox_id, [u for u in acked if u], job.generation)
        # Fetched (published or not: a broker failure is not the message's), or never tried.
        ledger.forget(pop3_message(job, folder.name, uidl) for _, uidl in batch
                      if failure is None or uidl != failure.uidl)
        job.conn.commit()
        faults.point(job.settings, AFTER_RECORD)
        published += len(acked)
        job.published += len(acked)
        if failure is not None:
            # No DELE: the session ends without QUIT, which would be the only one to apply it
            # (the next session deletes what was recorded), and after a failed RETR the
            # connection may be in the middle of a message.
            raise failure.error
        if delete:
            for number, uidl in batch:
                if uidl in acked:
                    conn.dele(number)
        if len(acked) < len(raws):
            raise TransientError(
                f"the broker did not acknowledge {len(raws) - len(acked)} message(s) of "
                f"{job.mailbox.address}; they are fetched again next session"
            )
        if n + 1 < len(groups):
            job.between_batches()
    return published


def _skip_early(job: Job, ledger: Ledger, conn: poplib.POP3, folder: Folder,
                new: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """``new`` without the messages that arrived before the mailbox's "process email from"
    (read from their headers with TOP, never retrieved); those are traced and their UIDLs kept
    as skipped, so each is judged once and never deleted (it was not published).

    A TOP that fails is a failed fetch of that message (:mod:`ingest.unfetchable`): counted,
    it ends the session (the skips found before it recorded); a message that failed
    ``max_attempts`` times is dead-lettered and passed instead, so it cannot hold the mailbox
    back."""
    cutoff = job.mailbox.processes_from(job.profile)
    if cutoff is None or not new:
        return new
    suspects = ledger.pop3_suspects()
    keep, skips = [], []
    failure: MessageUnfetched | None = None
    for number, uidl in new:
        message = pop3_message(job, folder.name, uidl)
        if uidl in suspects and (tried := ledger.attempts(message)) >= job.settings.max_attempts:
            ledger.dead_letter(message, tried + 1)
            continue
        try:
            _resp, lines, _octets = conn.top(number, 0)
        except Exception as exc:
            ledger.begin([message])  # the row its failure counts on
            failure = unfetched(job, ledger, [message], exc, count=True)
            break
        arrived, how = cutoff_mod.arrival_from_headers(b"\r\n".join(lines) + b"\r\n\r\n")
        if cutoff_mod.too_early(arrived, cutoff):
            assert arrived is not None
            skips.append((message, cutoff_mod.Skip(message.identity, folder.name, arrived, how)))
        else:
            keep.append((number, uidl))
    if skips:
        cutoff_mod.record(job.settings, job.codec, job.producer, job.mailbox.address,
                          [s for _, s in skips], cutoff)
        store.add_uidls(job.conn, job.mailbox_id, [m.uidl or "" for m, _ in skips],
                        job.generation, skipped=True)
        ledger.forget(m for m, _ in skips)  # judged: nothing suspect about them any more
        job.conn.commit()
    if failure is not None:
        raise failure
    return keep


@dataclass(frozen=True)
class _Failure:
    uidl: str
    error: MessageUnfetched


def _retrieve(job: Job, ledger: Ledger, conn: poplib.POP3, folder: Folder,
              batch: list[tuple[int, str]]) -> tuple[list[RawMail], _Failure | None]:
    """RETR each message of a batch, counted (:mod:`ingest.unfetchable`): the messages
    retrieved before one that failed, and that failure (which ends the session once they are
    published). A message that failed alone too often is dead-lettered instead."""
    messages = [pop3_message(job, folder.name, uidl) for _, uidl in batch]
    if len(batch) == 1:
        attempts = ledger.begin_alone(messages[0])
        if attempts > job.settings.max_attempts:
            ledger.dead_letter(messages[0], attempts)
            return [], None
    else:
        ledger.begin(messages)
    raws = []
    for (number, uidl), message in zip(batch, messages, strict=True):
        try:
            content = retrieve(conn, number)
        except Exception as exc:
            # RETR names one message: its failure counts for it alone (unless already counted).
            error = unfetched(job, ledger, [message], exc, count=len(batch) > 1)
            return raws, _Failure(uidl, error)
        raws.append(job.raw(folder, content, uidl=uidl))
    return raws, None

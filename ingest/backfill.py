"""A backfill: a mailbox's existing mail into the pipeline (``mailroom mailbox backfill ADDRESS
--since DATE``, registered by the console, ``mailroom/console/ops/backfill_command.py``).

Live ingest takes what arrives from its checkpoint on; a backfill brings in what is already in
the mailbox — every monitored folder, mail the server received since DATE — without touching
what live ingest relies on:

- **The live checkpoint never moves.** A backfill keeps its own (``ingest_backfills``: mailbox,
  folder, start date → UIDVALIDITY and the last UID done) and covers the UIDs up to the live
  checkpoint's — what live ingest passed before it, or never fetched because of the profile's
  ``received_after``. Above it is live ingest's. (A folder live ingest has not started yet is
  covered up to its highest UID at the start: live ingest fetching some of the same messages
  later is harmless, the raw records carry the same identity and persist stores one email.)
- **The server's flags are untouched**: the folder is opened read-only (EXAMINE) and fetched
  with ``BODY.PEEK[]``, so no ``\\Seen``; nothing is flagged, moved or deleted after publishing.
- **What is already stored is skipped**: the Message-IDs of each batch are fetched first
  (headers only) and those persist already holds — asked through the caller's ``stored``,
  persist's own query, as ingest reads no table of persist's — are neither fetched nor
  published again. Persist's unique keys stay the authority; this only saves the work.
- **Resumable**: the checkpoint moves after the broker acknowledged a batch (acks=all). A run
  killed at any instant starts again after the last acknowledged batch; the batch in flight is
  published again (a harmless repeat), none is skipped.

A progress line (messages and bytes of the total, rate, ETA) is printed as it goes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TextIO

import psycopg
from imapclient import IMAPClient

from ingest import connect as connecting
from ingest import store
from ingest.imap import internaldate
from ingest.job import Job
from ingest.model import Folder, Mailbox, Profile, Protocol
from ingest.progress import FETCH_BUDGET_BYTES, fetch_groups
from ingest.publish import BlobPut, Producer, publish
from mailroom import faults
from mailroom.codec import Codec
from mailroom.errors import ConfigError, TransientError
from mailroom.msgids import normalise_message_id
from mailroom.settings import Settings

log = logging.getLogger(__name__)

#: Which of these (normalised) Message-IDs are stored already: skipped before the fetch.
Stored = Callable[[list[str]], set[str]]

BATCH = 200  # messages per FETCH (and per publish and checkpoint), bounded by bytes too

AFTER_PUBLISH = faults.register(
    "backfill:after_publish", "the broker has a backfill batch, its checkpoint has not moved"
)


def normalised_message_id(header: bytes) -> str | None:
    """The Message-ID of a ``Message-ID: <...>`` header line as persist stores it."""
    return normalise_message_id(header.partition(b":")[2].decode("utf-8", "replace"))


# --- the progress line ---------------------------------------------------------------------


@dataclass
class Progress:
    """Counts of one backfill run, and the line that shows them."""

    total: int  # messages to look at in this run (all folders)
    total_bytes: int
    started: float
    done: int = 0  # looked at: published or skipped
    published: int = 0
    skipped: int = 0
    bytes: int = 0  # of the messages looked at (their server-side size)

    def line(self, now: float) -> str:
        took = max(now - self.started, 1e-6)
        rate, byte_rate = self.done / took, self.bytes / took
        left = self.total_bytes - self.bytes
        eta = left / byte_rate if byte_rate > 0 and self.done else None
        pct = 100.0 * self.bytes / self.total_bytes if self.total_bytes else 100.0
        return (f"{self.done:,}/{self.total:,} messages, {_size(self.bytes)}/"
                f"{_size(self.total_bytes)} ({pct:.0f} %), {rate:,.0f} msg/s, "
                f"{_size(byte_rate)}/s, ETA {_duration(eta)}; {self.published:,} published, "
                f"{self.skipped:,} already stored")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GB"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Printer:
    """The progress line on a terminal (rewritten in place), else a line every few seconds."""

    def __init__(self, out: TextIO, every_s: float = 5.0) -> None:
        self.out = out
        self.tty = out.isatty()
        self.every_s = 0.2 if self.tty else every_s
        self._last = 0.0

    def show(self, progress: Progress, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < self.every_s:
            return
        self._last = now
        text = progress.line(now)
        if self.tty:
            self.out.write("\r\x1b[K" + text + ("\n" if final else ""))
        else:
            self.out.write(text + "\n")
        self.out.flush()


# --- the checkpoint ------------------------------------------------------------------------


@dataclass
class Checkpoint:
    uidvalidity: int
    last_uid: int
    up_to_uid: int
    finished: bool


def load(conn: psycopg.Connection, mailbox_id: int, folder: str,
         since: date) -> Checkpoint | None:
    row = conn.execute(
        "SELECT uidvalidity, last_uid, up_to_uid, finished_at IS NOT NULL FROM ingest_backfills "
        "WHERE mailbox_id = %s AND folder = %s AND since = %s", (mailbox_id, folder, since),
    ).fetchone()
    return Checkpoint(*row) if row else None


def start(conn: psycopg.Connection, mailbox_id: int, folder: str, since: date,
          uidvalidity: int, up_to_uid: int) -> Checkpoint:
    """A fresh checkpoint (also after a UIDVALIDITY change: the folder's UIDs are new)."""
    conn.execute(
        "INSERT INTO ingest_backfills (mailbox_id, folder, since, uidvalidity, up_to_uid) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (mailbox_id, folder, since) DO UPDATE SET "
        "uidvalidity = EXCLUDED.uidvalidity, up_to_uid = EXCLUDED.up_to_uid, last_uid = 0, "
        "messages = 0, bytes = 0, skipped = 0, started_at = now(), updated_at = now(), "
        "finished_at = NULL", (mailbox_id, folder, since, uidvalidity, up_to_uid),
    )
    conn.commit()
    return Checkpoint(uidvalidity, 0, up_to_uid, False)


def advance(conn: psycopg.Connection, mailbox_id: int, folder: str, since: date, last_uid: int,
            published: int, size: int, skipped: int, *, finished: bool = False) -> None:
    conn.execute(
        "UPDATE ingest_backfills SET last_uid = greatest(last_uid, %s), "
        "messages = messages + %s, bytes = bytes + %s, skipped = skipped + %s, "
        "updated_at = now(), finished_at = CASE WHEN %s THEN now() END "
        "WHERE mailbox_id = %s AND folder = %s AND since = %s",
        (last_uid, published, size, skipped, finished, mailbox_id, folder, since),
    )
    conn.commit()


# --- one folder ----------------------------------------------------------------------------


@dataclass
class FolderWork:
    folder: Folder
    uidvalidity: int
    uids: list[int]
    sizes: dict[int, int]


def survey(conn: psycopg.Connection, client: IMAPClient, mailbox: Mailbox, folder: Folder,
           since: date) -> FolderWork:
    """What is left to do in one folder: select it read-only, resume or start its checkpoint,
    search the server, size the messages (one cheap FETCH)."""
    assert mailbox.id is not None
    info = client.select_folder(folder.name, readonly=True)  # EXAMINE: no flag can change
    uidvalidity = int(info[b"UIDVALIDITY"])
    cp = load(conn, mailbox.id, folder.name, since)
    if cp is None or cp.uidvalidity != uidvalidity:
        live = store.checkpoint(conn, mailbox.id, folder.name)
        if live is not None and live.uidvalidity == uidvalidity:
            up_to = live.last_uid
        else:
            uidnext = info.get(b"UIDNEXT")
            up_to = int(uidnext) - 1 if uidnext else _highest(client)
        cp = start(conn, mailbox.id, folder.name, since, uidvalidity, up_to)
    if cp.finished or cp.last_uid >= cp.up_to_uid:
        return FolderWork(folder, uidvalidity, [], {})
    found = client.search(["UID", f"{cp.last_uid + 1}:{cp.up_to_uid}", "SINCE", since])
    uids = sorted(u for u in found if cp.last_uid < u <= cp.up_to_uid)
    sizes = ({uid: int(d.get(b"RFC822.SIZE", 0))
              for uid, d in client.fetch(uids, [b"RFC822.SIZE"]).items()} if uids else {})
    return FolderWork(folder, uidvalidity, uids, sizes)


def _highest(client: IMAPClient) -> int:
    uids = client.search(["ALL"])
    return max(uids) if uids else 0


def backfill_folder(job: Job, client: IMAPClient, work: FolderWork, since: date,
                    progress: Progress, printer: Printer,
                    stored: Stored, batch: int = BATCH) -> None:
    conn, mailbox_id, name = job.conn, job.mailbox_id, work.folder.name
    client.select_folder(name, readonly=True)
    for group in fetch_groups(work.uids, work.sizes, batch, FETCH_BUDGET_BYTES, set()):
        heads = client.fetch(group, [b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        ids = {uid: normalised_message_id(bytes(d.get(b"BODY[HEADER.FIELDS (MESSAGE-ID)]", b"")))
               for uid, d in heads.items()}
        known = stored([i for i in ids.values() if i])
        wanted = [u for u in group if ids.get(u) is None or ids[u] not in known]
        fetched = client.fetch(wanted, [b"BODY.PEEK[]", b"INTERNALDATE"]) if wanted else {}
        raws = []
        for uid in wanted:
            data = fetched.get(uid, {})
            content = data.get(b"BODY[]")
            if content is None:  # expunged meanwhile by another client: nothing to keep
                continue
            raws.append(job.raw(work.folder, bytes(content), uidvalidity=work.uidvalidity,
                                uid=uid, server_date=internaldate(data.get(b"INTERNALDATE"))))
        sent = publish(job.settings, job.codec, job.producer, raws, job.put_blob)
        failed = [s.raw.uid or 0 for s in sent if not s.ok]
        faults.point(job.settings, AFTER_PUBLISH)
        if failed:
            # Done up to the first failure; the rest (from it on) is sent again next run.
            first = min(failed)
            below = [u for u in group if u < first]
            if below:
                advance(conn, mailbox_id, name, since, max(below), 0, 0, 0)
            raise TransientError(f"the broker did not acknowledge {len(failed)} message(s) "
                                 f"of {job.mailbox.address}/{name}: run the backfill again")
        size = sum(work.sizes.get(u, 0) for u in group)
        advance(conn, mailbox_id, name, since, max(group), len(raws), size,
                len(group) - len(wanted))
        progress.done += len(group)
        progress.published += len(raws)
        progress.skipped += len(group) - len(wanted)
        progress.bytes += size
        printer.show(progress)
    advance(conn, mailbox_id, name, since, 0, 0, 0, 0, finished=True)


# --- the whole mailbox ---------------------------------------------------------------------


def backfill(settings: Settings, conn: psycopg.Connection, mailbox: Mailbox, profile: Profile,
             since: date, *, codec: Codec, producer: Producer, put_blob: BlobPut,
             stored: Stored, out: TextIO, batch: int = BATCH) -> Progress:
    """Backfill every monitored folder of ``mailbox``; the run's counts.

    ``stored``: which of some Message-IDs are stored already — persist's answer (its table), so
    the command that runs a backfill (the console's, ``mailroom mailbox backfill``) passes it."""
    if profile.protocol is not Protocol.IMAP:
        raise ConfigError(f"{mailbox.address}: a backfill needs IMAP (POP3 has no folders and "
                          "no dates to search; live ingest reads everything a POP3 server keeps)")
    if mailbox.via_mailbox_id is not None:
        raise ConfigError(f"{mailbox.address}: its mail arrives through a forward mailbox, "
                          "which is never logged in to as this one: backfill the forward mailbox")
    job = Job(settings, conn, profile, mailbox, 0, codec, producer, put_blob)
    printer = Printer(out)
    with connecting.imap(settings, profile, mailbox) as client:
        works = [survey(conn, client, mailbox, f, since) for f in mailbox.folders]
        progress = Progress(total=sum(len(w.uids) for w in works),
                            total_bytes=sum(sum(w.sizes.values()) for w in works),
                            started=time.monotonic())
        printer.show(progress, final=not progress.total)
        for work in works:
            if work.uids:
                backfill_folder(job, client, work, since, progress, printer, stored, batch)
            else:
                advance(conn, job.mailbox_id, work.folder.name, since, 0, 0, 0, 0,
                        finished=True)
        if progress.total:
            printer.show(progress, final=True)
    return progress

"""IMAP ingest of one mailbox: every configured folder, from its checkpoint on.

Per folder: SELECT; a UIDVALIDITY other than the checkpoint's starts the folder over (a re-sync
— the repeats are harmless downstream, a silent skip would not be); server actions owed from a
crashed pass are finished first; then new UIDs are fetched in batches with ``BODY.PEEK[]`` (so
nothing is marked read), published, and the checkpoint advanced to the acknowledged prefix
together with the server actions now owed, in one transaction. Only then are the messages
flagged, moved (UID MOVE) or deleted (UID EXPUNGE — a plain EXPUNGE would also remove other
clients' deleted mail).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from imapclient import DELETED, IMAPClient
from imapclient.exceptions import IMAPClientError

from ingest import cutoff as cutoff_mod
from ingest import fetching, store
from ingest.errors import FolderMissing
from ingest.job import Job
from ingest.model import AfterIngest, Folder
from ingest.progress import FETCH_BUDGET_BYTES, UidProgress, fetch_groups
from ingest.publish import publish
from ingest.unfetchable import Ledger, imap_message, unfetched
from mailroom import faults
from mailroom.errors import TransientError

log = logging.getLogger(__name__)

AFTER_PUBLISH = faults.register(
    "ingest:after_publish", "the broker has the batch, the checkpoint has not moved"
)
AFTER_CHECKPOINT = faults.register(
    "ingest:after_checkpoint", "the checkpoint moved, the server action (flag/move/delete) not done"
)
AFTER_FETCH = faults.register(
    "ingest:after_fetch", "a batch is fetched, nothing published: a message that kills the process"
)
FETCH_ITEMS = [b"BODY.PEEK[]", b"INTERNALDATE", b"RFC822.SIZE"]


def internaldate(value: object) -> datetime | None:
    """A FETCHed INTERNALDATE as an aware datetime (None: not fetched). imapclient gives it
    as a naive local time unless told otherwise."""
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.astimezone(UTC)


def select(client: IMAPClient, folder: str) -> int:
    """SELECT the folder and return its UIDVALIDITY; a missing folder is a permanent error."""
    try:
        info = client.select_folder(folder)
    except IMAPClientError as exc:
        if not client.folder_exists(folder):
            raise FolderMissing(f"folder missing: {folder!r} does not exist") from exc
        raise
    return int(info[b"UIDVALIDITY"])


def apply_actions(job: Job, client: IMAPClient, folder: str, uidvalidity: int,
                  uids: list[int]) -> None:
    """Flag, move or delete messages the broker has; then forget that they were owed."""
    if not uids:
        return
    m = job.mailbox
    if m.after_ingest is AfterIngest.FLAG:
        client.add_flags(uids, [m.keyword.encode()], silent=True)
    elif m.after_ingest is AfterIngest.MOVE:
        if client.has_capability("MOVE"):
            client.move(uids, m.move_to)
        else:
            client.copy(uids, m.move_to)
            client.add_flags(uids, [DELETED], silent=True)
            client.uid_expunge(uids)
    else:
        client.add_flags(uids, [DELETED], silent=True)
        client.uid_expunge(uids)
    store.done(job.conn, job.mailbox_id, folder, uidvalidity, uids)
    job.conn.commit()


def sync_folder(job: Job, client: IMAPClient, folder: Folder, batch_size: int) -> int:
    """Ingest what is new in one folder; returns how many messages were published."""
    uidvalidity = select(client, folder.name)
    cp = store.checkpoint(job.conn, job.mailbox_id, folder.name)
    if cp is None or cp.uidvalidity != uidvalidity:
        if cp is not None:
            log.warning(
                "mailbox=%s folder=%s UIDVALIDITY changed %s -> %s: re-syncing the folder "
                "(repeats are expected)", job.mailbox.address, folder.name, cp.uidvalidity,
                uidvalidity,
            )
        store.reset_checkpoint(job.conn, job.mailbox_id, folder.name, uidvalidity, job.generation)
        job.conn.commit()
        cp = store.Checkpoint(uidvalidity, 0)
    # Finish what a crashed pass owed the server before anything new.
    apply_actions(job, client, folder.name, uidvalidity,
                  store.owed(job.conn, job.mailbox_id, folder.name, uidvalidity))

    criteria: list[object] = ["UID", f"{cp.last_uid + 1}:*"]
    # No SINCE for "process email from": it is day-granular, and what it leaves out would be
    # skipped without a word. INTERNALDATE decides below, to the second, and every skip is
    # traced once (the checkpoint then passes it).
    cutoff = job.mailbox.processes_from(job.profile)
    # "n:*" always matches the highest UID, even below n: filter.
    uids = sorted(u for u in client.search(criteria) if u > cp.last_uid)
    if uids or cp.backlog != 0:  # nothing new and none before: nothing to write (most passes)
        store.set_backlog(job.conn, job.mailbox_id, folder.name, len(uids),
                          _arrival(client, uids))
        store.relaxed_commit(job.conn)
        job.conn.commit()
    published = 0
    last = cp.last_uid
    ledger = Ledger(job)
    suspects = ledger.imap_suspects(folder.name, uidvalidity)
    sizes, arrivals = _sizes(job, ledger, client, folder.name, uidvalidity,
                             [u for u in uids if u not in suspects])
    skipped = [u for u in uids if cutoff_mod.too_early(arrivals.get(u), cutoff)]
    if skipped:
        # Never fetched; their traces say why, and the checkpoint passes them (gaps below a
        # fetched UID need nothing; the trailing ones are passed once the rest is done).
        assert cutoff is not None
        cutoff_mod.record(job.settings, job.codec, job.producer, job.mailbox.address, [
            cutoff_mod.Skip(imap_message(job, folder.name, uidvalidity, u).identity,
                            folder.name, arrivals[u], "INTERNALDATE") for u in skipped], cutoff)
        passed = set(skipped)  # once: built per UID it made a big first pass quadratic
        uids = [u for u in uids if u not in passed]
    # Too large by the server's count: never fetched, dead-lettered alone and passed.
    limit = job.settings.ingest_max_message_bytes
    oversize = {uid: size for uid, size in sizes.items() if size > limit}
    for group in fetch_groups(uids, sizes, batch_size, FETCH_BUDGET_BYTES,
                              suspects | oversize.keys()):
        progress = UidProgress(start=last)
        if len(group) == 1 and group[0] in oversize:
            ledger.too_large(imap_message(job, folder.name, uidvalidity, group[0]),
                             oversize[group[0]])
            fetched = None
        else:
            fetched = _fetch(job, ledger, client, folder.name, uidvalidity, group)
        raws = []
        late: list[cutoff_mod.Skip] = []
        for uid in group:
            if fetched is None:  # dead-lettered (unfetchable or too large): passed
                progress.pass_over(uid)
                continue
            data = fetched.get(uid, {})
            content = data.get(b"BODY[]")
            if content is None:  # expunged meanwhile by another client: nothing to keep
                continue
            arrived = internaldate(data.get(b"INTERNALDATE"))
            if uid in suspects and cutoff_mod.too_early(arrived, cutoff):
                # A suspect's arrival was not read before (the FETCH of sizes and dates is
                # what failed): judged now, by the date its own FETCH brought.
                assert arrived is not None and cutoff is not None
                late.append(cutoff_mod.Skip(imap_message(job, folder.name, uidvalidity,
                                                         uid).identity,
                                            folder.name, arrived, "INTERNALDATE"))
                progress.pass_over(uid)
                continue
            progress.send(uid)
            raws.append(job.raw(folder, bytes(content), uidvalidity=uidvalidity, uid=uid,
                                server_date=arrived))
        if late:
            assert cutoff is not None
            cutoff_mod.record(job.settings, job.codec, job.producer, job.mailbox.address, late,
                              cutoff)
        for sent in publish(job.settings, job.codec, job.producer, raws, job.put_blob):
            (progress.ack if sent.ok else progress.fail)(sent.raw.uid or 0)
        faults.point(job.settings, AFTER_PUBLISH)
        new = progress.checkpoint()
        owed = progress.acked_up_to_checkpoint()
        if new > last:
            store.advance(job.conn, job.mailbox_id, folder.name, uidvalidity, new,
                          job.generation, owed, job.mailbox.after_ingest)
            ledger.prune_imap(folder.name, uidvalidity, new)
            job.conn.commit()
        faults.point(job.settings, AFTER_CHECKPOINT)
        apply_actions(job, client, folder.name, uidvalidity, owed)
        published += len(owed)
        job.published += len(owed)
        if progress.failed or new < (max(progress.sent) if progress.sent else last):
            # The fetch worked, the broker failed: not the messages' fault, not an attempt.
            ledger.forget(imap_message(job, folder.name, uidvalidity, u) for u in group)
            job.conn.commit()
            raise TransientError(
                f"the broker did not acknowledge {len(progress.failed)} message(s) of "
                f"{job.mailbox.address}/{folder.name}; they are fetched again next pass"
            )
        last = new
        rest = [u for u in uids if u > last]
        if rest:
            # Ingest's own lag, kept current while a long backlog drains.
            store.set_backlog(job.conn, job.mailbox_id, folder.name, len(rest),
                              _arrival(client, rest))
            job.conn.commit()
            job.between_batches()
    if skipped and max(skipped) > last:
        store.advance(job.conn, job.mailbox_id, folder.name, uidvalidity, max(skipped),
                      job.generation, [], None)
        job.conn.commit()
    if uids or skipped:
        store.set_backlog(job.conn, job.mailbox_id, folder.name, 0, None)
        store.relaxed_commit(job.conn)
        job.conn.commit()
    return published


def _fetch(job: Job, ledger: Ledger, client: IMAPClient, folder: str, uidvalidity: int,
           group: list[int]) -> dict[int, dict[bytes, object]] | None:
    """FETCH one group, counted (:mod:`ingest.unfetchable`); None: the group is one message
    that failed alone too often, now dead-lettered. A failure ends the pass."""
    messages = [imap_message(job, folder, uidvalidity, uid) for uid in group]
    if len(messages) == 1:
        attempts = ledger.begin_alone(messages[0])
        if attempts > job.settings.max_attempts:
            ledger.dead_letter(messages[0], attempts)
            return None
    else:
        ledger.begin(messages)
    try:
        fetched = fetching.fetch(client, group, FETCH_ITEMS)
    except Exception as exc:
        raise unfetched(job, ledger, messages, exc) from exc
    faults.point(job.settings, AFTER_FETCH)
    return fetched


def _sizes(job: Job, ledger: Ledger, client: IMAPClient, folder: str, uidvalidity: int,
           uids: list[int]) -> tuple[dict[int, int], dict[int, datetime]]:
    """RFC822.SIZE of each UID, to bound the bytes of each batch, and its INTERNALDATE (the
    server's arrival time, for "process email from"), in one cheap FETCH."""
    if not uids:
        return {}, {}
    try:
        fetched = fetching.fetch(client, uids, [b"RFC822.SIZE", b"INTERNALDATE"])
    except Exception as exc:
        # Dovecot reads a message to size it and drops the session (BYE) when it cannot: one
        # bad message fails the whole FETCH. Every one becomes suspect, fetched alone next time.
        messages = [imap_message(job, folder, uidvalidity, uid) for uid in uids]
        ledger.begin(messages)
        raise unfetched(job, ledger, messages, exc) from exc
    sizes = {uid: int(data.get(b"RFC822.SIZE", 0)) for uid, data in fetched.items()}
    arrivals = {uid: when for uid, data in fetched.items()
                if (when := internaldate(data.get(b"INTERNALDATE"))) is not None}
    return sizes, arrivals


def _arrival(client: IMAPClient, uids: list[int]) -> datetime | None:
    """Server arrival date of the lowest UID (the oldest not yet ingested), or None."""
    if not uids:
        return None
    first = fetching.fetch(client, [min(uids)], [b"INTERNALDATE"]).get(min(uids), {})
    return internaldate(first.get(b"INTERNALDATE"))


def backlog(client: IMAPClient, folder: str, last_uid: int) -> tuple[int, datetime | None]:
    """How many messages above the checkpoint, and the oldest one's arrival (ingest lag)."""
    client.select_folder(folder, readonly=True)
    uids = [u for u in client.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid]
    return len(uids), _arrival(client, uids)


def ingest(job: Job, client: IMAPClient, batch_size: int) -> int:
    total = 0
    for n, folder in enumerate(job.mailbox.folders):
        if n:
            job.between_batches()
        total += sync_folder(job, client, folder, batch_size)
    return total

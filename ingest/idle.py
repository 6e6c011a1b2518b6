"""IMAP IDLE on a mailbox's INBOX after a pass left nothing behind, with polling as fallback.

Why only when the process serves a single polled mailbox: a process serves its mailboxes one
connection at a time (fencing, the rebalance hand-over and the "never two sessions of one
mailbox" proof all rest on that). IDLE holds the connection open, so while it waits no other
mailbox of the process could be polled. With one mailbox there is nothing else to poll, and IDLE
only shortens the delay; with several, the process polls on each profile's interval (per-mailbox
threads with their own connections and fence checks would be the next step, not a tweak).

The wait is cut into short IDLE rounds (``ingest_idle_wait_ms`` each, a few seconds): between
two rounds the caller's checks run — a rebalance or SIGTERM (:meth:`Job.between_batches`
raises ``Revoked``) and "still the only mailbox" — so a revocation is honoured within one round,
just as between two batches. After ``poll_interval_s`` the pass ends and the next full pass
looks at every folder (IDLE watches the INBOX only; a Sent folder is caught by the poll).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from imapclient import IMAPClient

from ingest import imap, store
from ingest.job import Job

log = logging.getLogger(__name__)

INBOX = "INBOX"


def usable(job: Job, client: IMAPClient) -> bool:
    """The server offers IDLE and the mailbox monitors its INBOX."""
    return client.has_capability("IDLE") and any(
        f.name.upper() == INBOX for f in job.mailbox.folders
    )


def _new_mail(responses: list[tuple[object, ...]]) -> bool:
    # "* n EXISTS": the folder grew. (EXPUNGE or FETCH flag updates are not new mail.)
    return any(len(r) > 1 and r[1] == b"EXISTS" for r in responses)


def wait_and_ingest(job: Job, client: IMAPClient, batch_size: int, *, wait_s: float,
                    until: float, still_sole: Callable[[], bool],
                    on_wakeup: Callable[[], None]) -> int:
    """IDLE on the INBOX until ``until`` (monotonic), ingesting whenever mail arrives.
    Returns messages published. Raises what ``job.between_batches`` raises."""
    folder = next(f for f in job.mailbox.folders if f.name.upper() == INBOX)
    published = 0
    # Mail may have arrived between the pass's SEARCH and the first IDLE (IDLE reports only
    # changes since the folder was last synchronised): UIDNEXT above the checkpoint says so.
    # Looked at again only after a sync that published something, so mail we do not take
    # (older than "received after") cannot make this a busy loop. The folder stays selected
    # between rounds: a re-SELECT would swallow an EXISTS the server was about to push.
    check = True
    while time.monotonic() < until:
        job.between_batches()
        if not still_sole():
            return published
        if check:
            info = client.select_folder(folder.name)
            cp = store.checkpoint(job.conn, job.mailbox_id, folder.name)
            job.conn.commit()  # no transaction held open while idling
            resync = cp is None or cp.uidvalidity != int(info[b"UIDVALIDITY"])
            check = False
            if resync or int(info.get(b"UIDNEXT", 0)) - 1 > cp.last_uid:  # type: ignore[union-attr]
                n = imap.sync_folder(job, client, folder, batch_size)
                published += n
                check = n > 0
                continue
        client.idle()
        responses: list[tuple[object, ...]] = []
        try:
            responses = client.idle_check(timeout=max(0.1, min(wait_s, until - time.monotonic())))
        finally:
            # An EXISTS that came while the round was ending is among DONE's responses.
            responses += client.idle_done()[1]
        if _new_mail(responses):
            on_wakeup()
            log.info("mailbox=%s IDLE: new mail in %s", job.mailbox.address, folder.name)
            n = imap.sync_folder(job, client, folder, batch_size)
            published += n
            check = n > 0
    return published

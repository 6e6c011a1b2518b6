"""Messages the server will not serve: counted per message, dead-lettered, passed.

Content must never stop a mailbox. A message can fail its fetch for good — a file the server
cannot read (Dovecot answers IMAP with BYE, POP3 with ``-ERR``), a line longer than any sane
limit — and a session can also drop while a message is in flight. The two look alike, so the
rule is the durable attempt count of :mod:`mailroom.attempts`, per message instead of per
offset, in PostgreSQL (``ingest_fetch_attempts``, migration 0052):

- before a batch is fetched, a row per message is written (``attempts = 0``) and committed;
  the rows go when the messages are published (IMAP: in the checkpoint's transaction; POP3:
  with the UIDLs). Rows still there at the next pass mean the batch failed or a process died
  with it in flight: those messages are *suspect*.
- a suspect is fetched alone, and ``attempts`` goes up by one — committed *before* the fetch,
  so a process killed by the message counts too, whichever process of the group tries next.
  A POP3 RETR (or the ``TOP`` that reads a message's arrival for "process email from") that
  fails counts at once: the command named that message alone.
- a failed fetch ends the pass as :class:`~ingest.errors.MessageUnfetched` (transient): the
  mailbox retries after backoff, the messages before it are published and checkpointed.
- once a message has started ``max_attempts`` lone fetches without success, the next pass
  does not fetch it: it is dead-lettered (stage ``ingest``, reason ``unfetchable``, key its raw
  identity, no payload — nothing was obtained) and passed. It stays on the server untouched:
  no flag, move or delete for mail that never reached the topic.

A message larger than ``ingest_max_message_bytes`` by the server's own count (IMAP
``RFC822.SIZE``, POP3 ``LIST``) is not fetched at all: it is dead-lettered at once with reason
``too_large`` (mailbox, UID or UIDL, size; no payload) and passed the same way, so one huge
message can neither exhaust a process's memory nor hold a mailbox back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from ingest import store
from ingest.errors import MessageUnfetched, classify
from ingest.job import Job
from mailroom.deadletters import DeadLetterWriter
from mailroom.records.raw import raw_identity
from mailroom.stage.types import Source
from mailroom.tracing import Tracer

log = logging.getLogger(__name__)

STAGE = "ingest"
REASON = "unfetchable"
TOO_LARGE = "too_large"


@dataclass(frozen=True)
class Message:
    """One message as the server names it: a UID under a UIDVALIDITY, or a POP3 UIDL."""

    identity: str  # the raw topic key
    folder: str
    uidvalidity: int | None = None
    uid: int | None = None
    uidl: str | None = None

    @property
    def label(self) -> str:
        if self.uidl is not None:
            return f"POP3 message UIDL {self.uidl}"
        return f"UID {self.uid} (UIDVALIDITY {self.uidvalidity}) in folder {self.folder!r}"


def imap_message(job: Job, folder: str, uidvalidity: int, uid: int) -> Message:
    return Message(raw_identity(str(job.mailbox_id), "imap", folder, uidvalidity, uid), folder,
                   uidvalidity=uidvalidity, uid=uid)


def pop3_message(job: Job, folder: str, uidl: str) -> Message:
    return Message(raw_identity(str(job.mailbox_id), "pop3", uidl=uidl), folder, uidl=uidl)


class Ledger:
    """The attempt count of one mailbox's messages. Methods that say so commit ``job.conn``
    (what they record must survive a crash); the others leave the transaction to the caller."""

    def __init__(self, job: Job) -> None:
        self.job = job

    @property
    def _id(self) -> int:
        return self.job.mailbox_id

    def imap_suspects(self, folder: str, uidvalidity: int) -> set[int]:
        # Dead-lettered ones included: if the checkpoint did not pass one (the process lost
        # the mailbox in between), alone it is dead-lettered again at once, never re-batched.
        rows = self.job.conn.execute(
            "SELECT uid FROM ingest_fetch_attempts WHERE mailbox_id = %s AND folder = %s "
            "AND uidvalidity = %s", (self._id, folder, uidvalidity))
        return {int(r[0]) for r in rows}

    def pop3_suspects(self) -> set[str]:
        rows = self.job.conn.execute(
            "SELECT uidl FROM ingest_fetch_attempts WHERE mailbox_id = %s AND uidl IS NOT NULL "
            "AND dead_lettered_at IS NULL", (self._id,))
        return {r[0] for r in rows}

    def pop3_dead_lettered(self) -> set[str]:
        rows = self.job.conn.execute(
            "SELECT uidl FROM ingest_fetch_attempts WHERE mailbox_id = %s AND uidl IS NOT NULL "
            "AND dead_lettered_at IS NOT NULL", (self._id,))
        return {r[0] for r in rows}

    def begin(self, messages: list[Message]) -> None:
        """A batch is about to be fetched: its messages are in flight (commits)."""
        self.job.conn.execute(
            "INSERT INTO ingest_fetch_attempts (mailbox_id, identity, folder, uidvalidity, uid,"
            " uidl) SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[],"
            " %s::text[]) ON CONFLICT DO NOTHING",
            (self._id, [m.identity for m in messages], [m.folder for m in messages],
             [m.uidvalidity for m in messages], [m.uid for m in messages],
             [m.uidl for m in messages]))
        self.job.conn.commit()

    def attempts(self, m: Message) -> int:
        """How many failed fetches of ``m`` have counted so far (0: none)."""
        row = self.job.conn.execute(
            "SELECT attempts FROM ingest_fetch_attempts WHERE mailbox_id = %s AND identity = %s",
            (self._id, m.identity)).fetchone()
        return int(row[0]) if row else 0

    def begin_alone(self, m: Message) -> int:
        """One more lone fetch of ``m`` starts now; returns how many have started (commits)."""
        row = self.job.conn.execute(
            "INSERT INTO ingest_fetch_attempts AS a (mailbox_id, identity, folder, uidvalidity,"
            " uid, uidl, attempts) VALUES (%s,%s,%s,%s,%s,%s,1) ON CONFLICT (mailbox_id, identity)"
            " DO UPDATE SET attempts = a.attempts + 1, updated_at = now() RETURNING attempts",
            (self._id, m.identity, m.folder, m.uidvalidity, m.uid, m.uidl)).fetchone()
        self.job.conn.commit()
        assert row is not None
        return int(row[0])

    def failed(self, messages: list[Message], cause: str, *, count: bool = False) -> None:
        """The fetch of these messages failed (commits). ``count``: it was this one message's
        own command that failed (a POP3 RETR inside a batch), so it counts as a lone attempt."""
        self.job.conn.execute(
            "UPDATE ingest_fetch_attempts SET last_error = %s, updated_at = now(), "
            "attempts = attempts + %s WHERE mailbox_id = %s AND identity = ANY(%s)",
            (cause[:2000], 1 if count else 0, self._id, [m.identity for m in messages]))
        self.job.conn.commit()

    def forget(self, messages: Iterable[Message]) -> None:
        """Fetched (or never tried): nothing suspect about them. In the caller's transaction.
        A dead-lettered POP3 message keeps its row: it is that message's checkpoint."""
        self.job.conn.execute(
            "DELETE FROM ingest_fetch_attempts WHERE mailbox_id = %s AND identity = ANY(%s) "
            "AND dead_lettered_at IS NULL",
            (self._id, [m.identity for m in messages]))

    def prune_imap(self, folder: str, uidvalidity: int, last_uid: int) -> None:
        """The checkpoint moved to ``last_uid``: rows at or below it (or of an old UIDVALIDITY)
        are settled. In the caller's (the checkpoint's) transaction."""
        self.job.conn.execute(
            "DELETE FROM ingest_fetch_attempts WHERE mailbox_id = %s AND folder = %s "
            "AND uid IS NOT NULL AND (uidvalidity <> %s OR uid <= %s)",
            (self._id, folder, uidvalidity, last_uid))

    def prune_pop3(self, on_server: set[str]) -> None:
        """Rows of UIDLs no longer on the server. In the caller's transaction."""
        self.job.conn.execute(
            "DELETE FROM ingest_fetch_attempts WHERE mailbox_id = %s AND uidl IS NOT NULL "
            "AND NOT (uidl = ANY(%s))", (self._id, list(on_server)))

    def last_error(self, m: Message) -> str:
        row = self.job.conn.execute(
            "SELECT last_error FROM ingest_fetch_attempts WHERE mailbox_id = %s AND identity = %s",
            (self._id, m.identity)).fetchone()
        return row[0] if row and row[0] else "no error recorded (the process died fetching it)"

    def dead_letter(self, m: Message, attempts: int) -> None:
        """Send ``m``'s dead letter and wait for the broker; mark it (POP3: fenced, committed —
        the mark is its checkpoint). IMAP moves the checkpoint past it in the caller."""
        reason = (f"mailbox {self.job.mailbox.address}: {m.label} could not be fetched in "
                  f"{attempts - 1} attempt(s) alone; last error: {self.last_error(m)}. It was "
                  "passed and stays on the server untouched.")
        self._pass(m, REASON, reason, attempts - 1)

    def too_large(self, m: Message, size: int) -> None:
        """``m`` is over ``ingest_max_message_bytes`` by the server's count: dead-letter it
        unfetched and pass it, as :meth:`dead_letter` does."""
        limit = self.job.settings.ingest_max_message_bytes
        reason = (f"mailbox {self.job.mailbox.address}: {m.label} is {size} bytes by the "
                  f"server's count, over ingest_max_message_bytes ({limit}); it was not "
                  "fetched, was passed and stays on the server untouched.")
        self._pass(m, TOO_LARGE, reason, 0, size=size)

    def _pass(self, m: Message, code: str, reason: str, attempts: int,
              size: int | None = None) -> None:
        job = self.job
        source = Source(job.settings.topic("raw"), -1, -1, m.identity.encode(), None, -1)
        DeadLetterWriter(job.producer, job.codec, job.settings).send_and_wait(
            STAGE, code, reason, source, attempts)
        detail = {"reason_code": code, "reason": reason[:1000], "mailbox": job.mailbox.address,
                  "folder": m.folder}
        if size is not None:
            detail["size"] = str(size)
        Tracer(job.producer, job.codec, job.settings, STAGE).emit(
            m.identity, "dead_lettered", detail, raw_identity=m.identity)
        if m.uidl is not None:
            # POP3 has no high-water mark: this row is the message's checkpoint (a too-large
            # one was never in flight and has none yet).
            store.fence(job.conn, self._id, job.generation)
            job.conn.execute(
                "INSERT INTO ingest_fetch_attempts AS a (mailbox_id, identity, folder, uidl,"
                " last_error, dead_lettered_at) VALUES (%s,%s,%s,%s,%s,now())"
                " ON CONFLICT (mailbox_id, identity) DO UPDATE SET dead_lettered_at = now(),"
                " updated_at = now()",
                (self._id, m.identity, m.folder, m.uidl, reason[:2000]))
        else:
            # IMAP: the caller's checkpoint passes it (and prunes the row of an unfetchable
            # one); a too-large one gets no row, so a crash before the checkpoint finds it
            # too large again instead of fetching it alone.
            job.conn.execute(
                "UPDATE ingest_fetch_attempts SET dead_lettered_at = now(), updated_at = now() "
                "WHERE mailbox_id = %s AND identity = %s", (self._id, m.identity))
        job.conn.commit()
        log.warning("mailbox=%s %s dead-lettered (%s) and passed", job.mailbox.address, m.label,
                    code)


def unfetched(job: Job, ledger: Ledger, messages: list[Message], exc: BaseException, *,
              count: bool = False) -> MessageUnfetched:
    """Record a failed fetch and name it: the error that ends the pass."""
    cause = str(classify(exc, job.profile.host, job.profile.port))
    ledger.failed(messages, cause, count=count)
    what = messages[0].label if len(messages) == 1 else (
        f"a batch of {len(messages)} messages (each is fetched alone next time)")
    log.warning("mailbox=%s %s not fetched: %s", job.mailbox.address, what, cause)
    return MessageUnfetched(f"{what} could not be fetched: {cause}")

"""The unwrap stage on the kernel's stream runner: ``mailroom.raw`` → ``mailroom.unwrapped``.

Per raw message: fetch its bytes if it came by claim check, run the pure
:func:`unwrap.unwrap.unwrap`, put set-aside attachments into the blob store, make every Email
record fit the claim-check threshold, and answer with one output per Email (keyed by its dedupe
key, so copies of one email from several mailboxes meet in one partition) and one trace event
per Email — or a Rejection, which the runner turns into a dead letter (with its
``dead_lettered`` trace event keyed by the raw identity).

Why the kafka-python runner and not faust-streaming: unwrap is stateless per message (no table,
no window, no look-up per message — the forwarders are a cached snapshot), and CPU-bound. Faust
agents would add a second consumer loop and event loop that buy nothing here, while the kernel
runner already gives what the guarantees need: the handler in a worker process (parsing never
starves heartbeats, a hang is killed at ``stage_budget_ms``), the durable attempt counter
(crash loops are dead-lettered unparsed), dead letters and flush-before-commit.

The handler is an instance of :class:`UnwrapHandler`, made in each worker by the spec's
``make_handler`` with the runner's settings; it opens its own PostgreSQL connection there on
first use (blob store, the reference records' aliases). The mailbox directory (the forwarders)
is read by the runner, which hands the worker a copy fresh for every record it is given
(:mod:`mailroom.stage.mailboxcopy`): the worker opens no Kafka client. I/O at this edge is
confined to the database; the decision itself stays the pure function.
"""

from __future__ import annotations

import argparse
import functools
import logging
from collections.abc import Mapping
from typing import Any

import psycopg

from mailroom.blobs import Blobs, BlobStore
from mailroom.codec import Codec
from mailroom.db import connect
from mailroom.errors import TransientError
from mailroom.records.email import Email
from mailroom.records.mailbox import MailboxRecord
from mailroom.records.raw import RawMail
from mailroom.settings import Settings
from mailroom.stage.execute import StageSpec
from mailroom.stage.types import Context, Outcome, Output, Rejection, Trace
from unwrap import claims
from unwrap.attribution import HELD
from unwrap.context import Forwarders, SourcePosition, UnwrapContext
from unwrap.forwarders import (
    Aliases,
    ForwarderCache,
    ForwardMailboxes,
    forward_mailboxes,
    load_aliases,
)
from unwrap.unwrap import Skipped, unwrap_all

log = logging.getLogger(__name__)

STAGE = "unwrap"
#: Verdicts that depend on who forwards: checked again against a fresh forwarder table.
_RECHECKED = frozenset({"not_a_forwarder", HELD})
_DETAIL_CHARS = 1000  # a trace event explains; the record itself carries the full text


class _Edges:
    """What the handler touches besides the pure function; lives only in the handling process."""

    def __init__(self, settings: Settings, fixed: ForwardMailboxes | None) -> None:
        self.settings = settings
        self.codec = Codec.from_settings(settings)
        self.conn: psycopg.Connection | None = None
        self.blobs: Blobs | None = None
        self.fixed = fixed
        #: the mailbox directory as the runner last handed it (None: not yet)
        self.mailboxes: Mapping[str, MailboxRecord] | None = None
        self.aliases: ForwarderCache[Aliases] = ForwarderCache(lambda: load_aliases(self.db()))
        #: the table and what it was built from
        self._built: tuple[Mapping[str, MailboxRecord], Aliases, ForwardMailboxes] | None = None
        self._context: UnwrapContext | None = None
        self._context_of: ForwardMailboxes | None = None

    def table(self, written_ms: int | None = None) -> ForwardMailboxes:
        """The forwarder table: rebuilt when the runner's copy of the directory or the aliases
        changed (``written_ms``: see :meth:`ForwarderCache.get`)."""
        if self.fixed is not None:
            return self.fixed
        mailboxes = self.mailboxes
        if mailboxes is None:  # the runner hands the copy over before any record
            raise RuntimeError("unwrap: no mailbox directory was handed to this process")
        aliases = self.aliases.get(written_ms)
        built = self._built
        if built is None or built[0] is not mailboxes or built[1] is not aliases:
            built = self._built = (mailboxes, aliases,
                                   forward_mailboxes(mailboxes.values(), aliases))
        return built[2]

    def db(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed:
            # Autocommit: a blob must be durable before the record referencing it is produced.
            self.conn = connect(self.settings, autocommit=True)
            self.blobs = BlobStore(self.conn)
        return self.conn

    def blob_store(self) -> Blobs | None:
        self.db()
        return self.blobs

    def context(self, written_ms: int | None = None) -> UnwrapContext:
        table = self.table(written_ms)
        if self._context is None or table is not self._context_of:
            # Built only when the table changes: the context normalises it once.
            self._context = UnwrapContext.from_settings(self.settings, table.forwarders,
                                                        table.unchecked, table.unapproved)
            self._context_of = table
        return self._context

    def reset(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn, self.blobs = None, None




class _Handover:
    """The raw message as unwrap reads it: the record's fields, and its bytes given out once.

    Unwrap reads ``content`` once, parses it and lets it go. Were the bytes also held here (or
    by the RawMail the claim check resolved), a 50 MB message would stay in memory for the whole
    unwrap beside its parsed text and its decoded attachments. (A message small enough to travel
    inline is also held by its record; only claim-checked ones are big enough to matter.)
    """

    __slots__ = ("_raw", "_content")

    def __init__(self, raw: RawMail, content: bytes | bytearray | None) -> None:
        self._raw = raw
        self._content = content

    @property
    def content(self) -> bytes | bytearray | None:
        data, self._content = self._content, None
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class UnwrapHandler:
    """The stage's handler, one per handling process.

    ``forwarders``: a fixed table instead of the mailbox directory (tests, ``mailroom unwrap``);
    ``unchecked``: with it, the forward mailboxes that skip the Authentication-Results check.
    """

    def __init__(self, settings: Settings, forwarders: Forwarders | None = None,
                 unchecked: frozenset[str] = frozenset()) -> None:
        self.settings = settings
        self.fixed_forwarders = forwarders
        self.fixed_unchecked = unchecked
        self._edges: _Edges | None = None

    def use_mailboxes(self, mailboxes: Mapping[str, MailboxRecord]) -> None:
        """The runner's copy of the mailbox directory (:mod:`mailroom.stage.mailboxcopy`)."""
        self.edges.mailboxes = mailboxes

    @property
    def edges(self) -> _Edges:
        if self._edges is None:
            fixed = None if self.fixed_forwarders is None else ForwardMailboxes(
                self.fixed_forwarders, self.fixed_unchecked)
            self._edges = _Edges(self.settings, fixed)
        return self._edges

    def __call__(self, raw: RawMail, context: Context) -> Outcome | Rejection:
        try:
            return self._handle(raw, context)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            # The database went away under us: reconnect on the retry the runner makes.
            self.edges.reset()
            raise TransientError(f"PostgreSQL: {exc}") from exc

    def _handle(self, raw: RawMail, context: Context) -> Outcome | Rejection:
        edges = self.edges
        unwrap_context = edges.context()
        limits = unwrap_context.limits
        blobs = edges.blob_store() if raw.blob_ref is not None else None
        resolved = claims.resolve_raw(raw, blobs, limits.max_message_bytes)
        if isinstance(resolved, Rejection):
            return resolved
        content = resolved.content
        if raw.blob_ref is not None and content is not None:
            # Fetched by claim check: big enough for a copy now (before anything else is held)
            # to pay for the parse emptying it at once (unwrap.mime.parse).
            content = bytearray(content)
        handover = _Handover(raw, content)
        del resolved, content  # the handover is now the only holder of the bytes
        src = context.source
        position = SourcePosition(src.topic, src.partition, src.offset)
        result = unwrap_all(handover, unwrap_context, position)
        if isinstance(result, Rejection) and result.reason_code in _RECHECKED:
            fresh = edges.context(written_ms=src.timestamp)
            if fresh is not unwrap_context:
                # The handover gave its bytes out once: read them again (a rare path).
                again = claims.resolve_raw(raw, blobs, limits.max_message_bytes)
                if not isinstance(again, Rejection):
                    result = unwrap_all(_Handover(raw, again.content), fresh, position)
        if isinstance(result, Rejection):
            return result
        return self._outcome(raw, result.emails, result.skipped)

    def _outcome(self, raw: RawMail, emails: list[Email],
                 skipped: tuple[Skipped, ...] = ()) -> Outcome | Rejection:
        edges = self.edges
        limit = self.settings.claim_check_bytes

        def measure(e: Email) -> int:
            # Exact: the brief's threshold is on the whole record.
            return len(edges.codec.encode_record(e))

        outputs: list[Output] = []
        traces: list[Trace] = []
        for n, email in enumerate(emails, 1):
            if email.blobs:
                claims.store_blobs(email, edges.blob_store())
            encoded = edges.codec.encode_record(email)  # measured, then sent as it is
            if len(encoded) > limit:
                email = claims.fit(email, limit, measure, edges.blob_store())
                encoded = edges.codec.encode_record(email)
            if len(encoded) > self.settings.max_record_bytes:
                return _too_big(email, len(encoded), self.settings)
            outputs.append(Output("unwrapped", email.dedupe_key, email, encoded))
            traces.append(_trace(raw, email, n, len(emails)))
        traces += [_skip_trace(raw, s) for s in skipped]  # a skip is never silent
        return Outcome(outputs=tuple(outputs), traces=tuple(traces))


def _too_big(email: Email, size: int, settings: Settings) -> Rejection:
    return Rejection(
        "record_too_large",
        f"the Email record of {email.dedupe_key} is {size} bytes even with attachments and "
        f"bodies moved to the blob store, over the topic limit of {settings.max_record_bytes} "
        "bytes (max_record_bytes): too many addresses or references",
    )


def _skip_trace(raw: RawMail, skip: Skipped) -> Trace:
    d = skip.email.delivery
    by = d.forwarded_by_user or f"queue:{d.forwarded_by_queue}"
    return Trace(key=skip.email.dedupe_key, event="skipped",
                 detail={"reason": skip.reason[:_DETAIL_CHARS], "forwarded_by": by,
                         "mailbox": f"{raw.mailbox_address} ({raw.owner_kind} {raw.mailbox_id})"},
                 message_id=skip.email.message_id, dedupe_key=skip.email.dedupe_key,
                 raw_identity=raw.identity)


def _trace(raw: RawMail, email: Email, n: int, total: int) -> Trace:
    d = email.delivery
    detail = {
        "copy_kind": d.copy_kind,
        "mailbox": f"{raw.mailbox_address} ({raw.owner_kind} {raw.mailbox_id})",
        "original": f"{n} of {total}",
        "content_hash": email.content_hash,
    }
    forwarder = d.forwarded_by_user or (f"queue:{d.forwarded_by_queue}"
                                        if d.forwarded_by_queue else "")
    if forwarder:
        detail["forwarded_by"] = f"{forwarder} <{d.forwarder_address}>"
        detail["via_forward_mailbox"] = d.forward_mailbox_id or ""
    if d.path:
        detail["path"] = " / ".join(d.path)[:_DETAIL_CHARS]
    claimed = [a.name for a in email.attachments if a.blob_ref]
    if claimed:
        detail["claim_checked"] = ", ".join(claimed)[:_DETAIL_CHARS]
    if raw.blob_ref:
        detail["raw_claim_check"] = raw.blob_ref
    if email.warnings:
        detail["warnings"] = "; ".join(email.warnings)[:_DETAIL_CHARS]
    return Trace(key=email.dedupe_key, event="unwrapped", detail=detail,
                 message_id=email.message_id, dedupe_key=email.dedupe_key,
                 raw_identity=raw.identity)


def spec(forwarders: Forwarders | None = None) -> StageSpec:
    """``forwarders``: a fixed table instead of ingest's configuration (tests)."""
    return StageSpec(name=STAGE, input_topic="raw",
                     make_handler=functools.partial(UnwrapHandler, forwarders=forwarders),
                     input_type=RawMail, reads_mailboxes=forwarders is None)


def main(settings: Settings, args: argparse.Namespace) -> int:
    """Entry of ``mailroom run unwrap``."""
    from mailroom.stage.run import run_stage

    return run_stage(spec(), settings)

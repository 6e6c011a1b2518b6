"""The unwrap stage's pure function: one raw message in, its Emails or a Rejection out.

No broker, no database, no clock: the same input and context always give the same output, so a
replay re-derives the same records. The stage runner (``stage.py``) does the I/O around it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC
from email.message import Message

from mailroom.records.email import Email
from unwrap import forwarded, inline, redirects
from unwrap.addresses import AddressError, ascii_lower, parse_mailbox
from unwrap.arrival import arrival
from unwrap.attribution import Attribution, attribute
from unwrap.content import LimitExceeded, collect
from unwrap.context import RawInput, Rejection, SourcePosition, UnwrapContext
from unwrap.normalise import Origin, normalise
from unwrap.parse import parse_with_notes, raw_header, spaced_from_in_header


@dataclass(frozen=True)
class Skipped:
    """An original not processed: it arrived before its forwarder's "process email from"."""

    email: Email
    reason: str


@dataclass(frozen=True)
class Unwrapped:
    emails: list[Email]
    skipped: tuple[Skipped, ...] = ()


def unwrap(raw: RawInput, context: UnwrapContext,
           source: SourcePosition | None = None) -> list[Email] | Rejection:
    """The Emails in ``raw`` — one for user and queue mail, one per original for a forward —
    or why the message becomes a dead letter. Any input bytes give one of the two; an exception
    is a bug in Mailroom, and the stage runner dead-letters that message ``crash`` with the
    traceback (a catch-all here would hide it). Originals skipped for their forwarder's
    "process email from" are left out (:func:`unwrap_all` says which and why)."""
    result = unwrap_all(raw, context, source)
    return result if isinstance(result, Rejection) else result.emails


def unwrap_all(raw: RawInput, context: UnwrapContext,
               source: SourcePosition | None = None) -> Unwrapped | Rejection:
    """:func:`unwrap`, with the originals it skipped and why."""
    try:
        result = _unwrap(raw, context, source)
    except LimitExceeded as exc:
        return Rejection(exc.code, exc.reason)
    except RecursionError:
        return Rejection("too_deep", "the MIME structure is nested too deeply to read")
    return result if isinstance(result, Rejection | Unwrapped) else Unwrapped(result)


def _unwrap(raw: RawInput, context: UnwrapContext,
            source: SourcePosition | None) -> list[Email] | Unwrapped | Rejection:
    content = raw.content
    if content is None:
        return Rejection("no_content", "the raw message's bytes were not resolved from the "
                         "blob store before unwrap")
    limits = context.limits
    if len(content) > limits.max_message_bytes:
        return Rejection("too_large", f"the message is {len(content)} bytes, over the "
                         f"{limits.max_message_bytes}-byte limit (unwrap_max_message_bytes)")
    spaced_from = raw.owner_kind == "forward" and spaced_from_in_header(content)
    msg, notes = parse_with_notes(content)
    # The bytes are not needed past the parse: let them go, so a big message is not held
    # beside its parsed text and decoded attachments. (The stage hands a claim-checked message
    # over as a bytearray, which the parse empties as soon as it has read it.)
    del content
    if raw.owner_kind != "forward":
        return [normalise(msg, raw, Origin(warnings=tuple(notes)), limits, source)]

    table = context.forwarders.get(raw.mailbox_id, {})
    redirect = redirects.claim(msg, raw.mailbox_address, table.keys())
    if isinstance(redirect, Rejection):
        return redirect
    if redirect is not None and not _from_forwarder(msg, table.keys()):
        # The original itself, sent on by a redirect: From is the original sender's.
        return _redirected(msg, raw, redirect, context, notes, source)
    originals, warnings = forwarded.expand(msg, table.keys(), limits)
    warnings = notes + warnings
    if not originals and context.inline_forwards:
        found = inline.find_inline(collect(msg, limits).text)
        if found is not None:
            message, notes = found
            originals = [forwarded.Original(message, "inline", ("inline text body",),
                                            tuple(notes))]
    if not originals and redirect is not None:
        # A forwarder's own message, redirected by their rule (nothing attached to open).
        return _redirected(msg, raw, redirect, context, warnings, source)
    if not originals:
        if context.non_forwarded == "accept":
            origin = Origin(warnings=("no forwarded original: kept as mail of the forward "
                                      "mailbox itself, attributed to no user",
                                      *warnings))
            return [normalise(msg, raw, origin, limits, source)]
        detail = f" ({'; '.join(warnings)})" if warnings else ""
        return Rejection("not_forwarded",
                         f"no forwarded original in this message to forward mailbox "
                         f"{raw.mailbox_id}{detail}; set unwrap_non_forwarded=accept to keep "
                         "such mail")

    who = attribute(msg, raw.mailbox_id, context, spaced_from)
    if isinstance(who, Rejection):
        return who
    return _by_arrival(who, [(o.message, normalise(o.message, raw, _origin(o, who, warnings),
                                                   limits, source)) for o in originals])


def _from_forwarder(msg: Message, addresses: Collection[str]) -> bool:
    """Is the message's From a forwarder of this forward mailbox (a forward as attachment)?"""
    value = raw_header(msg, "from", 1_000)
    try:
        return ascii_lower(parse_mailbox(value).address) in addresses
    except AddressError:
        return False


def _redirected(msg: Message, raw: RawInput, found: redirects.Claim, context: UnwrapContext,
                warnings: list[str], source: SourcePosition | None) -> Unwrapped | Rejection:
    who = redirects.attribute(msg, raw.mailbox_id, found, context)
    if isinstance(who, Rejection):
        return who
    original = forwarded.Original(msg, "direct", (f"redirected ({found.source})",))
    return _by_arrival(who, [(msg, normalise(msg, raw, _origin(original, who, warnings),
                                             context.limits, source))])


def _by_arrival(who: Attribution, found: list[tuple[Message, Email]]) -> Unwrapped:
    """The forwarder's originals split by its "process email from": an original that arrived
    at the forwarder's mailbox before it is skipped, with the reason."""
    cutoff = who.forwarder.process_from
    kept: list[Email] = []
    skipped: list[Skipped] = []
    for message, email in found:
        arrived, how = arrival(message)
        if cutoff is not None and arrived is not None and arrived < cutoff:
            skipped.append(Skipped(email, (
                f"arrived {arrived.isoformat()} ({how}) at {who.address}, before its mailbox's "
                f"'process email from' {cutoff.astimezone(UTC).isoformat()}")))
        else:
            kept.append(email)
    return Unwrapped(kept, tuple(skipped))


def _origin(original: forwarded.Original, who: Attribution, warnings: list[str]) -> Origin:
    return Origin(
        copy_kind=original.copy_kind,
        path=original.path,
        forwarded_by_user=who.forwarder.id if who.forwarder.kind == "user" else None,
        forwarded_by_queue=who.forwarder.id if who.forwarder.kind == "queue" else None,
        forwarder_address=who.address,
        forward_mailbox_id=who.forward_mailbox_id,
        warnings=original.warnings + tuple(warnings) + who.notes,
    )

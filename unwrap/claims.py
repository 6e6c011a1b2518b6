"""Claim checks around unwrap: raw bytes in from the blob store, bulky Email content out to it.

Three jobs, all so that no record on any topic exceeds the broker's limit:

1. a RawMail that ingest sent by claim check carries ``blob_ref``: fetch its bytes (checked
   against the sha256 they are stored under) before unwrap reads them;
2. attachments the pure function already set aside (over ``unwrap_blob_threshold_bytes``, in
   ``Email.blobs``) are put into the blob store *before* the record referencing them is
   produced — a reader must never find a reference to a blob that does not exist yet;
3. an Email whose encoded record would still exceed ``claim_check_bytes`` (measured on the whole
   record, as the brief says, not per part) sheds its largest inline attachment contents to the
   blob store, largest first, until it fits. If the bodies alone are too big, the whole body is
   stored as a blob-backed attachment (``body.txt`` / ``body.html``) and the field keeps a
   prefix, with a warning saying so: route still has text to match on, and nothing is lost.

The blob store is content-addressed, so a redelivered message stores nothing twice and yields
the same references (replays converge).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable

from mailroom.blobs import Blobs
from mailroom.errors import TransientError
from mailroom.records.email import Attachment, Email
from mailroom.records.raw import RawMail
from unwrap.context import Rejection

Measure = Callable[[Email], int]


def resolve_raw(raw: RawMail, blobs: Blobs | None, max_message_bytes: int
                ) -> RawMail | Rejection:
    """``raw`` with its bytes in ``content`` (fetched when it came by claim check)."""
    if raw.blob_ref is None:
        return raw
    if raw.size > max_message_bytes:
        # Checked before fetching: a 500 MB blob must not be loaded only to be refused.
        return Rejection("too_large", f"the message is {raw.size} bytes, over the "
                         f"{max_message_bytes}-byte limit (unwrap_max_message_bytes)")
    if blobs is None:
        raise TransientError("this RawMail came by claim check but no blob store is available")
    if not blobs.exists(raw.blob_ref):
        return Rejection("blob_missing", f"the message's bytes (blob {raw.blob_ref}) are not in "
                         "the blob store: expired or deleted before unwrap read them")
    data = bytes(blobs.get(raw.blob_ref))
    if hashlib.sha256(data).hexdigest() != raw.blob_ref:
        return Rejection("blob_corrupt", f"blob {raw.blob_ref} does not hash to its reference")
    return dataclasses.replace(raw, content=data, blob_ref=None)


def store_blobs(email: Email, blobs: Blobs | None) -> None:
    """Put the attachments unwrap set aside; must happen before the record is produced."""
    if email.blobs and blobs is None:
        raise TransientError("attachments need the blob store but none is available")
    for blob in email.blobs:
        assert blobs is not None
        blobs.put(blob.content)


def fit(email: Email, limit: int, measure: Measure, blobs: Blobs | None) -> Email:
    """``email`` itself, or a copy whose encoded record is at most ``limit`` bytes (as far as
    moving content to the blob store can make it so; the caller checks the topic limit)."""
    size = measure(email)
    if size <= limit:
        return email
    if blobs is None:
        raise TransientError(f"the email record is {size} bytes, over the claim-check "
                             "threshold, and no blob store is available")
    atts = list(email.attachments)
    for i in sorted(range(len(atts)), key=lambda i: -len(atts[i].content or b"")):
        content = atts[i].content
        if size <= limit or not content:
            break
        blobs.put(content)
        atts[i] = dataclasses.replace(atts[i], content=None, blob_ref=atts[i].sha256)
        email = dataclasses.replace(email, attachments=tuple(atts))
        size = measure(email)
    if size > limit:
        email, size = _shed_bodies(email, size, limit, measure, blobs)
    return email


def _shed_bodies(email: Email, size: int, limit: int, measure: Measure, blobs: Blobs
                 ) -> tuple[Email, int]:
    bodies = [("html_body", "body.html", "text/html; charset=utf-8"),
              ("text_body", "body.txt", "text/plain; charset=utf-8")]
    bodies.sort(key=lambda b: -len(getattr(email, b[0]) or ""))
    for field, name, ctype in bodies:
        text = getattr(email, field)
        if size <= limit or not text:
            break
        data = text.encode("utf-8")
        digest = hashlib.sha256(data).hexdigest()
        blobs.put(data)
        # Keep what still fits, with room for the attachment entry and the warning.
        keep = max(0, len(data) - (size - limit) - 1024)
        prefix = data[:keep].decode("utf-8", "ignore")
        note = (f"the {field.replace('_', ' ')} ({len(data)} bytes) made the record exceed "
                f"{limit} bytes: kept its first {len(prefix)} characters; the whole body is "
                f"attachment {name!r} (blob {digest})")
        att = Attachment(name=name, content_type=ctype, size=len(data), sha256=digest,
                         blob_ref=digest)
        email = dataclasses.replace(
            email, **{field: prefix}, attachments=(*email.attachments, att),
            warnings=(*email.warnings, note),
        )
        size = measure(email)
    return email, size

"""Which report, if any, an email is — each kind kept apart, as route must treat them apart.

* a **bounce** is only ``multipart/report; report-type=delivery-status`` with at least one
  recipient whose ``Action:`` is ``failed`` (RFC 3464);
* ``delayed`` is a delivery-status report whose worst action is ``delayed`` — not a bounce, the
  server is still trying;
* ``delivery_status`` is a report of success (delivered, relayed, expanded);
* ``read_receipt`` is a ``disposition-notification`` (RFC 8098), whatever the disposition says
  (``displayed``, ``deleted``): ``detail`` carries it;
* ``feedback_report`` is an abuse/feedback report (ARF, RFC 5965): ``detail`` is its
  Feedback-Type;
* a delivery-status report (bounce, delayed, delivered) carries ``original_message_id``: the
  normalised Message-ID of the returned message (its ``message/rfc822`` part, or the
  ``text/rfc822-headers`` part most MTAs send instead), so route links a bounce to its original
  even when the MTA sets no In-Reply-To;
* ``other`` is any other multipart/report, ``none`` ordinary mail (also the free-text "your mail
  could not be delivered" notes some servers send: without the machine-readable report they are
  not classified, so a human-written message quoting such text is never taken for a bounce).
"""

from __future__ import annotations

import re
from email.message import Message
from email.parser import BytesHeaderParser

from mailroom.records.email import Report
from unwrap.parse import content_type, header_text, param, payload_bytes

_STATUS_TYPES = {"message/delivery-status", "message/global-delivery-status"}
#: Where a report returns the original, in order of preference (RFC 3462/6522, RFC 6533).
_RETURNED = ("message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers")
_FIELD = re.compile(r"^([A-Za-z0-9-]+)[ \t]*:[ \t]*(.*)$")


def _blocks(part: Message) -> list[dict[str, str]]:
    """The field blocks of a delivery-status or disposition part, names lower-cased."""
    payload = part.get_payload()
    if isinstance(payload, list):  # compat32 parses message/delivery-status into blocks
        return [{k.lower(): header_text(v) for k, v in block.items()}
                for block in payload if isinstance(block, Message)]
    text = payload_bytes(part).decode("utf-8", "replace")
    blocks: list[dict[str, str]] = [{}]
    for line in text.splitlines():
        if not line.strip():
            if blocks[-1]:
                blocks.append({})
            continue
        match = _FIELD.match(line)
        if match:
            blocks[-1].setdefault(match.group(1).lower(), match.group(2).strip())
    return [b for b in blocks if b]


def _recipient(block: dict[str, str]) -> str:
    value = block.get("final-recipient") or block.get("original-recipient") or ""
    return value.split(";", 1)[-1].strip().strip("<>")


def _part(msg: Message, *types: str) -> Message | None:
    payload = msg.get_payload()
    if not isinstance(payload, list):
        return None
    parts = [p for p in payload if isinstance(p, Message)]
    for wanted in types:  # in order of preference, not of appearance
        for part in parts:
            if content_type(part) == wanted:
                return part
    return None


def returned_message_id(msg: Message) -> str | None:
    """The normalised Message-ID of the message a report returns, if it has one."""
    # Imported here: normalise imports this module (classify) at its top.
    from unwrap.normalise import normalise_message_id

    part = _part(msg, *_RETURNED)
    if part is None:
        return None
    inner = part.get_payload()
    if isinstance(inner, list) and inner and isinstance(inner[0], Message):
        headers: Message = inner[0]  # message/rfc822: compat32 parsed the original already
    else:  # headers only, as text (or a message/* part the parser left as bytes)
        headers = BytesHeaderParser().parsebytes(payload_bytes(part))
    try:
        value = headers.get("message-id")
        return normalise_message_id(str(value)) if value else None
    except (ValueError, TypeError, LookupError):  # a mangled header costs the link, not the report
        return None


def classify(msg: Message) -> Report:
    if content_type(msg) != "multipart/report":
        return Report()
    report_type = param(msg, "report-type").lower()
    if report_type == "delivery-status":
        payload = msg.get_payload()
        parts = [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []
        status = [p for p in parts if content_type(p) in _STATUS_TYPES]
        if not status and len(parts) > 1:
            status = [parts[1]]  # mislabelled: the status is the second part (RFC 6522)
        blocks = [b for part in status for b in _blocks(part)]
        recipients = [b for b in blocks if "action" in b]
        actions = {b["action"].split()[0].lower() for b in recipients if b["action"].strip()}
        failed = tuple(r for r in (_recipient(b) for b in recipients
                                   if b["action"].lower().startswith("failed")) if r)
        if not actions:  # broken structure: no recipient says what happened
            return Report("other", "delivery-status without readable recipient actions")
        detail = ",".join(sorted(actions))
        original = returned_message_id(msg)
        if "failed" in actions:
            return Report("bounce", detail, failed, original)
        if "delayed" in actions:
            return Report("delayed", detail, original_message_id=original)
        return Report("delivery_status", detail, original_message_id=original)
    if report_type == "disposition-notification":
        part = _part(msg, "message/disposition-notification",
                     "message/global-disposition-notification")
        fields = {k: v for b in (_blocks(part) if part is not None else []) for k, v in b.items()}
        return Report("read_receipt", fields.get("disposition") or None)
    if report_type == "feedback-report":
        part = _part(msg, "message/feedback-report")
        fields = {k: v for b in (_blocks(part) if part is not None else []) for k, v in b.items()}
        return Report("feedback_report", fields.get("feedback-type") or None)
    return Report("other", report_type or None)

"""Which report, if any, an email is — each kind kept apart, as route must treat them apart.

* a **bounce** reports at least one recipient the mail could not reach: a delivery-status
  report (RFC 3464) with a recipient whose ``Action:`` is ``failed`` — as ``multipart/report``,
  or a ``message/delivery-status`` part inside ``multipart/mixed`` — or, for a message whose
  headers make it a likely notice (``bounces.likely_bounce``), a prose notice
  (``bounces.from_text``: qmail, Exim, Postfix, Sendmail, Gmail, Exchange 2003, …);
* ``delayed`` is such a report whose worst action is ``delayed`` — not a bounce, the server is
  still trying;
* ``delivery_status`` is a report of success (delivered, relayed, expanded);
* ``read_receipt`` is a ``disposition-notification`` (RFC 8098), whatever the disposition says
  (``displayed``, ``deleted``): ``detail`` carries it;
* ``feedback_report`` is an abuse/feedback report (ARF, RFC 5965): ``detail`` is its
  Feedback-Type;
* ``auto_reply`` is an out-of-office or other automatic reply (``autoreplies.py``);
* a bounce or delay carries ``original_message_id``: the normalised Message-ID of the returned
  message (a ``message/rfc822`` or ``text/rfc822-headers`` part wherever it sits, else the
  ``Message-ID:`` line of the copy a prose notice quotes), so route links it to its original
  even when the server sets no In-Reply-To;
* ``other`` is any other multipart/report, ``none`` ordinary mail. A person's message that
  quotes "could not be delivered" is never a bounce: prose is read only when the headers
  already look like a notice.

Status fields are read leniently (``Action : failed``, continuation lines without indent).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from email.message import Message
from email.parser import BytesHeaderParser

from mailroom.msgids import normalise_message_id
from mailroom.records.email import Report
from unwrap import autoreplies, bounces
from unwrap.parse import content_type, first_raw, header_text, param, payload_bytes

_STATUS_TYPES = {"message/delivery-status", "message/global-delivery-status"}
#: Where a report returns the original, in order of preference (RFC 3462/6522, RFC 6533).
_RETURNED = ("message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers")
#: The headers the bounce and auto-reply checks read.
HEADERS = bounces.HEADERS | autoreplies.HEADERS
_NONE = Report()
_UNREAD_NOTICE = ("sent like a delivery notice (null sender, mailer daemon or postmaster) but no "
                  "failed or delayed delivery could be read from it")
_SIEVE_REJECT = re.compile(r"automatic-action\s*/\s*MDN-sent-automatically\s*;\s*deleted",
                           re.IGNORECASE)
_MAX_PARTS = 200  # a notice has a handful; the limit only bounds a hostile tree
_FIELD = re.compile(r"^([A-Za-z0-9-]+)[ \t]*:[ \t]*(.*)$")


def _field_blocks(text: str) -> list[dict[str, str]]:
    """Field blocks of status text, read leniently: ``Action : failed`` (space before the
    colon) is a field, and a line that is no field continues the previous one, indented or
    not (both seen from real servers; the stdlib's header parser stops reading at either)."""
    blocks: list[dict[str, str]] = [{}]
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if blocks[-1]:
                blocks.append({})
            last = ""
            continue
        match = _FIELD.match(line)
        if match and not line[:1].isspace():
            last = match.group(1).lower()
            blocks[-1].setdefault(last, match.group(2).strip())
        elif last and blocks[-1].get(last) is not None:
            blocks[-1][last] = f"{blocks[-1][last]} {line.strip()}"
    return [b for b in blocks if b]


def _blocks(part: Message) -> list[dict[str, str]]:
    """The field blocks of a delivery-status or disposition part, names lower-cased."""
    payload = part.get_payload()
    if isinstance(payload, list):  # compat32 parses message/delivery-status into blocks
        blocks: list[dict[str, str]] = []
        for block in payload:
            if not isinstance(block, Message):
                continue
            fields = {k.lower(): header_text(v) for k, v in block.items()}
            rest = block.get_payload()
            # compat32 stops a block's headers at a line it cannot read as a field; the rest of
            # the block (and any blocks after it) is left as that block's body
            more = _field_blocks(rest) if isinstance(rest, str) and rest.strip() else []
            if more:
                for key, value in more[0].items():
                    fields.setdefault(key, value)
                more = more[1:]
            blocks.append(fields)
            blocks.extend(more)
        return [b for b in blocks if b]
    return _field_blocks(payload_bytes(part).decode("utf-8", "replace"))


def _recipient(block: dict[str, str]) -> str:
    """The failed address: Final-Recipient, else Original-Recipient, when it is an address
    (an X.400 name, a local name without domain or a pipe is not)."""
    for name in ("final-recipient", "original-recipient"):
        kind, sep, value = block.get(name, "").partition(";")
        if sep and kind.strip().lower() not in ("rfc822", "utf-8", ""):
            continue
        address = bounces.clean_recipient(value if sep else kind)
        if address:
            return address
    return ""


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


def _find(msg: Message, types: tuple[str, ...] | set[str]) -> list[Message]:
    """Parts of these types anywhere in the report (a multipart/mixed notice nests them),
    without looking inside a returned message (its own parts are the original's)."""
    found: list[Message] = []
    stack = [msg]
    seen = 0
    while stack and seen < _MAX_PARTS:
        part = stack.pop()
        seen += 1
        ctype = content_type(part)
        if ctype in types:
            found.append(part)
            continue
        payload = part.get_payload()
        if ctype.startswith("multipart/") and isinstance(payload, list):
            stack.extend(p for p in reversed(payload) if isinstance(p, Message))
    return found


def returned_message_id(msg: Message) -> str | None:
    """The normalised Message-ID of the message a report returns, if it has one."""
    # Imported here: normalise imports this module (classify) at its top.

    parts = _find(msg, _RETURNED)
    parts.sort(key=lambda p: _RETURNED.index(content_type(p)))  # preference, then position
    for part in parts:
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            headers: Message = inner[0]  # message/rfc822: compat32 parsed the original already
        else:  # headers only, as text (or a message/* part the parser left as bytes)
            headers = BytesHeaderParser().parsebytes(payload_bytes(part))
        try:
            value = headers.get("message-id")
            if value:
                return normalise_message_id(str(value))
        except (ValueError, TypeError, LookupError):  # a mangled header costs the link only
            continue
    return None


def _action(value: str) -> str:
    """RFC 3464's action word; the variants servers write ("failure", "error") as "failed"."""
    word = value.split()[0].lower().rstrip(";,.") if value.split() else ""
    if word.startswith(("fail", "error", "bounce", "reject")):
        return "failed"
    if word.startswith(("delay", "defer")):
        return "delayed"
    return word


def _delivery_status(msg: Message, status: list[Message]) -> Report:
    blocks = [b for part in status for b in _blocks(part)]
    recipients = [b for b in blocks if "action" in b]
    actions = {_action(b["action"]) for b in recipients if b["action"].strip()}
    failed = tuple(dict.fromkeys(r for r in (_recipient(b) for b in recipients
                                             if _action(b["action"]) == "failed") if r))
    if not actions:  # broken structure: no recipient says what happened
        return Report("other", "delivery-status without readable recipient actions")
    detail = ",".join(sorted(actions))
    original = returned_message_id(msg)
    if "failed" in actions:
        return Report("bounce", detail, failed, original)
    if "delayed" in actions:
        return Report("delayed", detail, original_message_id=original)
    return Report("delivery_status", detail, original_message_id=original)


def _with_original(report: Report, msg: Message) -> Report:
    if report.original_message_id or report.kind not in ("bounce", "delayed"):
        return report
    original = returned_message_id(msg)
    return replace(report, original_message_id=original) if original else report


def _notice(msg: Message) -> Report | None:
    """A delivery notice that is no multipart/report: its status part wherever it sits, else
    its prose."""
    status = _find(msg, _STATUS_TYPES)
    if status:
        found = _delivery_status(msg, status)
        if found.kind != "other":
            return found
    prose = bounces.from_text(msg)
    if prose is not None:
        return _with_original(prose, msg)
    # a filter that returns the server's report as an attachment of its own notice
    for part in _find(msg, ("message/rfc822",)):
        inner = part.get_payload()
        if (isinstance(inner, list) and inner and isinstance(inner[0], Message)
                and content_type(inner[0]) == "multipart/report"):
            found = _report(inner[0])
            if found.kind in ("bounce", "delayed"):
                return found
    return None


def classify(msg: Message) -> Report:
    return classify_with_notes(msg)[0]


def classify_with_notes(msg: Message, heads: Mapping[str, str] | None = None,
                        ) -> tuple[Report, list[str]]:
    """The report and, for a message whose headers say it is a delivery notice but whose
    content could not be read as one, a warning saying so (route still treats it as automated
    by those headers). ``heads``: the first raw value of each of :data:`HEADERS` present, when
    the caller has read them already (``parse.first_raw``)."""
    ctype = content_type(msg)
    if ctype == "multipart/report":
        report = _report(msg)
        if report.kind != "other":
            return report, []
        # a report whose status cannot be read may still say in words what happened
        return _notice(msg) or report, []
    if heads is None:
        heads = first_raw(msg, HEADERS)  # one pass over the headers for both checks
    if bounces.likely_bounce(msg, heads, ctype):  # headers only: ordinary mail stops here
        found = _notice(msg)
        if found is not None:
            return found, []
    auto = autoreplies.detect(heads)
    if auto is not None:
        return auto, []
    if bounces.sent_by_daemon(heads):
        return _NONE, [_UNREAD_NOTICE]
    return _NONE, []


def _report(msg: Message) -> Report:
    report_type = param(msg, "report-type").lower()
    if report_type == "delivery-status":
        payload = msg.get_payload()
        parts = [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []
        status = [p for p in parts if content_type(p) in _STATUS_TYPES]
        if not status and len(parts) > 1:
            status = [parts[1]]  # mislabelled: the status is the second part (RFC 6522)
        return _delivery_status(msg, status)
    if report_type == "disposition-notification":
        part = _part(msg, "message/disposition-notification",
                     "message/global-disposition-notification")
        fields = {k: v for b in (_blocks(part) if part is not None else []) for k, v in b.items()}
        disposition = fields.get("disposition") or ""
        if _SIEVE_REJECT.search(disposition):
            # RFC 5429: a Sieve "reject" refuses delivery with an automatic "deleted" MDN
            # (Dovecot's over-quota refusals too): the mail did not reach its recipient

            recipient = _recipient(fields)
            original = fields.get("original-message-id")
            return Report("bounce", f"rejected ({disposition})",
                          (recipient,) if recipient else (),
                          (normalise_message_id(original) if original else None)
                          or returned_message_id(msg))
        return Report("read_receipt", disposition or None)
    if report_type == "feedback-report":
        part = _part(msg, "message/feedback-report")
        fields = {k: v for b in (_blocks(part) if part is not None else []) for k, v in b.items()}
        return Report("feedback_report", fields.get("feedback-type") or None)
    return Report("other", report_type or None)

"""Bounces without a machine-readable report: plain-text and multipart/mixed notices.

Many mail servers still return mail as prose (qmail's QSBMF, Exim, Postfix and Sendmail without
DSN, Gmail, Yahoo, Exchange 2003, OpenSMTPD, Domino, mail.ru, Google Groups, …). GNU Mailman's
``flufl.bounce`` reads them with one detector per server; we learnt from its patterns but read
them differently, because it answers another question (see docs/unwrap.md): Mailman runs it only
on mail already known to be a bounce, whereas unwrap sees every email.

So reading is in two steps, the first nearly free:

1. :func:`likely_bounce` looks at headers only — the null sender (``Return-Path: <>``), a
   MAILER-DAEMON / postmaster From, Exim's and Gmail's ``X-Failed-Recipients``, a report content
   type, a typical subject. Ordinary mail stops here.
2. :func:`from_text` reads the notice's own text (up to where the returned message starts): a
   failure or delay phrase must be there, then the failed recipients are the addresses standing
   where these notices put them (alone on a line, ``<addr>:``, after "delivered to", in
   ``Final-Recipient`` and the like), never the bounce's own sender or recipient.

Recipients are addresses only: a qmail pipe (``|/usr/bin/…``), a delivery path (``/var/mail/…``)
is not an address; a source route (``@relay:user@example.com``) keeps its final addr-spec.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from email.message import Message

from mailroom.msgids import normalise_message_id
from mailroom.records.email import Report
from unwrap.parse import (
    content_type,
    filename,
    first_raw,
    header,
    part_text,
    quick_text,
    raw_header,
)

#: Local parts of the senders of delivery notices.
_DAEMONS = frozenset({"mailer-daemon", "mailer_daemon", "mailerdaemon", "mail-daemon",
                      "maildaemon", "postmaster", "mail.delivery.subsystem", "mdaemon"})
_DAEMON_WORDS = ("daemon", "postmaster", "delivery", "mail system", "administrator")
_DAEMON_NAME = re.compile(
    r"mail ?delivery (sub)?system|mail delivery service|mailer.daemon|postmaster|"
    r"mail administrator|mail system|delivery status notification", re.IGNORECASE)
_SUBJECT = re.compile(
    r"undeliver|undelivered|not delivered|couldn't be delivered|could not be delivered|"
    r"returned mail|return(ed)? to sender|failure notice|delivery (status|failure|failed|has failed"
    r"|problem|notification|report|incomplete|delayed|delay)|mail delivery (failed|failure|system)"
    r"|non.?deliver|nondeliverable|address not found|message not delivered|delayed mail|"
    r"warning: could not send|unzustellbar|nicht zustellbar|non remis|non distribuable|"
    r"non recapitabile|no se pudo entregar|onbestelbaar|не доставлено|недоставлен|"
    r"could not send message|mail system error|rejected", re.IGNORECASE)
_REPORT_TYPES = {"multipart/report", "message/delivery-status", "message/global-delivery-status"}

# Phrases of the notices themselves (the first found decides nothing alone: see from_text).
_FAILED = re.compile(
    r"could ?n[o']t be delivered|could not deliver|couldn't deliver|was ?n[o']t delivered|"
    r"was not delivered|unable to deliver|undeliverable|delivery (to the following recipients? )?"
    r"(has )?failed|failed permanently|permanent (fatal )?(error|failure)|"
    r"following address(es)? failed|did not reach|could not be reached|failed to deliver|"
    r"delivery failure|message was rejected|not be delivered|has been rejected|"
    r"address not found|no such (user|mailbox)|user unknown|unknown user|does not exist|"
    r"mailbox (is )?(full|unavailable)|message not delivered|was not accepted|"
    r"this is the qmail-send program|an error has occurred while attempting to deliver|"
    r"group you tried to contact|could not be sent|not listed in|able to deliver|"
    r"no mailbox|no valid recipient|has been returned|failed addresses|invalid (recipient|"
    r"address|mailbox)|unknown (host|recipient|address)|over quota|exceeding .{0,20}quota|"
    r"returned mail|delivery has failed|delivery problems|user not known|message could not be|"
    r"not reachable|"
    r"не может быть доставлено|не удалось доставить|konnte nicht zugestellt|"
    r"n'a pas pu être remis|no se pudo entregar|non è stato possibile recapitare",
    re.IGNORECASE)
_DELAYED = re.compile(
    r"warning (message )?only|has not yet been delivered|not yet been delivered|"
    r"delivery (is |has been )?delayed|will (continue to |keep )?(re)?try|keep trying|"
    r"still trying|temporary (problem|failure|error)|could not send message for past|"
    r"delivery incomplete|is delayed|been delayed|deferred", re.IGNORECASE)
_SUCCESS = re.compile(r"successfully delivered|delivered successfully|delivery (was )?successful|"
                      r"has been delivered to|was delivered to", re.IGNORECASE)
_PERMANENT = re.compile(r"permanent (error|failure|fatal)|fatal error|gave up|giving up|"
                        r"failed permanently|permanently failed", re.IGNORECASE)
# A person's reply or forward about a failed delivery is a person's mail.
_REPLY = re.compile(r"^\s*(re|fw|fwd|aw|wg|tr|sv|vs|antw|rif|r)\s*(\[\d+\])?\s*:", re.IGNORECASE)
_DELAY_SUBJECT = re.compile(r"\bdelay|warning|delivery incomplete|still being retried",
                            re.IGNORECASE)

# Where the returned message (or its headers) starts: the notice's own text ends there.
_RETURNED_START = re.compile(
    r"^.*(original message follows|copy of (the|your) (original )?message|"
    r"below this line is a copy|returned mail follows|-+ ?original message ?-+|"
    r"original message headers|message headers follow|included is a copy|"
    r"this is a copy of your message|undelivered message attached|original message details|"
    r"--+ the header|header of the original message|^old message:|message text follows|"
    r"^(return-path|received|dkim-signature|message-id)\s*:).*$",
    re.IGNORECASE | re.MULTILINE)

_ADDR = r"[^\s<>()\[\]\"',;:]*[^\s<>()\[\]\"',;:@]@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?" \
        r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
_ROUTED = r"(?:@[^\s<>:,]+(?:,@[^\s<>:,]+)*:)?"
# Where notices put the failed address, one pattern per habit.
_RECIPIENT_LINES = [
    # Postfix, qmail, Yahoo, Sendmail: "<addr>:" or "<addr>" opening a line
    re.compile(rf"^[ \t>*-]*(?:\"[^\"\n]*\"[ \t]*)?<{_ROUTED}({_ADDR})>(?:[ \t]*[:.(].*|[ \t]*)$",
               re.MULTILINE),
    # Exim, Exchange 2003, OpenSMTPD, Domino, Gmail, mail.ru: the address alone on its line,
    # maybe followed by ':' and the reason, " on <date>" or a parenthesis
    re.compile(rf"^[ \t*-]*({_ADDR})(?:[ \t]*:.*|[ \t]+on[ \t].*|[ \t]*\(.*|[ \t]*\.\.\..*|"
               rf"[ \t]+-[ \t].*|[ \t]*)$", re.MULTILINE),
    # a line that says it failed and names the address: "Delivery failed 20 attempts: addr",
    # Exchange's X.400 form "…;dda:SMTP=addr;", Exim's "(generated from addr)"
    re.compile(rf"(?:failed|smtp=|generated from|originally addressed to|error|rejected|unknown|"
               rf"invalid|userid)[^\n@]{{0,60}}?[ \t:=<(]"
               rf"{_ROUTED}({_ADDR})", re.IGNORECASE),
    # labelled fields
    re.compile(rf"(?:final-recipient|original-recipient|intended recipient|failed recipient|"
               rf"undeliverable address|recipient address|error-for|rcpt to|recipient|"
               rf"address)[ \t]*:?[ \t]*(?:rfc822;)?[ \t]*<?{_ROUTED}({_ADDR})>?",
               re.IGNORECASE),
    # in a sentence: "wasn't delivered to addr", "unable to deliver your message to <addr>"
    re.compile(rf"(?:delivered to|deliver (?:your |the )?(?:message |mail )?to|delivery to|"
               rf"message to|reach|recipients?)[ \t:]*\r?\n?[ \t]*<?{_ROUTED}({_ADDR})>?",
               re.IGNORECASE),
    # last resort, a notice quoting the original's To line (Yahoo, Exchange 2003)
    re.compile(rf"^[ \t]*to:[ \t]*(?:[^<\n]*<)?({_ADDR})", re.IGNORECASE | re.MULTILINE),
]
_MESSAGE_ID_LINE = re.compile(r"^[ \t>]*message-id[ \t]*:[ \t]*\r?\n?[ \t]*(<[^<>\s]+>)",
                              re.IGNORECASE | re.MULTILINE)
_NOT_RECIPIENT = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|maildaemon|"
                            r"mailer_daemon|noreply|no-reply|abuse)@", re.IGNORECASE)
_MAX_TEXT = 64_000  # a notice is a few KB; what follows is the returned message
_MAX_RECIPIENTS = 100


def _local(value: str) -> str:
    match = re.search(r"<([^<>]*)>", value)
    address = (match.group(1) if match else value).strip().lower()
    return address.rpartition("@")[0] if "@" in address else address


#: The headers the per-email checks read (``parse.first_raw`` collects them in one pass).
HEADERS = frozenset({"from", "return-path", "x-failed-recipients", "subject"})


def sent_by_daemon(heads: Mapping[str, str]) -> bool:
    """Headers a person's mail does not have: the null sender, a daemon's From, Exim's and
    Gmail's list of failed recipients."""
    if heads.get("x-failed-recipients", "").strip():
        return True
    sender = heads.get("from", "").lower()
    # substring tests first: nearly every From has none of these words
    if any(word in sender for word in _DAEMON_WORDS) and (
            _local(sender) in _DAEMONS or _DAEMON_NAME.search(sender)):
        return True
    path = heads.get("return-path")
    return path is not None and "".join(path.split()) == "<>"


def likely_bounce(msg: Message, heads: Mapping[str, str] | None = None,
                  ctype: str | None = None) -> bool:
    """Could ``msg`` be a delivery notice? Headers only: cheap enough for every email
    (``heads`` and ``ctype``, when the caller has them already, spare reading them again)."""
    if heads is None:
        heads = first_raw(msg, HEADERS)
    if (ctype or content_type(msg)) in _REPORT_TYPES or sent_by_daemon(heads):
        return True
    return bool(_SUBJECT.search(quick_text(heads.get("subject"))))


def clean_recipient(value: str) -> str | None:
    """An addr-spec, or None for a pipe, a path or something else that is not an address."""
    value = value.strip().strip("<>").strip()
    if value.startswith("@") and ":" in value:  # a source route: the last hop's mailbox counts
        value = value.rsplit(":", 1)[1]
    if value.lower().startswith("rfc822;"):
        value = value[7:].strip().strip("<>")
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or "." not in domain:
        return None
    if local.startswith(("|", "/", '"|', '"/')) or "/" in domain or " " in value:
        return None
    return f"{local}@{domain.lower()}"


def _notice_text(msg: Message) -> str:
    """The notice's own text: its first text parts, cut where the returned message starts."""
    texts: list[str] = []
    for part in msg.walk():
        ctype = content_type(part)
        if ctype in ("message/rfc822", "message/global", "text/rfc822-headers"):
            break
        broken = ctype.startswith("multipart/") and isinstance(part.get_payload(), str)
        if (ctype in ("text/plain", "text/html") and not filename(part)) or broken:
            # a multipart whose boundary never appears is all one text to its readers too
            text = part_text(part)
            if ctype == "text/html":
                text = _html_text(text)
            texts.append(text[:_MAX_TEXT])
            if ctype == "text/plain":
                break  # the alternative HTML says the same
    text = "\n".join(texts).replace("\r\n", "\n").replace("\r", "\n")
    cut = _RETURNED_START.search(text)
    return text[: cut.start()] if cut else text


def _html_text(html: str) -> str:
    html = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", html)
    html = re.sub(r"(?i)<br\s*/?>|</(p|div|tr|li|h\d)>", "\n", html)
    text = re.sub(r"<[^>]+>", " ", html)
    return (text.replace("&lt;", "<").replace("&gt;", ">").replace("&nbsp;", " ")
            .replace("&amp;", "&"))


def _own_addresses(msg: Message) -> set[str]:
    found = set()
    for name in ("to", "from", "sender", "reply-to", "delivered-to", "x-original-to"):
        for match in re.finditer(_ADDR, raw_header(msg, name)):
            found.add(match.group(0).lower())
    return found


def _recipients(msg: Message, text: str) -> list[str]:
    listed = [r for r in (clean_recipient(a) for a in raw_header(msg, "x-failed-recipients")
                          .split(",")) if r]
    if listed:
        return listed[:_MAX_RECIPIENTS]
    own = _own_addresses(msg)
    found: list[str] = []
    for pattern in _RECIPIENT_LINES:
        for match in pattern.finditer(text):
            address = clean_recipient(match.group(1))
            if (address and address.lower() not in own and address not in found
                    and not _NOT_RECIPIENT.match(address)):
                found.append(address)
        if found:  # the most specific habit that matched wins: later ones are looser
            break
    return found[:_MAX_RECIPIENTS]


def _structured(msg: Message, text: str) -> bool:
    if _REPLY.match(header(msg, "subject")):
        return False
    if any(p.search(text) for p in _RECIPIENT_LINES[:2]):
        return True
    for part in msg.walk():
        if content_type(part) in ("message/rfc822", "message/global", "text/rfc822-headers"):
            return True
    texts = [part_text(p)[:_MAX_TEXT] for p in msg.walk() if content_type(p) == "text/plain"]
    return any(_RETURNED_START.search(t) for t in texts)


def returned_id_in_text(msg: Message) -> str | None:
    """The Message-ID of a message returned as text (qmail, Exim, Gmail quote it inline)."""
    for part in msg.walk():
        ctype = content_type(part)
        broken = ctype.startswith("multipart/") and isinstance(part.get_payload(), str)
        if ctype in ("text/plain", "text/rfc822-headers", "text/html") or broken:
            match = _MESSAGE_ID_LINE.search(part_text(part))
            if match:
                return match.group(1)
    return None


def from_text(msg: Message) -> Report | None:
    """The bounce or delay a prose notice reports, or None when it does not read as one."""
    text = _notice_text(msg)
    failed = _FAILED.search(text)
    delayed = _DELAYED.search(text) or _DELAY_SUBJECT.search(header(msg, "subject"))
    listed = raw_header(msg, "x-failed-recipients")
    daemon = sent_by_daemon(first_raw(msg, HEADERS))
    if _SUCCESS.search(text) and not failed:
        return None
    if not (failed or delayed or listed or daemon):
        return None
    recipients = _recipients(msg, text)
    # A daemon's notice that says it failed is a bounce even when its recipient is no
    # address (an AOL screen name, "an undisclosed address"); with only a subject that looks
    # like one, the notice must name whom it failed for.
    if not recipients and not (daemon and (failed or delayed)):
        return None
    if not daemon and not _structured(msg, text):
        # only the subject looked like a notice: without the returned message (a part, or the
        # line where a copy starts) or the failed address alone on its line, a person may be
        # writing about a failed delivery
        return None

    original = returned_id_in_text(msg)
    original_id = normalise_message_id(original) if original else None
    if delayed and not listed and not _PERMANENT.search(text) and (
            not failed or _DELAYED.search(text)):
        return Report("delayed", "delayed (from the notice's text)",
                      original_message_id=original_id)
    return Report("bounce", "failed (from the notice's text)", tuple(recipients), original_id)

"""Best effort: an original forwarded inline, quoted in the forward's text body.

Only used when a forward carries no attached original. The quoted header block clients write
after their separator line is read back (From, Sent/Date, To, Cc, Subject); the text below it is
the body. No Message-ID survives an inline forward, so such an email gets the content-based
dedupe key, and the record says ``copy_kind = inline`` — the poorest copy in the precedence.
"""

from __future__ import annotations

import re
from datetime import datetime
from email.message import Message
from email.utils import format_datetime, parsedate_tz

from unwrap.synth import synthesise

_SEPARATOR = re.compile(
    r"^[ \t>]*(?:-{2,}\s*(?:forwarded message|original message|forwarded message follows|"
    r"ursprüngliche nachricht|weitergeleitete nachricht|message transféré|message d'origine|"
    r"mensaje reenviado|mensaje original|messaggio inoltrato|doorgestuurd bericht)\s*-{2,}"
    r"|begin forwarded message:|_{20,})[ \t\r]*$",
    re.IGNORECASE | re.MULTILINE,
)
_FIELD = re.compile(r"^[ \t>]*\*?([A-Za-z][A-Za-z -]{0,20}?)\*?[ \t]*:[ \t]*(.*)$")
_NAMES = {"from": "From", "von": "From", "de": "From", "sent": "Date", "date": "Date",
          "gesendet": "Date", "datum": "Date", "envoyé": "Date", "to": "To", "an": "To",
          "à": "To", "cc": "Cc", "subject": "Subject", "betreff": "Subject", "objet": "Subject",
          "reply-to": "Reply-To"}
_MAILTO = re.compile(r"\s*\[mailto:([^\]]+)\]")
_DATE_FORMATS = ("%A, %B %d, %Y %I:%M %p", "%a, %b %d, %Y at %I:%M %p",
                 "%B %d, %Y at %I:%M:%S %p", "%A, %d %B %Y %H:%M", "%d.%m.%Y %H:%M",
                 "%Y-%m-%d %H:%M", "%a, %d %b %Y %H:%M:%S")


def _date(value: str) -> tuple[str | None, bool]:
    """An RFC 5322 date for a quoted date, and whether its zone was known."""
    if parsedate_tz(value) is not None:
        return value, True
    cleaned = re.sub(r"\s+(GMT|UTC)?[+-]?\d*$", "", value.strip()) if value else ""
    for fmt in _DATE_FORMATS:
        try:
            naive = datetime.strptime(cleaned, fmt)
        except ValueError:
            continue
        return format_datetime(naive), False  # "-0000": zone unknown, read as UTC
    return None, False


def find_inline(text: str | None) -> tuple[Message, list[str]] | None:
    """The inline-forwarded original in a text body, or None."""
    if not text:
        return None
    match = _SEPARATOR.search(text)
    if match is None:
        return None
    lines = text[match.end():].lstrip("\r\n").splitlines()
    headers: dict[str, str] = {}
    last = ""
    index = 0
    for index, line in enumerate(lines):  # noqa: B007 - the index is used after the loop
        if not line.strip():
            break
        field = _FIELD.match(line)
        name = _NAMES.get(field.group(1).strip().lower()) if field else None
        if name:
            headers.setdefault(name, field.group(2).strip())  # type: ignore[union-attr]
            last = name
        elif last and line[:1] in " \t":
            headers[last] += " " + line.strip()
        else:
            break
    else:
        index = len(lines)
    if "From" not in headers or not ({"Subject", "Date"} & headers.keys()):
        return None
    warnings = ["original forwarded inline: fields read back from the quoted text (best effort)"]
    headers["From"] = _MAILTO.sub(r" <\1>", headers["From"])
    if "Date" in headers:
        date, zoned = _date(headers.pop("Date"))
        if date:
            headers["Date"] = date
            if not zoned:
                warnings.append("inline forward's date has no time zone: read as UTC")
    body = "\n".join(line[1:].lstrip() if line.startswith(">") else line
                     for line in lines[index:]).strip("\r\n")
    return synthesise(headers.items(), body, None), warnings

"""Build an ordinary MIME message from the pieces of a non-MIME original (.msg, TNEF, inline).

Normalisation then treats every original the same way, whatever format it came in; these
formats are rare enough that re-encoding their bodies once costs nothing that matters.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import HeaderParser

from unwrap.parse import clean

_BODY_HEADERS = {"content-type", "content-transfer-encoding", "mime-version",
                 "content-disposition"}


@dataclass(frozen=True)
class Piece:
    """One attachment of a non-MIME original."""

    name: str
    content_type: str
    data: bytes


def synthesise(
    headers: Iterable[tuple[str, str]],
    text: str | None,
    html: str | None,
    attachments: Iterable[Piece] = (),
) -> Message:
    msg = MIMEMultipart("mixed", policy=policy.compat32)
    for name, value in headers:
        if value and name.lower() not in _BODY_HEADERS:
            msg[name] = clean(value).replace("\r", " ").replace("\n", " ")
    if text is not None and html is not None:
        alt = MIMEMultipart("alternative")
        alt.attach(MIMEText(clean(text), "plain", "utf-8"))
        alt.attach(MIMEText(clean(html), "html", "utf-8"))
        msg.attach(alt)
    elif text is not None or html is not None:
        body = text if text is not None else html
        msg.attach(MIMEText(clean(body or ""), "plain" if text is not None else "html", "utf-8"))
    for piece in attachments:
        maintype, _, subtype = piece.content_type.partition("/")
        part = MIMEApplication(piece.data, _subtype="octet-stream")
        if maintype and subtype:
            part.replace_header("Content-Type", f"{maintype}/{subtype}")
        part.add_header("Content-Disposition", "attachment", filename=piece.name or "attachment")
        msg.attach(part)
    return msg


def header_pairs(transport_headers: str) -> list[tuple[str, str]]:
    """The header fields of an original's stored transport headers (.msg, TNEF)."""
    parsed = HeaderParser(policy=policy.compat32).parsestr(transport_headers, headersonly=True)
    return [(k, str(v)) for k, v in parsed.items()]

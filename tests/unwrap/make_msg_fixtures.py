"""Write the Outlook ``.msg`` fixtures: real MS-CFB/MS-OXMSG files built with msgforge.

Run after changing one: ``.venv/bin/python tests/unwrap/make_msg_fixtures.py``. The files are
committed; tests and the product only read them (msgforge is a dev extra, never imported by
Mailroom). It writes

* ``fixtures/original.msg`` — the quote request of ``original.eml`` as Outlook saves a
  *received* message: MAPI properties plus its internet headers (PR_TRANSPORT_MESSAGE_HEADERS),
  Message-ID and In-Reply-To properties;
* ``fixtures/draft.msg`` — a message drafted in Outlook: MAPI properties only, no internet
  headers, no Message-ID, no sent time;
* ``fixtures/fwd_msg_*.eml`` — forwards carrying them (``application/vnd.ms-outlook``, and
  ``application/octet-stream`` with a ``.msg`` name), and one whose quote request keeps its HTML
  only inside the compressed RTF body (no PidTagHtml), as Outlook often stores HTML mail;
* ``mailroom/console/demo/new-address.msg`` — the demo's "Updated delivery address" letter as a
  received .msg whose internet headers are exactly the ones its direct copy carries.

msgforge 1.0 writes drafts and archived mail but has no API for the internet properties a
received message carries, so :func:`_internet_properties` adds them (PT_UNICODE entries in the
root property stream plus their ``__substg1.0_*001F`` streams, MS-OXMSG 2.1 / 2.4) at the one
point where msgforge writes that stream. That hook uses msgforge's private writer, hence the
version pin in pyproject.toml; the CFB container and every other property are msgforge's.
"""

from __future__ import annotations

import base64
import struct
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgforge
from msgforge import _builder

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from make_fixtures import ORIGINAL, crlf, forward  # noqa: E402 - after the path set-up

FIXTURES = HERE / "fixtures"
DEMO_MSG = ROOT / "mailroom" / "console" / "demo" / "new-address.msg"

PT_UNICODE = 0x001F
PR_TRANSPORT_MESSAGE_HEADERS = 0x007D
PR_INTERNET_MESSAGE_ID = 0x1035
PR_INTERNET_REFERENCES = 0x1039
PR_IN_REPLY_TO_ID = 0x1042
PR_HTML = 0x1013
_READABLE_WRITABLE = 0x6  # property entry flags, as msgforge and Outlook write them

# The quote request's parts (the same as original.eml's, decoded).
PDF = base64.b64decode("JVBERi0xLjQKJcOkw7zDtsOfCjEgMCBvYmoKPDwvVHlwZS9DYXRhbG9nPj4KZW5kb2JqCg==")
QUOTE_TEXT = "Hello Alice,\r\nplease quote 50 units. Grüße, Carol"
QUOTE_HTML = "<p>Hello Alice,<br>please quote 50 units.</p>"
DRAFT_TEXT = "Hi Alice,\r\nthe revised specs are attached.\r\nHank"


@contextmanager
def _internet_properties(props: dict[int, str], drop: frozenset[int] = frozenset()
                         ) -> Iterator[None]:
    """While active, msgforge's root property stream also carries ``props`` (PT_UNICODE) and
    leaves out the properties tagged in ``drop``."""
    writer: Any = _builder._OleWriter
    plain_add = writer.add_stream

    def add_stream(self: Any, parent: Any, name: str, data: bytes) -> Any:
        if parent is not self.root:
            return plain_add(self, parent, name, data)
        if name.startswith("__substg1.0_") and int(name[12:16], 16) in drop:
            return None  # nothing refers to the returned entry of a property stream
        if name == "__properties_version1.0":
            # a 32-byte header, then 16-byte entries: (type, tag) in the first four bytes
            entries = [data[i:i + 16] for i in range(32, len(data), 16)]
            kept = [e for e in entries if struct.unpack_from("<H", e, 2)[0] not in drop]
            for tag, value in props.items():
                raw = value.encode("utf-16-le")
                plain_add(self, parent, f"__substg1.0_{tag:04X}{PT_UNICODE:04X}", raw)
                # for a string the entry's value is its byte size with the terminator
                kept.append(struct.pack("<HHII4x", PT_UNICODE, tag, _READABLE_WRITABLE,
                                        len(raw) + 2))
            data = data[:32] + b"".join(kept)
        return plain_add(self, parent, name, data)

    writer.add_stream = add_stream
    try:
        yield
    finally:
        writer.add_stream = plain_add


def header_block(message: bytes) -> str:
    """A message's header fields as received (what Outlook keeps as transport headers)."""
    end = message.index(b"\r\n\r\n") + 2
    return message[:end].decode("ascii")


def received_msg(message: msgforge.Message, transport: str, message_id: str,
                 in_reply_to: str = "", references: str = "",
                 drop: frozenset[int] = frozenset()) -> bytes:
    """``message`` as Outlook saves mail it received: with its internet headers."""
    props = {PR_TRANSPORT_MESSAGE_HEADERS: transport, PR_INTERNET_MESSAGE_ID: message_id}
    if in_reply_to:
        props[PR_IN_REPLY_TO_ID] = in_reply_to
    if references:
        props[PR_INTERNET_REFERENCES] = references
    with _internet_properties(props, drop):
        return message.as_bytes()


def original_msg(drop: frozenset[int] = frozenset()) -> bytes:
    """The quote request; ``drop={PR_HTML}`` keeps its HTML only inside the compressed RTF, as
    Outlook often stores an HTML message."""
    message = msgforge.Message(
        subject="Quote request – 50 units", text_body=QUOTE_TEXT, html_body=QUOTE_HTML,
        sender=("carol@customer.example", "Carol Customer"),
        to=[("alice@corp.example", "Alice Agent")],
        cc=[("jurgen@customer.example", "Jürgen Müller")],
        sent=datetime(2025, 3, 4, 9, 15, tzinfo=timezone(timedelta(hours=1))),
    )
    message.attach_bytes("spec.pdf", PDF, "application/pdf")
    return received_msg(message, header_block(crlf(ORIGINAL)), "<Quote-1@Customer.Example>",
                        "<offer-7@corp.example>",
                        "<offer-6@corp.example> <offer-7@corp.example>", drop)


def draft_msg() -> bytes:
    """Drafted and saved in Outlook: never sent, so no internet headers and no Message-ID."""
    message = msgforge.Message(
        subject="Revised specs", text_body=DRAFT_TEXT,
        sender=("hank@vendor.example", "Hank Vendor"),
        to=[("alice@corp.example", "Alice Agent")],
        cc=[("jurgen@customer.example", "Jürgen Müller")],
    )
    message.attach_bytes("specs.zip", b"PK\x05\x06" + b"\x00" * 18, "application/zip")
    return message.as_bytes()


def msg_part(data: bytes, name: str, ctype: str) -> str:
    b64 = base64.encodebytes(data).decode()
    return (f"--fw-b\nContent-Type: {ctype}; name=\"{name}\"\n"
            f"Content-Disposition: attachment; filename=\"{name}\"\n"
            f"Content-Transfer-Encoding: base64\n\n{b64}\n")


def demo_msg() -> bytes:
    """The demo's forwarded "Updated delivery address" as a received .msg (see scenario.py)."""
    from mailroom.console.demo import mail
    from mailroom.console.demo.scenario import LETTERS

    letter = next(x for x in LETTERS if x.key == "new-address" and x.forward_as == "msg")
    direct = mail.original(letter)  # the very bytes of the direct copy (phase 2)
    message = msgforge.Message(
        subject=letter.subject, text_body=letter.body.replace("\n", "\r\n"),
        html_body="<p>" + letter.body.replace("\n\n", "</p><p>").replace("\n", "<br>") + "</p>",
        sender=letter.sender, to=list(letter.to), cc=list(letter.cc),
        sent=letter.date.astimezone(UTC),
    )
    return received_msg(message, header_block(direct), f"<{letter.message_id}>")


def main() -> None:
    original, draft = original_msg(), draft_msg()
    files: dict[Path, bytes] = {
        FIXTURES / "original.msg": original,
        FIXTURES / "draft.msg": draft,
        FIXTURES / "fwd_msg_outlook.eml": crlf(forward(
            msg_part(original, "Quote request.msg", "application/vnd.ms-outlook"))),
        FIXTURES / "fwd_msg_octet.eml": crlf(forward(
            msg_part(original, "Quote request.msg", "application/octet-stream"))),
        FIXTURES / "fwd_msg_rtf_html.eml": crlf(forward(
            msg_part(original_msg(drop=frozenset({PR_HTML})), "Quote request.msg",
                     "application/vnd.ms-outlook"))),
        FIXTURES / "fwd_msg_draft.eml": crlf(forward(
            msg_part(draft, "Revised specs.msg", "application/vnd.ms-outlook"),
            subject="FW: Revised specs")),
        DEMO_MSG: demo_msg(),
    }
    for path, data in files.items():
        path.write_bytes(data)
    print(f"wrote {len(files)} files: " + ", ".join(str(p.relative_to(ROOT)) for p in files))


if __name__ == "__main__":
    main()

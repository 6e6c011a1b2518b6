"""Messages per second of the unwrap pure function, one process, synthetic inputs.

``.venv/bin/python bench/unwrap.py [SECONDS]`` — a 25 KB forward (an Outlook-style
message/rfc822 forward with text, HTML and a small attachment) and a 5 KB plain message.
"""

from __future__ import annotations

import base64
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow the
# unwrap package: drop it.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from mailroom.records.raw import RawMail  # noqa: E402
from unwrap.context import Rejection, UnwrapContext  # noqa: E402
from unwrap.unwrap import unwrap  # noqa: E402

TEXT = ("Dear Alice, thank you for the quote. We would like to go ahead with the order of "
        "fifty units as discussed on the phone last week.\n") * 8


def original(extra: int) -> str:
    html = "<p>" + TEXT.replace("\n", "<br>\n") + "</p>\n"
    blob = base64.encodebytes(bytes(range(256)) * (extra // 256 + 1))[: extra].decode()
    return (
        "From: Carol Customer <carol@customer.example>\nTo: Alice <alice@corp.example>\n"
        "Subject: Order confirmation\nDate: Tue, 04 Mar 2025 09:15:00 +0100\n"
        "Message-ID: <order-1@customer.example>\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="o"\n\n--o\n'
        'Content-Type: multipart/alternative; boundary="a"\n\n--a\n'
        f"Content-Type: text/plain; charset=utf-8\n\n{TEXT}\n--a\n"
        f"Content-Type: text/html; charset=utf-8\n\n{html}\n--a--\n\n--o\n"
        'Content-Type: application/pdf; name="order.pdf"\nContent-Transfer-Encoding: base64\n'
        f'Content-Disposition: attachment; filename="order.pdf"\n\n{blob}\n--o--\n')


def forward(size: int) -> bytes:
    inner = original(0)
    inner = original(max(0, size - len(inner) - 700))
    msg = ("Authentication-Results: mx.crm.example; dmarc=pass header.from=corp.example\n"
           "From: Alice <alice@corp.example>\nTo: forward@crm.example\nSubject: FW: Order\n"
           "Date: Tue, 04 Mar 2025 09:16:00 +0100\nMessage-ID: <fw-1@corp.example>\n"
           'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="f"\n\n--f\n'
           "Content-Type: text/plain\n\n\n--f\nContent-Type: message/rfc822\n\n"
           f"{inner}\n--f--\n")
    return msg.replace("\n", "\r\n").encode()


def plain(size: int) -> bytes:
    head = ("From: Carol <carol@customer.example>\nTo: alice@corp.example\nSubject: Hello\n"
            "Date: Tue, 04 Mar 2025 09:15:00 +0100\nMessage-ID: <p-1@customer.example>\n"
            "Content-Type: text/plain; charset=utf-8\n\n")
    body = (TEXT * (size // len(TEXT) + 1))[: size - len(head)]
    return (head + body).replace("\n", "\r\n").encode()


def rate(data: bytes, kind: str, mailbox: str, context: UnwrapContext, seconds: float) -> float:
    raw = RawMail(mailbox_id=mailbox, mailbox_address="x@corp.example", owner_kind=kind,  # type: ignore[arg-type]
                  folder="INBOX", direction="incoming", protocol="imap",
                  fetched_at=datetime.now(UTC), size=len(data), uidvalidity=1, uid=1,
                  content=data)
    result = unwrap(raw, context)
    assert not isinstance(result, Rejection) and len(result) == 1, result
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(50):
            unwrap(raw, context)
        count += 50
    return count / (time.perf_counter() - start)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    context = UnwrapContext(forwarders={"fm": {"alice@corp.example": "u-alice"}},
                            authserv_id="mx.crm.example")
    fwd, msg = forward(25 * 1024), plain(5 * 1024)
    print(f"python {platform.python_version()} on {platform.machine()}, "
          f"{platform.processor() or 'cpu'}; one process")
    print(f"forwarded {len(fwd) / 1024:.1f} KB: "
          f"{rate(fwd, 'forward', 'fm', context, seconds):8.0f} messages/s")
    print(f"plain     {len(msg) / 1024:.1f} KB: "
          f"{rate(msg, 'user', 'mb', context, seconds):8.0f} messages/s")


if __name__ == "__main__":
    main()

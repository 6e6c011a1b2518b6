"""The chaos run's mail: what each forward is (a spec) and its bytes, written like a real
server's "forward as attachment" rule writes them. Pure: no I/O, deterministic per seed.

Each original is from a known customer contact to a forwarding user, Cc the service desk user,
with a text and an HTML body and a small PDF attachment (a handful of distinct contents, so
attachment content is shared between emails and must be stored once). Every tenth mail replies
to the one before it (In-Reply-To), so persist's parking runs too: killed stages deliver a
reply before its parent often enough. The forward carries the original as message/rfc822 and a
trusted ``Authentication-Results: <authserv-id>; dmarc=pass`` header, as our receiving server
stamps it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.mime.application import MIMEApplication
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import SMTP
from email.utils import format_datetime

DOMAIN = "acme.example"
FORWARD_LOCAL = "crm-forward"
FORWARD_ADDRESS = f"{FORWARD_LOCAL}@{DOMAIN}"
#: (user id, address) of the users whose server rule forwards to the forward mailbox
FORWARDERS: tuple[tuple[str, str], ...] = tuple(
    (f"u-{name}", f"{name}@{DOMAIN}") for name in ("ana", "ben", "chloe"))
#: a user every original is copied to (a third resolved party; never a forwarder)
DESK = ("u-desk", f"desk@{DOMAIN}")
#: (contact id, account id, address) of the customers who write
CONTACTS: tuple[tuple[str, str, str], ...] = tuple(
    (f"c-{k:02d}", f"a-{k % 4}", f"buyer{k:02d}@customer{k % 4}.example") for k in range(12))
ATTACHMENT_VARIANTS = 7
REPLY_EVERY = 10  # mail i with i % 10 == 9 replies to mail i - 1
_T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone(timedelta(hours=1)))


@dataclass(frozen=True)
class MailSpec:
    index: int
    sender: tuple[str, str, str]  # a CONTACTS entry
    forwarder: tuple[str, str]  # a FORWARDERS entry
    parent: int | None  # index of the mail this one replies to

    @property
    def message_id(self) -> str:
        return f"m{self.index}.chaos@customer.example"

    @property
    def subject(self) -> str:
        base = f"Order {10_000 + (self.parent if self.parent is not None else self.index)}"
        return f"Re: {base} delivery question" if self.parent is not None else \
            f"{base} delivery question"

    @property
    def date(self) -> datetime:
        return _T0 + timedelta(minutes=self.index)

    @property
    def attachment_variant(self) -> int:
        return self.index % ATTACHMENT_VARIANTS


def plan_mails(n: int, seed: int) -> list[MailSpec]:
    """N mail specs; senders and forwarders drawn from ``seed``, a reply every tenth."""
    rng = random.Random(seed)
    out: list[MailSpec] = []
    for i in range(n):
        if i % REPLY_EVERY == REPLY_EVERY - 1:
            parent = out[i - 1]
            out.append(MailSpec(i, parent.sender, parent.forwarder, parent.index))
        else:
            out.append(MailSpec(i, rng.choice(CONTACTS), rng.choice(FORWARDERS), None))
    return out


def attachment(variant: int) -> bytes:
    """A small PDF-looking file; ``variant`` picks one of a few distinct contents."""
    body = f"Delivery note {variant}\n".encode() * 60
    return b"%PDF-1.4\n" + body + b"%%EOF\n"


def original(spec: MailSpec) -> MIMEMultipart:
    """The customer's email as it reached the forwarding user's mailbox."""
    text = (f"Hello,\n\nwhere is order {10_000 + spec.index}? It was due last week.\n\n"
            f"Regards,\n{spec.sender[2]}\n")
    html = (f"<html><body><p>Hello,</p><p>where is order <b>{10_000 + spec.index}</b>? "
            "It was due last week.</p><p>Regards</p></body></html>")
    body = MIMEMultipart("alternative")
    body.attach(MIMEText(text, "plain", "utf-8"))
    body.attach(MIMEText(html, "html", "utf-8"))
    msg = MIMEMultipart("mixed", policy=SMTP)
    msg["From"] = spec.sender[2]
    msg["To"] = spec.forwarder[1]
    msg["Cc"] = DESK[1]
    msg["Subject"] = spec.subject
    msg["Date"] = format_datetime(spec.date)
    msg["Message-ID"] = f"<{spec.message_id}>"
    if spec.parent is not None:
        parent = f"<m{spec.parent}.chaos@customer.example>"
        msg["In-Reply-To"] = parent
        msg["References"] = parent
    msg.attach(body)
    pdf = MIMEApplication(attachment(spec.attachment_variant), "pdf")
    pdf.add_header("Content-Disposition", "attachment",
                   filename=f"delivery-note-{spec.attachment_variant}.pdf")
    msg.attach(pdf)
    return msg


def forward(spec: MailSpec, authserv_id: str) -> bytes:
    """What the forwarding user's server rule delivers to the forward mailbox: the original
    attached as message/rfc822, stamped by our receiving server (``authserv_id``)."""
    user_domain = spec.forwarder[1].rpartition("@")[2]
    outer = MIMEMultipart("mixed", policy=SMTP)
    outer["Authentication-Results"] = (
        f"{authserv_id}; dkim=pass header.d={user_domain}; spf=pass "
        f"smtp.mailfrom={user_domain}; dmarc=pass header.from={user_domain}")
    outer["From"] = spec.forwarder[1]
    outer["To"] = FORWARD_ADDRESS
    outer["Subject"] = f"Fw: {spec.subject}"
    outer["Date"] = format_datetime(spec.date + timedelta(seconds=30))
    outer["Message-ID"] = f"<fw.{spec.message_id}>"
    outer.attach(MIMEText("Forwarded by a server rule.\n", "plain", "utf-8"))
    outer.attach(MIMEMessage(original(spec)))
    return outer.as_bytes()

"""The benches' mail: real RFC 5322 bytes, deterministic for a seed, built with the stdlib.

Two mixes:

* ``forwards`` — every message a forward to the one forward mailbox: an original (text and
  HTML bodies, a ~9 KB PDF-like attachment) attached as message/rfc822 to a forward from a
  known forwarding user, stamped by our receiving server with a passing
  ``Authentication-Results`` (the case issue figures were measured on);
* ``realistic`` — mostly such forwards, some direct mail to user mailboxes, replies
  (In-Reply-To and References of an earlier message) and a few with a 1–2 MB attachment.

Every message carries a distinct, lower-case Message-ID, so one message laid is one email
activity expected, and the Message-ID links a row back to when its message was laid.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

DOMAIN = "bench.example"
FORWARD_LOCAL = "crm-forward"
AUTHSERV_ID = "mx.bench.example"  # the stages run with unwrap_authserv_id = this
FORWARDERS = tuple(f"fwd{i}" for i in range(1, 6))  # users whose server rule forwards to us
DIRECT = tuple(f"user{i}" for i in range(1, 4))  # users whose own mailbox is polled
MIXES = ("forwards", "realistic")
DEFAULT_SIZE = 27_000  # bytes of a typical forward, as in the measurements

_T0 = datetime(2026, 11, 2, 8, 0, tzinfo=timezone(timedelta(hours=1)))
_WORDS = ("order", "invoice", "shipment", "delivery", "contract", "renewal", "price", "quote",
          "meeting", "support", "printer", "account", "address", "payment", "question",
          "thanks", "regards", "please", "update")


@dataclass(frozen=True)
class Mail:
    """One message to lay into the Dovecot user ``mailbox`` (a local part)."""

    mailbox: str
    message_id: str  # normalised: what email_activities.message_id will hold
    kind: str  # forward | direct | reply | large
    data: bytes


@dataclass(frozen=True)
class Mix:
    """Shares of a realistic mix (the rest are forwards)."""

    direct: float = 0.15
    reply: float = 0.13
    large: float = 0.005


class MailMaker:
    """Makes message ``i`` of a run; replies refer to messages made earlier."""

    def __init__(self, mix: str, size: int, run_id: str, seed: int = 12) -> None:
        if mix not in MIXES:
            raise ValueError(f"mix must be one of {MIXES}")
        self.mix, self.size, self.run_id = mix, size, run_id
        self.rng = random.Random(seed)
        self.shares = Mix()
        self.made: list[str] = []
        self.pdf = base64.encodebytes(b"%PDF-1.4\n" + self.rng.randbytes(9_000))
        self.body_chars = max(200, (size - 13_800) // 2)  # the rest of the size: text + HTML

    def batch(self, start: int, count: int) -> list[Mail]:
        return [self.make(i) for i in range(start, start + count)]

    def make(self, i: int) -> Mail:
        kind = self._kind(i)
        message_id = f"b{i}.{self.run_id}@mail.customer.example"
        parent = self.rng.choice(self.made) if kind == "reply" else ""
        via_forward = kind in ("forward", "large") or (kind == "reply" and self.rng.random() < .7)
        user = self.rng.choice(FORWARDERS if via_forward else DIRECT)
        original = self.original(i, message_id, f"{user}@{DOMAIN}", parent,
                                  large=kind == "large")
        self.made.append(message_id)
        if via_forward:
            return Mail(FORWARD_LOCAL, message_id, kind, forward(original, user, i))
        return Mail(user, message_id, kind, original)

    def _kind(self, i: int) -> str:
        if self.mix == "forwards":
            return "forward"
        # At least one large message even in a small run: the claim check is part of the mix.
        if i == 3 or self.rng.random() < self.shares.large:
            return "large"
        roll = self.rng.random()
        if roll < self.shares.direct:
            return "direct"
        if roll < self.shares.direct + self.shares.reply and self.made:
            return "reply"
        return "forward"

    def original(self, i: int, message_id: str, to: str, parent: str, *, large: bool) -> bytes:
        customer = self.rng.randrange(200)
        subject = " ".join(self.rng.choice(_WORDS) for _ in range(4)).capitalize()
        headers = [
            f"From: Customer {customer} <c{customer}@customer{customer % 20}.example>",
            f"To: {to}",
            f"Subject: Re: {subject}" if parent else f"Subject: {subject} #{i}",
            f"Date: {format_datetime(_T0 + timedelta(seconds=i))}",
            f"Message-ID: <{message_id}>",
        ]
        if parent:
            headers += [f"In-Reply-To: <{parent}>", f"References: <{parent}>"]
        text = self._prose(self.body_chars)
        pdf = (base64.encodebytes(self.rng.randbytes(self.rng.randrange(1_000_000, 2_000_000)))
               if large else self.pdf)
        return _crlf("\n".join([
            *headers, "MIME-Version: 1.0",
            f'Content-Type: multipart/mixed; boundary="mixed-{i}"', "",
            f"--mixed-{i}", f'Content-Type: multipart/alternative; boundary="alt-{i}"', "",
            f"--alt-{i}", 'Content-Type: text/plain; charset="us-ascii"',
            "Content-Transfer-Encoding: 7bit", "", text,
            f"--alt-{i}", 'Content-Type: text/html; charset="us-ascii"',
            "Content-Transfer-Encoding: 7bit", "", f"<html><body><p>{text}</p></body></html>",
            f"--alt-{i}--", "",
            f"--mixed-{i}", f'Content-Type: application/pdf; name="document-{i}.pdf"',
            f'Content-Disposition: attachment; filename="document-{i}.pdf"',
            "Content-Transfer-Encoding: base64", "", pdf.decode("ascii").rstrip("\n"),
            f"--mixed-{i}--", "",
        ]))

    def _prose(self, chars: int) -> str:
        words: list[str] = []
        n = 0
        while n < chars:
            word = self.rng.choice(_WORDS)
            words.append(word)
            n += len(word) + 1
        # Lines of ~70 characters, as mail clients wrap them.
        return "\n".join(" ".join(words[k:k + 10]) for k in range(0, len(words), 10))


def warmup(run_id: str) -> list[Mail]:
    """One message per polled mailbox, to tell that every stage is up before a timed phase."""
    maker = MailMaker("forwards", DEFAULT_SIZE, f"{run_id}.warm", seed=99)
    out = [maker.make(0)]
    for k, user in enumerate(DIRECT, 1):
        message_id = f"w{k}.{run_id}@mail.customer.example"
        data = maker.original(k, message_id, f"{user}@{DOMAIN}", "", large=False)
        out.append(Mail(user, message_id, "direct", data))
    return out


def forward(original: bytes, user: str, i: int) -> bytes:
    """What ``user``'s server rule "forward as attachment" delivers to the forward mailbox,
    with the Authentication-Results our receiving server stamps on arrival."""
    date = format_datetime(_T0 + timedelta(seconds=i, milliseconds=500))
    head = _crlf("\n".join([
        f"Authentication-Results: {AUTHSERV_ID}; spf=pass smtp.mailfrom={DOMAIN};",
        f"\tdkim=pass header.d={DOMAIN}; dmarc=pass header.from={DOMAIN}",
        f"From: {user}@{DOMAIN}", f"To: {FORWARD_LOCAL}@{DOMAIN}",
        "Subject: Fw: forwarded by a server rule", f"Date: {date}",
        f"Message-ID: <fw{i}.{user}@{DOMAIN}>", "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="fw-{i}"', "",
        f"--fw-{i}", 'Content-Type: text/plain; charset="us-ascii"', "",
        "Forwarded by a server rule.", "",
        f"--fw-{i}", "Content-Type: message/rfc822", 'Content-Disposition: attachment', "", "",
    ]))
    return head + original + _crlf(f"\n--fw-{i}--\n")


def _crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("ascii")

"""The correlation bench's labelled set: threads of real RFC 5322 messages with known truth.

Deterministic for a seed. Every message knows the thread it truly belongs to, the customer of
its sender ('' for our own staff), and its category — what links it to its thread, or what
trap it is:

* ``new`` — a first email; ``repeat`` — a contact's second "Invoice" or "Question" days
  later, the same words and people, no prefix, no quote: a new thread, not a reply;
* ``in_reply_to`` — a reply with In-Reply-To and References (ours among them, outgoing);
  ``references`` — a reply with References only;
* ``token`` — our outgoing original carrying a tracking token, the customer's reply and our
  follow-up carrying only the token in the subject;
* ``thread_index`` — Outlook replies linked only by Thread-Index (and "RE:");
* ``smart`` — replies with a reply prefix in the client's language (Re, AW, SV, Odp, …) and
  quoted text, but no threading headers at all;
* ``forward`` — a contact forwards the thread to a colleague, cc our queue (References kept);
* ``trap_*`` — another customer's mail (or an unknown sender's) carrying a thread's
  In-Reply-To, References, token, Thread-Index or replying to its subject: its own thread.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

OURS = "ours.example"
QUEUE = f"support@{OURS}"  # the support queue's mailbox
AGENT = f"agent@{OURS}"  # our user: her Sent folder is polled (outgoing)
CUSTOMERS = 6
T0 = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
_TOPICS = ("printer", "invoice 7", "delivery", "contract renewal", "price list", "login",
           "shipment", "toner", "warranty", "order status", "refund", "address change",
           "meeting", "training", "licence", "backup", "upgrade", "installation")
_PREFIXES = ("Re:", "RE:", "AW:", "SV:", "Odp:", "Réf. :", "RV:", "回复：", "Re[2]:")


@dataclass(frozen=True)
class Message:
    message_id: str  # lower case: what email_activities.message_id holds
    thread: str  # the thread it truly belongs to
    category: str
    customer: str  # the sender's account id, '' for our staff and unknown senders
    depth: int  # its position in its thread (0: the first email; 3: a trap, after its target)
    outgoing: bool
    data: bytes


@dataclass
class Thread:
    key: str
    customer: str
    contact: str
    subject: str
    ids: list[str] = field(default_factory=list)
    index: bytes = b""  # Outlook conversation header
    token: str = ""


def contact(customer: int, n: int) -> str:
    return f"contact{n}@c{customer}.example"


def account(customer: int) -> str:
    return f"acc-{customer}"


class LabelledSet:
    """Builds the messages; ``issue(account id)`` issues a tracking token regarding that
    account and returns its number (the run's token registry)."""

    def __init__(self, issue: Callable[[str], int], seed: int = 7, scale: int = 1) -> None:
        self.rand = random.Random(seed)
        self.issue = issue
        self.scale = scale
        self.messages: list[Message] = []
        self.n = 0

    def _mail(self, thread: Thread, category: str, *, sender: str, to: tuple[str, ...],
              subject: str, minutes: int, depth: int, customer: str,
              headers: dict[str, str] | None = None, body: str = "", cc: tuple[str, ...] = (),
              outgoing: bool = False) -> str:
        self.n += 1
        mid = f"{category.replace('_', '-')}-{self.n}@{sender.split('@')[1]}"
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = ", ".join(to)
        if cc:
            msg["Cc"] = ", ".join(cc)
        msg["Subject"] = subject
        msg["Date"] = format_datetime(T0 + timedelta(minutes=minutes))
        msg["Message-ID"] = f"<{mid}>"
        for name, value in (headers or {}).items():
            msg[name] = value
        msg.set_content(body or f"About {thread.subject}.\n")
        self.messages.append(Message(mid, thread.key, category, customer, depth, outgoing,
                                     msg.as_bytes()))
        thread.ids.append(mid)
        return mid

    def build(self) -> list[Message]:
        threads: list[Thread] = []
        minutes = 0
        for i in range(24 * self.scale):
            c = i % CUSTOMERS
            topic = _TOPICS[i % len(_TOPICS)]
            t = Thread(f"t{i}", account(c), contact(c, i % 3), f"{topic.title()} #{i}")
            threads.append(t)
        kinds = ["in_reply_to", "references", "token", "thread_index", "smart", "forward"]
        for i, t in enumerate(threads):
            minutes += 180
            getattr(self, "_" + kinds[i % len(kinds)])(t, minutes)
        for i in range(12 * self.scale):  # single new emails, and a repeat of each half of them
            minutes += 180
            c = i % CUSTOMERS
            subject = ("Invoice", "Question", "Hello", "Order")[i % 4]
            t = Thread(f"n{i}", account(c), contact(c, 1), subject)
            self._mail(t, "new", sender=t.contact, to=(QUEUE,), subject=subject,
                       minutes=minutes, depth=0, customer=t.customer)
            if i % 2 == 0:
                again = Thread(f"n{i}b", t.customer, t.contact, subject)
                self._mail(again, "repeat", sender=t.contact, to=(QUEUE,), subject=subject,
                           minutes=minutes + 3 * 24 * 60, depth=0, customer=t.customer,
                           body="A new one, please have a look.\n")
        self._traps(threads, minutes)
        return self.messages

    # --- one builder per category: the thread's first email, then its replies ---------------

    def _first(self, t: Thread, minutes: int, headers: dict[str, str] | None = None) -> str:
        return self._mail(t, "new", sender=t.contact, to=(QUEUE,), subject=t.subject,
                          minutes=minutes, depth=0, customer=t.customer, headers=headers)

    def _in_reply_to(self, t: Thread, minutes: int) -> None:
        first = self._first(t, minutes)
        ours = self._mail(t, "in_reply_to", sender=AGENT, to=(t.contact,), cc=(QUEUE,),
                          subject=f"Re: {t.subject}", minutes=minutes + 30, depth=1,
                          customer="", outgoing=True,
                          headers={"In-Reply-To": f"<{first}>", "References": f"<{first}>"})
        self._mail(t, "in_reply_to", sender=t.contact, to=(AGENT,), cc=(QUEUE,),
                   subject=f"Re: Re: {t.subject}", minutes=minutes + 60, depth=2,
                   customer=t.customer, headers={"In-Reply-To": f"<{ours}>",
                                                 "References": f"<{first}> <{ours}>"})

    def _references(self, t: Thread, minutes: int) -> None:
        first = self._first(t, minutes)
        self._mail(t, "references", sender=t.contact, to=(QUEUE,),
                   subject=f"Re: {t.subject}", minutes=minutes + 45, depth=1,
                   customer=t.customer, headers={"References": f"<{first}>"})

    def _token(self, t: Thread, minutes: int) -> None:
        t.token = f"CRM:{self.issue(t.customer):07d}"
        subject = f"{t.subject} [{t.token}]"
        self._mail(t, "new", sender=AGENT, to=(t.contact,), subject=subject, minutes=minutes,
                   depth=0, customer="", outgoing=True)
        self._mail(t, "token", sender=t.contact, to=(QUEUE,), subject=f"Re: {subject}",
                   minutes=minutes + 40, depth=1, customer=t.customer)
        self._mail(t, "token", sender=AGENT, to=(t.contact,), subject=f"Re: {subject}",
                   minutes=minutes + 90, depth=2, customer="", outgoing=True)

    def _thread_index(self, t: Thread, minutes: int) -> None:
        t.index = self.rand.randbytes(22)
        index = t.index
        self._first(t, minutes, {"Thread-Index": base64.b64encode(index).decode(),
                                 "Thread-Topic": t.subject})
        for depth in (1, 2):
            index += self.rand.randbytes(5)
            self._mail(t, "thread_index", sender=t.contact, to=(QUEUE,),
                       subject=f"RE: {t.subject}", minutes=minutes + 35 * depth, depth=depth,
                       customer=t.customer, headers={
                           "Thread-Index": base64.b64encode(index).decode(),
                           "Thread-Topic": t.subject})

    def _smart(self, t: Thread, minutes: int) -> None:
        self._first(t, minutes)
        prefix = _PREFIXES[self.rand.randrange(len(_PREFIXES))]
        self._mail(t, "smart", sender=t.contact, to=(QUEUE,), subject=f"{prefix} {t.subject}",
                   minutes=minutes + 50, depth=1, customer=t.customer,
                   body=f"Any news?\n\n> About {t.subject}.\n")

    def _forward(self, t: Thread, minutes: int) -> None:
        first = self._first(t, minutes)
        colleague = t.contact.replace("contact", "colleague")
        self._mail(t, "forward", sender=t.contact, to=(colleague,), cc=(QUEUE,),
                   subject=f"Fwd: {t.subject}", minutes=minutes + 20, depth=1,
                   customer=t.customer, headers={"References": f"<{first}>"},
                   body=f"FYI\n\n---------- Forwarded message ---------\nFrom: {t.contact}\n"
                        f"Date: today\n\nAbout {t.subject}.\n")

    def _traps(self, threads: list[Thread], minutes: int) -> None:
        """Another customer's (or a stranger's) mail carrying one thread's identifiers."""
        for i, t in enumerate(threads):
            minutes += 180
            other = (int(t.customer.split("-")[1]) + 1) % CUSTOMERS
            stranger = i % 4 == 3  # an unknown sender of another domain
            sender = f"someone{i}@elsewhere{i}.example" if stranger else contact(other, 0)
            customer = "" if stranger else account(other)
            trap = Thread(f"x{i}", customer, sender, t.subject)
            if t.token:
                self._mail(trap, "trap_token", sender=sender, to=(QUEUE,),
                           subject=f"Re: {t.subject} [{t.token}]", minutes=minutes, depth=3,
                           customer=customer)
            elif t.index:
                index = base64.b64encode(t.index + self.rand.randbytes(5)).decode()
                self._mail(trap, "trap_thread_index", sender=sender, to=(QUEUE,),
                           subject=f"RE: {t.subject}", minutes=minutes, depth=3,
                           customer=customer, headers={"Thread-Index": index})
            elif i % 2:
                self._mail(trap, "trap_in_reply_to", sender=sender, to=(QUEUE,),
                           subject=f"Re: {t.subject}", minutes=minutes, depth=3,
                           customer=customer, headers={"In-Reply-To": f"<{t.ids[0]}>"})
            else:
                self._mail(trap, "trap_references", sender=sender, to=(QUEUE,),
                           subject=f"Re: {t.subject}", minutes=minutes, depth=3,
                           customer=customer, headers={"References": f"<{t.ids[-1]}>"})
            if not stranger and i % 3 == 0:
                # And a reply to the thread's subject alone, by a colleague of the other
                # customer who was copied on it (so it shares two addresses with the thread).
                minutes += 60
                colleague = contact(other, 2)
                self._mail(Thread(f"y{i}", customer, colleague, t.subject), "trap_smart",
                           sender=colleague, to=(QUEUE,), cc=(t.contact,),
                           subject=f"Re: {t.subject}", minutes=minutes, depth=3,
                           customer=customer, body=f"Same here.\n\n> About {t.subject}.\n")

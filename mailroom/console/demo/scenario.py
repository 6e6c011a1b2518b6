"""The demo company, its mailboxes, its mail and the outcome fixed in advance — pure data.

Acme (``acme.example``) runs a CRM. Alice, Bob and Carol — and the sales queue — have a
server rule that forwards every incoming message as an attachment to ``crm-forward@``; Dave's
mailbox and the support queue's are polled directly over IMAP, Erin's over POP3. Customers
are Contoso and Fabrikam.

The mail covers what the product must get right: forwarded originals, a reply
threaded by In-Reply-To and one by tracking token, one message delivered to three mailboxes,
a support case, an outgoing reply from the queue's Sent folder and the bounce it earned, an
auto-reply, an unknown sender (contact created) and one that is not tracked, a spoofed forward,
a forward forged in a forwarder's name (its Authentication-Results fail), a malformed message;
and, in phase 2 (appended only once phase 1 has been processed): the parent of a reply that is
already parked, the direct copy of a message whose copy forwarded as an Outlook ``.msg`` file
was stored first (the direct copy then supplies the content), and a forgery reusing a real
Message-ID.

:data:`EXPECTED` states what all of that must produce. Tests compare against their own copy
of these figures, written out, never against what the database says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

DOMAIN = "acme.example"
#: authserv-id of Acme's receiving server: it stamps Authentication-Results on every message it
#: accepts, and the demo runs with MAILROOM_UNWRAP_AUTHSERV_ID set to it (the secure setup).
AUTHSERV_ID = "mx.acme.example"
PASSWORD = "demo-secret"  # every demo mail user's; local stack only
TOKEN = "{token}"  # replaced by the token `mailroom token new` issued

USERS_CSV = """id,name,emails
u-alice,Alice Archer,alice@acme.example
u-bob,Bob Baker,bob@acme.example
u-carol,Carol Chen,carol@acme.example
u-dave,Dave Diaz,dave@acme.example
u-erin,Erin Evans,erin@acme.example
"""
QUEUES_CSV = """id,name,emails
q-support,Support,support@acme.example
q-sales,Sales,sales@acme.example
"""
ACCOUNTS_CSV = """id,name,owner,emails
a-contoso,Contoso Ltd,u-alice,info@contoso.example
a-fabrikam,Fabrikam Inc,u-bob,info@fabrikam.example
"""
CONTACTS_CSV = """id,first_name,last_name,account,owner,emails
c-jane,Jane,Doe,a-contoso,u-alice,jane@contoso.example
c-mia,Mia,Wong,a-contoso,u-dave,mia@contoso.example
c-ravi,Ravi,Patel,a-fabrikam,u-bob,ravi@fabrikam.example
"""
# Reference records in import order (owners and accounts must exist first).
IMPORTS: tuple[tuple[str, str], ...] = (
    ("users", USERS_CSV), ("queues", QUEUES_CSV), ("accounts", ACCOUNTS_CSV),
    ("contacts", CONTACTS_CSV),
)

RULES_TOML = """
# The demo's route configuration (docs/rules.md).
[track]
default = "known"                      # users track mail from known contacts and accounts
owners = { "queue:q-support" = "all", "queue:q-sales" = "all", "user:u-bob" = "replies" }
create_contacts = { "queue:q-support" = true }

[[queues.q-support.rules]]
name = "known customers"
sender = "known"
create_case = true
create_queue_item = true

[[queues.q-support.rules]]
name = "everyone else"
create_case = false
create_queue_item = true

# the sales queue's mail reaches us through the forward mailbox (its rule forwards it)
[[queues.q-sales.rules]]
name = "sales enquiries"
create_case = false
create_queue_item = true
"""

#: The change the demo previews (``mailroom rules preview``) once its mail is processed, without
#: loading it: Bob tracks mail from known customers instead of only replies, and the sales queue
#: opens a case for mail from known customers. Everything else is :data:`RULES_TOML` as loaded.
CANDIDATE_RULES_TOML = (
    RULES_TOML.replace('"user:u-bob" = "replies"', '"user:u-bob" = "known"')
    .replace('[[queues.q-sales.rules]]\nname = "sales enquiries"',
             '[[queues.q-sales.rules]]\nname = "known customers"\nsender = "known"\n'
             'create_case = true\ncreate_queue_item = true\n\n'
             '[[queues.q-sales.rules]]\nname = "sales enquiries"')
)

#: The tracking token Dave put in a quote's subject (``mailroom token new``).
TOKEN_REGARDING = "contact:c-ravi"


@dataclass(frozen=True)
class MailboxSpec:
    local: str  # address local part; also the Dovecot login's suffix
    owner: str  # user | queue | forward
    owner_id: str = ""
    protocol: str = "imap"
    via_forward: bool = False  # its mail reaches us through crm-forward@
    folders: tuple[str, ...] = ("INBOX",)

    @property
    def address(self) -> str:
        return f"{self.local}@{DOMAIN}"


MAILBOXES: tuple[MailboxSpec, ...] = (
    MailboxSpec("crm-forward", "forward"),
    MailboxSpec("alice", "user", "u-alice", via_forward=True),
    MailboxSpec("bob", "user", "u-bob", via_forward=True),
    MailboxSpec("carol", "user", "u-carol", via_forward=True),
    MailboxSpec("dave", "user", "u-dave"),
    MailboxSpec("erin", "user", "u-erin", protocol="pop3"),
    MailboxSpec("support", "queue", "q-support", folders=("INBOX", "Sent:outgoing")),
    MailboxSpec("sales", "queue", "q-sales", via_forward=True),
)

_T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone(timedelta(hours=1)))


def _at(minutes: int) -> datetime:
    return _T0 + timedelta(minutes=minutes)


@dataclass(frozen=True)
class Letter:
    key: str  # short name, used in expectations and output
    sender: str
    to: tuple[str, ...]
    subject: str
    date: datetime
    body: str
    deliver_to: tuple[tuple[str, str], ...] = ()  # (mailbox local part, folder), direct copies
    forwarded_by: str = ""  # a forwarding user's local part (or any address: a spoof)
    # how the forward carries the original: "rfc822" (a server rule's forward as attachment)
    # or "msg" (an Outlook .msg file, shipped beside this module: mail.MSG_FILES)
    forward_as: str = "rfc822"
    cc: tuple[str, ...] = ()
    in_reply_to: str = ""  # a Letter key
    headers: tuple[tuple[str, str], ...] = ()
    form: str = "plain"  # plain | bounce | malformed
    failed_recipient: str = ""
    message_id_of: str = ""  # reuse another letter's Message-ID (a forgery)
    # what Acme's receiving server found checking a forward's sender: "pass", or "fail" for a
    # forward that only claims to come from a forwarder
    auth: str = "pass"
    phase: int = 1

    @property
    def message_id(self) -> str:
        return f"{self.message_id_of or self.key}.demo@mail.{DOMAIN}"

    def resolved(self, letters: dict[str, Letter]) -> Letter:
        """In-Reply-To names a letter key; the header needs that letter's Message-ID."""
        if not self.in_reply_to or "@" in self.in_reply_to:
            return self
        from dataclasses import replace

        return replace(self, in_reply_to=letters[self.in_reply_to].message_id)


JANE, MIA, RAVI = "jane@contoso.example", "mia@contoso.example", "ravi@fabrikam.example"
ALICE, BOB, CAROL = (f"{n}@{DOMAIN}" for n in ("alice", "bob", "carol"))
DAVE, ERIN, SUPPORT = (f"{n}@{DOMAIN}" for n in ("dave", "erin", "support"))
SALES = f"sales@{DOMAIN}"

LETTERS: tuple[Letter, ...] = (
    Letter("order-damaged", JANE, (ALICE,), "Order 4411 arrived damaged", _at(0),
           "Hi Alice,\n\ntwo of the six chairs arrived with broken legs.\n\nJane",
           forwarded_by="alice"),
    Letter("pricing", RAVI, (BOB,), "Fabrikam pricing for Q2", _at(5),
           "Bob, please send us your Q2 price list.\nRavi", forwarded_by="bob"),
    Letter("order-damaged-reply", JANE, (ALICE,), "Re: Order 4411 arrived damaged", _at(30),
           "Photos attached in the portal. Can you replace them this week?\nJane",
           forwarded_by="alice", in_reply_to="order-damaged"),
    Letter("quote-reply", RAVI, (DAVE,), f"Re: Your quote {TOKEN}", _at(40),
           "Dave, the quote looks good. We accept.\nRavi", deliver_to=(("dave", "INBOX"),)),
    Letter("site-visit", MIA, (DAVE, ERIN), "Site visit next week", _at(50),
           "Hello both, can we move the site visit to Thursday?\nMia", cc=(SUPPORT,),
           deliver_to=(("dave", "INBOX"), ("erin", "INBOX"), ("support", "INBOX"))),
    Letter("printer", JANE, (SUPPORT,), "Printer on fire", _at(60),
           "Our office printer is smoking after your firmware update.\nJane",
           deliver_to=(("support", "INBOX"),)),
    Letter("printer-answer", SUPPORT, (JANE, "j.doe@contoso.example"), "Re: Printer on fire",
           _at(70), "Please unplug it; a technician is on the way.\nAcme Support",
           in_reply_to="printer", deliver_to=(("support", "Sent"),)),
    Letter("printer-bounce", "MAILER-DAEMON@mx.contoso.example", (SUPPORT,),
           "Undelivered Mail Returned to Sender", _at(71),
           "Your message could not be delivered to one or more recipients.",
           in_reply_to="printer-answer", form="bounce",
           failed_recipient="j.doe@contoso.example", deliver_to=(("support", "INBOX"),)),
    Letter("out-of-office", RAVI, (SUPPORT,), "Automatic reply: Fabrikam pricing", _at(80),
           "I am out of the office until Monday.", headers=(("Auto-Submitted", "auto-replied"),),
           deliver_to=(("support", "INBOX"),)),
    Letter("norway", "lars@example.net", (SUPPORT,), "Do you ship to Norway?", _at(90),
           "Hello, do you deliver to Tromsø?\nLars", deliver_to=(("support", "INBOX"),)),
    Letter("newsletter", "news@growth-hacks.example", (DAVE,), "Grow your business 10x",
           _at(95), "Click here.", deliver_to=(("dave", "INBOX"),)),
    Letter("spoofed", JANE, (ALICE,), "Urgent: new bank details", _at(100),
           "Please pay all invoices to the new account.", forwarded_by="mallory@evil.example"),
    # someone outside writes a "forward" as Alice; Acme's server stamps DMARC fail on it
    Letter("forged-forward", JANE, (ALICE,), "Re: Order 4411 - refund to new account",
           _at(102), "Please refund to IBAN XX00 0000.", forwarded_by="alice", auth="fail"),
    Letter("broken", "", (SUPPORT,), "broken", _at(105), "garbage",
           form="malformed", deliver_to=(("crm-forward", "INBOX"),)),
    Letter("renewal-reply", MIA, (BOB,), "Re: Contract renewal", _at(130),
           "Bob, we agree with the renewal terms.\nMia", forwarded_by="bob",
           in_reply_to="renewal"),
    # Alice forwards this one as an Outlook .msg file; its direct copy arrives in phase 2
    Letter("new-address", JANE, (ALICE, DAVE), "Updated delivery address", _at(140),
           "From April please deliver to Dock 7.\nJane", forwarded_by="alice",
           forward_as="msg"),
    Letter("invoice", MIA, (CAROL,), "Invoice 2026-031 question", _at(150),
           "Carol, invoice 2026-031 lists 12 chairs; we ordered 10.\nMia", forwarded_by="carol"),
    # the sales queue's rule forwards this one: a queue item of q-sales, by the queue's rules
    Letter("bulk-order", RAVI, (SALES,), "Bulk order: 200 chairs", _at(160),
           "Hello sales, what is your price for 200 chairs?\nRavi", forwarded_by="sales"),
    # --- phase 2: appended once phase 1 is processed and the reply above is parked ---------
    Letter("renewal", JANE, (ALICE, BOB), "Contract renewal", _at(120),
           "Alice, Bob: the renewal offer is attached in the portal.\nJane",
           forwarded_by="alice", phase=2),
    Letter("new-address", JANE, (ALICE, DAVE), "Updated delivery address", _at(140),
           "From April please deliver to Dock 7.\nJane", deliver_to=(("dave", "INBOX"),),
           phase=2),
    Letter("printer-forgery", "billing@evil.example", (SUPPORT,),
           "Printer on fire - invoice overdue", _at(61),
           "Pay the attached invoice today.", message_id_of="printer",
           deliver_to=(("support", "INBOX"),), phase=2),
)


@dataclass(frozen=True)
class Outcome:
    """What the scenario must produce once every stage has caught up."""

    records: dict[str, int] = field(default_factory=dict)
    skips: dict[str, int] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)
    correlation: dict[str, int] = field(default_factory=dict)


EXPECTED = Outcome(
    records={
        "email activities": 15,  # 20 originals unwrapped: 2 skipped, 3 second copies merged
        "receiving mailbox links": 18,  # site visit: 3 mailboxes; new address: 2
        "parties": 35,
        "cases": 2,  # site visit, printer (known customers); auto-reply and bounce never open one
        "queue items": 7,  # 6 of support's, 1 of sales' (a queue behind the forward mailbox)
        "contacts created": 2,  # lars@ (unknown sender) and the forger, both to support
        "collisions": 1,  # the forgery reusing the printer mail's Message-ID
        "delivery failures": 1,  # j.doe@ (the bounce of support's answer)
    },
    skips={
        "tracks known: the sender is not a known account/contact/lead": 1,  # newsletter
        "tracks replies: not a reply": 1,  # Bob's pricing mail
    },
    dead_letters={
        "unwrap: not_a_forwarder": 1,  # the spoofed forward from mallory@evil.example
        "unwrap: auth_failed": 1,  # the forward forged as Alice's (DMARC fail)
        "unwrap: not_forwarded": 1,  # the malformed message in the forward mailbox
    },
    correlation={"in_reply_to": 4, "token": 1},
)


def letters_by_key() -> dict[str, Letter]:
    """Phase-1 letters win a key shared with a phase-2 copy (they name the same email)."""
    out: dict[str, Letter] = {}
    for letter in LETTERS:
        out.setdefault(letter.key, letter)
    return out

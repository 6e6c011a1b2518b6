"""Building the scenario's mail as real RFC 5322 bytes with the standard library.

Every message is what a real client or server would put in a mailbox: an original, a forward
that carries the original as a ``message/rfc822`` attachment (what a forwarding rule "as an
attachment" produces) or as an Outlook ``.msg`` file, stamped with the Authentication-Results
of the forward mailbox's receiving server, an auto-reply, a delivery-status bounce
(RFC 3464) and a deliberately broken message. Dates and Message-IDs are fixed, so every run
produces the same bytes and the same dedupe keys.

The ``.msg`` originals are committed files beside this module (package data), built by
``tests/unwrap/make_msg_fixtures.py`` with msgforge, a dev-only tool: Mailroom cannot write a
.msg at run time and does not need to.
"""

from __future__ import annotations

from email.message import EmailMessage, Message
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesParser
from email.policy import SMTP, compat32
from email.utils import format_datetime
from importlib.resources import files

from mailroom.console.demo.scenario import AUTHSERV_ID, DOMAIN, Letter

#: The Outlook .msg file shipped for each letter forwarded as one (``Letter.forward_as``).
MSG_FILES = {"new-address": "new-address.msg"}


def original(letter: Letter) -> bytes:
    """The original as the sender's server delivered it."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = letter.sender
    msg["To"] = ", ".join(letter.to)
    if letter.cc:
        msg["Cc"] = ", ".join(letter.cc)
    msg["Subject"] = letter.subject
    msg["Date"] = format_datetime(letter.date)
    msg["Message-ID"] = f"<{letter.message_id}>"
    if letter.in_reply_to:
        msg["In-Reply-To"] = f"<{letter.in_reply_to}>"
        msg["References"] = f"<{letter.in_reply_to}>"
    for name, value in letter.headers:
        msg[name] = value
    msg.set_content(letter.body)
    return msg.as_bytes()


def authentication_results(authserv_id: str, sender: str, result: str) -> str:
    """The value Acme's receiving server stamps on a message from ``sender``: what its DKIM,
    SPF and DMARC checks found (all ``result``), aligned with the sender's domain."""
    domain = sender.rpartition("@")[2]
    return (f"{authserv_id}; dkim={result} header.d={domain}; spf={result} "
            f"smtp.mailfrom={sender}; dmarc={result} header.from={domain}")


def forward(letter: Letter, forwarder: str, forward_mailbox: str,
            authserv_id: str = AUTHSERV_ID) -> bytes:
    """What a user's server rule "forward as attachment" sends to the forward mailbox, as the
    forward mailbox's receiving server (``authserv_id``) stored it."""
    outer = MIMEMultipart("mixed", policy=SMTP)
    outer["Authentication-Results"] = authentication_results(authserv_id, forwarder,
                                                             letter.auth)
    outer["From"] = forwarder
    outer["To"] = forward_mailbox
    outer["Subject"] = f"Fw: {letter.subject}"
    outer["Date"] = format_datetime(letter.date.replace(second=30))
    outer["Message-ID"] = f"<fw.{letter.message_id}>"
    outer.attach(MIMEText("Forwarded by a server rule.\n", "plain", "utf-8"))
    if letter.forward_as == "msg":
        # as Outlook attaches a saved message: the .msg file, typed application/vnd.ms-outlook
        part = MIMEApplication(msg_file(letter), "vnd.ms-outlook")
        part.add_header("Content-Disposition", "attachment",
                        filename=f"{letter.subject}.msg")
        outer.attach(part)
        return outer.as_bytes()
    inner = BytesParser(policy=compat32).parsebytes(original(letter))
    outer.attach(MIMEMessage(inner))
    return outer.as_bytes()


def msg_file(letter: Letter) -> bytes:
    """The committed .msg of ``letter``; its internet headers are those of ``original``."""
    return (files("mailroom.console.demo") / MSG_FILES[letter.key]).read_bytes()


def bounce(letter: Letter, failed: str, reporting_mta: str) -> bytes:
    """A multipart/report delivery-status "failed" notice (RFC 3464) for ``letter``'s original
    (``letter.in_reply_to``), as a receiving MTA sends it back."""
    outer = MIMEMultipart("report", report_type="delivery-status", policy=SMTP)
    outer["From"] = letter.sender
    outer["To"] = ", ".join(letter.to)
    outer["Subject"] = letter.subject
    outer["Date"] = format_datetime(letter.date)
    outer["Message-ID"] = f"<{letter.message_id}>"
    outer["Auto-Submitted"] = "auto-replied"
    if letter.in_reply_to:
        outer["In-Reply-To"] = f"<{letter.in_reply_to}>"
        outer["References"] = f"<{letter.in_reply_to}>"
    outer.attach(MIMEText(letter.body, "plain", "utf-8"))
    # message/delivery-status holds header blocks: one per message, then one per recipient.
    status = MIMEBase("message", "delivery-status")
    per_message, per_recipient = Message(), Message()
    per_message["Reporting-MTA"] = f"dns; {reporting_mta}"
    per_recipient["Final-Recipient"] = f"rfc822; {failed}"
    per_recipient["Action"] = "failed"
    per_recipient["Status"] = "5.1.1"
    per_recipient["Diagnostic-Code"] = f"smtp; 550 5.1.1 <{failed}>: Recipient address rejected"
    status.set_payload([per_message, per_recipient])
    outer.attach(status)
    headers = MIMEText(f"Message-ID: <{letter.in_reply_to}>\nTo: {failed}\n", "rfc822-headers")
    outer.attach(headers)
    return outer.as_bytes()


def malformed(letter: Letter) -> bytes:
    """A message a broken client produced: no From, a header line without a colon, a
    multipart whose boundary never appears and never closes."""
    return (
        f"To: {', '.join(letter.to)}\r\n"
        f"Subject: {letter.subject}\r\n"
        "This line is not a header\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="never-closed"\r\n'
        "\r\n"
        "--wrong-boundary\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n"
        f"{letter.body}\r\n"
    ).encode()


def render(letter: Letter, authserv_id: str = AUTHSERV_ID) -> bytes:
    """The bytes appended to the mailbox for one scenario letter."""
    if letter.form == "bounce":
        return bounce(letter, letter.failed_recipient, letter.sender.split("@")[1])
    if letter.form == "malformed":
        return malformed(letter)
    if letter.forwarded_by:
        by = letter.forwarded_by
        return forward(letter, by if "@" in by else f"{by}@{DOMAIN}", f"crm-forward@{DOMAIN}",
                       authserv_id)
    return original(letter)


def parse(data: bytes) -> Message:
    return BytesParser(policy=compat32).parsebytes(data)

"""The local stack's ``sendmail``: hands a message to Dovecot's LMTP for every recipient.

Pigeonhole sends what a Sieve script redirects through ``sendmail_path`` (or an SMTP
submission host; Dovecot's LMTP listener speaks LHLO, not EHLO, so it cannot be that host). A
real server has Postfix or Exim there; the local stack has no MTA, so this script is one for a
single domain: each recipient's local part is a user of the stack's Dovecot. ``mailroom stack
up`` copies it into the stack's state folder with the system Python as interpreter, because it
runs as the mail user, who may not read the project's virtual environment.

Each recipient's Dovecot user is the local part of its address, unless ``aliases.d/<address>``
beside the installed script names another login — the stack's virtual alias map, for a mailbox
whose login is not its address's local part (the demo's logins carry its topic prefix).

Dovecot calls it as ``sendmail -i -f SENDER -- RECIPIENT...`` with the message on standard
input; the exit codes are sendmail's (``EX_TEMPFAIL`` makes Dovecot report a temporary failure).
Standard library only: it runs outside the project's environment.
"""

from __future__ import annotations

import smtplib
import sys
from pathlib import Path

EX_USAGE = 64
EX_TEMPFAIL = 75
#: The alias map's folder, beside the installed script: one file per address, holding the login.
ALIASES = "aliases.d"


def parse(argv: list[str]) -> tuple[int, str, list[str]]:
    """(LMTP port, envelope sender, recipients) from ``--lmtp-port N [-i] [-f S] [--] RCPT...``."""
    port, sender, recipients = 0, "", []
    args = iter(argv)
    for arg in args:
        if arg == "--lmtp-port":
            port = int(next(args))
        elif arg == "-f":
            sender = next(args)
        elif arg == "--":
            recipients.extend(args)
        elif arg.startswith("-"):
            continue  # -i and the like: nothing to do for an LMTP hand-over
        else:
            recipients.append(arg)
    if not port or not recipients:
        raise ValueError("usage: lmtp_sendmail --lmtp-port N [-i] [-f SENDER] [--] RECIPIENT...")
    return port, "" if sender == "<>" else sender, recipients


def login(recipient: str, aliases: Path) -> str:
    """The Dovecot user ``recipient``'s mail goes to: the login its alias file names, else the
    address's local part."""
    address = recipient.strip().lower()
    if address and "/" not in address and not address.startswith("."):
        try:
            mapped = (aliases / address).read_text().strip()
        except OSError:
            mapped = ""
        if mapped:
            return mapped
    return recipient.rpartition("@")[0] or recipient


def main(argv: list[str]) -> int:
    try:
        port, sender, recipients = parse(argv)
    except (ValueError, StopIteration) as exc:
        print(exc, file=sys.stderr)
        return EX_USAGE
    message = sys.stdin.buffer.read()
    aliases = Path(__file__).resolve().with_name(ALIASES)
    try:
        with smtplib.LMTP("127.0.0.1", port) as lmtp:
            # One transaction per recipient: LMTP answers DATA once per recipient, and
            # smtplib reads only one answer.
            for recipient in recipients:
                lmtp.sendmail(sender, [login(recipient, aliases)], message)
    except (OSError, smtplib.SMTPException) as exc:
        print(f"LMTP delivery failed: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

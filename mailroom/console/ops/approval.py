"""``mailroom mailbox approve|reject ADDRESS``: the approval of a mailbox's address, and the
release of the forwards that waited for it (ingest/approval.py says where unapproved mail
waits).

Console, not ingest: releasing reads the dead-letter topic and retries through ``mailroom dlq``'s
own code, which a stage may not import. The dashboard's Approve and Reject buttons call
:func:`approve` and :func:`reject` too, so both record and release the same way.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from ingest import announce, approval
from ingest.commands import deciding
from ingest.model import Mailbox
from mailroom.codec import Codec
from mailroom.console.ops import dlq
from mailroom.db import connect
from mailroom.settings import Settings
from unwrap.attribution import HELD


@dataclass(frozen=True)
class Decided:
    mailbox: Mailbox
    released: int = 0  # held forwards sent back to unwrap
    problem: str = ""  # what did not work after the decision was recorded


def mailbox_commands(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The sub-commands of ingest's ``mailbox`` command, for the console's own to join."""
    mailbox = sub.choices.get("mailbox")
    found = [a for a in (mailbox._actions if mailbox else [])  # noqa: SLF001 - argparse's list
             if isinstance(a, argparse._SubParsersAction)]
    if not found:
        raise RuntimeError("the 'mailbox' command must be registered before the console's "
                           "mailbox commands (approve, reject, backfill)")
    return found[0]


def register(sub: argparse._SubParsersAction) -> None:
    commands = mailbox_commands(sub)
    for name, func, text in (
        ("approve", _approve, "approve the mailbox's address: its mail is processed (forwards "
         "held for it are sent back to unwrap)"),
        ("reject", _reject, "reject the mailbox's address: its mail is not processed"),
    ):
        p = commands.add_parser(name, help=text)
        p.add_argument("mailbox", help="address or id")
        p.add_argument("--by", default="", help="who decides, for the record (default: the "
                       "operating-system user running this command)")
        p.set_defaults(func=func)


def approve(settings: Settings, key: int | str, by: str) -> Decided:
    with connect(settings) as conn:
        m = approval.decide(conn, key, True, by)
    problem = _publish(settings, m)
    released = 0
    if m.via_mailbox_id is not None:
        try:
            released = release(settings, m)
        except Exception as exc:  # noqa: BLE001 - the approval stands; say how to finish
            problem = (f"its held forwards were not sent back ({type(exc).__name__}: {exc}); "
                       f"run `mailroom dlq retry --all --reason {HELD}`")
    return Decided(m, released, problem)


def reject(settings: Settings, key: int | str, by: str) -> Decided:
    with connect(settings) as conn:
        m = approval.decide(conn, key, False, by)
    return Decided(m, 0, _publish(settings, m))


def release(settings: Settings, mailbox: Mailbox) -> int:
    """Send the forwards held for ``mailbox`` back to unwrap; returns how many."""
    codec = Codec.from_settings(settings)
    mark = f"<{mailbox.address.strip().lower()}>"
    held = [x for x in dlq.select(dlq.read_letters(settings, codec), stage="unwrap", reason=HELD)
            if x.letter is not None and mark in x.letter.reason.lower()]
    return dlq.retry(settings, codec, held) if held else 0


def _publish(settings: Settings, m: Mailbox) -> str:
    """The decision on the mailboxes topic; '' or what went wrong (the database has it)."""
    try:
        with connect(settings) as conn:
            announce.publish_now(settings, conn, [int(m.id or 0)])
    except Exception as exc:  # noqa: BLE001 - any broker failure: say so and how to repair
        return (f"not published to {settings.topic('mailboxes')} ({type(exc).__name__}: {exc});"
                " run `mailroom mailbox publish` once Kafka is back")
    return ""


def _report(decided: Decided, word: str) -> int:
    m = decided.mailbox
    print(f"mailbox {m.address} {word} by {m.approval_by}")
    if m.approved and m.via_mailbox_id is not None:
        print(f"  {decided.released} held forward(s) sent back to unwrap")
    elif not m.approved:
        print("  its mail is not processed")
    if decided.problem:
        print(f"mailroom: {decided.problem}", file=sys.stderr)
        return 1
    return 0


def _approve(settings: Settings, args: argparse.Namespace) -> int:
    return _report(approve(settings, args.mailbox, deciding(args)), "approved")


def _reject(settings: Settings, args: argparse.Namespace) -> int:
    return _report(reject(settings, args.mailbox, deciding(args)), "rejected")

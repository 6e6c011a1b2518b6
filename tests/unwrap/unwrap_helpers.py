"""Shared helpers of the unwrap tests: fixtures by name, a RawMail around bytes, a context."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mailroom.records.email import Email
from mailroom.records.raw import RawMail
from unwrap.context import Rejection, UnwrapContext
from unwrap.limits import Limits
from unwrap.unwrap import unwrap

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FORWARD_MAILBOX = "fm1"
FORWARDERS = {FORWARD_MAILBOX: {"Alice@Corp.Example": "u-alice"}}
AUTHSERV = "mx.crm.example"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def raw(data: bytes, kind: str = "user", mailbox: str = "mb-alice", uid: int = 1,
        direction: str = "incoming") -> RawMail:
    return RawMail(mailbox_id=mailbox, mailbox_address=f"{mailbox}@corp.example",
                   owner_kind=kind, owner_id="u-alice" if kind == "user" else None,  # type: ignore[arg-type]
                   folder="INBOX", direction=direction, protocol="imap",  # type: ignore[arg-type]
                   fetched_at=datetime(2025, 3, 10, tzinfo=UTC), size=len(data),
                   uidvalidity=7, uid=uid, content=data)


def context(**changes: object) -> UnwrapContext:
    values: dict[str, object] = {"forwarders": FORWARDERS, "limits": Limits(),
                                 "authserv_id": AUTHSERV}
    values.update(changes)
    return UnwrapContext(**values)  # type: ignore[arg-type]


def direct(name_or_bytes: str | bytes, **ctx: object) -> list[Email]:
    data = fixture(name_or_bytes) if isinstance(name_or_bytes, str) else name_or_bytes
    result = unwrap(raw(data), context(**ctx))
    assert not isinstance(result, Rejection), result
    return result


def forwarded(name_or_bytes: str | bytes, **ctx: object) -> list[Email] | Rejection:
    data = fixture(name_or_bytes) if isinstance(name_or_bytes, str) else name_or_bytes
    return unwrap(raw(data, kind="forward", mailbox=FORWARD_MAILBOX), context(**ctx))


def stamped(auth: str, frm: str | None = None, name: str = "fwd_rfc822_outlook.eml") -> bytes:
    """A forward fixture with its Authentication-Results replaced by ``auth`` (header lines,
    '' for none) and, given ``frm``, its From line replaced by ``frm`` (a whole header line)."""
    head, sep, rest = fixture(name).partition(b"\r\n\r\n")
    lines: list[bytes] = []
    dropping = False
    for line in head.split(b"\r\n"):
        if not line.startswith((b" ", b"\t")):  # a new field; continuation lines follow it
            dropping = line.lower().startswith(b"authentication-results:")
        if not dropping:
            lines.append(line)
    if frm is not None:
        lines = [frm.encode() if line.lower().startswith(b"from:") else line for line in lines]
    new = [a.encode() for a in auth.splitlines() if a] + lines
    return b"\r\n".join(new) + sep + rest

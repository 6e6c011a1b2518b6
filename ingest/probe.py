"""``mailbox test`` and the reconnect probe: can we reach, secure and (for a test) log in?

:func:`test` logs in, lists the configured folders with their message counts and answers
Success or Failure with the real cause; the caller records it on the mailbox. :func:`reachable`
does not log in (connect, TLS, CAPABILITY): it is what re-enables a mailbox that an outage
disabled, without risking an account lockout.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field

from ingest import connect, pop3
from ingest.errors import FolderMissing, classify
from ingest.model import Mailbox, Profile, Protocol
from mailroom.errors import MailroomError
from mailroom.settings import Settings


@dataclass
class TestResult:
    ok: bool
    detail: str
    folders: list[tuple[str, int]] = field(default_factory=list)  # (name, message count)

    __test__ = False  # not a pytest class


def test(settings: Settings, profile: Profile, mailbox: Mailbox,
         forward_address: str = "") -> TestResult:
    if not mailbox.polled:
        # Logging in would be wrong twice: it has no credentials of its own, and ingest never
        # logs in to it. Its forward mailbox is the one to test.
        return TestResult(True, f"via forward mailbox {forward_address or mailbox.via_mailbox_id}"
                          ": not logged in to (its mail arrives through the forward mailbox)")
    try:
        if profile.protocol is Protocol.IMAP:
            counts = _imap_counts(settings, profile, mailbox)
        else:
            counts = _pop3_counts(settings, profile, mailbox)
    except MailroomError as exc:
        return TestResult(False, str(exc))
    except Exception as exc:  # noqa: BLE001 - whatever happened is the test's answer
        return TestResult(False, str(classify(exc, profile.host, profile.port)))
    summary = ", ".join(f"{name}: {n} messages" for name, n in counts)
    return TestResult(True, f"logged in to {profile.host}:{profile.port}; {summary}", counts)


def _imap_counts(settings: Settings, profile: Profile, mailbox: Mailbox) -> list[tuple[str, int]]:
    counts = []
    with connect.imap(settings, profile, mailbox) as client:
        for folder in mailbox.folders:
            if not client.folder_exists(folder.name):
                raise FolderMissing(f"folder missing: {folder.name!r} does not exist")
            status = client.folder_status(folder.name, [b"MESSAGES"])
            counts.append((folder.name, int(status[b"MESSAGES"])))
    return counts


def _pop3_counts(settings: Settings, profile: Profile, mailbox: Mailbox) -> list[tuple[str, int]]:
    with connect.pop3(settings, profile, mailbox) as conn:
        return [("INBOX", len(pop3.server_uidls(conn)))]


def reachable(profile: Profile) -> str | None:
    """None when the server answers (connect, TLS, CAPABILITY); else the cause."""
    try:
        if profile.protocol is Protocol.IMAP:
            client = connect.open_imap_unauthenticated(profile)
            with suppress(Exception):
                client.logout()
        else:
            conn = connect.open_pop3_unauthenticated(profile)
            with suppress(Exception):
                conn.quit()
    except MailroomError as exc:
        return str(exc)
    return None

"""imaplib's protocol trace is formatted only when someone reads it: ingest's connections do not
build the repr of every line and literal for a logger that drops it, and an operator who turns
the ``imapclient.imaplib`` logger to DEBUG still gets the whole trace."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest
from imapclient import IMAPClient

from ingest import fetching
from ingest.connect import IMAPLIB_LOGGER, open_imap_unauthenticated
from ingest.model import Profile, Protocol, Tls
from mailroom.console.stack import dovecot
from mailroom.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def user(base_settings: Settings) -> Iterator[str]:
    name = "pt" + uuid.uuid4().hex[:10]
    dovecot.add_user(base_settings, name, "pw")
    try:
        yield name
    finally:
        dovecot.remove_users(base_settings, [name])


def traced_fetch(settings: Settings, user: str) -> list[str]:
    """Log in, store a message and FETCH it through a connection ingest opens; the messages
    imaplib formatted for its trace."""
    profile = Profile("trace", Protocol.IMAP, "127.0.0.1", settings.imap_port, tls=Tls.NONE)
    client: IMAPClient = open_imap_unauthenticated(profile)
    formatted: list[str] = []
    sink = client._imap._mesg  # noqa: SLF001
    client._imap._mesg = lambda text: (formatted.append(text), sink(text))[1]  # noqa: SLF001
    try:
        client.login(user, "pw")
        client.append("INBOX", b"Subject: hello\r\n\r\n" + b"body line\r\n" * 100)
        client.select_folder("INBOX")
        uids = client.search(["ALL"])
        fetched = fetching.fetch(client, uids, [b"BODY.PEEK[]", b"RFC822.SIZE"])
        assert len(fetched) == 1 and b"body line" in fetched[uids[0]][b"BODY[]"]
    finally:
        client.logout()
    return formatted


def test_nothing_is_formatted_for_a_trace_nobody_reads(
    base_settings: Settings, user: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=IMAPLIB_LOGGER.name)
    assert traced_fetch(base_settings, user) == []


def test_the_trace_is_there_when_its_logger_is_on_for_debug(
    base_settings: Settings, user: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=IMAPLIB_LOGGER.name)
    formatted = traced_fetch(base_settings, user)
    assert any("body line" in text for text in formatted), formatted[:5]
    assert any("body line" in r.getMessage() for r in caplog.records
               if r.name == IMAPLIB_LOGGER.name)


def test_log_level_debug_keeps_whole_messages_out_of_the_logs(
    base_settings: Settings, user: str,
) -> None:
    """``log_level = DEBUG`` is for the product's own lines: the protocol trace would write
    every message fetched into the log (and cost ingest the formatting)."""
    from mailroom import log

    root = logging.getLogger()
    saved = root.handlers[:], root.level, IMAPLIB_LOGGER.level
    try:
        log.configure("DEBUG")
        assert traced_fetch(base_settings, user) == []
    finally:
        root.handlers[:], _, _ = saved
        root.setLevel(saved[1])
        IMAPLIB_LOGGER.setLevel(saved[2])

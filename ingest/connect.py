"""Opening an authenticated IMAP or POP3 session as a mailbox's profile says.

TLS is implicit, STARTTLS or (loopback only, checked by the profile) none. Certificates are
always verified: ``trust_cafile`` adds an explicitly trusted certificate instead of switching
verification off. Every failure leaves here as one of :mod:`ingest.errors`, with its cause.
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import poplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from imapclient import IMAPClient

from ingest import credentials, oauth
from ingest.errors import AuthRefused, classify
from ingest.model import Auth, Mailbox, Profile, Tls
from ingest.progress import FETCH_BUDGET_BYTES
from mailroom.settings import Settings

TIMEOUT_S = 30.0

#: The logger imapclient sends imaplib's protocol trace to.
IMAPLIB_LOGGER = logging.getLogger("imapclient.imaplib")


def quiet_protocol_trace(client: IMAPClient) -> None:
    """imaplib's protocol trace off unless its logger is on for DEBUG.

    imapclient sets imaplib's debug level to 5 and hands its messages to a logger, so imaplib
    formats the ``repr`` of every line and literal it reads, and of a whole FETCH response
    before it returns it, only for the logger to drop it: over a third of ingest's CPU on
    27 KB messages (profiled with py-spy). Whoever sets the ``imapclient.imaplib`` logger to
    DEBUG (in code: ``log_level`` leaves it at WARNING, the trace holds whole messages) gets the
    trace on connections opened after.
    """
    if not IMAPLIB_LOGGER.isEnabledFor(logging.DEBUG):
        client._imap.debug = 0  # noqa: SLF001


def tls_context(profile: Profile) -> ssl.SSLContext:
    """The verifying context for the profile's server, shared by its connections: loading the
    system's CA certificates costs tens of milliseconds, once per poll it was a fifth of
    ingest's time. A changed ``trust_cafile`` (path or file) gets a new context."""
    cafile = profile.trust_cafile or ""
    with suppress(OSError):
        return _context(cafile, os.stat(cafile).st_mtime_ns if cafile else 0)
    return _context(cafile, -1)  # unreadable: load_verify_locations says why


@functools.lru_cache(maxsize=64)
def _context(cafile: str, version: int) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if cafile:
        ctx.load_verify_locations(cafile=cafile)
    return ctx


def _secret(settings: Settings, profile: Profile, mailbox: Mailbox) -> str:
    clear = credentials.decrypt(settings, mailbox.secret)
    if profile.auth is Auth.XOAUTH2:
        return oauth.access_token(profile, clear)  # the stored secret is the client secret
    return clear


def _login_failure(exc: BaseException, profile: Profile) -> Exception:
    """The cause of a failed login; with XOAUTH2 a refusal is the token's ("token refused"),
    which tells the admin to look at the identity provider, not at a password."""
    err = classify(exc, profile.host, profile.port)
    if (profile.auth is Auth.XOAUTH2 and isinstance(err, AuthRefused)
            and not str(err).startswith("token refused")):
        return AuthRefused(f"token refused by {profile.host}:{profile.port}: {exc}")
    return err


def open_imap_unauthenticated(profile: Profile) -> IMAPClient:
    """Connect and negotiate TLS, no login: the probe that may re-enable a mailbox."""
    try:
        client = IMAPClient(
            profile.host, port=profile.port, ssl=profile.tls is Tls.IMPLICIT,
            ssl_context=tls_context(profile) if profile.tls is Tls.IMPLICIT else None,
            timeout=TIMEOUT_S,
        )
        quiet_protocol_trace(client)
        if profile.tls is Tls.STARTTLS:
            client.starttls(tls_context(profile))
        client.capabilities()
        return client
    except Exception as exc:
        raise classify(exc, profile.host, profile.port) from exc


@contextmanager
def imap(settings: Settings, profile: Profile, mailbox: Mailbox) -> Iterator[IMAPClient]:
    client = open_imap_unauthenticated(profile)
    try:
        try:
            secret = _secret(settings, profile, mailbox)
            if profile.auth is Auth.XOAUTH2:
                client.oauth2_login(mailbox.username, secret)
            else:
                client.login(mailbox.username, secret)
        except Exception as exc:
            raise _login_failure(exc, profile) from exc
        yield client
    finally:
        # The session is over either way; a failing LOGOUT must not hide the real error.
        with suppress(Exception):
            client.logout()


#: Longest POP3 response line read. poplib's own limit (2,048 bytes, a module global) refuses
#: RETR of any message with a longer line, which real mail has (single-line HTML or base64);
#: a line cannot be longer than its message, so this bounds memory as a batch does, and only
#: a server sending an endless line is cut off.
POP3_MAX_LINE_BYTES = FETCH_BUDGET_BYTES


class _LongLines:
    """poplib's ``_getline`` with this connection's own line limit instead of the global."""

    max_line = POP3_MAX_LINE_BYTES
    file: Any
    _debugging: int

    def _getline(self) -> tuple[bytes, int]:
        line = self.file.readline(self.max_line + 1)
        if len(line) > self.max_line:
            raise poplib.error_proto("line too long")
        if not line:
            raise poplib.error_proto("-ERR EOF")
        octets = len(line)
        # As poplib: the server may end lines with CRLF, LF or (oddly) start them with CR.
        if line[-2:] == b"\r\n":
            return line[:-2], octets
        if line[:1] == b"\r":
            return line[1:-1], octets
        return line[:-1], octets


class POP3(_LongLines, poplib.POP3):
    pass


class POP3_SSL(_LongLines, poplib.POP3_SSL):  # noqa: N801 - named after poplib's class
    pass


def open_pop3_unauthenticated(profile: Profile) -> poplib.POP3:
    try:
        if profile.tls is Tls.IMPLICIT:
            conn: poplib.POP3 = POP3_SSL(
                profile.host, profile.port, timeout=TIMEOUT_S, context=tls_context(profile)
            )
        else:
            conn = POP3(profile.host, profile.port, timeout=TIMEOUT_S)
            if profile.tls is Tls.STARTTLS:
                conn.stls(tls_context(profile))
        conn.capa()
        return conn
    except Exception as exc:
        raise classify(exc, profile.host, profile.port) from exc


@contextmanager
def pop3(settings: Settings, profile: Profile, mailbox: Mailbox) -> Iterator[poplib.POP3]:
    conn = open_pop3_unauthenticated(profile)
    committed = False
    try:
        try:
            secret = _secret(settings, profile, mailbox)
            if profile.auth is Auth.XOAUTH2:
                _pop3_xoauth2(conn, mailbox.username, secret)
            else:
                conn.user(mailbox.username)
                conn.pass_(secret)
        except Exception as exc:
            raise _login_failure(exc, profile) from exc
        yield conn
        committed = True
    finally:
        # POP3 applies DELE only at QUIT. After a failure we drop the connection without QUIT
        # so nothing marked for deletion is removed unless the whole session went well.
        if committed:
            try:
                conn.quit()
            except Exception as exc:
                raise classify(exc, profile.host, profile.port) from exc
        else:
            conn.close()


def _pop3_xoauth2(conn: poplib.POP3, username: str, token: str) -> None:
    """AUTH XOAUTH2 with the initial response. A refused token is answered with a "+ <error>"
    challenge (not "-ERR"), which poplib would take for success: answer it with an empty line,
    as the mechanism requires, and report the refusal."""
    sasl = f"user={username}\x01auth=Bearer {token}\x01\x01".encode()
    resp = conn._shortcmd("AUTH XOAUTH2 " + base64.b64encode(sasl).decode())  # type: ignore[attr-defined]
    if not resp.startswith(b"+OK"):
        conn._putcmd("")  # type: ignore[attr-defined]
        with suppress(poplib.error_proto):
            conn._getresp()  # type: ignore[attr-defined]
        raise AuthRefused("the server refused AUTH XOAUTH2")  # named by _login_failure

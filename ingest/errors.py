"""What can go wrong talking to a mail server, named by its real cause.

The split decides what ingest does next: a :class:`TransientError` is retried with backoff (the
mailbox shows ``retrying`` and the cause); a :class:`PermanentError` disables the mailbox with
the cause and nothing logs in again until an administrator re-enables it — retrying a wrong
password locks accounts in most directories.
"""

from __future__ import annotations

import poplib
import socket
import ssl

from imapclient import exceptions as imap_exc

from mailroom.errors import PermanentError, TransientError


class Unreachable(TransientError):
    """Name does not resolve, connection refused or timed out, network down."""


class TlsFailure(TransientError):
    """The TLS handshake or certificate check failed. Transient: no login was attempted, so
    retrying cannot lock an account, and a fixed certificate heals it without an admin."""


class ServerBusy(TransientError):
    """The server asks us to come back later (POP3 [IN-USE], IMAP [UNAVAILABLE], ...)."""


class AuthRefused(PermanentError):
    """The server refused the credentials (or the OAuth2 token endpoint refused the client)."""


class FolderMissing(PermanentError):
    """A configured folder does not exist on the server."""


class ProtocolFailure(TransientError):
    """The server said something unexpected; retried, with the server's words as the cause."""


class ConnectionLost(TransientError):
    """The server closed the session or stopped answering in the middle of it (IMAP BYE,
    POP3 EOF, reset): retried with backoff like an outage."""


class MessageUnfetched(TransientError):
    """One message (or a batch holding it) could not be fetched this time. The attempt is
    counted durably (:mod:`ingest.unfetchable`); the pass ends and the next one, after backoff,
    tries the message alone — past ``max_attempts`` it is dead-lettered and passed."""


def classify(exc: BaseException, host: str, port: int) -> Exception:
    """Map a low-level exception from a session (connecting, logging in, or any command after
    login) to one of the errors above. Anything unforeseen becomes a transient
    :class:`ProtocolFailure` naming the exception: retried with backoff, never a dead process."""
    where = f"{host}:{port}"
    if isinstance(exc, TransientError | PermanentError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TlsFailure(
            f"TLS failure with {where}: certificate not trusted ({exc.verify_message})"
        )
    if isinstance(exc, ssl.SSLError):
        return TlsFailure(f"TLS failure with {where}: {exc.reason or exc}")
    if isinstance(exc, socket.gaierror):
        return Unreachable(f"host unreachable: cannot resolve {host!r} ({exc.strerror})")
    if isinstance(exc, TimeoutError | socket.timeout):
        return Unreachable(f"host unreachable: {where} timed out")
    if isinstance(exc, ConnectionRefusedError):
        return Unreachable(f"host unreachable: {where} refused the connection")
    if isinstance(exc, imap_exc.IMAPClientAbortError):  # before IMAPClientError: a subclass
        return ConnectionLost(f"connection lost with {where}: {exc}")
    if isinstance(exc, imap_exc.LoginError):
        text = str(exc)
        if "[UNAVAILABLE]" in text or "[INUSE]" in text:
            return ServerBusy(f"server busy at {where}: {text}")
        return AuthRefused(f"authentication refused by {where}: {text}")
    if isinstance(exc, poplib.error_proto):
        text = exc.args[0].decode(errors="replace") if exc.args and isinstance(
            exc.args[0], bytes) else str(exc)
        if "[IN-USE]" in text or "[SYS/TEMP]" in text:
            return ServerBusy(f"server busy at {where}: {text}")
        if "[AUTH]" in text or "Authentication failed" in text:
            return AuthRefused(f"authentication refused by {where}: {text}")
        if text == "-ERR EOF":  # poplib's words for a closed connection
            return ConnectionLost(f"connection lost with {where}: the server closed it")
        return ProtocolFailure(f"POP3 error from {where}: {text}")
    if isinstance(exc, imap_exc.IMAPClientError):
        return ProtocolFailure(f"IMAP error from {where}: {exc}")
    if isinstance(exc, ConnectionResetError | BrokenPipeError | EOFError):
        return ConnectionLost(f"connection lost with {where}: {exc}")
    if isinstance(exc, OSError):
        return Unreachable(f"host unreachable: {where}: {exc.strerror or exc}")
    return ProtocolFailure(f"unexpected failure with {where}: {type(exc).__name__}: {exc}")

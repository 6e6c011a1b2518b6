"""Every failure of a mail session gets a name and a class (pure: the exceptions are built)."""

from __future__ import annotations

import poplib

import pytest
from imapclient import exceptions as imap_exc

from ingest.errors import (
    AuthRefused,
    ConnectionLost,
    ProtocolFailure,
    ServerBusy,
    Unreachable,
    classify,
)
from mailroom.errors import TransientError


@pytest.mark.parametrize(("exc", "kind", "words"), [
    (imap_exc.IMAPClientAbortError("FETCH failed: Internal error"), ConnectionLost,
     "connection lost"),
    (imap_exc.IMAPClientError("FETCH command error: BAD [b'Error in IMAP command']"),
     ProtocolFailure, "BAD"),
    (imap_exc.IMAPClientError("fetch failed: NO [SERVERBUG]"), ProtocolFailure, "SERVERBUG"),
    (poplib.error_proto(b"-ERR EOF"), ConnectionLost, "closed it"),
    (poplib.error_proto("line too long"), ProtocolFailure, "line too long"),
    (poplib.error_proto(b"-ERR Message 3 expunged."), ProtocolFailure, "expunged"),
    (poplib.error_proto(b"-ERR [SYS/TEMP] Internal error"), ServerBusy, "SYS/TEMP"),
    (poplib.error_proto(b"-ERR [AUTH] Authentication failed."), AuthRefused, "refused"),
    (TimeoutError("timed out"), Unreachable, "timed out"),
    (ConnectionResetError(104, "Connection reset by peer"), ConnectionLost, "reset"),
    (KeyError("BODY[]"), ProtocolFailure, "KeyError"),
])
def test_every_session_failure_is_classified(exc: Exception, kind: type, words: str) -> None:
    err = classify(exc, "mail.example.com", 993)
    assert isinstance(err, kind) and words in str(err)
    assert "mail.example.com:993" in str(err) or isinstance(err, AuthRefused | ServerBusy)


def test_nothing_unforeseen_is_permanent() -> None:
    # A permanent error disables the mailbox; only the server's explicit refusals may do that.
    assert isinstance(classify(RuntimeError("?"), "h", 1), TransientError)

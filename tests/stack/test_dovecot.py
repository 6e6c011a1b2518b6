"""Dovecot of the local stack, over real sockets: IMAP, POP3, implicit TLS and STARTTLS."""

from __future__ import annotations

import contextlib
import imaplib
import poplib
import ssl
import time
import uuid

import psutil
import pytest
from imapclient import IMAPClient

from mailroom.console.stack import dovecot
from mailroom.settings import Settings

pytestmark = pytest.mark.integration


def message(subject: str) -> bytes:
    # CRLF line ends as on the wire, a dot-leading line (POP3 must unstuff it) and 8-bit text.
    return (
        f"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@example.com>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        "Hello Bob,\r\n.a line that starts with a dot\r\nGrüße\r\n"
    ).encode()


def append(settings: Settings, user: tuple[str, str], raw: bytes) -> int:
    with IMAPClient("127.0.0.1", port=settings.imap_port, ssl=False, timeout=10) as imap:
        imap.login(*user)
        response = imap.append("INBOX", raw)
    # UIDPLUS: "[APPENDUID <uidvalidity> <uid>] ..."
    return int(response.split(b"]")[0].split()[-1])


def test_imap_append_then_fetch_is_byte_identical(stack: Settings, mail_user) -> None:
    raw = message("imap round trip")
    uid = append(stack, mail_user, raw)
    with IMAPClient("127.0.0.1", port=stack.imap_port, ssl=False, timeout=10) as imap:
        imap.login(*mail_user)
        assert {b"UIDPLUS", b"MOVE", b"IDLE"} <= set(imap.capabilities())
        imap.select_folder("INBOX", readonly=True)
        fetched = imap.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]
    assert fetched == raw


def test_pop3_retrieves_the_appended_message(stack: Settings, mail_user) -> None:
    raw = message("pop3 read")
    append(stack, mail_user, raw)
    pop = poplib.POP3("127.0.0.1", stack.pop3_port, timeout=10)
    try:
        pop.user(mail_user[0])
        pop.pass_(mail_user[1])
        count, _size = pop.stat()
        assert count == 1
        _resp, lines, _octets = pop.retr(1)
    finally:
        pop.quit()
    assert b"\r\n".join(lines) + b"\r\n" == raw


def test_imaps_implicit_tls_with_the_stack_certificate(stack: Settings, mail_user, trusting
                                                       ) -> None:
    raw = message("over implicit TLS")
    with IMAPClient("127.0.0.1", port=stack.imaps_port, ssl=True, ssl_context=trusting,
                    timeout=10) as imap:
        imap.login(*mail_user)
        imap.append("INBOX", raw)
        imap.select_folder("INBOX", readonly=True)
        (uid,) = imap.search(["ALL"])
        assert imap.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"] == raw


def test_imaps_refuses_an_untrusted_certificate(stack: Settings) -> None:
    # Proves the certificate is really checked: without the stack's CA the handshake fails.
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient("127.0.0.1", port=stack.imaps_port, ssl=True,
                   ssl_context=ssl.create_default_context(), timeout=10)


def test_imap_starttls(stack: Settings, mail_user, trusting) -> None:
    with IMAPClient("127.0.0.1", port=stack.imap_port, ssl=False, timeout=10) as imap:
        assert b"STARTTLS" in imap.capabilities()
        imap.starttls(trusting)
        imap.login(*mail_user)
        assert imap.select_folder("INBOX")[b"EXISTS"] == 0


def test_pop3s_and_stls(stack: Settings, mail_user, trusting) -> None:
    append(stack, mail_user, message("pop3 over TLS"))
    implicit = poplib.POP3_SSL("127.0.0.1", stack.pop3s_port, context=trusting, timeout=10)
    try:
        implicit.user(mail_user[0])
        implicit.pass_(mail_user[1])
        assert implicit.stat()[0] == 1
    finally:
        implicit.quit()
    upgraded = poplib.POP3("127.0.0.1", stack.pop3_port, timeout=10)
    try:
        upgraded.stls(trusting)
        upgraded.user(mail_user[0])
        upgraded.pass_(mail_user[1])
        assert upgraded.stat()[0] == 1
    finally:
        upgraded.quit()


def test_special_use_folders_exist(stack: Settings, mail_user) -> None:
    with IMAPClient("127.0.0.1", port=stack.imap_port, ssl=False, timeout=10) as imap:
        imap.login(*mail_user)
        flags = {f for folder_flags, _sep, _name in imap.list_folders() for f in folder_flags}
    assert {b"\\Archive", b"\\Trash", b"\\Sent", b"\\Junk"} <= flags


def test_added_user_logs_in_at_once_and_failures_are_logged(stack: Settings) -> None:
    name = "s" + uuid.uuid4().hex[:10]
    dovecot.add_user(stack, name, "first")
    dovecot.add_user(stack, name, "second")  # a second call changes the password
    with IMAPClient("127.0.0.1", port=stack.imap_port, ssl=False, timeout=10) as imap:
        imap.login(name, "second")
    with (IMAPClient("127.0.0.1", port=stack.imap_port, ssl=False, timeout=10) as imap,
          pytest.raises(imaplib.IMAP4.error)):
        imap.login(name, "first")
    log = dovecot.log_file(stack).read_text(errors="replace")
    assert f"Login: user=<{name}>" in log
    assert f"passwd-file({name},127.0.0.1" in log and "Password mismatch" in log


def test_seeded_users(stack: Settings) -> None:
    for name in ("demo", "test"):
        with IMAPClient("127.0.0.1", port=stack.imap_port, ssl=False, timeout=10) as imap:
            imap.login(name, dovecot.SEED_USERS[name])


@pytest.mark.parametrize("bad", ["a:b", "a\nb", "", " x", "../x"])
def test_add_user_refuses_names_that_break_the_file(tmp_path, bad: str) -> None:
    settings = Settings(state_dir=str(tmp_path))
    with pytest.raises(ValueError):
        dovecot.add_user(settings, bad, "pw")


def _auth_holds(stack: Settings, path: str) -> bool:
    """Does one of the stack's Dovecot auth processes hold ``path`` open?"""
    master = psutil.Process(dovecot._pid(stack))  # noqa: SLF001 - the instance's master
    for proc in master.children():
        with contextlib.suppress(psutil.Error):
            if " ".join(proc.cmdline()).rstrip().endswith("/auth") and any(
                    f.path == path for f in proc.open_files()):
                return True
    return False


def test_removed_users_files_are_let_go_by_dovecots_auth(
    stack: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Auth keeps each passwd-file it read open for its life; tens of thousands of users
    # added and removed by benches ran it out of descriptors and every login failed.
    name = "r" + uuid.uuid4().hex[:10]
    dovecot.add_user(stack, name, "pw")
    with IMAPClient("127.0.0.1", port=stack.imap_port, ssl=False, timeout=10) as imap:
        imap.login(name, "pw")
    path = str(dovecot.user_file(stack, name))
    assert _auth_holds(stack, path)
    monkeypatch.setattr(dovecot, "RELOAD_AFTER_REMOVED", 1)
    assert dovecot.remove_users(stack, [name, name + "-never-added"]) == 1
    deadline = time.monotonic() + 30
    while _auth_holds(stack, path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _auth_holds(stack, path)
    other = "r" + uuid.uuid4().hex[:10]  # and Dovecot serves logins as before
    dovecot.add_user(stack, other, "pw")
    deadline = time.monotonic() + 30
    while True:
        try:
            with IMAPClient("127.0.0.1", port=stack.imap_port, ssl=False, timeout=10) as imap:
                imap.login(other, "pw")
            break
        except (imaplib.IMAP4.error, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)  # the master restarting its children

import pytest

from ingest import credentials
from ingest.model import (
    AfterIngest,
    Direction,
    Folder,
    Mailbox,
    OwnerKind,
    Profile,
    Protocol,
    Tls,
    parse_folders,
)
from mailroom.errors import ConfigError
from mailroom.settings import Settings


def _profile(**kw: object) -> Profile:
    base = dict(name="p", protocol=Protocol.IMAP, host="127.0.0.1", port=993)
    base.update(kw)
    return Profile(**base)  # type: ignore[arg-type]


def test_plaintext_only_for_loopback() -> None:
    _profile(tls=Tls.NONE).validate()
    with pytest.raises(ConfigError, match="loopback"):
        _profile(tls=Tls.NONE, host="mail.example.com").validate()


def test_user_mailbox_may_only_flag() -> None:
    profile = _profile()
    mb = Mailbox("a@example.com", OwnerKind.USER, 1, "a", b"x", after_ingest=AfterIngest.MOVE,
                 move_to="Done")
    with pytest.raises(ConfigError, match="keyword"):
        mb.validate(profile)
    Mailbox("q@example.com", OwnerKind.QUEUE, 1, "q", b"x", after_ingest=AfterIngest.MOVE,
            move_to="Done").validate(profile)


def test_pop3_has_only_inbox() -> None:
    profile = _profile(protocol=Protocol.POP3, port=995)
    with pytest.raises(ConfigError, match="INBOX"):
        Mailbox("a@example.com", OwnerKind.USER, 1, "a", b"x",
                folders=(Folder("Sent", Direction.OUTGOING),)).validate(profile)


def test_parse_folders() -> None:
    assert parse_folders(None) == (Folder(),)
    assert parse_folders(["INBOX", "Sent:outgoing", "a:b"]) == (
        Folder("INBOX"), Folder("Sent", Direction.OUTGOING), Folder("a:b"),
    )


def test_credentials_round_trip_and_never_in_repr(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = Settings(secret_key="k1-" + "0123456789abcdef" * 2, state_dir=str(tmp_path))
    token = credentials.encrypt(s, "hunter2")
    assert b"hunter2" not in token
    assert credentials.decrypt(s, token) == "hunter2"
    mb = Mailbox("a@example.com", OwnerKind.USER, 1, "a", token)
    assert "hunter2" not in repr(mb) and repr(token) not in repr(mb)
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        credentials.decrypt(Settings(secret_key="other-" + "0123456789abcdef" * 2,
                                     state_dir=str(tmp_path)), token)


def test_generated_key_is_stable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = Settings(state_dir=str(tmp_path))
    token = credentials.encrypt(s, "pw")
    assert credentials.decrypt(s, token) == "pw"
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0

"""Stored mailbox credentials: a strong key, key rotation, a new password — the crypto as unit
tests, the commands against the real PostgreSQL and Dovecot."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from ingest_helpers import REPO, _env, add_mailbox

from ingest import credentials, store
from mailroom.errors import ConfigError
from mailroom.settings import Settings

OLD_KEY = secrets.token_urlsafe(48)
NEW_KEY = secrets.token_urlsafe(48)


def _cli(settings: Settings, *args: str, env: dict[str, str] | None = None,
         stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailroom.cli", *args], cwd=REPO, input=stdin, text=True,
        capture_output=True, env={**_env(settings), **(env or {})}, timeout=120,
    )


def _stored(db: psycopg.Connection, settings: Settings, address: str) -> str:
    return credentials.decrypt(settings, store.mailbox(db, address).secret)


@pytest.mark.parametrize("weak", ["x", "a" * 64, "0123456789" * 3])
def test_a_weak_key_is_refused_with_a_clear_error(tmp_path: Path, weak: str) -> None:
    settings = Settings(state_dir=str(tmp_path), secret_key=weak)
    with pytest.raises(ConfigError, match="MAILROOM_SECRET_KEY is too weak.*at least"):
        credentials.encrypt(settings, "pw")
    with pytest.raises(ConfigError, match="too weak"):
        credentials.check_key(settings)


def test_the_generated_key_and_a_strong_key_are_accepted(tmp_path: Path) -> None:
    generated = Settings(state_dir=str(tmp_path))
    assert credentials.decrypt(generated, credentials.encrypt(generated, "pw")) == "pw"
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    strong = Settings(state_dir=str(tmp_path), secret_key=NEW_KEY)
    assert credentials.decrypt(strong, credentials.encrypt(strong, "pw")) == "pw"


def test_previous_keys_decrypt_and_rotation_moves_to_the_current_key(tmp_path: Path) -> None:
    old = Settings(state_dir=str(tmp_path), secret_key=OLD_KEY)
    token = credentials.encrypt(old, "s3cret")
    during = Settings(state_dir=str(tmp_path), secret_key=NEW_KEY,
                      secret_key_previous=f"{secrets.token_urlsafe(48)}, {OLD_KEY}")
    after = Settings(state_dir=str(tmp_path), secret_key=NEW_KEY)
    assert credentials.decrypt(during, token) == "s3cret"
    with pytest.raises(ConfigError, match="MAILROOM_SECRET_KEY_PREVIOUS.*set-password"):
        credentials.decrypt(after, token)  # the old key is gone: says what to do
    rotated = credentials.rotate(during, token)
    assert credentials.decrypt(after, rotated) == "s3cret"
    with pytest.raises(ConfigError):
        credentials.decrypt(old, rotated)  # really under the new key
    # a weak *previous* key still decrypts: it is what one rotates away from
    weak_token = credentials.key_fernet(b"short").encrypt(b"kept")
    away = Settings(state_dir=str(tmp_path), secret_key=NEW_KEY, secret_key_previous="short")
    assert credentials.decrypt(after, credentials.rotate(away, weak_token)) == "kept"


def test_the_keys_are_derived_once_per_set_of_keys(tmp_path: Path) -> None:
    # Every pass decrypts its mailbox's credential: the derivation is kept, per set of keys.
    one = Settings(state_dir=str(tmp_path), secret_key=NEW_KEY)
    assert credentials.fernet(one) is credentials.fernet(
        Settings(state_dir=str(tmp_path / "other"), secret_key=NEW_KEY))
    during = Settings(state_dir=str(tmp_path), secret_key=NEW_KEY, secret_key_previous=OLD_KEY)
    assert credentials.fernet(during) is not credentials.fernet(one)  # a key added: new
    generated = Settings(state_dir=str(tmp_path / "gen"))
    first = credentials.fernet(generated)
    assert credentials.fernet(generated) is first


@pytest.mark.integration
def test_set_password_reads_stdin_and_the_mailbox_logs_in_with_it(
    db_settings: Settings, db: psycopg.Connection, mail_user: tuple[str, str]
) -> None:
    user, password = mail_user
    key = {"MAILROOM_SECRET_KEY": NEW_KEY}
    settings = db_settings.replace(secret_key=NEW_KEY)
    mb = add_mailbox(db, settings, user, "wrong-password")
    r = _cli(db_settings, "mailbox", "test", mb.address, env=key)
    assert r.returncode == 1 and "authentication refused" in r.stdout
    r = _cli(db_settings, "mailbox", "set-password", mb.address, env=key, stdin=password + "\n")
    assert r.returncode == 0, r.stderr
    assert "new password stored" in r.stdout and password not in r.stdout + r.stderr
    r = _cli(db_settings, "mailbox", "test", mb.address, env=key)
    assert r.returncode == 0 and "Success" in r.stdout, r.stdout + r.stderr
    assert _stored(db, settings, mb.address) == password
    # from a named environment variable too; an empty one is refused, nothing changed
    r = _cli(db_settings, "mailbox", "set-password", mb.address, "--password-env", "NEWPW",
             env={**key, "NEWPW": "other-" + password})
    assert r.returncode == 0, r.stderr
    db.commit()
    assert _stored(db, settings, mb.address) == "other-" + password
    r = _cli(db_settings, "mailbox", "set-password", mb.address, env=key, stdin="\n")
    assert r.returncode != 0 and "no password given" in r.stderr
    db.commit()
    assert _stored(db, settings, mb.address) == "other-" + password


@pytest.mark.integration
def test_rotate_key_re_encrypts_every_credential_and_names_what_it_cannot(
    db_settings: Settings, db: psycopg.Connection,
) -> None:
    old = db_settings.replace(secret_key=OLD_KEY)
    first = add_mailbox(db, old, "rot-a", "password-a")
    second = add_mailbox(db, old, "rot-b", "password-b")
    lost = add_mailbox(db, db_settings.replace(secret_key=secrets.token_urlsafe(48)), "rot-c",
                       "password-c")  # stored under a key nobody configured any more
    env = {"MAILROOM_SECRET_KEY": NEW_KEY, "MAILROOM_SECRET_KEY_PREVIOUS": OLD_KEY}
    r = _cli(db_settings, "mailbox", "rotate-key", env=env)
    assert r.returncode == 1
    assert "2 mailbox credential(s) re-encrypted" in r.stdout
    assert lost.address in r.stderr and "set-password" in r.stderr
    db.commit()
    after = db_settings.replace(secret_key=NEW_KEY)  # no previous key any more
    assert credentials.decrypt(after, store.mailbox(db, first.address).secret) == "password-a"
    assert credentials.decrypt(after, store.mailbox(db, second.address).secret) == "password-b"
    assert bytes(store.mailbox(db, lost.address).secret) == bytes(lost.secret)  # untouched
    for key in (OLD_KEY, NEW_KEY):
        assert key not in r.stdout + r.stderr


@pytest.mark.integration
def test_the_commands_refuse_a_one_character_key(
    db_settings: Settings, db: psycopg.Connection, mail_user: tuple[str, str]
) -> None:
    user, password = mail_user
    weak = {"MAILROOM_SECRET_KEY": "k", "PW": password}
    r = _cli(db_settings, "profile", "add", "local", "--host", "127.0.0.1", "--tls", "none",
             "--port", str(db_settings.imap_port))
    assert r.returncode == 0, r.stderr
    r = _cli(db_settings, "mailbox", "add", f"{user}@example.com", "--profile", "local",
             "--password-env", "PW", env=weak)
    assert r.returncode != 0 and "MAILROOM_SECRET_KEY is too weak" in r.stderr
    assert store.mailboxes(db) == []  # nothing stored under a weak key
    r = _cli(db_settings, "mailbox", "rotate-key", env=weak)
    assert r.returncode != 0 and "too weak" in r.stderr
    r = _cli(db_settings, "run", "ingest", env=weak)
    assert r.returncode != 0 and "too weak" in r.stderr

"""Mailbox credentials, encrypted at rest.

The key is derived (HKDF-SHA256) from ``settings.secret_key``, so that setting is the one thing
an operator has to protect. When it is empty — the local stack only — a random key is
generated once into the state folder, readable by its owner alone. Clear passwords exist only
in the caller's hands at the moment of login: they are never logged, printed or published.

Rotation: ``settings.secret_key_previous`` lists keys that still decrypt but never encrypt
(:class:`~cryptography.fernet.MultiFernet`). Configure every process with the new key and the
old one as previous, run ``mailroom mailbox rotate-key`` (re-encrypts every stored credential
under the new key), then drop the previous key.

Strength: a configured key must have at least :data:`MIN_KEY_CHARS` characters and
:data:`MIN_DISTINCT_CHARS` different ones; a weak key is refused with a clear error wherever it
would be used. Previous keys are not checked: a weak old key must still decrypt, to rotate away.
"""

from __future__ import annotations

import base64
import functools
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mailroom.errors import ConfigError
from mailroom.settings import Settings

_INFO = b"mailroom mailbox credentials v1"

#: A key typed by a person must carry at least ~128 bits even if it is plain text; the
#: generated one (``secrets.token_urlsafe(48)``) has 64 characters.
MIN_KEY_CHARS = 32
MIN_DISTINCT_CHARS = 10
HOW_TO_MAKE_ONE = "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"


def key_problem(key: str) -> str | None:
    """Why ``key`` is too weak to encrypt credentials, or None when it is strong enough."""
    if len(key) < MIN_KEY_CHARS:
        return f"it has {len(key)} character(s), at least {MIN_KEY_CHARS} are needed"
    if len(set(key)) < MIN_DISTINCT_CHARS:
        return (f"it uses only {len(set(key))} different character(s), at least "
                f"{MIN_DISTINCT_CHARS} are needed")
    return None


def check_key(settings: Settings) -> None:
    """Raise :class:`ConfigError` when the configured key is too weak (no-op for the
    generated one)."""
    if settings.secret_key and (problem := key_problem(settings.secret_key)):
        raise ConfigError(
            f"MAILROOM_SECRET_KEY is too weak to encrypt mailbox credentials: {problem}. "
            f"Make one with: {HOW_TO_MAKE_ONE}"
        )


def _generated_key(settings: Settings) -> bytes:
    path = settings.state_path / "secret.key"
    known = _GENERATED.get(path)
    if known is not None:
        return known  # written once (O_EXCL) and never changed: read once per process
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two processes starting at once must not each write a different key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(48))
    key = _GENERATED[path] = Path(path).read_text().strip().encode()
    return key


_GENERATED: dict[Path, bytes] = {}


def _secret_key(settings: Settings) -> bytes:
    if settings.secret_key:
        check_key(settings)
        return settings.secret_key.encode()
    return _generated_key(settings)


def previous_keys(settings: Settings) -> list[str]:
    """The keys that still decrypt, in the order given (comma separated in the setting)."""
    return [k.strip() for k in settings.secret_key_previous.split(",") if k.strip()]


def key_fernet(key: bytes) -> Fernet:
    """The Fernet of one key (HKDF-SHA256 of it)."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(key)
    return Fernet(base64.urlsafe_b64encode(raw))


def fernet(settings: Settings) -> MultiFernet:
    """Encrypts under the current key; decrypts under it or any previous one."""
    return _multi_fernet((_secret_key(settings), *(k.encode() for k in previous_keys(settings))))


@functools.lru_cache(maxsize=8)
def _multi_fernet(keys: tuple[bytes, ...]) -> MultiFernet:
    # Derived once per set of keys: every pass decrypts its mailbox's credential, and the
    # derivations cost ~5% of an ingest process's time at a thousand mailboxes polled.
    return MultiFernet([key_fernet(k) for k in keys])


def encrypt(settings: Settings, clear: str) -> bytes:
    return fernet(settings).encrypt(clear.encode())


def decrypt(settings: Settings, token: bytes) -> str:
    try:
        return fernet(settings).decrypt(bytes(token)).decode()
    except InvalidToken as exc:
        raise _undecryptable() from exc


def rotate(settings: Settings, token: bytes) -> bytes:
    """The same credential encrypted under the current key (from any configured key)."""
    try:
        return fernet(settings).rotate(bytes(token))
    except InvalidToken as exc:
        raise _undecryptable() from exc


def _undecryptable() -> ConfigError:
    return ConfigError(
        "a mailbox credential cannot be decrypted: neither MAILROOM_SECRET_KEY nor a key in "
        "MAILROOM_SECRET_KEY_PREVIOUS is the key it was stored with (add that key to "
        "MAILROOM_SECRET_KEY_PREVIOUS, or enter the password again with 'mailroom mailbox "
        "set-password ADDRESS')"
    )

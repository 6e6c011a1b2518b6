"""Mailbox credentials, encrypted at rest.

The key is derived (HKDF-SHA256) from ``settings.secret_key``, so rotating that setting is the
one thing an operator has to protect. When it is empty — the local stack only — a random key is
generated once into the state folder, readable by its owner alone. Clear passwords exist only
in the caller's hands at the moment of login: they are never logged, printed or published.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mailroom.errors import ConfigError
from mailroom.settings import Settings

_INFO = b"mailroom mailbox credentials v1"


def _secret_key(settings: Settings) -> bytes:
    if settings.secret_key:
        return settings.secret_key.encode()
    path = settings.state_path / "secret.key"
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
    return Path(path).read_text().strip().encode()


def fernet(settings: Settings) -> Fernet:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        _secret_key(settings)
    )
    return Fernet(base64.urlsafe_b64encode(raw))


def encrypt(settings: Settings, clear: str) -> bytes:
    return fernet(settings).encrypt(clear.encode())


def decrypt(settings: Settings, token: bytes) -> str:
    try:
        return fernet(settings).decrypt(bytes(token)).decode()
    except InvalidToken as exc:
        raise ConfigError(
            "a mailbox credential cannot be decrypted: MAILROOM_SECRET_KEY is not the key it "
            "was stored with (re-enter the password with 'mailroom mailbox add --replace')"
        ) from exc

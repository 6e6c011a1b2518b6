"""Login with one shared secret, and sessions signed with HMAC (no server-side session store).

The secret comes from configuration (``web_secret``, ``MAILROOM_WEB_SECRET``). When it is empty
one is generated once into the state folder (``<state>/web-secret``, mode 0600) and the command
prints it — the local stack's way, like ``secret_key``.

A session cookie is ``<session id>.<expiry>.<hmac>``: the HMAC (SHA-256) is keyed by a key
derived from the secret, so changing the secret logs everyone out, and a forged or edited cookie
fails :func:`Sessions.verify`. The cookie is HttpOnly (scripts cannot read it) and
SameSite=Strict (other sites' pages cannot send it).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from mailroom.settings import Settings

COOKIE = "mailroom_session"
SESSION_TTL_S = 12 * 3600


@dataclass(frozen=True)
class Secret:
    value: str
    source: str  # "configuration" or the file it was read from / generated into
    generated: bool = False


def resolve_secret(settings: Settings) -> Secret:
    if settings.web_secret:
        return Secret(settings.web_secret, "configuration (MAILROOM_WEB_SECRET)")
    path = settings.state_path / "web-secret"
    if path.is_file() and path.read_text().strip():
        return Secret(path.read_text().strip(), str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(18)
    _write_private(path, value + "\n")
    return Secret(value, str(path), generated=True)


def _write_private(path: Path, text: str) -> None:
    # Created 0600 from the start: the secret is never readable by others, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


class Sessions:
    def __init__(self, secret: str, ttl_s: int = SESSION_TTL_S) -> None:
        self._secret = secret.encode()
        # A derived key, so the login secret itself is never the MAC key of anything we hand out.
        self.key = hmac.new(self._secret, b"mailroom-web-session-v1", hashlib.sha256).digest()
        self.ttl_s = ttl_s

    def check_secret(self, offered: str) -> bool:
        return hmac.compare_digest(offered.encode(), self._secret)

    def _sign(self, payload: str) -> str:
        return hmac.new(self.key, payload.encode(), hashlib.sha256).hexdigest()

    def sign_text(self, text: str) -> str:
        return self._sign("text|" + text)

    def check_text(self, text: str, mac: str | None) -> bool:
        return bool(mac) and hmac.compare_digest(str(mac), self.sign_text(text))

    def issue(self) -> str:
        payload = f"{secrets.token_hex(16)}.{int(time.time()) + self.ttl_s}"
        return f"{payload}.{self._sign(payload)}"

    def verify(self, cookie: str | None) -> str | None:
        """The session id when the cookie is ours and not expired, else None."""
        if not cookie or cookie.count(".") != 2:
            return None
        sid, expiry, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._sign(f"{sid}.{expiry}")):
            return None
        if not expiry.isdigit() or int(expiry) < time.time():
            return None
        return sid

    def cookie_header(self, value: str, max_age: int | None = None) -> str:
        age = self.ttl_s if max_age is None else max_age
        return f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}"

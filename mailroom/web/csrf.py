"""CSRF tokens: one per session, on every form that changes something.

The token is an HMAC of the session id under the session key, so it needs no storage and a
token from one session is worthless in another. SameSite=Strict already keeps other sites from
sending the cookie; the token is the second, independent lock (older browsers, same-site
subdomains). The login form, which has no session yet, uses a double-submit token: a random
value in a SameSite=Strict cookie that the form must echo.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

PRE_COOKIE = "mailroom_login_csrf"


def token(key: bytes, session_id: str) -> str:
    return hmac.new(key, b"csrf|" + session_id.encode(), hashlib.sha256).hexdigest()


def valid(key: bytes, session_id: str, offered: str | None) -> bool:
    return bool(offered) and hmac.compare_digest(str(offered), token(key, session_id))


def new_login_token() -> str:
    return secrets.token_hex(16)


def valid_login(cookie_value: str | None, offered: str | None) -> bool:
    return bool(cookie_value) and bool(offered) and hmac.compare_digest(
        str(cookie_value), str(offered))

"""CSRF tokens: one random token per session, on every form that changes something.

The token lives in the session's row (``web_sessions.csrf``), so a token from one session is
worthless in another and ends with the session. SameSite=Strict already keeps other sites from
sending the cookie; the token is the second, independent lock (older browsers, same-site
subdomains). The login form, which has no session yet, uses a double-submit token: a random
value in a SameSite=Strict cookie that the form must echo.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PRE_COOKIE = "mailroom_login_csrf"
_LOGIN_TOKEN = re.compile(r"^[0-9a-f]{32}$")


def valid(expected: str, offered: str | None) -> bool:
    # Compared as bytes: compare_digest refuses non-ASCII str (that was a 500, not a 403).
    return bool(offered) and hmac.compare_digest(expected.encode(), str(offered).encode())


def new_login_token() -> str:
    return secrets.token_hex(16)


def login_token(held: str | None) -> str | None:
    """The login token the browser holds when it is one of ours."""
    return held if held and _LOGIN_TOKEN.match(held) else None


def valid_login(cookie_value: str | None, offered: str | None) -> bool:
    held = login_token(cookie_value)
    return held is not None and valid(held, offered)


def sign(key: str, text: str) -> str:
    """A MAC of a result message under the session's CSRF token: a crafted link cannot put
    words on our page, and a signature is worthless outside its session."""
    return hmac.new(key.encode(), b"flash|" + text.encode(), hashlib.sha256).hexdigest()


def signed(key: str, text: str, mac: str | None) -> bool:
    return bool(mac) and valid(sign(key, text), mac)

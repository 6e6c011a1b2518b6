"""OAuth2 client-credentials tokens for XOAUTH2 (Exchange Online accepts nothing else)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

from ingest.errors import AuthRefused, Unreachable
from ingest.model import Profile, token_url_problem


def access_token(profile: Profile, client_secret: str) -> str:
    """Ask the profile's token endpoint for an access token (grant_type=client_credentials).

    The URL is checked again here, not only when the profile is added: a profile stored by an
    older version (or edited in the database) must not get the secret sent in clear."""
    problem = token_url_problem(profile.oauth_token_url)
    if problem is not None:
        raise AuthRefused(f"profile {profile.name}: {problem}")  # permanent: never retried
    body = urllib.parse.urlencode({
        "grant_type": "client_credentials",
        "client_id": profile.oauth_client_id,
        "client_secret": client_secret,
        "scope": profile.oauth_scope,
    }).encode()
    try:
        with urllib.request.urlopen(profile.oauth_token_url, data=body, timeout=30) as resp:
            data = json.load(resp)
    except urllib.error.HTTPError as exc:
        if exc.code in (400, 401, 403):
            raise AuthRefused(f"token refused by {profile.oauth_token_url}: HTTP {exc.code}") \
                from exc
        raise Unreachable(f"token endpoint {profile.oauth_token_url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise Unreachable(f"token endpoint {profile.oauth_token_url} unreachable: {exc}") from exc
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        raise AuthRefused(f"token endpoint {profile.oauth_token_url} returned no access_token")
    return token

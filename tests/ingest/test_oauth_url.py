"""The OAuth client secret is posted only over https (or plain http to a loopback host)."""

from __future__ import annotations

import pytest

from ingest.errors import AuthRefused
from ingest.model import Auth, Profile, Protocol, token_url_problem
from ingest.oauth import access_token
from mailroom.errors import ConfigError


@pytest.mark.parametrize("url", [
    "https://login.microsoftonline.com/tenant/oauth2/v2.0/token",
    "http://127.0.0.1:10980/token",
    "http://localhost/token",
    "http://[::1]:8080/token",
])
def test_allowed(url: str) -> None:
    assert token_url_problem(url) is None


@pytest.mark.parametrize("url", [
    "http://login.example/token",
    "http://127.0.0.1.evil.example/token",
    "file:///etc/passwd",
    "ftp://login.example/token",
    "https:///token",
    "login.example/token",
])
def test_refused(url: str) -> None:
    assert token_url_problem(url) is not None


def _profile(url: str) -> Profile:
    return Profile("exo", Protocol.IMAP, "outlook.office365.com", 993, auth=Auth.XOAUTH2,
                   oauth_token_url=url, oauth_client_id="app")


def test_a_profile_with_a_clear_text_token_url_is_refused() -> None:
    with pytest.raises(ConfigError, match="must be https"):
        _profile("http://login.example/token").validate()


def test_no_secret_is_posted_to_a_stored_clear_text_url() -> None:
    # e.g. a profile stored before the check: refused before any request (permanent, so the
    # mailbox is disabled with the cause instead of retried)
    with pytest.raises(AuthRefused, match="must be https"):
        access_token(_profile("http://192.0.2.1/token"), "client-secret")

"""XOAUTH2 against Dovecot's oauth2 passdb with a local token endpoint.

A small identity provider on 127.0.0.1 (stdlib http.server) is both the client-credentials token
endpoint ingest asks and the tokeninfo/introspection endpoint Dovecot's oauth2 passdb asks
(``settings.dovecot_oauth2_port``; ``mailroom stack up`` writes Dovecot's side). Ingest logs in
with XOAUTH2 over IMAP and POP3 and fetches mail; a token Dovecot refuses disables the mailbox
with the cause "token refused", as does a client secret the token endpoint refuses.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
from ingest_helpers import append, ingestor, message, read_raw

from ingest import credentials, store
from ingest.model import Auth, Mailbox, OwnerKind, Profile, Protocol, Tls
from mailroom.console.stack import dovecot
from mailroom.settings import Settings

pytestmark = pytest.mark.integration


@dataclass
class IdentityProvider:
    """Clients (id -> secret, user) get bearer tokens; Dovecot asks what a token stands for."""

    clients: dict[str, tuple[str, str]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # token -> user name
    refuse: bool = False  # introspection says every token is inactive (revoked)
    asked: list[str] = field(default_factory=list)  # paths requested, in order

    def handler(self) -> type[BaseHTTPRequestHandler]:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                url = urllib.parse.urlsplit(self.path)
                idp.asked.append(url.path)
                token = urllib.parse.parse_qs(url.query).get("access_token", [""])[0]
                if url.path == "/tokeninfo" and token in idp.tokens:
                    self._json(200, {"username": idp.tokens[token]})
                else:
                    self._json(401, {"error": "invalid_token"})

            def do_POST(self) -> None:  # noqa: N802
                form = urllib.parse.parse_qs(
                    self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
                one = {k: v[0] for k, v in form.items()}
                idp.asked.append(self.path)
                if self.path == "/token":
                    client = idp.clients.get(one.get("client_id", ""))
                    if one.get("grant_type") != "client_credentials" or client is None \
                            or client[0] != one.get("client_secret"):
                        self._json(401, {"error": "invalid_client"})
                        return
                    token = secrets.token_urlsafe(24)
                    idp.tokens[token] = client[1]
                    self._json(200, {"access_token": token, "token_type": "Bearer",
                                     "expires_in": 3600})
                elif self.path == "/introspect":
                    user = idp.tokens.get(one.get("token", ""))
                    active = user is not None and not idp.refuse
                    self._json(200, {"active": active, **({"username": user} if user else {})})
                else:
                    self._json(404, {"error": "not_found"})

            def _json(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                return

        return Handler


@pytest.fixture
def idp(base_settings: Settings) -> Iterator[IdentityProvider]:
    conf = dovecot.oauth2_file(base_settings)
    if not conf.exists() or dovecot.render_oauth2(base_settings) != conf.read_text():
        pytest.skip("Dovecot runs without the oauth2 passdb: run `mailroom stack up`")
    provider = IdentityProvider()
    try:
        server = ThreadingHTTPServer(("127.0.0.1", base_settings.dovecot_oauth2_port),
                                     provider.handler())
    except OSError as exc:
        pytest.skip(f"port {base_settings.dovecot_oauth2_port} is taken: {exc}")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()


def _xoauth2_mailbox(db: psycopg.Connection, settings: Settings, idp: IdentityProvider,
                     user: str, protocol: Protocol, client_secret: str) -> Mailbox:
    client_id = f"client-{user}"
    idp.clients[client_id] = ("s3cret-" + user, user)
    port = settings.imap_port if protocol is Protocol.IMAP else settings.pop3_port
    pid = store.add_profile(db, Profile(
        f"oauth-{user}", protocol, "127.0.0.1", port, tls=Tls.NONE, auth=Auth.XOAUTH2,
        oauth_token_url=f"http://127.0.0.1:{settings.dovecot_oauth2_port}/token",
        oauth_client_id=client_id, oauth_scope="https://outlook.office365.com/.default",
        poll_interval_s=1,
    ))
    mid = store.add_mailbox(db, Mailbox(f"{user}@example.com", OwnerKind.QUEUE, pid, user,
                                        credentials.encrypt(settings, client_secret)))
    db.commit()
    return store.mailbox(db, mid)


def _logins(settings: Settings, since: int) -> set[tuple[str, str]]:
    text = dovecot.log_file(settings).read_bytes()[since:].decode(errors="replace")
    return set(re.findall(r"(imap|pop3)-login: Info: Login: user=<([^>]+)>, method=XOAUTH2",
                          text))


def test_xoauth2_logs_in_through_dovecots_oauth2_passdb(
    db_settings: Settings, db: psycopg.Connection, topics: Settings, idp: IdentityProvider,
    mail_user: tuple[str, str],
) -> None:
    imap_user, imap_pw = mail_user
    pop_user, pop_pw = "o" + secrets.token_hex(5), "pw-" + secrets.token_hex(4)
    dovecot.add_user(db_settings, pop_user, pop_pw)
    # Password logins still work beside the oauth2 passdb (append logs in with a password).
    append(db_settings, imap_user, imap_pw, [message(i, subject="imap") for i in range(2)])
    append(db_settings, pop_user, pop_pw, [message(i, subject="pop3") for i in range(2)])
    log_from = dovecot.log_file(db_settings).stat().st_size
    by_imap = _xoauth2_mailbox(db, db_settings, idp, imap_user, Protocol.IMAP,
                               "s3cret-" + imap_user)
    by_pop3 = _xoauth2_mailbox(db, db_settings, idp, pop_user, Protocol.POP3,
                               "s3cret-" + pop_user)
    wrong = _xoauth2_mailbox(db, db_settings, idp, "nobody" + secrets.token_hex(3),
                             Protocol.IMAP, "not-the-secret")

    assert ingestor(db_settings, db).run_once() == 4
    raws = read_raw(db_settings, 4)
    assert {(r.mailbox_address, r.protocol) for r in raws} == {
        (by_imap.address, "imap"), (by_pop3.address, "pop3")}
    assert _logins(db_settings, log_from) == {("imap", imap_user), ("pop3", pop_user)}
    assert "/introspect" in idp.asked and "/tokeninfo" in idp.asked  # Dovecot asked us
    refused = store.mailbox(db, wrong.address)
    assert not refused.enabled and refused.status_detail.startswith("token refused by http")

    # The identity provider revokes: the token endpoint still issues, Dovecot refuses.
    idp.refuse = True
    append(db_settings, imap_user, imap_pw, [message(9)])
    assert ingestor(db_settings, db).run_once() == 0
    for box in (by_imap, by_pop3):
        after = store.mailbox(db, box.address)
        assert not after.enabled and after.status == "disabled"
        assert after.status_detail.startswith("token refused"), after.status_detail
        assert "127.0.0.1" in after.status_detail
    row = db.execute("SELECT disabled_kind FROM ingest_mailboxes WHERE id = %s",
                     (by_imap.id,)).fetchone()
    assert row is not None and row[0] == "permanent"  # never retried: no lockout

"""What trying to break the dashboard found, each as a test against the real server on
localhost: oversized and negative form lengths, a crafted Cookie header, slow clients, login
guessing, non-ASCII cookies and tokens, logout and password changes that must end sessions,
the Secure flag over TLS, no secret printed at start."""

from __future__ import annotations

import datetime as dt
import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import serve
from test_web_http import Client
from webseed import Running

from mailroom.console.web import app as web_app
from mailroom.console.web.app import parse_cookies
from mailroom.console.web.sessions import COOKIE
from mailroom.settings import Settings, env_name

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def raw(url: str, *chunks: bytes, timeout: float = 60) -> tuple[int, str]:
    """Send bytes as they are (what http.client would refuse to send); the answer's status and
    head, or (0, "") when the server reset the connection before answering."""
    with socket.create_connection(_address(url), timeout=timeout) as s:
        for chunk in chunks:
            try:
                s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered and closed early: what we want to read
        response = http.client.HTTPResponse(s)
        try:
            response.begin()
        except (ConnectionResetError, http.client.RemoteDisconnected):
            return 0, ""
        return response.status, str(response.headers).lower()


def test_a_form_is_cut_off_at_64_kb_whatever_its_length_says(dashboard: Running) -> None:
    body = b"csrf=x&account=a&password=" + b"p" * (1024 * 1024)
    head = b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    # A negative length (the old server read until the client closed: 50 MB from one client).
    assert raw(dashboard.url, head + b"Content-Length: -1\r\n\r\n", body)[0] in (400, 413)
    # A length over the limit: refused before the body is read.
    big = head + f"Content-Length: {100 * 1024 * 1024}\r\n\r\n".encode()
    assert raw(dashboard.url, big, body)[0] == 413
    # No length at all (chunked): cut off once 64 KB have arrived.
    chunked = head + b"Transfer-Encoding: chunked\r\n\r\n"
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in [body[i:i + 8192] for i in
                                                             range(0, len(body), 8192)])
    assert raw(dashboard.url, chunked, chunks + b"0\r\n\r\n")[0] == 413


def test_a_crafted_cookie_header_costs_nothing(dashboard: Running) -> None:
    # CVE-2024-7592: the standard library's cookie unquoting is quadratic on backslashes; the
    # old server parsed every request's cookies with it, before login (64 KB: 7 s of CPU).
    crafted = b'Cookie: a="' + b"\\" * 64_000 + b'"\r\n'
    status, _ = raw(dashboard.url, b"GET / HTTP/1.1\r\nHost: x\r\n" + crafted + b"\r\n")
    # Refused as a whole, heads stop at 16 KB: 431, or a reset if it came while we still sent.
    assert status in (0, 431)
    # Under the head limit it is parsed, in one linear pass that ignores what we did not issue.
    small = b'Cookie: a="' + b"\\" * 15_000 + b'"; ' + COOKIE.encode() + b'="\\\\"\r\n'
    status, head = raw(dashboard.url, b"GET / HTTP/1.1\r\nHost: x\r\n" + small + b"\r\n")
    assert status == 303 and "location: /login" in head
    assert parse_cookies('a="' + "\\" * 15_000 + f'"; {COOKIE}="\\\\"') == {}
    assert parse_cookies(f"x=1; {COOKIE}=abc-_9; {COOKIE}=second") == {COOKIE: "abc-_9"}


def test_a_head_over_the_limit_is_refused_the_same_whole_or_in_pieces(dashboard: Running) -> None:
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 40_000 + b"\r\n\r\n"
    with socket.create_connection(_address(dashboard.url), timeout=60) as s:
        # In pieces: the server's parser sees the head incomplete past its limit.
        for start in range(0, len(head), 2048):
            try:
                s.sendall(head[start:start + 2048])
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.005)
        response = http.client.HTTPResponse(s)
        response.begin()
        assert response.status == 431
    # A complete head the parser refuses for another reason, the body already there: still 400.
    bad = b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n" + b"p" * 40_000
    assert raw(dashboard.url, bad)[0] == 400


def test_slow_clients_are_cut_off(topics: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web_app, "BODY_TIMEOUT_S", 1.0)
    with serve(topics, head_timeout_s=1.0) as running:
        host, port = _address(running.url)
        # Headers that never end: the server closes the connection (the old one never did).
        slow = [socket.create_connection((host, port), timeout=60) for _ in range(20)]
        for s in slow:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        # Meanwhile everyone else is served.
        assert Client(running.url).request("GET", "/login")[0] == 200
        for s in slow:
            assert s.recv(1024) == b""
            s.close()
        # A body that never comes: 408.
        with socket.create_connection((host, port), timeout=60) as s:
            s.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                      b"Content-Type: application/x-www-form-urlencoded\r\n\r\ncsrf=")
            assert s.recv(4096).startswith(b"HTTP/1.1 408 ")


def test_logins_are_limited_per_account_and_per_address(dashboard: Running) -> None:
    name, password = dashboard.logins["viewer"]
    client = Client(dashboard.url)
    for _ in range(5):
        assert client.login(name, "wrong password")[0] == 403
    # Now even the right password is refused for this account, from anywhere…
    status, _, page, cookies = client.login(name, password)
    assert status == 429 and "Too many failed logins" in page
    assert not any(c.startswith(COOKIE + "=") for c in cookies)
    elsewhere = {"X-Forwarded-For": "203.0.113.9"}  # believed: the request comes from 127.0.0.1
    assert Client(dashboard.url).login(name, password, elsewhere)[0] == 429
    # …while other accounts still log in.
    assert Client(dashboard.url).login(*dashboard.admin)[0] == 303

    # One address guessing many names is stopped too, and only that address.
    guesser = {"X-Forwarded-For": "203.0.113.7"}
    for n in range(20):
        assert client.login(f"guess{n}", "wrong password", guesser)[0] == 403
    assert Client(dashboard.url).login(*dashboard.admin, guesser)[0] == 429
    assert Client(dashboard.url).login(*dashboard.admin)[0] == 303


def test_non_ascii_cookie_and_token_are_refused_not_a_500(dashboard: Running) -> None:
    for value in ("é.1.ñ".encode(), b"\xff" * 43):
        status, head = raw(dashboard.url, b"GET /stages HTTP/1.1\r\nHost: x\r\nCookie: " +
                           COOKIE.encode() + b"=" + value + b"\r\n\r\n")
        assert (status, "location: /login" in head) == (303, True)
    client = Client(dashboard.url)
    client.login(*dashboard.logins["operator"])
    status, _, _, _ = client.request("POST", "/dead-letters/retry", {"csrf": "é" * 43,
                                                                     "letter": "0:0"})
    assert status == 403


def test_logout_ends_the_session_for_every_copy_of_the_cookie(dashboard: Running) -> None:
    client = Client(dashboard.url)
    client.login(*dashboard.admin)
    copied = Client(dashboard.url)
    copied.cookies = dict(client.cookies)
    assert copied.request("GET", "/")[0] == 200
    status, headers, _, _ = client.request("POST", "/logout", {"csrf": client.csrf()})
    assert (status, headers["Location"]) == (303, "/login?note=logged-out")
    assert COOKIE not in client.cookies
    assert copied.request("GET", "/")[0] == 303  # the old server still let this one in


def test_a_password_change_ends_every_session(dashboard: Running) -> None:
    name, password = dashboard.logins["viewer"]
    first, second = Client(dashboard.url), Client(dashboard.url)
    first.login(name, password)
    second.login(name, password)
    token = first.csrf()
    new = "a new password " + password
    status, _, page, _ = first.request("POST", "/account/password", {
        "csrf": token, "current": "wrong", "new": new, "repeat": new})
    assert status == 403 and "current password is wrong" in page
    status, _, page, _ = first.request("POST", "/account/password", {
        "csrf": token, "current": password, "new": "short", "repeat": "short"})
    assert status == 400 and "too short" in page
    status, headers, _, _ = first.request("POST", "/account/password", {
        "csrf": token, "current": password, "new": new, "repeat": new})
    assert (status, headers["Location"]) == (303, "/login?note=password-changed")
    assert first.request("GET", "/")[0] == 303 and second.request("GET", "/")[0] == 303
    assert Client(dashboard.url).login(name, password)[0] == 403
    assert Client(dashboard.url).login(name, new)[0] == 303


def _certificate(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1)).sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_the_session_cookie_is_secure_over_tls(topics: Settings, tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    with serve(topics, tls_cert=cert, tls_key=key) as running:
        assert running.url.startswith("https://")
        host, port = _address(running.url)
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False

        def get(path: str, body: str | None = None, cookie: str = "") -> http.client.HTTPResponse:
            conn = http.client.HTTPSConnection(host, port, context=context, timeout=60)
            headers = {"Cookie": cookie}
            if body is not None:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            conn.request("POST" if body is not None else "GET", path, body, headers)
            return conn.getresponse()

        login = get("/login")
        pre = login.headers["Set-Cookie"].split(";")[0]
        token = login.read().decode().split('name="csrf" value="')[1].split('"')[0]
        assert "Secure" in login.headers["Set-Cookie"]
        assert login.headers["Strict-Transport-Security"].startswith("max-age=")
        name, password = running.admin
        answer = get("/login", f"csrf={token}&account={name}&password={password}", pre)
        assert answer.status == 303
        session = answer.headers["Set-Cookie"]
        assert session.startswith(COOKIE + "=") and "; Secure" in session

    # Behind a TLS proxy on this machine: it says so with X-Forwarded-Proto.
    with serve(topics) as running:
        client = Client(running.url)
        _, _, _, cookies = client.login(*running.admin, {"X-Forwarded-Proto": "https"})
        assert any(c.startswith(COOKIE + "=") and "; Secure" in c for c in cookies)


def test_the_command_prints_no_secret(web_settings: Settings) -> None:
    env = {**os.environ, env_name("database_url"): web_settings.database_url,
           env_name("web_secret"): "", env_name("state_dir"): str(REPO / ".mailroom")}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "mailroom"), "web", "--port", "0"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("dashboard: http://127.0.0.1:"), first
        assert Client(first.split()[1]).request("GET", "/login")[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out == "" and "secret" not in (first + err).lower()
    assert "no dashboard account can log in yet" in err

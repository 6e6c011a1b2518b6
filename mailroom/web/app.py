"""Routing, login gate and security headers over the standard library's threading HTTP server.

Every response carries a strict Content-Security-Policy: no script at all, styles only from our
own stylesheet, forms only to ourselves, no framing — so even markup that slipped past escaping
could not run. Every path but the login page and the stylesheet needs a valid session (else a
redirect to ``/login``); every POST needs the session's CSRF token (else 403).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from mailroom.codec import Codec
from mailroom.settings import Settings
from mailroom.web import csrf
from mailroom.web.auth import COOKIE, Sessions
from mailroom.web.data.stages import StageMonitor
from mailroom.web.data.volume import VolumeMonitor
from mailroom.web.templates import CSS

log = logging.getLogger(__name__)

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
MAX_FORM_BYTES = 64 * 1024
FAILED_LOGIN_DELAY_S = 0.5  # slows guessing; the server is threaded, others are not held up


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    cookies: dict[str, str]
    session: str | None = None
    csrf_token: str = ""


@dataclass
class Response:
    body: str | bytes = ""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


def redirect(location: str, *headers: tuple[str, str]) -> Response:
    return Response("", HTTPStatus.SEE_OTHER, headers=[("Location", location), *headers])


Handler = Callable[["Dashboard", Request, re.Match[str]], Response]


class Dashboard:
    """The application: settings, sessions, the stage monitor and the route table."""

    def __init__(self, settings: Settings, secret: str) -> None:
        from mailroom.web.pages import ROUTES

        self.settings = settings
        self.sessions = Sessions(secret)
        self.stages = StageMonitor(settings)
        self.volume = VolumeMonitor(settings)
        self._codec: Codec | None = None
        self.routes: list[tuple[str, re.Pattern[str], Handler, bool]] = [
            (method, re.compile(f"^{pattern}$"), handler, public)
            for method, pattern, handler, public in ROUTES
        ]

    def handle(self, request: Request) -> Response:
        if request.method == "GET" and request.path == "/static/mailroom.css":
            return Response(CSS, content_type="text/css; charset=utf-8")
        if request.path == "/favicon.ico":  # browsers ask on their own; no login redirect
            return Response(b"", HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8")
        request.session = self.sessions.verify(request.cookies.get(COOKIE))
        if request.session:
            request.csrf_token = csrf.token(self.sessions.key, request.session)
        for method, pattern, handler, public in self.routes:
            match = pattern.match(request.path)
            if match is None or method != request.method:
                continue
            if not public and request.session is None:
                return redirect("/login")
            if method == "POST" and not public and not csrf.valid(
                    self.sessions.key, request.session or "", request.form.get("csrf")):
                return Response("403 Forbidden: missing or wrong CSRF token", 403,
                                "text/plain; charset=utf-8")
            return handler(self, request, match)
        if request.session is None:
            return redirect("/login")
        return Response("404 Not Found", 404, "text/plain; charset=utf-8")

    @property
    def codec(self) -> Codec:
        if self._codec is None:  # loaded on first use: most pages never decode a record
            self._codec = Codec.from_settings(self.settings)
        return self._codec

    def flash_redirect(self, path: str, text: str) -> Response:
        """Post/redirect/get with a message: signed, so a crafted link cannot put words on our
        page (it is escaped either way)."""
        query = urlencode({"flash": text, "sig": self.sessions.sign_text(text)})
        return redirect(f"{path}?{query}")

    def flash(self, request: Request) -> str:
        text = request.query.get("flash", "")
        return text if text and self.sessions.check_text(text, request.query.get("sig")) else ""

    def close(self) -> None:
        self.stages.close()


class _RequestHandler(BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "mailroom-web"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        form: dict[str, str] = {}
        if method == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_FORM_BYTES:
                self._send(Response("413 form too large", 413, "text/plain; charset=utf-8"))
                return
            raw = self.rfile.read(length).decode("utf-8", "replace")
            form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        request = Request(
            method, url.path,
            {k: v[0] for k, v in parse_qs(url.query).items()}, form, self._cookies(),
        )
        try:
            response = self.server.app.handle(request)
        except Exception:  # a page that fails must not take the server down: log, answer 500
            log.exception("web: %s %s failed", method, url.path)
            response = Response("500: the page failed; the server log has the details", 500,
                                "text/plain; charset=utf-8")
        self._send(response)

    def _cookies(self) -> dict[str, str]:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(self.headers.get("Cookie") or "")
        except CookieError:
            return {}
        return {k: m.value for k, m in jar.items()}

    def _send(self, response: Response) -> None:
        body = response.body.encode() if isinstance(response.body, str) else response.body
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib's name
        log.debug("web: %s " + format, self.address_string(), *args)


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: Dashboard) -> None:
        self.app = app
        super().__init__(address, _RequestHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


def failed_login_delay() -> None:
    time.sleep(FAILED_LOGIN_DELAY_S)

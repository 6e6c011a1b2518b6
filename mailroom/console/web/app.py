"""The dashboard as an ASGI application (Starlette): routes, the login gate, roles, CSRF, forms
and the security headers. :mod:`.server` serves it with uvicorn.

Every response carries a strict Content-Security-Policy: no script at all, styles only from our
own stylesheet, forms only to ourselves, no framing — so even markup that slipped past escaping
could not run. Every path but the login page and the stylesheet needs a live session (else a
redirect to ``/login``) and the role its page asks for (else 403); every POST behind the login
needs the session's CSRF token (else 403). The pages themselves are plain functions from a
:class:`Request` to a :class:`Response`, run on a worker thread (they block on PostgreSQL and
Kafka), so none of them deals with HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlencode

import anyio
import psycopg
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.requests import Request as HttpRequest
from starlette.responses import Response as HttpResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailroom.codec import Codec
from mailroom.console.web import csrf, sessions
from mailroom.console.web.accounts import Passwords, Role
from mailroom.console.web.charts import CHART_CSS
from mailroom.console.web.data.deadletters import LetterCache
from mailroom.console.web.data.history import SampleCache, Sampler
from mailroom.console.web.data.memo import Memo
from mailroom.console.web.data.records import TracerPool
from mailroom.console.web.data.stages import StageMonitor
from mailroom.console.web.data.volume import VolumeMonitor
from mailroom.console.web.pool import ConnectionPool
from mailroom.console.web.sessions import Session
from mailroom.console.web.templates import CSS
from mailroom.console.web.throttle import LoginThrottle
from mailroom.db import DatabaseUnavailable
from mailroom.settings import Settings

log = logging.getLogger(__name__)

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
#: The answer to a request head over MAX_HEAD_BYTES, from the app (a head that arrived whole)
#: or from the server's protocol (one h11 refused while it was still arriving).
HEAD_TOO_LARGE_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"),
                          (b"connection", b"close"), *SECURITY_HEADERS]
HEAD_TOO_LARGE_BODY = b"431: request head too large"
HSTS = (b"strict-transport-security", b"max-age=31536000")
MAX_FORM_BYTES = 64 * 1024
MAX_HEAD_BYTES = 16 * 1024
MAX_FORM_FIELDS = 50
BODY_TIMEOUT_S = 10.0  # a client that sends its form slower than this is answered 408
FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    cookies: dict[str, str]
    params: dict[str, Any] = field(default_factory=dict)  # from the path, e.g. {"id": 3}
    address: str = ""  # the client's (the proxy's X-Forwarded-For when it is trusted)
    secure: bool = False  # came over TLS (directly or through a trusted proxy)
    session: Session | None = None

    @property
    def csrf_token(self) -> str:
        return self.session.csrf if self.session else ""


@dataclass
class Response:
    body: str | bytes = ""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


def redirect(location: str, *headers: tuple[str, str]) -> Response:
    return Response("", HTTPStatus.SEE_OTHER, headers=[("Location", location), *headers])


def plain(status: int, text: str) -> Response:
    return Response(text, status, "text/plain; charset=utf-8")


Handler = Callable[["Dashboard", Request], Response]


@dataclass(frozen=True)
class Page:
    """One route: method, Starlette path, handler and the least role it needs (None: public)."""

    method: str
    path: str
    handler: Handler
    role: Role | None = Role.viewer


class Dashboard:
    """The application's state: settings, the monitors, password hashing and login limits."""

    def __init__(self, settings: Settings, *, throttle: LoginThrottle | None = None,
                 passwords: Passwords | None = None) -> None:
        self.settings = settings
        self.pool = ConnectionPool(settings)
        self.throttle = throttle or LoginThrottle()
        self.passwords = passwords or Passwords()
        self.stages = StageMonitor(settings)
        self.volume = VolumeMonitor(settings)
        self.sampler = Sampler(settings, self.stages)
        self.history = SampleCache(self.pool)
        self.drawn: Memo[Any] = Memo()  # charts drawn once per snapshot of their data
        self.letters = LetterCache(settings, lambda: self.codec)
        self.tracers = TracerPool(settings, lambda: self.codec)
        self._codec: Codec | None = None

    def start_sampling(self) -> None:
        """The stage history's sampler (the command starts it; tests sample by hand)."""
        self.sampler.start()

    def handle(self, request: Request, route: Page) -> Response:
        """The gate, then the page; runs on a worker thread. The session check and the page
        share one pooled connection (:meth:`ConnectionPool.request`): a request waits for the
        pool once, not once for each."""
        with self.pool.request():
            return self._handle(request, route)

    def _handle(self, request: Request, route: Page) -> Response:
        try:
            if route.role is not None:
                with self.db(autocommit=True) as conn:
                    request.session = sessions.lookup(conn, request.cookies.get(sessions.COOKIE))
                if request.session is None:
                    return redirect("/login")
                if not request.session.may(route.role):
                    return plain(403, f"403 Forbidden: this needs the {route.role.name} role "
                                      f"(you are {request.session.role.name})")
                if request.method == "POST" and not csrf.valid(request.session.csrf,
                                                               request.form.get("csrf")):
                    return plain(403, "403 Forbidden: missing or wrong CSRF token")
            return route.handler(self, request)
        except (DatabaseUnavailable, psycopg.OperationalError) as exc:
            # Also a connection PostgreSQL ended while it was lent (a restart): it is not lent
            # again, and the next request gets a fresh one.
            log.warning("web: %s %s: %s", request.method, request.path, exc)
            return plain(503, "503: PostgreSQL is unavailable; try again shortly")
        except Exception:  # a page that fails must not take the server down: log, answer 500
            log.exception("web: %s %s failed", request.method, request.path)
            return plain(500, "500: the page failed; the server log has the details")

    def db(self, *, autocommit: bool = False) -> AbstractContextManager[psycopg.Connection]:
        """A pooled connection, used like ``with mailroom.db.connect(...)``: committed at the
        end of the block, rolled back if it raises."""
        return self.pool.connection(autocommit=autocommit)

    @property
    def codec(self) -> Codec:
        if self._codec is None:  # loaded on first use: most pages never decode a record
            self._codec = Codec.from_settings(self.settings)
        return self._codec

    def flash_redirect(self, request: Request, path: str, text: str) -> Response:
        """Post/redirect/get with a message, signed under the session's CSRF token: a crafted
        link cannot put words on our page (and it is escaped either way)."""
        query = urlencode({"flash": text, "sig": csrf.sign(request.csrf_token, text)})
        return redirect(f"{path}?{query}")

    def flash(self, request: Request) -> str:
        text = request.query.get("flash", "")
        ok = text and request.session and csrf.signed(request.session.csrf, text,
                                                      request.query.get("sig"))
        return text if ok else ""

    def close(self) -> None:
        self.sampler.stop()
        self.tracers.close()
        self.letters.close()
        self.stages.close()
        self.pool.close()


def parse_cookies(header: str) -> dict[str, str]:
    """Our own cookies from a Cookie header, in one linear pass: only the names we set, only
    values made of the characters we issue, nothing unquoted. (The standard library's parser
    — ``SimpleCookie``, and ``_unquote`` that Starlette's uses — is quadratic on crafted quoted
    values on some Python versions, CVE-2024-7592; a cookie we did not issue is no session.)"""
    wanted = {sessions.COOKIE, csrf.PRE_COOKIE}
    found: dict[str, str] = {}
    for chunk in header.split(";"):
        name, sep, value = chunk.partition("=")
        name, value = name.strip(), value.strip()
        if sep and name in wanted and name not in found and value.isascii() and \
                all(c.isalnum() or c in "-_" for c in value):
            found[name] = value
    return found


async def read_form(request: HttpRequest) -> dict[str, str] | Response:
    """The urlencoded form, at most ``MAX_FORM_BYTES`` *as read*, not as declared: the
    Content-Length is checked first, and the stream is cut off at the limit whatever it said
    (a negative or missing length, chunked encoding)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_FORM_BYTES):
        return plain(413, "413: form too large")
    kind = request.headers.get("content-type", FORM_TYPE).split(";")[0].strip().lower()
    if kind != FORM_TYPE:
        return plain(415, f"415: forms are {FORM_TYPE}")
    body = bytearray()
    try:
        with anyio.fail_after(BODY_TIMEOUT_S):
            async for chunk in request.stream():
                body.extend(chunk)
                if len(body) > MAX_FORM_BYTES:
                    return plain(413, "413: form too large")
    except TimeoutError:
        return plain(408, "408: the form came too slowly")
    except ClientDisconnect:
        return plain(400, "400: the client went away")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                          max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return plain(400, "400: unreadable form")
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)  # the first of a repeated field, like the old server
    return form


def _http(response: Response) -> HttpResponse:
    body = response.body.encode() if isinstance(response.body, str) else response.body
    out = HttpResponse(body, response.status)
    out.raw_headers.append((b"content-type", response.content_type.encode("latin-1")))
    for name, value in response.headers:
        out.raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    return out


def _endpoint(dashboard: Dashboard, route: Page) -> Callable[[HttpRequest], Any]:
    async def endpoint(http: HttpRequest) -> HttpResponse:
        form: dict[str, str] = {}
        if http.method == "POST":
            read = await read_form(http)
            if isinstance(read, Response):
                return _http(read)
            form = read
        query: dict[str, str] = {}
        for name, value in http.query_params.multi_items():
            query.setdefault(name, value)
        request = Request(
            http.method, http.url.path, query, form,
            parse_cookies(http.headers.get("cookie", "")), dict(http.path_params),
            http.client.host if http.client else "", http.url.scheme == "https")
        return _http(await run_in_threadpool(dashboard.handle, request, route))
    return endpoint


class SecurityHeaders:
    """Adds the security headers to every response, including Starlette's own errors, and
    refuses request heads over ``max_head_bytes`` before anything reads them. (h11 limits only
    a head still arriving; one that came whole in a single read is parsed at any size.)"""

    def __init__(self, app: ASGIApp, max_head_bytes: int = MAX_HEAD_BYTES) -> None:
        self.app = app
        self.max_head_bytes = max_head_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        size = sum(len(k) + len(v) + 4 for k, v in scope["headers"]) + len(
            scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        if size > self.max_head_bytes:
            await send({"type": "http.response.start", "status": 431,
                        "headers": HEAD_TOO_LARGE_HEADERS})
            await send({"type": "http.response.body", "body": HEAD_TOO_LARGE_BODY})
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", [])
                           if h[0].lower() not in {n for n, _ in SECURITY_HEADERS}]
                headers += SECURITY_HEADERS
                if scope.get("scheme") == "https":
                    headers.append(HSTS)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _css(_: Dashboard, __: Request) -> Response:
    return Response(CSS + CHART_CSS, content_type="text/css; charset=utf-8")


def _no_favicon(_: Dashboard, __: Request) -> Response:
    return plain(404, "")  # browsers ask on their own; no login redirect


def _not_found(_: Dashboard, __: Request) -> Response:
    return plain(404, "404 Not Found")


def build(dashboard: Dashboard) -> ASGIApp:
    from mailroom.console.web.pages import ROUTES

    fixed = [Page("GET", "/static/mailroom.css", _css, None),
             Page("GET", "/favicon.ico", _no_favicon, None)]
    # Last: any other path is the login page's redirect without a session, else 404.
    rest = [Page(m, "/{rest:path}", _not_found) for m in ("GET", "POST")]
    routes = [Route(r.path, _endpoint(dashboard, r), methods=[r.method])
              for r in (*fixed, *ROUTES, *rest)]
    return SecurityHeaders(Starlette(routes=routes))

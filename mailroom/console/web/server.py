"""Serving the dashboard: uvicorn (h11) on a socket bound here, with the limits a server facing
people needs.

- Request heads: at most ``MAX_HEAD_BYTES`` (431 beyond), and they must arrive
  within ``head_timeout_s`` of the connection opening or of the previous response — a client
  that sends its headers slowly, or never, is cut off (:class:`_Protocol`). Bodies have their
  own deadline (:data:`mailroom.console.web.app.BODY_TIMEOUT_S`). Idle keep-alive connections close
  after 5 s (uvicorn's own).
- At most ``max_connections`` connections and requests at once; beyond that, 503 at once.
- TLS directly (``tls_cert``/``tls_key``), or behind a reverse proxy: uvicorn believes
  ``X-Forwarded-Proto``/``-For`` only from ``proxies`` (default 127.0.0.1 and ::1, a proxy on
  this machine), so the session cookie is ``Secure`` and the login limits count the real client
  when the proxy says so.

One event loop serves every connection (a slow client holds a socket, not a thread); the
pages run on Starlette's worker threads.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from mailroom.console.web.app import (
    HEAD_TOO_LARGE_BODY,
    HEAD_TOO_LARGE_HEADERS,
    MAX_HEAD_BYTES,
    Dashboard,
    build,
)

HEAD_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 256


class _Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's head."""

    head_timeout_s = HEAD_TIMEOUT_S
    _head_timer: asyncio.TimerHandle | None = None

    _refusal = 400  # the status h11 hinted for the protocol error it last raised

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()
        # uvicorn answers every protocol error h11 raises 400; h11 says which status it means
        # (431 for a head still incomplete past MAX_HEAD_BYTES). Kept for send_400_response.
        next_event = self.conn.next_event

        def remembered() -> Any:
            try:
                return next_event()
            except h11.RemoteProtocolError as exc:
                self._refusal = exc.error_status_hint
                raise

        self.conn.next_event = remembered  # type: ignore[method-assign]

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and self._between_requests():
            self._arm()  # the first bytes of the next request on a kept-alive connection
        super().data_received(data)
        if not self._between_requests():
            self._disarm()  # the head is complete: the app (and its body deadline) has it

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _expire(self) -> None:
        self._head_timer = None
        if self._between_requests() and not self.transport.is_closing():
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        # A head that arrives whole reaches the app, which answers 431 past MAX_HEAD_BYTES; one
        # arriving in pieces is refused by h11 while incomplete: the same answer either way.
        if self._refusal != 431:
            super().send_400_response(msg)
            return
        for event in (h11.Response(status_code=431, reason=b"Request Header Fields Too Large",
                                   headers=HEAD_TOO_LARGE_HEADERS),
                      h11.Data(data=HEAD_TOO_LARGE_BODY), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()


class DashboardServer:
    def __init__(self, dashboard: Dashboard, host: str, port: int, *,
                 tls_cert: Path | None = None, tls_key: Path | None = None,
                 head_timeout_s: float = HEAD_TIMEOUT_S,
                 max_connections: int = MAX_CONNECTIONS, proxies: str = "127.0.0.1,::1"
                 ) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family)
        self.tls = tls_cert is not None
        protocol = type("HeadTimedH11Protocol", (_Protocol,), {"head_timeout_s": head_timeout_s})
        config = uvicorn.Config(
            build(dashboard), http=protocol, lifespan="off", log_config=None, access_log=False,
            server_header=False, proxy_headers=True, forwarded_allow_ips=proxies,
            limit_concurrency=max_connections, timeout_keep_alive=5,
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
            ssl_certfile=str(tls_cert) if tls_cert else None,
            ssl_keyfile=str(tls_key) if tls_key else None,
        )
        self.server = uvicorn.Server(config)

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{host}:{port}/"

    def serve(self) -> None:
        """Until :meth:`shutdown` (or, on the main thread, SIGINT/SIGTERM)."""
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self.socket.close()

    @property
    def started(self) -> bool:
        return self.server.started

    def shutdown(self) -> None:
        self.server.should_exit = True

"""``mailroom web [--host H] [--port N]``: serve the dashboard until Ctrl-C or SIGTERM.

When ready it prints ``dashboard: http://HOST:PORT/`` on stdout (flushed), which is the line
``mailroom demo`` waits for; a secret generated or read from the state folder is printed just
before it (``login secret: ...``), one from configuration never is.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Any

from mailroom.errors import ConfigError
from mailroom.settings import Settings

DEFAULT_PORT = 18080


def register(sub: Any) -> None:
    p = sub.add_parser("web", help="dashboard: mailboxes, lag, dead letters, recent records",
                       description=__doc__)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.set_defaults(func=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    from mailroom.web.app import Dashboard, DashboardServer
    from mailroom.web.auth import resolve_secret

    secret = resolve_secret(settings)
    app = Dashboard(settings, secret.value)
    try:
        server = DashboardServer((args.host, args.port), app)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
    if args.host not in {"127.0.0.1", "localhost", "::1"}:
        print(f"warning: listening on {args.host}: reachable from other machines over plain "
              "HTTP; put TLS in front of it", file=sys.stderr)
    if secret.source != "configuration (MAILROOM_WEB_SECRET)":
        state = "generated into" if secret.generated else "from"
        print(f"login secret: {secret.value} ({state} {secret.source})", flush=True)
    print(f"dashboard: {server.url}", flush=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever to return, so it must run on another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.close()
    return 0

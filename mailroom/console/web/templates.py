"""Server-rendered HTML: one layout, a table helper, and escaping everywhere.

Every value that reaches a page goes through :func:`esc` (``html.escape`` with quotes), because
subjects, addresses, reasons and trace details come from mail — attacker-controlled input. The
helpers take plain strings and escape them themselves; only :class:`Html` (markup built here)
passes through unchanged, so forgetting to escape takes an explicit act.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mailroom.console.web.accounts import Role

if TYPE_CHECKING:
    from mailroom.console.web.sessions import Session


class Html(str):
    """Markup this module built (already escaped); everything else is text to escape."""

    __slots__ = ()

    def __add__(self, other: object) -> Html:
        # Markup + markup stays markup; markup + text escapes the text (never a plain str).
        return Html(str.__add__(self, esc(other)))


def esc(value: Any) -> Html:
    if isinstance(value, Html):
        return value
    if value is None:
        return Html("")
    if isinstance(value, datetime):
        value = when(value)
    return Html(html.escape(str(value), quote=True))


def join(parts: Iterable[Any]) -> Html:
    return Html("".join(esc(p) for p in parts))


def tag(name: str, content: Any = "", **attrs: Any) -> Html:
    """``<name attr="...">content</name>``; attribute values escaped, ``cls`` → ``class``."""
    rendered = "".join(
        f' {k.rstrip("_").replace("cls", "class").replace("_", "-")}="{esc(v)}"'
        for k, v in attrs.items() if v is not None
    )
    return Html(f"<{name}{rendered}>{esc(content)}</{name}>")


def when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "never"
    seconds = ((now or datetime.now(UTC)) - value).total_seconds()
    return f"{duration(seconds)} ago"


def duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def status(value: str) -> Html:
    """A status word with a class by meaning (ok / warn / bad) for its colour."""
    v = value.lower()
    kind = ("ok" if v in {"ok", "success", "new"} else
            "bad" if v in {"stalled", "disabled", "failure", "error", "no process"} else "warn")
    return tag("span", value, cls=f"st {kind}")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], empty: str = "none",
          **attrs: Any) -> Html:
    head = join(tag("th", h) for h in headers)
    body = [Html("<tr>" + join(tag("td", c) for c in row) + "</tr>") for row in rows]
    if not body:
        body = [Html(f'<tr><td colspan="{len(headers)}" class="empty">{esc(empty)}</td></tr>')]
    return tag("table", Html(f"<thead><tr>{head}</tr></thead><tbody>{join(body)}</tbody>"),
               **attrs)


def link(href: str, text: Any) -> Html:
    return tag("a", text, href=href)


def post_button(action: str, label: str, csrf: str, **fields: str) -> Html:
    """A one-button form that changes something: POST, with the session's CSRF token."""
    hidden = join(
        Html(f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">')
        for k, v in {"csrf": csrf, **fields}.items()
    )
    return Html(f'<form method="post" action="{esc(action)}" class="inline">{hidden}'
                f'<button type="submit">{esc(label)}</button></form>')


NAV = (("/", "Mailboxes", "viewer"), ("/stages", "Stages", "viewer"),
       ("/dead-letters", "Dead letters", "viewer"), ("/emails", "Emails", "viewer"),
       ("/cases", "Cases", "viewer"), ("/search", "Search", "viewer"),
       ("/audit", "Audit", "admin"), ("/accounts", "Accounts", "admin"))


def page(title: str, body: Any, *, current: str = "", who: Session | None = None,
         refresh_s: int | None = None, flash: str = "") -> Html:
    """The layout every page shares. ``who`` None: not logged in (no navigation)."""
    nav = Html("")
    if who is not None:
        items = join(tag("a", label, href=href, cls="here" if href == current else None)
                     for href, label, role in NAV if who.may(Role[role]))
        account = tag("a", f"{who.name} ({who.role.name})", href="/account", cls="who")
        nav = Html(f"<nav>{items}<span class=\"end\">{account}"
                   f"{post_button('/logout', 'Log out', who.csrf)}</span></nav>")
    meta = Html(f'<meta http-equiv="refresh" content="{int(refresh_s)}">' if refresh_s else "")
    note = tag("p", flash, cls="flash", role="status") if flash else Html("")
    return Html(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width\">{meta}"
        f"<title>{esc(title)} · Mailroom</title>"
        "<link rel=\"stylesheet\" href=\"/static/mailroom.css\"></head><body>"
        f"<header><b>Mailroom</b>{nav}</header><main>{tag('h1', title)}{note}{esc(body)}"
        "</main></body></html>"
    )


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
header{display:flex;align-items:center;gap:1.5em;padding:.6em 1.2em;background:#233;color:#fff}
header b{font-size:16px}
nav{display:flex;align-items:center;gap:1em;flex:1}
nav a{color:#cde;text-decoration:none}nav a.here{color:#fff;font-weight:600}
nav .end{margin-left:auto;display:flex;gap:1em;align-items:center}
main{padding:.5em 1.2em 2em}
h1{font-size:20px;margin:.6em 0}h2{font-size:16px;margin:1.2em 0 .4em}
table{border-collapse:collapse;background:#fff;margin-bottom:1em;min-width:40%}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#eef1f3;font-weight:600}
td.empty{color:#777;font-style:italic}
.st{font-weight:600}.st.ok{color:#17733a}.st.warn{color:#a15c00}.st.bad{color:#b3261e}
.flash{background:#fff7d6;border:1px solid #e6d27a;padding:.4em .7em;display:inline-block}
form.inline{display:inline;margin:0}
button{font:inherit;padding:.15em .7em;cursor:pointer}
.muted{color:#666}
pre{white-space:pre-wrap;background:#fff;border:1px solid #ddd;padding:.6em;max-width:60em}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:600}
dd{margin:0}
.login{max-width:22em;background:#fff;border:1px solid #ddd;padding:1em}
form.search input{padding:.2em;margin-right:.6em}form.search{margin:.4em 0 1em}
.login input{width:100%;box-sizing:border-box;margin:.4em 0 .8em;padding:.3em}
"""

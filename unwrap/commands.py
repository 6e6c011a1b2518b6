"""``mailroom unwrap FILE...``: what the unwrap stage makes of message files, offline.

Runs the stage's pure function on each file (no broker, no database) and prints the Emails it
yields or the dead-letter reason, then ``N files, M emails, K dead letters``. Forwarders can be
given on the command line so the anti-spoofing checks can be tried on a forward.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailroom.errors import ConfigError
from mailroom.records.email import Email
from mailroom.records.raw import RawMail
from mailroom.settings import Settings
from mailroom.stage.execute import crash_summary
from mailroom.stage.types import CRASH
from unwrap.context import Forwarder, Rejection, UnwrapContext
from unwrap.unwrap import unwrap


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("unwrap", help="show what the unwrap stage makes of message files")
    parser.add_argument("files", nargs="+", metavar="FILE", help="raw message files (.eml)")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--summary", action="store_true",
                        help="only counts per outcome, dead-letter reason, report kind, copy "
                        "kind and warning; FILE may be a folder (read recursively)")
    parser.add_argument("--mailbox-kind", choices=("user", "queue", "forward"), default=None,
                        help="kind of mailbox the files arrived in (default: user, or forward "
                        "with --forward-mailbox)")
    parser.add_argument("--forward-mailbox", metavar="ID", default="",
                        help="treat the files as mail to this forward mailbox")
    parser.add_argument("--forwarder", action="append", default=[], metavar="ADDRESS=USER",
                        help="a user (or queue:ID) forwarding via the forward mailbox "
                        "(repeatable)")
    parser.add_argument("--authserv-id", default=None, metavar="ID",
                        help="trust Authentication-Results of this server (default: the "
                        "unwrap_authserv_id setting)")
    parser.add_argument("--no-auth-results", action="store_true",
                        help="the forward mailbox's server cannot stamp Authentication-Results: "
                        "believe forwarders on their From address alone (as `mailroom mailbox "
                        "auth-results ADDRESS off` does)")
    parser.add_argument("--direction", choices=("incoming", "outgoing"), default="incoming")
    parser.set_defaults(func=run)


def _forwarders(items: list[str], mailbox: str) -> dict[str, dict[str, Forwarder | str]]:
    table: dict[str, Forwarder | str] = {}
    for item in items:
        address, sep, user = item.partition("=")
        if not sep or not address.strip() or not user.strip():
            raise ConfigError(f"--forwarder {item!r}: expected ADDRESS=USER or ADDRESS=queue:ID")
        kind, colon, queue = user.strip().partition(":")
        # the context folds the address's case (ASCII only)
        table[address.strip()] = Forwarder("queue", queue) if colon and kind == "queue" \
            else user.strip()
    if table and not mailbox:
        raise ConfigError("--forwarder needs --forward-mailbox")
    return {mailbox: table} if mailbox else {}


def _raw(path: Path, data: bytes, kind: str, mailbox: str, direction: str, uid: int) -> RawMail:
    return RawMail(
        mailbox_id=mailbox or "cli", mailbox_address=mailbox or "cli", owner_kind=kind,  # type: ignore[arg-type]
        folder=str(path.parent), direction=direction,  # type: ignore[arg-type]
        protocol="pop3", uidl=path.name or str(uid), fetched_at=datetime.now(UTC),
        size=len(data), content=data,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _email_json(email: Email) -> dict[str, Any]:
    datum = email.to_avro()
    for att in datum["attachments"]:
        content = att.pop("content")
        att["content_inline"] = content is not None
    for key in ("text_body", "html_body"):
        body = datum[key]
        datum[key] = None if body is None else (body[:500] + ("…" if len(body) > 500 else ""))
    return _jsonable(datum)


def _describe(email: Email) -> list[str]:
    d = email.delivery
    by = d.forwarded_by_user or (f"queue:{d.forwarded_by_queue}" if d.forwarded_by_queue else "")
    via = f" by {by} ({d.forwarder_address}) via {d.forward_mailbox_id}" if by else ""
    frm = email.from_address.address if email.from_address else "-"
    lines = [
        f"  {d.copy_kind}{via}",
        f"    dedupe key:   {email.dedupe_key}",
        f"    content hash: {email.content_hash[:16]}…",
        f"    from: {frm}   date: {email.date.isoformat() if email.date else '-'}",
        f"    subject: {email.subject!r}",
        f"    to: {', '.join(a.address for a in email.to) or '-'}",
    ]
    if d.path:
        lines.append(f"    found at: {' > '.join(d.path)}")
    if email.report.kind != "none":
        lines.append(f"    report: {email.report.kind} {email.report.detail or ''}".rstrip())
    marks = {k: getattr(email.markers, k) for k in email.markers.__slots__
             if getattr(email.markers, k)}
    if marks:
        lines.append("    markers: " + ", ".join(f"{k}={v}" for k, v in marks.items()))
    body = email.text_body or email.html_body or ""
    lines.append(f"    body: {len(body)} chars   attachments: {len(email.attachments)}")
    for att in email.attachments:
        where = "inline" if att.content is not None else ("blob" if att.blob_ref else "omitted")
        lines.append(f"      - {att.name} ({att.content_type}, {att.size} bytes, {where})")
    lines.extend(f"    warning: {w}" for w in email.warnings)
    return lines


_DETAIL = re.compile(r"'[^']*'|\"[^\"]*\"|\d+")


def warning_kind(text: str) -> str:
    """A warning without its particulars (names, numbers), so like ones are counted together."""
    return " ".join(_DETAIL.sub("…", text).split())[:120]


def _paths(names: list[str]) -> list[Path]:
    found: list[Path] = []
    for name in names:
        path = Path(name)
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob("*")) if p.is_file())
        else:
            found.append(path)
    return found


def summarise(results: list[list[Email] | Rejection]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = {k: Counter() for k in (
        "outcome", "dead_letter_reason", "report_kind", "copy_kind", "warning")}
    for result in results:
        if isinstance(result, Rejection):
            counts["outcome"]["dead letter"] += 1
            counts["dead_letter_reason"][result.reason_code] += 1
            continue
        counts["outcome"]["emails" if len(result) == 1 else f"{len(result)} emails"] += 1
        for email in result:
            counts["report_kind"][email.report.kind] += 1
            counts["copy_kind"][email.delivery.copy_kind] += 1
            for text in {warning_kind(w) for w in email.warnings}:
                counts["warning"][text] += 1
    return {k: dict(c.most_common()) for k, c in counts.items()}


def _print_summary(files: int, summary: dict[str, dict[str, int]]) -> None:
    print(f"{files} files")
    for section, counts in summary.items():
        print(f"{section.replace('_', ' ')}:")
        for key, count in counts.items():
            print(f"  {count:7d}  {key}")


def run(settings: Settings, args: argparse.Namespace) -> int:
    kind = args.mailbox_kind or ("forward" if args.forward_mailbox else "user")
    if args.authserv_id is not None:
        settings = settings.replace(unwrap_authserv_id=args.authserv_id)
    unchecked = frozenset({args.forward_mailbox} if args.no_auth_results else ())
    context = UnwrapContext.from_settings(settings,
                                          _forwarders(args.forwarder, args.forward_mailbox),
                                          unchecked)
    files = emails = dead = unreadable = 0
    report: list[dict[str, Any]] = []
    results: list[list[Email] | Rejection] = []
    for uid, path in enumerate(_paths(args.files) if args.summary else map(Path, args.files), 1):
        name = str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            print(f"{name}: cannot read: {exc.strerror or exc}", file=sys.stderr)
            unreadable += 1
            continue
        files += 1
        try:
            result = unwrap(_raw(path, data, kind, args.forward_mailbox, args.direction, uid),
                            context)
        except Exception as exc:  # noqa: BLE001 - a bug: shown as the stage would dead-letter it
            result = Rejection(CRASH, crash_summary(exc))
        if args.summary:
            results.append(result)
            continue
        if isinstance(result, Rejection):
            dead += 1
            if args.json:
                report.append({"file": name, "rejection": {"reason_code": result.reason_code,
                                                           "reason": result.reason}})
            else:
                print(f"{name}: dead letter ({result.reason_code}): {result.reason}")
            continue
        emails += len(result)
        if args.json:
            report.append({"file": name, "emails": [_email_json(e) for e in result]})
        else:
            print(f"{name}: {len(result)} email{'s' if len(result) != 1 else ''}")
            for email in result:
                print("\n".join(_describe(email)))
    if args.summary:
        counted = summarise(results)
        if args.json:
            json.dump({"files": files, **counted}, sys.stdout, indent=2, ensure_ascii=False)
            print()
        else:
            _print_summary(files, counted)
        return 1 if unreadable else 0
    summary = f"{files} files, {emails} emails, {dead} dead letters"
    if args.json:
        json.dump({"files": report, "summary": {"files": files, "emails": emails,
                                                "dead_letters": dead}},
                  sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        print(summary)
    return 1 if unreadable else 0

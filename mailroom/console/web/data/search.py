""""Why wasn't this email tracked?" — one query (a Message-ID, a sender address or words of a
subject, optionally a day) asked of every place an email can end up:

- stored: an email activity (persist's ``email_activities``);
- skipped or parked: persist's last word on it in the trace table (``message_traces``: skipped
  with the filter's reason, parked waiting for its parent) — found by Message-ID or dedupe key,
  the names traces are kept under;
- dead-lettered: a letter on the dead-letter topic whose payload summary or reason matches
  (``mailroom dlq``'s reader), with its reason;
- none of these: it may never have arrived — then the mailboxes' last polls say whether
  Mailroom has looked since.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import psycopg
from psycopg.rows import dict_row

from mailroom.codec import Codec
from mailroom.console.ops import dlq
from mailroom.console.ops.trace import candidates
from mailroom.console.web.data.deadletters import LetterView
from mailroom.console.web.data.records import _EMAIL_SQL, EmailView, _email  # one reading of a row
from persist import traces

LIMIT = 50


@dataclass
class Verdict:
    """Persist's last event for one message (skipped, parked or persisted) and why."""

    key: str
    message_id: str | None
    event: str
    at: datetime
    reason: str
    stage_events: list[tuple[datetime, str, str]] = field(default_factory=list)


@dataclass
class Found:
    query: str
    day: date | None
    activities: list[EmailView] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    letters: list[LetterView] = field(default_factory=list)
    letters_error: str = ""

    @property
    def nothing(self) -> bool:
        return not (self.activities or self.verdicts or self.letters)


def looks_like_message_id(query: str) -> bool:
    return "@" in query and " " not in query.strip()


def activities(conn: psycopg.Connection, query: str, day: date | None) -> list[EmailView]:
    names = sorted(candidates(query))
    like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    sql = (_EMAIL_SQL + "AND (a.message_id = ANY(%(names)s) OR a.dedupe_key = ANY(%(names)s) "
           "OR lower(a.sender) = lower(%(q)s) OR a.subject ILIKE %(like)s) ")
    params: dict[str, object] = {"names": names, "q": query.strip(), "like": like}
    if day is not None:
        sql += "AND coalesce(a.sent_at, a.received_at) >= %(d0)s " \
               "AND coalesce(a.sent_at, a.received_at) < %(d1)s "
        params |= {"d0": day, "d1": day + timedelta(days=1)}
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql + "ORDER BY a.id DESC LIMIT %(n)s", {**params, "n": LIMIT})
        return [_email(r) for r in rows.fetchall()]


def verdicts(conn: psycopg.Connection, query: str) -> list[Verdict]:
    """Per message found under the query's names: every stage's events, and persist's last."""
    names = sorted(candidates(query))
    rows = conn.execute(
        "SELECT coalesce(dedupe_key, key), message_id, stage, event, at, detail "
        "FROM message_traces WHERE " + traces.named("n", raw_identity=False) +
        " ORDER BY at, topic_offset LIMIT 500", {"n": names},
    ).fetchall()
    by_key: dict[str, Verdict] = {}
    for key, message_id, stage, event, at, detail in rows:
        v = by_key.setdefault(key, Verdict(key, message_id, "", at, ""))
        v.message_id = v.message_id or message_id
        v.stage_events.append((at, stage, event))
        if stage == "persist":
            detail = detail or {}
            v.event, v.at = event, at
            v.reason = str(detail.get("reason") or detail.get("waiting_on") or
                           detail.get("correlation") or "")
    return list(by_key.values())


def letters(found: list[dlq.Letter], codec: Codec, query: str, day: date | None
            ) -> list[LetterView]:
    """Dead letters whose reason or payload summary (Message-ID, dedupe key, subject, mailbox,
    identity) contains the query, newest first."""
    needle = query.strip().casefold()
    names = {n.casefold() for n in candidates(query)}
    out = []
    for item in found:
        d = item.letter
        if d is None:
            continue
        if day is not None and (d.failed_at is None or d.failed_at.date() != day):
            continue
        summary = dlq.summary(codec, d)
        text = " ".join([d.reason_code, d.reason, *summary.values()]).casefold()
        if needle in text or names & {v.casefold() for v in summary.values()}:
            out.append(LetterView(
                item.id, d.stage, d.reason_code, d.reason, d.attempts,
                f"{d.source_topic}/{d.source_partition}@{d.source_offset}", d.failed_at,
                d.retries, "; ".join(f"{k}={v}" for k, v in summary.items())))
    out.sort(key=lambda v: (v.failed_at is None, v.failed_at), reverse=True)
    return out[:LIMIT]


def search(read_letters: Callable[[], list[dlq.Letter]], codec: Codec,
           db: Callable[[], AbstractContextManager[psycopg.Connection]], query: str,
           day: date | None) -> Found:
    """The dead-letter topic first, then a connection from ``db`` for the stored side: none is
    held while Kafka answers."""
    try:
        matched, error = letters(read_letters(), codec, query, day), ""
    except Exception as exc:  # noqa: BLE001 - the rest of the answer is still worth showing
        matched, error = [], f"{type(exc).__name__}: {exc}"
    with db() as conn:
        found = Found(query, day, activities(conn, query, day))
        if looks_like_message_id(query):
            found.verdicts = verdicts(conn, query)
    found.letters, found.letters_error = matched, error
    return found

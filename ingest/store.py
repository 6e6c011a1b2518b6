"""Ingest's tables in PostgreSQL: profiles, mailboxes, checkpoints, owed server actions.

Every function takes an open connection and leaves the transaction to the caller, except where
a docstring says it commits. Checkpoint and POP3 writes are fenced: they succeed only while the
caller's generation is the mailbox's ``owner_generation`` (see :func:`claim`).
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ingest.model import (
    AfterIngest,
    Auth,
    Direction,
    Folder,
    Mailbox,
    OwnerKind,
    Profile,
    Protocol,
    Tls,
)
from mailroom.errors import ConfigError, Fenced

_PROFILE_COLS = (
    "name, protocol, host, port, tls, trust_cafile, auth, oauth_token_url, oauth_client_id, "
    "oauth_scope, max_connections, poll_interval_s, received_after"
)


def _profile(row: dict[str, Any]) -> Profile:
    return Profile(
        id=row["id"], name=row["name"], protocol=Protocol(row["protocol"]), host=row["host"],
        port=row["port"], tls=Tls(row["tls"]), trust_cafile=row["trust_cafile"],
        auth=Auth(row["auth"]), oauth_token_url=row["oauth_token_url"],
        oauth_client_id=row["oauth_client_id"], oauth_scope=row["oauth_scope"],
        max_connections=row["max_connections"], poll_interval_s=row["poll_interval_s"],
        received_after=row["received_after"],
    )


def add_profile(conn: psycopg.Connection, p: Profile) -> int:
    p.validate()
    try:
        row = conn.execute(
            f"INSERT INTO ingest_profiles ({_PROFILE_COLS}) VALUES "
            "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING id",
            (p.name, p.protocol.value, p.host, p.port, p.tls.value, p.trust_cafile,
             p.auth.value, p.oauth_token_url, p.oauth_client_id, p.oauth_scope,
             p.max_connections, p.poll_interval_s, p.received_after),
        ).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        raise ConfigError(f"a profile named {p.name!r} exists already") from exc
    assert row is not None
    return int(row[0])


def profiles(conn: psycopg.Connection) -> list[Profile]:
    with conn.cursor(row_factory=dict_row) as cur:
        return [_profile(r) for r in cur.execute("SELECT * FROM ingest_profiles ORDER BY name")]


def profile(conn: psycopg.Connection, key: int | str) -> Profile:
    column = "id" if isinstance(key, int) else "name"
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT * FROM ingest_profiles WHERE {column} = %s", (key,)).fetchone()
    if row is None:
        raise ConfigError(f"no email server profile {key!r}")
    return _profile(row)


def _mailbox(row: dict[str, Any], folders: list[Folder]) -> Mailbox:
    return Mailbox(
        id=row["id"], address=row["address"], owner_kind=OwnerKind(row["owner_kind"]),
        owner_id=row["owner_id"], profile_id=row["profile_id"], username=row["username"],
        secret=bytes(row["secret"]), via_mailbox_id=row["via_mailbox_id"],
        folders=tuple(folders), after_ingest=AfterIngest(row["after_ingest"]),
        keyword=row["keyword"], move_to=row["move_to"], enabled=row["enabled"],
        approved=row["approved"], approval_by=row["approval_by"],
        approval_at=row["approval_at"], process_from=row["process_from"],
        check_auth_results=row["check_auth_results"],
        status=row["status"], status_detail=row["status_detail"],
        last_test_ok=row["last_test_ok"], last_test_detail=row["last_test_detail"],
        last_test_at=row["last_test_at"],
    )


def add_mailbox(conn: psycopg.Connection, m: Mailbox) -> int:
    m.validate(profile(conn, m.profile_id))
    if m.via_mailbox_id is not None:
        via = mailbox(conn, m.via_mailbox_id)
        if via.owner_kind is not OwnerKind.FORWARD:
            raise ConfigError(f"mailbox {m.address}: {via.address} is not a forward mailbox")
    try:
        row = conn.execute(
            "INSERT INTO ingest_mailboxes (address, owner_kind, owner_id, profile_id, username, "
            "secret, via_mailbox_id, after_ingest, keyword, move_to, enabled, approved, "
            "approval_by, approval_at, check_auth_results, process_from) "
            "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING id",
            (m.address, m.owner_kind.value, m.owner_id, m.profile_id, m.username, m.secret,
             m.via_mailbox_id, m.after_ingest.value, m.keyword, m.move_to, m.enabled,
             m.approved, m.approval_by, m.approval_at, m.check_auth_results, m.process_from),
        ).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        raise ConfigError(f"a mailbox {m.address!r} exists already") from exc
    assert row is not None
    mailbox_id = int(row[0])
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ingest_folders (mailbox_id, name, direction, position) "
            "VALUES (%s,%s,%s,%s)",
            [(mailbox_id, f.name, f.direction.value, i) for i, f in enumerate(m.folders)],
        )
    return mailbox_id


def add_mailboxes(conn: psycopg.Connection, profile: Profile, boxes: list[Mailbox]) -> list[int]:
    """Many direct mailboxes of one profile, each validated first; the caller commits (all or
    none). Returns their ids in order."""
    if not boxes:
        return []
    seen: set[str] = set()
    for m in boxes:
        m.validate(profile)
        if m.via_mailbox_id is not None:
            raise ConfigError(f"mailbox {m.address}: a bulk import adds direct mailboxes only")
        if m.address in seen:
            raise ConfigError(f"mailbox {m.address} appears twice")
        seen.add(m.address)
    taken = conn.execute("SELECT address FROM ingest_mailboxes WHERE address = ANY(%s)",
                         (sorted(seen),)).fetchall()
    if taken:
        raise ConfigError("mailbox(es) exist already: " + ", ".join(r[0] for r in taken[:10]))
    ids: list[int] = []
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ingest_mailboxes (address, owner_kind, owner_id, profile_id, username, "
            "secret, after_ingest, keyword, move_to, enabled, approved, approval_by, "
            "approval_at, check_auth_results) "
            "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING id",
            [(m.address, m.owner_kind.value, m.owner_id, profile.id, m.username, m.secret,
              m.after_ingest.value, m.keyword, m.move_to, m.enabled, m.approved,
              m.approval_by, m.approval_at, m.check_auth_results) for m in boxes],
            returning=True,
        )
        while True:
            row = cur.fetchone()
            assert row is not None
            ids.append(int(row[0]))
            if not cur.nextset():
                break
        cur.executemany(
            "INSERT INTO ingest_folders (mailbox_id, name, direction, position) "
            "VALUES (%s,%s,%s,%s)",
            [(mid, f.name, f.direction.value, i)
             for mid, m in zip(ids, boxes, strict=True) for i, f in enumerate(m.folders)],
        )
    return ids


def mailboxes(conn: psycopg.Connection, *, runnable_only: bool = False,
              ids: Iterable[int] | None = None, owner_kind: OwnerKind | None = None,
              via: int | None = None) -> list[Mailbox]:
    """Every mailbox; ``runnable_only``: those ingest polls — enabled, approved and direct (a
    mailbox "via forward mailbox X" is never logged in to: its mail arrives through X);
    ``ids``: only those (a look-up by key, not a scan of every mailbox); ``owner_kind``: only
    that kind's; ``via``: only those whose mail arrives through that forward mailbox."""
    where = ["enabled AND approved AND via_mailbox_id IS NULL"] if runnable_only else []
    params: list[object] = []
    if ids is not None:
        where.append("id = ANY(%s)")
        params.append(list(ids))
    if owner_kind is not None:
        where.append("owner_kind = %s")
        params.append(owner_kind.value)
    if via is not None:
        where.append("via_mailbox_id = %s")
        params.append(via)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    picked = ids is not None or owner_kind is not None or via is not None
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT * FROM ingest_mailboxes {clause} ORDER BY id",
                           params).fetchall()
        folders: dict[int, list[Folder]] = {}
        # A selection reads only its own mailboxes' folders; the whole list reads them all.
        folder_clause = "WHERE mailbox_id = ANY(%s)" if picked else ""
        for f in cur.execute(f"SELECT * FROM ingest_folders {folder_clause} "
                             "ORDER BY mailbox_id, position",
                             [[r["id"] for r in rows]] if picked else []):
            folders.setdefault(f["mailbox_id"], []).append(
                Folder(f["name"], Direction(f["direction"]))
            )
    return [_mailbox(r, folders.get(r["id"], [])) for r in rows]


def runnable_ids(conn: psycopg.Connection, among: AbstractSet[int] | None = None,
                 limit: int | None = None) -> list[int]:
    """Ids of the runnable mailboxes (of ``among``; None: all), lowest first, at most
    ``limit``."""
    where = "enabled AND approved AND via_mailbox_id IS NULL"
    params: list[object] = []
    if among is not None:
        where += " AND id = ANY(%s)"
        params.append(sorted(among))
    tail = ""
    if limit is not None:
        tail = " LIMIT %s"
        params.append(limit)
    rows = conn.execute(f"SELECT id FROM ingest_mailboxes WHERE {where} ORDER BY id{tail}",
                        params).fetchall()
    return [int(r[0]) for r in rows]


def polled_states(conn: psycopg.Connection) -> list[tuple[int, str, bool]]:
    """(id, address, enabled) of every mailbox ingest logs in to (not those via a forward
    mailbox): the per-mailbox gauges, without reading whole mailboxes."""
    rows = conn.execute("SELECT id, address, enabled FROM ingest_mailboxes "
                        "WHERE via_mailbox_id IS NULL ORDER BY id").fetchall()
    return [(int(r[0]), str(r[1]), bool(r[2])) for r in rows]


def mailbox(conn: psycopg.Connection, key: int | str) -> Mailbox:
    """One mailbox by id or address (an indexed look-up)."""
    if isinstance(key, str) and key.isdigit():
        key = int(key)
    if isinstance(key, str):
        row = conn.execute("SELECT id FROM ingest_mailboxes WHERE address = %s",
                           (key,)).fetchone()
        found = mailboxes(conn, ids=[int(row[0])]) if row else []
    else:
        found = mailboxes(conn, ids=[key])
    if not found:
        raise ConfigError(f"no mailbox {key!r}")
    return found[0]


def forward_address(conn: psycopg.Connection, m: Mailbox) -> str:
    """The address of the forward mailbox ``m``'s mail arrives through ('' when direct)."""
    if m.via_mailbox_id is None:
        return ""
    row = conn.execute(
        "SELECT address FROM ingest_mailboxes WHERE id = %s", (m.via_mailbox_id,)
    ).fetchone()
    return str(row[0]) if row else f"#{m.via_mailbox_id}"


def set_enabled(conn: psycopg.Connection, mailbox_id: int, enabled: bool) -> None:
    """Enabling by hand clears a permanent disable: the admin says the cause is fixed."""
    conn.execute(
        "UPDATE ingest_mailboxes SET enabled = %s, disabled_kind = '', failures = 0, "
        "next_attempt_at = NULL, status = CASE WHEN %s THEN 'new' ELSE 'disabled' END, "
        "status_detail = CASE WHEN %s THEN '' ELSE 'disabled by an administrator' END, "
        "status_at = now(), updated_at = now() WHERE id = %s",
        (enabled, enabled, enabled, mailbox_id),
    )


def set_approval(conn: psycopg.Connection, mailbox_id: int, approved: bool, by: str) -> None:
    """Approve or reject a mailbox's address, recording who and when. Approved, ingest polls it
    from its next round (a direct mailbox) or unwrap believes its forwards (one via a forward
    mailbox, once unwrap re-reads its forwarders)."""
    conn.execute(
        "UPDATE ingest_mailboxes SET approved = %s, approval_by = %s, approval_at = now(), "
        "updated_at = now() WHERE id = %s",
        (approved, by, mailbox_id),
    )


def set_process_from(conn: psycopg.Connection, mailbox_id: int, when: datetime | None) -> None:
    """Set (None: clear) the mailbox's "process email from". Mail already skipped stays
    skipped (its checkpoint has passed it): an earlier date later reaches it with a backfill."""
    conn.execute("UPDATE ingest_mailboxes SET process_from = %s, updated_at = now() "
                 "WHERE id = %s", (when, mailbox_id))


def set_check_auth_results(conn: psycopg.Connection, mailbox_id: int, check: bool) -> None:
    """Switch a forward mailbox's Authentication-Results check on or off; a mailbox ingest
    refused for the missing check is polled again (status back to new)."""
    conn.execute(
        "UPDATE ingest_mailboxes SET check_auth_results = %s, "
        "status = CASE WHEN status = 'refused' THEN 'new' ELSE status END, "
        "status_detail = CASE WHEN status = 'refused' THEN '' ELSE status_detail END, "
        "updated_at = now() WHERE id = %s AND owner_kind = 'forward'",
        (check, mailbox_id),
    )


def record_test(conn: psycopg.Connection, mailbox_id: int, ok: bool, detail: str) -> None:
    conn.execute(
        "UPDATE ingest_mailboxes SET last_test_at = now(), last_test_ok = %s, "
        "last_test_detail = %s WHERE id = %s",
        (ok, detail, mailbox_id),
    )


def relaxed_commit(conn: psycopg.Connection) -> None:
    """The transaction in hand commits without waiting for its WAL to reach the disk: for
    writes a crash may lose harmlessly (a status, a backlog figure — the next pass writes them
    again), never for checkpoints, which must be durable before a server action."""
    conn.execute("SET LOCAL synchronous_commit = off")


def set_status(
    conn: psycopg.Connection, mailbox_id: int, status: str, detail: str = "",
    *, next_attempt_at: datetime | None = None, disabled_kind: str | None = None,
) -> None:
    """ok resets the failure count; retrying counts one more; disabled also clears enabled."""
    conn.execute(
        "UPDATE ingest_mailboxes SET status = %(s)s, status_detail = %(d)s, status_at = now(), "
        "failures = CASE %(s)s WHEN 'ok' THEN 0 WHEN 'retrying' THEN failures + 1 "
        "  ELSE failures END, "
        "next_attempt_at = %(n)s, "
        "enabled = CASE WHEN %(s)s = 'disabled' THEN false ELSE enabled END, "
        "disabled_kind = COALESCE(%(k)s, disabled_kind), updated_at = now() WHERE id = %(id)s",
        {"s": status, "d": detail, "n": next_attempt_at, "k": disabled_kind, "id": mailbox_id},
    )


def status(conn: psycopg.Connection, mailbox_id: int) -> str:
    row = conn.execute("SELECT status FROM ingest_mailboxes WHERE id = %s",
                       (mailbox_id,)).fetchone()
    return str(row[0]) if row else ""


def failures(conn: psycopg.Connection, mailbox_id: int) -> int:
    row = conn.execute(
        "SELECT failures FROM ingest_mailboxes WHERE id = %s", (mailbox_id,)
    ).fetchone()
    return int(row[0]) if row else 0


# --- fencing ----------------------------------------------------------------------------------


def new_generation(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT nextval('ingest_generation_seq')").fetchone()
    assert row is not None
    return int(row[0])


def claim(conn: psycopg.Connection, mailbox_id: int, generation: int) -> bool:
    """Take the mailbox for ``generation``; False when a newer generation holds it already.
    Held already by ``generation`` (every pass after the first of an assignment): a read, no
    write to wait for."""
    return claim_status(conn, mailbox_id, generation) is not None


def claim_status(conn: psycopg.Connection, mailbox_id: int, generation: int) -> str | None:
    """:func:`claim`, answering the mailbox's status as of the claim (None: not claimed) —
    what a pass reads before it starts, in the same round trip."""
    row = conn.execute("SELECT owner_generation, status FROM ingest_mailboxes WHERE id = %s",
                       (mailbox_id,)).fetchone()
    if row is not None and int(row[0]) == generation:
        return str(row[1])
    claimed = conn.execute(
        "UPDATE ingest_mailboxes SET owner_generation = %s "
        "WHERE id = %s AND owner_generation <= %s RETURNING status",
        (generation, mailbox_id, generation),
    ).fetchone()
    return None if claimed is None else str(claimed[0])


def fence(conn: psycopg.Connection, mailbox_id: int, generation: int) -> None:
    """Raise :class:`Fenced` unless ``generation`` still owns the mailbox (guards the write that
    follows in the same transaction)."""
    _fence(conn, mailbox_id, generation)


def _fence(conn: psycopg.Connection, mailbox_id: int, generation: int) -> None:
    # FOR SHARE: a concurrent claim (an UPDATE of the row) waits until our transaction ends,
    # so the check and the write it guards are atomic with respect to ownership changes.
    row = conn.execute(
        "SELECT owner_generation FROM ingest_mailboxes WHERE id = %s FOR SHARE", (mailbox_id,)
    ).fetchone()
    if row is None or int(row[0]) != generation:
        raise Fenced(
            f"mailbox {mailbox_id} is owned by generation {row[0] if row else '?'}, "
            f"not {generation}: this process lost it and must not move its checkpoints"
        )


# --- IMAP checkpoints and owed server actions -------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    uidvalidity: int
    last_uid: int


    # As the last pass left them (None: never measured); not part of the position.
    backlog: int | None = field(default=None, compare=False)
    backlog_oldest: datetime | None = field(default=None, compare=False)


def checkpoint(conn: psycopg.Connection, mailbox_id: int, folder: str) -> Checkpoint | None:
    row = conn.execute(
        "SELECT uidvalidity, last_uid, backlog, backlog_oldest FROM ingest_checkpoints "
        "WHERE mailbox_id = %s AND folder = %s",
        (mailbox_id, folder),
    ).fetchone()
    return Checkpoint(int(row[0]), int(row[1]), row[2], row[3]) if row else None


def reset_checkpoint(
    conn: psycopg.Connection, mailbox_id: int, folder: str, uidvalidity: int, generation: int
) -> None:
    """A new UIDVALIDITY: start the folder over (a re-sync). Owed actions refer to old UIDs
    that no longer name the same messages, so they are dropped, never applied."""
    _fence(conn, mailbox_id, generation)
    conn.execute(
        "DELETE FROM ingest_pending_actions WHERE mailbox_id = %s AND folder = %s",
        (mailbox_id, folder),
    )
    conn.execute(
        "INSERT INTO ingest_checkpoints (mailbox_id, folder, uidvalidity, last_uid) "
        "VALUES (%s,%s,%s,0) ON CONFLICT (mailbox_id, folder) DO UPDATE SET "
        "uidvalidity = EXCLUDED.uidvalidity, last_uid = 0, "
        "resyncs = ingest_checkpoints.resyncs + 1, updated_at = now()",
        (mailbox_id, folder, uidvalidity),
    )


def advance(
    conn: psycopg.Connection, mailbox_id: int, folder: str, uidvalidity: int, last_uid: int,
    generation: int, owed: Iterable[int], action: AfterIngest | None,
) -> None:
    """Move the checkpoint and remember the server actions owed, in one fenced transaction."""
    _fence(conn, mailbox_id, generation)
    conn.execute(
        "UPDATE ingest_checkpoints SET last_uid = %s, updated_at = now() "
        "WHERE mailbox_id = %s AND folder = %s AND uidvalidity = %s",
        (last_uid, mailbox_id, folder, uidvalidity),
    )
    if action is not None:
        # One statement for the batch (a row each was ~20 µs of PostgreSQL per message).
        conn.execute(
            "INSERT INTO ingest_pending_actions (mailbox_id, folder, uidvalidity, uid, action) "
            "SELECT %s, %s, %s, u, %s FROM unnest(%s::bigint[]) AS u ON CONFLICT DO NOTHING",
            (mailbox_id, folder, uidvalidity, action.value, list(owed)),
        )


def owed(conn: psycopg.Connection, mailbox_id: int, folder: str, uidvalidity: int) -> list[int]:
    return [
        int(r[0]) for r in conn.execute(
            "SELECT uid FROM ingest_pending_actions WHERE mailbox_id = %s AND folder = %s "
            "AND uidvalidity = %s ORDER BY uid",
            (mailbox_id, folder, uidvalidity),
        )
    ]


def done(conn: psycopg.Connection, mailbox_id: int, folder: str, uidvalidity: int,
         uids: Iterable[int]) -> None:
    conn.execute(
        "DELETE FROM ingest_pending_actions WHERE mailbox_id = %s AND folder = %s "
        "AND uidvalidity = %s AND uid = ANY(%s)",
        (mailbox_id, folder, uidvalidity, list(uids)),
    )


def set_backlog(conn: psycopg.Connection, mailbox_id: int, folder: str, count: int,
                oldest: datetime | None) -> None:
    conn.execute(
        "UPDATE ingest_checkpoints SET backlog = %s, backlog_oldest = %s "
        "WHERE mailbox_id = %s AND folder = %s",
        (count, oldest, mailbox_id, folder),
    )


@dataclass(frozen=True)
class FolderBacklog:
    mailbox_id: int
    address: str
    folder: str
    count: int | None  # messages on the server not yet ingested; None: not measured yet
    oldest: datetime | None  # server arrival date of the oldest of them
    measured_at: datetime | None
    enabled: bool = True  # the mailbox's: a disabled one's backlog waits on an administrator
    mailbox_status: str = ""


def backlog(conn: psycopg.Connection, mailbox_id: int | None = None) -> list[FolderBacklog]:
    """Ingest's lag per IMAP mailbox folder, as the last pass measured it (for ``mailroom lag``
    and metrics). Kept current batch by batch while a backlog drains. ``mailbox_id``: only
    that mailbox's folders."""
    where = "" if mailbox_id is None else "WHERE m.id = %s "
    rows = conn.execute(
        "SELECT m.id, m.address, c.folder, c.backlog, c.backlog_oldest, c.updated_at, "
        "m.enabled, m.status "
        "FROM ingest_checkpoints c JOIN ingest_mailboxes m ON m.id = c.mailbox_id "
        f"{where}ORDER BY m.address, c.folder", () if mailbox_id is None else (mailbox_id,)
    ).fetchall()
    return [FolderBacklog(int(r[0]), r[1], r[2], r[3], r[4], r[5], bool(r[6]), str(r[7]))
            for r in rows]


# --- POP3 -------------------------------------------------------------------------------------


def published_uidls(conn: psycopg.Connection, mailbox_id: int) -> set[str]:
    return {
        r[0] for r in conn.execute(
            "SELECT uidl FROM ingest_pop3_uidls WHERE mailbox_id = %s AND NOT skipped",
            (mailbox_id,)
        )
    }


def skipped_uidls(conn: psycopg.Connection, mailbox_id: int) -> set[str]:
    """UIDLs skipped as arrived before the mailbox's "process email from" (judged once)."""
    return {
        r[0] for r in conn.execute(
            "SELECT uidl FROM ingest_pop3_uidls WHERE mailbox_id = %s AND skipped",
            (mailbox_id,)
        )
    }


def add_uidls(conn: psycopg.Connection, mailbox_id: int, uidls: Iterable[str],
              generation: int, skipped: bool = False) -> None:
    """Record UIDLs as published, or (``skipped``) as skipped for the mailbox's "process email
    from": either way judged, never fetched again; only published ones are deleted."""
    _fence(conn, mailbox_id, generation)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ingest_pop3_uidls (mailbox_id, uidl, skipped) VALUES (%s,%s,%s) "
            "ON CONFLICT DO NOTHING",
            [(mailbox_id, u, skipped) for u in uidls],
        )


def forget_uidls(conn: psycopg.Connection, mailbox_id: int, keep: set[str]) -> None:
    """Drop UIDLs no longer on the server (deleted there): the set stays the server's size."""
    conn.execute(
        "DELETE FROM ingest_pop3_uidls WHERE mailbox_id = %s AND NOT (uidl = ANY(%s))",
        (mailbox_id, list(keep)),
    )

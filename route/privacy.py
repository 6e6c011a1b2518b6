"""Privacy: mail route must not track, and the content-free plan it makes for it.

Three reasons, asked before any other question (:func:`screen`):

1. **erased** — one of the email's identifiers or addresses is on the erasure list
   (:mod:`mailroom.erasure`): `mailroom erase` removed it, and a replay must not bring it back;
2. **sensitivity** — the sender marked it ``Sensitivity: Private`` or ``Confidential`` (also
   ``Company-Confidential``, RFC 2156), honoured unless the organisation turned it off;
3. **never-track lists** — an address or domain on the organisation's list, or on the list of
   the owner whose mailbox received (or who forwarded) the copy. Every address of the email
   counts — From, Sender, Reply-To, To, Cc, Bcc — so a conversation with an excluded party is
   excluded whichever direction it went and whoever else took part.

The plan for such mail (:func:`skip_plan`) carries no content: no encoded email, no correlation
candidates, no parties, and a decision trace naming only the reason and, for a list, the entry's
id and scope — never the address, which would store the very thing the list protects. Persist
applies it as a skip; nothing reaches a table but that trace event.

The lists live in PostgreSQL (``privacy_exclusions``, ``privacy_settings``; managed with
``mailroom privacy``) and reach route in its reference snapshot (:func:`load`), so no email costs
a database read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import psycopg

from mailroom import erasure
from mailroom.errors import ConfigError
from mailroom.records.action import Decision, Plan
from mailroom.records.email import Email
from mailroom.records.steps import Skip

ORGANISATION = "organisation"
KINDS = ("address", "domain")
#: Sensitivity header values honoured (lower-cased): Outlook's and RFC 2156's private ones.
PRIVATE_SENSITIVITY = frozenset({"private", "confidential", "company-confidential"})


@dataclass(frozen=True, slots=True)
class Exclusion:
    id: int
    scope: str  # "organisation", "user:ID" or "queue:ID"
    kind: str  # address | domain
    value: str  # lower-cased
    note: str = ""

    def describe(self) -> str:
        return f"entry {self.id} ({self.kind}) of the never-track list of {self.scope}"


@dataclass(frozen=True)
class Privacy:
    """What route's snapshot holds of the privacy configuration and the erasure list."""

    #: scope → its entries
    exclusions: Mapping[str, tuple[Exclusion, ...]] = field(default_factory=dict)
    honour_sensitivity: bool = True
    erased: frozenset[str] = frozenset()  # digests (mailroom.erasure)
    #: (scope, value) → entry: a dictionary look-up per address and domain level, however
    #: long the lists grow
    index: Mapping[tuple[str, str], Exclusion] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[tuple[str, str], Exclusion] = {}
        for scope, entries in self.exclusions.items():
            for e in entries:
                index.setdefault((scope, ("@" if e.kind == "domain" else "") + e.value), e)
        object.__setattr__(self, "index", index)

    def entry_for(self, scopes: Sequence[str], address: str) -> Exclusion | None:
        """The first entry of these scopes covering the address: the address itself, else its
        domain or any parent domain (``@clinic.example`` covers ``a@mail.clinic.example``)."""
        domain = address.rpartition("@")[2]
        labels = domain.split(".")
        keys = [address] + ["@" + ".".join(labels[i:]) for i in range(len(labels))]
        for scope in scopes:
            for key in keys:
                if (found := self.index.get((scope, key))) is not None:
                    return found
        return None


def _addresses(email: Email) -> list[str]:
    return sorted({a.strip().lower() for a in email.every_address()})


def screen(email: Email, owner: str | None, privacy: Privacy) -> str | None:
    """Why this copy must not be tracked, or None. ``owner``: "user:ID"/"queue:ID" whose
    mailbox received the copy (the forwarding user for a forwarded one)."""
    if privacy.erased and erasure.email_digests(email) & privacy.erased:
        return "erased: on the erasure list (mailroom erase)"
    if privacy.honour_sensitivity:
        marked = (email.markers.sensitivity or "").strip().lower()
        if marked in PRIVATE_SENSITIVITY:
            return f"sensitivity: the sender marked it {marked.title()}"
    if privacy.index:
        scopes = (ORGANISATION, owner) if owner else (ORGANISATION,)
        for address in _addresses(email):
            if (entry := privacy.entry_for(scopes, address)) is not None:
                return f"never-track: an address is covered by {entry.describe()}"
    return None


def skip_plan(email: Email, reason: str) -> Plan:
    """The plan of an email route must not track: its ids and the reason, nothing more."""
    rule = reason.partition(":")[0]
    # Unwrap stored large attachments (and over-long bodies) by claim check before anyone
    # knew: persist deletes them unless a stored email uses the same content.
    blobs = tuple(sorted({a.blob_ref for a in email.attachments if a.blob_ref}))
    return Plan(
        dedupe_key=email.dedupe_key, content_hash=email.content_hash, email=b"",
        receiving_mailbox=email.delivery.mailbox_id, message_id=email.message_id,
        steps=[Skip(key=email.dedupe_key, reason=reason, rule=f"privacy.{rule}", blobs=blobs)],
        decisions=[Decision(f"privacy.{rule}", "skip", reason)],
    )


# --- PostgreSQL (migration 0064) ----------------------------------------------------------------


def load(conn: psycopg.Connection) -> Privacy:
    exclusions: dict[str, list[Exclusion]] = {}
    with conn.cursor() as cur:
        for row in cur.execute(
            "SELECT id, scope, kind, value, note FROM privacy_exclusions ORDER BY id"
        ):
            exclusions.setdefault(row[1], []).append(Exclusion(*row))
        settings = cur.execute("SELECT honour_sensitivity FROM privacy_settings").fetchone()
    return Privacy({s: tuple(e) for s, e in exclusions.items()},
                   honour_sensitivity=bool(settings[0]) if settings else True,
                   erased=erasure.load(conn))


def check_scope(scope: str) -> str:
    kind, sep, ident = scope.partition(":")
    if scope != ORGANISATION and (not sep or kind not in ("user", "queue") or not ident):
        raise ConfigError(f"scope {scope!r}: 'organisation', user:ID or queue:ID")
    return scope


def normalise_value(kind: str, value: str) -> str:
    value = value.strip().lower()
    if kind == "domain":
        value = value.lstrip("@").strip(".")
        if not value or "@" in value or "." not in value:
            raise ConfigError(f"{value!r} is not a domain (e.g. clinic.example)")
    elif kind == "address":
        local, at, domain = value.rpartition("@")
        if not at or not local or not domain:
            raise ConfigError(f"{value!r} is not an address (e.g. doctor@clinic.example)")
    else:
        raise ConfigError(f"kind {kind!r}: one of {', '.join(KINDS)}")
    return value


def exclude(conn: psycopg.Connection, scope: str, kind: str, values: Sequence[str],
            note: str = "") -> list[Exclusion]:
    """Add entries (the caller commits); an entry already there is kept as it is."""
    scope = check_scope(scope)
    if scope != ORGANISATION:
        owner_kind, _, owner_id = scope.partition(":")
        table = "users" if owner_kind == "user" else "queues"
        if conn.execute(f"SELECT 1 FROM {table} WHERE id = %s", (owner_id,)).fetchone() is None:
            raise ConfigError(f"{scope}: no such {owner_kind} (import it first: mailroom import "
                              f"{table})")
    added = []
    for value in values:
        row = conn.execute(
            "INSERT INTO privacy_exclusions (scope, kind, value, note) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (scope, kind, value) DO UPDATE SET note = privacy_exclusions.note "
            "RETURNING id, scope, kind, value, note",
            (scope, kind, normalise_value(kind, value), note),
        ).fetchone()
        assert row is not None
        added.append(Exclusion(*row))
    return added


def entries(conn: psycopg.Connection, scope: str | None = None) -> list[Exclusion]:
    query = "SELECT id, scope, kind, value, note FROM privacy_exclusions"
    params: tuple[str, ...] = ()
    if scope is not None:
        query, params = query + " WHERE scope = %s", (check_scope(scope),)
    return [Exclusion(*r) for r in conn.execute(query + " ORDER BY scope, kind, value", params)]


def remove(conn: psycopg.Connection, ids: Sequence[int]) -> list[Exclusion]:
    rows = conn.execute(
        "DELETE FROM privacy_exclusions WHERE id = ANY(%s) RETURNING id, scope, kind, value, note",
        (list(ids),),
    ).fetchall()
    return [Exclusion(*r) for r in rows]


def honour_sensitivity(conn: psycopg.Connection, on: bool | None = None) -> bool:
    """Read the setting, or set it first when ``on`` is given (the caller commits)."""
    if on is not None:
        conn.execute("UPDATE privacy_settings SET honour_sensitivity = %s", (on,))
    row = conn.execute("SELECT honour_sensitivity FROM privacy_settings").fetchone()
    return bool(row[0]) if row else True

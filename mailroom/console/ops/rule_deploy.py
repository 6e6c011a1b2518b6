"""Deploy, verify, replace and remove the forwarding rules of a forward mailbox's users.

The users are ingest's mailboxes whose incoming method is "via" the forward mailbox. For each,
one ManageSieve session on the user's mail server: read what is there, write the rule
(:mod:`mailroom.console.ops.forward_rules`), make it the active script, then read it back and
compare — a deploy that cannot be read back as written is reported as failed, not as done. A dry run
reads and has the server *check* the script, and changes nothing.

Whose credentials: a real admin has a *master user* (Dovecot's ``master = yes`` passdb) that
logs in as any user; users behind a forward mailbox usually have no password stored in
Mailroom at all. Without an admin, each user's own stored credentials are used (ingest's,
Fernet-encrypted), where there are any.

Which server: ``--server`` when given; otherwise the host of the user's email server profile on
the ManageSieve port, its trusted certificate included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg

from ingest import credentials, store
from ingest.model import Auth, Mailbox, OwnerKind
from mailroom.console.ops import managesieve
from mailroom.console.ops.forward_rules import SCRIPT_NAME, Rule, parse, render
from mailroom.errors import ConfigError
from mailroom.settings import Settings


@dataclass(frozen=True)
class Server:
    host: str
    port: int = managesieve.DEFAULT_PORT
    starttls: bool = True
    cafile: str = ""


@dataclass(frozen=True)
class Admin:
    """A master user: authenticates itself, acts as the user."""

    user: str
    password: str


@dataclass(frozen=True)
class Outcome:
    """What happened (or, in a dry run, would happen) for one user."""

    address: str
    action: str  # installed | replaced | unchanged | removed | absent | deployed | … | failed
    ok: bool = True
    detail: str = ""

    def line(self) -> str:
        text = f"{'ok  ' if self.ok else 'FAIL'} {self.address:<40} {self.action}"
        return f"{text}: {self.detail}" if self.detail else text


def forward_mailbox(conn: psycopg.Connection, address: str) -> Mailbox:
    box = store.mailbox(conn, address)
    if box.owner_kind != OwnerKind.FORWARD:
        raise ConfigError(f"{box.address} is a {box.owner_kind} mailbox, not a forward mailbox")
    return box


def forwarders(conn: psycopg.Connection, forward: Mailbox,
               only: Sequence[str] = ()) -> list[Mailbox]:
    """The mailboxes whose mail arrives via ``forward`` (``only``: those addresses, each of
    which must be one of them)."""
    boxes = sorted(store.mailboxes(conn, via=forward.id), key=lambda m: m.address)
    if not only:
        return boxes
    wanted = {a.strip().lower() for a in only if a.strip()}
    found = [m for m in boxes if m.address.lower() in wanted]
    missing = wanted - {m.address.lower() for m in found}
    if missing:
        raise ConfigError(f"not behind forward mailbox {forward.address}: "
                          f"{', '.join(sorted(missing))}")
    return found


class Deployer:
    """Talks ManageSieve to each user's server, one session per user."""

    def __init__(self, settings: Settings, conn: psycopg.Connection, *,
                 server: Server | None = None, admin: Admin | None = None,
                 timeout: float = 30.0) -> None:
        self.settings, self.conn = settings, conn
        self.server, self.admin, self.timeout = server, admin, timeout

    def _open(self, m: Mailbox) -> managesieve.ManageSieve:
        profile = store.profile(self.conn, m.profile_id)
        server = self.server or Server(profile.host, cafile=profile.trust_cafile)
        if self.admin is None:
            if not m.secret:
                raise ConfigError("no credentials stored for this mailbox: use an admin "
                                  "(master) user, --admin")
            if profile.auth != Auth.PASSWORD:
                raise ConfigError(f"its profile logs in with {profile.auth}, which ManageSieve "
                                  "cannot: use an admin (master) user, --admin")
        session = managesieve.ManageSieve(server.host, server.port, starttls=server.starttls,
                                          cafile=server.cafile, timeout=self.timeout)
        try:
            if self.admin is not None:
                session.login(self.admin.user, self.admin.password, as_user=m.username)
            else:
                session.login(m.username, credentials.decrypt(self.settings, m.secret))
        except BaseException:
            session.close()
            raise
        return session

    def _each(self, m: Mailbox, work: Callable[[managesieve.ManageSieve], Outcome]) -> Outcome:
        try:
            with self._open(m) as session:
                return work(session)
        except (managesieve.SieveError, ConfigError, ValueError) as exc:
            return Outcome(m.address, "failed", False, str(exc))

    def deploy(self, m: Mailbox, forward: str, *, dry_run: bool = False) -> Outcome:
        def work(s: managesieve.ManageSieve) -> Outcome:
            scripts = dict(s.list_scripts())
            active = next((n for n, a in scripts.items() if a), "")
            current = s.get_script(SCRIPT_NAME) if SCRIPT_NAME in scripts else None
            old = parse(current) if current is not None else None
            # The user's own active script keeps running, included after the forwarding.
            keep = active if active not in ("", SCRIPT_NAME) else (old.includes if old else "")
            wanted = render(Rule(m.address, forward, keep))
            kept = f"; keeps the user's script {keep!r}" if keep else ""
            if current == wanted and active == SCRIPT_NAME:
                return Outcome(m.address, "unchanged", True, f"forwards to {forward}{kept}")
            verb = "replace" if current is not None else "install"
            if dry_run:
                s.check_script(wanted)  # the server's compiler accepts it
                return Outcome(m.address, f"would {verb}", True,
                               f"forward to {forward}{kept}; the server accepts the script")
            s.put_script(SCRIPT_NAME, wanted)
            if active != SCRIPT_NAME:
                s.set_active(SCRIPT_NAME)
            problem = _verify(s, wanted)
            if problem:
                return Outcome(m.address, "failed", False, f"verification: {problem}")
            done = "replaced" if current is not None else "installed"
            return Outcome(m.address, done, True, f"forwards to {forward}{kept}; verified")

        return self._each(m, work)

    def remove(self, m: Mailbox, *, dry_run: bool = False) -> Outcome:
        def work(s: managesieve.ManageSieve) -> Outcome:
            scripts = dict(s.list_scripts())
            if SCRIPT_NAME not in scripts:
                return Outcome(m.address, "absent", True, "no forwarding rule there")
            old = parse(s.get_script(SCRIPT_NAME))
            keep = old.includes if old and old.includes in scripts else ""
            back = f"; the user's script {keep!r} active again" if keep else ""
            if dry_run:
                return Outcome(m.address, "would remove", True, back.lstrip("; "))
            if scripts[SCRIPT_NAME]:
                s.set_active(keep)  # "" deactivates: no script runs, mail is simply kept
            s.delete_script(SCRIPT_NAME)
            left = dict(s.list_scripts())
            if SCRIPT_NAME in left or (keep and not left.get(keep)):
                return Outcome(m.address, "failed", False, f"verification: scripts now {left}")
            return Outcome(m.address, "removed", True, back.lstrip("; "))

        return self._each(m, work)

    def inspect(self, m: Mailbox, forward: str) -> Outcome:
        """Whether the rule is there, active and forwarding to ``forward`` (reads only)."""
        def work(s: managesieve.ManageSieve) -> Outcome:
            scripts = dict(s.list_scripts())
            if SCRIPT_NAME not in scripts:
                return Outcome(m.address, "not deployed", True)
            rule = parse(s.get_script(SCRIPT_NAME))
            if not scripts[SCRIPT_NAME]:
                active = next((n for n, a in scripts.items() if a), "") or "none"
                return Outcome(m.address, "inactive", True, f"active script: {active}")
            if rule is None or rule.forward_mailbox != forward or rule.user != m.address:
                where = rule.forward_mailbox if rule else "?"
                return Outcome(m.address, "outdated", True,
                               f"forwards to {where}; deploy again")
            return Outcome(m.address, "deployed", True, f"forwards to {forward}")

        return self._each(m, work)


def _verify(s: managesieve.ManageSieve, wanted: str) -> str:
    """'' when the server has exactly ``wanted`` as the active rule, else what differs."""
    if s.active_script() != SCRIPT_NAME:
        return f"the active script is {s.active_script()!r}, not {SCRIPT_NAME!r}"
    if s.get_script(SCRIPT_NAME) != wanted:
        return "the script read back differs from the one written"
    return ""

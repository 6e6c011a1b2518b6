"""The two-level mailbox model CRM admins know: email server profiles and mailboxes.

Pure data and validation; :mod:`ingest.store` keeps them in PostgreSQL. Credentials never
appear here in clear: a :class:`Mailbox` carries only the Fernet token (``secret``); the
password is decrypted by :mod:`ingest.credentials` at the moment of login and nowhere else.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from mailroom.errors import ConfigError


class Protocol(StrEnum):
    IMAP = "imap"
    POP3 = "pop3"


class Tls(StrEnum):
    IMPLICIT = "implicit"
    STARTTLS = "starttls"
    NONE = "none"  # loopback only: credentials must never cross a network in clear


class Auth(StrEnum):
    PASSWORD = "password"
    XOAUTH2 = "xoauth2"


class OwnerKind(StrEnum):
    USER = "user"
    QUEUE = "queue"
    FORWARD = "forward"


class Direction(StrEnum):
    INCOMING = "incoming"
    OUTGOING = "outgoing"  # e.g. Sent: the user's own mail, so replies to it correlate


class AfterIngest(StrEnum):
    """What happens on the server once the broker has the message durably."""

    FLAG = "flag"  # set a keyword; the default, and the only choice for user mailboxes
    MOVE = "move"  # UID MOVE to another folder (IMAP)
    DELETE = "delete"  # UID EXPUNGE (IMAP) or DELE (POP3)


DEFAULT_KEYWORD = "$MailroomIngested"

DEFAULT_PORTS = {
    (Protocol.IMAP, Tls.IMPLICIT): 993,
    (Protocol.IMAP, Tls.STARTTLS): 143,
    (Protocol.IMAP, Tls.NONE): 143,
    (Protocol.POP3, Tls.IMPLICIT): 995,
    (Protocol.POP3, Tls.STARTTLS): 110,
    (Protocol.POP3, Tls.NONE): 110,
}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_url_problem(url: str) -> str | None:
    """Why the client secret must not be posted to ``url``, or None. Only https (verified by
    urllib against the system's trust store), or plain http to a loopback host (a local
    identity provider): anything else would hand the secret to whoever is on the path, and a
    ``file:`` URL would read a local file as the token answer."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "https" and parsed.hostname:
        return None
    if parsed.scheme == "http" and parsed.hostname and is_loopback(parsed.hostname):
        return None
    return (f"OAuth token URL {url!r} must be https:// (http:// only to a loopback host): "
            "the client secret is posted to it")


@dataclass(frozen=True)
class Profile:
    """An email server profile: how to reach and log in to one kind of server."""

    name: str
    protocol: Protocol
    host: str
    port: int
    tls: Tls = Tls.IMPLICIT
    #: A CA or self-signed certificate file trusted *explicitly* for this server. Empty: the
    #: system's trust store. Verification is never switched off.
    trust_cafile: str = ""
    auth: Auth = Auth.PASSWORD
    oauth_token_url: str = ""  # client-credentials token endpoint (XOAUTH2)
    oauth_client_id: str = ""
    oauth_scope: str = ""
    max_connections: int = 4
    poll_interval_s: int = 60
    received_after: datetime | None = None  # "process mail received after"
    id: int | None = None

    def validate(self) -> Profile:
        if not self.name.strip():
            raise ConfigError("profile: a name is required")
        if not 0 < self.port < 65536:
            raise ConfigError(f"profile {self.name}: port {self.port} out of range")
        if self.tls is Tls.NONE and not is_loopback(self.host):
            raise ConfigError(
                f"profile {self.name}: TLS 'none' is allowed only for a loopback host, "
                f"not {self.host!r} (passwords would cross the network in clear)"
            )
        if self.auth is Auth.XOAUTH2 and not (self.oauth_token_url and self.oauth_client_id):
            raise ConfigError(f"profile {self.name}: XOAUTH2 needs a token URL and a client id")
        if self.oauth_token_url and (problem := token_url_problem(self.oauth_token_url)):
            raise ConfigError(f"profile {self.name}: {problem}")
        if self.max_connections < 1 or self.poll_interval_s < 1:
            raise ConfigError(f"profile {self.name}: connections and poll interval must be >= 1")
        return self


@dataclass(frozen=True)
class Folder:
    name: str = "INBOX"
    direction: Direction = Direction.INCOMING


@dataclass(frozen=True)
class Mailbox:
    """One monitored mailbox. ``secret`` is the encrypted credential, never the clear one."""

    address: str
    owner_kind: OwnerKind
    profile_id: int
    username: str
    secret: bytes = field(repr=False)  # empty only for a mailbox that is never polled (via)
    owner_id: str = ""
    via_mailbox_id: int | None = None  # incoming method: None = direct, else the forward mailbox
    folders: tuple[Folder, ...] = (Folder(),)
    after_ingest: AfterIngest = AfterIngest.FLAG
    keyword: str = DEFAULT_KEYWORD
    move_to: str = ""
    enabled: bool = True
    #: Approval of the mailbox's address (as Dynamics 365 asks for): only an approved mailbox's
    #: mail is processed. Who decided last and when; no decision yet (``approval_at`` None) and
    #: not approved is *pending*, a decision against is *rejected*.
    approved: bool = True
    approval_by: str = ""
    approval_at: datetime | None = None
    #: "Process email from": mail that arrived before this instant is skipped (each skip traced
    #: with its reason). None: the profile's ``received_after``. For a mailbox via a forward
    #: mailbox, the original's arrival is compared (unwrap).
    process_from: datetime | None = None
    #: forward mailboxes: forwards need a passing Authentication-Results of our receiving server
    #: (False: the operator's opt-out for a server that cannot stamp them; docs/security.md)
    check_auth_results: bool = True
    status: str = "new"  # new | ok | retrying | disabled | refused
    status_detail: str = ""
    last_test_ok: bool | None = None
    last_test_detail: str = ""
    last_test_at: datetime | None = None
    id: int | None = None

    def validate(self, profile: Profile) -> Mailbox:
        where = f"mailbox {self.address}"
        if "@" not in self.address:
            raise ConfigError(f"{where}: the address must be an email address")
        if not self.folders:
            raise ConfigError(f"{where}: at least one folder is required")
        if self.owner_kind is OwnerKind.USER and self.after_ingest is not AfterIngest.FLAG:
            # A user's own mail is theirs: we never move or delete it, only mark it.
            raise ConfigError(f"{where}: user mailboxes may only set a keyword after ingest")
        if self.after_ingest is AfterIngest.MOVE:
            if profile.protocol is Protocol.POP3:
                raise ConfigError(f"{where}: POP3 has no folders to move to")
            if not self.move_to:
                raise ConfigError(f"{where}: 'move' needs a target folder")
        if profile.protocol is Protocol.POP3:
            if [f.name.upper() for f in self.folders] != ["INBOX"]:
                raise ConfigError(f"{where}: POP3 has only the INBOX")
            if self.after_ingest is AfterIngest.FLAG:
                pass  # POP3 has no flags: "flag" means leave the message where it is
        if not self.check_auth_results and self.owner_kind is not OwnerKind.FORWARD:
            raise ConfigError(f"{where}: only a forward mailbox has an Authentication-Results "
                              "check to switch off")
        if self.via_mailbox_id is not None and self.owner_kind is OwnerKind.FORWARD:
            raise ConfigError(f"{where}: a forward mailbox cannot itself arrive via another one")
        if self.polled and not self.secret:
            # Only a mailbox whose mail arrives through a forward mailbox needs no credentials
            # (it is never logged in to); every polled mailbox does.
            raise ConfigError(f"{where}: credentials are required for a directly polled mailbox")
        return self

    @property
    def polled(self) -> bool:
        """Whether ingest logs in to this mailbox. One whose incoming method is "via forward
        mailbox X" never is: its mail arrives through X (the point of one set of credentials)."""
        return self.via_mailbox_id is None

    def trust_gap(self, authserv_id: str) -> str | None:
        """Why this forward mailbox must not be polled, or None. Its forwards can only be
        believed on our receiving server's Authentication-Results, which needs that server's
        authserv-id; without one every forward would be a dead letter, so the mail is left on
        the server until the operator sets it or switches the check off for this mailbox."""
        if self.owner_kind is not OwnerKind.FORWARD or not self.check_auth_results:
            return None
        if authserv_id.strip():
            return None
        return (f"forward mailbox {self.address}: no authserv-id of the receiving server is "
                "configured (MAILROOM_UNWRAP_AUTHSERV_ID), so no forward could be trusted; set "
                "it, or if that server cannot stamp Authentication-Results, switch the check "
                f"off for this mailbox: `mailroom mailbox auth-results {self.address} off`")

    def processes_from(self, profile: Profile) -> datetime | None:
        """The instant mail must have arrived at or after to be processed, or None (all)."""
        return self.process_from or profile.received_after

    @property
    def approval(self) -> str:
        """approved | pending | rejected."""
        if self.approved:
            return "approved"
        return "pending" if self.approval_at is None else "rejected"

    def approval_gap(self) -> str | None:
        """Why this mailbox's mail is not processed for want of approval, or None; where that
        mail waits, and what releases it."""
        if self.approved:
            return None
        state = ("pending approval" if self.approval_at is None else
                 f"rejected by {self.approval_by or 'an administrator'} at "
                 f"{self.approval_at:%Y-%m-%d %H:%M:%S%z}")
        if self.via_mailbox_id is not None:
            where = ("its forwards are dead-lettered forwarder_not_approved in the forward "
                     "mailbox's stream; approving it sends them back to unwrap")
        else:
            where = "its mail is not fetched and waits on its server until it is approved"
        return f"mailbox {self.address} is {state}: {where}"

    def folder(self, name: str) -> Folder:
        for f in self.folders:
            if f.name == name:
                return f
        raise KeyError(name)


def parse_folders(specs: list[str] | None) -> tuple[Folder, ...]:
    """``["INBOX", "Sent:outgoing"]`` → folders; the default is the INBOX, incoming."""
    if not specs:
        return (Folder(),)
    result = []
    for spec in specs:
        name, sep, direction = spec.rpartition(":")
        if not sep or direction not in {d.value for d in Direction}:
            name, direction = spec, Direction.INCOMING.value
        result.append(Folder(name=name, direction=Direction(direction)))
    return tuple(result)

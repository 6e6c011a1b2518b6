"""``mailroom rules deploy | remove | status`` on the local stack's Dovecot (ManageSieve, LMTP).

A rule is deployed for users behind a forward mailbox; mail delivered to a user over LMTP then
arrives in the forward mailbox carrying *our* X-Mailroom-Forwarded-By (the one a sender wrote
is gone), and a copy stays with the user. Removing the rule stops the forwarding and gives the
user's own script back.
"""

from __future__ import annotations

import email
import email.policy
import os
import smtplib
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pipeline_testing import own_schema

from ingest import announce, credentials, store
from ingest.model import Mailbox, OwnerKind, Profile, Protocol, Tls
from mailroom.console.ops import managesieve
from mailroom.console.ops.forward_rules import SCRIPT_NAME
from mailroom.console.stack import dovecot, sieve, tls
from mailroom.db import connect
from mailroom.errors import ConfigError
from mailroom.records.raw import RawMail
from mailroom.settings import Settings
from unwrap.context import UnwrapContext
from unwrap.forwarders import FORWARDED_BY_HEADER, forward_mailboxes, load_aliases
from unwrap.unwrap import unwrap

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Site:
    settings: Settings
    forward: str  # addresses; the Dovecot user is the local part
    alice: str
    bob: str
    carol: str  # has her own credentials stored, no admin needed
    forward_id: int

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"MAILROOM_DATABASE_URL": self.settings.database_url,
                    "MAILROOM_STATE_DIR": str(self.settings.state_path),
                    "ADMIN_PW": sieve.master_user(self.settings)[1], **extra})
        return env


def _user(settings: Settings) -> tuple[str, str]:
    name, password = "r" + uuid.uuid4().hex[:10], "pw-" + uuid.uuid4().hex[:8]
    dovecot.add_user(settings, name, password)
    return f"{name}@example.com", password


@pytest.fixture
def site(isolated_settings: Settings, unique_name: str) -> Iterator[Site]:
    if not Path(sieve.masters_file(isolated_settings)).exists():
        pytest.fail("the local stack's Dovecot has no Sieve yet: mailroom stack up")
    with own_schema(isolated_settings, f"rules_{unique_name}") as settings:
        (forward, fpw), (alice, _), (bob, _), (carol, cpw) = (_user(settings) for _ in range(4))
        with connect(settings) as db:
            pid = store.add_profile(db, Profile(f"p-{unique_name}", Protocol.IMAP, "127.0.0.1",
                                                settings.imap_port, tls=Tls.NONE))
            fid = store.add_mailbox(db, Mailbox(forward, OwnerKind.FORWARD, pid,
                                                forward.split("@")[0],
                                                credentials.encrypt(settings, fpw)))
            for address, owner, secret in ((alice, "user-alice", b""), (bob, "user-bob", b""),
                                           (carol, "user-carol",
                                            credentials.encrypt(settings, cpw))):
                store.add_mailbox(db, Mailbox(address, OwnerKind.USER, pid,
                                              address.split("@")[0], secret, owner_id=owner,
                                              via_mailbox_id=fid))
            db.commit()
        yield Site(settings, forward, alice, bob, carol, fid)


def rules(site: Site, *args: str, admin: bool = True) -> subprocess.CompletedProcess[str]:
    server = ["--server", f"127.0.0.1:{site.settings.managesieve_port}",
              "--cafile", str(tls.cert_file(site.settings))]
    who = ["--admin", sieve.MASTER_USER, "--admin-password-env", "ADMIN_PW"] if admin else []
    return subprocess.run(
        [sys.executable, "-m", "mailroom.cli", "rules", *args, *server, *who],
        cwd=REPO, env=site.env(), text=True, capture_output=True, timeout=120)


def session(site: Site, address: str) -> managesieve.ManageSieve:
    """The admin's own look at a user's scripts, independent of the code under test."""
    s = managesieve.ManageSieve("127.0.0.1", site.settings.managesieve_port,
                                cafile=str(tls.cert_file(site.settings)))
    name, password = sieve.master_user(site.settings)
    s.login(name, password, as_user=address.split("@")[0])
    return s


def deliver(site: Site, to: str, subject: str, extra: str = "") -> str:
    """Deliver over LMTP (the user's Sieve script runs); returns the Message-ID."""
    mid = f"<{uuid.uuid4().hex}@customer.example>"
    msg = (f"From: Customer <someone@customer.example>\r\nTo: {to}\r\nSubject: {subject}\r\n"
           f"Message-ID: {mid}\r\n{extra}\r\nHello.\r\n").encode()
    with smtplib.LMTP("127.0.0.1", site.settings.lmtp_port) as lmtp:
        lmtp.sendmail("someone@customer.example", [to.split("@")[0]], msg)
    return mid


def delivered(site: Site, address: str, folder: str = "") -> dict[str, bytes]:
    """The user's delivered messages by Message-ID (Maildir ``new/``; ``folder``: a subfolder),
    as Dovecot serves them."""
    root = dovecot.maildir(site.settings, address.split("@")[0])
    new = (root / f".{folder}" if folder else root) / "new"
    found = {}
    for path in new.glob("*") if new.exists() else []:
        data = path.read_bytes()
        found[email.message_from_bytes(data, policy=email.policy.compat32)["Message-ID"]] = data
    return found


def messages(site: Site, address: str, folder: str = "") -> dict[str, email.message.Message]:
    return {k: email.message_from_bytes(v, policy=email.policy.compat32)
            for k, v in delivered(site, address, folder).items()}


def test_deploy_forwards_with_our_header_keeps_a_copy_and_remove_stops_it(site: Site) -> None:
    dry = rules(site, "deploy", "--forward-mailbox", site.forward, "--users",
                f"{site.alice},{site.bob}", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert dry.stdout.count("would install") == 2, dry.stdout
    with session(site, site.alice) as s:
        assert s.list_scripts() == []  # a dry run changes nothing

    done = rules(site, "deploy", "--forward-mailbox", site.forward, "--users", site.alice,
                 "--users", site.bob)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("installed") == 2 and "verified" in done.stdout, done.stdout
    with session(site, site.alice) as s:
        assert s.list_scripts() == [(SCRIPT_NAME, True)]
        assert f'redirect :copy "{site.forward}"' in s.get_script(SCRIPT_NAME)

    # A sender who writes the header themselves gets nowhere: only our server's one arrives.
    mid = deliver(site, site.alice, "quote please",
                  f"{FORWARDED_BY_HEADER}: {site.bob}\r\n")
    forwarded = messages(site, site.forward)[mid]
    assert forwarded.get_all(FORWARDED_BY_HEADER) == [site.alice]
    kept = messages(site, site.alice)[mid]
    assert kept["Subject"] == "quote please"

    again = rules(site, "deploy", "--forward-mailbox", site.forward, "--users", site.alice)
    assert again.returncode == 0 and "unchanged" in again.stdout, again.stdout

    status = rules(site, "status", "--forward-mailbox", site.forward, "--users",
                   f"{site.alice},{site.bob}")
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.count("deployed") == 2, status.stdout

    gone = rules(site, "remove", "--forward-mailbox", site.forward, "--users", site.alice)
    assert gone.returncode == 0 and "removed" in gone.stdout, gone.stdout
    with session(site, site.alice) as s:
        assert s.list_scripts() == []
    after = deliver(site, site.alice, "after removal")
    assert after in messages(site, site.alice)
    assert after not in messages(site, site.forward)
    # Bob's rule is untouched, and status says Alice's is gone (exit 1: not all deployed).
    status = rules(site, "status", "--forward-mailbox", site.forward, "--users",
                   f"{site.alice},{site.bob}")
    assert status.returncode == 1
    assert "not deployed" in status.stdout and "deployed" in status.stdout


def test_the_users_own_script_keeps_running_and_comes_back(site: Site) -> None:
    own = 'require ["fileinto"];\nif header :contains "subject" "invoice" { fileinto "Archive"; }\n'
    with session(site, site.alice) as s:
        s.put_script("filing", own)
        s.set_active("filing")

    done = rules(site, "deploy", "--forward-mailbox", site.forward, "--users", site.alice)
    assert done.returncode == 0 and "keeps the user's script 'filing'" in done.stdout, done.stdout

    mid = deliver(site, site.alice, "invoice 42")
    assert messages(site, site.forward)[mid].get_all(FORWARDED_BY_HEADER) == [site.alice]
    assert mid in messages(site, site.alice, "Archive")  # her filter still files it
    assert mid not in messages(site, site.alice)

    gone = rules(site, "remove", "--forward-mailbox", site.forward, "--users", site.alice)
    assert gone.returncode == 0 and "'filing' active again" in gone.stdout, gone.stdout
    with session(site, site.alice) as s:
        assert s.list_scripts() == [("filing", True)]


def test_stored_credentials_serve_without_an_admin_and_their_absence_is_said(site: Site) -> None:
    r = rules(site, "deploy", "--forward-mailbox", site.forward, "--users",
              f"{site.carol},{site.bob}", admin=False)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = {line.split()[1]: line for line in r.stdout.splitlines() if "@" in line}
    assert lines[site.carol].startswith("ok") and "installed" in lines[site.carol]
    assert lines[site.bob].startswith("FAIL") and "no credentials stored" in lines[site.bob]
    with session(site, site.carol) as s:
        assert s.active_script() == SCRIPT_NAME


def test_an_address_not_behind_the_forward_mailbox_is_refused(site: Site) -> None:
    r = rules(site, "deploy", "--forward-mailbox", site.forward, "--users",
              "stranger@example.com", "--dry-run")
    assert r.returncode == 2 and "not behind forward mailbox" in r.stderr, r.stderr
    r = rules(site, "deploy", "--forward-mailbox", site.alice)
    assert r.returncode == 2 and "not a forward mailbox" in r.stderr, r.stderr


def test_a_wrong_admin_password_fails_each_user_with_the_servers_answer(site: Site) -> None:
    env = site.env(ADMIN_PW="wrong")
    r = subprocess.run(
        [sys.executable, "-m", "mailroom.cli", "rules", "deploy", "--forward-mailbox",
         site.forward, "--server", f"127.0.0.1:{site.settings.managesieve_port}", "--cafile",
         str(tls.cert_file(site.settings)), "--admin", sieve.MASTER_USER,
         "--admin-password-env", "ADMIN_PW"],
        cwd=REPO, env=env, text=True, capture_output=True, timeout=120)
    assert r.returncode == 1
    assert r.stdout.count("FAIL") == 3 and "AUTHENTICATE" in r.stdout, r.stdout



def test_the_forward_mailbox_attributes_the_redirect_to_the_user_not_to_a_spoofer(
    site: Site
) -> None:
    done = rules(site, "deploy", "--forward-mailbox", site.forward, "--users", site.alice)
    assert done.returncode == 0, done.stdout + done.stderr
    with connect(site.settings) as db:
        # The stack's receiving server stamps no Authentication-Results: the opt-out.
        store.set_check_auth_results(db, site.forward_id, False)
        db.commit()
        # The mailboxes as their topic carries them (what unwrap's directory reads).
        profiles = {p.id: p for p in store.profiles(db)}
        forwards = forward_mailboxes(
            [announce.record(m, profiles[m.profile_id]) for m in store.mailboxes(db)],
            load_aliases(db))
    # Bob's name written by the sender: were it kept beside ours, the claim would be ambiguous.
    mid = deliver(site, site.alice, "order 77", f"{FORWARDED_BY_HEADER}: {site.bob}\r\n")
    data = delivered(site, site.forward)[mid]
    raw = RawMail(mailbox_id=str(site.forward_id), mailbox_address=site.forward,
                  owner_kind="forward", folder="INBOX", direction="incoming", protocol="imap",
                  fetched_at=datetime.now(UTC), size=len(data), uidvalidity=1, uid=1,
                  content=data)
    context = UnwrapContext.from_settings(site.settings, forwards.forwarders, forwards.unchecked)
    result = unwrap(raw, context)
    assert isinstance(result, list) and len(result) == 1, result
    [mail] = result
    assert mail.delivery.forwarded_by_user == "user-alice"
    assert mail.subject == "order 77" and mail.message_id == mid.strip("<>")


def test_status_tells_an_inactive_or_outdated_rule_and_deploy_replaces_it(site: Site) -> None:
    from mailroom.console.ops.forward_rules import Rule, render

    with session(site, site.alice) as s:  # a rule for another forward mailbox, active
        s.put_script(SCRIPT_NAME, render(Rule(site.alice, "old-forward@example.com")))
        s.set_active(SCRIPT_NAME)
    with session(site, site.bob) as s:  # the rule is there, but the user activated another
        s.put_script(SCRIPT_NAME, render(Rule(site.bob, site.forward)))
        s.put_script("mine", "keep;\n")
        s.set_active("mine")
    status = rules(site, "status", "--forward-mailbox", site.forward, "--users",
                   f"{site.alice},{site.bob}")
    assert status.returncode == 1
    lines = {line.split()[0]: line for line in status.stdout.splitlines()[1:]}
    assert "outdated" in lines[site.alice] and "old-forward@example.com" in lines[site.alice]
    assert "inactive" in lines[site.bob] and "active script: mine" in lines[site.bob]

    dry = rules(site, "remove", "--forward-mailbox", site.forward, "--users", site.alice,
                "--dry-run")
    assert dry.returncode == 0 and "would remove" in dry.stdout, dry.stdout
    with session(site, site.alice) as s:
        assert s.active_script() == SCRIPT_NAME  # a dry run removes nothing

    done = rules(site, "deploy", "--forward-mailbox", site.forward, "--users",
                 f"{site.alice},{site.bob}")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {line.split()[1]: line for line in done.stdout.splitlines() if "@" in line}
    assert "replaced" in lines[site.alice]
    assert "replaced" in lines[site.bob] and "keeps the user's script 'mine'" in lines[site.bob]
    status = rules(site, "status", "--forward-mailbox", site.forward, "--users",
                   f"{site.alice},{site.bob}")
    assert status.returncode == 0 and status.stdout.count(" deployed ") == 2, status.stdout


def test_an_untrusted_certificate_or_no_starttls_is_refused_before_any_login(site: Site) -> None:
    port = site.settings.managesieve_port
    with pytest.raises(managesieve.SieveRefused, match="not trusted"):
        managesieve.ManageSieve("127.0.0.1", port)  # the stack's self-signed certificate
    with pytest.raises(ConfigError, match="CA file"):
        managesieve.ManageSieve("127.0.0.1", port, cafile="/nonexistent/ca.pem")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(managesieve.SieveUnavailable, match="cannot reach"):
        managesieve.ManageSieve("127.0.0.1", closed)

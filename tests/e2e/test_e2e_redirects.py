"""Redirects through our own mail server, end to end on the real stack.

Mail is delivered over LMTP to users whose forwarding rule (the Sieve script ``mailroom rules
deploy`` writes, uploaded over ManageSieve) redirects it to a forward mailbox; the four stages
run as processes. The local stack has no MTA in front of Dovecot, so nothing stamps
Authentication-Results on the redirect hop:

* behind a forward mailbox that requires them (the default), the redirect is a dead letter
  ``auth_missing`` with its reason recorded — fail closed;
* behind one opted out (``--no-auth-results``, for a receiving server that cannot stamp), the
  redirected original becomes the forwarding user's — or queue's — email, attributed from our
  rule's header, not from the one the sender wrote.
"""

from __future__ import annotations

import os
import smtplib
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pipeline_testing import drop_schema_and_topics

from mailroom.console.demo import seed
from mailroom.console.demo.pipeline import Children
from mailroom.console.demo.progress import wait_for
from mailroom.console.ops import managesieve
from mailroom.console.ops.forward_rules import SCRIPT_NAME, Rule, render
from mailroom.console.stack import dovecot, sieve, tls
from mailroom.db import connect
from mailroom.settings import Settings
from unwrap.attribution import HELD
from unwrap.forwarders import FORWARDED_BY_HEADER

pytestmark = pytest.mark.integration

DOMAIN = "redirect.example"
DAN_FROM = "2999-01-01T00:00:00+00:00"  # Dan's mailbox processes mail from then on only
PASSWORD = "pw-redirect"
RULES = """
[track]
default = "all"

[[queues.q-sales.rules]]
name = "everything"
create_case = false
create_queue_item = true
"""


@dataclass
class Site:
    settings: Settings
    children: Children
    logins: dict[str, str]  # role -> Dovecot login (the address's local part)

    def address(self, role: str) -> str:
        return f"{self.logins[role]}@{DOMAIN}"


def _deploy(settings: Settings, user: str, forward: str) -> None:
    """The forwarding rule, as `mailroom rules deploy` installs it, for one user."""
    s = managesieve.ManageSieve("127.0.0.1", settings.managesieve_port,
                                cafile=str(tls.cert_file(settings)))
    try:
        name, password = sieve.master_user(settings)
        s.login(name, password, as_user=user.split("@")[0])
        s.put_script(SCRIPT_NAME, render(Rule(user=user, forward_mailbox=forward)))
        s.set_active(SCRIPT_NAME)
    finally:
        s.close()


def _deliver(settings: Settings, to: str, subject: str, extra: str = "") -> str:
    """Deliver over LMTP (the recipient's Sieve script runs); returns the Message-ID."""
    mid = f"{uuid.uuid4().hex}@customer.example"
    msg = (f"From: Customer <someone@customer.example>\r\nTo: {to}\r\nSubject: {subject}\r\n"
           f"Date: Tue, 11 Mar 2025 10:00:00 +0000\r\nMessage-ID: <{mid}>\r\n{extra}\r\n"
           "Hello.\r\n").encode()
    with smtplib.LMTP("127.0.0.1", settings.lmtp_port) as lmtp:
        lmtp.sendmail("someone@customer.example", [to.split("@")[0]], msg)
    return mid


@pytest.fixture(scope="module")
def site(base_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if not sieve.masters_file(base_settings).exists():
        pytest.fail("the local stack's Dovecot has no Sieve yet: mailroom stack up")
    name = "rd" + uuid.uuid4().hex[:8]
    schema = f"test_{name}"
    settings = base_settings.replace(
        topic_prefix=f"test.{name}",
        database_url=f"{base_settings.dsn} options='-c search_path={schema}'",
        unwrap_authserv_id=f"mx.{DOMAIN}",
    )
    logins = {role: f"{name}-{role}"
              for role in ("checked", "open", "alice", "bob", "sales", "carol", "dan")}
    children = Children(settings, Path(tmp_path_factory.mktemp("redirect-logs")))
    try:
        seed.reset_database(settings)
        seed.reset_topics(settings)
        for login in logins.values():
            dovecot.add_user(settings, login, PASSWORD)
        site = Site(settings, children, logins)
        with tempfile.TemporaryDirectory() as tmp:
            users, queues, rules = (Path(tmp) / n for n in ("u.csv", "q.csv", "rules.toml"))
            users.write_text(f"id,name,emails\nu-alice,Alice,{site.address('alice')}\n"
                             f"u-bob,Bob,{site.address('bob')}\n"
                             f"u-carol,Carol,{site.address('carol')}\n"
                             f"u-dan,Dan,{site.address('dan')}\n")
            queues.write_text(f"id,name,emails\nq-sales,Sales,{site.address('sales')}\n")
            rules.write_text(RULES)
            seed.command(settings, ["import", "users", str(users)])
            seed.command(settings, ["import", "queues", str(queues)])
            seed.command(settings, ["rules", "load", str(rules)])
        seed.command(settings, ["profile", "add", "local", "--host", "127.0.0.1", "--port",
                                str(settings.imap_port), "--tls", "none",
                                "--poll-interval", "1"])
        os.environ[seed.PASSWORD_ENV] = PASSWORD
        for role, extra in (("checked", []), ("open", ["--no-auth-results"])):
            seed.command(settings, ["mailbox", "add", site.address(role), "--profile", "local",
                                    "--owner", "forward", "--username", logins[role],
                                    "--password-env", seed.PASSWORD_ENV, *extra])
        for role, owner, owner_id, via, pending in (
                ("alice", "user", "u-alice", "checked", []), ("bob", "user", "u-bob", "open", []),
                ("sales", "queue", "q-sales", "open", []),
                ("carol", "user", "u-carol", "open", ["--pending"]),
                ("dan", "user", "u-dan", "open", ["--process-from", DAN_FROM])):
            seed.command(settings, ["mailbox", "add", site.address(role), "--owner", owner,
                                    "--owner-id", owner_id, "--via", site.address(via),
                                    *pending])
            _deploy(settings, site.address(role), site.address(via))
        children.start_stages()
        yield site
    finally:
        codes = children.stop()
        drop_schema_and_topics(base_settings, schema, settings.topic_prefix)
    assert all(code == 0 for code in codes.values()), codes


def _one(settings: Settings, query: str, *params: object) -> tuple[object, ...] | None:
    with connect(settings) as conn:
        row = conn.execute(query, params).fetchone()
    return None if row is None else tuple(row)


def _dead_letters(settings: Settings, code: str) -> list[tuple[object, ...]]:
    with connect(settings) as conn:
        return [tuple(r) for r in conn.execute(
            "SELECT detail->>'reason_code', detail->>'reason' FROM message_traces "
            "WHERE stage = 'unwrap' AND event = 'dead_lettered' "
            "AND detail->>'reason_code' = %s", (code,)).fetchall()]


def test_a_redirect_nothing_vouches_for_is_a_dead_letter_with_its_reason(site: Site) -> None:
    mid = _deliver(site.settings, site.address("alice"), "Redirected, unvouched")
    found: list[tuple[object, ...]] = []

    def dead_lettered() -> bool:
        found[:] = _dead_letters(site.settings, "auth_missing")
        return bool(found)

    wait_for("the unvouched redirect's dead letter", dead_lettered, site.children, 120)
    [(code, reason)] = found
    assert code == "auth_missing"
    assert site.address("alice") in str(reason) and FORWARDED_BY_HEADER in str(reason)
    # the original never became a record
    assert _one(site.settings, "SELECT id FROM email_activities WHERE message_id = %s",
                mid) is None


def test_a_redirect_through_our_rule_is_the_forwarding_users_email(site: Site) -> None:
    # the sender writes our header naming the queue: the rule deletes it and adds Bob's own
    forged = f"{FORWARDED_BY_HEADER}: {site.address('sales')}\r\n"
    mid = _deliver(site.settings, site.address("bob"), "Redirected to the CRM", forged)
    query = ("SELECT a.copy_kind, m.accepting_owner, m.forwarded_by, m.delivery_path "
             "FROM email_activities a JOIN activity_mailboxes m ON m.activity_id = a.id "
             "WHERE a.message_id = %s")
    wait_for("Bob's redirected email", lambda: _one(site.settings, query, mid) is not None,
             site.children, 120)
    assert _one(site.settings, query, mid) == (
        "direct", "user:u-bob", "u-bob", f"redirected ({FORWARDED_BY_HEADER})")
    assert _one(site.settings, "SELECT count(*) FROM queue_items") == (0,)


def test_a_queues_redirect_becomes_a_queue_item(site: Site) -> None:
    mid = _deliver(site.settings, site.address("sales"), "Price list please")
    query = ("SELECT q.queue_id, q.rule_item FROM queue_items q JOIN email_activities a "
             "ON a.id = q.activity_id WHERE a.message_id = %s")
    wait_for("the sales queue's item", lambda: _one(site.settings, query, mid) is not None,
             site.children, 120)
    assert _one(site.settings, query, mid) == ("q-sales", "queue:q-sales rule 1 'everything'")


def test_a_pending_forwarders_mail_waits_and_approval_releases_it(site: Site) -> None:
    carol = site.address("carol")
    mid = _deliver(site.settings, carol, "Waiting for approval")
    wait_for("the held forward", lambda: bool(_dead_letters(site.settings, HELD)),
             site.children, 120)
    [(_code, reason)] = _dead_letters(site.settings, HELD)
    assert f"<{carol}>" in str(reason)
    query = ("SELECT m.forwarded_by FROM email_activities a JOIN activity_mailboxes m "
             "ON m.activity_id = a.id WHERE a.message_id = %s")
    assert _one(site.settings, query, mid) is None

    out = seed.command(site.settings, ["mailbox", "approve", carol, "--by", "the test"])
    assert f"mailbox {carol} approved by the test" in out
    assert "1 held forward(s) sent back to unwrap" in out
    wait_for("Carol's released email", lambda: _one(site.settings, query, mid) is not None,
             site.children, 120)
    assert _one(site.settings, query, mid) == ("u-carol",)


def test_mail_that_arrived_before_the_forwarders_process_from_is_skipped_with_why(
        site: Site) -> None:
    mid = _deliver(site.settings, site.address("dan"), "Too early for Dan")
    query = ("SELECT detail->>'reason', detail->>'forwarded_by' FROM message_traces "
             "WHERE stage = 'unwrap' AND event = 'skipped' AND message_id = %s")
    wait_for("the skip's trace", lambda: _one(site.settings, query, mid) is not None,
             site.children, 120)
    reason, by = _one(site.settings, query, mid)  # type: ignore[misc]
    assert by == "u-dan"
    assert f"before its mailbox's 'process email from' {DAN_FROM}" in str(reason)
    assert _one(site.settings, "SELECT id FROM email_activities WHERE message_id = %s",
                mid) is None

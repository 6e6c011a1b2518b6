"""The demo's forwarding rules: deployed with ``mailroom rules deploy``, one message sent through.

The users behind ``crm-forward@`` get the Sieve rule that redirects their mail to it, uploaded
over ManageSieve to the local stack's Dovecot by the master user, as an administrator types it;
``rules status`` then shows each rule and when mail last arrived through it. Then one message
from Jane is delivered over LMTP to Alice — as Acme's receiving server, which stamps its
Authentication-Results on the original — so it travels through her rule (Sieve redirect, the
stack's sendmail) into the forward mailbox and on through the pipeline.

Where it ends is the honest part. A redirect's forwarder is believed only when the forward
mailbox's receiving server vouches for the *redirect hop* (a pass aligned with Alice's domain:
``unwrap/redirects.py``). The stamp on the message vouches for Jane's original; the hop from
Alice's rule went through the stack's sendmail, which hands mail to LMTP and checks nothing, so
nothing vouches for it: unwrap dead-letters it ``auth_failed`` with that reason. Claiming a pass
there, which no check produced, is exactly the forgery the check exists to stop.
"""

from __future__ import annotations

import os
import smtplib
import time
from dataclasses import dataclass, replace

from mailroom.console.demo import mail, progress, seed
from mailroom.console.demo.pipeline import Children
from mailroom.console.demo.scenario import ALICE, DOMAIN, JANE, Letter, _at
from mailroom.console.stack import sieve, tls
from mailroom.errors import MailroomError
from mailroom.settings import Settings

FORWARD = f"crm-forward@{DOMAIN}"
#: The environment variable the master user's password travels in (never an argument).
ADMIN_PASSWORD_ENV = "DEMO_SIEVE_ADMIN_PASSWORD"  # not MAILROOM_*: no setting
#: The message sent to Alice once her rule is deployed.
REDIRECTED = Letter("redirected", JANE, (ALICE,), "Chairs: delivery date?", _at(200),
                    "Alice, when will the replacement chairs arrive?\nJane")

_OUTCOME = """
SELECT 'a dead letter ' || (detail->>'reason_code'), detail->>'reason'
  FROM message_traces
 WHERE stage = 'unwrap' AND event = 'dead_lettered'
   AND detail->>'reason' LIKE %s
UNION ALL
SELECT 'email activity #' || id, coalesce(correlation_method, '')
  FROM email_activities WHERE message_id = %s
"""


@dataclass(frozen=True)
class Outcome:
    where: str  # "a dead letter auth_failed", "email activity #16"
    detail: str


def _server_args(settings: Settings) -> list[str]:
    name, _password = sieve.master_user(settings)
    return ["--forward-mailbox", FORWARD, "--server", f"127.0.0.1:{settings.managesieve_port}",
            "--cafile", str(tls.cert_file(settings)), "--admin", name,
            "--admin-password-env", ADMIN_PASSWORD_ENV]


def _command(settings: Settings, argv: list[str]) -> tuple[int, list[str]]:
    """Run ``mailroom rules …`` with the master user's password in the environment only."""
    os.environ[ADMIN_PASSWORD_ENV] = sieve.master_user(settings)[1]
    try:
        code, out = seed.command_output(settings, argv)
    finally:
        del os.environ[ADMIN_PASSWORD_ENV]
    return code, out.splitlines()


def deploy(settings: Settings) -> tuple[int, list[str]]:
    return _command(settings, ["rules", "deploy", *_server_args(settings)])


def status(settings: Settings) -> tuple[int, list[str]]:
    return _command(settings, ["rules", "status", *_server_args(settings)])


def message(authserv_id: str) -> bytes:
    """:data:`REDIRECTED` as Acme's receiving server (``authserv_id``) delivers it to Alice:
    stamped with what its checks found for Jane's original."""
    return mail.original(replace(REDIRECTED, headers=(
        ("Authentication-Results", mail.authentication_results(authserv_id, JANE, "pass")),)))


def send(settings: Settings) -> str:
    """Deliver :data:`REDIRECTED` to Alice over LMTP, where her Sieve rule runs; returns its
    Message-ID. The stack's sendmail hands the redirect to the demo's forward mailbox, whose
    login carries the topic prefix (the stack's alias map)."""
    sieve.prepare(settings)  # the stack's sendmail as this version writes it (alias map)
    # One address, one login: the alias names the forward mailbox of the demo run last (a test's
    # demo beside the local one takes it over until the local demo runs again).
    sieve.add_alias(settings, FORWARD, seed.login_name(settings, "crm-forward"))
    with smtplib.LMTP("127.0.0.1", settings.lmtp_port) as lmtp:
        lmtp.sendmail(JANE, [seed.login_name(settings, "alice")],
                      message(settings.unwrap_authserv_id))
    return REDIRECTED.message_id


def outcome(settings: Settings, message_id: str) -> Outcome | None:
    row = progress.query_rows(settings, _OUTCOME,
                              (f"%redirect claimed by {ALICE}%", message_id))
    return Outcome(str(row[0][0]), str(row[0][1])) if row else None


def show(settings: Settings, children: Children, timeout_s: float) -> list[str]:
    lines = [f"  forwarding rules (mailroom rules deploy --forward-mailbox {FORWARD} --server "
             f"127.0.0.1:{settings.managesieve_port} --admin …):"]
    try:
        code, out = deploy(settings)
        lines += [f"    {line}" for line in out]
        if code:
            return lines
        message_id = send(settings)
        lines.append(f"    sent {REDIRECTED.subject!r} from {JANE} to {ALICE} over LMTP: her "
                     f"rule redirects it to {FORWARD}")
        found: list[Outcome] = []

        def arrived() -> bool:
            got = outcome(settings, message_id)
            found[:] = [got] if got else []
            return bool(found)

        started = time.monotonic()
        progress.wait_for("the redirected message's outcome", arrived, children, timeout_s)
        lines += _describe(found[0], time.monotonic() - started)
        code, out = status(settings)
        lines.append("  rules status:")
        lines += [f"    {line}" for line in out]
    except (MailroomError, OSError, smtplib.SMTPException) as exc:
        lines.append(f"    ! the forwarding rule part stopped: {exc}")
    return lines


def _describe(found: Outcome, seconds: float) -> list[str]:
    lines = [f"    the redirect reached the pipeline in {seconds:.1f} s and became "
             f"{found.where}"]
    if found.where.startswith("a dead letter"):
        lines += [
            f"      reason: {found.detail}",
            "      why: the stamp on it vouches for Jane's original, not for the hop from "
            "Alice's rule: the local",
            "      stack's sendmail hands redirects back to LMTP and checks nothing, so nothing "
            "can honestly vouch",
            "      for that hop. On a real server the redirect leaves with Alice as envelope "
            "sender",
            "      (sieve_redirect_envelope_from = recipient) and the forward mailbox's receiving "
            "server stamps",
            "      spf=pass for acme.example (docs/forwarding.md). The demo keeps the check on; "
            "mailroom dlq list",
            "      shows the dead letter (a forward mailbox whose server cannot stamp may opt "
            "out: mailroom mailbox",
            "      auth-results ADDRESS off).",
        ]
    return lines

"""Sieve on the local stack's Dovecot: delivery over LMTP, ManageSieve, redirects, a master user.

What a mail server needs for the forwarding rules that ``mailroom rules deploy`` writes:

- **LMTP** (``lmtp_port``): mail delivered there runs the recipient's active Sieve script
  (Pigeonhole's ``sieve`` plugin). It stands in for the MTA of a real server; tests deliver
  through it with :class:`smtplib.LMTP`.
- **ManageSieve** (``managesieve_port``, RFC 5804, STARTTLS offered): users, or the master
  user on their behalf, upload and activate scripts.
- **editheader** (RFC 5293), off in Pigeonhole by default: the rule marks what it forwards
  with a header added by this server, which the receiving side can therefore trust.
- **Redirects** go through ``sendmail_path``: :mod:`mailroom.console.stack.lmtp_sendmail`,
  copied here and run by the system Python (it runs as the mail user, who may not read the project's
  environment), hands them back to LMTP.
- **A master user** (``masters``), as the admin of a real Dovecot has one: it logs in *as* any
  user (SASL PLAIN with that user as authorization identity) without knowing their password.
  Users behind a forward mailbox have no credentials stored in Mailroom.
"""

from __future__ import annotations

import grp
import os
import secrets
from pathlib import Path

from mailroom.console.stack import lmtp_sendmail, process
from mailroom.console.stack.process import StackError
from mailroom.settings import Settings

MASTER_USER = "mailroom-admin"
#: The system Python runs the sendmail script: the mail user must be able to execute it.
SYSTEM_PYTHON = "/usr/bin/python3"


def masters_file(settings: Settings) -> Path:
    return settings.state_path / "dovecot" / "masters"


def sendmail_file(settings: Settings) -> Path:
    return settings.state_path / "dovecot" / "sendmail"


def aliases_dir(settings: Settings) -> Path:
    """The stack sendmail's alias map (see :func:`add_alias`)."""
    return settings.state_path / "dovecot" / lmtp_sendmail.ALIASES


def add_alias(settings: Settings, address: str, login: str) -> None:
    """Mail the stack's sendmail hands over for ``address`` (a redirect's target) goes to the
    Dovecot user ``login``, as an MTA's virtual alias map sends it."""
    name = address.strip().lower()
    if not name or "/" in name or name.startswith(".") or "@" not in name:
        raise ValueError(f"not an address for the alias map: {address!r}")
    folder = aliases_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o755)  # the sendmail runs as the mail user
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    tmp.write_text(login + "\n")
    os.chmod(tmp, 0o644)
    tmp.rename(folder / name)


def ports(settings: Settings) -> tuple[int, int]:
    return settings.managesieve_port, settings.lmtp_port


def render_config(settings: Settings) -> str:
    """The part of ``dovecot.conf`` that adds delivery, Sieve and ManageSieve."""
    return f"""
# --- Sieve: delivery over LMTP runs the user's active script; ManageSieve uploads scripts ---
postmaster_address = postmaster@localhost
# Redirects leave through the stack's own sendmail (LMTP cannot be the submission host: it
# answers EHLO with "unknown command").
sendmail_path = {sendmail_file(settings)} --lmtp-port {settings.lmtp_port}
protocol lmtp {{
  mail_plugins = $mail_plugins sieve
}}
plugin {{
  sieve = file:~/sieve;active=~/.dovecot.sieve
  # addheader/deleteheader: the forwarding rule marks what it forwards (off by default).
  sieve_extensions = +editheader
}}
# The admin's master user: logs in as any user (authorization identity) with its own password.
passdb {{
  driver = passwd-file
  master = yes
  mechanisms = plain login
  args = scheme=PLAIN {masters_file(settings)}
  # the user logged in as must exist too
  pass = yes
}}
service managesieve-login {{
  inet_listener sieve {{
    port = {settings.managesieve_port}
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    port = {settings.lmtp_port}
  }}
}}
"""


def master_user(settings: Settings) -> tuple[str, str]:
    """(name, password) of the stack's master user; made by :func:`prepare`."""
    line = masters_file(settings).read_text().splitlines()[0]
    name, _, rest = line.partition(":")
    return name, rest.split(":", 1)[0].removeprefix("{PLAIN}")


def prepare(settings: Settings) -> None:
    """Check the packages, write the master user (once) and the sendmail script."""
    for binary, package in (("managesieve", "dovecot-managesieved"), ("lmtp", "dovecot-lmtpd")):
        if not Path("/usr/lib/dovecot", binary).exists():
            raise StackError(f"{package} is not installed: run deploy/install-system-packages.sh")
    if not Path("/usr/lib/dovecot/modules/lib90_sieve_plugin.so").exists():
        raise StackError("dovecot-sieve is not installed: run deploy/install-system-packages.sh")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        raise StackError(f"{SYSTEM_PYTHON} is missing (python3): it runs the stack's sendmail")
    masters = masters_file(settings)
    if not masters.exists():
        tmp = masters.with_name(".masters.tmp")
        tmp.write_text(f"{MASTER_USER}:{{PLAIN}}{secrets.token_urlsafe(18)}::::::\n")
        if process.is_root():
            # Read by Dovecot's auth process, which runs as the dovecot user.
            os.chown(tmp, 0, grp.getgrnam("dovecot").gr_gid)
        os.chmod(tmp, 0o640)
        tmp.rename(masters)
    script = Path(__file__).with_name("lmtp_sendmail.py").read_text()
    text = f"#!{SYSTEM_PYTHON} -I\n{script}"
    target = sendmail_file(settings)
    if not (target.exists() and target.read_text() == text):
        tmp = target.with_name(".sendmail.tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o755)
        tmp.rename(target)


"""Dovecot 2.3 from Debian's packages: a private IMAP and POP3 server in ``<state>/dovecot``.

Its own configuration, run folder, state folder and log (``dovecot.log``: logins and, with
``auth_verbose``, every failed authentication — tests read it). Users come from a passwd-file
(:func:`add_user` adds one on the fly: Dovecot re-reads the file when it changes); every user's
mail is a Maildir under ``<state>/dovecot/mail/<user>`` owned by the ``vmail`` system user.
Plain ports offer STARTTLS/STLS; the implicit-TLS ports use :mod:`mailroom.console.stack.tls`.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from mailroom.console.stack import process, sieve, tls
from mailroom.console.stack.process import ServiceStatus, StackError
from mailroom.settings import Settings

NAME = "dovecot"
MAIL_USER = "vmail"
SEED_USERS = {"demo": "secret", "test": "secret"}
# Per user and client address; the default 10 is too few for tests that open many sessions.
MAX_USERIP_CONNECTIONS = 200
#: Login processes kept running (high-performance mode): about one per core.
LOGIN_PROCESSES = 2
#: Sessions an imap or pop3 process serves before it exits (Dovecot's default: 1).
SESSIONS_PER_PROCESS = 100


def home(settings: Settings) -> Path:
    return settings.state_path / "dovecot"


def config_file(settings: Settings) -> Path:
    return home(settings) / "dovecot.conf"


def oauth2_file(settings: Settings) -> Path:
    """The oauth2 passdb's settings (``dovecot-oauth2.conf.ext``)."""
    return home(settings) / "dovecot-oauth2.conf.ext"


def log_file(settings: Settings) -> Path:
    return home(settings) / "dovecot.log"


def users_dir(settings: Settings) -> Path:
    """One passwd-file per user: ``users.d/<name>`` (see :func:`add_user`)."""
    return home(settings) / "users.d"


def mail_root(settings: Settings) -> Path:
    return home(settings) / "mail"


def maildir(settings: Settings, user: str) -> Path:
    """A user's Maildir; messages written into its ``new/`` appear in INBOX (fast seeding)."""
    return mail_root(settings) / user / "Maildir"


def _run_dir(settings: Settings) -> Path:
    return home(settings) / "run"


def _marker(settings: Settings) -> str:
    return str(config_file(settings))


def _pid(settings: Settings) -> int | None:
    return process.read_pid(_run_dir(settings) / "master.pid")


def _ensure_mail_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(MAIL_USER)
    except KeyError:
        if not process.is_root():
            raise StackError(
                f"system user {MAIL_USER!r} is missing; as root: useradd -r {MAIL_USER}"
            ) from None
    process.run(["useradd", "-r", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin",
                 MAIL_USER], f"creating the {MAIL_USER} user")
    return pwd.getpwnam(MAIL_USER)


def render_config(settings: Settings, mail_uid: int, mail_gid: int) -> str:
    h = home(settings)
    cert, key = tls.cert_file(settings), tls.key_file(settings)
    return f"""# Written by `mailroom stack up`; edits are overwritten on the next start.
instance_name = mailroom-{settings.imap_port}
base_dir = {_run_dir(settings)}
state_dir = {h / 'lib'}
log_path = {log_file(settings)}
protocols = imap pop3 sieve lmtp
listen = 127.0.0.1
default_internal_user = dovecot
default_login_user = dovenull

# Loopback only: plain logins are fine here; real servers are reached over TLS.
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
# Failed logins are logged with the reason (tests check the log for login attempts).
auth_verbose = yes
# No penalty delay after a wrong password: tests of bad credentials need not wait.
auth_failure_delay = 0

ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2

# Passwords first, for the password mechanisms only; OAuth2 bearer tokens go to the oauth2
# passdb, which asks the introspection endpoint on 127.0.0.1:dovecot_oauth2_port.
passdb {{
  driver = passwd-file
  # 'none': LMTP's user lookups, which authenticate nobody, must find the users too
  mechanisms = plain login none
  args = scheme=PLAIN username_format=%u {users_dir(settings)}/%u
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {oauth2_file(settings)}
}}
userdb {{
  driver = static
  args = uid={mail_uid} gid={mail_gid} home={mail_root(settings)}/%u
}}
first_valid_uid = {mail_uid}
first_valid_gid = {mail_gid}
mail_location = maildir:~/Maildir

namespace inbox {{
  inbox = yes
  separator = /
  mailbox Archive {{
    special_use = \\Archive
    auto = subscribe
  }}
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
}}

protocol imap {{
  mail_max_userip_connections = {MAX_USERIP_CONNECTIONS}
}}
protocol pop3 {{
  mail_max_userip_connections = {MAX_USERIP_CONNECTIONS}
  pop3_uidl_format = %08Xu%08Xv
}}

# Login processes in Dovecot's high-performance mode: a few long-lived processes serve every
# connection, instead of a new process per connection (the default, high-security mode: a
# fork and exec per login, the larger part of each login's CPU on this server).
service imap-login {{
  inet_listener imap {{
    port = {settings.imap_port}
  }}
  inet_listener imaps {{
    port = {settings.imaps_port}
    ssl = yes
  }}
  service_count = 0
  process_min_avail = {LOGIN_PROCESSES}
  vsz_limit = 1G
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {settings.pop3_port}
  }}
  inet_listener pop3s {{
    port = {settings.pop3s_port}
    ssl = yes
  }}
  service_count = 0
  process_min_avail = {LOGIN_PROCESSES}
  vsz_limit = 1G
}}
# A mail process serves sessions one after another instead of one each (every user is the
# same system user, vmail, so a process may switch between them).
service imap {{
  service_count = {SESSIONS_PER_PROCESS}
}}
service pop3 {{
  service_count = {SESSIONS_PER_PROCESS}
}}
# Room for every process that may ask the auth process at once now that they are reused
# (Dovecot counts the services' process limits and warns at start below that).
service auth {{
  client_limit = 4096
  # One passwd file per user: at ~200 logins/s (ten thousand mailboxes polled) the auth
  # process outgrew the default 256 MB and failed logins in flight (AUTHENTICATIONFAILED).
  vsz_limit = 1G
}}
{sieve.render_config(settings)}"""


def render_oauth2(settings: Settings) -> str:
    """Dovecot 2.3's oauth2 passdb: tokeninfo (GET, token appended) for the user name, then
    RFC 7662 introspection (POST token=...) for ``active`` — forced, so a revoked token is
    refused even though tokeninfo named its user."""
    base = f"http://127.0.0.1:{settings.dovecot_oauth2_port}"
    return f"""# Written by `mailroom stack up`; edits are overwritten on the next start.
tokeninfo_url = {base}/tokeninfo?access_token=
introspection_mode = post
introspection_url = {base}/introspect
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
"""


def user_file(settings: Settings, name: str) -> Path:
    return users_dir(settings) / name


def add_user(settings: Settings, name: str, password: str) -> None:
    """Create (or change the password of) a mail user; usable at once, no reload needed.

    One passwd-file per user (the passdb path is ``users.d/%u``) because Dovecot re-checks a
    passwd-file at most once per second: a user appended to one shared file could be "unknown"
    for up to a second after this returns. A new user's file is read on its first login.
    """
    for value in (name, password):
        if not value or any(c in value for c in ":\n\r\0/") or value != value.strip():
            raise ValueError(f"invalid user name or password {value!r}")
    if name.startswith("."):
        raise ValueError(f"invalid user name {name!r}: it names a hidden file")
    folder = users_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = user_file(settings, name)
    line = f"{name}:{{PLAIN}}{password}::::::\n"
    old = path.stat() if path.exists() else None
    if old is not None and path.read_text() == line:
        return
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    tmp.write_text(line)
    if process.is_root():
        # Dovecot's auth process runs as the dovecot user and must read the file.
        os.chown(tmp, 0, grp.getgrnam("dovecot").gr_gid)
    os.chmod(tmp, 0o640)
    if old is not None:
        # A changed password: Dovecot reloads only when mtime (seconds) or size differ, and
        # looks at most once a second — so move the mtime on and let that second pass.
        stamp = max(int(time.time()), int(old.st_mtime) + 1)
        os.utime(tmp, (stamp, stamp))
    tmp.rename(path)  # atomic: Dovecot never reads a half-written file
    if old is not None:
        time.sleep(max(0.0, stamp + 1.05 - time.time()))


def remove_users(settings: Settings, names: Iterable[str]) -> int:
    """Remove mail users (their passwd-files; their mail stays), and let Dovecot's auth
    process close the files it held for them. Returns how many were removed.

    The auth process keeps every per-user passwd-file it has read open for its life (its cache
    of passwd-files is never pruned, removed files included): after a few tens of thousands of
    users had logged in once, it ran out of file descriptors and every login failed with a
    temporary error. A reload (SIGHUP) restarts it with nothing open; sessions in progress
    go on. Only after many removals: a login racing the restart may fail once.
    """
    removed = 0
    for name in names:
        path = user_file(settings, name)
        if path.exists():
            path.unlink()
            removed += 1
    pid = _pid(settings)
    if removed >= RELOAD_AFTER_REMOVED and process.alive(pid, _marker(settings)):
        assert pid is not None
        os.kill(pid, signal.SIGHUP)
    return removed


#: Removals after which :func:`remove_users` reloads Dovecot (auth's open passwd-files).
RELOAD_AFTER_REMOVED = 1000


def _import_legacy_users(settings: Settings) -> None:
    """Users of the first layout (one shared ``users`` file) move to ``users.d``."""
    legacy = home(settings) / "users"
    if not legacy.exists():
        return
    for line in legacy.read_text().splitlines():
        name, _, rest = line.partition(":")
        if name and not user_file(settings, name).exists():
            add_user(settings, name, rest.split(":", 1)[0].removeprefix("{PLAIN}"))
    legacy.unlink()


def _prepare(settings: Settings) -> bool:
    """Create folders, certificate, users and configuration; True when the config changed."""
    if shutil.which("dovecot") is None:
        raise StackError("dovecot not found: run deploy/install-system-packages.sh")
    mail = _ensure_mail_user()
    h = home(settings)
    for folder in (h, _run_dir(settings), h / "lib", mail_root(settings)):
        folder.mkdir(parents=True, exist_ok=True)
    process.chown(mail_root(settings), MAIL_USER)
    tls.ensure_certificate(settings)
    _import_legacy_users(settings)
    sieve.prepare(settings)
    for name, password in SEED_USERS.items():
        if not user_file(settings, name).exists():
            add_user(settings, name, password)
    changed = False
    for path, text in ((oauth2_file(settings), render_oauth2(settings)),
                       (config_file(settings), render_config(settings, mail.pw_uid,
                                                             mail.pw_gid))):
        if not (path.exists() and path.read_text() == text):
            path.write_text(text)
            changed = True
    return changed


def _ports(settings: Settings) -> tuple[int, ...]:
    return (settings.imap_port, settings.imaps_port, settings.pop3_port, settings.pop3s_port,
            *sieve.ports(settings))


def up(settings: Settings) -> str:
    pid = _pid(settings)
    if process.alive(pid, _marker(settings)):
        assert pid is not None
        if process.is_root() and _prepare(settings):
            # A newer configuration (another port, a new setting): SIGHUP makes the master
            # re-read it and restart its children, without dropping the instance.
            os.kill(pid, signal.SIGHUP)
            return f"already running (pid {pid}), configuration reloaded"
        return f"already running (pid {pid})"
    ports = _ports(settings)
    taken = [p for p in ports if process.listening(p)]
    if taken:
        raise StackError(
            f"port(s) {taken} taken by a process this stack did not start; stop it or set "
            "MAILROOM_IMAP_PORT and friends"
        )
    if not process.is_root():
        raise StackError("Dovecot's master process must start as root (it drops privileges)")
    _prepare(settings)
    # A master.pid left by a dead instance (reboot, kill -9) may name a live, unrelated process
    # by now, and Dovecot would then refuse to start; our check above already said it is stale.
    (_run_dir(settings) / "master.pid").unlink(missing_ok=True)
    # Dovecot forks into the background itself.
    process.run(["dovecot", "-c", str(config_file(settings))],
                f"starting Dovecot (log {log_file(settings)})",
                log=home(settings) / "dovecot.out", start_new_session=True)
    process.wait_for(lambda: all(process.listening(p) for p in ports), 30,
                     f"Dovecot on ports {ports}; see {log_file(settings)}")
    return f"started (pid {_pid(settings)})"


def down(settings: Settings) -> str:
    pid = _pid(settings)
    if not process.alive(pid, _marker(settings)):
        return "not running"
    assert pid is not None
    process.terminate(pid, _marker(settings), timeout=30)
    return f"stopped (pid {pid})"


def status(settings: Settings) -> ServiceStatus:
    ports = _ports(settings)
    pid = _pid(settings)
    if process.alive(pid, _marker(settings)):
        state = "running" if all(process.listening(p) for p in ports) else "starting"
        return ServiceStatus(NAME, ports, pid, state)
    if any(process.listening(p) for p in ports):
        return ServiceStatus(NAME, ports, None, "port taken by a process this stack did not start")
    return ServiceStatus(NAME, ports, None, "stopped")

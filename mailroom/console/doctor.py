"""``mailroom doctor``: check every component and the configuration, say what is wrong.

One line per check: ``OK``, ``WARN`` or ``FAIL``, what was found and — when it is not OK — how to
fix it. Each check is a small function returning :class:`Finding`; the command runs them in
order, and the exit status is non-zero when any check FAILed. A check never raises: whatever
goes wrong inside it is its answer.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from psycopg.conninfo import conninfo_to_dict

from mailroom.errors import MailroomError
from mailroom.settings import Settings

Level = Literal["OK", "WARN", "FAIL"]


@dataclass(frozen=True)
class Finding:
    level: Level
    component: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.level:<4} {self.component:<12} {self.detail}"
        return f"{text}\n     fix: {self.fix}" if self.fix else text


def check_config(settings: Settings) -> Iterator[Finding]:
    from mailroom import kafka

    try:
        kafka.check(settings)
    except Exception as exc:  # noqa: BLE001 - the answer of the check
        yield Finding("FAIL", "config", str(exc), "correct the MAILROOM_* setting named")
        return
    yield Finding("OK", "config", "settings are consistent")
    if not settings.secret_key:
        yield Finding(
            "WARN", "config",
            "no MAILROOM_SECRET_KEY: a key generated into the state folder encrypts credentials",
            "set MAILROOM_SECRET_KEY (and keep it safe) outside the local demo",
        )
    else:
        from ingest.credentials import HOW_TO_MAKE_ONE, key_problem

        if problem := key_problem(settings.secret_key):
            yield Finding("FAIL", "config", f"MAILROOM_SECRET_KEY is too weak: {problem}",
                          f"set a strong one ({HOW_TO_MAKE_ONE}) and rotate to it "
                          "(docs/ingest.md, 'Credentials')")


def _is_local(host: str) -> bool:
    """Loopback or a Unix socket (a libpq host that is a path): nothing crosses a network."""
    host = host.strip().strip("[]")
    if host in ("", "localhost") or host.startswith(("/", "@")):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_transport(settings: Settings) -> Iterator[Finding]:
    """Is what crosses the network to Kafka and PostgreSQL encrypted and the server verified?
    (Mail content, mailbox credentials in the database and the SASL password travel there.)"""
    protocol = settings.kafka_security_protocol.upper()
    remote = [s for s in settings.bootstrap_servers if not _is_local(s.rpartition(":")[0])]
    if protocol == "SASL_PLAINTEXT":
        yield Finding("WARN", "kafka-tls",
                      "kafka_security_protocol SASL_PLAINTEXT: the SASL login and every message "
                      "cross the network unencrypted",
                      "use SASL_SSL (with kafka_ssl_cafile if the brokers' CA is private)")
    elif protocol == "PLAINTEXT" and remote:
        yield Finding("WARN", "kafka-tls",
                      f"PLAINTEXT to {', '.join(remote)}: mail crosses the network unencrypted",
                      "use SSL or SASL_SSL (MAILROOM_KAFKA_SECURITY_PROTOCOL)")
    if protocol.startswith("SASL") and settings.kafka_sasl_mechanism.upper() == "PLAIN":
        yield Finding("WARN", "kafka-tls",
                      "kafka_sasl_mechanism PLAIN hands the password itself to the broker",
                      "use SCRAM-SHA-512 (the password is never sent)")
    try:
        params = conninfo_to_dict(settings.dsn)
    except Exception as exc:  # noqa: BLE001 - the database check reports it in detail
        yield Finding("WARN", "postgres-tls", f"cannot read the connection string: {exc}")
        return
    hosts = str(params.get("host") or params.get("hostaddr") or "").split(",")
    remote_db = [h for h in hosts if not _is_local(h)]
    sslmode = str(params.get("sslmode") or "prefer")
    if remote_db and sslmode != "verify-full":
        yield Finding("WARN", "postgres-tls",
                      f"sslmode={sslmode} to {', '.join(remote_db)}: the server's certificate "
                      "and name are not verified (or TLS is not even required), so a machine "
                      "in the path can read or change what Mailroom stores",
                      "add sslmode=verify-full (and sslrootcert=FILE for a private CA) to "
                      "MAILROOM_DATABASE_URL")


def check_kafka(settings: Settings) -> Iterator[Finding]:
    from mailroom import kafka, topics

    servers = ",".join(settings.bootstrap_servers)
    # The admin client retries an unreachable bootstrap list for its whole timeout; a plain
    # TCP connect answers in a moment and names the address.
    if not any(_tcp_open(server) for server in settings.bootstrap_servers):
        yield Finding("FAIL", "kafka", f"no broker answers at {servers}",
                      "start the stack (`mailroom stack up`) or set MAILROOM_KAFKA_BOOTSTRAP")
        return
    try:
        admin = kafka.make_admin(settings)
    except Exception as exc:  # noqa: BLE001
        yield Finding("FAIL", "kafka", f"cannot reach {servers}: {exc}",
                      "start the stack (`mailroom stack up`) or set MAILROOM_KAFKA_BOOTSTRAP")
        return
    try:
        version = ".".join(str(p) for p in admin._client.check_version())  # noqa: SLF001
        brokers = admin.describe_cluster().get("brokers", [])
        yield Finding("OK", "kafka", f"{servers} reachable, API version {version}, "
                      f"{len(brokers)} broker(s)")
        specs = topics.topic_specs(settings)
        yield _durability(settings, len(brokers),
                          topics.read_state(admin, [s.name for s in specs]))
        reports = topics.ensure_topics(admin, specs, create=False, fix=False)
        bad = [r for r in reports if r.status != "ok"]
        if not bad:
            yield Finding("OK", "topics", f"{len(reports)} topics present with expected settings")
        for report in bad:
            detail = "; ".join(str(d) for d in report.remaining) or "does not exist"
            yield Finding("FAIL", "topics", f"{report.spec.name}: {detail}",
                          "run `mailroom topics create`")
    except Exception as exc:  # noqa: BLE001
        yield Finding("FAIL", "kafka", f"{servers}: {exc}", "see the broker's log")
    finally:
        admin.close()


def check_groups(settings: Settings) -> Iterator[Finding]:
    """A stage's group member left without partitions while the group has one for it; route
    processes still running while route decides inside unwrap."""
    from ingest.assignment import group_id as ingest_group
    from mailroom import kafka
    from mailroom.console.ops.groups import running_stages, stage_group
    from mailroom.groupwatch import shares, starved

    if not any(_tcp_open(server) for server in settings.bootstrap_servers):
        return  # check_kafka says so
    groups = {ingest_group(settings): [settings.topic("mailboxes")]}
    groups.update({stage_group(settings, stage): [settings.topic(t) for t in topics]
                   for stage, topics in running_stages(settings).items()})
    admin = kafka.make_admin(settings)
    try:
        existing = set(admin.list_topics())
        for group, topics in groups.items():
            if not set(topics) <= existing:
                continue  # check_kafka names missing topics
            for member in starved(admin, group, topics):
                yield Finding("WARN", "groups", f"{group}: member {member.client_id} "
                              f"({member.member_id}) holds no partitions although the group "
                              "has one for each member",
                              "it joins again by itself after kafka_unassigned_rejoin_s; "
                              "else restart that process")
        if settings.route_in_unwrap:
            yield from _routers_left(settings, shares(admin, stage_group(settings, "route")))
    finally:
        admin.close()


def _routers_left(settings: Settings, members: list[Any]) -> Iterator[Finding]:
    """Route processes started before the switch to route_in_unwrap: they route every Email
    unwrap writes a second time (persist keeps one plan of each; the work and trace are twice)."""
    if members:
        clients = ", ".join(sorted({m.client_id for m in members}))
        yield Finding("WARN", "groups",
                      f"{len(members)} route process(es) still running ({clients}) although "
                      "route decides inside unwrap's processes (route_in_unwrap): each email "
                      "is routed twice",
                      "stop them: unwrap writes the plans itself (docs/deploy.md, "
                      "'Route inside unwrap')")


def _durability(settings: Settings, brokers: int, states: dict[str, Any]) -> Finding:
    """Can a broker be lost without losing a message ingest was told is safe? Three copies,
    acknowledged (acks=all) once two have it: the settings, the live brokers and the topics as
    they are on the cluster (``states``: the pipeline's topics that exist)."""
    from mailroom import topics

    rf = settings.topic_replication_factor
    if rf < 3 or brokers < 3:
        return Finding(
            "WARN", "durability",
            f"replication factor {rf} on {brokers} broker(s) is not durable: fine for the "
            "demo, not for deleting mail from servers",
            "run 3 brokers and set MAILROOM_TOPIC_REPLICATION_FACTOR=3 before enabling "
            "move/delete on mailboxes",
        )
    weak = sorted(
        name for name, state in states.items()
        if state.replication_factor < 3
        or int(state.configs.get("min.insync.replicas") or 1) < topics.min_insync_replicas(3))
    if weak:
        return Finding(
            "WARN", "durability",
            f"{len(weak)} topic(s) keep fewer than 3 copies or acknowledge a write with fewer "
            f"than 2: {', '.join(weak)}",
            "`mailroom topics create` sets min.insync.replicas; more replicas for an existing "
            "topic need a partition reassignment",
        )
    return Finding(
        "OK", "durability",
        f"replication factor {rf} on {brokers} brokers, min.insync.replicas "
        f"{topics.min_insync_replicas(rf)}: a broker can be lost without losing or refusing a "
        "write",
    )


def _tcp_open(server: str, timeout: float = 2.0) -> bool:
    host, _, port = server.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def check_database(settings: Settings) -> Iterator[Finding]:
    from mailroom.db import connect
    from mailroom.db.migrate import pending_migrations

    try:
        conn = connect(settings)
    except Exception as exc:  # noqa: BLE001
        yield Finding("FAIL", "postgresql", str(exc),
                      "start the stack (`mailroom stack up`) or set MAILROOM_DATABASE_URL")
        return
    with conn:
        version = conn.execute("show server_version").fetchone()[0]
        yield Finding("OK", "postgresql", f"reachable, server {version}")
        try:
            pending = pending_migrations(conn)
        except Exception as exc:  # noqa: BLE001
            yield Finding("FAIL", "migrations", str(exc), "restore the migration files")
            return
        if pending:
            yield Finding("FAIL", "migrations", f"{len(pending)} pending: {', '.join(pending)}",
                          "run `mailroom db migrate`")
            return  # the mailbox tables may not exist yet
        else:
            yield Finding("OK", "migrations", "current")
        yield _check_feed(conn)
        yield from _check_directory(settings, conn)
        yield from _check_mailboxes(settings, conn)
        yield from _check_forward_rules(conn)


#: The change feed is behind when its oldest unpublished change is older than this.
FEED_BEHIND_S = 60.0


def _check_feed(conn: Any) -> Finding:
    from persist import outbox

    try:
        b = outbox.backlog(conn)
    except Exception as exc:  # noqa: BLE001
        return Finding("FAIL", "feed", f"cannot read the outbox: {exc}",
                       "run `mailroom db migrate`")
    relay = "a relay is running" if b.relay_running else "no relay is running"
    figures = f"{b.unpublished} change(s) to publish, oldest {b.oldest_age_s:.0f} s; {relay}"
    if b.unpublished and not b.relay_running:
        return Finding("WARN", "feed", figures,
                       "start `mailroom run feed` (the records topic is behind the database)")
    if b.oldest_age_s > FEED_BEHIND_S:
        return Finding("WARN", "feed", f"behind: {figures}",
                       "see the feed relay's log (broker reachable? the records topic created?)")
    return Finding("OK", "feed", figures)


def _check_directory(settings: Settings, conn: Any) -> Iterator[Finding]:
    """Unwrap and route know the mailboxes from their topic only: one saved while the broker
    was away, or changed without being published, is acted on as the topic has it."""
    from ingest import announce
    from mailroom.mailboxes import MailboxDirectory

    directory = MailboxDirectory(settings)
    try:
        published = directory.sync()
    except MailroomError as exc:
        yield Finding("WARN", "directory", f"cannot read the mailboxes topic: {exc}",
                      "start Kafka, then `mailroom topics create`")
        return
    finally:
        directory.close()
    drifted = announce.drift(conn, published)
    if not drifted:
        yield Finding("OK", "directory", f"the mailboxes topic agrees with the database "
                                         f"({len(published)} mailbox(es))")
        return
    shown = "; ".join(drifted[:5]) + (f"; and {len(drifted) - 5} more" if len(drifted) > 5
                                      else "")
    yield Finding("WARN", "directory",
                  f"{len(drifted)} mailbox(es) differ between the database and the mailboxes "
                  f"topic, which unwrap and route read: {shown}",
                  "run `mailroom mailbox publish` (Kafka must be reachable)")


def _check_mailboxes(settings: Settings, conn: object) -> Iterator[Finding]:
    from ingest import probe, store

    try:
        boxes = store.mailboxes(conn)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001
        yield Finding("FAIL", "mailboxes", f"cannot read mailboxes: {exc}",
                      "run `mailroom db migrate`")
        return
    if not boxes:
        yield Finding("WARN", "mailboxes", "no mailbox configured yet",
                      "add one with `mailroom profile add` and `mailroom mailbox add`")
        return
    for box in boxes:
        name = f"mailbox {box.address}"
        if not box.enabled:
            yield Finding("WARN", "mailbox", f"{box.address} is disabled: {box.status_detail}",
                          f"fix the cause, then `mailroom mailbox enable {box.address}`")
            continue
        if (waiting := box.approval_gap()) is not None:
            yield Finding("WARN", "approval", waiting,
                          f"`mailroom mailbox approve {box.address}` once its address is "
                          "confirmed (the dashboard's Mailboxes page has the button too)")
            continue
        yield from _check_forward_trust(settings, box)
        profile = store.profile(conn, box.profile_id)  # type: ignore[arg-type]
        # A mailbox via a forward mailbox is answered without a login (probe.test).
        result = probe.test(settings, profile, box,
                            store.forward_address(conn, box))  # type: ignore[arg-type]
        if result.ok:
            yield Finding("OK", "mailbox", f"{box.address}: {result.detail}")
        else:
            yield Finding("FAIL", "mailbox", f"{name}: {result.detail}",
                          f"check the profile and credentials (`mailroom mailbox show "
                          f"{box.address}`)")


def _check_forward_rules(conn: Any) -> Iterator[Finding]:
    """A user whose forwards stopped while the others' go on has a broken rule."""
    from mailroom.console.ops import rule_status

    try:
        found = rule_status.silent_everywhere(conn)
    except Exception as exc:  # noqa: BLE001
        yield Finding("WARN", "rules", f"cannot read the forwarded mail's arrivals: {exc}")
        return
    for forward, silence in found:
        yield Finding("WARN", "rules", f"forward mailbox {forward}: {silence.describe()}",
                      f"the user's forwarding rule is likely broken: `mailroom rules status "
                      f"--forward-mailbox {forward}`, then `mailroom rules deploy`")


def _check_forward_trust(settings: Settings, box: Any) -> Iterator[Finding]:
    """A forward mailbox is only as safe as the check of its forwards (docs/security.md)."""
    gap = box.trust_gap(settings.unwrap_authserv_id)
    if gap is not None:
        yield Finding("FAIL", "trust", f"{gap}; ingest refuses to poll it",
                      "set MAILROOM_UNWRAP_AUTHSERV_ID to the authserv-id your receiving server "
                      "writes into Authentication-Results")
    elif box.owner_kind == "forward" and not box.check_auth_results:
        yield Finding("WARN", "trust",
                      f"forward mailbox {box.address}: Authentication-Results check off; anyone "
                      "who knows a forwarder's address can put mail into the CRM as theirs",
                      f"let its receiving server stamp results, set MAILROOM_UNWRAP_AUTHSERV_ID "
                      f"and run `mailroom mailbox auth-results {box.address} on`")


CHECKS: tuple[Callable[[Settings], Iterator[Finding]], ...] = (
    check_config,
    check_transport,
    check_kafka,
    check_groups,
    check_database,
)


def run_checks(settings: Settings) -> list[Finding]:
    findings: list[Finding] = []
    for check in CHECKS:
        try:
            findings.extend(check(settings))
        except Exception as exc:  # noqa: BLE001 - a broken check is a finding, not a crash
            findings.append(Finding("FAIL", check.__name__.removeprefix("check_"), repr(exc)))
    return findings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("doctor", help="check every component and the configuration")
    parser.set_defaults(func=doctor)


def doctor(settings: Settings, args: argparse.Namespace) -> int:
    from mailroom.redact import Redactor

    redact = Redactor.from_settings(settings)  # an error may echo a connection string
    findings = run_checks(settings)
    for finding in findings:
        print(redact(finding.line()))
    failed = sum(f.level == "FAIL" for f in findings)
    print(f"{len(findings)} checks: {failed} failed, "
          f"{sum(f.level == 'WARN' for f in findings)} warnings")
    return 1 if failed else 0

"""Several hosts of one deployment, simulated on one machine, and one of them lost.

A *host* here is what a machine of a real deployment holds: the four stage processes, started
with the host's own environment — its own state folder, its own ports for ``/metrics``,
``/healthz`` and ``/readyz``, its own log folder — and nothing shared with the other hosts but
what hosts share in production: the Kafka cluster, PostgreSQL, the mail server and the settings
every host is given alike (the secret key that decrypts mailbox credentials among them, since no
host can read another's generated one). The hosts share the machine's network namespace: the
brokers listen and advertise on 127.0.0.1 only, so a host in a namespace of its own would need
a relay to each broker, PostgreSQL and Dovecot port — and its group members would then differ
only by their address.

:func:`run` starts two hosts, waits until every stage's consumer group has members on both and
each member holds partitions, SIGKILLs every process of the host whose ingest holds the forward
mailbox while mail is on its way, and waits until every group's partitions are held by the other
host's members alone; then more mail comes, the pipeline drains, and the chaos suite's exact
checks run. The group members of the stream stages all call themselves ``mailroom-<stage>``
(ingest's carry host name and pid): a group is the survivor's once the dead members were
evicted, because the survivor's processes are then the only live processes of the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import re
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chaoslib import checks, mail, seed
from chaoslib.drive import Progress, activities, wait_drained
from chaoslib.seed import World
from chaoslib.stages import STAGES, Stages
from ingest.assignment import group_id as ingest_group
from ingest.assignment import partition_of
from mailroom.console.ops.groups import Cluster, stage_group
from mailroom.console.stack import dovecot
from mailroom.db import connect
from mailroom.settings import Settings

HOSTS = ("host-a", "host-b")
TICK_S = 0.5
Partitions = frozenset[tuple[str, int]]


@dataclass
class Host:
    name: str
    settings: Settings  # the host's environment: its state folder and ports
    stages: Stages

    @property
    def ports(self) -> dict[str, int]:
        return self.stages.metrics_ports


def free_port(taken: set[int]) -> int:
    """A free port below the kernel's ephemeral range (32768 and up): a port the kernel hands
    out to any client socket (port 0) may be taken again before the stage binds it — seen on a
    busy machine."""
    rng = random.SystemRandom()
    while True:
        port = rng.randrange(20_000, 32_000)
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port


def make_hosts(settings: Settings, root: Path, names: tuple[str, ...] = HOSTS) -> list[Host]:
    hosts: list[Host] = []
    taken: set[int] = set()
    for name in names:
        state = root / name / "state"
        state.mkdir(parents=True, exist_ok=True)
        own = settings.replace(state_dir=str(state))
        ports = {stage: free_port(taken) for stage in STAGES}
        hosts.append(Host(name, own, Stages(own, root / name / "logs", metrics_ports=ports)))
    return hosts


# --- who holds what ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Holder:
    member_id: str
    client_id: str
    partitions: Partitions


def groups_of(settings: Settings) -> dict[str, str]:
    """Stage -> its consumer group (ingest's: the group sharing out the mailboxes)."""
    return {s: ingest_group(settings) if s == "ingest" else stage_group(settings, s)
            for s in STAGES}


def all_partitions(cluster: Cluster, settings: Settings, stage: str) -> Partitions:
    if stage == "ingest":
        topic = settings.topic("mailboxes")
        return frozenset((topic, p) for p in cluster.consumer.partitions_for_topic(topic) or ())
    return frozenset((tp.topic, tp.partition) for tp in cluster.partitions(stage))


def holders(cluster: Cluster, group: str) -> list[Holder]:
    described = cluster._at_coordinator(  # noqa: SLF001 - the same retry as members()
        lambda: cluster.admin.describe_groups([group])).get(group, {})
    out = []
    for m in described.get("members") or []:
        assigned = (m.get("member_assignment") or {}).get("assigned_partitions") or []
        out.append(Holder(str(m.get("member_id", "")), str(m.get("client_id", "")),
                          frozenset((a["topic"], int(p)) for a in assigned
                                    for p in a["partitions"])))
    return out


def ingest_pid(client_id: str) -> int | None:
    """The pid in ingest's client id (``ingest-<host name>-<pid>``)."""
    found = re.search(r"-(\d+)$", client_id)
    return int(found.group(1)) if found else None


def host_of_ingest(hosts: list[Host], client_id: str) -> Host | None:
    pid = ingest_pid(client_id)
    return next((h for h in hosts if pid is not None and h.stages.pid("ingest") == pid), None)


def spread(cluster: Cluster, settings: Settings, members: int) -> dict[str, list[Holder]] | None:
    """Every group's holders when each group has ``members`` members, each holding partitions,
    together all of them; None otherwise."""
    out = {}
    for stage, group in groups_of(settings).items():
        found = holders(cluster, group)
        held = frozenset().union(*(h.partitions for h in found)) if found else frozenset()
        if (len(found) != members or any(not h.partitions for h in found)
                or held != all_partitions(cluster, settings, stage)):
            return None
        out[stage] = found
    return out


# --- the run -----------------------------------------------------------------------------------
@dataclass
class HostLoss:
    mails: int
    victim: str = ""
    survivor: str = ""
    before: dict[str, list[Holder]] = field(default_factory=dict)
    after: dict[str, list[Holder]] = field(default_factory=dict)
    killed_at_s: float = 0.0
    stored_at_kill: int = 0
    moved_s: dict[str, float] = field(default_factory=dict)  # stage -> seconds after the kill
    drained: bool = False
    total_s: float = 0.0
    last_progress: str = ""
    checks: list[checks.Check] = field(default_factory=list)
    stop_codes: dict[str, int | None] = field(default_factory=dict)
    log_dir: str = ""

    @property
    def failed(self) -> list[checks.Check]:
        return [c for c in self.checks if not c.ok]


def _wait(what: str, ready: Callable[[], bool], hosts: list[Host], timeout_s: float,
          detail: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        for h in hosts:
            gone = h.stages.reap()
            assert not gone, f"a stage of {h.name} exited while waiting for {what}: {gone}"
        assert time.monotonic() < deadline, f"no {what} after {timeout_s:.0f} s; {detail()}"
        time.sleep(TICK_S)


def held_now(cluster: Cluster, settings: Settings) -> str:
    """Each group's members and how many partitions each holds (a failed wait's detail)."""
    return "; ".join(
        f"{stage}: " + (", ".join(f"{h.client_id} {len(h.partitions)}"
                                  for h in holders(cluster, group)) or "no members")
        for stage, group in groups_of(settings).items())


def run(base: Settings, *, mails: int, seed_value: int, log_dir: Path,
        timeout_s: float = 180.0, drain_timeout_s: float = 300.0, stall_timeout_s: float = 90.0,
        say: Callable[[str], None] = lambda _: None) -> HostLoss:
    """Two hosts run the pipeline on ``base``'s Kafka; the host whose ingest polls the forward
    mailbox is lost with every process while the first half of ``mails`` is on its way, the
    second half comes after. Removes the run's schema, topics and mail user at the end."""
    w = seed.world(base, mail.plan_mails(mails, seed_value))
    # Set alike on every host: the key that encrypts the forward mailbox's password.
    w = dataclasses.replace(w, settings=w.settings.replace(
        secret_key=secrets.token_urlsafe(48)))
    halves = (w.mails[:mails // 2], w.mails[mails // 2:])
    hosts = make_hosts(w.settings, log_dir)
    result = HostLoss(mails, log_dir=str(log_dir))
    say(f"hosts run {w.name}: {mails} forwards in two halves, hosts {', '.join(HOSTS)} "
        f"(logs in {log_dir})")
    try:
        seed.create(dataclasses.replace(w, mails=halves[0]))
        with Cluster(w.settings) as cluster:
            for h in hosts:
                h.stages.start_all()
            clock = hosts[0].stages
            say("  " + "; ".join(f"{h.name}: state {h.settings.state_dir}, ports "
                                 + ", ".join(f"{s} {p}" for s, p in h.ports.items())
                                 for h in hosts))
            _wait("members of both hosts in every group, each holding partitions",
                  lambda: spread(cluster, w.settings, len(hosts)) is not None, hosts, timeout_s,
                  lambda: held_now(cluster, w.settings))
            result.before = spread(cluster, w.settings, len(hosts)) or {}
            say(f"  +{clock.elapsed():.1f} s every group spread over both hosts: "
                + describe(result.before))
            # The first activity: mail has been through every stage and more is on its way.
            _wait("the first activity", lambda: bool(activities(w)), hosts, timeout_s)
            victim = _ingest_host(cluster, w, hosts)
            survivor = next(h for h in hosts if h is not victim)
            result.victim, result.survivor = victim.name, survivor.name
            result.stored_at_kill = activities(w) or 0
            for stage in STAGES:
                victim.stages.halt(stage)
            result.killed_at_s = clock.elapsed()
            say(f"  +{result.killed_at_s:.1f} s {victim.name} lost: its four process groups "
                f"SIGKILLed with {result.stored_at_kill} of {len(halves[0])} stored")
            groups = groups_of(w.settings)
            ingest_at = survivor.stages.pid("ingest")

            def moved() -> bool:
                for stage, group in groups.items():
                    if stage in result.moved_s:
                        continue
                    found = holders(cluster, group)
                    if (len(found) == 1 and found[0].partitions
                            == all_partitions(cluster, w.settings, stage)
                            and (stage != "ingest" or ingest_pid(found[0].client_id)
                                 == ingest_at)):
                        result.moved_s[stage] = clock.elapsed() - result.killed_at_s
                        result.after[stage] = found
                return len(result.moved_s) == len(groups)

            _wait(f"every partition held by {survivor.name}", moved, [survivor], timeout_s,
                  lambda: held_now(cluster, w.settings))
            say(f"  +{clock.elapsed():.1f} s every group held by {survivor.name} alone: "
                + describe(result.after) + "; moved after "
                + ", ".join(f"{s} {t:.1f} s" for s, t in result.moved_s.items()))
            seed.write_maildir(dovecot.maildir(w.base, w.login), halves[1])
            say(f"  +{clock.elapsed():.1f} s second half laid ({len(halves[1])} forwards)")
            result.drained, _, progress = wait_drained(
                w, survivor.stages, cluster, drain_timeout_s, say, stall_timeout_s)
            result.total_s = clock.elapsed()
            result.last_progress = progress.summary()
            result.checks.append(_drained(result, progress))
            result.checks += checks.run_all(w, survivor.stages, cluster)
            result.checks.append(dataclasses.replace(
                checks.stages_stayed_up(victim.stages),
                name=f"{victim.name}'s stages stayed up until it was lost"))
            say(f"  +{result.total_s:.1f} s {'drained' if result.drained else 'NOT drained'}: "
                f"{checks.topic_records(cluster, w.settings.topic('raw'))} raw records for "
                f"{mails} mails")
            for c in result.checks:
                say(f"  {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}")
            survivor.stages.settle()
    finally:
        for h in hosts:
            for stage, code in h.stages.stop().items():
                result.stop_codes[f"{h.name}/{stage}"] = code
        with contextlib.suppress(Exception):
            seed.remove(w)
    return result


def _ingest_host(cluster: Cluster, w: World, hosts: list[Host]) -> Host:
    """The host whose ingest holds the forward mailbox's partition of the mailboxes topic."""
    with connect(w.settings) as conn:
        mailbox_id = int(conn.execute("SELECT id FROM ingest_mailboxes WHERE address = %s",
                                      (mail.FORWARD_ADDRESS,)).fetchone()[0])
    wanted = (w.settings.topic("mailboxes"), partition_of(w.settings, mailbox_id))
    for h in holders(cluster, ingest_group(w.settings)):
        if wanted in h.partitions and (host := host_of_ingest(hosts, h.client_id)):
            return host
    raise AssertionError(f"no host's ingest holds {wanted}")


def _drained(result: HostLoss, progress: Progress) -> checks.Check:
    if result.drained:
        return checks.Check("drained", True, f"drained at +{result.total_s:.1f} s")
    return checks.Check("drained", False, progress.summary())


def describe(held: dict[str, list[Holder]]) -> str:
    return "; ".join(f"{stage} " + "+".join(str(len(h.partitions)) for h in found)
                     for stage, found in held.items())

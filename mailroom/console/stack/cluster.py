"""A local Kafka cluster of several brokers, beside the single-node broker of the stack.

The single broker (:mod:`.kafka`) is what ``make test``, the demo and everyone's tests use; it
is never touched here. The cluster is an additional one, for what a single broker cannot show:
replication factor 3 with ``min.insync.replicas=2``, and a broker killed under a running
pipeline. It runs from the same Maven Central jars (``<state>/kafka/libs``) in its own folder
``<state>/cluster/``: one folder per node (``node-1`` …), each a combined broker and controller
(``process.roles=broker,controller``) with its own ports, log dirs, log and pid file, and all of
them voters of one static controller quorum (``controller.quorum.voters``), so the cluster
keeps working, metadata included, with any one node down.

Ports follow the stack's broker port: node ``n`` listens for clients on ``kafka_port + 100 +
2(n-1)`` and for the quorum on the port after it (19192/19193, 19194/19195, 19196/19197 by
default). The number of nodes is fixed when the cluster is first formatted (the quorum's voters
are part of its storage); another number needs ``down(wipe=True)`` first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

from mailroom.console.stack import kafka, process
from mailroom.console.stack.process import ServiceStatus, StackError
from mailroom.settings import Settings

NAME = "cluster"
DEFAULT_BROKERS = 3
MAX_BROKERS = 5
#: The single broker's heap (768 MB): 384 MB ran out (OutOfMemoryError, the broker gone) once
#: test runs had left ~800 topics on the cluster, each partition three replicas to follow.
HEAP = "-Xmx768m"
PORT_OFFSET = 100
READY_TIMEOUT_S = 180.0
#: __consumer_offsets partitions (Kafka's default is 50): a test cluster has a few groups, and
#: 150 replicas to create and follow would cost each small JVM more than they bring.
OFFSETS_PARTITIONS = 12


@dataclass(frozen=True)
class Node:
    id: int
    port: int
    controller_port: int
    home: Path

    @property
    def name(self) -> str:
        return f"kafka-{self.id}"

    @property
    def properties(self) -> Path:
        return self.home / "server.properties"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def log(self) -> Path:
        return self.home / "kafka.log"

    @property
    def marker(self) -> str:
        # The properties path is on the broker's command line and unique to this node.
        return str(self.properties)


def home(settings: Settings) -> Path:
    return settings.state_path / "cluster"


def _brokers_file(settings: Settings) -> Path:
    return home(settings) / "brokers"


def formed(settings: Settings) -> int | None:
    """The number of brokers the cluster was formatted with; None before its first start."""
    try:
        return int(_brokers_file(settings).read_text().strip())
    except (OSError, ValueError):
        return None


def nodes(settings: Settings, brokers: int | None = None) -> list[Node]:
    """The cluster's nodes: ``brokers`` of them, or as many as it was formatted with."""
    n = brokers or formed(settings) or DEFAULT_BROKERS
    base = settings.kafka_port + PORT_OFFSET
    return [Node(i, base + 2 * (i - 1), base + 2 * (i - 1) + 1, home(settings) / f"node-{i}")
            for i in range(1, n + 1)]


def node(settings: Settings, node_id: int) -> Node:
    for candidate in nodes(settings):
        if candidate.id == node_id:
            return candidate
    raise StackError(f"the cluster has no node {node_id}")


def bootstrap(settings: Settings, brokers: int | None = None) -> str:
    """The bootstrap servers of the cluster, comma separated (``kafka_bootstrap``)."""
    return ",".join(f"127.0.0.1:{n.port}" for n in nodes(settings, brokers))


def replication_factor(brokers: int) -> int:
    """Three copies where there are three brokers; never more copies than brokers."""
    return min(3, brokers)


def client_settings(settings: Settings, brokers: int | None = None) -> Settings:
    """``settings`` pointed at the cluster: its bootstrap servers and the replication factor
    its size allows (with 3 brokers: 3, and so ``min.insync.replicas=2`` on every topic)."""
    n = len(nodes(settings, brokers))
    return settings.replace(kafka_bootstrap=bootstrap(settings, n),
                            topic_replication_factor=replication_factor(n))


def environment(settings: Settings) -> dict[str, str]:
    """The environment that points ``mailroom`` commands at the cluster."""
    s = client_settings(settings)
    return {"MAILROOM_KAFKA_BOOTSTRAP": s.kafka_bootstrap,
            "MAILROOM_TOPIC_REPLICATION_FACTOR": str(s.topic_replication_factor)}


def server_properties(settings: Settings, this: Node, all_nodes: list[Node]) -> str:
    from mailroom.topics import min_insync_replicas  # imported late: `stack status` stays fast

    rf = replication_factor(len(all_nodes))
    isr = min_insync_replicas(rf)
    voters = ",".join(f"{n.id}@127.0.0.1:{n.controller_port}" for n in all_nodes)
    return "\n".join([
        "# Written by `mailroom stack cluster up`; edits are overwritten on the next start.",
        "process.roles=broker,controller",
        f"node.id={this.id}",
        f"controller.quorum.voters={voters}",
        f"listeners=PLAINTEXT://127.0.0.1:{this.port},CONTROLLER://127.0.0.1:"
        f"{this.controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{this.port}",
        *kafka.LISTENER_NAMES,
        f"log.dirs={this.home / 'data'}",
        # Internal topics and any topic created without explicit settings get the same
        # durability as the pipeline's topics (mailroom.topics).
        f"default.replication.factor={rf}",
        f"min.insync.replicas={isr}",
        f"offsets.topic.replication.factor={rf}",
        f"offsets.topic.num.partitions={OFFSETS_PARTITIONS}",
        f"transaction.state.log.replication.factor={rf}",
        f"transaction.state.log.min.isr={isr}",
        f"share.coordinator.state.topic.replication.factor={rf}",
        f"share.coordinator.state.topic.min.isr={isr}",
        *kafka.common_properties(settings),
        "",
    ])


def _java(settings: Settings, this: Node, main: str, *args: str) -> list[str]:
    return kafka.java(kafka.libs(settings), this.home / "log4j2.properties", HEAP, main, *args)


def pid(settings: Settings, node_id: int) -> int | None:
    """The pid of a running node, None when it is not running."""
    this = node(settings, node_id)
    found = process.read_pid(this.pid_file)
    return found if process.alive(found, this.marker) else None


def _lock(settings: Settings):  # noqa: ANN202
    return process.locked(home(settings) / "cluster.lock")


def up(settings: Settings, brokers: int = DEFAULT_BROKERS) -> list[str]:
    """Start every node that is not running and wait until all of them serve; one line per
    node. Idempotent: a running cluster costs one metadata request."""
    if not 2 <= brokers <= MAX_BROKERS:
        raise StackError(f"a cluster has 2 to {MAX_BROKERS} brokers, not {brokers}")
    with _lock(settings):
        was = formed(settings)
        if was is not None and was != brokers:
            raise StackError(
                f"the cluster in {home(settings)} was formed with {was} brokers; stop and "
                f"delete it first (`mailroom stack cluster down --wipe`) for {brokers}")
        all_nodes = nodes(settings, brokers)
        lines: dict[int, str] = {}
        started: dict[int, int] = {}
        for this in all_nodes:
            running = process.read_pid(this.pid_file)
            if process.alive(running, this.marker):
                lines[this.id] = f"already running (pid {running})"
                continue
            if process.listening(this.port) or process.listening(this.controller_port):
                raise StackError(
                    f"port {this.port} or {this.controller_port} is taken by a process this "
                    "stack did not start; stop it or move the cluster with MAILROOM_KAFKA_PORT")
            _prepare(settings, this, all_nodes)
        # Every node is started before any is waited for: one voter alone cannot elect a leader.
        for this in all_nodes:
            if this.id in lines:
                continue
            started[this.id] = process.spawn(_java(settings, this, "kafka.Kafka",
                                                   str(this.properties)),
                                             this.home / "kafka.out", cwd=this.home,
                                             env=dict(os.environ))
            this.pid_file.write_text(f"{started[this.id]}\n")
            lines[this.id] = f"started (pid {started[this.id]})"
        _brokers_file(settings).write_text(f"{brokers}\n")
        _wait_serving(settings, all_nodes, started)
    return [f"{n.name:9} {lines[n.id]}" for n in all_nodes]


def _prepare(settings: Settings, this: Node, all_nodes: list[Node]) -> None:
    """Configuration written from the settings on every start; storage formatted once."""
    kafka.resolve_jars(settings)
    this.home.mkdir(parents=True, exist_ok=True)
    this.properties.write_text(server_properties(settings, this, all_nodes))
    (this.home / "log4j2.properties").write_text(kafka.log4j_properties(this.log))
    if (this.home / "data" / "meta.properties").exists():
        return
    # One cluster id for every node: they refuse to form a quorum otherwise.
    cid = kafka.cluster_id(home(settings) / "cluster.id")
    process.run(
        _java(settings, this, "kafka.tools.StorageTool", "format", "--ignore-formatted",
              "-t", cid, "-c", str(this.properties)),
        f"formatting the storage of cluster node {this.id}",
    )


def _wait_serving(settings: Settings, all_nodes: list[Node], started: dict[int, int]) -> None:
    ports = [n.port for n in all_nodes]

    def ready() -> bool:
        for this in all_nodes:
            if this.id in started and not process.alive(started[this.id], this.marker):
                raise StackError(
                    f"cluster node {this.id} exited during start-up; see {this.log}:\n"
                    + process.tail(this.home / "kafka.out") + "\n" + process.tail(this.log))
        # Each node started now must answer on its own port: for a few seconds after a node
        # died the others still list it (until the controller fences it), so a count of
        # registered brokers alone would call a node ready that is still starting.
        return all(kafka.brokers_ready([n.port]) == len(all_nodes)
                   for n in all_nodes if n.id in started) \
            and kafka.brokers_ready(ports) == len(all_nodes)

    process.wait_for(ready, READY_TIMEOUT_S,
                     f"{len(all_nodes)} brokers at {bootstrap(settings, len(all_nodes))}", 1.0)


def kill(settings: Settings, node_id: int) -> int:
    """SIGKILL one node, as a crash would end it (failure tests); returns its pid. ``up``
    starts it again."""
    this = node(settings, node_id)
    victim = pid(settings, node_id)
    if victim is None:
        raise StackError(f"cluster node {node_id} is not running")
    os.kill(victim, signal.SIGKILL)
    # A JVM's main thread is a zombie while its other threads still exit and hold the
    # sockets: gone means no listener left either.
    process.wait_for(lambda: not process.alive(victim, this.marker)
                     and not process.listening(this.port)
                     and not process.listening(this.controller_port), 30,
                     f"cluster node {node_id} (pid {victim}) to die", 0.1)
    return victim


def down(settings: Settings, wipe: bool = False) -> list[str]:
    """Stop every node (controlled shutdown, SIGKILL after a minute); ``wipe`` also deletes
    the cluster's folder, data included."""
    with _lock(settings):
        all_nodes = nodes(settings) if formed(settings) else []
        running = {n.id: pid(settings, n.id) for n in all_nodes}
        # All at once: stopped one by one, the last nodes would wait for a quorum already gone.
        for this in all_nodes:
            if running[this.id] is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(running[this.id], signal.SIGTERM)  # type: ignore[arg-type]
        lines = []
        for this in all_nodes:
            was = running[this.id]
            if was is None:
                lines.append(f"{this.name:9} not running")
            else:
                process.terminate(was, this.marker, timeout=60)
                lines.append(f"{this.name:9} stopped (pid {was})")
            this.pid_file.unlink(missing_ok=True)
        if wipe:
            shutil.rmtree(home(settings), ignore_errors=True)
            lines.append(f"{'cluster':9} deleted {home(settings)}")
    return lines or [f"{'cluster':9} not created"]


def status(settings: Settings) -> list[ServiceStatus]:
    """One status per node of a cluster that exists (none before the first ``up``)."""
    if formed(settings) is None:
        return []
    out = []
    for this in nodes(settings):
        ports = (this.port, this.controller_port)
        running = pid(settings, this.id)
        if running is not None:
            state = "running" if process.listening(this.port) else "starting"
        elif process.listening(this.port):
            state = "port taken by a process this stack did not start"
        else:
            state = "stopped"
        out.append(ServiceStatus(this.name, ports, running, state))
    return out

"""Apache Kafka 4.x, single-node KRaft (combined broker and controller), from Maven Central.

The jars are resolved once by ``mvn`` from ``deploy/kafka/pom.xml`` into ``<state>/kafka/libs``;
storage is formatted once with a cluster id kept in ``<state>/kafka/cluster.id``; the broker
runs as ``java -cp 'libs/*' kafka.Kafka server.properties`` with its output in
``<state>/kafka/kafka.log`` and its pid in ``<state>/kafka/kafka.pid``.
"""

from __future__ import annotations

import base64
import os
import shutil
import uuid
from pathlib import Path

from mailroom.console.stack import process
from mailroom.console.stack.process import ServiceStatus, StackError
from mailroom.settings import Settings
from mailroom.topics import live_brokers

NAME = "kafka"
REPO = Path(__file__).resolve().parents[3]
POM = REPO / "deploy" / "kafka" / "pom.xml"
HEAP = "-Xmx768m"
# Room for the record batch header and the protocol around a record of max_record_bytes.
RECORD_OVERHEAD_BYTES = 64 * 1024
READY_TIMEOUT_S = 120.0
#: The listener layout of every local node: clients on PLAINTEXT, the quorum on CONTROLLER.
LISTENER_NAMES = (
    "controller.listener.names=CONTROLLER",
    "inter.broker.listener.name=PLAINTEXT",
    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
)


def home(settings: Settings) -> Path:
    return settings.state_path / "kafka"


def libs(settings: Settings) -> Path:
    return home(settings) / "libs"


def _pid_file(settings: Settings) -> Path:
    return home(settings) / "kafka.pid"


def _marker(settings: Settings) -> str:
    # The properties path is on the broker's command line and unique to this state folder.
    return str(home(settings) / "server.properties")


def resolve_jars(settings: Settings) -> Path:
    """Copy the broker and tools jars from Maven into the state folder, once."""
    target = libs(settings)
    if target.is_dir() and any(target.glob("kafka_2.13-*.jar")):
        return target
    if shutil.which("mvn") is None:
        raise StackError("mvn not found: run deploy/install-system-packages.sh")
    tmp = target.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    process.run(
        ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
         f"-DoutputDirectory={tmp}"],
        "resolving Kafka jars with mvn",
    )
    tmp.rename(target)  # a half-copied folder never looks complete
    return target


def server_properties(settings: Settings) -> str:
    h = home(settings)
    c = settings.kafka_controller_port
    return "\n".join([
        "# Written by `mailroom stack up`; edits are overwritten on the next start.",
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{c}",
        f"listeners=PLAINTEXT://127.0.0.1:{settings.kafka_port},CONTROLLER://127.0.0.1:{c}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{settings.kafka_port}",
        *LISTENER_NAMES,
        f"log.dirs={h / 'data'}",
        # One node: every internal topic has one replica.
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        *common_properties(settings),
        "",
    ])


def common_properties(settings: Settings) -> list[str]:
    """What every local broker shares, the single node and the cluster's nodes alike."""
    return [
        # Topics are created explicitly (`mailroom topics create`) with chosen partition counts;
        # a typo in a topic name must fail, not create a one-partition topic.
        "auto.create.topics.enable=false",
        "num.partitions=1",
        # Tests: no initial rebalance delay, and short session timeouts are allowed.
        "group.initial.rebalance.delay.ms=0",
        "group.min.session.timeout.ms=1000",
        "group.consumer.min.session.timeout.ms=1000",
        "group.consumer.min.heartbeat.interval.ms=500",
        f"message.max.bytes={settings.max_record_bytes + RECORD_OVERHEAD_BYTES}",
        f"replica.fetch.max.bytes={settings.max_record_bytes + RECORD_OVERHEAD_BYTES}",
    ]


def log4j_config(settings: Settings) -> str:
    return log4j_properties(home(settings) / "kafka.log")


def log4j_properties(log: Path) -> str:
    """log4j2 settings that write a broker's log to ``log``, rolled."""
    return "\n".join([
        "status = warn",
        # Rolled at 50 MB, three kept: a long-lived dev stack must not fill the disk.
        "appender.file.type = RollingFile",
        "appender.file.name = FILE",
        f"appender.file.fileName = {log}",
        f"appender.file.filePattern = {log}.%i",
        "appender.file.layout.type = PatternLayout",
        "appender.file.layout.pattern = [%d] %p %m (%c)%n",
        "appender.file.policies.type = Policies",
        "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
        "appender.file.policies.size.size = 50MB",
        "appender.file.strategy.type = DefaultRolloverStrategy",
        "appender.file.strategy.max = 3",
        "rootLogger.level = INFO",
        "rootLogger.appenderRef.file.ref = FILE",
        # The request log and state-change logs are per request: far too verbose at INFO.
        "logger.request.name = kafka.request.logger",
        "logger.request.level = WARN",
        "logger.state.name = state.change.logger",
        "logger.state.level = WARN",
        "",
    ])


def _java(settings: Settings, main: str, *args: str) -> list[str]:
    return java(libs(settings), home(settings) / "log4j2.properties", HEAP, main, *args)


#: The JIT's first tier only (C1). The local stack's broker shares a small host with the stages
#: and lives for a demo, a test run or a bench: measured on two cores, C2 spent 9 s of CPU
#: compiling during a fresh broker's first 6,000-email run (11 s after the second) against the
#: request threads' 2–3 s, and was still compiling after a quarter of an hour; C1 alone compiled
#: for under 1 s, and the request threads spent the same CPU a request as with C2 — the broker's
#: work is copying bytes, not computing (docs/performance.md). A long-lived production broker is
#: not started here and keeps its own JVM options.
JIT = "-XX:TieredStopAtLevel=1"


def java(jars: Path, log4j: Path, heap: str, main: str, *args: str) -> list[str]:
    """The command line of a Kafka main class run from the jars in ``jars``."""
    return [
        "java", heap, "-XX:+UseG1GC", JIT, "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp", f"{jars}/*", main, *args,
    ]


def cluster_id(path: Path) -> str:
    """The cluster id kept in ``path``, made once."""
    if not path.exists():
        # Kafka's cluster id: a random UUID in unpadded URL-safe base64 (22 characters).
        path.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode())
    return path.read_text().strip()


def _format_storage(settings: Settings) -> None:
    if (home(settings) / "data" / "meta.properties").exists():
        return
    process.run(
        _java(settings, "kafka.tools.StorageTool", "format", "--ignore-formatted",
              "-t", cluster_id(home(settings) / "cluster.id"),
              "-c", str(home(settings) / "server.properties")),
        "formatting Kafka storage",
    )


def _ready(settings: Settings) -> bool:
    return brokers_ready([settings.kafka_port]) >= 1


def brokers_ready(ports: list[int]) -> int:
    """How many brokers the cluster behind ``ports`` has registered and unfenced; 0 while no
    port answers a metadata request (an open port alone is not a broker that serves)."""
    open_ports = [p for p in ports if process.port_open(p)]
    if not open_ports:
        return 0
    from kafka import KafkaAdminClient  # imported late: `stack status` stays fast
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=[f"127.0.0.1:{p}" for p in open_ports],
            request_timeout_ms=5000, client_id="mailroom-stack",
        )
    except (KafkaError, OSError):
        return 0
    try:
        admin.list_topics()
        return live_brokers(admin.describe_cluster())
    except (KafkaError, OSError):
        return 0
    finally:
        admin.close()


def up(settings: Settings) -> str:
    h = home(settings)
    pid = process.read_pid(_pid_file(settings))
    if process.alive(pid, _marker(settings)):
        return f"already running (pid {pid})"
    if process.listening(settings.kafka_port) or process.listening(settings.kafka_controller_port):
        raise StackError(
            f"port {settings.kafka_port} or {settings.kafka_controller_port} is taken by a "
            "process this stack did not start; stop it or set MAILROOM_KAFKA_PORT / "
            "MAILROOM_KAFKA_CONTROLLER_PORT"
        )
    h.mkdir(parents=True, exist_ok=True)
    resolve_jars(settings)
    (h / "server.properties").write_text(server_properties(settings))
    (h / "log4j2.properties").write_text(log4j_config(settings))
    _format_storage(settings)
    env = dict(os.environ)
    # The broker's own stdout only carries JVM messages (crashes, GC); log4j writes kafka.log.
    pid = process.spawn(
        _java(settings, "kafka.Kafka", str(h / "server.properties")),
        h / "kafka.out", cwd=h, env=env,
    )
    _pid_file(settings).write_text(f"{pid}\n")
    marker = _marker(settings)

    def ready() -> bool:
        if not process.alive(pid, marker):
            raise StackError(
                f"Kafka exited during start-up; see {h / 'kafka.log'}:\n"
                + process.tail(h / "kafka.out") + "\n" + process.tail(h / "kafka.log")
            )
        return _ready(settings)

    process.wait_for(ready, READY_TIMEOUT_S, f"Kafka on 127.0.0.1:{settings.kafka_port}", 1.0)
    return f"started (pid {pid})"


def down(settings: Settings) -> str:
    pid = process.read_pid(_pid_file(settings))
    if not process.alive(pid, _marker(settings)):
        _pid_file(settings).unlink(missing_ok=True)
        return "not running"
    assert pid is not None
    # A controlled shutdown takes a few seconds; SIGKILL after 60 would only cost log recovery.
    process.terminate(pid, _marker(settings), timeout=60)
    _pid_file(settings).unlink(missing_ok=True)
    return f"stopped (pid {pid})"


def status(settings: Settings) -> ServiceStatus:
    ports = (settings.kafka_port, settings.kafka_controller_port)
    pid = process.read_pid(_pid_file(settings))
    if process.alive(pid, _marker(settings)):
        state = "running" if process.listening(settings.kafka_port) else "starting"
        return ServiceStatus(NAME, ports, pid, state)
    if process.listening(settings.kafka_port):
        return ServiceStatus(NAME, ports, None, "port taken by a process this stack did not start")
    return ServiceStatus(NAME, ports, None, "stopped")

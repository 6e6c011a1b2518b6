"""The stack's generated configuration and pid handling: plain unit tests, no services."""

from __future__ import annotations

import os
import subprocess
import sys

from mailroom.console.stack import cluster, dovecot, kafka, process
from mailroom.settings import Settings


def test_kafka_properties_follow_the_settings(tmp_path) -> None:
    settings = Settings(state_dir=str(tmp_path), kafka_port=1111, kafka_controller_port=2222,
                        max_record_bytes=1000)
    props = dict(
        line.split("=", 1) for line in kafka.server_properties(settings).splitlines()
        if line and not line.startswith("#")
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:1111,CONTROLLER://127.0.0.1:2222"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:2222"
    assert int(props["message.max.bytes"]) > 1000
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["log.dirs"].startswith(str(tmp_path))


def test_the_local_brokers_run_with_the_first_jit_tier_only(tmp_path) -> None:
    # C2 compiling spent more of a fresh broker's CPU than its requests (docs/local-stack.md).
    settings = Settings(state_dir=str(tmp_path))
    single = kafka._java(settings, "kafka.Kafka", "server.properties")
    node = cluster.nodes(settings, 3)[0]
    in_cluster = cluster._java(settings, node, "kafka.Kafka", "server.properties")
    for line in (single, in_cluster):
        assert "-XX:TieredStopAtLevel=1" in line
        assert line.index("-XX:TieredStopAtLevel=1") < line.index("kafka.Kafka")
    # The JVM the stack runs accepts it as the broker's line gives it.
    flags = [a for a in single[1:single.index("-cp")] if a.startswith("-X")]
    done = subprocess.run(["java", *flags, "-version"], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_dovecot_config_listens_on_loopback_ports(tmp_path) -> None:
    settings = Settings(state_dir=str(tmp_path), imap_port=1143, imaps_port=1993,
                        pop3_port=1110, pop3s_port=1995)
    conf = dovecot.render_config(settings, 999, 999)
    assert "listen = 127.0.0.1" in conf
    for port in (1143, 1993, 1110, 1995):
        assert f"port = {port}" in conf
    assert f"home={tmp_path}/dovecot/mail/%u" in conf


def test_a_stale_pid_file_naming_another_process_is_not_ours(tmp_path) -> None:
    pid_file = tmp_path / "x.pid"
    pid_file.write_text(f"{os.getpid()}\n")  # alive, but not the service
    assert not process.alive(process.read_pid(pid_file), str(tmp_path / "server.properties"))
    assert not process.alive(None, "x")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert not process.alive(dead.pid, "")


def test_spawned_process_is_detached_and_found_by_its_marker(tmp_path) -> None:
    marker = str(tmp_path / "marker")
    pid = process.spawn([sys.executable, "-c", "import time; time.sleep(30)", marker],
                        tmp_path / "out.log", cwd=tmp_path)
    try:
        assert process.alive(pid, marker)
        assert os.getsid(pid) == pid  # its own session: no SIGHUP from our terminal
    finally:
        process.terminate(pid, marker, timeout=5)
    assert not process.alive(pid, marker)


def test_listening_sees_a_listener_and_nothing_else() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        assert not process.listening(port)
        sock.listen()
        assert process.listening(port)


def test_dovecot_auth_has_room_for_many_logins(tmp_path) -> None:
    # Ten thousand mailboxes polled is ~200 logins/s: the auth process outgrew Dovecot's
    # default 256 MB and failed logins in flight, and ingest disabled their mailboxes.
    conf = dovecot.render_config(Settings(state_dir=str(tmp_path)), 999, 999)
    auth = conf.split("service auth {", 1)[1].split("\n}", 1)[0]
    assert "vsz_limit = 1G" in auth

"""The Kubernetes manifests (deploy/kubernetes/), checked offline against what the code does.

Core objects are validated against the Kubernetes API schemas that ``kubernetes-validate``
ships (the oldest version docs/deploy.md supports and the newest). KEDA's objects are not in
those schemas, so their required fields are checked here. Then the cross-references: names,
groups, topics, ports and paths are computed by importing the code, so renaming a stage, a
setting, a topic or a probe path without updating the manifests fails here.
"""

from __future__ import annotations

import re
import socket
import tomllib
import urllib.error
import urllib.request
from typing import Any

import kubernetes_validate
import pytest
import yaml
from deploy_files import (
    DEPLOY,
    KUBERNETES,
    LIBPQ_LOGIN,
    REPO,
    all_documents,
    documents,
    manifest_files,
    of_kind,
    secret_setting_names,
    setting_names,
    settings_from,
)
from psycopg.conninfo import conninfo_to_dict

from ingest.metrics import IngestMetrics
from mailroom import kafka
from mailroom.commands.run import STAGES
from mailroom.console.doctor import check_transport
from mailroom.console.ops.groups import STREAM_STAGES
from mailroom.metrics import Health, StageMetrics, serve
from mailroom.settings import Settings
from mailroom.stage.execute import group_id
from mailroom.stats.app import STAGE as STATS

#: The oldest Kubernetes the manifests are written for (probe-level grace periods are GA in
#: 1.28; docs/deploy.md says so) and the newest whose schemas kubernetes-validate ships.
K8S_VERSIONS = ("1.28.0", kubernetes_validate.latest_version())
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}
NOT_API_OBJECTS = {"Kustomization"}
#: KEDA's name of each SASL mechanism Mailroom's clients speak (mailroom.kafka.SASL_MECHANISMS).
KEDA_SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}
#: Stages on the kernel's stream runner with worker processes (stage_isolation=process).
WORKER_POOL_STAGES = {"unwrap", "route"}
#: Stages that log in to mailboxes and so decrypt their credentials with MAILROOM_SECRET_KEY.
MAILBOX_LOGIN = {"ingest", "web"}


# --- loading --------------------------------------------------------------------------------


def configmap_env() -> dict[str, str]:
    data = of_kind("ConfigMap")["mailroom-settings"]["data"]
    return {k: str(v) for k, v in data.items()}


@pytest.fixture(scope="module")
def settings() -> Settings:
    return settings_from(configmap_env())


def deployments() -> dict[str, dict[str, Any]]:
    return of_kind("Deployment")


def stage_deployment(stage: str) -> dict[str, Any]:
    return deployments()[f"mailroom-{stage}"]


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    """(object name, pod spec) of every Deployment and Job."""
    out = [(name, d["spec"]["template"]["spec"]) for name, d in deployments().items()]
    out += [(name, j["spec"]["template"]["spec"]) for name, j in of_kind("Job").items()]
    return out


def containers() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(object name, pod spec, container) of every container."""
    return [(name, pod, c) for name, pod in pod_specs() for c in pod["containers"]]


def container_env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def literal_env(container: dict[str, Any]) -> dict[str, str]:
    """What the container's environment holds apart from secrets: the ConfigMap, then the
    container's own literal values."""
    out = configmap_env()
    out.update({n: str(e["value"]) for n, e in container_env(container).items() if "value" in e})
    return out


def secrets() -> dict[str, set[str]]:
    """Secret names of secrets.example.yaml and the keys each holds."""
    out: dict[str, set[str]] = {}
    for doc in documents(KUBERNETES / "secrets.example.yaml"):
        assert doc["kind"] == "Secret"
        out[doc["metadata"]["name"]] = set(doc.get("stringData", {})) | set(doc.get("data", {}))
    return out


def quantity(text: str | int) -> float:
    """A Kubernetes quantity as a number (cores, or bytes)."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(text))
    assert match, f"not a quantity: {text!r}"
    number, unit = match.groups()
    return float(number) * (units[unit] if unit else 1)


def scaled_objects() -> dict[str, dict[str, Any]]:
    return of_kind("ScaledObject")


def kafka_stages(settings: Settings) -> dict[str, tuple[str, list[str]]]:
    """Stage -> (consumer group, input topics), as the code computes them."""
    out = {
        stage: (group_id(settings, stage), [settings.topic(role) for role in roles])
        for stage, roles in STREAM_STAGES.items()
    }
    # The stats app's id is its consumer group, '<prefix>.stats' like the stages'
    # (mailroom/stats/app.py: build); it counts the unwrapped topic.
    out[STATS] = (group_id(settings, STATS), [settings.topic("unwrapped")])
    return out


# --- schemas and structure --------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_core_object_is_valid_kubernetes(version: str) -> None:
    checked = 0
    for path, doc in all_documents():
        if doc["kind"] in KEDA_KINDS | NOT_API_OBJECTS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.relative_to(DEPLOY)} {doc['kind']} "
                        f"{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
        checked += 1
    assert checked >= 20  # the files were found and their objects went through


def test_each_kustomization_lists_every_file_beside_it() -> None:
    for path in KUBERNETES.rglob("kustomization.yaml"):
        kustomization = yaml.safe_load(path.read_text())
        assert kustomization["kind"] == "Kustomization"
        listed = kustomization["resources"]
        for entry in listed:
            assert (path.parent / entry).exists(), f"{path}: {entry} does not exist"
        beside = {p.name for p in path.parent.glob("*.yaml")} - {"kustomization.yaml"}
        assert beside <= set(listed), f"{path}: not listed: {sorted(beside - set(listed))}"
        images = {i["name"] for i in kustomization.get("images", [])}
        for doc in (d for f in beside for d in documents(path.parent / f)):
            pod = doc.get("spec", {}).get("template", {}).get("spec")
            for c in (pod or {}).get("containers", []):
                assert c["image"] in images, f"{path}: no images entry for {c['image']}"


def test_keda_objects_have_their_required_fields() -> None:
    auths = of_kind("TriggerAuthentication")
    for name, auth in auths.items():
        assert auth["apiVersion"] == "keda.sh/v1alpha1"
        spec = auth["spec"]
        assert spec.get("secretTargetRef") or spec.get("env"), name
        for ref in spec.get("secretTargetRef", []):
            assert set(ref) == {"parameter", "name", "key"}, ref
            assert ref["key"] in secrets().get(ref["name"], set()), f"{name}: {ref} not a Secret"
        for ref in spec.get("env", []):
            assert {"parameter", "name"} <= set(ref) <= {"parameter", "name", "containerName"}
            assert ref["name"] in configmap_env(), f"{name}: {ref['name']} not in the ConfigMap"
    objects = scaled_objects()
    assert objects
    for name, so in objects.items():
        assert so["apiVersion"] == "keda.sh/v1alpha1"
        spec = so["spec"]
        assert spec["scaleTargetRef"]["name"] in deployments(), name
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"], name
        assert spec["triggers"], name
        for trigger in spec["triggers"]:
            assert isinstance(trigger["type"], str)
            metadata = trigger["metadata"]
            # KEDA's CRD takes a map of strings: an unquoted number or boolean is refused.
            assert all(isinstance(v, str) for v in metadata.values()), (name, metadata)
            if "authenticationRef" in trigger:
                assert trigger["authenticationRef"]["name"] in auths, name
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        for direction in ("scaleUp", "scaleDown"):
            for policy in behavior[direction]["policies"]:
                assert policy["type"] in {"Pods", "Percent"} and policy["value"] > 0


# --- settings ---------------------------------------------------------------------------------


def test_configmap_holds_only_settings_and_no_secret(settings: Settings) -> None:
    names = set(configmap_env())
    assert names <= setting_names(), f"not settings: {sorted(names - setting_names())}"
    assert not names & secret_setting_names(), "a secret in the ConfigMap"
    assert not names & LIBPQ_LOGIN
    dsn = conninfo_to_dict(settings.database_url)
    assert "password" not in dsn and "user" not in dsn  # the login comes from a Secret
    kafka.check(settings)  # a combination the clients accept, timeouts that keep membership
    findings = list(check_transport(settings))
    assert not findings, [f.message for f in findings]  # TLS verified to Kafka and PostgreSQL


def test_every_environment_name_is_a_setting_or_the_database_login() -> None:
    allowed = setting_names() | LIBPQ_LOGIN
    for name, _, container in containers():
        for env, entry in container_env(container).items():
            assert env in allowed, f"{name}: {env} is not a setting"
            if env in secret_setting_names() | {"PGPASSWORD"}:
                assert "secretKeyRef" in entry.get("valueFrom", {}), f"{name}: {env} not secret"
        for source in container.get("envFrom", []):
            assert source == {"configMapRef": {"name": "mailroom-settings"}}, name


def test_every_secret_reference_names_a_secret_and_key_the_example_defines() -> None:
    known = secrets()
    for name, pod, container in containers():
        for env, entry in container_env(container).items():
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in known.get(ref["name"], set()), f"{name}: {env} -> {ref}"
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] in known, f"{name}: {volume}"


def test_secrets_go_only_where_they_are_needed() -> None:
    for stage in [*STAGES, "web"]:
        env = container_env(stage_deployment(stage)["spec"]["template"]["spec"]["containers"][0])
        if stage in MAILBOX_LOGIN:
            # Set, never generated per pod: every process must decrypt with the same key.
            ref = env["MAILROOM_SECRET_KEY"]["valueFrom"]["secretKeyRef"]
            assert not ref.get("optional"), stage
        else:
            assert "MAILROOM_SECRET_KEY" not in env, f"{stage} does not log in to mailboxes"
        if stage == "web":  # sessions live in PostgreSQL: no shared login secret any more
            assert "MAILROOM_WEB_SECRET" not in env
        if stage == STATS:  # faust's tables live in Kafka: no database at all
            assert not LIBPQ_LOGIN & set(env)
        else:
            for var, key in (("PGUSER", "username"), ("PGPASSWORD", "password")):
                ref = env[var]["valueFrom"]["secretKeyRef"]
                assert ref == {"name": f"mailroom-db-{stage}", "key": key}, (stage, ref)


def test_files_the_settings_name_are_mounted(settings: Settings) -> None:
    kafka_ca = settings.kafka_ssl_cafile
    pg_ca = conninfo_to_dict(settings.database_url)["sslrootcert"]
    known = secrets()
    for name, pod, container in containers():
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container.get("volumeMounts", [])}
        env = container_env(container)
        needs = []
        if "PGUSER" in env:
            needs.append(pg_ca)
        if "MAILROOM_KAFKA_SASL_PASSWORD" in env:
            needs.append(kafka_ca)
        for path in needs:
            folder, _, file = path.rpartition("/")
            assert folder in mounts, f"{name}: nothing mounted at {folder} for {path}"
            secret = mounts[folder]["secret"]["secretName"]
            assert file in known[secret], f"{name}: Secret {secret} has no {file}"


# --- stages -----------------------------------------------------------------------------------


def test_every_stage_has_a_deployment_a_budget_and_a_scaler() -> None:
    budgets = of_kind("PodDisruptionBudget")
    for stage in STAGES:
        deployment = stage_deployment(stage)
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels.items()
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["command"] + container["args"] == ["mailroom", "run", stage]
        # KEDA owns the count: a replicas field would reset it on every apply.
        assert "replicas" not in deployment["spec"], stage
        # Never more members than before during a rollout (a surplus member gets no partitions
        # and would never turn ready).
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
        pdb = budgets[f"mailroom-{stage}"]
        assert pdb["spec"]["selector"]["matchLabels"] == selector
        assert pdb["spec"]["maxUnavailable"] == 1
        assert scaled_objects()[f"mailroom-{stage}"]["spec"]["scaleTargetRef"]["name"] == \
            f"mailroom-{stage}"
    web = deployments()["mailroom-web"]
    assert web["spec"]["template"]["spec"]["containers"][0]["args"][0] == "web"
    assert budgets["mailroom-web"]["spec"]["selector"]["matchLabels"] == \
        web["spec"]["selector"]["matchLabels"]
    assert of_kind("Service")["mailroom-web"]["spec"]["selector"] == \
        web["spec"]["selector"]["matchLabels"]


def test_scalers_read_the_lag_of_the_groups_and_topics_the_code_uses(settings: Settings) -> None:
    consumer = kafka.consumer_config(settings, "any")
    for stage, (group, topics) in kafka_stages(settings).items():
        triggers = scaled_objects()[f"mailroom-{stage}"]["spec"]["triggers"]
        assert {t["type"] for t in triggers} == {"kafka"}, stage
        assert sorted(t["metadata"]["topic"] for t in triggers) == sorted(topics), stage
        for trigger in triggers:
            meta = trigger["metadata"]
            assert meta["consumerGroup"] == group, stage
            assert meta["bootstrapServersFromEnv"] == "MAILROOM_KAFKA_BOOTSTRAP"
            assert meta["offsetResetPolicy"] == consumer["auto_offset_reset"]
            assert meta["allowIdleConsumers"] == "false"
            assert int(meta["lagThreshold"]) > 0
            # Logs in the way the stages do.
            assert meta.get("tls") == ("enable" if consumer["security_protocol"].endswith("SSL")
                                       else None)
            if consumer["security_protocol"].startswith("SASL_"):
                assert meta["sasl"] == KEDA_SASL[consumer["sasl_mechanism"]]


def test_keda_knows_every_sasl_mechanism_of_the_clients() -> None:
    assert set(KEDA_SASL) == set(kafka.SASL_MECHANISMS)


def test_ingest_scales_on_its_backlog_on_the_mail_servers() -> None:
    # ingest never commits offsets (the mailboxes topic is a table it reads whole), so consumer
    # lag says nothing about it; its backlog metric does.
    (trigger,) = scaled_objects()["mailroom-ingest"]["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    exported = {m.name for m in IngestMetrics().stage.registry.collect()}
    metric = re.fullmatch(r"sum\((\w+)\)", trigger["metadata"]["query"]).group(1)
    assert metric in exported
    assert int(trigger["metadata"]["threshold"]) > 0


def test_no_stage_scales_past_the_partitions(settings: Settings) -> None:
    for stage in STAGES:
        spec = scaled_objects()[f"mailroom-{stage}"]["spec"]
        assert spec["maxReplicaCount"] <= settings.topic_partitions, stage


def test_probes_ask_the_stage_server_on_its_metrics_port(settings: Settings) -> None:
    for stage in STAGES:
        pod = stage_deployment(stage)["spec"]["template"]
        (container,) = pod["spec"]["containers"]
        port = settings_from(literal_env(container)).metrics_port
        assert port, f"{stage}: metrics are off, nothing answers the probes"
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
        probes = {kind: container[f"{kind}Probe"]["httpGet"]
                  for kind in ("startup", "liveness", "readiness")}
        assert {k: p["path"] for k, p in probes.items()} == {
            "startup": "/healthz", "liveness": "/healthz", "readiness": "/readyz"}
        for probe in probes.values():
            assert ports.get(probe["port"], probe["port"]) == port, stage


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_stage_server_answers_the_probe_paths() -> None:
    paths = {container[f"{kind}Probe"]["httpGet"]["path"]
             for stage in STAGES
             for container in stage_deployment(stage)["spec"]["template"]["spec"]["containers"]
             for kind in ("startup", "liveness", "readiness")}
    state = {"alive": True, "ready": True}
    server = serve(Settings(metrics_port=free_port()), StageMetrics("unwrap"),
                   Health(alive=lambda: state["alive"], ready=lambda: state["ready"]))
    assert server is not None
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert {p: status_of(base + p) for p in paths} == {p: 200 for p in paths}
        state["ready"] = False  # e.g. paused at a newer schema: out of the ready count
        assert status_of(base + "/readyz") == 503
        assert status_of(base + "/healthz") == 200
    finally:
        server.shutdown()
        server.server_close()


def test_grace_period_outlasts_a_batch_and_its_commit() -> None:
    for stage in STAGES:
        pod = stage_deployment(stage)["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        s = settings_from(literal_env(container))
        # No stage holds a batch longer than the max poll interval; the flush and the commit
        # after it each wait at most the request timeout.
        bound_s = s.kafka_max_poll_interval_ms / 1000 + s.kafka_request_timeout_ms / 1000
        assert pod["terminationGracePeriodSeconds"] > bound_s, stage
        # A wedged process finishes nothing: its liveness kill does not wait that long.
        liveness = container["livenessProbe"]["terminationGracePeriodSeconds"]
        assert liveness < pod["terminationGracePeriodSeconds"]


def test_worker_pool_is_sized_to_the_pod() -> None:
    for stage in STAGES:
        (container,) = stage_deployment(stage)["spec"]["template"]["spec"]["containers"]
        s = settings_from(literal_env(container))
        resources = container["resources"]
        if stage not in WORKER_POOL_STAGES:
            assert "MAILROOM_STAGE_WORKERS" not in container_env(container), stage
            continue
        assert s.stage_isolation == "process"
        # Set: os.cpu_count() in a container counts the node's cores, not the pod's.
        assert 1 <= s.stage_workers <= quantity(resources["requests"]["cpu"]), stage
        # Room for every worker at its address-space limit plus the consumer: a message that
        # needs more is dead-lettered 'out_of_memory' instead of the pod being OOM-killed.
        need = (s.stage_workers * s.stage_worker_memory_mb + 512) * 2**20
        assert quantity(resources["limits"]["memory"]) >= need, stage


def test_setup_jobs_migrate_and_create_topics() -> None:
    jobs = of_kind("Job")
    commands = sorted(c["command"] + c["args"]
                      for j in jobs.values() for c in j["spec"]["template"]["spec"]["containers"])
    assert commands == [["mailroom", "db", "migrate"], ["mailroom", "topics", "create"]]
    # The Jobs are applied apart from the stages, so a release's stages start only after them.
    setup = yaml.safe_load((KUBERNETES / "setup" / "kustomization.yaml").read_text())
    stages = yaml.safe_load((KUBERNETES / "stages" / "kustomization.yaml").read_text())
    job_files = {p.name for p in manifest_files() if any(
        d["kind"] == "Job" for d in documents(p))}
    assert job_files <= set(setup["resources"]) and not job_files & set(stages["resources"])


def test_pods_are_locked_down() -> None:
    for name, pod, container in containers():
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        writable = {m["mountPath"] for m in container.get("volumeMounts", [])}
        assert "/tmp" in writable, name
        if name in deployments():  # long-running: a writable state folder
            assert configmap_env()["MAILROOM_STATE_DIR"] in writable, name


def test_the_image_runs_as_the_user_the_pods_ask_for() -> None:
    text = (DEPLOY / "container" / "Containerfile").read_text()
    user = re.search(r"^USER (\d+):(\d+)$", text, re.M)
    assert user, "the image must name a numeric user, or runAsNonRoot cannot check it"
    uid, gid = int(user.group(1)), int(user.group(2))
    for name, pod in pod_specs():
        assert pod["securityContext"]["runAsUser"] == uid, name
        assert pod["securityContext"]["runAsGroup"] == gid, name
    workdir = re.search(r"^WORKDIR (\S+)$", text, re.M).group(1)
    assert workdir == configmap_env()["MAILROOM_STATE_DIR"]
    # Every package pyproject builds is copied in, and the schemas it installs as data files.
    copied = {source for line in re.findall(r"^COPY (.+)$", text, re.M)
              for source in line.split()[:-1]}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages | {"schemas", "pyproject.toml", project["project"]["readme"]} <= copied

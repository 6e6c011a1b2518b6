"""Reading the deployment descriptions in deploy/ the way their consumers do: YAML documents
for Kubernetes, environment files and unit files for systemd. Shared by the deploy tests."""

from __future__ import annotations

import contextlib
import functools
import shlex
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from mailroom.settings import Settings, describe, load

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"

#: Environment names Mailroom's processes may get that are not settings: libpq reads the
#: PostgreSQL login from these when MAILROOM_DATABASE_URL names none.
LIBPQ_LOGIN = frozenset({"PGUSER", "PGPASSWORD"})


def setting_names() -> set[str]:
    return {env for _, env, _, _ in describe()}


def secret_setting_names() -> set[str]:
    return {f"MAILROOM_{name.upper()}" for name in Settings.secret_fields()}


def settings_from(environ: Mapping[str, str]) -> Settings:
    """The Settings a process started with exactly this environment would load (from an empty
    working directory: no mailroom.toml of the checkout's may join in)."""
    with tempfile.TemporaryDirectory() as empty, contextlib.chdir(empty):
        return load(environ=dict(environ))


# --- Kubernetes ---------------------------------------------------------------------------------


def manifest_files() -> list[Path]:
    return sorted(KUBERNETES.rglob("*.yaml"))


@functools.cache
def documents(path: Path) -> list[dict[str, Any]]:
    """The YAML documents of one file, parsed once per test run (treat them as read-only)."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def all_documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in manifest_files():
        for doc in documents(path):
            yield path, doc


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    """Objects of one kind by name, from every manifest except the kustomizations."""
    return {d["metadata"]["name"]: d for _, d in all_documents() if d.get("kind") == kind}


# --- systemd ------------------------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them (comments, blank lines and
    surrounding quotes dropped)."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not KEY=VALUE: {line!r}"
        words = shlex.split(value) if value else [""]
        assert len(words) == 1, f"{path}: {key} must be one value (quote it): {value!r}"
        out[key.strip()] = words[0]
    return out


def read_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file, each a list of (key, value) in order: a key may repeat
    (EnvironmentFile=, Environment=), which configparser cannot represent."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{path}: {line!r} before any section"
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not Key=Value: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in section if k == key]


def value(section: list[tuple[str, str]], key: str) -> str:
    found = values(section, key)
    assert len(found) == 1, f"{key}= set {len(found)} times"
    return found[0]

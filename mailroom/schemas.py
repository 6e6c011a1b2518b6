"""The Avro schemas of the topics: where they live, their fingerprints, their compatibility.

``schemas/`` holds one file per released version, ``<name>.v<N>.avsc`` (a file without
``.v<N>`` counts as version 1 until it is renamed). Every file is self-contained: a record it
nests (e.g. ``Step`` inside ``Plan``) is defined inline, so a version can be read alone.

Fingerprints follow the Avro specification: CRC-64-AVRO (Rabin) of the Parsing Canonical Form,
8 bytes little-endian. The canonical form comes from fastavro, which strips ``logicalType`` as the
specification's [STRIP] and [PRIMITIVES] rules require; the ``avro`` package (1.12.2) keeps
``{"type":"long"}`` for a logical-typed long, which would give a different fingerprint than Java
and fastavro writers for any schema with a timestamp. The tests pin both facts.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import avro.schema
import fastavro
import fastavro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from mailroom.errors import ConfigError
from mailroom.settings import Settings

FILE_NAME = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)(?:\.v(?P<version>[1-9][0-9]*))?\.avsc$")


@dataclass(frozen=True)
class SchemaVersion:
    name: str  # the file name's stem, e.g. "raw_mail": what records and the codec call it
    version: int
    path: Path
    source: dict[str, Any]  # the .avsc as parsed JSON, docs included
    canonical: str  # Parsing Canonical Form
    fingerprint: bytes  # CRC-64-AVRO of ``canonical``, little-endian
    parsed: Any  # fastavro's parsed schema, ready for the per-message path
    versioned_name: bool  # False for "<name>.avsc": still to be renamed "<name>.v1.avsc"

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"

    def avro_schema(self) -> avro.schema.Schema:
        """The same schema parsed by the ``avro`` package (for its compatibility checker)."""
        return avro.schema.parse(json.dumps(self.source))


def shipped_schemas_dir() -> Path | None:
    """The schemas that came with this Mailroom: the checkout's folder, or the installed copy."""
    checkout = Path(__file__).resolve().parent.parent / "schemas"
    # pyproject installs schemas/*.avsc as data files under <prefix>/share/mailroom/schemas.
    for candidate in (checkout, Path(sys.prefix) / "share" / "mailroom" / "schemas"):
        if candidate.is_dir() and any(candidate.glob("*.avsc")):
            return candidate
    return None


def schemas_dir(settings: Settings) -> Path:
    if settings.schemas_dir:
        path = Path(settings.schemas_dir)
        if not path.is_dir():
            raise ConfigError(f"schemas_dir {path} is not a folder (MAILROOM_SCHEMAS_DIR)")
        return path
    path = shipped_schemas_dir()
    if path is None:
        raise ConfigError(
            "no Avro schemas found next to the mailroom package nor under "
            f"{sys.prefix}/share/mailroom/schemas; set MAILROOM_SCHEMAS_DIR"
        )
    return path


def fingerprint(canonical: str) -> bytes:
    """CRC-64-AVRO of a Parsing Canonical Form, as the 8 little-endian bytes on the wire."""
    return bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))


def load_file(path: Path) -> SchemaVersion:
    match = FILE_NAME.match(path.name)
    if match is None:
        raise ConfigError(f"{path}: schema files are named <name>.v<N>.avsc (lower case)")
    try:
        source = json.loads(path.read_text())
        parsed = fastavro.parse_schema(source)
    except (ValueError, fastavro.schema.SchemaParseException) as exc:
        raise ConfigError(f"{path}: not a valid Avro schema: {exc}") from exc
    canonical = fastavro.schema.to_parsing_canonical_form(source)
    return SchemaVersion(
        name=match["name"],
        version=int(match["version"] or 1),
        path=path,
        source=source,
        canonical=canonical,
        fingerprint=fingerprint(canonical),
        parsed=parsed,
        versioned_name=match["version"] is not None,
    )


def load_dir(directory: Path | str) -> dict[str, list[SchemaVersion]]:
    """Every schema in ``directory`` by name, versions in ascending order."""
    by_name: dict[str, dict[int, SchemaVersion]] = {}
    by_fingerprint: dict[bytes, SchemaVersion] = {}
    for path in sorted(Path(directory).glob("*.avsc")):
        schema = load_file(path)
        versions = by_name.setdefault(schema.name, {})
        if schema.version in versions:
            raise ConfigError(
                f"{path} and {versions[schema.version].path} are both {schema.label}"
            )
        other = by_fingerprint.get(schema.fingerprint)
        # The same schema under two names would make decoding ambiguous.
        if other is not None and other.name != schema.name:
            raise ConfigError(f"{path} and {other.path} are the same schema under two names")
        versions[schema.version] = schema
        by_fingerprint.setdefault(schema.fingerprint, schema)
    if not by_name:
        raise ConfigError(f"no .avsc files in {directory}")
    return {name: [v[n] for n in sorted(v)] for name, v in sorted(by_name.items())}


@dataclass(frozen=True)
class Incompatibility:
    reader: SchemaVersion
    writer: SchemaVersion
    kinds: tuple[str, ...]  # e.g. reader_field_missing_default_value, type_mismatch
    messages: tuple[str, ...]
    locations: tuple[str, ...]

    def __str__(self) -> str:
        kinds = ", ".join(self.kinds) or "incompatible"
        why = "; ".join(self.messages)
        where = ", ".join(self.locations)
        return f"{self.reader.label} cannot read {self.writer.label}: {kinds}: {why} (at {where})"


def can_read(reader: SchemaVersion, writer: SchemaVersion) -> Incompatibility | None:
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        reader.avro_schema(), writer.avro_schema()
    )
    if result.compatibility is SchemaCompatibilityType.compatible:
        return None
    return Incompatibility(
        reader,
        writer,
        tuple(sorted({kind.value for kind in result.incompatibilities})),
        tuple(sorted(result.messages)),
        tuple(sorted(result.locations)),
    )


def check_compatibility(versions: list[SchemaVersion]) -> list[Incompatibility]:
    """Each version against every earlier one, both ways: old and new run side by side."""
    problems: list[Incompatibility] = []
    for i, newer in enumerate(versions):
        for older in versions[:i]:
            for reader, writer in ((newer, older), (older, newer)):
                problem = can_read(reader, writer)
                if problem is not None:
                    problems.append(problem)
    return problems

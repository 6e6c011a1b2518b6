"""The one typed settings object.

Every setting has a type, a default that points at the embedded local stack, a documented
meaning and an environment name ``MAILROOM_<FIELD>`` (upper case). Values come, in increasing
precedence, from the defaults, an optional TOML file (``MAILROOM_CONFIG`` or ``mailroom.toml`` in
the working directory; keys are the field names) and the environment. Nothing is read at import
time: :func:`load` is called once by the CLI and the result is passed down explicitly.

What is not understood is refused, never guessed (a typo must not silently leave a setting at its
default): an unknown ``MAILROOM_*`` variable (but the few in :data:`NOT_SETTINGS`) or file key, a
boolean that is not true/false, 1/0, yes/no or on/off, and a choice setting's value outside
:data:`CHOICES` are each a :class:`~mailroom.errors.ConfigError` naming the setting.

Pointing Mailroom at an external Kafka cluster, PostgreSQL or mail servers is only configuration:
``kafka_bootstrap``, the ``kafka_security_*`` settings and ``database_url``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from mailroom.errors import ConfigError


def _setting(default: Any, doc: str, *, secret: bool = False) -> Any:
    """A documented setting; ``secret``: its value is never shown (``mailroom config``, logs,
    errors: :mod:`mailroom.redact`)."""
    return field(default=default, metadata={"doc": doc, "secret": secret})


#: Words that make a setting secret even when not marked so: a new password or key setting
#: is masked from the start rather than shown until someone remembers to mark it.
_SECRET_WORDS = ("password", "secret")

#: The allowed values of every choice setting: the one place they are checked, whenever a
#: Settings is made (by :func:`load` or :meth:`Settings.replace`). Matched regardless of case and
#: kept in the spelling given here, so the code compares against these words only.
CHOICES: dict[str, tuple[str, ...]] = {
    "kafka_security_protocol": ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
    # Empty: none, which only a protocol without SASL accepts (mailroom.kafka.check).
    "kafka_sasl_mechanism": ("", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
    # What both clients compress with out of the box: kafka-python with the lz4 package,
    # faust's aiokafka with cramjam (both dependencies).
    "kafka_compression": ("none", "lz4", "gzip"),
    "log_level": ("DEBUG", "INFO", "WARNING", "ERROR"),
    "stage_isolation": ("process", "inline"),
    "unwrap_over_limit": ("omit", "reject"),
    "unwrap_non_forwarded": ("reject", "accept"),
}

_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "off"})

#: ``MAILROOM_*`` environment variables that are not settings, and who reads each. Every other
#: ``MAILROOM_*`` name that is no setting is refused by :func:`load`.
NOT_SETTINGS: dict[str, str] = {
    "MAILROOM_CONFIG": "the settings file to read (load, here)",
    "MAILROOM_CORPUS": "tests and .ci: the folder of the shared corpus of real mail",
    "MAILROOM_SCREENSHOT": "tests: where the dashboard browser test saves a screenshot",
    "MAILROOM_DEMO_MAILBOX_PASSWORD": "mailroom demo: its mailboxes' password (--password-env)",
    "MAILROOM_BENCH_MAILBOX_PASSWORD": "bench/: its mailboxes' password (--password-env)",
    "MAILROOM_CHAOS_MAILBOX_PASSWORD": "chaos tests: their mailboxes' password (--password-env)",
}

#: Name patterns of ``MAILROOM_*`` variables that are not settings either: a mailbox password
#: an operator hands to ``mailroom mailbox add|set-password --password-env``, and the variables
#: Kubernetes gives every pod for each Service of its namespace ("service links": the Service
#: ``mailroom-web`` makes ``MAILROOM_WEB_SERVICE_HOST``, ``MAILROOM_WEB_PORT_80_TCP`` and so on).
_NOT_SETTING_PATTERNS = re.compile(
    r"MAILROOM_\w+_MAILBOX_PASSWORD"
    r"|MAILROOM_\w+_SERVICE_(HOST|PORT(_\w+)?)"
    r"|MAILROOM_\w+_PORT_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?"
)
#: Kubernetes' ``<SERVICE>_PORT`` holds a URL such as ``tcp://10.0.0.7:80``; a number there is a
#: misspelt port setting.
_SERVICE_LINK_PORT = re.compile(r"MAILROOM_\w+_PORT")
_SERVICE_LINK_URL = re.compile(r"(tcp|udp|sctp)://\S+")


@dataclass(frozen=True)
class Settings:
    # --- the local embedded stack -------------------------------------------------------------
    state_dir: str = _setting(".mailroom", "Folder for the local stack's state, logs and caches.")
    kafka_port: int = _setting(19092, "Local stack: Kafka broker port on 127.0.0.1.")
    kafka_controller_port: int = _setting(19093, "Local stack: KRaft controller port.")
    postgres_port: int = _setting(15432, "Local stack: PostgreSQL port on 127.0.0.1.")
    imap_port: int = _setting(10143, "Local stack: Dovecot IMAP port (plain, STARTTLS offered).")
    imaps_port: int = _setting(10993, "Local stack: Dovecot IMAP implicit-TLS port.")
    pop3_port: int = _setting(10110, "Local stack: Dovecot POP3 port (plain, STLS offered).")
    pop3s_port: int = _setting(10995, "Local stack: Dovecot POP3 implicit-TLS port.")
    dovecot_oauth2_port: int = _setting(
        10980, "Local stack: port on 127.0.0.1 of the OAuth2 token introspection endpoint that "
        "Dovecot's oauth2 passdb asks for XOAUTH2 logins (nothing listens unless a test or "
        "a local identity provider runs there)."
    )
    managesieve_port: int = _setting(
        14190, "Local stack: Dovecot ManageSieve port (Sieve scripts of the mail users; "
        "STARTTLS offered)."
    )
    lmtp_port: int = _setting(
        10024, "Local stack: Dovecot LMTP port, where mail is delivered to a user so that the "
        "user's Sieve script runs (the local stand-in for an MTA's delivery)."
    )

    # --- Kafka: one set of client settings for kafka-python and faust-streaming ---------------
    kafka_bootstrap: str = _setting(
        "", "Kafka bootstrap servers, comma separated. Empty: the local stack's broker."
    )
    kafka_security_protocol: str = _setting(
        "PLAINTEXT", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    kafka_ssl_cafile: str = _setting("", "CA bundle to verify the brokers' certificates.")
    kafka_ssl_certfile: str = _setting("", "Client certificate for mutual TLS.")
    kafka_ssl_keyfile: str = _setting("", "Client key for mutual TLS.")
    kafka_sasl_mechanism: str = _setting("", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.")
    kafka_sasl_username: str = _setting("", "SASL user name.")
    kafka_sasl_password: str = _setting("", "SASL password.", secret=True)
    kafka_request_timeout_ms: int = _setting(30_000, "Client request timeout.")
    kafka_session_timeout_ms: int = _setting(
        10_000, "Consumer group session timeout: how fast a dead process's partitions move."
    )
    kafka_heartbeat_interval_ms: int = _setting(3_000, "Consumer group heartbeat interval.")
    kafka_max_poll_interval_ms: int = _setting(
        300_000, "Longest a stage may take between polls before the group evicts it."
    )
    kafka_unassigned_rejoin_s: int = _setting(
        120, "A group member left this long without partitions, while its group has a partition "
        "for every member, warns and joins its group again (mailroom.groupwatch). 0: never."
    )
    topic_prefix: str = _setting("mailroom", "Topic names are '<prefix>.raw' and so on.")
    topic_partitions: int = _setting(6, "Partitions per stream topic (chosen up front).")
    topic_replication_factor: int = _setting(
        1, "Replication factor; 3 on a real cluster (1 is not durable)."
    )
    raw_retention_days: int = _setting(30, "Retention of the raw topic: the replay source.")
    stream_retention_days: int = _setting(7, "Retention of unwrapped, actions and trace topics.")
    dlq_retention_days: int = _setting(180, "Retention of dead letters.")
    kafka_compression: str = _setting(
        "lz4", "How producers compress record batches ('none', 'lz4', 'gzip'); consumers read "
        "any. lz4: mail is text, and a compressed batch costs each hop less CPU than the bytes "
        "it saves (docs/performance.md)."
    )
    max_record_bytes: int = _setting(
        8 * 1024 * 1024, "Largest record a topic accepts; producers and consumers match it."
    )
    claim_check_bytes: int = _setting(
        1024 * 1024, "A record larger than this carries a blob reference instead of the bytes."
    )
    condemned_blob_grace_hours: int = _setting(
        168, "Claim-check blobs of mail that must not be kept (a privacy skip, an erasure) are "
        "deleted by persist once their content was not put for this long and no stored "
        "attachment or parked plan uses them. Longer than mail can be in flight between unwrap "
        "and persist, so that another email carrying the same file keeps its bytes; it is also "
        "how long a private email's claim-checked bytes may remain (docs/privacy.md). Default: "
        "7 days, as long as the stream topics keep the parsed email anyway."
    )

    schemas_dir: str = _setting(
        "", "Folder of the Avro schemas (<name>.v<N>.avsc). Empty: the schemas shipped with "
        "Mailroom (the checkout's schemas/ folder, or share/mailroom/schemas when installed)."
    )

    # --- PostgreSQL ---------------------------------------------------------------------------
    database_url: str = _setting(
        "", "libpq connection string. Empty: the local stack's 'mailroom' database."
    )

    database_role_prefix: str = _setting(
        "mailroom", "Name prefix of the per-stage database roles the migrations create and grant "
        "to (<prefix>_ingest, _unwrap, _route, _persist; NOLOGIN groups, cluster-wide)."
    )

    # --- behaviour ----------------------------------------------------------------------------
    log_level: str = _setting("INFO", "DEBUG, INFO, WARNING or ERROR.")
    secret_key: str = _setting(
        "", "Key that encrypts mailbox credentials at rest. "
        "Empty: a key generated once into the state folder (local stack only).", secret=True
    )
    secret_key_previous: str = _setting(
        "", "Earlier values of secret_key, comma separated: they still decrypt mailbox "
        "credentials but never encrypt. Set during a key rotation (mailroom mailbox rotate-key), "
        "emptied after it."
    )
    web_secret: str = _setting(
        "", "Not used any more: the dashboard has named accounts (mailroom web user add). "
        "Kept so that environments which still set it load unchanged.", secret=True
    )
    fault_points: str = _setting(
        "", "Comma-separated 'stage:point' names at which the process dies on purpose (tests)."
    )
    max_attempts: int = _setting(
        3, "Crashes on the same offset before a message is dead-lettered unparsed; for ingest, "
        "failed fetches of one message alone before it is dead-lettered 'unfetchable'."
    )
    metrics_port: int = _setting(
        0, "Port of a stage process's /metrics, /healthz and /readyz endpoints; 0: off. Each "
        "process needs its own (e.g. MAILROOM_METRICS_PORT=9101 mailroom run unwrap)."
    )

    # --- stream stages (mailroom.stage: the runner every stream stage uses) -------------------
    stage_isolation: str = _setting(
        "process", "How a stream stage runs its handler: 'process' (a worker subprocess the "
        "runner can kill when a message overruns its budget; heartbeats never starve) or "
        "'inline' (in the consumer's process: faster, for tests and trivial stages)."
    )
    stage_workers: int = _setting(
        0, "Worker subprocesses per stage process with stage_isolation=process; each gets a "
        "chunk of the poll batch. 0: one per CPU core."
    )
    stage_budget_ms: int = _setting(
        30_000, "Time one message may take in a stage's handler; past it the message is "
        "dead-lettered 'timeout' and the partition moves on."
    )
    stage_retry_deadline_ms: int = _setting(
        60_000, "How long a stage retries a message whose handler raised TransientError "
        "before dead-lettering it 'retry_exhausted'."
    )
    stage_retry_backoff_ms: int = _setting(
        500, "First retry delay after a TransientError; doubles per attempt (capped at 10 s)."
    )
    stage_worker_memory_mb: int = _setting(
        2048, "Address space (MB) a stream stage's worker process may use (isolation "
        "'process'); a message needing more is dead-lettered 'out_of_memory'. 0: no limit."
    )
    stage_max_poll_records: int = _setting(
        500, "Records a stream stage takes per poll: one batch, one flush, one commit."
    )

    # --- ingest stage -------------------------------------------------------------------------
    ingest_batch_size: int = _setting(
        100, "Ingest: messages per FETCH/RETR round, publish and checkpoint. A crash repeats at "
        "most one batch; a rebalance waits at most for one batch to finish."
    )
    ingest_max_message_bytes: int = _setting(
        64 * 1024 * 1024, "Ingest: a message larger than this by the server's own count (IMAP "
        "RFC822.SIZE, POP3 LIST) is not fetched: it is dead-lettered 'too_large' (mailbox, UID "
        "or UIDL, size; no payload) and passed, left untouched on its server."
    )
    ingest_backoff_base_ms: int = _setting(
        2_000, "Ingest: first retry delay of a mailbox after a transient failure; doubles per "
        "failure in a row (with jitter), up to ingest_backoff_max_ms."
    )
    ingest_backoff_max_ms: int = _setting(
        300_000, "Ingest: longest retry delay of a mailbox after transient failures."
    )
    ingest_disable_after_failures: int = _setting(
        20, "Ingest: transient failures in a row after which a mailbox is disabled as an "
        "outage (re-enabled automatically once a login-free probe of its server succeeds)."
    )
    ingest_revive_interval_s: int = _setting(
        30, "Ingest: how often mailboxes disabled by an outage are probed (no login)."
    )
    ingest_idle_tick_ms: int = _setting(
        500, "Ingest: longest wait between two looks for due mailboxes and group changes."
    )
    ingest_idle_wait_ms: int = _setting(
        3_000, "Ingest: one IMAP IDLE round (a process serving a single mailbox IDLEs on its "
        "INBOX); rebalances and SIGTERM are checked between rounds, so keep it short. 0: no IDLE."
    )

    # --- unwrap stage -------------------------------------------------------------------------
    unwrap_max_message_bytes: int = _setting(
        64 * 1024 * 1024, "Unwrap: a raw message larger than this is dead-lettered unparsed."
    )
    unwrap_max_attachment_bytes: int = _setting(
        5 * 1024 * 1024, "Unwrap: an attachment larger than this (up to 128 MB) is stored without "
        "its content (name, type, size and sha256 kept; the email says so)."
    )
    unwrap_blob_threshold_bytes: int = _setting(
        256 * 1024, "Unwrap: attachments larger than this travel as a blob reference (claim "
        "check) instead of inside the email record."
    )
    unwrap_max_depth: int = _setting(
        3, "Unwrap: how many forward wrappers deep originals are followed (forward of a forward)."
    )
    unwrap_max_parts: int = _setting(
        500, "Unwrap: MIME parts looked at per message; parts past this are ignored and said so."
    )
    unwrap_max_body_chars: int = _setting(
        1_000_000, "Unwrap: characters kept of each text and HTML body; longer ones are cut, "
        "and the email says so."
    )
    unwrap_max_header_chars: int = _setting(
        65_536, "Unwrap: characters read of an address header (To, Cc, ...) or the Subject; a "
        "longer one is cut (address lists at a comma) and the email says so."
    )
    unwrap_max_recipients: int = _setting(
        1_000, "Unwrap: addresses kept per address header; the rest are left out and the email "
        "says so."
    )
    unwrap_over_limit: str = _setting(
        "omit", "Unwrap, past the attachment-size, part-count, header-length or recipient "
        "limit: 'omit' (store the email without what is over, saying so) or 'reject' (dead "
        "letter)."
    )
    unwrap_authserv_id: str = _setting(
        "", "Unwrap: authserv-id of our own receiving server (the first word of the "
        "Authentication-Results headers it writes). A forward is believed only when the topmost "
        "header with this id shows a pass aligned with the forwarder's domain; other headers "
        "are ignored (anyone can write one). Empty: no forward can pass, and ingest does not "
        "poll a forward mailbox unless its Authentication-Results check is switched off "
        "(`mailroom mailbox auth-results ADDRESS off`)."
    )
    unwrap_non_forwarded: str = _setting(
        "reject", "Unwrap: mail in a forward mailbox that carries no forwarded original: "
        "'reject' (dead letter) or 'accept' (kept as a direct email of the forward mailbox)."
    )
    unwrap_inline_forwards: bool = _setting(
        True, "Unwrap: accept originals forwarded inline (quoted in the body), best effort and "
        "flagged, when a forward carries no attached original."
    )

    # --- route stage --------------------------------------------------------------------------
    route_in_unwrap: bool = _setting(
        False, "Route decides in unwrap's processes, on each Email unwrap makes, and unwrap "
        "writes the plans to actions itself: one hop fewer (less CPU per email on a small "
        "host), at the cost of scaling the two apart. Unwrap still writes unwrapped (stats, "
        "audit). Run no route process then: it refuses to start. Same value for every process."
    )
    route_reference_refresh_s: int = _setting(
        60, "Route: seconds between reloads of the reference snapshot (users, queues, contacts, "
        "rules) from PostgreSQL; its mailboxes follow the mailbox directory at every batch. A "
        "plan made with an older snapshot is still right: what depends on fresh state is "
        "re-checked by persist."
    )

    # --- stats (mailroom.stats: windowed mail volume on faust-streaming) --------------------
    stats_windows: str = _setting(
        "1h,1d", "Stats: tumbling window sizes, comma separated (s, m, h, d), placed by each "
        "message's arrival in Mailroom (ingest's fetch), never by the wall clock."
    )
    stats_keep_windows: int = _setting(
        48, "Stats: windows kept per size and counted key (mailbox or sender); older ones are "
        "dropped as newer ones fill."
    )
    stats_top_senders: int = _setting(
        20, "Stats: senders exported per window size as mailroom_mail_volume series and shown "
        "on the dashboard (the biggest; every mailbox is exported)."
    )
    stats_refresh_s: int = _setting(
        5, "Stats: seconds between refreshes of the mailroom_mail_volume gauges."
    )

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            canonical = {a.lower(): a for a in allowed}.get(str(value).strip().lower())
            if canonical is None:
                raise ConfigError(
                    f"{name} ({env_name(name)}) must be one of "
                    f"{', '.join(repr(a) for a in allowed)}; got {value!r}"
                )
            object.__setattr__(self, name, canonical)

    # --- derived values -----------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return Path(self.state_dir).resolve()

    @property
    def bootstrap_servers(self) -> list[str]:
        if self.kafka_bootstrap:
            return [s.strip() for s in self.kafka_bootstrap.split(",") if s.strip()]
        return [f"127.0.0.1:{self.kafka_port}"]

    @property
    def dsn(self) -> str:
        if self.database_url:
            return self.database_url
        return f"host=127.0.0.1 port={self.postgres_port} dbname=mailroom user=mailroom"

    @classmethod
    def secret_fields(cls) -> list[str]:
        """Names of the settings whose values must never be shown."""
        return [f.name for f in dataclasses.fields(cls)
                if f.metadata.get("secret") or any(w in f.name for w in _SECRET_WORDS)]

    def topic(self, name: str) -> str:
        """Full topic name for one of the brief's topics ('raw', 'unwrapped', ...)."""
        return f"{self.topic_prefix}.{name}"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def env_name(field_name: str) -> str:
    return f"MAILROOM_{field_name.upper()}"


def _coerce(name: str, kind: Any, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in _TRUE_WORDS | _FALSE_WORDS:
            return word in _TRUE_WORDS
        raise ConfigError(
            f"{name}: expected a boolean (true/false, 1/0, yes/no, on/off), got {value!r}"
        )
    try:
        if kind is int:
            return int(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: expected {kind.__name__}, got {value!r}") from exc


def _closest(word: str) -> str | None:
    """The setting whose name is nearest ``word`` (a field name, any case), if one is near."""
    names = [f.name for f in dataclasses.fields(Settings)]
    close = difflib.get_close_matches(word.lower(), names, n=1)
    return close[0] if close else None


def _unknown_variable(name: str) -> str:
    closest = _closest(name.removeprefix("MAILROOM_"))
    return f"{name} (did you mean {env_name(closest)}?)" if closest else name


def is_setting_variable(name: str, value: str = "") -> bool:
    """Is this environment variable one :func:`load` accepts: not ``MAILROOM_*``, a setting, or
    one of the known ``MAILROOM_*`` variables that are no setting?"""
    if not name.startswith("MAILROOM_") or name in NOT_SETTINGS:
        return True
    if name in {env_name(f.name) for f in dataclasses.fields(Settings)}:
        return True
    if _NOT_SETTING_PATTERNS.fullmatch(name):
        return True
    return bool(_SERVICE_LINK_PORT.fullmatch(name) and _SERVICE_LINK_URL.fullmatch(value))


def _check_environment_names(environ: Mapping[str, str]) -> None:
    """Refuse unknown ``MAILROOM_*`` variables, all of them in one message. Values are never
    shown: a misspelt password variable holds a password."""
    unknown = sorted(n for n in environ if not is_setting_variable(n, environ[n]))
    if unknown:
        named = ", ".join(_unknown_variable(n) for n in unknown)
        if len(unknown) == 1:
            raise ConfigError(f"unknown environment variable {named}: not a Mailroom setting; "
                              "correct or unset it")
        raise ConfigError(f"unknown environment variables {named}: not Mailroom settings; "
                          "correct or unset them")


def load(environ: Mapping[str, str] | None = None, config_file: str | None = None) -> Settings:
    """Read the settings: defaults < TOML file < ``MAILROOM_*`` environment variables."""
    environ = os.environ if environ is None else environ
    _check_environment_names(environ)
    hints = get_type_hints(Settings)
    values: dict[str, Any] = {}
    path = config_file or environ.get("MAILROOM_CONFIG") or "mailroom.toml"
    if Path(path).is_file():
        try:
            data = tomllib.loads(Path(path).read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        for key, value in data.items():
            if key not in hints:
                closest = _closest(key)
                hint = f" (did you mean {closest!r}?)" if closest else ""
                raise ConfigError(f"{path}: unknown setting {key!r}{hint}")
            values[key] = _coerce(f"{path}: {key}", hints[key], value)
    elif config_file or environ.get("MAILROOM_CONFIG"):
        raise ConfigError(f"configuration file {path} does not exist")
    for f in dataclasses.fields(Settings):
        name = env_name(f.name)
        if name in environ:
            values[f.name] = _coerce(name, hints[f.name], environ[name])
    return Settings(**values)


def describe() -> list[tuple[str, str, Any, str]]:
    """(field, environment name, default, meaning) of every setting, for docs and --help."""
    return [
        (f.name, env_name(f.name), f.default, f.metadata.get("doc", ""))
        for f in dataclasses.fields(Settings)
    ]

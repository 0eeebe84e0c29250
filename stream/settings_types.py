"""The typed, frozen shape of the service configuration; built by
:mod:`auditstream.stream.settings`.

Kept apart from the loader so that the runtime modules depend on plain values only. Secrets are
wrapped (:class:`Secret`, :class:`Properties`) so that ``repr`` and logs never show them; a URL's
``user:password@`` is masked wherever a URL may stand (every URL of a list, any property value
such as the registry's ``proxy``). :meth:`Settings.secret_values` lists the values themselves, for
the log renderer's last line of defence (:mod:`auditstream.stream.logs`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import unquote

ClientValue = str | int | float | bool
AlertFormat = Literal["avro", "json", "ecs", "ocsf"]
GroupProtocol = Literal["classic", "consumer"]
DeliveryMode = Literal["at-least-once", "exactly-once"]
LogFormat = Literal["auto", "json", "console"]
_SECRET_KEY: Final = re.compile(
    r"password|secret|(^|[._])key([._]|$)|pem|user\.info|token|jaas|oauthbearer\.config", re.I
)
REDACTED: Final = "***"
# The ``user:password@`` of a URL anywhere in a text: after ``://``, up to the last ``@`` before
# the path. Quotes and blanks end it (a URL inside a repr or a sentence), commas do not (a
# password may hold one; the next URL of a list starts after its own ``://`` anyway).
_URL_USERINFO: Final = re.compile(r"(?<=://)[^/?#\s'\"<>]*@")
MIN_SECRET_LENGTH: Final = 4
"""Shorter values are not masked by value in log lines: they would mask ordinary words."""


def is_secret(name: str) -> bool:
    """Whether a property's value must never be shown (by its name, case-insensitive)."""
    return bool(_SECRET_KEY.search(name))


@dataclass(frozen=True, slots=True)
class Secret:
    """A string that prints as ``***``; :meth:`reveal` is the only way to read it."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"


class Properties(Mapping[str, ClientValue]):
    """Immutable client properties (librdkafka or registry) whose repr hides secret values."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, ClientValue] | None = None) -> None:
        self._items: dict[str, ClientValue] = dict(items or {})

    def __getitem__(self, key: str) -> ClientValue:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Properties) and self._items == other._items

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, str(v)) for k, v in self._items.items())))

    def redacted(self) -> dict[str, ClientValue]:
        """Secret properties as ``***``; credentials inside any URL value (a proxy) masked."""
        return {
            k: REDACTED if is_secret(k) else redact_text(v) if isinstance(v, str) else v
            for k, v in self._items.items()
        }

    def secret_values(self) -> Iterator[str]:
        """The values :meth:`redacted` hides: secret properties, passwords inside URLs."""
        for key, value in self._items.items():
            if is_secret(key) and not isinstance(value, bool):
                yield str(value)
            elif isinstance(value, str):
                yield from url_passwords(value)

    def __repr__(self) -> str:
        return f"Properties({self.redacted()!r})"


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    bootstrap_servers: str
    group_id: str
    group_protocol: GroupProtocol
    common: Properties  # [kafka]: every client
    consumer: Properties
    producer: Properties
    stats_interval: float  # seconds between librdkafka statistics (consumer lag)
    delivery: DeliveryMode = "at-least-once"
    transactional_id: str | None = None
    """Exactly-once: this replica's transactional id (distinct per replica, stable across its
    restarts, so that a restarted replica fences its former self at once)."""


@dataclass(frozen=True, slots=True)
class TopicSettings:
    inputs: tuple[str, ...]
    pattern: str | None  # a librdkafka regex subscription (starts with ^)
    alerts: str
    dead_letters: str
    group_id: str = "auditstream"

    @property
    def repartition(self) -> str:
        """Where stateful rules' candidates meet by group key (named after the group, as Kafka
        Streams names its internal topics after the application id)."""
        return f"{self.group_id}-stateful-repartition"

    @property
    def changelog(self) -> str:
        """The stateful rules' stores, durably: a compacted topic, one partition per store."""
        return f"{self.group_id}-stateful-changelog"


@dataclass(frozen=True, slots=True)
class StateSettings:
    """Where stateful rules keep their state and how late an event may be."""

    folder: Path = Path("/tmp/auditstream-state")
    """Local stores (a cache of the changelog: losing it costs a restore, not data)."""
    allowed_lateness: float = 600.0
    """Seconds of event time an event may arrive behind the newest one and still count."""


@dataclass(frozen=True, slots=True)
class TopicCreation:
    """What ``auditstream topics create`` asks the broker for (the service itself only checks
    that its topics exist): see :mod:`auditstream.stream.kafka.topics`."""

    partitions: int = 6
    replication_factor: int = -1  # -1: the broker's default.replication.factor
    alert_retention_ms: int = -1  # -1: compact only; else compact,delete with this retention
    dead_letter_retention_ms: int = 1_209_600_000  # 14 days: a dead letter waits for a person
    alert_config: Properties = field(default_factory=Properties)  # further topic configs
    dead_letter_config: Properties = field(default_factory=Properties)
    with_input: bool = False  # also create the input topics
    admin_timeout: float = 30.0  # seconds for the whole command, every broker call included


@dataclass(frozen=True, slots=True)
class AlertSettings:
    format: AlertFormat
    registry_url: str | None = field(repr=False)  # may hold user:password@
    registry_auth: Secret | None  # "user:password" (basic.auth.user.info)
    registry: Properties
    window: int  # alert ids remembered for suppressing repeats (about 240 bytes each)
    window_restore: float = 600.0
    """Seconds of the alert topic read back into the window on start and assignment (0: off)."""


@dataclass(frozen=True, slots=True)
class RuleSettings:
    paths: tuple[Path, ...]
    builtin: bool


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    batch_size: int
    poll_timeout: float
    commit_interval: float
    revoke_timeout: float
    shutdown_timeout: float
    startup_timeout: float
    max_message_bytes: int


@dataclass(frozen=True, slots=True)
class HttpSettings:
    host: str
    port: int  # 0 picks a free port
    stale_after: float  # /healthz fails when the loop has not turned for this long


@dataclass(frozen=True, slots=True)
class LogSettings:
    format: LogFormat
    level: str


@dataclass(frozen=True, slots=True)
class Settings:
    kafka: KafkaSettings
    topics: TopicSettings
    alerts: AlertSettings
    rules: RuleSettings
    runtime: RuntimeSettings
    http: HttpSettings
    log: LogSettings
    ignored_env: tuple[str, ...] = ()  # AUDITSTREAM_* variables that name no setting
    topic_creation: TopicCreation = field(default_factory=TopicCreation)
    state: StateSettings = field(default_factory=StateSettings)

    def describe(self) -> dict[str, Any]:
        """Everything, secrets replaced by ``***``: the one start-up log line."""
        return {
            "bootstrap_servers": self.kafka.bootstrap_servers,
            "group_id": self.kafka.group_id,
            "group_protocol": self.kafka.group_protocol,
            "input_topics": list(self.topics.inputs),
            "input_pattern": self.topics.pattern,
            "alert_topic": self.topics.alerts,
            "dead_letter_topic": self.topics.dead_letters,
            "alert_format": self.alerts.format,
            "registry_url": redact_url(self.alerts.registry_url),
            "registry_auth": REDACTED if self.alerts.registry_auth else None,
            "rules": [str(p) for p in self.rules.paths],
            "builtin_rules": self.rules.builtin,
            "kafka": self.kafka.common.redacted(),
            "consumer": self.kafka.consumer.redacted(),
            "producer": self.kafka.producer.redacted(),
            "registry": self.alerts.registry.redacted(),
            "http": f"{self.http.host}:{self.http.port}",
            "window": self.alerts.window,
            "commit_interval": self.runtime.commit_interval,
            "shutdown_timeout": self.runtime.shutdown_timeout,
            "topic_partitions": self.topic_creation.partitions,
            "topic_replication_factor": self.topic_creation.replication_factor,
            "state_dir": str(self.state.folder),
            "allowed_lateness": self.state.allowed_lateness,
        }

    def secret_values(self) -> tuple[str, ...]:
        """Every secret the settings hold, as given (the registry credentials, secret
        properties, passwords inside URLs): what a log line must never contain."""
        found: list[str] = []
        if self.alerts.registry_auth is not None:
            auth = self.alerts.registry_auth.reveal()
            found += [auth, auth.partition(":")[2]]
        found += url_passwords(self.alerts.registry_url or "")
        for table in (self.kafka.common, self.kafka.consumer, self.kafka.producer):
            found += table.secret_values()
        found += self.alerts.registry.secret_values()
        return tuple(sorted({s for s in found if len(s) >= MIN_SECRET_LENGTH}))


def redact_url(url: str | None) -> str | None:
    """The URL, or every URL of a comma-separated list, with ``user:password@`` as ``***@``."""
    return redact_text(url) if url else url


def redact_text(text: str) -> str:
    """``text`` with the credentials of every URL in it masked (error messages, log lines)."""
    return _URL_USERINFO.sub(f"{REDACTED}@", text) if "://" in text else text


def url_passwords(text: str) -> Iterable[str]:
    """The ``user:password`` of every URL in ``text`` that has a password, whole and the
    password alone, as given and percent-decoded (the form a client sends, and may print). A
    user name alone is not a secret (and masking it would mask ordinary words)."""
    for match in _URL_USERINFO.finditer(text):
        userinfo = match.group()[:-1]
        _user, colon, password = userinfo.partition(":")
        if colon and password:
            yield from {userinfo, password, unquote(userinfo), unquote(password)}

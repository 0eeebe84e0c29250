"""The topics the service needs (``auditstream topics create`` and ``check``): created when
missing, compared when present, never altered.

The service only checks at start-up that its output topics exist; what they should look like is
decided here, from the same :class:`Settings` as ``run``:

- the alert topic is compacted (``cleanup.policy=compact``): alerts are keyed by ``alert_id``,
  and at-least-once delivery can produce one alert twice after a crash, so a compacted topic
  ends with one record per alert (``compact,delete`` with ``alert_retention_ms``);
- the dead-letter topic keeps its records ``dead_letter_retention_ms`` (they wait for a person),
  whatever the broker's default retention;
- the input topics, only when asked (``create_input_topic``), with the broker's defaults;
- every topic at least ``topic_partitions`` partitions (replicas scale by partitions) and
  ``topic_replication_factor`` replicas (-1: the broker's ``default.replication.factor``).

An existing topic is compared, never changed: fewer partitions or replicas than asked, or another
value for a config we set, is a :class:`Difference` in the report, beside what we would have
created. More partitions or replicas than asked is not a difference (it is what a grown cluster
looks like). Changing a live topic is an operator's decision: a partition count change moves
keys, a cleanup policy change rewrites what the topic keeps.

Every broker call is bounded by one deadline for the whole command (``admin_timeout``): a dead
broker, or one that refuses us (authorization), is :class:`TopicsUnavailable`; a creation the
broker refuses for its settings (a replication factor above the broker count, an invalid config)
is a :class:`SettingsError` naming the setting.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # stubs re-export only from cimpl
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourceType,
    TopicMetadata,
)

from auditstream.stream.errors import InfrastructureError, SettingsError
from auditstream.stream.logs import librdkafka_logger
from auditstream.stream.settings_types import KafkaSettings, Settings, TopicCreation

Role = Literal["input", "alerts", "dead_letters", "repartition", "changelog"]
Status = Literal["created", "exists", "differs", "missing"]
BROKER_DEFAULT: Final = -1
_POLL: Final = 0.2  # seconds between metadata looks while created topics get their leaders
# Refusals that a change of our settings cures, by the setting to change.
_SETTINGS_REFUSALS: Final[Mapping[int, str]] = {
    KafkaError.INVALID_REPLICATION_FACTOR: "topic_replication_factor",
    KafkaError.INVALID_REPLICA_ASSIGNMENT: "topic_replication_factor",
    KafkaError.INVALID_PARTITIONS: "topic_partitions",
    KafkaError.INVALID_CONFIG: "alert_topic_config, dead_letter_topic_config, *_retention_ms",
    KafkaError.POLICY_VIOLATION: "topic_partitions, topic_replication_factor, *_topic_config",
    KafkaError.TOPIC_EXCEPTION: "alert_topic, dead_letter_topic, input_topics",
}
_NO_ANSWER: Final = frozenset({KafkaError._TRANSPORT, KafkaError._TIMED_OUT})
T = TypeVar("T")


class TopicsUnavailable(InfrastructureError):
    """No broker answered within the deadline, or it refused us (authentication,
    authorization): nothing about the topics could be decided."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic as we would create it."""

    role: Role
    name: str
    partitions: int
    replication_factor: int  # BROKER_DEFAULT: the broker's default.replication.factor
    config: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class TopicState:
    """One topic as the broker has it (``config``: only the configs its spec sets)."""

    partitions: int
    replication_factor: int  # the fewest replicas of any partition
    config: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Difference:
    what: str  # "partitions", "replication_factor" or a topic config's name
    found: str
    wanted: str


@dataclass(frozen=True, slots=True)
class TopicReport:
    spec: TopicSpec
    status: Status
    found: TopicState | None = None
    differences: tuple[Difference, ...] = ()


@dataclass(frozen=True, slots=True)
class TopicsReport:
    topics: tuple[TopicReport, ...]

    @property
    def as_desired(self) -> bool:
        """Every topic exists as we would create it (created now, or already there)."""
        return all(report.status in ("created", "exists") for report in self.topics)


# -- what we want (pure) ---------------------------------------------------------------------


REPARTITION_RETENTION_MS: Final = 604_800_000
"""7 days: a candidate is read within seconds; the margin is for a group stopped for days."""


def desired_topics(settings: Settings, *, stateful: bool = False) -> tuple[TopicSpec, ...]:
    """The topics to create, input topics first when asked; raises :class:`SettingsError` when
    input topics are asked for but named by a pattern (there is no name to create).

    ``stateful``: stateful rules are loaded, so their repartition topic (candidates by group
    key) and changelog (their stores, compacted) are wanted too, with as many partitions as
    the others (one store per partition)."""
    creation = settings.topic_creation
    topics = settings.topics
    specs: list[TopicSpec] = []
    if creation.with_input:
        if topics.pattern is not None:
            raise SettingsError(
                "cannot create input topics named by input_pattern: name them in input_topics",
                "create_input_topic (or --with-input)",
            )
        specs += [_spec("input", name, creation, {}) for name in dict.fromkeys(topics.inputs)]
    specs.append(_spec("alerts", topics.alerts, creation, alert_topic_config(creation)))
    dead_letters = {
        "retention.ms": str(creation.dead_letter_retention_ms),
        **creation.dead_letter_config,
    }
    specs.append(_spec("dead_letters", topics.dead_letters, creation, dead_letters))
    if stateful:
        repartition = {"cleanup.policy": "delete", "retention.ms": str(REPARTITION_RETENTION_MS)}
        specs.append(_spec("repartition", topics.repartition, creation, repartition))
        specs.append(_spec("changelog", topics.changelog, creation, {"cleanup.policy": "compact"}))
    return tuple(specs)


def alert_topic_config(creation: TopicCreation) -> dict[str, str]:
    """Compacted, so that a repeated alert (same ``alert_id``, the record key) is kept once."""
    if creation.alert_retention_ms == -1:
        ours = {"cleanup.policy": "compact"}
    else:
        ours = {
            "cleanup.policy": "compact,delete",
            "retention.ms": str(creation.alert_retention_ms),
        }
    return {**ours, **{k: str(v) for k, v in creation.alert_config.items()}}


def _spec(role: Role, name: str, creation: TopicCreation, config: Mapping[str, Any]) -> TopicSpec:
    return TopicSpec(
        role=role,
        name=name,
        partitions=creation.partitions,
        replication_factor=creation.replication_factor,
        config={k: str(v) for k, v in config.items()},
    )


def compare(spec: TopicSpec, found: TopicState) -> tuple[Difference, ...]:
    """What keeps ``found`` from being the topic we would create: too few partitions or
    replicas, another value for a config we set (a list such as ``cleanup.policy`` in any
    order)."""
    differences: list[Difference] = []
    if found.partitions < spec.partitions:
        differences.append(
            Difference("partitions", str(found.partitions), f"at least {spec.partitions}")
        )
    wanted_rf = spec.replication_factor
    if wanted_rf != BROKER_DEFAULT and found.replication_factor < wanted_rf:
        differences.append(
            Difference("replication_factor", str(found.replication_factor), f"at least {wanted_rf}")
        )
    for name, wanted in spec.config.items():
        value = found.config.get(name)
        if value is None or _normal(name, value) != _normal(name, wanted):
            differences.append(Difference(name, "(unset)" if value is None else value, wanted))
    return tuple(differences)


def _normal(name: str, value: str) -> str | frozenset[str]:
    if name == "cleanup.policy":
        return frozenset(part.strip().lower() for part in value.split(",") if part.strip())
    return value.strip()


# -- the broker --------------------------------------------------------------------------------


def admin_config(kafka: KafkaSettings) -> dict[str, Any]:
    """The admin client's configuration: ``[kafka]`` (security: SASL, TLS) as for every client,
    then the bootstrap servers; a group means nothing to it."""
    conf: dict[str, Any] = {
        **kafka.common,
        "bootstrap.servers": kafka.bootstrap_servers,
        "logger": librdkafka_logger("admin"),
    }
    conf.pop("group.id", None)
    return conf


class _Deadline:
    """The budget of the whole command: each call gets what is left of it."""

    def __init__(self, seconds: float, bootstrap: str) -> None:
        self.seconds = seconds
        self._bootstrap = bootstrap
        self._end = time.monotonic() + seconds

    def left(self) -> float:
        remaining = self._end - time.monotonic()
        if remaining <= 0:
            raise self.expired()
        return remaining

    def expired(self) -> TopicsUnavailable:
        return TopicsUnavailable(
            f"no answer from the broker at {self._bootstrap} within admin_timeout "
            f"({self.seconds:g} s)"
        )


def ensure_topics(settings: Settings, *, create: bool, stateful: bool = False) -> TopicsReport:
    """Create the missing topics (``create``), or only ask the broker whether it would accept
    them (``check``: ``validate_only``); compare the topics already there."""
    specs = desired_topics(settings, stateful=stateful)
    deadline = _Deadline(settings.topic_creation.admin_timeout, settings.kafka.bootstrap_servers)
    try:
        admin = AdminClient(admin_config(settings.kafka))
    except KafkaException as err:
        raise SettingsError(f"librdkafka refused the configuration: {err}") from err
    present = _list_topics(admin, deadline)
    missing = [spec for spec in specs if spec.name not in present]
    refused_as_existing = _create(admin, missing, deadline, validate_only=not create)
    created = [spec.name for spec in missing if spec.name not in refused_as_existing]
    if create and created:
        present = _await_leaders(admin, created, deadline)
    elif refused_as_existing:  # created meanwhile by someone else: compare it like the others
        present = _list_topics(admin, deadline)
    existing = [spec for spec in specs if spec.name in present and spec.name not in created]
    configs = _describe_configs(admin, existing, deadline)
    reports: list[TopicReport] = []
    for spec in specs:
        if spec.name in created:
            reports.append(TopicReport(spec, "created" if create else "missing"))
            continue
        state = _state(present[spec.name], configs.get(spec.name, {}), spec)
        differences = compare(spec, state)
        reports.append(
            TopicReport(spec, "differs" if differences else "exists", state, differences)
        )
    return TopicsReport(tuple(reports))


def _list_topics(admin: AdminClient, deadline: _Deadline) -> dict[str, TopicMetadata]:
    """Every topic the broker lets us see (asking for one by name could create it where the
    broker auto-creates topics)."""
    try:
        metadata = admin.list_topics(timeout=deadline.left())
    except KafkaException as err:
        raise _unavailable("listing topics", err, deadline) from err
    return {name: topic for name, topic in metadata.topics.items() if topic.error is None}


def _create(
    admin: AdminClient, specs: Sequence[TopicSpec], deadline: _Deadline, *, validate_only: bool
) -> set[str]:
    """Create (or validate) ``specs``; the names the broker says exist already (a race)."""
    if not specs:
        return set()
    new = [
        NewTopic(s.name, s.partitions, s.replication_factor, config=dict(s.config)) for s in specs
    ]
    budget = deadline.left()
    futures = admin.create_topics(
        new, operation_timeout=budget, request_timeout=budget, validate_only=validate_only
    )
    exists: set[str] = set()
    for spec in specs:
        try:
            _result(futures[spec.name], deadline)
        except KafkaException as err:
            error = _error_of(err)
            if error is not None and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                exists.add(spec.name)
                continue
            if error is not None and error.code() in _SETTINGS_REFUSALS:
                raise SettingsError(
                    f"the broker refused to create {spec.name}: {error.str()}",
                    _SETTINGS_REFUSALS[error.code()],
                ) from err
            raise _unavailable(f"creating {spec.name}", err, deadline) from err
    return exists


def _await_leaders(
    admin: AdminClient, names: Sequence[str], deadline: _Deadline
) -> dict[str, TopicMetadata]:
    """Wait until every created topic has a leader for each partition, so that a service
    started right after this command finds its topics usable."""
    while True:
        present = _list_topics(admin, deadline)
        if all(name in present and _led(present[name]) for name in names):
            return present
        time.sleep(min(_POLL, deadline.left()))


def _led(topic: TopicMetadata) -> bool:
    partitions = topic.partitions.values()
    return bool(partitions) and all(p.error is None and p.leader >= 0 for p in partitions)


def _describe_configs(
    admin: AdminClient, specs: Sequence[TopicSpec], deadline: _Deadline
) -> dict[str, dict[str, str]]:
    """The configs each topic's spec sets, as the broker applies them."""
    wanted = [spec for spec in specs if spec.config]
    if not wanted:
        return {}
    resources = [ConfigResource(ResourceType.TOPIC, spec.name) for spec in wanted]
    futures = admin.describe_configs(resources, request_timeout=deadline.left())
    found: dict[str, dict[str, str]] = {}
    for resource, future in futures.items():
        try:
            entries = _result(future, deadline)
        except KafkaException as err:
            raise _unavailable(f"describing {resource.name}", err, deadline) from err
        found[resource.name] = {
            name: entry.value for name, entry in entries.items() if entry.value is not None
        }
    return found


def _state(topic: TopicMetadata, config: Mapping[str, str], spec: TopicSpec) -> TopicState:
    partitions = list(topic.partitions.values())
    replicas = min((len(p.replicas) for p in partitions), default=0)
    return TopicState(len(partitions), replicas, {k: config[k] for k in spec.config if k in config})


def _result(future: Future[T], deadline: _Deadline) -> T:
    try:
        return future.result(timeout=deadline.left())
    except FutureTimeout:
        raise deadline.expired() from None


def _error_of(err: KafkaException) -> KafkaError | None:
    error = err.args[0] if err.args else None
    return error if isinstance(error, KafkaError) else None


def _unavailable(what: str, err: KafkaException, deadline: _Deadline) -> TopicsUnavailable:
    """No answer (transport, timeout) says so with the deadline; any other error is the
    broker's answer (authentication, authorization) and is quoted."""
    error = _error_of(err)
    if error is None or error.code() in _NO_ANSWER:
        detail = error.str() if error is not None else str(err)
        return TopicsUnavailable(f"{what}: {deadline.expired()} ({detail})")
    return TopicsUnavailable(f"{what}: the broker refused: {error.name()}: {error.str()}")

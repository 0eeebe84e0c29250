"""librdkafka configuration for our clients, merged in one fixed order.

Our defaults, then the user's properties (``[kafka]`` for every client, then ``[consumer]`` or
``[producer]``), then the keys at-least-once depends on, which nobody may change:

- consumer: ``enable.auto.commit=false`` and ``enable.auto.offset.store=false`` (offsets are
  committed by :mod:`auditstream.stream.kafka.checkpoint` only after the outputs are
  acknowledged), and cooperative rebalancing: ``partition.assignment.strategy=cooperative-sticky``
  with the classic protocol, or ``group.protocol=consumer`` (KIP-848, Kafka 4.0+ brokers), where
  the broker assigns and the client-side assignor and session settings do not exist;
- producer: ``enable.idempotence=true`` and ``acks=all`` (no duplicates from producer retries,
  no acknowledgement before the in-sync replicas have the record).

A user property that contradicts an enforced one is rejected with an error naming both, rather
than silently overridden. The caller's mappings are never mutated: every function returns a new
dict.

Memory stays bounded whatever the user gives (:data:`PRODUCER_BOUNDS`, checked on the merged
configuration): librdkafka lets ``message.timeout.ms=0`` wait forever for an acknowledgement (the
offset tracker then keeps an entry for every later message with output, behind the one that never
leaves) and ``queue.buffering.max.messages=0`` lift the queue's count limit; its default byte
limit, ``queue.buffering.max.kbytes``, is 1 GiB, which a dead-letter flood fills while the broker
is slow. Our default is 64 MiB, like the consumer's own prefetch default
(``queued.max.messages.kbytes``): tens of thousands of typical 1-3 KB records, seconds of full-rate
output at our 2 ms linger; past it ``produce`` pushes back (:class:`Delivery` waits, bounded)
instead of the replica growing towards its memory limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from auditstream.stream.errors import SettingsError
from auditstream.stream.settings_types import ClientValue, KafkaSettings

ClientConfig = dict[str, object]

CONSUMER_DEFAULTS: Final[Mapping[str, ClientValue]] = {
    "auto.offset.reset": "earliest",
    "client.id": "auditstream",
    "socket.keepalive.enable": True,
    # Fail over quickly after an outage instead of backing off for the default 10 s.
    "reconnect.backoff.max.ms": 2000,
    # With a backlog the prefetch queue passes its 64 MiB limit; librdkafka then postpones the
    # partition's next fetch by this long (1,000 ms by default) while we drain the queue in about
    # half that, so the replica idled half of every second: 39,000 events/s with a core half
    # used, 82,000 with this (docs/benchmarks.md). Only a full queue waits; an idle one never.
    "fetch.queue.backoff.ms": 20,
}
PRODUCER_DEFAULTS: Final[Mapping[str, ClientValue]] = {
    "client.id": "auditstream",
    "linger.ms": 2,  # alerts are few: waiting to batch them only delays them
    "compression.type": "lz4",
    "socket.keepalive.enable": True,
    "reconnect.backoff.max.ms": 2000,
    "queue.buffering.max.kbytes": 64 * 1024,  # 64 MiB instead of 1 GiB: see the module doc
}
CONSUMER_ENFORCED: Final[Mapping[str, ClientValue]] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
}
PROTOCOL_ENFORCED: Final[Mapping[str, Mapping[str, ClientValue]]] = {
    "classic": {"group.protocol": "classic", "partition.assignment.strategy": "cooperative-sticky"},
    "consumer": {"group.protocol": "consumer"},
}
# Classic-protocol settings that KIP-848 moved to the broker; librdkafka refuses them there.
CLASSIC_ONLY: Final = frozenset(
    {"partition.assignment.strategy", "session.timeout.ms", "heartbeat.interval.ms"}
)
PRODUCER_ENFORCED: Final[Mapping[str, ClientValue]] = {"enable.idempotence": True, "acks": "all"}
# Properties that have a setting of their own: one place to give them, not two.
OWNED: Final[Mapping[str, str]] = {
    "bootstrap.servers": "bootstrap_servers",
    "group.id": "group_id",
    "transactional.id": "transactional_id",
    "statistics.interval.ms": "stats_interval",
}
_SYNONYMS: Final[Mapping[str, str]] = {"-1": "all", "1": "true", "0": "false"}
LIBRDKAFKA_MESSAGE_MAX_BYTES: Final = 1_000_000  # librdkafka's default message.max.bytes


@dataclass(frozen=True, slots=True)
class Bound:
    """The values a producer property may take so that memory stays bounded, and why."""

    low: int
    high: int
    why: str


_TIMEOUT: Final = Bound(
    1,
    900_000,
    "0 waits forever for an acknowledgement, and offsets behind an output that never leaves "
    "pile up in memory without bound; at most 15 minutes (librdkafka's default is 5)",
)
PRODUCER_BOUNDS: Final[Mapping[str, Bound]] = {
    "message.timeout.ms": _TIMEOUT,
    "delivery.timeout.ms": _TIMEOUT,  # librdkafka's alias of message.timeout.ms
    "queue.buffering.max.messages": Bound(
        1, 1_000_000, "0 lifts the limit on queued records; at most 10 times the default"
    ),
    "queue.buffering.max.kbytes": Bound(
        1024, 512 * 1024, "the producer queue must stay between 1 MiB and 512 MiB"
    ),
}


EXACTLY_ONCE_CONSUMER: Final[Mapping[str, ClientValue]] = {"isolation.level": "read_committed"}
EXACTLY_ONCE_PRODUCER_DEFAULTS: Final[Mapping[str, ClientValue]] = {
    # A replica killed mid-transaction and never restarted holds back read_committed readers
    # (the alert topic's consumers) until the broker aborts it: at most this long.
    "transaction.timeout.ms": 15_000,
}

GROUP_ONLY: Final = frozenset(
    {"group.id", "group.protocol", "group.instance.id", "partition.assignment.strategy",
     "session.timeout.ms", "heartbeat.interval.ms", "enable.auto.offset.store",
     "statistics.interval.ms"}
)  # fmt: skip
"""Consumer properties of group membership, left out of the readers that assign partitions
themselves (the alert log, the changelog restore)."""


def consumer_config(kafka: KafkaSettings) -> ClientConfig:
    """The consumer's configuration (without callbacks, which the service adds)."""
    user = {**kafka.common, **kafka.consumer}
    _reject_owned(user, "consumer")
    if kafka.group_protocol == "consumer":
        for key in sorted(CLASSIC_ONLY & user.keys()):
            raise SettingsError(
                f"{key} does not exist with group_protocol=consumer (KIP-848: the broker "
                "assigns partitions and owns the session); remove it or use classic",
                f"[consumer] {key}",
            )
    enforced = {**CONSUMER_ENFORCED, **PROTOCOL_ENFORCED[kafka.group_protocol]}
    if kafka.delivery == "exactly-once":  # an input written transactionally: committed only
        enforced.update(EXACTLY_ONCE_CONSUMER)
    ours = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "group.id": kafka.group_id,
        "statistics.interval.ms": int(kafka.stats_interval * 1000),
        **CONSUMER_DEFAULTS,
    }
    return merge(ours, user, enforced, role="consumer")


def producer_config(kafka: KafkaSettings) -> ClientConfig:
    """The producer's configuration (without callbacks, which the service adds)."""
    user = {**kafka.common, **kafka.producer}
    _reject_owned(user, "producer")
    user.pop("group.id", None)  # harmless in [kafka]; a producer has no group
    ours = {"bootstrap.servers": kafka.bootstrap_servers, **PRODUCER_DEFAULTS}
    enforced: dict[str, ClientValue] = dict(PRODUCER_ENFORCED)
    if kafka.delivery == "exactly-once":
        ours.update(EXACTLY_ONCE_PRODUCER_DEFAULTS)
        enforced["transactional.id"] = kafka.transactional_id or ""
    config = merge(ours, user, enforced, role="producer")
    check_bounds(config, PRODUCER_BOUNDS, role="producer")
    _check_queue_holds_records(config)
    return config


def check_bounds(config: Mapping[str, object], bounds: Mapping[str, Bound], *, role: str) -> None:
    """Raise :class:`SettingsError` for a property outside its bound (or not an integer)."""
    for key, bound in bounds.items():
        if key not in config:
            continue
        value = config[key]
        try:
            number = int(str(value).strip()) if not isinstance(value, bool) else None
        except ValueError:
            number = None
        if number is None:
            raise SettingsError(f"expected an integer, got {value!r}", f"[{role}] {key}")
        if not bound.low <= number <= bound.high:
            raise SettingsError(
                f"{key}={number} is refused: must be between {bound.low} and {bound.high} "
                f"({bound.why})",
                f"[{role}] {key}",
            )


def _check_queue_holds_records(config: Mapping[str, object]) -> None:
    """The queue must hold two of the largest records librdkafka accepts (``message.max.bytes``):
    a record that can never be queued would stop the replica on it after every restart."""
    largest = int(str(config.get("message.max.bytes", LIBRDKAFKA_MESSAGE_MAX_BYTES)))
    queue = int(str(config["queue.buffering.max.kbytes"])) * 1024
    if queue < 2 * largest:
        raise SettingsError(
            f"the producer queue ({queue} bytes) must hold two records of message.max.bytes "
            f"({largest} bytes): raise it or lower message.max.bytes",
            "[producer] queue.buffering.max.kbytes",
        )


def check_client_configs(kafka: KafkaSettings) -> None:
    """Build both configurations once at start-up so that conflicts fail there."""
    consumer_config(kafka)
    producer_config(kafka)


def merge(
    defaults: Mapping[str, object],
    user: Mapping[str, object],
    enforced: Mapping[str, object],
    *,
    role: str,
) -> ClientConfig:
    """``defaults``, then ``user``, then ``enforced``, in a new dict.

    Raises :class:`SettingsError` when ``user`` gives an enforced key a different value; the
    same value in another spelling (``acks=-1``, ``"true"``) is accepted.
    """
    for key, required in enforced.items():
        if key in user and _normal(user[key]) != _normal(required):
            raise SettingsError(
                f"{key}={user[key]!r} contradicts {key}={_normal(required)}, which auditstream "
                f"requires for its delivery guarantee; remove it",
                f"[{role}] {key}",
            )
    return {**defaults, **user, **enforced}


def _reject_owned(user: Mapping[str, object], role: str) -> None:
    for key, setting in OWNED.items():
        if key in user and not (role == "producer" and key == "group.id"):
            raise SettingsError(f"set {key} with the {setting} setting instead", f"[{role}] {key}")


def _normal(value: object) -> str:
    text = str(value).strip().lower()
    return _SYNONYMS.get(text, text)

"""Client config merge: our defaults, then the user's, then what at-least-once requires."""

from __future__ import annotations

import os
import socket

import pytest

from auditstream.stream.errors import SettingsError
from auditstream.stream.kafka.config import consumer_config, merge, producer_config
from auditstream.stream.settings import load_settings
from auditstream.stream.settings_types import KafkaSettings, Properties

_ENV_MINIMAL = {
    "AUDITSTREAM_BOOTSTRAP_SERVERS": "env:9092",
    "AUDITSTREAM_INPUT_TOPICS": "audit",
    "AUDITSTREAM_ALERT_TOPIC": "alerts",
    "AUDITSTREAM_DEAD_LETTER_TOPIC": "dlq",
}


def kafka(
    common: dict[str, str] | None = None,
    consumer: dict[str, str] | None = None,
    producer: dict[str, str] | None = None,
    protocol: str = "classic",
) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers="b:9092",
        group_id="g",
        group_protocol=protocol,  # type: ignore[arg-type]
        common=Properties(common),
        consumer=Properties(consumer),
        producer=Properties(producer),
        stats_interval=2.0,
    )


def test_consumer_enforces_manual_offsets_and_cooperative_rebalancing() -> None:
    conf = consumer_config(kafka(common={"linger.ms": "3"}, consumer={"fetch.min.bytes": "9"}))
    assert conf["enable.auto.commit"] is False
    assert conf["enable.auto.offset.store"] is False
    assert conf["partition.assignment.strategy"] == "cooperative-sticky"
    assert conf["group.protocol"] == "classic"
    assert conf["bootstrap.servers"] == "b:9092"
    assert conf["group.id"] == "g"
    assert conf["statistics.interval.ms"] == 2000
    assert conf["fetch.min.bytes"] == "9"
    assert conf["auto.offset.reset"] == "earliest"  # our default


def test_kip848_protocol_has_no_client_assignor() -> None:
    conf = consumer_config(kafka(protocol="consumer"))
    assert conf["group.protocol"] == "consumer"
    assert "partition.assignment.strategy" not in conf


def test_producer_is_idempotent_with_acks_all() -> None:
    conf = producer_config(kafka(producer={"linger.ms": "50", "acks": "-1"}))
    assert conf["enable.idempotence"] is True
    assert conf["acks"] == "all"
    assert conf["linger.ms"] == "50"  # the user's value beats our default
    assert "group.id" not in conf


def test_user_may_override_defaults_but_not_enforced_keys() -> None:
    conf = consumer_config(kafka(consumer={"auto.offset.reset": "latest"}))
    assert conf["auto.offset.reset"] == "latest"
    with pytest.raises(SettingsError, match=r"\[producer\] enable.idempotence"):
        producer_config(kafka(common={"enable.idempotence": "false"}))
    with pytest.raises(SettingsError, match=r"partition\.assignment\.strategy"):
        consumer_config(kafka(consumer={"partition.assignment.strategy": "range"}))


def test_merge_never_mutates_its_inputs() -> None:
    defaults = {"a": 1}
    user = {"a": 2, "b": "true"}
    enforced = {"b": True}
    merged = merge(defaults, user, enforced, role="consumer")
    assert merged == {"a": 2, "b": True}
    assert defaults == {"a": 1}
    assert user == {"a": 2, "b": "true"}
    merged["a"] = 99
    assert defaults == {"a": 1}


def test_exactly_once_configures_transactions_and_read_committed() -> None:
    env = {**_ENV_MINIMAL, "AUDITSTREAM_DELIVERY": "exactly-once",
           "AUDITSTREAM_TRANSACTIONAL_ID": "auditstream-replica-0"}  # fmt: skip
    kafka = load_settings(None, env).kafka
    assert producer_config(kafka)["transactional.id"] == "auditstream-replica-0"
    assert producer_config(kafka)["transaction.timeout.ms"] == 15_000
    assert consumer_config(kafka)["isolation.level"] == "read_committed"
    plain = load_settings(None, _ENV_MINIMAL).kafka
    assert "transactional.id" not in producer_config(plain)
    assert "isolation.level" not in consumer_config(plain)


def test_exactly_once_defaults_to_a_transactional_id_per_replica() -> None:
    env = {**_ENV_MINIMAL, "AUDITSTREAM_DELIVERY": "exactly-once"}
    kafka = load_settings(None, env).kafka
    assert kafka.transactional_id == (
        f"auditstream-auditstream-{socket.gethostname()}-{os.getpid()}"
    )
    env["AUDITSTREAM_CONSUMER__GROUP_INSTANCE_ID"] = "auditstream-2"
    assert (
        load_settings(None, env).kafka.transactional_id == "auditstream-auditstream-auditstream-2"
    )


def test_exactly_once_refuses_read_uncommitted_and_a_raw_transactional_id() -> None:
    env = {**_ENV_MINIMAL, "AUDITSTREAM_DELIVERY": "exactly-once",
           "AUDITSTREAM_CONSUMER__ISOLATION_LEVEL": "read_uncommitted"}  # fmt: skip
    with pytest.raises(SettingsError, match=r"isolation\.level"):
        load_settings(None, env)
    env = {**_ENV_MINIMAL, "AUDITSTREAM_PRODUCER__TRANSACTIONAL_ID": "x"}
    with pytest.raises(SettingsError, match="transactional_id setting"):
        load_settings(None, env)


def test_a_full_prefetch_queue_is_refilled_within_20_ms_unless_the_user_says_otherwise() -> None:
    # librdkafka's default (1,000 ms) left a replica with a backlog idle half of every second.
    assert consumer_config(kafka())["fetch.queue.backoff.ms"] == 20
    assert (
        consumer_config(kafka(consumer={"fetch.queue.backoff.ms": "500"}))["fetch.queue.backoff.ms"]
        == "500"
    )

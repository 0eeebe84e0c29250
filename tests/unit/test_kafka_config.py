"""Client config merge: our defaults, then the user's, then what at-least-once requires."""

from __future__ import annotations

import pytest

from auditstream.stream.errors import SettingsError
from auditstream.stream.kafka.config import consumer_config, merge, producer_config
from auditstream.stream.settings_types import KafkaSettings, Properties


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

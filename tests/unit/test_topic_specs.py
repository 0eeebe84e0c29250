"""What `auditstream topics create` asks for and how it judges a topic already there (no broker):
the specs built from the settings, the comparison, the settings that feed them, the report."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException

from auditstream.stream.cli.main import build_parser
from auditstream.stream.cli.topics import (
    EXIT_CONFIG,
    _flags,
    render_text,
    report_json,
    topics_command,
)
from auditstream.stream.errors import SettingsError
from auditstream.stream.kafka.topics import (
    Difference,
    TopicReport,
    TopicSpec,
    TopicsReport,
    TopicState,
    _Deadline,
    _unavailable,
    compare,
    desired_topics,
)
from auditstream.stream.settings import load_settings
from auditstream.stream.settings_types import Settings

BASE = {
    "AUDITSTREAM_BOOTSTRAP_SERVERS": "127.0.0.1:9",
    "AUDITSTREAM_INPUT_TOPICS": "audit",
    "AUDITSTREAM_ALERT_TOPIC": "alerts",
    "AUDITSTREAM_DEAD_LETTER_TOPIC": "dlq",
}


def settings(**extra: str) -> Settings:
    return load_settings(
        None, {**BASE, **{f"AUDITSTREAM_{k.upper()}": v for k, v in extra.items()}}
    )


def by_role(specs: tuple[TopicSpec, ...]) -> dict[str, TopicSpec]:
    return {spec.role: spec for spec in specs}


def test_defaults_compact_alerts_and_keep_dead_letters_fourteen_days() -> None:
    specs = desired_topics(settings())
    assert [s.role for s in specs] == ["alerts", "dead_letters"]  # input only when asked
    alerts, dead = specs
    assert (alerts.name, alerts.partitions, alerts.replication_factor) == ("alerts", 6, -1)
    assert alerts.config == {"cleanup.policy": "compact"}
    assert dead.config == {"retention.ms": str(14 * 24 * 3600 * 1000)}


def test_alert_retention_makes_the_topic_compact_and_delete() -> None:
    alerts = by_role(desired_topics(settings(alert_retention_ms="604800000")))["alerts"]
    assert alerts.config == {"cleanup.policy": "compact,delete", "retention.ms": "604800000"}


def test_partitions_replication_and_further_configs_come_from_the_settings() -> None:
    specs = by_role(
        desired_topics(
            settings(
                topic_partitions="12",
                topic_replication_factor="3",
                alert_topic_config="min.insync.replicas=2,segment.ms=3600000",
                dead_letter_topic_config="cleanup.policy=compact,delete,max.message.bytes=2097152",
            )
        )
    )
    assert {(s.partitions, s.replication_factor) for s in specs.values()} == {(12, 3)}
    assert specs["alerts"].config == {
        "cleanup.policy": "compact",
        "min.insync.replicas": "2",
        "segment.ms": "3600000",
    }
    # A piece without "=" continues the value before it: a list-valued config survives.
    assert specs["dead_letters"].config["cleanup.policy"] == "compact,delete"
    assert specs["dead_letters"].config["max.message.bytes"] == "2097152"


def test_a_toml_table_gives_topic_configs(tmp_path: Path) -> None:
    config = tmp_path / "a.toml"
    config.write_text('[alert_topic_config]\n"min.insync.replicas" = 2\n"preallocate" = true\n')
    loaded = load_settings(config, BASE)
    assert dict(loaded.topic_creation.alert_config) == {
        "min.insync.replicas": "2",
        "preallocate": "true",
    }


def test_input_topics_are_created_only_when_asked_and_once_each() -> None:
    specs = desired_topics(settings(input_topics="a,b,a", create_input_topic="true"))
    assert [(s.role, s.name) for s in specs][:2] == [("input", "a"), ("input", "b")]
    assert by_role(specs)["input"].config == {}


def test_input_topics_named_by_a_pattern_cannot_be_created() -> None:
    env = {**BASE, "AUDITSTREAM_INPUT_PATTERN": "^audit-.*", "AUDITSTREAM_CREATE_INPUT_TOPIC": "1"}
    del env["AUDITSTREAM_INPUT_TOPICS"]
    with pytest.raises(SettingsError, match="input_pattern"):
        desired_topics(load_settings(None, env))


@pytest.mark.parametrize(
    ("extra", "culprit", "message"),
    [
        ({"topic_replication_factor": "0"}, "AUDITSTREAM_TOPIC_REPLICATION_FACTOR", "-1 or"),
        ({"topic_partitions": "0"}, "AUDITSTREAM_TOPIC_PARTITIONS", "between 1"),
        ({"dead_letter_retention_ms": "0"}, "AUDITSTREAM_DEAD_LETTER_RETENTION_MS", "-1 or"),
        ({"alert_topic_config": "cleanup.policy=delete"}, "AUDITSTREAM_ALERT_TOPIC_CONFIG",
         "compacted"),
        ({"alert_topic_config": "retention.ms=5"}, "AUDITSTREAM_ALERT_TOPIC_CONFIG",
         "alert_retention_ms"),
        ({"dead_letter_topic_config": "retention.ms=5"}, "AUDITSTREAM_DEAD_LETTER_TOPIC_CONFIG",
         "dead_letter_retention_ms"),
        ({"alert_topic_config": "Bad Name=1"}, "AUDITSTREAM_ALERT_TOPIC_CONFIG", "topic config"),
        ({"alert_topic_config": "compact"}, "AUDITSTREAM_ALERT_TOPIC_CONFIG", "NAME=VALUE"),
        ({"admin_timeout": "0"}, "AUDITSTREAM_ADMIN_TIMEOUT", "between 1"),
    ],
)  # fmt: skip
def test_invalid_topic_settings_name_the_culprit(
    extra: Mapping[str, str], culprit: str, message: str
) -> None:
    with pytest.raises(SettingsError, match=message) as caught:
        settings(**extra)
    assert caught.value.source == culprit


SPEC = TopicSpec(
    "alerts", "alerts", 6, 3, {"cleanup.policy": "compact,delete", "retention.ms": "5"}
)


def test_the_same_topic_has_no_difference_in_any_list_order() -> None:
    found = TopicState(6, 3, {"cleanup.policy": "delete,compact", "retention.ms": "5"})
    assert compare(SPEC, found) == ()


def test_more_partitions_or_replicas_than_asked_is_no_difference() -> None:
    assert compare(SPEC, TopicState(24, 5, dict(SPEC.config))) == ()


def test_fewer_partitions_and_another_policy_are_each_reported() -> None:
    found = TopicState(3, 1, {"cleanup.policy": "delete", "retention.ms": "5"})
    assert compare(SPEC, found) == (
        Difference("partitions", "3", "at least 6"),
        Difference("replication_factor", "1", "at least 3"),
        Difference("cleanup.policy", "delete", "compact,delete"),
    )


def test_a_config_the_broker_does_not_report_is_a_difference() -> None:
    assert compare(SPEC, TopicState(6, 3, {"cleanup.policy": "compact,delete"})) == (
        Difference("retention.ms", "(unset)", "5"),
    )


def test_the_brokers_default_replication_factor_is_not_compared() -> None:
    spec = TopicSpec("dead_letters", "dlq", 1, -1, {})
    assert compare(spec, TopicState(1, 1, {})) == ()


def test_flags_are_settings_and_repeated_configs_join() -> None:
    args = build_parser().parse_args(
        ["topics", "create", "--bootstrap-servers", "h:1", "--with-input", "--topic-partitions",
         "3", "--alert-topic-config", "min.insync.replicas=2", "--alert-topic-config",
         "segment.ms=10", "-X", "client.id=me", "--json"]
    )  # fmt: skip
    flags = _flags(args)
    assert flags == {
        "bootstrap_servers": "h:1",
        "create_input_topic": True,
        "topic_partitions": "3",
        "alert_topic_config": "min.insync.replicas=2,segment.ms=10",
        "kafka": {"client.id": "me"},
    }
    loaded = load_settings(None, BASE, flags)
    assert loaded.topic_creation.partitions == 3
    assert loaded.topic_creation.with_input is True


def test_invalid_settings_exit_2_without_a_broker_and_json_says_why() -> None:
    args = build_parser().parse_args(["topics", "check", "--json", "--topic-partitions", "0"])
    out = io.StringIO()
    assert topics_command(args, BASE, out) == EXIT_CONFIG
    answer = json.loads(out.getvalue())
    assert answer["exit_code"] == EXIT_CONFIG
    assert "--topic-partitions" in answer["error"]


def test_the_text_report_shows_what_differs_and_what_we_would_create() -> None:
    differs = TopicReport(
        SPEC, "differs", TopicState(3, 3, {}), (Difference("partitions", "3", "at least 6"),)
    )
    created = TopicReport(TopicSpec("dead_letters", "dlq", 6, -1, {}), "created")
    text = render_text(TopicsReport((differs, created)), create=True)
    assert "DIFFERS  alerts" in text
    assert (
        "we would create: 6 partitions, replication factor 3, cleanup.policy=compact,delete" in text
    )
    assert "    partitions: found 3, wanted at least 6" in text
    assert "created  dead letters dlq" in text
    assert text.splitlines()[-1] == (
        "some topics are not as wanted: 1 created, 1 differ (not changed)"
    )


def test_the_json_report_has_wanted_found_and_differences() -> None:
    report = TopicsReport((TopicReport(SPEC, "exists", TopicState(6, 3, dict(SPEC.config))),))
    answer = report_json(report, settings(), "check", 0)
    assert answer["as_desired"] is True
    topics = answer["topics"]
    assert isinstance(topics, list)
    (topic,) = topics
    assert topic["wanted"] == {
        "partitions": 6,
        "replication_factor": 3,
        "config": dict(SPEC.config),
    }
    assert topic["found"]["partitions"] == 6
    assert topic["differences"] == []
    json.dumps(answer)  # serialisable as it is


def test_a_refusal_quotes_the_broker_and_silence_names_the_deadline() -> None:
    deadline = _Deadline(5.0, "kafka:9092")
    refused = _unavailable(
        "listing topics",
        KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)),
        deadline,
    )
    assert "the broker refused: TOPIC_AUTHORIZATION_FAILED" in str(refused)
    silent = _unavailable(
        "listing topics", KafkaException(KafkaError(KafkaError._TRANSPORT)), deadline
    )
    assert "no answer from the broker at kafka:9092 within admin_timeout (5 s)" in str(silent)


def test_run_still_accepts_settings_files_with_topic_settings(tmp_path: Path) -> None:
    """One settings file serves both commands: run ignores what only topics create reads."""
    config = tmp_path / "a.toml"
    config.write_text("topic_partitions = 12\ncreate_input_topic = true\n")
    loaded = load_settings(config, BASE)
    assert (loaded.topic_creation.partitions, loaded.topic_creation.with_input) == (12, True)
    assert loaded.describe()["topic_partitions"] == 12


def test_stateful_rules_add_a_repartition_and_a_compacted_changelog_topic_named_after_the_group() -> (
    None
):
    plain = {spec.role for spec in desired_topics(settings())}
    assert plain == {"alerts", "dead_letters"}
    specs = by_role(desired_topics(settings(group_id="audit-prod"), stateful=True))
    assert specs["repartition"].name == "audit-prod-stateful-repartition"
    assert specs["changelog"].name == "audit-prod-stateful-changelog"
    assert specs["changelog"].config == {"cleanup.policy": "compact"}
    assert specs["repartition"].config["cleanup.policy"] == "delete"
    assert specs["repartition"].partitions == specs["changelog"].partitions == 6

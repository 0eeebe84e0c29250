"""Rebalance: three replicas in one group over six partitions; mid-run one leaves (SIGTERM) and
another joins. Cooperative rebalancing moves only the partitions that change owner; the one that
leaves commits its acknowledged work on revoke. Nothing is lost.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.harness._jvm import wait_until
from tests.integration.service.conftest import (
    ServiceProcess,
    Topics,
    alert_keys,
    committed,
    end_offsets,
    produce,
    read_all,
    service_env,
    wait_committed_to_end,
)
from tests.integration.service.corpus import build_corpus, scan_alert_ids

pytestmark = pytest.mark.integration


def test_leave_and_join_mid_run_loses_nothing(
    bootstrap: str,
    topics: Topics,
    group_id: str,
    subprocesses: Callable[[Mapping[str, str]], ServiceProcess],
    tmp_path: Path,
) -> None:
    records = build_corpus(execs=1_000, routine=30_000, seed=99)
    expected = set(scan_alert_ids(records, tmp_path))
    produce(bootstrap, topics.inputs, records)
    ends = end_offsets(bootstrap, topics.inputs)
    env = service_env(bootstrap, topics, group_id, commit_interval="1")
    replicas = [subprocesses(env) for _ in range(3)]

    def everyone_owns_partitions() -> bool:
        return all(_owned(r) > 0 for r in replicas)

    wait_until(everyone_owns_partitions, timeout=60, what="three replicas sharing the partitions",
               alive=lambda: [r.check_alive() for r in replicas] and None)  # fmt: skip
    assert sum(_owned(r) for r in replicas) == topics.partitions
    time.sleep(2.0)  # let them work a little before the change

    leaving, staying = replicas[0], replicas[1:]
    before = committed(bootstrap, group_id, topics.inputs, topics.partitions)
    assert before != ends, "the input was finished before the rebalance: make it longer"
    leaving.signal(signal.SIGTERM)
    assert leaving.wait(15) == 0, leaving.log_tail()
    joining = subprocesses(env)
    wait_until(lambda: _owned(joining) > 0, timeout=60, what="the new replica to get partitions",
               alive=joining.check_alive)  # fmt: skip
    mid = committed(bootstrap, group_id, topics.inputs, topics.partitions)
    print(f"\ncommitted before the leave {sum(before.values())}, after the join "
          f"{sum(mid.values())}, end {sum(ends.values())}")  # fmt: skip
    assert mid != ends, "the input was finished before the join: make it longer"

    current = [*staying, joining]
    wait_committed_to_end(bootstrap, group_id, topics.inputs, timeout=180,
                          alive=lambda: [r.check_alive() for r in current] and None)  # fmt: skip
    for replica in current:
        replica.signal(signal.SIGTERM)
    for replica in current:
        assert replica.wait(15) == 0, replica.log_tail()

    left = _events(leaving)
    assert "partitions_revoked" in left and left.index("partitions_revoked") < left.index(
        "service_stopped"
    )
    assert ("checkpoint_committed", "shutdown") in _commits(leaving)
    # Partitions moved between live members: cooperative, incremental revokes, each flushed and
    # committed (when it had progressed) before the partition moved.
    assert all("partitions_revoked" in _events(r) for r in staying)
    assert any(("checkpoint_committed", "revoke") in _commits(r) for r in replicas)
    assert all(_events(r).count("partitions_assigned") >= 2 for r in staying)  # incremental
    keys = alert_keys(read_all(bootstrap, topics.alerts, timeout=60))
    missing = expected - set(keys)
    assert not missing, f"{len(missing)} alerts lost"
    assert set(keys) == expected
    print(f"alerts {len(expected)}, duplicates {sum(keys.values()) - len(keys)}")


def _lines(replica: ServiceProcess) -> list[dict[str, object]]:
    out = []
    for line in replica.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def _events(replica: ServiceProcess) -> list[str]:
    return [str(line.get("event")) for line in _lines(replica)]


def _commits(replica: ServiceProcess) -> list[tuple[str, str]]:
    return [(str(line.get("event")), str(line.get("trigger"))) for line in _lines(replica)]


def _owned(replica: ServiceProcess) -> int:
    """Partitions the replica owns, from its latest rebalance log line."""
    owned = [
        int(str(line["owned"]))
        for line in _lines(replica)
        if str(line.get("event", "")).startswith("partitions_")
    ]
    return owned[-1] if owned else 0

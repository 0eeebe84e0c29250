"""Rebalance: three replicas in one group over six partitions; mid-run one leaves (SIGTERM) and
another joins. Cooperative rebalancing moves only the partitions that change owner; the one that
leaves commits its acknowledged work on revoke. Nothing is lost.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.harness._jvm import wait_until
from tests.integration.service.conftest import (
    ServiceProcess,
    Topics,
    alert_keys,
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
    # A live stream in three parts: the changes happen while input is still arriving.
    parts = [records[:15_000], records[15_000:23_000], records[23_000:]]
    produce(bootstrap, topics.inputs, parts[0])
    env = service_env(bootstrap, topics, group_id, commit_interval="1")
    replicas = [subprocesses(env) for _ in range(3)]
    wait_until(lambda: all(_owned(r) > 0 for r in replicas), timeout=60,
               what="three replicas sharing the partitions", alive=_alive(replicas))  # fmt: skip
    assert sum(_owned(r) for r in replicas) == topics.partitions

    joining = subprocesses(env)  # another joins: cooperative, the others keep working
    wait_until(lambda: _owned(joining) > 0, timeout=60, what="the new replica to get partitions",
               alive=_alive([*replicas, joining]))  # fmt: skip
    produce(bootstrap, topics.inputs, parts[1])
    leaving, current = replicas[0], [*replicas[1:], joining]
    leaving.signal(signal.SIGTERM)  # one leaves
    assert leaving.wait(15) == 0, leaving.log_tail()
    wait_until(lambda: sum(_owned(r) for r in current) == topics.partitions, timeout=60,
               what="the leaver's partitions taken over", alive=_alive(current))  # fmt: skip
    produce(bootstrap, topics.inputs, parts[2])
    wait_committed_to_end(bootstrap, group_id, topics.inputs, timeout=180, alive=_alive(current))
    for replica in current:
        replica.signal(signal.SIGTERM)
    for replica in current:
        assert replica.wait(15) == 0, replica.log_tail()

    events = _events(leaving)
    assert events.index("partitions_revoked") < events.index("service_stopped")
    stopped = [line for line in _lines(leaving) if line["event"] == "service_stopped"]
    assert stopped and stopped[0]["committed"], "the leaver reports what it committed"
    # The joiner took partitions from live members: incremental revokes, each one flushed and
    # committed (when it had progressed) before the partition moved; nobody stopped working.
    movers = [r for r in replicas if "partitions_revoked" in _events(r)]
    assert movers, "no partition moved between live members"
    assert any(("checkpoint_committed", "revoke") in _commits(r) for r in replicas)
    assert all(_events(r).count("partitions_assigned") >= 2 for r in replicas[1:])
    keys = alert_keys(read_all(bootstrap, topics.alerts, timeout=60))
    missing = expected - set(keys)
    assert not missing, f"{len(missing)} alerts lost"
    assert set(keys) == expected
    rebalances = sum(_events(r).count("partitions_assigned") for r in [*replicas, joining])
    print(f"\nalerts {len(expected)}, duplicates {sum(keys.values()) - len(keys)}, "
          f"assignment callbacks {rebalances}")  # fmt: skip


def _alive(replicas: list[ServiceProcess]) -> Callable[[], None]:
    def check() -> None:
        for replica in replicas:
            replica.check_alive()

    return check


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

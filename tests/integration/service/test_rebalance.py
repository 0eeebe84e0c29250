"""Rebalance: three replicas in one group over six partitions; mid-run one leaves (SIGTERM) and
another joins. Cooperative rebalancing moves only the partitions that change owner; the one that
leaves commits its acknowledged work on revoke. Nothing is lost.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from auditstream.stream.kafka.checkpoint import Checkpoint
from auditstream.stream.kafka.offset_tracker import Partition
from devtools.jvm.kafka import KafkaCluster
from devtools.jvm.process import JvmProcess, wait_until
from tests.integration.service.conftest import (
    Deployment,
    ServiceProcess,
    StartInProcess,
    StartProcess,
)
from tests.integration.service.corpus import build_corpus, scan_alert_ids
from tests.integration.service.group_member import Joiner

pytestmark = pytest.mark.integration


def test_leave_and_join_mid_run_loses_nothing(
    deployment: Deployment, subprocesses: StartProcess, tmp_path: Path
) -> None:
    topics = deployment.topics
    records = build_corpus(execs=1_000, routine=30_000, seed=99)
    expected = set(scan_alert_ids(records, tmp_path))
    # A live stream in three parts: the changes happen while input is still arriving.
    parts = [records[:15_000], records[15_000:23_000], records[23_000:]]
    deployment.produce(parts[0])
    env = deployment.env(commit_interval="1")
    replicas = [subprocesses(env) for _ in range(3)]
    # Cooperative rebalancing hands partitions over in rounds: wait for the last round, in which
    # every replica owns some and together they own all (none twice).
    wait_until(
        lambda: all(_owned(r) > 0 for r in replicas)
        and sum(_owned(r) for r in replicas) == topics.partitions,
        timeout=60, what="three replicas sharing the partitions", alive=_alive(replicas),
    )  # fmt: skip

    joining = subprocesses(env)  # another joins: cooperative, the others keep working
    wait_until(lambda: _owned(joining) > 0, timeout=60, what="the new replica to get partitions",
               alive=_alive([*replicas, joining]))  # fmt: skip
    deployment.produce(parts[1])
    leaving, current = replicas[0], [*replicas[1:], joining]
    leaving.signal(signal.SIGTERM)  # one leaves
    assert leaving.wait(15) == 0, leaving.log_tail()
    wait_until(lambda: sum(_owned(r) for r in current) == topics.partitions, timeout=60,
               what="the leaver's partitions taken over", alive=_alive(current))  # fmt: skip
    deployment.produce(parts[2])
    deployment.wait_committed_to_end(timeout=180, alive=_alive(current))
    for replica in current:
        replica.signal(signal.SIGTERM)
    for replica in current:
        assert replica.wait(15) == 0, replica.log_tail()

    events = _events(leaving)
    assert events.index("partitions_revoked") < events.index("service_stopped")
    stopped = [line for line in leaving.log_events() if line["event"] == "service_stopped"]
    assert stopped and stopped[0]["committed"], "the leaver reports what it committed"
    # The joiner took partitions from live members: incremental revokes, each one flushed and
    # committed (when it had progressed) before the partition moved; nobody stopped working.
    movers = [r for r in replicas if "partitions_revoked" in _events(r)]
    assert movers, "no partition moved between live members"
    assert all(_events(r).count("partitions_assigned") >= 2 for r in replicas[1:])
    keys = deployment.alert_keys(timeout=60)
    missing = expected - set(keys)
    assert not missing, f"{len(missing)} alerts lost"
    assert set(keys) == expected
    rebalances = sum(_events(r).count("partitions_assigned") for r in [*replicas, joining])
    print(f"\nalerts {len(expected)}, duplicates {sum(keys.values()) - len(keys)}, "
          f"assignment callbacks {rebalances}")  # fmt: skip


def test_revoke_commits_before_handing_over(
    deployment: Deployment, in_process: StartInProcess
) -> None:
    """With interval commits out of the way (every 10 min), the only commits are the ones a
    revoke makes: when a second replica joins, the first commits exactly the partitions it hands
    over, up to what it had processed, before the newcomer starts on them."""
    deployment.produce(build_corpus(execs=300, routine=20_000, seed=4))
    # Small fetches interleave the partitions in the consumer's queue, so that the first
    # replica has progress on every partition when the second one joins.
    env = deployment.env(commit_interval="600", consumer__max_partition_fetch_bytes="32768")
    first = in_process(env)
    consumed = first.service.metrics.registry
    wait_until(
        lambda: (consumed.get_sample_value("auditstream_messages_consumed_total") or 0) > 3_000,
        timeout=60, what="the first replica at work", alive=first.check_alive,
    )  # fmt: skip
    assert set(deployment.committed().values()) == {-1001}  # nothing committed yet
    second = in_process(env)
    wait_until(lambda: second.service.health.assigned > 0, timeout=60,
               what="the second replica to get partitions", alive=second.check_alive)  # fmt: skip
    after = deployment.committed()
    kept = {p for _, p in first.service.assigned}
    handed_over = set(range(deployment.topics.partitions)) - kept
    assert {p for p, offset in after.items() if offset >= 0} <= handed_over
    assert any(after[p] > 0 for p in handed_over), after
    revoke_commits = consumed.get_sample_value("auditstream_commits_total", {"trigger": "revoke"})
    assert revoke_commits and revoke_commits >= 1
    assert first.stop() == 0
    assert second.stop() == 0


REVOKE_TIMEOUT = 3.0
SHUTDOWN_TIMEOUT = 6.0


def test_a_coordinator_that_stops_answering_mid_revoke_neither_blocks_the_loop_nor_the_stop(
    own_cluster: KafkaCluster,
    own_deployment: Deployment,
    in_process: StartInProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The broker (the group coordinator) is frozen with SIGSTOP the moment the revoke callback
    starts, so the revoke's commit cannot be answered. The callback still returns within
    ``revoke_timeout`` (plus a margin), the loop keeps turning (``/healthz`` stays green with a
    2 s staleness limit), and a stop request ends the replica within ``shutdown_timeout``.

    Only the moment of the fault is chosen by wrapping ``Checkpoint.revoke``; everything Kafka
    does (the rebalance, the unanswered commit, the close) is the real broker's and client's."""
    own_deployment.produce(build_corpus(execs=100, routine=6_000, seed=31))
    broker = _broker_process(own_cluster)
    paused = threading.Event()
    revokes: list[float] = []
    revoke = Checkpoint.revoke

    def revoke_with_the_coordinator_frozen(self: Checkpoint, partitions: list[Partition]) -> None:
        if not paused.is_set():
            broker.send(signal.SIGSTOP)
            paused.set()
        started = time.monotonic()
        try:
            revoke(self, partitions)
        finally:
            revokes.append(time.monotonic() - started)

    monkeypatch.setattr(Checkpoint, "revoke", revoke_with_the_coordinator_frozen)
    env = own_deployment.env(
        commit_interval="600", revoke_timeout=str(REVOKE_TIMEOUT),
        shutdown_timeout=str(SHUTDOWN_TIMEOUT), health_stale_after="2",
    )  # fmt: skip
    running = in_process(env)
    metrics = running.service.metrics.registry
    wait_until(
        lambda: (metrics.get_sample_value("auditstream_messages_consumed_total") or 0) > 3_000,
        timeout=60, what="progress on every partition", alive=running.check_alive,
    )  # fmt: skip
    joiner = Joiner(own_deployment.bootstrap, own_deployment.group, own_deployment.topics.inputs)
    try:
        wait_until(paused.is_set, timeout=60, what="the revoke to start", alive=running.check_alive)
        wait_until(lambda: bool(revokes), timeout=REVOKE_TIMEOUT + 2.0,
                   what="the revoke callback to return", alive=running.check_alive)  # fmt: skip
        print(f"\nrevoke returned after {revokes[0]:.2f}s with the coordinator frozen")
        assert revokes[0] < REVOKE_TIMEOUT + 1.0
        frozen = time.monotonic()
        while time.monotonic() - frozen < 3.0:  # longer than health_stale_after
            alive, detail = running.service.health.alive()
            assert alive, detail
            time.sleep(0.2)
        stopped = time.monotonic()
        running.service.stop("SIGTERM")
        running.thread.join(SHUTDOWN_TIMEOUT + 10.0)
        took = time.monotonic() - stopped
        print(f"stop -> exit {running.result} in {took:.2f}s with the coordinator frozen")
        assert not running.thread.is_alive(), "the stop was not honoured"
        assert running.result == [0]
        assert took < SHUTDOWN_TIMEOUT + 2.0
    finally:
        if paused.is_set():
            broker.send(signal.SIGCONT)
        joiner.stop()


def _broker_process(cluster: KafkaCluster) -> JvmProcess:
    """The single node's JVM, to freeze it (SIGSTOP) rather than stop it: connections stay open
    and requests go unanswered, like a coordinator that hangs or a network that drops packets."""
    process = cluster._node(0).process
    assert process is not None
    return process


def _alive(replicas: list[ServiceProcess]) -> Callable[[], None]:
    def check() -> None:
        for replica in replicas:
            replica.check_alive()

    return check


def _events(replica: ServiceProcess) -> list[str]:
    return [str(line.get("event")) for line in replica.log_events()]


def _commits(replica: ServiceProcess) -> list[tuple[str, str]]:
    return [(str(line.get("event")), str(line.get("trigger"))) for line in replica.log_events()]


def _owned(replica: ServiceProcess) -> int:
    """Partitions the replica owns, from its latest rebalance log line."""
    owned = [
        int(str(line["owned"]))
        for line in replica.log_events()
        if str(line.get("event", "")).startswith("partitions_")
    ]
    return owned[-1] if owned else 0

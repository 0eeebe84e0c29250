"""Shutdown: SIGTERM mid-run exits 0 within 10 s with offsets committed for all acknowledged work.

"All acknowledged work" is checked from the outside: every alert on the alert topic comes from an
input offset below the group's committed offset for its partition (the replica committed up to
everything it had produced). A third of the input is produced only after the signal, so the
committed offsets must stop short of the end (a stopping replica polls no more), however fast
the replica was on the first part. A second run then finishes the input: no expected alert is
missing.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaException

from devtools.jvm.kafka import KafkaCluster
from devtools.jvm.process import JvmProcess, wait_until
from tests.integration.service.conftest import Deployment, StartInProcess, StartProcess
from tests.integration.service.corpus import build_corpus, scan_alert_ids

pytestmark = pytest.mark.integration


def test_sigterm_mid_run_commits_acknowledged_work_and_exits_0(
    deployment: Deployment, subprocesses: StartProcess, tmp_path: Path
) -> None:
    records = build_corpus(execs=600, routine=12_000, seed=5)
    expected = set(scan_alert_ids(records, tmp_path))
    before, after_signal = records[: len(records) * 2 // 3], records[len(records) * 2 // 3 :]
    deployment.produce(before)
    env = deployment.env(commit_interval="1")
    proc = subprocesses(env)
    wait_until(lambda: deployment.committed_total() > len(before) // 10, timeout=60,
               what="a tenth of the input committed", alive=proc.check_alive)  # fmt: skip
    signalled = time.monotonic()
    proc.signal(signal.SIGTERM)
    deployment.produce(after_signal)
    code = proc.wait(15)
    took = time.monotonic() - signalled
    print(f"\nSIGTERM -> exit {code} in {took:.2f}s")
    assert code == 0, proc.log_tail()
    assert took < 10

    ends = deployment.input_ends()
    after = deployment.committed()
    assert sum(after.values()) < sum(ends.values()), "the stopping replica kept polling"
    print(f"committed {sum(after.values())} of {len(before)} records produced before the signal")
    alerts = deployment.alerts()
    for msg in alerts:
        source = json.loads(msg.value())["source"]
        assert source["offset"] < after[source["partition"]], (source, after)
    lines = [json.loads(line) for line in proc.log_path.read_text().splitlines() if line]
    stopping = [line for line in lines if line["event"] == "service_stopping"]
    assert [line["reason"] for line in stopping] == ["SIGTERM"]
    stopped = [line for line in lines if line["event"] == "service_stopped"]
    assert len(stopped) == 1
    logged = {int(k.rsplit("[", 1)[1].rstrip("]")): v for k, v in stopped[0]["committed"].items()}
    assert all(after[p] == offset for p, offset in logged.items())  # what it says it committed

    second = subprocesses(env)  # the next replica finishes the work
    deployment.wait_committed_to_end(timeout=120, alive=second.check_alive)
    second.signal(signal.SIGTERM)
    assert second.wait(15) == 0
    keys = deployment.alert_keys()
    assert set(keys) == expected
    print(f"alerts {len(expected)}, duplicates after the restart: {sum(keys.values()) - len(keys)}")


SHUTDOWN_TIMEOUT = 6.0


def test_a_stop_while_the_producer_queue_is_full_exits_0_within_the_budget(
    own_cluster: KafkaCluster,
    own_deployment: Deployment,
    in_process: StartInProcess,
    tmp_path: Path,
) -> None:
    """The broker freezes (SIGSTOP) mid-run with a producer queue of 5 records: the replica soon
    waits in ``produce`` for room that never comes. A stop request then ends that wait, the
    replica shuts down within ``shutdown_timeout`` and exits 0, and the message whose outputs
    were not all produced is not committed: a second replica, once the broker is back, finishes
    the input with no alert missing."""
    records = build_corpus(execs=1_000, routine=5_000, seed=17)
    expected = set(scan_alert_ids(records, tmp_path))
    own_deployment.produce(records)
    env = own_deployment.env(
        commit_interval="1", shutdown_timeout=str(SHUTDOWN_TIMEOUT),
        producer__queue_buffering_max_messages="5", producer__message_timeout_ms="300000",
    )  # fmt: skip
    running = in_process(env)
    metrics = running.service.metrics.registry

    def consumed() -> float:
        return metrics.get_sample_value("auditstream_messages_consumed_total") or 0.0

    wait_until(lambda: consumed() > 500, timeout=60, what="progress", alive=running.check_alive)
    broker = _broker_process(own_cluster)
    broker.send(signal.SIGSTOP)
    try:
        # The loop is stuck in produce once nothing is consumed any more, input still ahead.
        last, still = consumed(), 0
        while still < 6:
            time.sleep(0.25)
            now = consumed()
            still, last = (still + 1, now) if now == last else (0, now)
        assert last < len(records), "too late: the input was done before the broker froze"
        stopped = time.monotonic()
        running.service.stop("SIGTERM")
        running.thread.join(SHUTDOWN_TIMEOUT + 10.0)
        took = time.monotonic() - stopped
        print(
            f"\nqueue full after {last:.0f} records; stop -> exit {running.result} in {took:.2f}s"
        )
        assert not running.thread.is_alive(), "the stop was not honoured"
        assert running.result == [0]
        assert took < SHUTDOWN_TIMEOUT + 2.0
    finally:
        broker.send(signal.SIGCONT)

    # A node frozen that long comes back through a leader election of its own partitions:
    # until it is done, offset queries answer NOT_LEADER_FOR_PARTITION.
    wait_until(lambda: _answers(own_deployment), timeout=60, what="the broker to lead again")
    second = in_process(own_deployment.env(commit_interval="1"))
    own_deployment.wait_committed_to_end(timeout=180, alive=second.check_alive)
    assert second.stop() == 0
    keys = own_deployment.alert_keys(timeout=60)
    missing = expected - set(keys)
    assert not missing, f"{len(missing)} alerts lost: committed past output never produced"


def _answers(deployment: Deployment) -> bool:
    try:
        deployment.input_ends()
    except KafkaException:
        return False
    return True


def _broker_process(cluster: KafkaCluster) -> JvmProcess:
    """The single node's JVM, to freeze it (SIGSTOP): requests go unanswered."""
    process = cluster._node(0).process
    assert process is not None
    return process

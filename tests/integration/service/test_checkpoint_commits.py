"""Commits on the real broker, at the level of the checkpoint: the order in which they reach the
group coordinator, and what commits the coordinator keeps refusing do to the replica.

The test drives what the service loop drives (the checkpoint, with the service's own clients and
callbacks), so that it can choose when each commit is made.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest
from confluent_kafka import Consumer

from auditstream.stream.health import Health
from auditstream.stream.kafka.checkpoint import Answer, Checkpoint
from auditstream.stream.kafka.clients import create_clients
from auditstream.stream.kafka.commit_verdicts import BLOCKED_AFTER
from auditstream.stream.kafka.delivery import Delivery
from auditstream.stream.kafka.offset_tracker import OffsetTracker, Partition
from auditstream.stream.metrics import Metrics
from auditstream.stream.service.callbacks import ClientEvents, rebalance_callbacks
from auditstream.stream.settings import load_settings
from devtools.jvm.process import wait_until
from tests.integration.service.conftest import Deployment
from tests.integration.service.group_member import Joiner

pytestmark = pytest.mark.integration


@dataclass
class Replica:
    """The commit side of one replica: its clients, callbacks, tracker and checkpoint."""

    consumer: Consumer
    tracker: OffsetTracker
    checkpoint: Checkpoint
    events: ClientEvents
    metrics: Metrics

    def poll(self, seconds: float) -> None:
        """Serve the consumer for a while (rebalances, commit answers); records are ignored:
        the test says what is committable with ``settle``."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for msg in self.consumer.consume(100, 0.2):
                error = msg.error()
                if error is not None:
                    self.events.consumer_error(error)  # as the processor does
            self.events.raise_latched()

    def settle(self, offsets: dict[Partition, int]) -> None:
        """Everything below each offset is done (no output): committable up to it."""
        for partition, offset in offsets.items():
            self.tracker.settle(partition, offset - 1)

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


def start_replica(deployment: Deployment, **env: str) -> Replica:
    settings = load_settings(None, deployment.env(**env))
    health, metrics, tracker = Health(30.0), Metrics(), OffsetTracker()
    events = ClientEvents(health, metrics)
    consumer, producer = create_clients(
        settings.kafka, events.on_error, events.on_stats, events.on_commit
    )
    checkpoint = Checkpoint(
        consumer, Delivery(producer), tracker, metrics,
        interval=600.0, revoke_timeout=5.0, forget_alerts=lambda: None,
    )  # fmt: skip
    consumer.subscribe([deployment.topics.inputs], **rebalance_callbacks(checkpoint, events))
    return Replica(consumer, tracker, checkpoint, events, metrics)


def test_a_revoke_commit_is_never_overtaken_by_an_earlier_background_commit(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A background commit (offsets A) is made, the replica gets further (offsets B), then a
    partition is revoked and its B committed. Whatever the timing of the background commit, the
    coordinator must end with B for the revoked partitions: an A landing after B would move the
    committed offset backwards, under the partition's new owner.

    The timing is forced the bad way: a commit made off the loop thread is held back for 0.5 s
    before it reaches librdkafka (a helper thread descheduled, or waiting for the client while
    the loop thread is inside ``consume``: both were seen)."""
    deployment.produce([b"{}"] * 600)
    ends = {(deployment.topics.inputs, p): end for p, end in deployment.input_ends().items()}
    assert min(ends.values()) >= 3
    commit = Checkpoint._commit

    def late_off_the_loop_thread(self: Checkpoint, offsets: Answer) -> Answer:
        if threading.current_thread() is not threading.main_thread():
            time.sleep(0.5)
        return commit(self, offsets)

    monkeypatch.setattr(Checkpoint, "_commit", late_off_the_loop_thread)
    replica = start_replica(deployment)
    wait_until(lambda: replica.poll(0.2) or replica.checkpoint.owned == 6, timeout=60,
               what="all six partitions")  # fmt: skip
    first = {p: end // 3 for p, end in ends.items()}
    later = {p: 2 * end // 3 for p, end in ends.items()}
    joiner = Joiner(deployment.bootstrap, deployment.group, deployment.topics.inputs)
    try:
        # The replica does not poll: its revoke waits, ready, in its queue once the joiner
        # has been through the first round (where it gets nothing).
        wait_until(lambda: bool(joiner.assignments), timeout=60, what="the first round")
        replica.settle(first)
        replica.checkpoint.commit_in_background()  # A
        replica.settle(later)  # B: further on
        wait_until(lambda: replica.poll(0.2) or replica.checkpoint.owned < 6, timeout=60,
                   what="the revoke")  # fmt: skip
        replica.poll(3.0)  # every answer served, every late commit landed
        kept = set(replica.tracker.partitions)
        committed = deployment.committed()
    finally:
        joiner.stop()
    revoked = {p for p in later if p not in kept}
    assert revoked, "nothing was revoked"
    print(f"\nrevoked {sorted(p for _, p in revoked)}; background commit (A) "
          f"{_by_number(first)}, revoke commit (B) {_by_number(later)}; coordinator {committed}")  # fmt: skip
    for topic_partition in revoked:
        assert committed[topic_partition[1]] == later[topic_partition], (
            f"{topic_partition}: the coordinator holds {committed[topic_partition[1]]}, "
            f"the revoke committed {later[topic_partition]}"
        )
    assert replica.sample("auditstream_commits_total", trigger="revoke") == 1
    replica.consumer.close()


def test_commits_the_coordinator_keeps_refusing_make_the_replica_not_ready(
    deployment: Deployment,
) -> None:
    """A member that did not poll for longer than ``max.poll.interval.ms`` has been put out of
    the group by its own client; until it polls again, the coordinator answers every commit
    with UNKNOWN_MEMBER_ID (seen on Kafka 4.1), which no retry cures. Three checkpoints in a
    row refused that way mark the commits blocked (readiness fails, the gauge says so, the
    counter names the code); the first commit accepted again clears it."""
    deployment.produce([b"{}"] * 120)
    joiner = Joiner(deployment.bootstrap, deployment.group, deployment.topics.inputs)
    replica = start_replica(deployment, consumer__max_poll_interval_ms="6000")
    try:
        wait_until(lambda: replica.poll(0.2) or replica.checkpoint.owned > 0, timeout=60,
                   what="partitions")  # fmt: skip
        replica.poll(2.0)  # the rebalance rounds with the joiner are over
        owned = list(replica.tracker.partitions)
        replica.settle(dict.fromkeys(owned, 1))
        time.sleep(8.0)  # no poll for longer than max.poll.interval.ms
        for attempt in range(1, BLOCKED_AFTER + 1):
            assert not replica.checkpoint.commit_with_retries("interval", 3.0)
            assert (replica.checkpoint.blocked is not None) == (attempt == BLOCKED_AFTER)
        assert "UNKNOWN_MEMBER_ID" in str(replica.checkpoint.blocked)
        refused = replica.sample("auditstream_commit_errors_total", code="UNKNOWN_MEMBER_ID")
        assert refused == BLOCKED_AFTER
        assert replica.sample("auditstream_commit_blocked") == 1

        # Polling again rejoins the group (after a _MAX_POLL_EXCEEDED consumer error, which is
        # counted too); the next commit is accepted and clears the block.
        wait_until(lambda: replica.poll(0.2) or bool(replica.tracker.partitions), timeout=60,
                   what="partitions again")  # fmt: skip
        errors = replica.sample("auditstream_consume_errors_total", code="_MAX_POLL_EXCEEDED")
        assert errors >= 1
        replica.settle(dict.fromkeys(replica.tracker.partitions, 2))
        assert replica.checkpoint.commit_with_retries("interval", 10.0)
        assert replica.checkpoint.blocked is None
        assert replica.sample("auditstream_commit_blocked") == 0
    finally:
        joiner.stop()
        replica.consumer.close()


def _by_number(offsets: dict[Partition, int]) -> dict[int, int]:
    return {partition: offset for (_, partition), offset in sorted(offsets.items())}

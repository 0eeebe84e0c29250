"""What the clients report back to the service: errors, statistics, rebalances, commit answers.

All of it runs inside ``consume``/``poll``/``flush`` on the loop thread (or inside the final
``close``). What must stop the replica (a fatal client error, a delivery error met while
revoking, a commit the coordinator is not authorized to take) is *latched* here and raised by
the loop (:meth:`ClientEvents.raise_latched`): a callback must not raise into librdkafka. What
a rebalance or a commit answer means for the offsets is the checkpoint's business; the callbacks
only hand it over and report (metrics, readiness, one log line).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import structlog
from confluent_kafka import Consumer, KafkaError, TopicPartition

from auditstream.stream.errors import FatalClientError
from auditstream.stream.health import Health
from auditstream.stream.kafka.checkpoint import Checkpoint
from auditstream.stream.kafka.offset_tracker import Partition
from auditstream.stream.metrics import Metrics, parse_statistics
from auditstream.stream.state.tasks import StateTasks

_log = structlog.get_logger("auditstream.service")
_REBALANCE_EVENTS: Final = {
    "assign": "partitions_assigned",
    "revoke": "partitions_revoked",
    "lost": "partitions_lost",
}
RebalanceCallback = Callable[[Consumer, list[TopicPartition]], None]


class ClientEvents:
    """Client callbacks turned into health, metrics, log lines and one latched failure."""

    def __init__(self, health: Health, metrics: Metrics) -> None:
        self._health = health
        self._metrics = metrics
        self._failure: BaseException | None = None
        self._checkpoint: Checkpoint | None = None  # once the data path exists

    def attach(self, checkpoint: Checkpoint) -> None:
        """The checkpoint that commit answers (``on_commit``) go to."""
        self._checkpoint = checkpoint

    def on_error(self, error: KafkaError) -> None:
        """Client-level errors. librdkafka retries transport errors itself (and its own log
        lines say so, throttled): only a change of reachability is worth a line here."""
        if error.fatal():
            self.latch(FatalClientError(f"{error.name()}: {error.str()}"))
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:
            if self._health.broker_reachable:
                _log.warning("brokers_unreachable", detail=error.str())
            self._health.broker_reachable = False
        elif error.code() != KafkaError._TRANSPORT:
            _log.warning("kafka_error", code=error.name(), detail=error.str())

    def on_stats(self, text: str) -> None:
        lag, up = parse_statistics(text)
        self._metrics.lag.update(lag)
        if up and not self._health.broker_reachable:
            _log.info("brokers_reachable")
        self._health.broker_reachable = up

    def on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """The answer to an asynchronous commit, handed to the checkpoint (its step 5); whether
        commits are blocked goes to readiness."""
        checkpoint = self._checkpoint
        if checkpoint is None:
            return
        try:
            checkpoint.answered(error, partitions)
        except BaseException as err:  # latched, raised by the loop
            self.latch(err)
        finally:
            self._health.commits_blocked = checkpoint.blocked

    def consumer_error(self, error: KafkaError) -> None:
        """An error among the consumed records, counted by code: fatal ones stop the batch and
        the replica, the others are logged and skipped."""
        self._metrics.consume_errors.labels(error.name()).inc()
        if error.fatal():
            raise FatalClientError(f"{error.name()}: {error.str()}")
        _log.warning("consume_error", code=error.name(), detail=error.str())

    def latch(self, err: BaseException) -> None:
        if self._failure is None:
            self._failure = err

    def raise_latched(self) -> None:
        if self._failure is not None:
            raise self._failure

    def rebalanced(self, kind: str, partitions: list[Partition], owned: int) -> None:
        self._metrics.rebalances.labels(kind).inc()
        self._metrics.assigned.set(owned)
        self._health.assigned = owned
        if kind == "assign":
            self._health.broker_reachable = True
        _log.info(_REBALANCE_EVENTS[kind], partitions=_render_list(partitions), owned=owned)


def rebalance_callbacks(
    checkpoint: Checkpoint, events: ClientEvents, state: StateTasks | None = None,
    repartition: str = "",
) -> dict[str, RebalanceCallback]:  # fmt: skip
    """``on_assign``/``on_revoke``/``on_lost`` for ``Consumer.subscribe``, delegating to the
    checkpoint; a failure while revoking is latched, the partitions are given up regardless.
    The answers to the checkpoint's commits (``events.on_commit``) go to it from now on.

    With stateful rules, an assigned partition of the repartition topic has its store restored
    before the callback returns (so before any of its records is handed out); a revoked one is
    closed with a checkpoint when the revoke's commit went through, without one otherwise."""
    events.attach(checkpoint)

    def stores(partitions: list[Partition]) -> list[int]:
        return [number for topic, number in partitions if topic == repartition]

    def on_assign(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assigned = _partitions(partitions)
        if state is not None:
            try:
                state.assign(stores(assigned))
            except BaseException as err:  # latched, raised by the loop: nothing is processed
                events.latch(err)
        checkpoint.assign(assigned)
        events.rebalanced("assign", assigned, checkpoint.owned)

    def on_revoke(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = _partitions(partitions)
        clean = False
        try:
            checkpoint.revoke(revoked)
            clean = True
        except BaseException as err:  # latched, raised by the loop
            events.latch(err)
        finally:
            if state is not None:
                state.release(stores(revoked), clean=clean)
            events.rebalanced("revoke", revoked, checkpoint.owned)

    def on_lost(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
        lost = _partitions(partitions)
        checkpoint.lose(lost)
        if state is not None:
            state.release(stores(lost), clean=False)
        events.rebalanced("lost", lost, checkpoint.owned)

    return {"on_assign": on_assign, "on_revoke": on_revoke, "on_lost": on_lost}


def _render_list(partitions: list[Partition]) -> list[str]:
    return [f"{topic}[{partition}]" for topic, partition in sorted(partitions)]


def _partitions(partitions: list[TopicPartition]) -> list[Partition]:
    return [(p.topic, p.partition) for p in partitions]

"""At-least-once as one visible object: when, and how, input offsets are committed.

A checkpoint runs in numbered steps:

1. serve the producer's delivery callbacks, so that every acknowledgement already received
   counts;
2. raise any latched delivery error (:class:`auditstream.stream.errors.DeliveryError`): an
   output was lost, so nothing may be committed and the replica must restart;
3. take, per partition, the committable offset from the :class:`OffsetTracker`: one past the
   longest prefix of messages whose every output (alerts, dead letters) the broker acknowledged,
   keeping only the partitions that moved since their last commit;
4. commit exactly those offsets. On the interval the commit runs on a helper thread and the
   loop goes on at once (:meth:`Checkpoint.commit_in_background`): a commit round trip is
   ~10 ms and, on a busy broker, 100-250 ms were measured, all of it added to the latency of
   every message queued behind it. On revoke and shutdown it is synchronous and bounded
   (librdkafka's synchronous commit waits forever for an absent coordinator, so it runs in a
   :class:`auditstream.stream.kafka.blocking.HelperCall`); inside a rebalance callback it runs on
   the callback's own thread, the only place librdkafka serves a commit while the rebalance is
   in progress, and the coordinator is reachable by construction (it is the one rebalancing);
5. check each partition's error in the broker's answer (for a background commit: at the next
   interval, or before the next synchronous commit).

It runs on an interval, on partition revoke and on shutdown, and it owns what a change of
ownership means for at-least-once (:meth:`assign`, :meth:`revoke`, :meth:`lose`,
:meth:`finish`): a revoke flushes the producer within ``revoke_timeout``, commits the revoked
partitions' acknowledged work and forgets them; partitions given up (revoked or lost) while
outputs were still in flight make the pipeline forget its alert window, so that if they come
back their repeats are produced again rather than suppressed.

At most one commit is in flight: commits reach the coordinator in the order they were made, so a
committed offset never moves backwards. A commit that fails (broker away, coordinator moving) is
logged and counted, and the offsets are simply held: the next checkpoint commits them or later
ones. Committing less is always safe; committing past unacknowledged output never happens.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from auditstream.stream.errors import CommitFailed, TimedOut
from auditstream.stream.kafka.blocking import HelperCall
from auditstream.stream.kafka.delivery import Delivery
from auditstream.stream.kafka.offset_tracker import OffsetTracker, Partition
from auditstream.stream.metrics import Metrics
from auditstream.stream.retrying import bounded

_log = structlog.get_logger("auditstream.checkpoint")
Answer = list[TopicPartition]


@dataclass(frozen=True, slots=True)
class _Sent:
    """A commit sent from a helper thread: what it commits, and the call that waits for it.

    One that is waited for in vain is abandoned, not cancelled: it commits offsets that were
    safe when asked, which stays safe."""

    trigger: str
    offsets: list[TopicPartition]
    call: HelperCall[Answer]


class Checkpoint:
    """The commits of one consumer; used from the loop thread and its rebalance callbacks."""

    def __init__(
        self,
        consumer: Consumer,
        delivery: Delivery,
        tracker: OffsetTracker,
        metrics: Metrics,
        *,
        interval: float,
        revoke_timeout: float,
        forget_alerts: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
        transactional: bool = False,
    ) -> None:
        """``transactional``: exactly-once mode, where offsets go into each batch's transaction
        (:mod:`auditstream.stream.kafka.transactions`) and this object commits nothing: a revoke
        or shutdown only flushes and forgets (no transaction is open between batches)."""
        self._consumer = consumer
        self._delivery = delivery
        self._tracker = tracker
        self._metrics = metrics
        self._interval = interval
        self._revoke_timeout = revoke_timeout
        self._forget_alerts = forget_alerts
        self._clock = clock
        self._next_due = clock() + interval
        self._committed: dict[Partition, int] = {}
        self._latest: _Sent | None = None  # the last commit sent from a helper thread
        self._background: _Sent | None = None  # a background commit owed its step 5
        self._halted = transactional  # nothing is ever committed here in exactly-once mode
        self._transactional = transactional

    def due(self) -> bool:
        return not self._transactional and self._clock() >= self._next_due

    @property
    def committed(self) -> dict[Partition, int]:
        """What this replica last committed per partition (for logs and tests)."""
        return dict(self._committed)

    @property
    def owned(self) -> int:
        """How many partitions this replica owns now."""
        return len(self._tracker.partitions)

    # -- ownership: the rebalance callbacks and the end ------------------------------------------

    def assign(self, partitions: list[Partition]) -> None:
        self._tracker.assign(partitions)

    def revoke(self, partitions: list[Partition]) -> None:
        """Flush, then commit the revoked partitions' acknowledged work, within the budget.

        Runs inside the rebalance callback. Raises what must stop the replica (a delivery
        error); the partitions are forgotten whatever happens.
        """
        try:
            if not self._halted:
                budget = self._revoke_timeout
                deadline = self._clock() + budget
                left = self._delivery.flush(budget * 0.6)
                self._forget_alerts_if(left > 0)
                self.commit_with_retries(
                    "revoke", max(deadline - self._clock(), 0.1), partitions, in_callback=True
                )
        finally:
            self._drop(partitions)

    def lose(self, partitions: list[Partition]) -> None:
        """Partitions already owned by someone else: nothing may be committed for them."""
        self._forget_alerts_if(self._delivery.queued() > 0)
        self._drop(partitions)

    def finish(self, budget: float) -> None:
        """Shutdown: flush within half of ``budget``, then commit what is acknowledged, leaving
        about a second of it for the group leave. Raises a latched delivery error."""
        deadline = self._clock() + budget
        left = self._delivery.flush(budget * 0.5)
        self._delivery.raise_delivery_errors()
        if not self._transactional:
            self.commit_with_retries("shutdown", max(deadline - self._clock() - 1.0, 0.1))
        if left:
            _log.warning("shutdown_unflushed", records=left)  # their offsets stay uncommitted

    def halt(self) -> None:
        """After a failure nothing more is committed (a revoke while closing only forgets)."""
        self._halted = True

    def _drop(self, partitions: list[Partition]) -> None:
        self._tracker.revoke(partitions)
        for partition in partitions:  # its last commit is no longer ours to compare against
            self._committed.pop(partition, None)

    def _forget_alerts_if(self, unflushed: bool) -> None:
        """Outputs still queued for partitions we give up: if we get them back, the repeats
        must be produced again rather than suppressed by the window (see
        auditstream.detections.alert_window)."""
        if unflushed:
            self._forget_alerts()
            _log.warning("alert_window_reset", reason="partitions given up with output in flight")

    # -- commits ---------------------------------------------------------------------------------

    def commit_in_background(self, trigger: str = "interval") -> None:
        """Steps 1-3 now, step 4 on a helper thread, step 5 at the next call.

        Raises :class:`auditstream.stream.errors.DeliveryError` (step 2). While the previous
        background commit has not returned, nothing new is sent: the next interval commits
        further.
        """
        self._next_due = self._clock() + self._interval
        self._finish_background()
        if self._waiting():
            return
        self._delivery.poll(0)
        self._delivery.raise_delivery_errors()
        offsets = self._moved(None)
        if not offsets:
            return
        self._background = self._send(trigger, offsets)

    def _finish_background(self) -> None:
        """Step 5 of the background commit, once it has returned."""
        pending = self._background
        if pending is None or not pending.call.returned.is_set():
            return
        self._background = None
        try:
            self._record(pending.trigger, pending.offsets, _answer(pending, 0.0))
        except CommitFailed as err:
            self._metrics.commit_failures.labels(pending.trigger).inc()
            _log.warning("checkpoint_failed", trigger=pending.trigger, error=str(err))

    def commit_with_retries(
        self,
        trigger: str,
        deadline: float,
        partitions: Collection[Partition] | None = None,
        *,
        in_callback: bool = False,
    ) -> bool:
        """Steps 1-5, retrying retriable failures until ``deadline`` s have passed.

        ``in_callback``: called from a rebalance callback, so the commit runs on this thread.
        """
        retrying = bounded(
            f"commit_{trigger}",
            deadline=deadline,
            retriable=lambda err: isinstance(err, CommitFailed) and err.retriable,
            initial=0.1,
            longest=1.0,
        )
        end = self._clock() + deadline
        try:
            retrying(
                lambda: self._commit_once(
                    trigger, partitions, None if in_callback else end - self._clock()
                )
            )
        except CommitFailed as err:
            self._metrics.commit_failures.labels(trigger).inc()
            _log.error("checkpoint_failed", trigger=trigger, error=str(err), gave_up=True)
            return False
        return True

    def _commit_once(
        self, trigger: str, partitions: Collection[Partition] | None, timeout: float | None
    ) -> None:
        self._finish_background()  # its answer first: it was sent first
        self._delivery.poll(0)  # 1. acknowledgements already received count
        self._delivery.raise_delivery_errors()  # 2. lost output: never commit past it
        offsets = self._moved(partitions)  # 3. acked prefixes that moved
        if not offsets:
            return
        answer = self._commit_call(trigger, offsets, timeout)  # 4. synchronously, bounded
        self._record(trigger, offsets, answer)  # 5.

    def _record(self, trigger: str, offsets: list[TopicPartition], answer: Answer) -> None:
        """Step 5: note what the broker took; raise CommitFailed naming what it refused."""
        failed: list[tuple[TopicPartition, KafkaError]] = []
        for tp in answer:  # 5. per partition
            if tp.error is None:
                self._committed[(tp.topic, tp.partition)] = tp.offset
            else:
                failed.append((tp, tp.error))
        if failed:
            detail = ", ".join(f"{tp.topic}[{tp.partition}]: {error}" for tp, error in failed)
            raise CommitFailed(detail, retriable=all(_retriable(e) for _, e in failed))
        self._metrics.commits.labels(trigger).inc()
        _log.info(
            "checkpoint_committed",
            trigger=trigger,
            offsets={f"{tp.topic}[{tp.partition}]": tp.offset for tp in offsets},
        )

    def _commit_call(
        self, trigger: str, offsets: list[TopicPartition], timeout: float | None
    ) -> Answer:
        """The commit: on this thread (``timeout`` None), or on a helper thread, one at a time
        (an abandoned one may still be waiting for the coordinator: it commits offsets that were
        safe when asked, which stays safe)."""
        if timeout is None:
            return _failing_as_commit(lambda: self._commit(offsets))
        if timeout < 0.05:
            raise CommitFailed("no time left for a commit", retriable=False)
        if self._waiting():
            raise CommitFailed(
                "the previous commit is still waiting for the broker", retriable=True
            )
        return _answer(self._send(trigger, offsets), timeout)

    def _send(self, trigger: str, offsets: list[TopicPartition]) -> _Sent:
        sent = _Sent(trigger, offsets, HelperCall("commit", lambda: self._commit(offsets)))
        self._latest = sent
        return sent

    def _commit(self, offsets: list[TopicPartition]) -> Answer:
        return list(self._consumer.commit(offsets=offsets, asynchronous=False) or ())

    def _waiting(self) -> bool:
        """A commit sent from a helper thread has no answer yet (commits go out in order)."""
        return self._latest is not None and not self._latest.call.returned.is_set()

    def _moved(self, partitions: Collection[Partition] | None) -> list[TopicPartition]:
        positions = self._tracker.committable_all()
        wanted = positions.keys() if partitions is None else set(partitions) & positions.keys()
        return [
            TopicPartition(topic, partition, positions[(topic, partition)])
            for topic, partition in sorted(wanted)
            if self._committed.get((topic, partition)) != positions[(topic, partition)]
        ]


def _answer(sent: _Sent, timeout: float) -> Answer:
    """The broker's per-partition answer to a helper-thread commit, waiting at most
    ``timeout`` s; every failure of the call is a :class:`CommitFailed`."""
    return _failing_as_commit(lambda: sent.call.result(timeout))


def _failing_as_commit(call: Callable[[], Answer]) -> Answer:
    try:
        return call()
    except TimedOut as err:
        raise CommitFailed(str(err), retriable=True) from err
    except KafkaException as err:
        error: KafkaError = err.args[0]
        raise CommitFailed(f"{error.name()}: {error.str()}", retriable=_retriable(error)) from err


def _retriable(error: KafkaError) -> bool:
    """Worth another try: transport trouble, a coordinator that is loading or moving."""
    if error.retriable():
        return True
    return error.code() in (
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._WAIT_COORD,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError._ALL_BROKERS_DOWN,
    )

"""At-least-once as one visible object: when, and how, input offsets are committed.

A checkpoint runs in numbered steps:

1. serve the producer's delivery callbacks, so that every acknowledgement already received
   counts;
2. raise any latched delivery error (:class:`auditstream.stream.errors.DeliveryError`): an
   output was lost, so nothing may be committed and the replica must restart;
3. take, per partition, the committable offset from the :class:`OffsetTracker`: one past the
   longest prefix of messages whose every output (alerts, dead letters) the broker acknowledged,
   keeping only the partitions that moved since their last commit;
4. commit exactly those offsets (how, below);
5. check the coordinator's answer: note what it took, count what it refused by error code
   (``auditstream_commit_errors``) and judge it (:class:`CommitVerdicts`): an authorization
   failure stops the replica (exit 4); :data:`BLOCKED_AFTER` checkpoints in a row refused with
   errors no retry cures (``UNKNOWN_MEMBER_ID``, ``ILLEGAL_GENERATION``...) mark the commits
   blocked, which fails readiness and sets ``auditstream_commit_blocked``, until a commit is
   accepted again. Other failures (broker away, coordinator moving) are logged and counted, and
   the offsets held: the next checkpoint commits them or later ones. Committing less is always
   safe; committing past unacknowledged output never happens.

How step 4 commits follows from what the client does (measured with confluent-kafka 2.16.1,
librdkafka 2.16, Kafka 4.1): it serialises the calls on one consumer. A call made on another
thread (a commit, even ``assignment()``) waits until the loop thread's ``consume`` returns, and
the loop's next ``consume`` waits for a synchronous commit in progress on another thread for as
long as the coordinator takes to answer (a frozen coordinator: minutes). Rebalance callbacks run
inside ``consume``, so a helper thread's commit made during a revoke is only sent after the
callback has returned: never within the callback's budget, and after the revoke's own commit.
So:

- on the interval and on revoke the commit is **asynchronous**, made on the loop thread (the
  rebalance callbacks run on it too): the call returns at once whatever the coordinator does,
  and the answer comes back through ``on_commit`` in a later ``consume`` (:meth:`answered`).
  Commits made from one thread reach the coordinator in the order they were made (librdkafka's
  group queue is first in, first out; the coordinator serves a connection in order), so a
  revoke's commit is never overtaken by an earlier interval commit and a committed offset never
  moves backwards. The revoke callback does not wait for the answer: librdkafka completes the
  unassign, and so hands the partitions over, only once every commit in progress is answered.
  One interval commit is in flight at a time (the next interval commits further);
- on shutdown, once the loop polls no more, it is synchronous and bounded: a
  :class:`HelperCall` (librdkafka's synchronous commit waits forever for an absent coordinator)
  that the loop thread waits for at most the budget left.

It also owns what a change of ownership means for at-least-once (:meth:`assign`,
:meth:`revoke`, :meth:`lose`, :meth:`finish`): a revoke flushes the producer within
``revoke_timeout``, commits the revoked partitions' acknowledged work and forgets them;
partitions given up (revoked or lost) while outputs were still in flight make the pipeline
forget its alert window, so that if they come back their repeats are produced again rather than
suppressed.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Final

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from auditstream.stream.errors import CommitFailed, TimedOut
from auditstream.stream.kafka.blocking import HelperCall
from auditstream.stream.kafka.commit_verdicts import CommitVerdicts, Refusal
from auditstream.stream.kafka.delivery import Delivery
from auditstream.stream.kafka.offset_tracker import OffsetTracker, Partition
from auditstream.stream.metrics import Metrics
from auditstream.stream.retrying import bounded

_log = structlog.get_logger("auditstream.checkpoint")
Answer = list[TopicPartition]

UNANSWERED_AFTER: Final = 120.0
"""Seconds after which an unanswered asynchronous commit no longer holds the next interval
commit back (librdkafka answers within ``socket.timeout.ms``, 60 s by default; this only guards
against waiting for ever). Order is kept regardless: both go out from the loop thread."""


@dataclass(frozen=True, slots=True)
class _Sent:
    """An asynchronous commit waiting for its answer."""

    trigger: str
    offsets: list[TopicPartition]
    at: float


class Checkpoint:
    """The commits of one consumer; used from the loop thread and its client callbacks."""

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
        self._unanswered: deque[_Sent] = deque()  # asynchronous commits, oldest first
        self._latest: HelperCall[Answer] | None = None  # the last synchronous commit
        self._verdicts = CommitVerdicts(metrics)
        self._halted = transactional  # nothing is ever committed here in exactly-once mode
        self._transactional = transactional

    def due(self) -> bool:
        return not self._transactional and self._clock() >= self._next_due

    def seconds_until_due(self, longest: float) -> float:
        """How long the loop may wait for a record before the interval commit is due (at most
        ``longest``): an idle consumer still commits on time, not a poll timeout late."""
        if self._transactional:
            return longest
        return min(max(self._next_due - self._clock(), 0.0), longest)

    @property
    def committed(self) -> dict[Partition, int]:
        """What this replica last committed per partition (for logs and tests)."""
        return dict(self._committed)

    @property
    def owned(self) -> int:
        """How many partitions this replica owns now."""
        return len(self._tracker.partitions)

    @property
    def blocked(self) -> str | None:
        """Why commits count as blocked (readiness fails meanwhile), or None."""
        return self._verdicts.blocked

    # -- ownership: the rebalance callbacks and the end ------------------------------------------

    def assign(self, partitions: list[Partition]) -> None:
        self._tracker.assign(partitions)

    def revoke(self, partitions: list[Partition]) -> None:
        """Flush within ``revoke_timeout``, then commit the revoked partitions' acknowledged work
        asynchronously; returns within the budget whatever the coordinator does.

        Runs inside the rebalance callback. The commit is answered later (``on_commit``);
        librdkafka hands the partitions over only after that answer (see the module doc).
        Raises what must stop the replica (a delivery error); the partitions are forgotten
        whatever happens.
        """
        try:
            if not self._halted:
                left = self._delivery.flush(self._revoke_timeout)
                self._forget_alerts_if(left > 0)
                self._send("revoke", partitions)
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

    # -- asynchronous commits: the interval and revokes ------------------------------------------

    def commit_in_background(self, trigger: str = "interval") -> None:
        """Steps 1-4 now (the commit asynchronous), step 5 when the answer comes back.

        Raises :class:`auditstream.stream.errors.DeliveryError` (step 2). While the previous
        asynchronous commit is unanswered, nothing new is sent: the next interval commits
        further.
        """
        self._next_due = self._clock() + self._interval
        if self._unanswered and self._clock() - self._unanswered[-1].at < UNANSWERED_AFTER:
            return
        self._send(trigger, None)

    def answered(self, error: KafkaError | None, answer: Answer) -> None:
        """Step 5 of an asynchronous commit: the client's ``on_commit``, inside ``consume`` (or
        ``close``). Raises what must stop the replica (an authorization failure)."""
        sent = self._take(answer)
        trigger = sent.trigger if sent is not None else "unknown"
        offsets = sent.offsets if sent is not None else answer
        try:
            self._record(trigger, offsets, answer, error)
        except CommitFailed as err:
            self._failed(trigger, err, gave_up=False)

    def _send(self, trigger: str, partitions: Collection[Partition] | None) -> None:
        self._delivery.poll(0)  # 1. acknowledgements already received count
        self._delivery.raise_delivery_errors()  # 2. lost output: never commit past it
        offsets = self._moved(partitions)  # 3. acked prefixes that moved
        if not offsets:
            return
        try:  # 4. returns at once; the answer comes through on_commit
            self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as err:  # refused before it was sent
            try:
                self._record(trigger, offsets, offsets, err.args[0])
            except CommitFailed as failure:
                self._failed(trigger, failure, gave_up=False)
            return
        self._unanswered.append(_Sent(trigger, offsets, self._clock()))

    def _take(self, answer: Answer) -> _Sent | None:
        """The commit an answer is for: the one with the same offsets, else the oldest."""
        wanted = _offsets(answer)
        for sent in self._unanswered:
            if _offsets(sent.offsets) == wanted:
                self._unanswered.remove(sent)
                return sent
        return self._unanswered.popleft() if self._unanswered else None

    # -- synchronous commits: shutdown -----------------------------------------------------------

    def commit_with_retries(
        self, trigger: str, deadline: float, partitions: Collection[Partition] | None = None
    ) -> bool:
        """Steps 1-5 on a helper thread, waited for at most ``deadline`` s in all, retrying
        retriable failures. Not while the loop thread is inside ``consume`` (see the module
        doc); raises what must stop the replica (a delivery or an authorization failure)."""
        retrying = bounded(
            f"commit_{trigger}",
            deadline=deadline,
            retriable=lambda err: isinstance(err, CommitFailed) and err.retriable,
            initial=0.1,
            longest=1.0,
        )
        end = self._clock() + deadline
        try:
            retrying(lambda: self._commit_once(trigger, partitions, end - self._clock()))
        except CommitFailed as err:
            self._failed(trigger, err, gave_up=True)
            return False
        return True

    def _commit_once(
        self, trigger: str, partitions: Collection[Partition] | None, timeout: float
    ) -> None:
        self._delivery.poll(0)  # 1.
        self._delivery.raise_delivery_errors()  # 2.
        offsets = self._moved(partitions)  # 3.
        if not offsets:
            return
        answer, error = self._commit_call(offsets, timeout)  # 4. synchronously, bounded
        self._record(trigger, offsets, answer, error)  # 5.

    def _commit_call(
        self, offsets: list[TopicPartition], timeout: float
    ) -> tuple[Answer, KafkaError | None]:
        """The commit on a helper thread, one at a time (an abandoned one may still be waiting
        for the coordinator: it commits offsets that were safe when asked, which stays safe).
        The broker's answer, or the offsets with the error that refused them all."""
        if timeout < 0.05:
            raise CommitFailed("no time left for a commit", retriable=False)
        if self._latest is not None and not self._latest.returned.is_set():
            raise CommitFailed(
                "the previous commit is still waiting for the broker", retriable=True
            )
        self._latest = HelperCall("commit", lambda: self._commit(offsets))
        try:
            return self._latest.result(timeout), None
        except TimedOut as err:
            raise CommitFailed(str(err), retriable=True) from err
        except KafkaException as err:
            return offsets, err.args[0]

    def _commit(self, offsets: list[TopicPartition]) -> Answer:
        return list(self._consumer.commit(offsets=offsets, asynchronous=False) or ())

    # -- both ------------------------------------------------------------------------------------

    def _record(
        self,
        trigger: str,
        offsets: list[TopicPartition],
        answer: Answer,
        error: KafkaError | None = None,
    ) -> None:
        """Step 5: note what the coordinator took (for partitions still ours); judge what it
        refused, raising :class:`CommitFailed` (or what must stop the replica)."""
        refusals: list[Refusal] = [
            (f"{tp.topic}[{tp.partition}]", tp.error) for tp in answer if tp.error is not None
        ]
        if error is not None and not refusals:
            refusals = [("commit", error)]
        if refusals:
            raise self._verdicts.refused(refusals)
        for tp in answer:
            if self._tracker.assigned((tp.topic, tp.partition)):
                self._committed[(tp.topic, tp.partition)] = tp.offset
        self._verdicts.accepted()
        self._metrics.commits.labels(trigger).inc()
        _log.info(
            "checkpoint_committed",
            trigger=trigger,
            offsets={f"{tp.topic}[{tp.partition}]": tp.offset for tp in offsets},
        )

    def _failed(self, trigger: str, err: CommitFailed, *, gave_up: bool) -> None:
        self._metrics.commit_failures.labels(trigger).inc()
        if gave_up:
            _log.error("checkpoint_failed", trigger=trigger, error=str(err), gave_up=True)
        else:
            _log.warning("checkpoint_failed", trigger=trigger, error=str(err))

    def _moved(self, partitions: Collection[Partition] | None) -> list[TopicPartition]:
        positions = self._tracker.committable_all()
        wanted = positions.keys() if partitions is None else set(partitions) & positions.keys()
        return [
            TopicPartition(topic, partition, positions[(topic, partition)])
            for topic, partition in sorted(wanted)
            if self._committed.get((topic, partition)) != positions[(topic, partition)]
        ]


def _offsets(partitions: Answer) -> set[tuple[str, int, int]]:
    return {(tp.topic, tp.partition, tp.offset) for tp in partitions}

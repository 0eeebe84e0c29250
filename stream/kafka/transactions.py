"""Exactly-once as one visible object: a batch's outputs and its input offsets in one transaction.

With ``delivery = "exactly-once"`` each batch the loop reads runs inside a Kafka transaction of
the replica's transactional producer (KIP-98), and the batch's input offsets are added to that
same transaction with the consumer group's metadata (KIP-447):

1. :meth:`Transactions.begin` before the batch is processed;
2. the processor produces the batch's alerts and dead letters as in at-least-once mode;
3. :meth:`Transactions.commit` adds, per partition of the batch, the offset after its last
   record, then commits: the alerts, the dead letters and the offsets become visible to
   ``read_committed`` readers together, or none of them does.

Errors are classified as librdkafka classifies them:

- *abortable* (``txn_requires_abort``: a produce failed, a send timed out): the transaction is
  aborted, the consumer is rewound to the batch's first offsets, and the replica's alert window
  forgets what the batch staged; the batch then runs again;
- *retriable* (a commit whose answer did not come in time): the same call again, bounded;
- *fatal* (``fatal()``: the producer was fenced by a newer instance with the same transactional
  id, or by the group's generation under KIP-447): :class:`FatalClientError`, exit 4. A fenced
  replica is a zombie: its work belongs to someone else now.

A rebalance can only happen inside ``consume``, between batches, when no transaction is open:
revoked partitions have nothing uncommitted, so a revoke only forgets them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from auditstream.stream.errors import FatalClientError, InfrastructureError
from auditstream.stream.metrics import Metrics

_log = structlog.get_logger("auditstream.transactions")
_T = TypeVar("_T")


class TransactionAborted(InfrastructureError):
    """The batch's transaction was aborted and the consumer rewound: run the batch again."""


class Transactions:
    """The transactional producer's protocol for one replica; used from the loop thread."""

    def __init__(
        self,
        producer: Producer,
        consumer: Consumer,
        metrics: Metrics,
        *,
        timeout: float,
        on_abort: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._producer = producer
        self._consumer = consumer
        self._metrics = metrics
        self._timeout = timeout
        self._on_abort = on_abort
        self._clock = clock
        self._open = False

    def start(self, timeout: float | None = None) -> None:
        """Register the transactional id with the coordinator, fencing any older instance of
        it and aborting what that instance left open (within ``timeout``, default the calls')."""
        wait = self._timeout if timeout is None else timeout
        self._call("init_transactions", lambda: self._producer.init_transactions(wait))

    def begin(self) -> None:
        if not self._open:
            self._call("begin_transaction", self._producer.begin_transaction)
            self._open = True

    def commit(self, batch: Sequence[Message]) -> None:
        """Add the batch's input offsets to the open transaction and commit it; on an abortable
        error abort, rewind and raise :class:`TransactionAborted`."""
        if not self._open:
            return
        offsets = next_offsets(batch)
        try:
            if offsets:
                metadata = self._consumer.consumer_group_metadata()
                self._call(
                    "send_offsets_to_transaction",
                    lambda: self._producer.send_offsets_to_transaction(
                        offsets, metadata, self._timeout
                    ),
                )
            self._call(
                "commit_transaction", lambda: self._producer.commit_transaction(self._timeout)
            )
        except _Abortable as err:
            self.abort(batch, str(err))
            raise TransactionAborted(str(err)) from err
        self._open = False
        self._metrics.commits.labels("transaction").inc()

    def abort(self, batch: Sequence[Message], reason: str) -> None:
        """Abort the open transaction and rewind the consumer to the batch's first offsets."""
        _log.warning("transaction_aborted", reason=reason, records=len(batch))
        self._metrics.commit_failures.labels("transaction").inc()
        try:
            self._call("abort_transaction", lambda: self._producer.abort_transaction(self._timeout))
        except _Abortable as err:  # aborting an abortable state cannot need another abort
            raise FatalClientError(f"abort_transaction failed: {err}") from err
        finally:
            self._open = False
            self._on_abort()
        for tp in first_offsets(batch):
            self._consumer.seek(tp)

    def _call(self, name: str, call: Callable[[], _T]) -> _T:
        """One transactional call, retried while librdkafka calls its error retriable (within
        the transaction timeout); abortable and fatal errors are told apart."""
        deadline = self._clock() + self._timeout
        while True:
            try:
                return call()
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.fatal():
                    raise FatalClientError(f"{name}: {error.name()}: {error.str()}") from exc
                if error.txn_requires_abort():
                    raise _Abortable(f"{name}: {error.name()}: {error.str()}") from exc
                if error.retriable() and self._clock() < deadline:
                    _log.info("transaction_retry", call=name, error=error.name())
                    time.sleep(0.1)
                    continue
                raise InfrastructureError(f"{name}: {error.name()}: {error.str()}") from exc


class _Abortable(InfrastructureError):
    """A transactional call failed in a way that needs the transaction aborted."""


def next_offsets(batch: Iterable[Message]) -> list[TopicPartition]:
    """Per partition of the batch, the offset after its last record: what to commit."""
    last: dict[tuple[str, int], int] = {}
    for msg in batch:
        if msg.error() is None:
            key = (str(msg.topic()), msg.partition() or 0)
            last[key] = max(last.get(key, -1), msg.offset() or 0)
    return [TopicPartition(t, p, o + 1) for (t, p), o in sorted(last.items())]


def first_offsets(batch: Iterable[Message]) -> list[TopicPartition]:
    """Per partition of the batch, its first record's offset: where a rewind starts again."""
    first: dict[tuple[str, int], int] = {}
    for msg in batch:
        if msg.error() is None:
            key = (str(msg.topic()), msg.partition() or 0)
            offset = msg.offset() or 0
            first[key] = min(first.get(key, offset), offset)
    return [TopicPartition(t, p, o) for (t, p), o in sorted(first.items())]

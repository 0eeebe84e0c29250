"""The loop's step in exactly-once mode: each batch in one transaction, or again from its start.

In at-least-once mode the loop processes a batch and a :class:`Checkpoint` later commits the
offsets whose outputs the broker acknowledged. In exactly-once mode (``delivery =
"exactly-once"``) a batch's alerts, dead letters and input offsets are one Kafka transaction
(:mod:`auditstream.stream.kafka.transactions`): this step opens it, lets the processor produce
into it, and commits it. When the transaction is aborted, everything the batch did is undone
here too: the alert ids it staged leave the window (those of earlier, committed batches stay:
the later stages of their execs are still repeats), the delivery failures that caused the abort
are forgotten (they are the abort's, not lost output), and the batch's partitions are tracked
afresh; the consumer has been rewound, so the next batch is this one again.

A batch that aborts :data:`MAX_ABORTS` times in a row is not transient trouble (an output the
broker refuses every time): the replica stops with exit 4 rather than loop on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from confluent_kafka import Message

from auditstream.detections.alert_window import RecentAlerts
from auditstream.stream.errors import InfrastructureError
from auditstream.stream.kafka.delivery import Delivery
from auditstream.stream.kafka.offset_tracker import OffsetTracker
from auditstream.stream.kafka.transactions import TransactionAborted, Transactions
from auditstream.stream.processor import MessageProcessor, OnError

MAX_ABORTS: Final = 5


class TransactionalBatches:
    """One transaction per batch; used from the loop thread."""

    def __init__(
        self,
        transactions: Transactions,
        processor: MessageProcessor,
        delivery: Delivery,
        tracker: OffsetTracker,
        window: RecentAlerts,
    ) -> None:
        self._transactions = transactions
        self._processor = processor
        self._delivery = delivery
        self._tracker = tracker
        self._window = window
        self._aborts = 0

    def run(self, messages: Sequence[Message], on_error: OnError) -> None:
        """Process the batch inside a transaction and commit it (with its input offsets)."""
        if not messages:
            return
        self._transactions.begin()
        self._window.stage()
        self._processor.handle_batch(messages, on_error)
        try:
            self._transactions.commit(messages)
        except TransactionAborted as err:
            self._undo(messages)
            self._aborts += 1
            if self._aborts >= MAX_ABORTS:
                raise InfrastructureError(
                    f"the same batch was aborted {self._aborts} times in a row: {err}"
                ) from err
            return
        self._window.keep_staged()
        self._aborts = 0

    def _undo(self, messages: Sequence[Message]) -> None:
        """What the aborted batch left behind in this replica, undone."""
        self._window.discard_staged()
        self._delivery.forget_failures()
        partitions = sorted({(str(m.topic()), m.partition() or 0) for m in messages})
        owned = [p for p in partitions if self._tracker.assigned(p)]
        self._tracker.revoke(owned)
        self._tracker.assign(owned)

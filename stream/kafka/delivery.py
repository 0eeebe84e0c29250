"""The producer side of at-least-once: produce with back-pressure, and never lose a failure.

Every output record (alert or dead letter) goes through :meth:`Delivery.produce` with a callback
that runs when the broker acknowledges it. A failed delivery is *latched*, not printed: the first
error is kept and :meth:`Delivery.raise_delivery_errors` raises it before every commit, so no
offset is ever committed past an output that did not reach the broker. With the idempotent
producer, librdkafka already retried until ``message.timeout.ms``: a delivery error is final.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from confluent_kafka import KafkaError, Message, Producer

from auditstream.stream.errors import DeliveryError, InfrastructureError

Header = tuple[str, bytes | str | None]
OnAcked = Callable[[], None]  # the broker has the record


class Delivery:
    """A thin wrapper over one :class:`confluent_kafka.Producer`, used from one thread."""

    def __init__(self, producer: Producer, *, queue_full_timeout: float = 60.0) -> None:
        self._producer = producer
        self._queue_full_timeout = queue_full_timeout
        self._error: DeliveryError | None = None
        self.failures = 0

    @property
    def error(self) -> DeliveryError | None:
        return self._error

    def produce(
        self,
        topic: str,
        *,
        key: bytes | str | None,
        value: bytes | str | None,
        headers: Sequence[Header],
        on_acked: OnAcked,
    ) -> None:
        """Queue one record; when the local queue is full, serve callbacks and retry (bounded).

        ``on_acked`` runs (inside a later ``poll``/``flush``) once the broker has the record.
        """

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                on_acked()
            else:
                self._latch(err, msg)

        deadline = time.monotonic() + self._queue_full_timeout
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=list(headers), on_delivery=delivered
                )
                return
            except BufferError:
                # Back-pressure: the broker is slow or away. Serving callbacks frees the queue.
                self.raise_delivery_errors()
                if time.monotonic() >= deadline:
                    raise InfrastructureError(
                        f"the producer queue stayed full for {self._queue_full_timeout:.0f} s"
                    ) from None
                self._producer.poll(0.1)

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery callbacks; returns how many ran."""
        return int(self._producer.poll(timeout))

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for every queued record; returns how many are still queued."""
        return int(self._producer.flush(max(timeout, 0.0)))

    def queued(self) -> int:
        return len(self._producer)

    def forget_failures(self) -> None:
        """Exactly-once: the failures of an aborted transaction's records are the abort's, not
        lost output (the batch runs again); forget them so the replica goes on."""
        self._error = None

    def raise_delivery_errors(self) -> None:
        """Raise the first latched delivery error, if any (it stays latched: this is final)."""
        if self._error is not None:
            raise self._error

    def _latch(self, err: KafkaError, msg: Message) -> None:
        self.failures += 1
        if self._error is None:
            self._error = DeliveryError(
                str(msg.topic()), err.name(), err.str(), fatal=bool(err.fatal())
            )

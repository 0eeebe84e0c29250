"""The producer side of at-least-once: produce with back-pressure, and never lose a failure.

Every output record (alert or dead letter) goes through :meth:`Delivery.produce` with a callback
that runs when the broker acknowledges it. A failed delivery is *latched*, not printed: the first
error is kept and :meth:`Delivery.raise_delivery_errors` raises it before every commit, so no
offset is ever committed past an output that did not reach the broker. With the idempotent
producer, librdkafka already retried until ``message.timeout.ms``: a delivery error is final.
Every failed delivery is counted (``auditstream_delivery_errors``), not only the first.

A full producer queue (the broker slow or away) makes :meth:`Delivery.produce` wait, bounded,
serving callbacks; a stop request ends that wait at once (:class:`ProduceAbandoned`), so that a
stopping replica does not sit out the whole bound while its shutdown budget runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from confluent_kafka import KafkaError, Message, Producer

from auditstream.stream.errors import DeliveryError, InfrastructureError
from auditstream.stream.metrics import Metrics

Header = tuple[str, bytes | str | None]
OnAcked = Callable[[], None]  # the broker has the record


class ProduceAbandoned(Exception):
    """A stop was requested while :meth:`Delivery.produce` waited for room in the full queue.

    The record was not produced, so its message never gets all the acknowledgements the offset
    tracker was told to expect: neither it nor anything after it on its partition is committed,
    and the next owner reads it again. Not a failure: the service goes on to its normal stop.
    """


class Delivery:
    """A thin wrapper over one :class:`confluent_kafka.Producer`, used from one thread.

    ``stop``: the service's stop request, which ends a wait for room in the queue;
    ``metrics``: where failed deliveries are counted.
    """

    def __init__(
        self,
        producer: Producer,
        *,
        queue_full_timeout: float = 60.0,
        stop: threading.Event | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._producer = producer
        self._queue_full_timeout = queue_full_timeout
        self._stop = stop or threading.Event()
        self._metrics = metrics
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
        partition: int | None = None,
    ) -> None:
        """Queue one record; when the local queue is full, serve callbacks and retry (bounded).

        ``on_acked`` runs (inside a later ``poll``/``flush``) once the broker has the record.
        ``partition`` pins the record to one partition (a changelog record goes to its store's
        partition); ``None`` leaves it to the partitioner (by key).
        Raises :class:`ProduceAbandoned` when a stop is requested while the queue is full, a
        latched :class:`DeliveryError`, or :class:`InfrastructureError` when the queue stays
        full for ``queue_full_timeout``.
        """

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                on_acked()
            else:
                self._latch(err, msg)

        deadline = time.monotonic() + self._queue_full_timeout
        while True:
            try:
                if partition is None:
                    self._producer.produce(
                        topic, value=value, key=key, headers=list(headers), on_delivery=delivered
                    )
                else:
                    self._producer.produce(
                        topic, value=value, key=key, headers=list(headers),
                        on_delivery=delivered, partition=partition,
                    )  # fmt: skip
                return
            except BufferError:
                # Back-pressure: the broker is slow or away. Serving callbacks frees the queue.
                self.raise_delivery_errors()
                if self._stop.is_set():
                    raise ProduceAbandoned(
                        f"stop requested while the queue to {topic} was full"
                    ) from None
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
        if self._metrics is not None:
            self._metrics.delivery_errors.inc()
        if self._error is None:
            self._error = DeliveryError(
                str(msg.topic()), err.name(), err.str(), fatal=bool(err.fatal())
            )

"""The dead-letter topic: input that is not audit data, kept whole and explained.

A record on the dead-letter topic has the original key, value and headers, byte for byte, plus:

``auditstream.dlq.reason``       ``not_json``, ``not_utf8``, ``unknown_shape``, ``oversized``,
                                 ``evaluation_error``, ``alert_encoding`` or ``internal_error``
``auditstream.dlq.error_class``  the exception's class name (``MalformedEvent``, ...)
``auditstream.dlq.detail``       the error message, capped at :data:`MAX_DETAIL_BYTES`
``auditstream.source.topic``     where the message was read
``auditstream.source.partition`` (decimal)
``auditstream.source.offset``    (decimal)
``auditstream.dlq.entry``        only for one entry of a cloud batch (Event Hubs ``records``,
                                 CloudWatch ``logEvents``): its place in the batch (decimal); the
                                 value is then that entry alone, not the whole message

Like an alert, a dead letter is an output of its message: the input offset commits only once
the broker has acknowledged it. Nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from auditstream.stream.kafka.delivery import Delivery, Header, OnAcked

PREFIX: Final = "auditstream."
REASON: Final = "auditstream.dlq.reason"
ERROR_CLASS: Final = "auditstream.dlq.error_class"
DETAIL: Final = "auditstream.dlq.detail"
SOURCE_TOPIC: Final = "auditstream.source.topic"
SOURCE_PARTITION: Final = "auditstream.source.partition"
SOURCE_OFFSET: Final = "auditstream.source.offset"
ENTRY: Final = "auditstream.dlq.entry"
MAX_DETAIL_BYTES: Final = 1024


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One rejected input message and why."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[Header]
    reason: str
    error_class: str
    detail: str
    entry: int | None = None
    """The entry's place in its message's cloud batch, when only that entry is rejected."""

    def wire_headers(self) -> list[Header]:
        """The original headers, then ours (appended: Kafka headers are a list, not a map)."""
        entry = [] if self.entry is None else [(ENTRY, str(self.entry).encode())]
        return [
            *self.headers,
            (REASON, self.reason.encode()),
            (ERROR_CLASS, self.error_class.encode()),
            (DETAIL, cap_detail(self.detail)),
            (SOURCE_TOPIC, self.topic.encode()),
            (SOURCE_PARTITION, str(self.partition).encode()),
            (SOURCE_OFFSET, str(self.offset).encode()),
            *entry,
        ]


def cap_detail(detail: str, limit: int = MAX_DETAIL_BYTES) -> bytes:
    """UTF-8 of ``detail``, cut at ``limit`` bytes on a character boundary, marked when cut."""
    data = detail.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return data
    marker = b"...[truncated]"
    return data[: limit - len(marker)].decode("utf-8", errors="ignore").encode() + marker


class DeadLetterSink:
    """Produce dead letters through :class:`auditstream.stream.kafka.delivery.Delivery`."""

    def __init__(self, delivery: Delivery, topic: str) -> None:
        self._delivery = delivery
        self.topic = topic

    def send(self, letter: DeadLetter, on_acked: OnAcked) -> None:
        self._delivery.produce(
            self.topic,
            key=letter.key,
            value=letter.value,
            headers=letter.wire_headers(),
            on_acked=on_acked,
        )

"""The dead-letter topic: input that is not audit data, kept whole (if it fits) and explained.

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

A record can be bigger than what the producer (``message.max.bytes``) or the dead-letter topic
(``max.message.bytes``) accepts: the input topic and ``max_message_bytes`` allow more, and an
oversized record is precisely one to dead-letter. Such a dead letter keeps the start of the value,
as much as fits (the source headers say where the whole record is, until retention removes it),
and says so:

``auditstream.dlq.truncated``        ``true``
``auditstream.dlq.original_bytes``   the size of the original value (decimal)
``auditstream.dlq.dropped_headers``  only when the original headers did not fit either: how many
                                     were left out (decimal)

If even the original key does not fit, it is left out too. Our own headers always fit: the
start-up check makes sure a record has room for them.

Like an alert, a dead letter is an output of its message: the input offset commits only once
the broker has acknowledged it. Nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from auditstream.stream.kafka.clients import (
    LIBRDKAFKA_MAX_MESSAGE_BYTES,
    record_budget,
    record_size,
)
from auditstream.stream.kafka.delivery import Delivery, Header, OnAcked

PREFIX: Final = "auditstream."
REASON: Final = "auditstream.dlq.reason"
ERROR_CLASS: Final = "auditstream.dlq.error_class"
DETAIL: Final = "auditstream.dlq.detail"
SOURCE_TOPIC: Final = "auditstream.source.topic"
SOURCE_PARTITION: Final = "auditstream.source.partition"
SOURCE_OFFSET: Final = "auditstream.source.offset"
ENTRY: Final = "auditstream.dlq.entry"
TRUNCATED: Final = "auditstream.dlq.truncated"
ORIGINAL_BYTES: Final = "auditstream.dlq.original_bytes"
DROPPED_HEADERS: Final = "auditstream.dlq.dropped_headers"
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
        return [*self.headers, *self._our_headers()]

    def wire_record(self, max_bytes: int) -> WireRecord:
        """Key, value and headers as produced: whole if they fit in ``max_bytes`` (as
        :func:`~auditstream.stream.kafka.clients.record_size` counts), else the value cut to fit,
        then without the original headers, then without the key (see the module docstring)."""
        key, value, original = self.key, self.value, list(self.headers)
        headers = [*original, *self._our_headers()]
        if record_size(key, value, headers) <= max_bytes:
            return WireRecord(key, value, headers)
        ours = [
            *self._our_headers(),
            (TRUNCATED, b"true"),
            (ORIGINAL_BYTES, str(len(value or b"")).encode()),
        ]
        dropped = [(DROPPED_HEADERS, str(len(original)).encode())]
        for kept_key, headers in (
            (key, [*original, *ours]),
            (key, [*ours, *dropped]),
            (None, [*ours, *dropped]),
        ):
            room = max_bytes - record_size(kept_key, None, headers)
            if room >= 0:
                return WireRecord(kept_key, None if value is None else value[:room], headers)
        # Unreachable in the service: the start-up check leaves records room for our headers.
        raise ValueError(f"a dead letter's own headers exceed {max_bytes} bytes")

    def _our_headers(self) -> list[Header]:
        entry = [] if self.entry is None else [(ENTRY, str(self.entry).encode())]
        return [
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


@dataclass(frozen=True, slots=True)
class WireRecord:
    """A dead letter as produced."""

    key: bytes | None
    value: bytes | None
    headers: list[Header]


class DeadLetterSink:
    """Produce dead letters through :class:`auditstream.stream.kafka.delivery.Delivery`, each
    at most ``max_record_bytes`` (what the start-up check found the producer and the topic
    accept; by default what librdkafka's default ``message.max.bytes`` does)."""

    def __init__(
        self,
        delivery: Delivery,
        topic: str,
        *,
        max_record_bytes: int = record_budget(LIBRDKAFKA_MAX_MESSAGE_BYTES),
    ) -> None:
        self._delivery = delivery
        self.topic = topic
        self.max_record_bytes = max_record_bytes

    def send(self, letter: DeadLetter, on_acked: OnAcked) -> None:
        record = letter.wire_record(self.max_record_bytes)
        self._delivery.produce(
            self.topic,
            key=record.key,
            value=record.value,
            headers=record.headers,
            on_acked=on_acked,
        )

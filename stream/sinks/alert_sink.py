"""Where alerts go: the one interface shared by ``auditstream run`` and ``auditstream scan``.

Writing an alert is two steps, because the service must know that an alert *can* be written
before it registers the message's outputs with the offset tracker: :meth:`AlertSink.encode`
first (a refusal raises :class:`AlertEncodingError`, and the message becomes a dead letter),
then :meth:`AlertSink.send` of the encoded bytes, whose ``on_written`` runs once the alert is
durable (the broker acknowledged it; at once for a file). A new destination or format is one new
class with these two methods: :class:`auditstream.stream.sinks.kafka_alerts.KafkaAlertSink`,
:class:`auditstream.stream.sinks.json_lines.JsonLinesAlertSink`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from auditstream.detections.alert import Alert
from auditstream.stream.errors import DataError

OnWritten = Callable[[], None]


class AlertEncodingError(DataError):
    """An alert that its serializer refuses: a data problem, dead-lettered with its message."""

    def __init__(self, detail: str) -> None:
        super().__init__("alert_encoding", detail)


class AlertSink(Protocol):
    """A destination of alerts in one format."""

    def encode(self, alert: Alert) -> bytes:
        """The alert's bytes in this sink's format; raises :class:`AlertEncodingError`."""
        ...

    def send(self, alert: Alert, value: bytes, on_written: OnWritten) -> None:
        """Write ``value`` (from :meth:`encode`); ``on_written`` runs once it is durable."""
        ...


def written() -> None:
    """An ``on_written`` for callers with nothing to do once an alert is written."""

"""Alerts on the alert topic: keyed by ``alert_id``, with headers, in a chosen format.

The key is the alert id (UUIDv5 of rule id and auditID), so a downstream consumer deduplicates
on it and a compacted topic keeps one record per alert, whichever replica or restart sent it.
Headers: ``auditstream.rule_id`` and ``content-type`` (``application/vnd.auditstream.alert+avro``
for the Confluent framing of ``schemas/alert.avsc``, ``application/json`` otherwise: see
:mod:`auditstream.stream.sinks.encoders`). ``on_written`` is the broker's acknowledgement.
"""

from __future__ import annotations

from typing import Final

from auditstream.detections.alert import Alert
from auditstream.stream.kafka.delivery import Delivery
from auditstream.stream.sinks.alert_sink import OnWritten
from auditstream.stream.sinks.encoders import Encoder

RULE_ID_HEADER: Final = "auditstream.rule_id"
CONTENT_TYPE_HEADER: Final = "content-type"


class KafkaAlertSink:
    """Produce alerts through :class:`auditstream.stream.kafka.delivery.Delivery`."""

    def __init__(self, delivery: Delivery, topic: str, encoder: Encoder) -> None:
        self._delivery = delivery
        self.topic = topic
        self._encoder = encoder
        self._content_type = encoder.content_type.encode()

    def encode(self, alert: Alert) -> bytes:
        return self._encoder.encode(alert)

    def send(self, alert: Alert, value: bytes, on_written: OnWritten) -> None:
        headers = [
            (RULE_ID_HEADER, alert.rule.rule_id.encode()),
            (CONTENT_TYPE_HEADER, self._content_type),
        ]
        self._delivery.produce(
            self.topic, key=alert.alert_id, value=value, headers=headers, on_acked=on_written
        )

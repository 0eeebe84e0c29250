"""Alerts as JSON lines on a text stream (stdout or a file): what ``auditstream scan`` writes.

One line per alert, the alert's compact JSON (the same bytes as a JSON alert on Kafka) and a
newline. A line is written when sent, so ``on_written`` runs at once.
"""

from __future__ import annotations

from typing import IO

from auditstream.detections.alert import Alert
from auditstream.stream.sinks.alert_sink import OnWritten
from auditstream.stream.sinks.encoders import json_encoder


class JsonLinesAlertSink:
    """Write alerts, one JSON document per line, to ``out``."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._encoder = json_encoder()

    def encode(self, alert: Alert) -> bytes:
        return self._encoder.encode(alert)

    def send(self, alert: Alert, value: bytes, on_written: OnWritten) -> None:  # noqa: ARG002 - the interface's: other sinks key or route by the alert
        self._out.write(value.decode("utf-8") + "\n")
        on_written()

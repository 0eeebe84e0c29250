"""Where the runtime's output goes: alert sinks (Kafka, JSON lines), their formats, dead letters."""

from auditstream.stream.sinks.alert_sink import AlertEncodingError, AlertSink, OnWritten
from auditstream.stream.sinks.json_lines import JsonLinesAlertSink
from auditstream.stream.sinks.kafka_alerts import KafkaAlertSink

__all__ = ["AlertEncodingError", "AlertSink", "JsonLinesAlertSink", "KafkaAlertSink", "OnWritten"]

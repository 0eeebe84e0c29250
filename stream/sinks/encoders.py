"""Alerts on the wire: keyed by ``alert_id``, Avro (Confluent wire format) or JSON, with headers.

The key is the alert id (UUIDv5 of rule id and auditID), so a downstream consumer deduplicates
on it and a compacted topic keeps one record per alert, whichever replica or restart sent it.
Headers: ``auditstream.rule_id`` and ``content-type`` (``application/vnd.auditstream.alert+avro``
for the Confluent framing of ``schemas/alert.avsc``, ``application/json`` otherwise).

Avro goes through a Schema Registry, subject ``<alert-topic>-value``. The schema is registered
once at start-up (bounded retries); after that the client's cache answers, so a registry outage
only matters to a replica that starts during it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

import structlog
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from auditstream.detections.alert import Alert
from auditstream.stream.delivery import Delivery, OnAcked
from auditstream.stream.errors import StartupError, StreamError
from auditstream.stream.retrying import bounded
from auditstream.stream.settings_types import AlertSettings

RULE_ID_HEADER: Final = "auditstream.rule_id"
CONTENT_TYPE_HEADER: Final = "content-type"
AVRO_CONTENT_TYPE: Final = "application/vnd.auditstream.alert+avro"
JSON_CONTENT_TYPE: Final = "application/json"
_log = structlog.get_logger("auditstream.alerts")


class AlertEncodingError(StreamError):
    """An alert that its serializer refuses: a data problem, dead-lettered with its message."""


@dataclass(frozen=True, slots=True)
class Encoder:
    """Alert -> bytes, and the content type those bytes have."""

    encode: Callable[[Alert], bytes]
    content_type: str


class AlertSink:
    """Produce alerts to the alert topic through :class:`auditstream.stream.delivery.Delivery`."""

    def __init__(self, delivery: Delivery, topic: str, encoder: Encoder) -> None:
        self._delivery = delivery
        self.topic = topic
        self._encoder = encoder

    def encode(self, alert: Alert) -> bytes:
        """Serialise first (before any offset bookkeeping), so a refusal can dead-letter."""
        try:
            return self._encoder.encode(alert)
        except (ValueError, TypeError, OverflowError) as err:
            raise AlertEncodingError(f"{type(err).__name__}: {err}") from err

    def send(self, alert: Alert, value: bytes, on_acked: OnAcked) -> None:
        headers = [
            (RULE_ID_HEADER, alert.rule.id.encode()),
            (CONTENT_TYPE_HEADER, self._encoder.content_type.encode()),
        ]
        self._delivery.produce(
            self.topic, key=alert.alert_id, value=value, headers=headers, on_acked=on_acked
        )


def json_encoder() -> Encoder:
    return Encoder(lambda alert: alert.to_json().encode("utf-8"), JSON_CONTENT_TYPE)


def alert_schema() -> str:
    return resources.files("auditstream.schemas").joinpath("alert.avsc").read_text(encoding="utf-8")


def registry_client(settings: AlertSettings) -> SchemaRegistryClient:
    conf: dict[str, Any] = {**settings.registry, "url": settings.registry_url}
    if settings.registry_auth is not None:
        conf["basic.auth.user.info"] = settings.registry_auth.reveal()
    return SchemaRegistryClient(conf)


def avro_encoder(
    settings: AlertSettings,
    topic: str,
    *,
    startup_timeout: float,
    abort: threading.Event | None = None,
) -> Encoder:
    """Register ``schemas/alert.avsc`` under ``<topic>-value`` (retrying), then serialise."""
    client = registry_client(settings)
    schema_text = alert_schema()
    subject = f"{topic}-value"
    _register(client, subject, schema_text, startup_timeout, abort)
    serializer = AvroSerializer(
        client,
        schema_text,
        lambda alert, _ctx: alert.to_record(),
        conf={"auto.register.schemas": True},
    )
    context = SerializationContext(topic, MessageField.VALUE)

    def encode(alert: Alert) -> bytes:
        return bytes(serializer(alert, context))

    return Encoder(encode, AVRO_CONTENT_TYPE)


def _register(
    client: SchemaRegistryClient,
    subject: str,
    schema: str,
    deadline: float,
    abort: threading.Event | None,
) -> None:
    retrying = bounded(
        "register_schema", deadline=deadline, retriable=_registry_retriable, abort=abort
    )
    try:
        registered = retrying(
            client.register_schema_full_response, subject, Schema(schema, schema_type="AVRO")
        )
    except Exception as err:
        raise StartupError(f"cannot register the alert schema under {subject}: {err}") from err
    _log.info("schema_registered", subject=subject, schema_id=registered.schema_id)


def _registry_retriable(err: BaseException) -> bool:
    """Connection problems and 5xx answers are worth retrying; 4xx (auth, incompatible) not."""
    status = getattr(err, "http_status_code", None)
    if isinstance(status, int):
        return status >= 500 or status in (408, 429)
    return isinstance(err, OSError | ConnectionError) or type(err).__module__.startswith(
        ("requests", "httpx", "urllib3")
    )

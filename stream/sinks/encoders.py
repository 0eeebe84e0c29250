"""Alert formats: JSON (:func:`json_encoder`) or Avro in the Confluent wire format
(:func:`avro_encoder`), each with the content type it announces.

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
from auditstream.stream.errors import StartupError
from auditstream.stream.retrying import bounded
from auditstream.stream.settings_types import AlertSettings, Settings
from auditstream.stream.sinks.alert_sink import AlertEncodingError

AVRO_CONTENT_TYPE: Final = "application/vnd.auditstream.alert+avro"
JSON_CONTENT_TYPE: Final = "application/json"
_log = structlog.get_logger("auditstream.alerts")


@dataclass(frozen=True, slots=True)
class Encoder:
    """Alert -> bytes, and the content type those bytes have."""

    serialise: Callable[[Alert], bytes]
    content_type: str

    def encode(self, alert: Alert) -> bytes:
        """Serialise; a refusal is a data problem (:class:`AlertEncodingError`), not a crash."""
        try:
            return self.serialise(alert)
        except (ValueError, TypeError, OverflowError) as err:
            raise AlertEncodingError(f"{type(err).__name__}: {err}") from err


def encoder_for(settings: Settings, abort: threading.Event | None = None) -> Encoder:
    """The alert format the settings ask for (Avro registers its schema first, bounded)."""
    alerts = settings.alerts
    if alerts.format == "json":
        return json_encoder()
    return avro_encoder(
        alerts,
        settings.topics.alerts,
        startup_timeout=settings.runtime.startup_timeout,
        abort=abort,
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

"""Alert formats: JSON (:func:`json_encoder`), Avro in the Confluent wire format
(:func:`avro_encoder`), and the two shapes SIEMs read without glue, an Elastic Common Schema
document (:func:`ecs_encoder`) and an OCSF Detection Finding (:func:`ocsf_encoder`); each with the
content type it announces in the ``content-type`` header.

Avro goes through a Schema Registry, subject ``<alert-topic>-value``, once: the schema is
registered at start-up (bounded retries) and the id the registry gives then frames every alert
(magic byte 0, the id as 4 big-endian bytes, the Avro body written by fastavro). No alert asks the
registry anything, so a registry outage only matters to a replica that starts during it (it exits
4 after ``startup_timeout``); it can never turn an alert into a dead letter.
"""

from __future__ import annotations

import io
import json
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

import fastavro
import structlog

from auditstream.detections.alert import Alert
from auditstream.stream.errors import StartupError
from auditstream.stream.retrying import bounded
from auditstream.stream.settings_types import AlertSettings, Settings
from auditstream.stream.sinks.alert_sink import AlertEncodingError
from auditstream.stream.sinks.ecs_alert import ECS_CONTENT_TYPE, ecs_document
from auditstream.stream.sinks.ocsf_alert import OCSF_CONTENT_TYPE, ocsf_finding

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

AVRO_CONTENT_TYPE: Final = "application/vnd.auditstream.alert+avro"
JSON_CONTENT_TYPE: Final = "application/json"
MAGIC_BYTE: Final = 0
"""The first byte of Confluent's wire format; the schema id follows as 4 big-endian bytes."""
_FRAME: Final = struct.Struct(">bI")
REGISTRY_REQUEST_TIMEOUT: Final = 10.0
"""Seconds one registry request may take; start-up retries within ``startup_timeout``."""
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
    if alerts.format == "ecs":
        return ecs_encoder()
    if alerts.format == "ocsf":
        return ocsf_encoder()
    return avro_encoder(
        alerts,
        settings.topics.alerts,
        startup_timeout=settings.runtime.startup_timeout,
        abort=abort,
    )


def json_encoder() -> Encoder:
    return Encoder(lambda alert: alert.to_json().encode("utf-8"), JSON_CONTENT_TYPE)


def ecs_encoder() -> Encoder:
    return Encoder(lambda alert: _json_bytes(ecs_document(alert)), ECS_CONTENT_TYPE)


def ocsf_encoder() -> Encoder:
    return Encoder(lambda alert: _json_bytes(ocsf_finding(alert)), OCSF_CONTENT_TYPE)


def _json_bytes(document: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, like :meth:`Alert.to_json`: one record, one line."""
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


def alert_schema() -> str:
    return resources.files("auditstream.schemas").joinpath("alert.avsc").read_text(encoding="utf-8")


def registry_client(settings: AlertSettings) -> SchemaRegistryClient:
    """A client whose requests time out (the library waits for ever by default: a registry that
    accepts connections and never answers would hold start-up past ``startup_timeout``);
    ``[registry]`` may set its own ``timeout``."""
    conf: dict[str, Any] = {
        "timeout": REGISTRY_REQUEST_TIMEOUT,
        **settings.registry,
        "url": settings.registry_url,
    }
    if settings.registry_auth is not None:
        conf["basic.auth.user.info"] = settings.registry_auth.reveal()
    # The registry client pulls in an HTTP and OAuth stack (a seventh of a second of imports):
    # only Avro output needs it, so JSON output and ``scan`` never import it.
    from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: PLC0415

    return SchemaRegistryClient(conf)


def avro_encoder(
    settings: AlertSettings,
    topic: str,
    *,
    startup_timeout: float,
    abort: threading.Event | None = None,
) -> Encoder:
    """Register ``schemas/alert.avsc`` under ``<topic>-value`` (retrying), then frame every alert
    with the id obtained: serialising never calls the registry again."""
    schema_text = alert_schema()
    subject = f"{topic}-value"
    schema_id = _register(registry_client(settings), subject, schema_text, startup_timeout, abort)
    return Encoder(confluent_avro(schema_text, schema_id), AVRO_CONTENT_TYPE)


def confluent_avro(schema_text: str, schema_id: int) -> Callable[[Alert], bytes]:
    """Alert -> Confluent wire format with a fixed schema id: what ``AvroSerializer`` writes,
    without its per-record subject and schema look-ups (each one a registry call when its cache
    misses, and a failure while the registry is away)."""
    parsed = fastavro.parse_schema(json.loads(schema_text))
    frame = _FRAME.pack(MAGIC_BYTE, schema_id)

    def encode(alert: Alert) -> bytes:
        out = io.BytesIO()
        out.write(frame)
        fastavro.schemaless_writer(out, parsed, alert.to_record())
        return out.getvalue()

    return encode


def _register(
    client: SchemaRegistryClient,
    subject: str,
    schema: str,
    deadline: float,
    abort: threading.Event | None,
) -> int:
    """The schema id under ``subject`` (registered if new; the registry answers the existing id
    for a schema it already has)."""
    retrying = bounded(
        "register_schema", deadline=deadline, retriable=_registry_retriable, abort=abort
    )
    from confluent_kafka.schema_registry import Schema  # noqa: PLC0415 - see registry_client

    try:
        registered = retrying(
            client.register_schema_full_response, subject, Schema(schema, schema_type="AVRO")
        )
    except Exception as err:
        raise StartupError(f"cannot register the alert schema under {subject}: {err}") from err
    if registered.schema_id is None:
        raise StartupError(f"the registry gave no schema id for {subject}")
    _log.info("schema_registered", subject=subject, schema_id=registered.schema_id)
    return int(registered.schema_id)


def _registry_retriable(err: BaseException) -> bool:
    """Connection problems and 5xx answers are worth retrying; 4xx (auth, incompatible) not."""
    status = getattr(err, "http_status_code", None)
    if isinstance(status, int):
        return status >= 500 or status in (408, 429)
    return isinstance(err, OSError | ConnectionError) or type(err).__module__.startswith(
        ("requests", "httpx", "urllib3")
    )

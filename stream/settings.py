"""The service configuration: one frozen, typed :class:`Settings`, built once at the entry point.

Three layers, later ones winning key by key: a TOML file (``--config`` or ``AUDITSTREAM_CONFIG``),
environment variables (``AUDITSTREAM_<NAME>``), then command-line flags. Every setting has one
name, used as the TOML key, as the variable (upper-cased, after the prefix) and as the flag
(``--`` and dashes). librdkafka and Schema Registry client properties pass through untouched in
four tables, in TOML or as ``AUDITSTREAM_<TABLE>__<PROPERTY>`` with dots spelled ``_``:

    [kafka]      every Kafka client     AUDITSTREAM_KAFKA__SASL_MECHANISM=SCRAM-SHA-512
    [consumer]   the consumer only      AUDITSTREAM_CONSUMER__FETCH_MAX_BYTES=...
    [producer]   the producer only      AUDITSTREAM_PRODUCER__LINGER_MS=20
    [registry]   SchemaRegistryClient   AUDITSTREAM_REGISTRY__SSL_CA_LOCATION=/ca.pem

Validation happens here, at start-up, with errors naming the file, variable or flag at fault;
with Avro alerts the Schema Registry client is built once (it reaches no server) so that a
property it refuses is a settings error here rather than a crash of the service later. Secrets
(passwords, keys, registry credentials, credentials inside URLs) never reach ``repr``, errors
or logs: :meth:`Settings.describe` is what the start-up log line prints.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import urlsplit

from auditstream.stream.errors import SettingsError
from auditstream.stream.settings_types import (
    REDACTED,
    AlertSettings,
    ClientValue,
    HttpSettings,
    KafkaSettings,
    LogSettings,
    Properties,
    RuleSettings,
    RuntimeSettings,
    Secret,
    Settings,
    StateSettings,
    TopicCreation,
    TopicSettings,
    is_secret,
    redact_text,
)

__all__ = ["CONFIG_ENV", "ENV_PREFIX", "FIELDS", "TABLES", "Settings", "load_settings"]

ENV_PREFIX: Final = "AUDITSTREAM_"
CONFIG_ENV: Final = "AUDITSTREAM_CONFIG"
TABLES: Final = ("kafka", "consumer", "producer", "registry")
# -- the settings table: name -> (parser, default) ------------------------------------------------

Parser = Callable[[object, str], object]


def _str(value: object, where: str) -> object:
    if not isinstance(value, str):
        raise SettingsError(f"expected a string, got {value!r}", where)
    return value.strip()


def _int(value: object, where: str) -> object:
    if isinstance(value, bool):
        raise SettingsError(f"expected an integer, got {value!r}", where)
    try:
        return int(cast(Any, value))
    except (TypeError, ValueError):
        raise SettingsError(f"expected an integer, got {value!r}", where) from None


def _float(value: object, where: str) -> object:
    if isinstance(value, bool):
        raise SettingsError(f"expected a number, got {value!r}", where)
    try:
        return float(cast(Any, value))
    except (TypeError, ValueError):
        raise SettingsError(f"expected a number (seconds), got {value!r}", where) from None


def _bool(value: object, where: str) -> object:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise SettingsError(f"expected true or false, got {value!r}", where)


def _list(value: object, where: str) -> object:
    """A TOML array of strings, or a comma-separated string (environment, flags)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise SettingsError(f"expected a list of strings, got {value!r}", where)
    return tuple(i.strip() for i in items if i.strip())


_CONFIG_NAME: Final = re.compile(r"[a-z0-9]+(\.[a-z0-9]+)*")


def _topic_config(value: object, where: str) -> object:
    """Topic configs: a TOML table, or ``name=value,...`` (environment, flags), where a piece
    without ``=`` continues the value before it (``cleanup.policy=compact,delete``)."""
    pairs: dict[str, object] = {}
    if isinstance(value, str):
        last = ""
        for piece in (p.strip() for p in value.split(",") if p.strip()):
            name, sep, item = piece.partition("=")
            if sep:
                last = name.strip()
                pairs[last] = item.strip()
            elif last:
                pairs[last] = f"{pairs[last]},{piece}"
            else:
                raise SettingsError(f"expected NAME=VALUE,..., got {value!r}", where)
    elif isinstance(value, dict):
        pairs = value
    else:
        raise SettingsError(f"expected a table of topic configs, got {value!r}", where)
    for name, given in pairs.items():
        if not _CONFIG_NAME.fullmatch(name) or not isinstance(given, str | int | float | bool):
            raise SettingsError(f"{name}: expected a topic config and a scalar value", where)
    return Properties({k: _config_value(v) for k, v in pairs.items()})


def _config_value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _choice(*allowed: str) -> Parser:
    def parse(value: object, where: str) -> object:
        text = str(value).strip().lower()
        if text not in allowed:
            raise SettingsError(f"expected one of {', '.join(allowed)}, got {value!r}", where)
        return text

    return parse


_CREATION: Final = TopicCreation()  # the defaults of auditstream topics create
_STATE: Final = StateSettings()
FIELDS: Final[Mapping[str, tuple[Parser, object]]] = {
    "bootstrap_servers": (_str, None),
    "input_topics": (_list, ()),
    "input_pattern": (_str, None),
    "group_id": (_str, "auditstream"),
    "group_protocol": (_choice("classic", "consumer"), "classic"),
    "delivery": (_choice("at-least-once", "exactly-once"), "at-least-once"),
    "transactional_id": (_str, None),
    "alert_topic": (_str, None),
    "dead_letter_topic": (_str, None),
    "rules": (_list, ()),
    "builtin_rules": (_bool, True),
    "alert_format": (_choice("avro", "json", "ecs", "ocsf"), "json"),
    "registry_url": (_str, None),
    "registry_basic_auth": (_str, None),
    "window": (_int, 100_000),
    "window_restore": (_float, 600.0),
    "max_message_bytes": (_int, 1_048_576),
    "batch_size": (_int, 500),
    "poll_timeout": (_float, 0.5),
    "commit_interval": (_float, 5.0),
    "revoke_timeout": (_float, 5.0),
    "shutdown_timeout": (_float, 8.0),
    "startup_timeout": (_float, 60.0),
    "stats_interval": (_float, 5.0),
    "http_host": (_str, "127.0.0.1"),
    "http_port": (_int, 9108),
    "health_stale_after": (_float, 30.0),
    "log_format": (_choice("auto", "json", "console"), "auto"),
    "log_level": (_choice("debug", "info", "warning", "error"), "info"),
    # auditstream topics create (see auditstream.stream.kafka.topics)
    "topic_partitions": (_int, _CREATION.partitions),
    "topic_replication_factor": (_int, _CREATION.replication_factor),
    "alert_retention_ms": (_int, _CREATION.alert_retention_ms),
    "dead_letter_retention_ms": (_int, _CREATION.dead_letter_retention_ms),
    "alert_topic_config": (_topic_config, Properties()),
    "dead_letter_topic_config": (_topic_config, Properties()),
    "create_input_topic": (_bool, _CREATION.with_input),
    "admin_timeout": (_float, _CREATION.admin_timeout),
    # stateful rules (see auditstream.stream.state)
    "state_dir": (_str, str(_STATE.folder)),
    "allowed_lateness": (_float, _STATE.allowed_lateness),
}
SECRET_FIELDS: Final = frozenset({"registry_basic_auth"})
# Schema Registry client properties that must be numbers (SchemaRegistryClient checks the type).
_REGISTRY_NUMBERS: Final[Mapping[str, Parser]] = {
    "max.retries": _int,
    "retries.wait.ms": _int,
    "retries.max.wait.ms": _int,
    "cache.capacity": _int,
    "cache.latest.ttl.sec": _float,
    "timeout": _float,
}

# librdkafka properties spelled with an underscore, which a variable name cannot tell from a dot.
_UNDERSCORED: Final = {"log.level": "log_level"}

Raw = dict[str, tuple[object, str]]  # name -> (value as given, where it was given)


@dataclass(slots=True)
class _Layers:
    """Raw values merged layer by layer; each remembers where it came from, for errors."""

    scalars: Raw = field(default_factory=dict)
    tables: dict[str, Raw] = field(default_factory=lambda: {t: {} for t in TABLES})
    ignored_env: list[str] = field(default_factory=list)


def load_settings(
    config: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> Settings:
    """File, then environment, then flags; raises :class:`SettingsError` naming the culprit.

    ``flags`` holds only the flags given, by setting name (tables as dicts of properties).
    """
    env = env or {}
    layers = _Layers()
    path = config or (Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else None)
    if path is not None:
        _add_file(layers, path)
    _add_env(layers, env)
    _add_flags(layers, flags or {})
    values = {
        name: _parse(name, *layers.scalars[name]) if name in layers.scalars else default
        for name, (_, default) in FIELDS.items()
    }
    tables = {
        t: Properties({k: _property(t, k, v, where) for k, (v, where) in layers.tables[t].items()})
        for t in TABLES
    }
    settings = replace(_build(values, tables), ignored_env=tuple(layers.ignored_env))
    _validate(settings, layers)
    return settings


def _parse(name: str, value: object, where: str) -> object:
    """One setting's value; an error about a secret setting does not quote what was given."""
    try:
        return FIELDS[name][0](value, where)
    except SettingsError:
        if name not in SECRET_FIELDS:
            raise
        raise SettingsError(
            f"invalid {type(value).__name__} (not shown: the value is a secret)", where
        ) from None


def _property(table: str, key: str, value: object, where: str) -> ClientValue:
    """A client property as the client wants it: variables and flags only give strings, and
    the Schema Registry client refuses a number given as one (``max.retries="5"``)."""
    number = _REGISTRY_NUMBERS.get(key) if table == "registry" else None
    return cast(ClientValue, number(value, where) if number else value)


def _add_file(layers: _Layers, path: Path) -> None:
    where = str(path)
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError("no such file", where) from None
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise SettingsError(f"cannot read: {err}", where) from err
    for key, value in document.items():
        if key in TABLES:
            if not isinstance(value, dict):
                raise SettingsError(f"[{key}] must be a table of client properties", where)
            for prop, item in value.items():
                if not isinstance(item, str | int | float | bool):
                    shown = REDACTED if is_secret(prop) else repr(item)
                    raise SettingsError(f"[{key}] {prop}: expected a scalar, got {shown}", where)
                layers.tables[key][prop] = (item, f"{where} [{key}] {prop}")
        elif key in FIELDS:
            layers.scalars[key] = (value, f"{where}: {key}")
        else:
            raise SettingsError(f"unknown setting {key!r}", where)


def _add_env(layers: _Layers, env: Mapping[str, str]) -> None:
    for name, value in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        rest = name[len(ENV_PREFIX) :]
        table, sep, prop = rest.partition("__")
        if sep and table.lower() in TABLES and prop:
            key = prop.lower().replace("_", ".")
            layers.tables[table.lower()][_UNDERSCORED.get(key, key)] = (value, name)
        elif not sep and rest.lower() in FIELDS:
            layers.scalars[rest.lower()] = (value, name)
        else:
            layers.ignored_env.append(name)


def _add_flags(layers: _Layers, flags: Mapping[str, object]) -> None:
    for name, value in flags.items():
        where = "--" + name.replace("_", "-")
        if name in TABLES and isinstance(value, Mapping):
            for prop, item in value.items():
                layers.tables[name][str(prop)] = (item, f"{where} {prop}")
        elif name in FIELDS:
            layers.scalars[name] = (value, where)
        else:
            raise SettingsError(f"unknown setting {name!r}", where)


def _transactional_id(values: Mapping[str, Any], tables: Mapping[str, Properties]) -> str | None:
    """Exactly-once needs one transactional id per replica, the same after each of its
    restarts, so that a restarted replica fences its former self at once: given; or the
    replica's static group membership (``group.instance.id``, a StatefulSet pod's name); or the
    host name and process id (a pod's name and its PID 1; on a machine running several
    replicas, each process its own, a restarted one then waits out the broker's transaction
    timeout for what its former self left open)."""
    if values["delivery"] != "exactly-once":
        return None
    given = values["transactional_id"]
    if given:
        return str(given)
    instance = tables["consumer"].get("group.instance.id") or tables["kafka"].get(
        "group.instance.id"
    )
    replica = str(instance) if instance else f"{socket.gethostname()}-{os.getpid()}"
    return f"auditstream-{values['group_id']}-{replica}"


def _build(values: Mapping[str, Any], tables: Mapping[str, Properties]) -> Settings:
    auth = values["registry_basic_auth"]
    return Settings(
        kafka=KafkaSettings(
            bootstrap_servers=values["bootstrap_servers"] or "",
            group_id=values["group_id"],
            group_protocol=values["group_protocol"],
            common=tables["kafka"],
            consumer=tables["consumer"],
            producer=tables["producer"],
            stats_interval=values["stats_interval"],
            delivery=values["delivery"],
            transactional_id=_transactional_id(values, tables),
        ),
        topics=TopicSettings(
            inputs=values["input_topics"],
            pattern=values["input_pattern"] or None,
            alerts=values["alert_topic"] or "",
            dead_letters=values["dead_letter_topic"] or "",
            group_id=values["group_id"],
        ),
        alerts=AlertSettings(
            format=values["alert_format"],
            registry_url=values["registry_url"] or None,
            registry_auth=Secret(auth) if auth else None,
            registry=tables["registry"],
            window=values["window"],
            window_restore=values["window_restore"],
        ),
        rules=RuleSettings(tuple(Path(p) for p in values["rules"]), values["builtin_rules"]),
        runtime=RuntimeSettings(
            batch_size=values["batch_size"],
            poll_timeout=values["poll_timeout"],
            commit_interval=values["commit_interval"],
            revoke_timeout=values["revoke_timeout"],
            shutdown_timeout=values["shutdown_timeout"],
            startup_timeout=values["startup_timeout"],
            max_message_bytes=values["max_message_bytes"],
        ),
        http=HttpSettings(values["http_host"], values["http_port"], values["health_stale_after"]),
        log=LogSettings(values["log_format"], values["log_level"]),
        topic_creation=TopicCreation(
            partitions=values["topic_partitions"],
            replication_factor=values["topic_replication_factor"],
            alert_retention_ms=values["alert_retention_ms"],
            dead_letter_retention_ms=values["dead_letter_retention_ms"],
            alert_config=values["alert_topic_config"],
            dead_letter_config=values["dead_letter_topic_config"],
            with_input=values["create_input_topic"],
            admin_timeout=values["admin_timeout"],
        ),
        state=StateSettings(Path(values["state_dir"]), values["allowed_lateness"]),
    )


def _where(layers: _Layers, name: str) -> str:
    """Where a setting was given, or how it could be given when it was not."""
    if name in layers.scalars:
        return layers.scalars[name][1]
    return f"{name} (TOML), {ENV_PREFIX}{name.upper()} or --{name.replace('_', '-')}"


def _validate(settings: Settings, layers: _Layers) -> None:
    from auditstream.stream.kafka.config import check_client_configs  # noqa: PLC0415 - avoids a cycle

    for name in ("bootstrap_servers", "alert_topic", "dead_letter_topic"):
        if not layers.scalars.get(name, ("", ""))[0]:
            raise SettingsError("is required", _where(layers, name))
    _validate_topics(settings.topics, layers)
    alerts = settings.alerts
    if alerts.format == "avro" and not alerts.registry_url:
        raise SettingsError("alert_format avro needs a registry", _where(layers, "registry_url"))
    for name, low, high in _RANGES:
        value = _value_of(settings, name)
        if not low <= value <= high:
            raise SettingsError(
                f"must be between {low} and {high}, not {value}", _where(layers, name)
            )
    check_client_configs(settings.kafka)
    _validate_topic_creation(settings.topic_creation, layers)
    if alerts.registry_url:
        _validate_registry_urls(alerts.registry_url, layers)
    if alerts.format == "avro":
        _validate_registry_client(settings, layers)


_RANGES: Final = (
    ("window", 1, 100_000_000),
    ("max_message_bytes", 1024, 1 << 30),
    ("batch_size", 1, 100_000),
    ("poll_timeout", 0.01, 5.0),
    ("commit_interval", 0.05, 3600.0),
    ("revoke_timeout", 0.1, 300.0),
    ("shutdown_timeout", 0.5, 300.0),
    ("startup_timeout", 0.1, 3600.0),
    ("stats_interval", 0.0, 3600.0),
    ("http_port", 0, 65535),
    ("health_stale_after", 1.0, 3600.0),
    ("window_restore", 0.0, 86_400.0),
    ("topic_partitions", 1, 100_000),
    ("admin_timeout", 1.0, 600.0),
    ("allowed_lateness", 0.0, 86_400.0),
)


def _value_of(settings: Settings, name: str) -> float:
    values: dict[str, float] = {
        "window": settings.alerts.window,
        "max_message_bytes": settings.runtime.max_message_bytes,
        "batch_size": settings.runtime.batch_size,
        "poll_timeout": settings.runtime.poll_timeout,
        "commit_interval": settings.runtime.commit_interval,
        "revoke_timeout": settings.runtime.revoke_timeout,
        "shutdown_timeout": settings.runtime.shutdown_timeout,
        "startup_timeout": settings.runtime.startup_timeout,
        "stats_interval": settings.kafka.stats_interval,
        "http_port": settings.http.port,
        "health_stale_after": settings.http.stale_after,
        "window_restore": settings.alerts.window_restore,
        "topic_partitions": settings.topic_creation.partitions,
        "admin_timeout": settings.topic_creation.admin_timeout,
        "allowed_lateness": settings.state.allowed_lateness,
    }
    return values[name]


def _validate_topics(topics: TopicSettings, layers: _Layers) -> None:
    if bool(topics.inputs) == bool(topics.pattern):
        raise SettingsError(
            "give exactly one of input_topics and input_pattern", _where(layers, "input_topics")
        )
    outputs = (topics.alerts, topics.dead_letters)
    if topics.alerts == topics.dead_letters:
        raise SettingsError("must differ from alert_topic", _where(layers, "dead_letter_topic"))
    if topics.pattern is not None:
        if not topics.pattern.startswith("^"):
            raise SettingsError("a pattern must start with ^", _where(layers, "input_pattern"))
        try:
            regex = re.compile(topics.pattern)
        except re.error as err:
            raise SettingsError(f"bad regex: {err}", _where(layers, "input_pattern")) from err
        if any(regex.search(t) for t in outputs):
            raise SettingsError(
                "matches an output topic (it would read its own output)",
                _where(layers, "input_pattern"),
            )
    if any(t in topics.inputs for t in outputs):
        raise SettingsError(
            "an output topic is also an input topic (it would read its own output)",
            _where(layers, "input_topics"),
        )


# Topic configs that have a setting of their own (or that the alert topic cannot do without).
_TOPIC_CONFIG_OWNED: Final = {
    "alert_topic_config": {
        "cleanup.policy": "the alert topic is compacted (keyed by alert_id); alert_retention_ms "
        "makes it compact,delete",
        "retention.ms": "set alert_retention_ms instead",
    },
    "dead_letter_topic_config": {"retention.ms": "set dead_letter_retention_ms instead"},
}


def _validate_topic_creation(creation: TopicCreation, layers: _Layers) -> None:
    """-1 means the broker's default (replication) or forever (retention); 0 means nothing."""
    for name, value, high in (
        ("topic_replication_factor", creation.replication_factor, 32_767),
        ("alert_retention_ms", creation.alert_retention_ms, 1 << 62),
        ("dead_letter_retention_ms", creation.dead_letter_retention_ms, 1 << 62),
    ):
        if value != -1 and not 1 <= value <= high:
            where = _where(layers, name)
            raise SettingsError(f"must be -1 or between 1 and {high}, not {value}", where)
    configs = {
        "alert_topic_config": creation.alert_config,
        "dead_letter_topic_config": creation.dead_letter_config,
    }
    for setting, owned in _TOPIC_CONFIG_OWNED.items():
        given = configs[setting]
        for key in sorted(owned.keys() & given.keys()):
            raise SettingsError(f"{key}: {owned[key]}", _where(layers, setting))


def _validate_registry_urls(urls: str, layers: _Layers) -> None:
    """Every URL of the list (the client fails over from one to the next) must be http(s)."""
    for place, url in enumerate(urls.split(","), start=1):
        try:
            scheme = urlsplit(url.strip()).scheme
        except ValueError:
            scheme = ""
        if scheme not in ("http", "https"):
            raise SettingsError(
                f"must be an http(s) URL (URL {place} of the list is not)",
                _where(layers, "registry_url"),
            )


def _validate_registry_client(settings: Settings, layers: _Layers) -> None:
    """Build the Schema Registry client once, as the service will (it reaches no server), so
    that a configuration it refuses is a settings error naming the setting, not a crash later."""
    # Lazily: the sinks (and the registry client library) load only when Avro is configured.
    from auditstream.stream.sinks.encoders import registry_client  # noqa: PLC0415

    try:
        registry_client(settings.alerts).close()
    except Exception as err:  # the client raises ValueError, TypeError, OSError, ssl errors...
        detail = f"{type(err).__name__}: {err}"
        for secret in settings.secret_values():
            detail = detail.replace(secret, REDACTED)
        raise SettingsError(
            f"the Schema Registry client refused its configuration: {redact_text(detail)}",
            _registry_culprit(str(err), layers),
        ) from err


def _registry_culprit(message: str, layers: _Layers) -> str:
    """Where the registry setting the client's message is about was given: the property it
    names (the longest match), else the URL and credentials, else every registry property."""
    given = layers.tables["registry"]
    named = [prop for prop in given if prop in message]
    if named:
        return given[max(named, key=len)][1]
    suspects = ["registry_url"]
    if "basic.auth" in message:
        suspects.append("registry_basic_auth")
    places = [_where(layers, name) for name in suspects] + [w for _, w in given.values()]
    return ", ".join(places)

"""Service settings: file -> environment -> flags precedence, validation, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditstream.stream.cli.main import build_parser
from auditstream.stream.cli.run import flags_from_args, run_command
from auditstream.stream.errors import SettingsError
from auditstream.stream.settings import load_settings

MINIMAL = {
    "AUDITSTREAM_BOOTSTRAP_SERVERS": "env:9092",
    "AUDITSTREAM_INPUT_TOPICS": "audit",
    "AUDITSTREAM_ALERT_TOPIC": "alerts",
    "AUDITSTREAM_DEAD_LETTER_TOPIC": "dlq",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "auditstream.toml"
    path.write_text(text, encoding="utf-8")
    return path


def parse_flags(*argv: str) -> dict[str, object]:
    return flags_from_args(build_parser().parse_args(["run", *argv]))


def test_precedence_flags_over_env_over_file(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        'bootstrap_servers = "file:9092"\ngroup_id = "from-file"\nalert_topic = "file-alerts"\n'
        'dead_letter_topic = "file-dlq"\ninput_topics = ["a", "b"]\ncommit_interval = 2.5\n'
        '[kafka]\n"linger.ms" = 7\n"client.rack" = "r1"\n',
    )
    env = {
        "AUDITSTREAM_GROUP_ID": "from-env",
        "AUDITSTREAM_ALERT_TOPIC": "env-alerts",
        "AUDITSTREAM_KAFKA__LINGER_MS": "9",
    }
    flags = parse_flags("--alert-topic", "flag-alerts", "-X", "client.rack=r2")
    settings = load_settings(config, env, flags)
    assert settings.kafka.bootstrap_servers == "file:9092"
    assert settings.kafka.group_id == "from-env"
    assert settings.topics.alerts == "flag-alerts"
    assert settings.topics.dead_letters == "file-dlq"
    assert settings.topics.inputs == ("a", "b")
    assert settings.runtime.commit_interval == 2.5
    assert dict(settings.kafka.common) == {"linger.ms": "9", "client.rack": "r2"}


def test_config_path_from_environment(tmp_path: Path) -> None:
    config = write(tmp_path, 'group_id = "g1"\n')
    settings = load_settings(None, {**MINIMAL, "AUDITSTREAM_CONFIG": str(config)})
    assert settings.kafka.group_id == "g1"


def test_defaults() -> None:
    settings = load_settings(None, MINIMAL)
    assert settings.kafka.group_id == "auditstream"
    assert settings.kafka.group_protocol == "classic"
    assert settings.alerts.format == "json"
    assert settings.rules.builtin is True
    assert settings.http.host == "127.0.0.1"


def test_flags_absent_do_not_override() -> None:
    assert parse_flags() == {}
    flags = parse_flags("--no-builtin-rules", "--rules", "x.toml", "--input-topic", "t1")
    assert flags == {"builtin_rules": False, "rules": ["x.toml"], "input_topics": ["t1"]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"AUDITSTREAM_BOOTSTRAP_SERVERS": ""}, "AUDITSTREAM_BOOTSTRAP_SERVERS: is required"),
        ({"AUDITSTREAM_INPUT_PATTERN": "^audit-.*"}, "exactly one of input_topics"),
        ({"AUDITSTREAM_ALERT_FORMAT": "xml"}, "AUDITSTREAM_ALERT_FORMAT: expected one of avro"),
        ({"AUDITSTREAM_ALERT_FORMAT": "avro"}, "alert_format avro needs a registry"),
        ({"AUDITSTREAM_WINDOW": "0"}, "AUDITSTREAM_WINDOW: must be between 1"),
        ({"AUDITSTREAM_HTTP_PORT": "http"}, "AUDITSTREAM_HTTP_PORT: expected an integer"),
        ({"AUDITSTREAM_DEAD_LETTER_TOPIC": "audit"}, "also an input topic"),
        ({"AUDITSTREAM_DEAD_LETTER_TOPIC": "alerts"}, "must differ from alert_topic"),
        ({"AUDITSTREAM_CONSUMER__ENABLE_AUTO_COMMIT": "true"}, "contradicts enable.auto.commit"),
        ({"AUDITSTREAM_PRODUCER__ACKS": "1"}, "[producer] acks: acks='1' contradicts"),
        ({"AUDITSTREAM_KAFKA__BOOTSTRAP_SERVERS": "x:1"}, "with the bootstrap_servers setting"),
        ({"AUDITSTREAM_REGISTRY_URL": "ftp://r"}, "must be an http(s) URL"),
    ],
)
def test_invalid_settings_name_their_source(change: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(None, {**MINIMAL, **change})
    assert message in str(caught.value)


def test_missing_setting_says_how_to_give_it() -> None:
    env = {k: v for k, v in MINIMAL.items() if k != "AUDITSTREAM_ALERT_TOPIC"}
    with pytest.raises(
        SettingsError, match=r"alert_topic \(TOML\), AUDITSTREAM_ALERT_TOPIC or --alert-topic"
    ):
        load_settings(None, env)


def test_pattern_must_not_match_outputs() -> None:
    env = {**MINIMAL, "AUDITSTREAM_INPUT_TOPICS": "", "AUDITSTREAM_INPUT_PATTERN": "^al.*"}
    with pytest.raises(SettingsError, match="matches an output topic"):
        load_settings(None, env)
    env["AUDITSTREAM_INPUT_PATTERN"] = "^audit-.*"
    assert load_settings(None, env).topics.pattern == "^audit-.*"


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no such file"):
        load_settings(tmp_path / "missing.toml", MINIMAL)
    with pytest.raises(SettingsError, match="unknown setting 'bootstrap'"):
        load_settings(write(tmp_path, 'bootstrap = "x"\n'), MINIMAL)
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(write(tmp_path, "bootstrap_servers = \n"), MINIMAL)


def test_kip848_rejects_classic_only_properties() -> None:
    env = {**MINIMAL, "AUDITSTREAM_GROUP_PROTOCOL": "consumer"}
    assert load_settings(None, env).kafka.group_protocol == "consumer"
    with pytest.raises(SettingsError, match=r"session\.timeout\.ms does not exist"):
        load_settings(None, {**env, "AUDITSTREAM_CONSUMER__SESSION_TIMEOUT_MS": "6000"})


def test_environment_property_names() -> None:
    env = {
        **MINIMAL,
        "AUDITSTREAM_CONSUMER__FETCH_MAX_BYTES": "1000",
        "AUDITSTREAM_KAFKA__LOG_LEVEL": "3",
    }
    settings = load_settings(None, env)
    assert dict(settings.kafka.consumer) == {"fetch.max.bytes": "1000"}
    assert dict(settings.kafka.common) == {"log_level": "3"}


def test_unknown_environment_is_reported_not_fatal() -> None:
    settings = load_settings(None, {**MINIMAL, "AUDITSTREAM_CACHE": "/tmp/x"})
    assert settings.ignored_env == ("AUDITSTREAM_CACHE",)


def test_secrets_hidden_in_repr_and_describe() -> None:
    # JSON alerts: the registry client is not built, so it does not refuse credentials in the
    # URL and in registry_basic_auth at once, nor a key without a certificate (it would with avro).
    env = {
        **MINIMAL,
        "AUDITSTREAM_REGISTRY_URL": "https://svc:hunter2-url@registry:8081",
        "AUDITSTREAM_REGISTRY_BASIC_AUTH": "svc:hunter2-auth",
        "AUDITSTREAM_KAFKA__SASL_PASSWORD": "hunter2-sasl",
        "AUDITSTREAM_KAFKA__SASL_USERNAME": "svc",
        "AUDITSTREAM_KAFKA__SSL_KEY_PASSWORD": "hunter2-key",
        "AUDITSTREAM_PRODUCER__SSL_KEY_PEM": "hunter2-pem",
        "AUDITSTREAM_REGISTRY__SSL_KEY_LOCATION": "/secret/key.pem",
    }
    settings = load_settings(None, env)
    shown = repr(settings) + repr(settings.describe())
    assert "hunter2" not in shown
    assert "svc" in shown  # a user name is not a secret
    assert settings.describe()["registry_url"] == "https://***@registry:8081"
    assert settings.kafka.common["sasl.password"] == "hunter2-sasl"  # still usable
    assert settings.alerts.registry_auth is not None
    assert settings.alerts.registry_auth.reveal() == "svc:hunter2-auth"


def test_run_refuses_bad_settings_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["run", "--alert-topic", "a", "--http-port", "70000"])
    assert run_command(args, environ={**MINIMAL}) == 2
    err = capsys.readouterr().err
    assert "invalid configuration: --http-port: must be between 0 and 65535" in err


def test_settings_are_frozen() -> None:
    settings = load_settings(None, MINIMAL)
    with pytest.raises(AttributeError):
        settings.kafka = settings.kafka  # type: ignore[misc]


def test_event_hubs_settings_from_the_sources_doc() -> None:
    """docs/sources.md's Event Hubs block, as written there, configures SASL_SSL/PLAIN with the
    connection string as the password, masked in what the service logs."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "sources.md").read_text()
    block = doc.split("```sh\n", 1)[1].split("```", 1)[0]
    env = dict(line.split("=", 1) for line in block.splitlines() if line.strip())
    settings = load_settings(None, {**env, "AUDITSTREAM_ALERT_TOPIC": "alerts",
                                    "AUDITSTREAM_DEAD_LETTER_TOPIC": "dlq"})  # fmt: skip
    common = settings.kafka.common
    assert common["security.protocol"] == "SASL_SSL"
    assert common["sasl.mechanism"] == "PLAIN"
    assert common["sasl.username"] == "$ConnectionString"
    assert str(common["sasl.password"]).startswith("Endpoint=sb://mynamespace")
    assert "SharedAccessKey=" not in repr(settings.describe())

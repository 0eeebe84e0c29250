"""Secrets never reach a log line, an error message or stderr (issue #16, defect 4), without a
broker: the renderers, URL masking, and the settings errors of every configuration path.

Every secret is a distinct marker string, so a failure names the path it leaked through. The
end-to-end checks through ``auditstream run`` with a real broker and registry are in
``tests/integration/service/test_secrets_in_logs.py``.
"""

from __future__ import annotations

import io
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from auditstream.stream.cli.main import main
from auditstream.stream.errors import SettingsError
from auditstream.stream.logs import configure_logging
from auditstream.stream.settings import load_settings
from auditstream.stream.settings_types import redact_url

MINIMAL = {
    "AUDITSTREAM_BOOTSTRAP_SERVERS": "127.0.0.1:9",
    "AUDITSTREAM_INPUT_TOPICS": "audit",
    "AUDITSTREAM_ALERT_TOPIC": "alerts",
    "AUDITSTREAM_DEAD_LETTER_TOPIC": "dlq",
}
AVRO = {**MINIMAL, "AUDITSTREAM_ALERT_FORMAT": "avro"}


@pytest.fixture
def restore_signals() -> Iterator[None]:
    """``auditstream run`` installs SIGTERM/SIGINT handlers: give pytest its own back."""
    saved = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


@pytest.fixture
def restore_structlog() -> Iterator[None]:
    """configure_logging changes the process-wide structlog setup: put the previous one back."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def log_to_buffer(fmt: str, secrets: tuple[str, ...] = ()) -> tuple[io.StringIO, Any]:
    buffer = io.StringIO()
    if secrets:
        configure_logging(fmt, "debug", stream=buffer, secrets=secrets)  # type: ignore[arg-type]
    else:
        configure_logging(fmt, "debug", stream=buffer)  # type: ignore[arg-type]
    return buffer, structlog.get_logger("test")


# -- renderers ----------------------------------------------------------------------------------


def _fails_with_a_secret_in_scope() -> None:
    basic_auth = ("svc", "MARK-local-tuple")  # a local variable, as in SchemaRegistryClient
    raise TypeError(f"max.retries must be a number ({len(basic_auth)} parts)")


@pytest.mark.usefixtures("restore_structlog")
@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_logged_traceback_shows_no_local_variables(fmt: str) -> None:
    buffer, log = log_to_buffer(fmt)
    try:
        _fails_with_a_secret_in_scope()
    except TypeError:
        log.exception("service_crashed")
    text = buffer.getvalue()
    assert "max.retries must be a number" in text  # the traceback itself is still there
    assert "_fails_with_a_secret_in_scope" in text
    assert "MARK-local-tuple" not in text
    if fmt == "json":
        frames = json.loads(text)["exception"][0]["frames"]
        assert all("locals" not in frame for frame in frames)


@pytest.mark.usefixtures("restore_structlog")
@pytest.mark.parametrize("fmt", ["json", "console"])
def test_known_secret_values_are_masked_in_every_rendered_line(fmt: str) -> None:
    """Defence in depth: an error message of a library that quotes a secret value is masked."""
    buffer, log = log_to_buffer(fmt, secrets=("MARK-known-1", 'MARK"quoted\\2'))
    log.error(
        "registry_failed",
        error="refused password MARK-known-1 for svc",
        detail={"nested": ['MARK"quoted\\2']},
        url="http://svc:MARK-url-3@registry:8081/apis",
    )
    text = buffer.getvalue()
    assert "MARK" not in text, text
    assert "refused password *** for svc" in text
    assert "registry:8081/apis" in text


# -- URLs -----------------------------------------------------------------------------------------


def test_every_url_of_a_registry_url_list_is_masked() -> None:
    urls = "http://a:MARK-u1@r1:8081, https://b:MARK-u2@r2:8081/x,http://r3:8081"
    assert redact_url(urls) == "http://***@r1:8081, https://***@r2:8081/x,http://r3:8081"


def test_proxy_and_other_url_properties_are_masked_in_describe() -> None:
    settings = load_settings(
        None,
        {
            **AVRO,
            "AUDITSTREAM_REGISTRY_URL": "http://r1:8081,http://svc:MARK-list-2@r2:8081",
            "AUDITSTREAM_REGISTRY__PROXY": "http://proxyuser:MARK-proxy@proxy:3128",
            "AUDITSTREAM_KAFKA__SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL": "https://c:MARK-oidc@idp/t",
        },
    )
    shown = json.dumps(settings.describe()) + repr(settings)
    assert "MARK" not in shown, shown
    assert settings.describe()["registry"]["proxy"] == "http://***@proxy:3128"
    assert settings.describe()["registry_url"] == "http://r1:8081,http://***@r2:8081"
    # still usable by the clients
    assert settings.alerts.registry["proxy"] == "http://proxyuser:MARK-proxy@proxy:3128"


# -- settings errors --------------------------------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "auditstream.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_settings_error_about_a_secret_does_not_quote_it(tmp_path: Path) -> None:
    cases = [
        (write(tmp_path, 'registry_basic_auth = ["svc:MARK-toml-auth"]\n', "a.toml"), {}),
        (write(tmp_path, '[kafka]\n"sasl.password" = ["MARK-toml-sasl"]\n', "b.toml"), {}),
        (None, {"AUDITSTREAM_REGISTRY_URL": "http://r1:8081,ftp://svc:MARK-ftp@r2"}),
    ]
    for config, env in cases:
        with pytest.raises(SettingsError) as caught:
            load_settings(config, {**AVRO, "AUDITSTREAM_REGISTRY_URL": "http://r:1", **env})
        assert "MARK" not in str(caught.value), str(caught.value)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"AUDITSTREAM_REGISTRY__MAX_RETRIES": "five"}, "AUDITSTREAM_REGISTRY__MAX_RETRIES"),
        ({"AUDITSTREAM_REGISTRY__CACHE_CAPACITY": "lots"}, "AUDITSTREAM_REGISTRY__CACHE_CAPACITY"),
        ({"AUDITSTREAM_REGISTRY__NO_SUCH_PROPERTY": "1"}, "AUDITSTREAM_REGISTRY__NO_SUCH_PROPERTY"),
        ({"AUDITSTREAM_REGISTRY__SSL_KEY_LOCATION": "/k.pem"}, "AUDITSTREAM_REGISTRY__SSL_KEY"),
        (
            {"AUDITSTREAM_REGISTRY__PROXY": "socks9://u:MARK-p@proxy:1"},
            "AUDITSTREAM_REGISTRY__PROXY",
        ),
        (
            {"AUDITSTREAM_REGISTRY_URL": "http://svc:MARK-url@r:1"},  # and basic auth: refused
            "AUDITSTREAM_REGISTRY_URL",
        ),
    ],
)
def test_a_registry_client_the_settings_break_is_a_settings_error(
    env: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(
            None,
            {
                **AVRO,
                "AUDITSTREAM_REGISTRY_URL": "http://r:1",
                "AUDITSTREAM_REGISTRY_BASIC_AUTH": "svc:MARK-basic",
                **env,
            },
        )
    message = str(caught.value)
    assert named in message
    assert "MARK" not in message


def test_registry_numbers_from_the_environment_are_numbers() -> None:
    """Variables and flags are strings; the registry client wants numbers (it refused "5")."""
    settings = load_settings(
        None,
        {
            **AVRO,
            "AUDITSTREAM_REGISTRY_URL": "http://r:1",
            "AUDITSTREAM_REGISTRY__MAX_RETRIES": "5",
            "AUDITSTREAM_REGISTRY__TIMEOUT": "2.5",
        },
    )
    assert settings.alerts.registry["max.retries"] == 5
    assert settings.alerts.registry["timeout"] == 2.5


@pytest.mark.usefixtures("restore_structlog", "restore_signals")
def test_run_exits_2_without_echoing_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real ``main``: a client the settings break is refused before anything starts."""
    for name, value in {
        **AVRO,
        "AUDITSTREAM_REGISTRY_URL": "http://r:1",
        "AUDITSTREAM_REGISTRY_BASIC_AUTH": "svc:MARK-env-basic",
        "AUDITSTREAM_REGISTRY__MAX_RETRIES": "five",
        "AUDITSTREAM_HTTP_PORT": "0",
        "AUDITSTREAM_STARTUP_TIMEOUT": "1",  # no broker: fail fast if the settings pass
    }.items():
        monkeypatch.setenv(name, value)
    config = write(tmp_path, '[kafka]\n"sasl.password" = "MARK-toml-sasl"\n')
    code = main(["run", "--config", str(config), "-X", "ssl.key.password=MARK-flag"])
    captured = capsys.readouterr()
    assert code == 2
    assert "AUDITSTREAM_REGISTRY__MAX_RETRIES" in captured.err
    assert "MARK" not in captured.err + captured.out

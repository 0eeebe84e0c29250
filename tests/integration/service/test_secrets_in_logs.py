"""No secret reaches the output of ``auditstream run`` (issue #16, defect 4), end to end.

Each secret is a distinct marker, given through one configuration path: the TOML file, the
environment, flags, a registry URL list, a proxy, SASL/SSL properties, basic auth. The real
command runs as a child process (``python -m auditstream.stream run``, i.e. ``main()``) against
the real broker and the real registry, at debug level, and everything it writes (stdout and stderr, Python and librdkafka alike) is searched for
every marker: after a clean start and stop, a client the settings break (before the fix: exit 4
with the basic-auth tuple in the traceback's local variables), and a registry that is down.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.jvm.process import REPO_ROOT, free_ports, wait_until
from devtools.jvm.registry import SchemaRegistry
from tests.integration.service.conftest import Deployment

pytestmark = pytest.mark.integration

MARK = "SECRETMARK"
TOML = f"""
[kafka]
"sasl.password" = "{MARK}-toml-sasl-password"
"ssl.keystore.password" = "{MARK}-toml-keystore"
[consumer]
"sasl.oauthbearer.client.secret" = "{MARK}-toml-consumer-oidc"
"""
SECRET_ENV = {
    "AUDITSTREAM_KAFKA__SSL_KEY_PASSWORD": f"{MARK}-env-ssl-key-password",
    "AUDITSTREAM_PRODUCER__SASL_OAUTHBEARER_CLIENT_SECRET": f"{MARK}-env-producer-oidc",
    "AUDITSTREAM_LOG_LEVEL": "debug",
}
SECRET_FLAGS = ("-X", f"sasl.oauthbearer.client.secret={MARK}-flag-oidc")


@dataclass
class Run:
    code: int
    output: str

    def events(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.output.splitlines() if line.startswith("{")]

    def assert_no_secret(self) -> None:
        leaks = [line for line in self.output.splitlines() if MARK in line]
        assert not leaks, "secrets in the output:\n" + "\n".join(leaks[:10])


@dataclass
class Command:
    """``auditstream run`` with the test's secrets in every configuration path."""

    deployment: Deployment
    tmp_path: Path

    def start(
        self, env: Mapping[str, str], flags: Sequence[str], fmt: str = "json", toml: str = ""
    ) -> tuple[subprocess.Popen[bytes], Path]:
        config = self.tmp_path / "auditstream.toml"
        config.write_text(TOML + toml, encoding="utf-8")
        out = self.tmp_path / f"run-{len(list(self.tmp_path.glob('run-*')))}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITSTREAM_")}
        full_env.update(self.deployment.env(log_format=fmt, startup_timeout="3"))
        full_env.update(SECRET_ENV)
        full_env.update(env)
        argv = [sys.executable, "-m", "auditstream.stream", "run", "--config", str(config)]
        with out.open("wb") as log:
            process = subprocess.Popen(
                [*argv, *SECRET_FLAGS, *flags],
                cwd=REPO_ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        return process, out

    def run(
        self, env: Mapping[str, str], flags: Sequence[str], fmt: str = "json", toml: str = ""
    ) -> Run:
        process, out = self.start(env, flags, fmt, toml)
        try:
            code = process.wait(60)
        finally:
            process.kill()
        return Run(code, out.read_text(errors="replace"))


@pytest.fixture
def command(deployment: Deployment, tmp_path: Path) -> Iterator[Command]:
    yield Command(deployment, tmp_path)


def closed_url(user: str, password: str) -> str:
    (port,) = free_ports(1)  # nothing listens there: a registry that is down
    return f"http://{user}:{password}@127.0.0.1:{port}/apis/ccompat/v7"


def test_a_clean_start_and_stop_logs_no_secret(
    command: Command, schema_registry: SchemaRegistry
) -> None:
    """Basic auth (environment), a URL list whose second URL has credentials (flag), and
    ``max.retries`` as the string the environment gives (it crashed the client before)."""
    env = {
        "AUDITSTREAM_ALERT_FORMAT": "avro",
        "AUDITSTREAM_REGISTRY_BASIC_AUTH": f"svc:{MARK}-env-basic-auth",
        "AUDITSTREAM_REGISTRY__MAX_RETRIES": "5",
    }
    urls = f"{schema_registry.url},{closed_url('svc', MARK + '-flag-url-list')}"
    process, out = command.start(env, ["--registry-url", urls])

    def alive() -> None:
        if process.poll() is not None:
            pytest.fail(f"exited with {process.returncode}:\n{out.read_text()[-3000:]}")

    try:
        wait_until(
            lambda: '"subscribed"' in out.read_text(errors="replace"),
            timeout=60,
            what="the service subscribed",
            alive=alive,
        )
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
    finally:
        process.kill()
    run = Run(code, out.read_text(errors="replace"))
    assert run.code == 0, run.output[-3000:]
    run.assert_no_secret()
    starting = next(e for e in run.events() if e["event"] == "service_starting")
    settings = starting["settings"]
    assert isinstance(settings, dict)
    assert settings["registry_auth"] == "***"
    assert settings["kafka"]["sasl.password"] == "***"
    assert settings["registry_url"] == urls.replace(f"svc:{MARK}-flag-url-list@", "***@")
    assert any(e["event"] == "schema_registered" for e in run.events())


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_registry_client_the_settings_break_exits_2_without_secrets(
    command: Command, fmt: str
) -> None:
    env = {
        "AUDITSTREAM_ALERT_FORMAT": "avro",
        "AUDITSTREAM_REGISTRY_URL": closed_url("svc", MARK + "-env-url"),
        "AUDITSTREAM_REGISTRY__MAX_RETRIES": "five",
    }
    run = command.run(env, [], fmt)
    run.assert_no_secret()
    assert run.code == 2, run.output[-3000:]
    assert "AUDITSTREAM_REGISTRY__MAX_RETRIES" in run.output


def test_basic_auth_beside_credentials_in_the_url_exits_2_without_secrets(command: Command) -> None:
    env = {
        "AUDITSTREAM_ALERT_FORMAT": "avro",
        "AUDITSTREAM_REGISTRY_BASIC_AUTH": f"svc:{MARK}-env-basic-auth",
    }
    run = command.run(env, ["--registry-url", closed_url("svc", MARK + "-flag-url")])
    run.assert_no_secret()
    assert run.code == 2, run.output[-3000:]
    assert "--registry-url" in run.output


def test_a_registry_that_is_down_exits_4_without_secrets(command: Command) -> None:
    """Two URLs with credentials (environment), a proxy with credentials (TOML): every attempt
    fails and is logged, then the start-up deadline passes."""
    (proxy_port,) = free_ports(1)
    proxy = f'[registry]\nproxy = "http://proxyuser:{MARK}-toml-proxy@127.0.0.1:{proxy_port}"\n'
    urls = f"{closed_url('a', MARK + '-url-1')},{closed_url('b', MARK + '-url-2')}"
    env = {
        "AUDITSTREAM_ALERT_FORMAT": "avro",
        "AUDITSTREAM_REGISTRY_URL": urls,
        "AUDITSTREAM_REGISTRY__MAX_RETRIES": "0",
    }
    run = command.run(env, [], toml=proxy)
    run.assert_no_secret()
    assert run.code == 4, run.output[-3000:]
    events = [e["event"] for e in run.events()]
    assert "retrying" in events
    assert "service_failed" in events

"""compose/: no Docker engine runs here, so check the files' structure, and that the service
configuration in them (compose/auditstream.toml plus the compose environment and the image's
ENV) is one ``auditstream run`` accepts, naming the topics the stack creates.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from auditstream.stream.settings import load_settings
from auditstream.stream.settings_types import Settings

COMPOSE = Path(__file__).resolve().parents[2] / "compose"


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    document = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def dockerfile_env() -> dict[str, str]:
    text = (COMPOSE / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


@pytest.fixture(scope="module")
def settings(stack: dict[str, Any]) -> Settings:
    """What a replica builds: the image's ENV, then the compose environment, then the file."""
    env = {**dockerfile_env(), **stack["services"]["auditstream"]["environment"]}
    mounted = env.pop("AUDITSTREAM_CONFIG")
    volume = stack["services"]["auditstream"]["volumes"][0]
    source, target, _ = volume.split(":")
    assert target == mounted
    return load_settings(COMPOSE / source, env)


def topic_commands(stack: dict[str, Any]) -> dict[str, list[str]]:
    script = "\n".join(stack["services"]["topics"]["command"])
    created = {}
    for line in script.splitlines():
        words = shlex.split(line)
        if words[:1] == ["create"]:
            created[words[words.index("--topic") + 1]] = words
    return created


def test_services_and_kraft(stack: dict[str, Any]) -> None:
    services = stack["services"]
    assert set(services) == {"kafka", "schema-registry", "topics", "auditstream"}
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert set(kafka["environment"]["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "KAFKA_ZOOKEEPER_CONNECT" not in kafka["environment"]
    assert "healthcheck" in kafka
    assert services["schema-registry"]["image"].startswith("apicurio/apicurio-registry:")


def test_three_replicas_built_from_our_dockerfile(stack: dict[str, Any]) -> None:
    service = stack["services"]["auditstream"]
    assert service["deploy"]["replicas"] == 3
    assert service["build"]["dockerfile"] == "compose/Dockerfile"
    assert "ports" not in service  # three replicas cannot share a host port
    assert service["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    grace = int(service["stop_grace_period"].rstrip("s"))
    assert grace > 8  # more than the service's shutdown_timeout


def test_topics_job_creates_what_the_service_uses(
    stack: dict[str, Any], settings: Settings
) -> None:
    created = topic_commands(stack)
    (inputs,) = settings.topics.inputs
    assert set(created) == {inputs, settings.topics.alerts, settings.topics.dead_letters}
    words = created[inputs]
    assert words[words.index("--partitions") + 1] == "6"
    assert stack["services"]["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_service_settings_point_at_the_stack(stack: dict[str, Any], settings: Settings) -> None:
    host, port = settings.kafka.bootstrap_servers.split(":")
    assert host == "kafka"
    assert (
        f"PLAINTEXT://kafka:{port}"
        in stack["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    )
    assert settings.alerts.format == "avro"
    assert settings.alerts.registry_url is not None
    assert urlsplit(settings.alerts.registry_url).hostname == "schema-registry"
    assert settings.http.host == "0.0.0.0"
    assert str(settings.http.port) in stack["services"]["auditstream"]["expose"]


def test_dockerfile(settings: Settings) -> None:
    """The public base is the default; tests/integration/test_image.py builds it on another."""
    text = (COMPOSE / "Dockerfile").read_text(encoding="utf-8")
    (base,) = re.findall(r"^ARG BASE=(\S+)", text, re.M)
    assert base.startswith("python:3.11-slim")
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert froms and all(image == "${BASE}" for image in froms)
    assert text.index("ARG BASE=") < text.index("FROM ")  # in scope of every FROM
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users == ["10001"]
    final_stage = text.rsplit("\nFROM ", 1)[1]
    assert not re.search(r"^RUN ", final_stage, re.M)  # no build tools or mount points left
    healthcheck = re.search(r"^HEALTHCHECK .*", text.replace("\\\n", " "), re.M)
    assert healthcheck is not None
    assert f"127.0.0.1:{settings.http.port}/healthz" in healthcheck.group(0)
    assert re.search(r'^ENTRYPOINT \["auditstream"\]', text, re.M)
    assert re.search(r'^CMD \["run"\]', text, re.M)

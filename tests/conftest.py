"""Fixtures for the real-infrastructure tests: Kafka clusters, topics, groups, a Schema Registry.

Every piece of infrastructure is started lazily, the first time a test asks for it, so a run of
the unit tests alone starts no JVM. Names (topics, groups) are unique per test, so tests never see
each other's records on the shared session broker. When a test that used a broker or the registry
fails, the end of their logs is attached to its report.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Generator, Iterator, Mapping
from typing import Protocol

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # stubs re-export only from cimpl
    AdminClient,
    NewTopic,
)
from hypothesis import settings

from devtools.jvm.kafka import KafkaCluster
from devtools.jvm.process import wait_until
from devtools.jvm.registry import SchemaRegistry

# CI runs a fixed set of generated examples, so a green build stays green on the same code; local
# runs keep drawing new examples (that is how the oracle tests find differences worth fixing).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

_INFRA_FIXTURES = ("kafka_cluster", "kafka_cluster3", "schema_registry")


class CreateTopic(Protocol):
    """The `create_topic` fixture's signature: returns the name of a new, ready topic."""

    def __call__(
        self,
        partitions: int = 1,
        replication: int = 1,
        config: Mapping[str, str] | None = None,
        *,
        cluster: KafkaCluster | None = None,
    ) -> str: ...


def _unique(request: pytest.FixtureRequest, prefix: str) -> str:
    """`prefix-<test name>-<random>`: legal as a topic name, readable in broker logs."""
    test = re.sub(r"[^a-zA-Z0-9._-]+", "-", request.node.name).strip("-")[:80]
    return f"{prefix}-{test}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[KafkaCluster]:
    """One single-node KRaft cluster for the whole session."""
    with KafkaCluster(nodes=1) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def kafka_cluster3() -> Iterator[KafkaCluster]:
    """A 3-node cluster per module: failover tests stop nodes, so it is not shared wider."""
    with KafkaCluster(nodes=3) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def schema_registry() -> Iterator[SchemaRegistry]:
    """One Apicurio Registry (Confluent-compatible API at `.url`) for the whole session."""
    with SchemaRegistry() as registry:
        yield registry


@pytest.fixture
def bootstrap(kafka_cluster: KafkaCluster) -> str:
    """`bootstrap.servers` of the session cluster."""
    return kafka_cluster.bootstrap


@pytest.fixture
def group_id(request: pytest.FixtureRequest) -> str:
    """A consumer group id no other test uses."""
    return _unique(request, "group")


@pytest.fixture
def create_topic(request: pytest.FixtureRequest) -> Iterator[CreateTopic]:
    """Factory: create a uniquely named topic and wait until every partition has a leader.

    Uses the session cluster unless `cluster=` names another (e.g. `kafka_cluster3`), which is
    then the only cluster started. Topics are deleted when the test ends.
    """
    created: list[tuple[AdminClient, str]] = []

    def create(
        partitions: int = 1,
        replication: int = 1,
        config: Mapping[str, str] | None = None,
        *,
        cluster: KafkaCluster | None = None,
    ) -> str:
        if cluster is None:
            cluster = request.getfixturevalue("kafka_cluster")
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        name = _unique(request, "topic")
        new = NewTopic(name, partitions, replication, config=dict(config or {}))
        admin.create_topics([new], operation_timeout=30)[name].result(timeout=60)
        created.append((admin, name))
        wait_until(
            lambda: _all_partitions_led(admin, name, partitions),
            timeout=30,
            what=f"leaders for all {partitions} partitions of {name}",
        )
        return name

    yield create
    for admin, name in created:
        # Best effort: a test may have stopped the nodes; the cluster's data dies with it anyway.
        with contextlib.suppress(KafkaException, TimeoutError):
            admin.delete_topics([name], operation_timeout=10)[name].result(timeout=15)


def _all_partitions_led(admin: AdminClient, topic: str, partitions: int) -> bool:
    try:
        metadata = admin.list_topics(topic=topic, timeout=5).topics[topic]
    except KafkaException:
        return False
    found = metadata.partitions.values()
    return (
        metadata.error is None
        and len(found) == partitions
        and all(p.error is None and p.leader >= 0 for p in found)
    )


@pytest.fixture
def topic(create_topic: CreateTopic) -> str:
    """A fresh single-partition topic on the session cluster."""
    return create_topic()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure, attach the end of the logs of the brokers and registry the test used."""
    report = yield
    funcargs: dict[str, object] = getattr(item, "funcargs", {})
    if report.failed and call.when in ("setup", "call"):
        for name in _INFRA_FIXTURES:
            infra = funcargs.get(name)
            if isinstance(infra, KafkaCluster):
                for index in range(infra.size):
                    report.sections.append(
                        (f"{name} node {index} log (tail)", infra.log_tail(index, 40))
                    )
            elif isinstance(infra, SchemaRegistry):
                report.sections.append((f"{name} log (tail)", infra.log_tail(40)))
    return report

"""Helpers for the service tests: produce a corpus, run the service (thread or process), read back.

Everything talks to the real broker (and registry) from tests/harness; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from auditstream.detections.ruleset.loader import load_rules
from auditstream.stream.logs import configure_logging
from auditstream.stream.service import Service
from auditstream.stream.settings import load_settings
from devtools.jvm.kafka import KafkaCluster
from devtools.jvm.process import REPO_ROOT, wait_until

# In-process services log warnings and worse only: alert lines would flood the captured output.
configure_logging("json", "warning")


def produce(
    bootstrap: str,
    topic: str,
    values: Sequence[bytes],
    *,
    keys: Sequence[bytes | None] | None = None,
    headers: Sequence[list[tuple[str, bytes]] | None] | None = None,
) -> None:
    """Produce every value (idempotent, acks=all) and fail unless all were acknowledged."""
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            errors.append(err)

    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20,
         "compression.type": "lz4", "batch.num.messages": 200}
    )  # fmt: skip
    for index, value in enumerate(values):
        key = keys[index] if keys is not None else str(index).encode()
        extra: dict[str, Any] = {}
        if headers is not None and headers[index] is not None:
            extra["headers"] = headers[index]
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery, **extra)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(60) == 0, "records still queued after 60 s"
    assert errors == []


def read_all(bootstrap: str, topic: str, *, timeout: float = 30.0) -> list[Message]:
    """Every committed record of the topic, from the beginning to the end offsets as of now.

    ``read_committed`` (librdkafka's default), so a transaction's marker, never delivered, may
    hold the last offset: the end of a partition is its end offset or its end-of-partition
    event, whichever comes first."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False,
        "isolation.level": "read_committed", "enable.partition.eof": True,
    })  # fmt: skip
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        ends: dict[int, int] = {}
        starts: list[TopicPartition] = []
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                ends[partition] = high
                starts.append(TopicPartition(topic, partition, low))
        consumer.assign(starts)
        records: list[Message] = []
        deadline = time.monotonic() + timeout
        while ends:
            assert time.monotonic() < deadline, f"reading {topic}: still waiting for {ends}"
            for msg in consumer.consume(1000, 0.5):
                error = msg.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    if msg.offset() + 1 >= ends.get(msg.partition(), 0):  # past the last marker
                        ends.pop(msg.partition(), None)
                    continue
                assert error is None, error
                records.append(msg)
                if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                    ends.pop(msg.partition(), None)
        return records
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ends"})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in metadata.partitions
        }
    finally:
        consumer.close()


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets as the broker's coordinator holds them (-1001: none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        answer = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], 10)
    except KafkaException:  # the coordinator is loading or moving: ask again
        return {}
    else:
        return {tp.partition: tp.offset for tp in answer}
    finally:
        consumer.close()


def wait_committed_to_end(
    bootstrap: str,
    group: str,
    topic: str,
    *,
    timeout: float,
    alive: Callable[[], None] | None = None,
) -> dict[int, int]:
    ends = end_offsets(bootstrap, topic)
    wait_until(
        lambda: committed(bootstrap, group, topic, len(ends)) == ends,
        timeout=timeout,
        what=f"group {group} committed to the end of {topic} {ends}",
        alive=alive,
        interval=0.5,
    )
    return ends


def alert_keys(records: Sequence[Message]) -> Counter[str]:
    return Counter(bytes(m.key() or b"").decode() for m in records)


@pytest.fixture
def own_cluster() -> Iterator[KafkaCluster]:
    """A single-node cluster for this test alone: outage tests stop it."""
    with KafkaCluster(nodes=1) as cluster:
        yield cluster


@dataclass
class Topics:
    inputs: str
    alerts: str
    dead_letters: str
    partitions: int


CreateTopicFn = Callable[..., str]


@pytest.fixture
def topics(create_topic: CreateTopicFn) -> Topics:
    """A 6-partition input topic, a 3-partition alert topic, a dead-letter topic."""
    return Topics(create_topic(partitions=6), create_topic(partitions=3), create_topic(), 6)


@dataclass
class Deployment:
    """What the service replicas of one test share: a broker, the topics and the consumer group.

    The methods are this module's helpers with those filled in.
    """

    bootstrap: str
    topics: Topics
    group: str

    def env(self, **extra: str) -> dict[str, str]:
        return service_env(self.bootstrap, self.topics, self.group, **extra)

    def produce(
        self,
        values: Sequence[bytes],
        *,
        keys: Sequence[bytes | None] | None = None,
        headers: Sequence[list[tuple[str, bytes]] | None] | None = None,
    ) -> None:
        produce(self.bootstrap, self.topics.inputs, values, keys=keys, headers=headers)

    def input_ends(self) -> dict[int, int]:
        return end_offsets(self.bootstrap, self.topics.inputs)

    def committed(self) -> dict[int, int]:
        return committed(self.bootstrap, self.group, self.topics.inputs, self.topics.partitions)

    def committed_total(self) -> int:
        """Input records committed so far, over all partitions."""
        return sum(max(offset, 0) for offset in self.committed().values())

    def wait_committed_to_end(self, *, timeout: float, alive: Callable[[], None]) -> dict[int, int]:
        return wait_committed_to_end(
            self.bootstrap, self.group, self.topics.inputs, timeout=timeout, alive=alive
        )

    def alerts(self, *, timeout: float = 30.0) -> list[Message]:
        return read_all(self.bootstrap, self.topics.alerts, timeout=timeout)

    def alert_keys(self, *, timeout: float = 30.0) -> Counter[str]:
        return alert_keys(self.alerts(timeout=timeout))

    def dead_letters(self) -> list[Message]:
        return read_all(self.bootstrap, self.topics.dead_letters)


@pytest.fixture
def deployment(bootstrap: str, topics: Topics, group_id: str) -> Deployment:
    """Fresh topics and group on the session broker."""
    return Deployment(bootstrap, topics, group_id)


@pytest.fixture
def own_deployment(
    own_cluster: KafkaCluster, create_topic: CreateTopicFn, group_id: str
) -> Deployment:
    """Like `deployment`, on this test's `own_cluster` (outage tests stop its broker)."""
    topics = Topics(
        create_topic(partitions=6, cluster=own_cluster),
        create_topic(partitions=3, cluster=own_cluster),
        create_topic(cluster=own_cluster),
        6,
    )
    return Deployment(own_cluster.bootstrap, topics, group_id)


def service_env(bootstrap: str, topics: Topics, group: str, **extra: str) -> dict[str, str]:
    """AUDITSTREAM_* settings for a test service: fast commits, a free HTTP port."""
    env = {
        "AUDITSTREAM_BOOTSTRAP_SERVERS": bootstrap,
        "AUDITSTREAM_INPUT_TOPICS": topics.inputs,
        "AUDITSTREAM_ALERT_TOPIC": topics.alerts,
        "AUDITSTREAM_DEAD_LETTER_TOPIC": topics.dead_letters,
        "AUDITSTREAM_GROUP_ID": group,
        "AUDITSTREAM_COMMIT_INTERVAL": "0.5",
        "AUDITSTREAM_STATS_INTERVAL": "1",
        "AUDITSTREAM_HTTP_PORT": "0",
        "AUDITSTREAM_STARTUP_TIMEOUT": "30",
        "AUDITSTREAM_CONSUMER__SESSION_TIMEOUT_MS": "6000",
        "AUDITSTREAM_CONSUMER__HEARTBEAT_INTERVAL_MS": "500",
    }
    env.update({f"AUDITSTREAM_{k.upper()}": v for k, v in extra.items()})
    return env


@dataclass
class RunningService:
    """A Service in a thread of the test process."""

    service: Service
    thread: threading.Thread
    result: list[int] = field(default_factory=list)

    def stop(self, timeout: float = 20.0) -> int:
        self.service.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the service did not stop in time"
        return self.result[0]

    def check_alive(self) -> None:
        if not self.thread.is_alive():
            raise AssertionError(f"the service thread exited with {self.result}")


def start_service(env: Mapping[str, str]) -> RunningService:
    settings = load_settings(None, env)
    rules = load_rules(list(settings.rules.paths), builtin=settings.rules.builtin)
    service = Service(settings, rules.rules)
    running = RunningService(service, threading.Thread(target=lambda: None))

    def run() -> None:
        running.result.append(service.run())

    running.thread = threading.Thread(target=run, name="auditstream-service", daemon=True)
    running.thread.start()
    return running


StartInProcess = Callable[[Mapping[str, str]], RunningService]
"""The `in_process` fixture: start a service in a thread with these AUDITSTREAM_* settings."""


@pytest.fixture
def in_process() -> Iterator[StartInProcess]:
    """Factory: start services in threads; every one still running is stopped at the end."""
    started: list[RunningService] = []

    def start(env: Mapping[str, str]) -> RunningService:
        running = start_service(env)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.service.stop()
            running.thread.join(30)


@dataclass
class ServiceProcess:
    """``python -m auditstream.stream run`` as a real child process, its log in a file."""

    env: Mapping[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITSTREAM_")}
        env.update(self.env)
        env.setdefault("AUDITSTREAM_LOG_FORMAT", "json")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "auditstream.stream", "run"],
                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        return self

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait(10)

    def wait(self, timeout: float) -> int:
        """The exit code; a timeout fails with the log's tail, since that is where the why is."""
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the service was still running after {timeout} s:\n{self.log_tail(80)}"
            ) from None

    def exited(self) -> bool:
        assert self.process is not None
        return self.process.poll() is not None

    def check_alive(self) -> None:
        assert self.process is not None
        code = self.process.poll()
        if code is not None:
            raise AssertionError(f"the service exited with {code}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON lines of the log (structlog events), decoded; other lines are skipped."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


StartProcess = Callable[[Mapping[str, str]], ServiceProcess]
"""The `subprocesses` fixture: start a service process with these AUDITSTREAM_* settings."""


@pytest.fixture
def subprocesses(tmp_path: Path) -> Iterator[StartProcess]:
    """Factory: service processes (logs in tmp_path); any still running is killed at the end."""
    started: list[ServiceProcess] = []

    def start(env: Mapping[str, str]) -> ServiceProcess:
        proc = ServiceProcess(env, tmp_path / f"service-{len(started)}.log").start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()

"""The input of a soak run and what it must give: audit traffic with poison mixed in, the alert ids
``auditstream scan`` finds in the same traffic, and the thread that streams it into Kafka.

The traffic is :mod:`devtools.traffic`'s realistic mix (routine API calls, exec requests logged
in all three stages under one ``auditID``, a share of them malicious), keyed by ``auditID`` as a
shipper would key it. The expected alerts come from the offline scan, a separate process with
the same rules, so the service is held to the same answer on the same input whatever happened
to it in between.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from confluent_kafka import KafkaError, Message, Producer

from devtools.jvm.process import REPO_ROOT
from devtools.soak.config import SoakConfig
from devtools.soak.poison import HUGE, Poison, build_poison
from devtools.traffic.stream import TokenBucket, records, write_file

__all__ = ["InputProducer", "Workload", "build_workload", "expected_alert_ids"]

SHAPES: Final = ("event", "ecs", "wrapped")
"""Raw events, ECS documents and shippers' wrappers: JSON lines the scan reads as they are."""
PRODUCER_MAX_BYTES: Final = 4_000_000
"""The input producer's ``message.max.bytes``: room for the huge poison record."""

Record = tuple[bytes, bytes]


@dataclass(frozen=True, slots=True)
class Workload:
    """The records in production order, and what they are."""

    records: tuple[Record, ...]
    good: tuple[bytes, ...]
    """The values that are audit data, for the scan."""
    exec_stages: int
    exec_requests: int
    malicious_requests: int
    poison: tuple[Poison, ...]

    def input_second(self, key: bytes, duration: float) -> float | None:
        """About when the first record with ``key`` (an auditID, a poison key) was produced,
        in seconds since the input started: the stream is paced evenly."""
        for index, (record_key, _) in enumerate(self.records):
            if record_key == key:
                return index * duration / len(self.records)
        return None


def build_workload(config: SoakConfig) -> Workload:
    """Traffic for ``config.duration`` seconds at ``config.rate``, poison at seeded places (the
    huge record in the middle third, where every fault kind may still follow it)."""
    rng = random.Random(config.seed)
    traffic = list(
        records(
            rng,
            config.records,
            exec_share=config.exec_share,
            malicious_share_of_exec=config.malicious_share,
            shapes=SHAPES,
        )
    )
    stream: list[Record] = [(r.key, r.value) for r in traffic]
    poison = build_poison(
        rng,
        duration=config.duration,
        max_message_bytes=config.max_message_bytes,
        huge_bytes=config.huge_record_bytes,
    )
    for item in poison:
        low, high = (0.33, 0.66) if item.kind == HUGE else (0.05, 0.9)
        stream.insert(int(len(stream) * rng.uniform(low, high)), (item.key, item.value))
    execs = [r for r in traffic if r.kind != "routine"]
    return Workload(
        records=tuple(stream),
        good=tuple(r.value for r in traffic),
        exec_stages=len(execs),
        exec_requests=len({r.audit_id for r in execs}),
        malicious_requests=len({r.audit_id for r in execs if r.kind == "malicious"}),
        poison=tuple(poison),
    )


def expected_alert_ids(values: Sequence[bytes], workdir: Path) -> dict[str, str]:
    """Alert id -> auditID of every alert ``auditstream scan`` gives on ``values`` (run as a
    real process); the auditID says where in the input an alert missing later came from."""
    path = workdir / "input.jsonl"
    write_file(path, values)
    done = subprocess.run(
        [sys.executable, "-m", "auditstream.stream", "scan", str(path)],
        capture_output=True,
        cwd=REPO_ROOT,
        check=True,
        timeout=900,
    )
    path.unlink()
    alerts = [json.loads(line) for line in done.stdout.decode().splitlines() if line]
    return {alert["alert_id"]: alert["event"]["audit_id"] for alert in alerts}


class InputProducer(threading.Thread):
    """Streams the records at an even pace over ``duration`` seconds, like a log shipper.

    Idempotent and ``acks=all`` with a long delivery timeout, so a broker killed mid-stream only
    delays records; one that still fails is produced again (the input may then hold it twice,
    which the invariants allow: it is the same audit event). Delivery callbacks run inside
    ``poll`` on this thread, so the counters need no lock; other threads only read them.
    """

    def __init__(
        self, bootstrap: str, topic: str, stream: Sequence[Record], *, duration: float
    ) -> None:
        super().__init__(name="soak-input-producer", daemon=True)
        self._topic = topic
        self._stream = stream
        self._rate = len(stream) / duration
        self._config = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "message.max.bytes": PRODUCER_MAX_BYTES,
            "message.timeout.ms": 300_000,
            "log_level": 2,  # critical only: refused connections to a killed broker are the plan
        }
        self.sent = 0
        self.acked = 0
        self.resent = 0
        self.error: str | None = None
        self._retry: list[Record] = []
        self.finished_at: float | None = None

    def run(self) -> None:
        try:
            self._run()
        except Exception as err:  # reported by the runner; the thread must not die silently
            self.error = f"{type(err).__name__}: {err}"
        finally:
            self.finished_at = time.monotonic()

    def _run(self) -> None:
        producer = Producer(self._config)
        bucket = TokenBucket(self._rate)
        for key, value in self._stream:
            bucket.take()
            self._produce(producer, key, value)
            self.sent += 1
            self._resend(producer)
        deadline = time.monotonic() + 300
        while self.acked < self.sent:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.sent - self.acked} input records unacknowledged")
            producer.poll(0.2)
            self._resend(producer)

    def _produce(self, producer: Producer, key: bytes, value: bytes) -> None:
        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is None:
                self.acked += 1
            else:
                self._retry.append((key, value))

        while True:
            try:
                producer.produce(self._topic, value=value, key=key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)

    def _resend(self, producer: Producer) -> None:
        while self._retry:
            key, value = self._retry.pop()
            self.resent += 1
            self._produce(producer, key, value)

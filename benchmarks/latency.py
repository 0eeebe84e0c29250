"""(f) Detection latency at a fixed input rate: produce → alert readable on the alert topic.

The runner produces at ``rate`` messages/s (token bucket) and notes the wall time at which the
first stage of every malicious exec request is handed to the producer (the record's CreateTime
moment); a consumer thread on the alert topic notes when the first alert for each auditID
arrives. Latency = arrival - produce, per auditID; producer linger, broker, the service's
batching and commit-independent alert flush are all inside it. The percentiles are of the
steady state; the first second after start-up is reported on its own (:data:`WARMUP_S`).
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from benchmarks import procs
from benchmarks.data import Dataset
from benchmarks.kafka_tools import GroupWatcher, wait_for
from benchmarks.pressure import CpuAccount, CpuPressure, gc_pauses
from devtools.traffic.stream import produce

WARMUP_S = 1.0
"""Alerts for events sent in the first second after the group is assigned are reported apart:
the consumer's first fetch positions and the first alert's code paths cost a few hundred ms
once per start (measured: every sample above 150 ms fell in the first 0.35 s)."""


@dataclass
class Latency:
    rate_target: float
    rate_achieved: float
    samples: int
    missing: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    peak_rss_mb: float
    warmup_samples: int
    warmup_max_ms: float
    worst: list[tuple[float, float]]  # (ms, s after the first send): the 5 slowest after warm-up
    first_send: float  # wall clock (epoch s) of the first timed send, to line samples up with logs
    over_50ms: int  # steady-state samples above 50 ms (the p99 target), and above 100 ms (max)
    over_100ms: int
    cpu_s: dict[str, float | None]  # CPU seconds of the service, the broker and this runner
    pressure_share: float | None  # share of the steady state with a task waiting for a core
    pressure_slow_share: float | None  # the same, during the flights of samples above 50 ms
    worst_stalled_ms: list[float | None]  # per worst sample: ms of its flight with a task waiting
    broker_pauses: list[tuple[float, float]]  # the broker JVM's GC pauses >= 20 ms (s, ms)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class AlertClock:
    """Consumes the alert topic from the beginning; first arrival time per auditID."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.arrivals: dict[str, float] = {}
        self._stop = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "benchmarks-alert-clock",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 20,
            }
        )
        self._consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)]
        )
        self._thread = threading.Thread(target=self._run, name="alert-clock", daemon=True)

    def start(self) -> AlertClock:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            # What has arrived, else wait for the next record: consume(100, timeout) alone would
            # return only when 100 alerts are there or the timeout passed, stamping them late.
            batch = self._consumer.consume(num_messages=100, timeout=0)
            if not batch:
                batch = self._consumer.consume(num_messages=1, timeout=0.05)
            now = time.time()
            for msg in batch:
                if msg.error() is None:
                    audit_id = json.loads(msg.value() or b"{}")["event"]["audit_id"]
                    self.arrivals.setdefault(audit_id, now)
        self._consumer.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def measure_latency(
    *,
    bootstrap: str,
    dataset: Dataset,
    rate: float,
    service_argv: Sequence[str],
    group: str,
    topic: str,
    alert_topic: str,
    partitions: int,
    broker_pid: int | None = None,
    broker_gc_log: Path | None = None,
) -> Latency:
    watcher = GroupWatcher(bootstrap, group, topic)
    service = procs.spawn(service_argv, "latency-service")
    try:
        if not wait_for(lambda: watcher.assignment() == (1, partitions), 90):
            raise RuntimeError("the service did not join its group in time")
        clock = AlertClock(bootstrap, alert_topic, partitions).start()
        expected = dataset.malicious_ids()
        sent: dict[str, float] = {}
        pressure = CpuPressure().start()
        pids = {"service": service.pid, "broker": broker_pid, "runner": os.getpid()}
        account = CpuAccount(pids).start()
        started = time.monotonic()
        note = _first_send(sent, expected)
        produce(bootstrap, topic, dataset.messages(), rate=rate, on_sent=note)
        achieved = dataset.count / (time.monotonic() - started)
        wait_for(lambda: expected <= clock.arrivals.keys(), 20)
        clock.stop()
        pressure.stop()
        cpu = account.stop()
        rss = procs.peak_rss_mb(service.pid) or 0.0
        first = min(sent.values(), default=time.time())
        pauses = gc_pauses(broker_gc_log, first, time.time(), at_least_ms=20)
    finally:
        procs.stop(service)
    return _summarise(rate, achieved, sent, clock.arrivals, rss, cpu, pressure, pauses)


def _first_send(sent: dict[str, float], wanted: set[str]) -> Callable[[bytes | None, float], None]:
    def note(key: bytes | None, at: float) -> None:
        if key is not None:
            audit_id = key.decode()
            if audit_id in wanted and audit_id not in sent:
                sent[audit_id] = at

    return note


def _summarise(
    rate: float,
    achieved: float,
    sent: dict[str, float],
    arrivals: dict[str, float],
    rss: float,
    cpu: dict[str, float | None],
    pressure: CpuPressure,
    broker_pauses: list[tuple[float, float]],
) -> Latency:
    first = min(sent.values(), default=0.0)
    # (ms, s after the first send, epoch of the send)
    timed = sorted(
        ((arrivals[a] - t) * 1000, t - first, t) for a, t in sent.items() if a in arrivals
    )
    steady = [(ms, at, t) for ms, at, t in timed if at >= WARMUP_S]
    latencies = [ms for ms, _, _ in steady]
    warmup = [ms for ms, at, _ in timed if at < WARMUP_S]
    slowest = steady[-5:]
    slow = [(t, t + ms / 1000) for ms, _, t in steady if ms > 50]
    slow_stalled = [pressure.stalled_ms(a, b) for a, b in slow]
    slow_ms = sum((b - a) * 1000 for a, b in slow)
    known = [x for x in slow_stalled if x is not None]
    return Latency(
        rate_target=rate,
        rate_achieved=round(achieved, 1),
        samples=len(latencies),
        missing=len(sent) - len(timed),
        p50_ms=round(_rank(latencies, 0.50), 1),
        p99_ms=round(_rank(latencies, 0.99), 1),
        max_ms=round(latencies[-1], 1) if latencies else math.nan,
        peak_rss_mb=round(rss, 1),
        warmup_samples=len(warmup),
        warmup_max_ms=round(max(warmup), 1) if warmup else math.nan,
        worst=[(round(ms, 1), round(at, 2)) for ms, at, _ in reversed(slowest)],
        first_send=round(first, 3),
        over_50ms=len(slow),
        over_100ms=sum(ms > 100 for ms in latencies),
        cpu_s=cpu,
        pressure_share=(
            pressure.share(min(t for _, _, t in steady), max(t for _, _, t in steady))
            if steady
            else None
        ),
        pressure_slow_share=(
            round(sum(known) / slow_ms, 3) if known and slow_ms and pressure.available else None
        ),
        worst_stalled_ms=[pressure.stalled_ms(t, t + ms / 1000) for ms, _, t in reversed(slowest)],
        broker_pauses=broker_pauses,
    )


def _rank(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return math.nan
    return values[max(math.ceil(q * len(values)) - 1, 0)]

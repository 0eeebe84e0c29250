"""What the service loop adds per message on top of the detection pipeline, without a broker.

``python -m benchmarks.loop_overhead [--messages N] [--repeat R]``: feeds ``N`` in-memory Kafka
records through :class:`auditstream.stream.processor.MessageProcessor` in batches of 500, once with
the real
pipeline and once with a pipeline that returns "nothing found" at once, and prints microseconds
per message (best of ``R``; the machine is shared). The second figure is the loop's own
bookkeeping: metrics, offset tracking, logging context, source coordinates. The producer is a
stub that acknowledges on ``poll``; log lines are rendered as JSON into ``/dev/null``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message

from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.pipeline import DetectionPipeline, Detections
from auditstream.detections.ruleset.loader import load_rules
from auditstream.stream.kafka.delivery import Delivery
from auditstream.stream.kafka.offset_tracker import OffsetTracker
from auditstream.stream.logs import configure_logging
from auditstream.stream.metrics import Metrics
from auditstream.stream.processor import MessageProcessor
from auditstream.stream.sinks.dead_letters import DeadLetterSink
from auditstream.stream.sinks.encoders import json_encoder
from auditstream.stream.sinks.kafka_alerts import KafkaAlertSink
from benchmarks.data import ensure_dataset

BATCH = 500
TOPIC = "bench"


class _Producer:
    """Acknowledges everything on ``poll``."""

    def __init__(self) -> None:
        self._queue: list[Callable[[KafkaError | None, Message], None]] = []

    def produce(self, _topic: str, **kwargs: Any) -> None:
        self._queue.append(kwargs["on_delivery"])

    def poll(self, _timeout: float = 0) -> int:
        queue, self._queue = self._queue, []
        for callback in queue:
            callback(None, Message(topic="alerts"))
        return len(queue)

    def __len__(self) -> int:
        return len(self._queue)


class _FindsNothing(DetectionPipeline):
    """A pipeline that returns at once: what remains is the loop's own cost."""

    def process_message(self, data: bytes, source: Any) -> Detections:  # noqa: ARG002 - overrides
        return Detections(1, 0, (), 0)


def _processor(pipeline: DetectionPipeline) -> tuple[MessageProcessor, _Producer]:
    producer = _Producer()
    delivery = Delivery(producer)  # type: ignore[arg-type]  # a stub with the used methods
    tracker = OffsetTracker()
    tracker.assign([(TOPIC, 0)])
    sinks = KafkaAlertSink(delivery, "alerts", json_encoder()), DeadLetterSink(delivery, "dlq")
    return MessageProcessor(pipeline, tracker, *sinks, Metrics()), producer


def _run(processor: MessageProcessor, producer: _Producer, records: list[Message]) -> float:
    started = time.perf_counter()
    batched = hasattr(processor, "handle_batch")  # also times the loop before batching
    for start in range(0, len(records), BATCH):
        batch = records[start : start + BATCH]
        if batched:
            processor.handle_batch(batch, _fail)
        else:
            for msg in batch:
                processor.handle(msg)
        producer.poll(0)
    return (time.perf_counter() - started) / len(records) * 1e6


def _fail(error: KafkaError) -> None:
    raise RuntimeError(error)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loop_overhead")
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    configure_logging("json", stream=Path(os.devnull).open("w"))  # noqa: SIM115 - whole run
    dataset = ensure_dataset("mix", args.messages, seed=1, exec_share=0.02, malicious_share=0.1)
    values = [value for _, value in dataset.messages()]
    rules = load_rules([]).rules
    for name, kind in (("pipeline", DetectionPipeline), ("loop only", _FindsNothing)):
        best = float("inf")
        for _ in range(args.repeat):
            pipeline = kind(Detector(rules), RecentAlerts(100_000))
            processor, producer = _processor(pipeline)
            records = [
                Message(topic=TOPIC, partition=0, offset=i, value=v, timestamp=(1, 0))
                for i, v in enumerate(values)
            ]
            best = min(best, _run(processor, producer, records))
        print(
            f"{name:>10}: {best:6.1f} µs/message ({len(values):,} messages, best of {args.repeat})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

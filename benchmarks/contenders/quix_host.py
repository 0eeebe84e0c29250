"""(d) Our detection function hosted in Quix Streams: their runtime, our ``DetectionPipeline``.

Runs in ``benchmarks/.venv-quix`` (quixstreams pins confluent-kafka < 2.13, we need >= 2.13),
with this repository on PYTHONPATH. At-least-once (Quix's default guarantee), commits every
250 ms like our service in the benchmark; alerts are ``Alert.to_json()`` bytes, as ours.
"""

from __future__ import annotations

import argparse
import sys
import tempfile

from quixstreams import (  # type: ignore[import-not-found]  # in benchmarks/.venv-quix
    Application,
    message_context,
)

from auditstream.detections.alert import SourceRef
from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.errors import MalformedEvent
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.loader import load_rules


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    for flag in ("--bootstrap", "--topic", "--group", "--alert-topic"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args(argv)
    pipeline = DetectionPipeline(
        Detector(load_rules([], builtin=True).rules), RecentAlerts(100_000)
    )

    def detect(value: bytes) -> list[bytes]:
        ctx = message_context()
        source = SourceRef("kafka", topic=args.topic, partition=ctx.partition, offset=ctx.offset)
        try:
            found = pipeline.process_message(value, source)
        except MalformedEvent:
            return []
        return [alert.to_json().encode() for alert in found.alerts]

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=0.25,
        auto_create_topics=False,
        state_dir=tempfile.mkdtemp(prefix="quix-state-"),
        loglevel="WARNING",
        # our service's prefetch setting (stream/kafka/config.py): compare the code, not a knob
        consumer_extra_config={"fetch.queue.backoff.ms": 20},
    )
    source = app.topic(args.topic, value_deserializer="bytes")
    alerts = app.topic(args.alert_topic, value_serializer="bytes")
    app.dataframe(source).apply(detect, expand=True).to_topic(alerts)
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

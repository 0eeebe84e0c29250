"""Events per second of the in-process detection path, no Kafka, no files.

    python -m benchmarks.pipeline_speed [--events N] [--repeat R] [--no-gate]

Generates the messages in memory with :mod:`devtools.traffic.stream` (default mix: 2 % exec stages,
raw
Events and ECS documents; exec-only: every message an exec stage), then times
``DetectionPipeline.process_message`` over them, best of ``--repeat`` runs (the machine is shared).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import time
from collections.abc import Sequence

from auditstream.detections.alert import SourceRef
from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.errors import MalformedEvent
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.loader import load_rules
from devtools.traffic.stream import generate

MIXES = {"default": 0.02, "exec-only": 1.0}


def _rate(gate: bool, values: Sequence[bytes], repeat: int) -> tuple[float, int]:
    detector = Detector(load_rules([], builtin=True).rules, gate=gate)
    best = 0.0
    alerts = 0
    for _ in range(repeat):
        pipeline = DetectionPipeline(detector, RecentAlerts())
        alerts = 0
        started = time.perf_counter()
        for offset, value in enumerate(values):
            source = SourceRef("kafka", topic="bench", partition=0, offset=offset)
            with contextlib.suppress(MalformedEvent):
                alerts += len(pipeline.process_message(value, source).alerts)
        best = max(best, len(values) / (time.perf_counter() - started))
    return best, alerts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.pipeline_speed", description=__doc__
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--no-gate", action="store_true", help="every event through every rule (no rule gate)"
    )
    args = parser.parse_args(argv)
    for name, share in MIXES.items():
        values = list(generate(random.Random(1), args.events, exec_share=share))
        rate, alerts = _rate(not args.no_gate, values, args.repeat)
        print(f"{name:>9}: {len(values):,} messages, {alerts} alerts, {rate:,.0f} events/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

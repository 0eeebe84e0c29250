"""Where the detection time goes: pyinstrument over the in-process pipeline, no Kafka.

    python -m benchmarks.profile [--data mix|exec] [--events N] [--html FILE]

Uses the benchmark's cached data sets (generated on first use). Without pyinstrument installed
it still prints the plain rate. For the whole ``auditstream scan`` or ``run`` process, sample it
from outside instead: ``py-spy record --format raw -o out.txt -- python -m auditstream.stream scan
FILE``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from auditstream.detections.alert import SourceRef
from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.loader import load_rules
from benchmarks.data import Dataset, ensure_dataset


def _dataset(name: str) -> Dataset:
    if name == "exec":
        return ensure_dataset("exec", 60_000, seed=2, exec_share=1.0, malicious_share=0.1)
    return ensure_dataset("mix", 200_000, seed=1, exec_share=0.02, malicious_share=0.1)


def _run(pipeline: DetectionPipeline, values: Sequence[bytes]) -> int:
    alerts = 0
    for offset, value in enumerate(values):
        source = SourceRef("kafka", topic="profile", partition=0, offset=offset)
        alerts += len(pipeline.process_message(value, source).alerts)
    return alerts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("--data", choices=("mix", "exec"), default="mix")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--html", type=Path, help="also write pyinstrument's HTML report here")
    args = parser.parse_args(argv)
    values = [value for _, value in itertools.islice(_dataset(args.data).messages(), args.events)]
    pipeline = DetectionPipeline(Detector(load_rules([], builtin=True).rules), RecentAlerts())
    started = time.perf_counter()
    try:
        from pyinstrument import Profiler  # noqa: PLC0415 - optional, a dev tool
    except ImportError:
        alerts = _run(pipeline, values)
    else:
        profiler = Profiler(interval=0.0005)
        with profiler:
            alerts = _run(pipeline, values)
        print(profiler.output_text(unicode=False, color=False))
        if args.html:
            args.html.write_text(profiler.output_html())
    elapsed = time.perf_counter() - started
    rate = len(values) / elapsed
    print(f"{len(values):,} {args.data} messages, {alerts} alerts, {rate:,.0f}/s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

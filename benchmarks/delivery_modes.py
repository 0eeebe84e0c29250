"""At-least-once against exactly-once: ``python -m benchmarks.delivery_modes [--events N]``.

One broker, the default mix (2% exec requests) and the exec-only stream produced once; then
``auditstream run`` in each delivery mode, in the same run and on the same data, timed by its
committed offsets ((b) throughput on the mix, (h) on exec requests, where every record alerts),
and the alert latency at 1,000 msg/s (f_low). Exactly-once commits one Kafka transaction per
batch (alerts, dead letters and offsets): its cost is that commit, paid per batch rather than
per ``commit_interval``. Results go to ``benchmarks/out/delivery-modes.json`` and are printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from benchmarks import report
from benchmarks.data import OUT
from benchmarks.kafka_tools import create_topics
from benchmarks.latency import measure_latency
from benchmarks.run import LOW_RATE, PARTITIONS, Bench, _say
from benchmarks.service_loop import setup, summary

MODES = {
    "at_least_once": [],
    "exactly_once": ["--delivery", "exactly-once"],
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.delivery_modes", description=__doc__
    )
    parser.add_argument("--events", type=int, default=60_000, help="default mix messages")
    parser.add_argument("--exec-events", type=int, default=20_000, help="exec-only messages")
    parser.add_argument("--low-seconds", type=float, default=10.0, help="f_low duration")
    args = parser.parse_args(argv)
    results = run(args.events, args.exec_events, args.low_seconds)
    path = OUT / "delivery-modes.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(summary(results), indent=2))
    print(f"written to {path}")
    return 0


def run(events: int, exec_events: int, low_seconds: float) -> dict[str, Any]:
    from devtools.jvm.kafka import KafkaCluster  # noqa: PLC0415 - dev-only harness

    plan, data = setup(events, exec_events, low_seconds)
    results: dict[str, Any] = {"machine": report.machine()}
    _say("starting the broker")
    with KafkaCluster(nodes=1) as cluster:
        bench = Bench(cluster.bootstrap, plan, data, results)
        bench.load()
        for mode, flags in MODES.items():
            keys = {"b": f"b-{mode}", "h": f"h-{mode}", "f_low": f"fl-{mode}"}
            outputs = [f"{kind}-{key}" for key in keys.values() for kind in ("alerts", "dead")]
            create_topics(bench.bootstrap, [*outputs, f"latency-low-{mode}"], PARTITIONS)
            for name, topic in (("b", "mix"), ("h", "exec")):
                argv = [*bench._service_argv(keys[name], topic), *flags]
                results[f"{name}_{mode}"] = bench._group(keys[name], [argv], topic)
                _say(f"({name}, {mode}) {results[f'{name}_{mode}']}")
            results[f"f_low_{mode}"] = _latency(bench, keys["f_low"], f"latency-low-{mode}", flags)
            _say(f"(f_low, {mode}) {results[f'f_low_{mode}']}")
    return results


def _latency(bench: Bench, key: str, topic: str, flags: list[str]) -> dict[str, Any]:
    return measure_latency(
        bootstrap=bench.bootstrap,
        dataset=bench.data.latency_low,
        rate=LOW_RATE,
        service_argv=[*bench._service_argv(key, topic), *flags],
        group=f"bench-{key}",
        topic=topic,
        alert_topic=f"alerts-{key}",
        partitions=PARTITIONS,
    ).as_dict()


if __name__ == "__main__":
    sys.exit(main())

"""The service loop alone: ``python -m benchmarks.service_loop [--events N] [--label NAME]``.

A smaller, faster cut of :mod:`benchmarks.run` for before/after comparisons of the consumer
loop: one broker, the default mix and the exec-only stream produced once, then ``auditstream
run`` timed by its committed offsets on each ((b) and (h)), and the low-rate latency point
(f_low, 1,000 msg/s). Each contender can run ``--repeat`` times (a fresh group each time) to see
the spread on a shared machine. Results go to ``benchmarks/out/service-loop-<label>.json``;
``docs/benchmarks.md`` is left alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from benchmarks import report
from benchmarks.data import OUT, Dataset, ensure_dataset
from benchmarks.kafka_tools import create_topics
from benchmarks.run import LOW_RATE, PARTITIONS, Bench, Data, Plan, _say


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.service_loop", description=__doc__)
    parser.add_argument("--events", type=int, default=60_000, help="default mix messages")
    parser.add_argument("--exec-events", type=int, default=20_000, help="exec-only messages")
    parser.add_argument("--low-seconds", type=float, default=10.0, help="f_low duration")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each contender")
    parser.add_argument("--label", default="run", help="names the results file")
    args = parser.parse_args(argv)
    results = run(args.events, args.exec_events, args.low_seconds, args.repeat)
    path = OUT / f"service-loop-{args.label}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(summary(results), indent=2))
    print(f"written to {path}")
    return 0


def run(events: int, exec_events: int, low_seconds: float, repeat: int) -> dict[str, Any]:
    from devtools.jvm.kafka import KafkaCluster  # noqa: PLC0415 - dev-only harness

    plan, data = setup(events, exec_events, low_seconds)
    results: dict[str, Any] = {"machine": report.machine()}
    _say("starting the broker")
    with KafkaCluster(nodes=1) as cluster:
        bench = Bench(cluster.bootstrap, plan, data, results)
        bench.load()
        for i in range(repeat):
            _round(bench, f"r{i}", data.latency_low, results)
    return results


def setup(events: int, exec_events: int, low_seconds: float) -> tuple[Plan, Data]:
    """The quick plan and its datasets (the mix, exec-only, the low-rate latency feed), shared
    with the other benchmarks that run the service loop so that their figures compare."""
    plan = Plan(
        events=events,
        exec_events=exec_events,
        latency_rate=LOW_RATE,
        latency_seconds=low_seconds,
        quick=True,
        only=frozenset(),
    )
    low = ensure_dataset(
        "latency-low", int(LOW_RATE * low_seconds), seed=4, exec_share=0.1, malicious_share=0.5
    )
    data = Data(
        mix=ensure_dataset("mix", events, seed=1, exec_share=0.02, malicious_share=0.1),
        exec_only=ensure_dataset("exec", exec_events, seed=2, exec_share=1.0, malicious_share=0.1),
        latency=low,
        latency_low=low,
    )
    return plan, data


def _round(bench: Bench, tag: str, low: Dataset, results: dict[str, Any]) -> None:
    """One run of each contender, in fresh consumer groups and topics (independent figures)."""
    keys = {"b": f"b{tag}", "h": f"h{tag}", "f_low": f"fl{tag}"}
    outputs = [f"{kind}-{key}" for key in keys.values() for kind in ("alerts", "dead")]
    create_topics(bench.bootstrap, [*outputs, f"latency-low-{tag}"], PARTITIONS)
    for name, key, topic in (("b", keys["b"], "mix"), ("h", keys["h"], "exec")):
        results[f"{name}_{tag}"] = bench._group(key, [bench._service_argv(key, topic)], topic)
        _say(f"({name}) {results[f'{name}_{tag}']}")
    latency = bench._latency(keys["f_low"], f"latency-low-{tag}", low, LOW_RATE)
    results[f"f_low_{tag}"] = latency
    _say(f"(f_low) {latency}")


def summary(results: dict[str, Any]) -> dict[str, Any]:
    keys = ("events_per_s", "events_per_cpu_s", "alerts", "p50_ms", "p99_ms", "max_ms", "missing")
    return {
        name: {k: value[k] for k in keys if k in value}
        for name, value in results.items()
        if isinstance(value, dict) and name != "machine"
    }


if __name__ == "__main__":
    sys.exit(main())

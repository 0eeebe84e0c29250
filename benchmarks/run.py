"""One command for every figure of issue 6: ``python -m benchmarks.run [--events N] [--quick]``.

Starts a real Kafka broker (``devtools.jvm.kafka``), produces each data set once, then runs the
contenders one after another against the same topics (see ``docs/benchmarks.md`` for what each
letter is and how it is timed), and writes ``benchmarks/results.json`` and
``docs/benchmarks.md``. ``--quick`` is a smoke run on a few thousand events; it writes its
results under ``benchmarks/out/`` and leaves the committed figures alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import procs, report
from benchmarks.data import OUT, Dataset, ensure_dataset
from benchmarks.kafka_tools import count_messages, create_topics, end_offsets
from benchmarks.latency import measure_latency
from benchmarks.quix_env import IMPORT_PATH as QUIX_IMPORT_PATH
from benchmarks.quix_env import QuixUnavailable, quix_python, quix_version
from benchmarks.scaling import measure_scaling
from benchmarks.throughput import measure_group
from devtools.traffic.stream import produce

PARTITIONS = 2
CONTENDERS = (
    "a", "b", "c", "d", "e", "d_offline", "f", "f_fetch", "f_low", "h", "i", "b_full", "e_full",
)  # fmt: skip
FETCH_BATCHING = ("--consumer", "fetch.min.bytes=65536", "--consumer", "fetch.wait.max.ms=5")
"""(f_fetch): the broker holds a fetch until 64 KiB or 5 ms: fewer, larger fetches under load,
at most 5 ms more latency, and up to 200 empty fetches a second per broker when idle."""
FULL_RULESET = ("b_full", "e_full")
"""Run only with ``--ruleset``: (b) and (e) with every per-event rule of that folder loaded."""
LOW_RATE = 1_000.0  # well inside one process's capacity: latency without queueing


@dataclass(frozen=True)
class Plan:
    events: int
    exec_events: int
    latency_rate: float
    latency_seconds: float
    quick: bool
    only: frozenset[str]
    ruleset: tuple[Path, ...] = ()

    @property
    def latency_events(self) -> int:
        return int(self.latency_rate * self.latency_seconds)

    @property
    def timeout(self) -> float:
        return 90.0 + self.events / 1000


@dataclass(frozen=True)
class Data:
    mix: Dataset
    exec_only: Dataset
    latency: Dataset
    latency_low: Dataset


def main(argv: Sequence[str] | None = None) -> int:
    plan = _plan(argv)
    started = time.monotonic()
    results = run(plan)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    if plan.quick:
        (OUT / "results-quick.json").write_text(json.dumps(results, indent=2) + "\n")
        (OUT / "benchmarks-quick.md").write_text(report.render(results))
    else:
        report.write(results, doc=True)
    print(report.print_targets(results))
    print(f"done in {results['elapsed_s']} s")
    failed = [k for k in CONTENDERS if isinstance(results.get(k), dict) and "error" in results[k]]
    return 1 if failed and plan.quick else 0


def _plan(argv: Sequence[str] | None) -> Plan:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--events", type=int, default=None, help="default 200000 (quick: 6000)")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument(
        "--only", default=None, help="letters to run, e.g. a,b,f (default all; --quick: not i)"
    )
    parser.add_argument(
        "--ruleset",
        action="append",
        type=Path,
        default=[],
        help="a folder of per-event rules (e.g. detection-rules' kubernetes rules without the "
        "new-terms, STATS and sequence ones): adds (b) and (e) with them loaded",
    )
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    # (i) cannot be timed on a few thousand events: one member finishes before the other joins.
    only = args.only or ",".join(
        k
        for k in CONTENDERS
        if not (quick and k == "i") and (k not in FULL_RULESET or args.ruleset)
    )
    events = args.events or (6_000 if quick else 200_000)
    return Plan(
        events=events,
        exec_events=3_000 if quick else 60_000,
        latency_rate=5_000.0,
        latency_seconds=3.0 if quick else 60.0,
        quick=quick,
        only=frozenset(only.split(",")),
        ruleset=tuple(args.ruleset),
    )


def _datasets(plan: Plan) -> Data:
    return Data(
        mix=ensure_dataset("mix", plan.events, seed=1, exec_share=0.02, malicious_share=0.1),
        exec_only=ensure_dataset(
            "exec", plan.exec_events, seed=2, exec_share=1.0, malicious_share=0.1
        ),
        # A tenth exec, half of it malicious: 60 s at 5,000 events/s yield some 4,000 alerts,
        # enough samples for a p99 that is not one slow batch.
        latency=ensure_dataset(
            "latency", plan.latency_events, seed=3, exec_share=0.1, malicious_share=0.5
        ),
        # A tenth exec so that 1,000 events/s still yields hundreds of alerts for the p99.
        latency_low=ensure_dataset(
            "latency-low",
            int(LOW_RATE * min(plan.latency_seconds, 20.0)),
            seed=4,
            exec_share=0.1,
            malicious_share=0.5,
        ),
    )


def run(plan: Plan) -> dict[str, Any]:
    from devtools.jvm.kafka import KafkaCluster  # noqa: PLC0415 - dev-only harness

    results: dict[str, Any] = {"quick": plan.quick, "machine": report.machine()}
    _say("generating data sets (cached in benchmarks/out/)")
    data = _datasets(plan)
    _say("starting the broker")
    with KafkaCluster(nodes=1, keep_logs=True) as cluster:
        bench = Bench(
            cluster.bootstrap,
            plan,
            data,
            results,
            broker_pid=cluster.pid(0),
            broker_gc_log=cluster.gc_log(0),
        )
        bench.load()
        bench.contenders()
    results["ratios"] = report.ratios(results)
    return results


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class Bench:
    """The contenders against one broker; each result (or its failure) lands in ``results``."""

    def __init__(
        self,
        bootstrap: str,
        plan: Plan,
        data: Data,
        results: dict[str, Any],
        *,
        broker_pid: int | None = None,
        broker_gc_log: Path | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.broker_pid = broker_pid
        self.broker_gc_log = broker_gc_log
        self.plan = plan
        self.data = data
        self.results = results
        self.end: dict[str, dict[int, int]] = {}

    # -- data -----------------------------------------------------------------------------------

    def load(self) -> None:
        inputs = ["mix", "exec", "latency", "latency-fetch", "latency-low"]
        keys = [*CONTENDERS, "i1", "i2"]
        outputs = [f"alerts-{k}" for k in keys] + [f"dead-{k}" for k in keys]
        create_topics(self.bootstrap, inputs + outputs, PARTITIONS)
        rate = 0.0
        for topic, dataset in (("mix", self.data.mix), ("exec", self.data.exec_only)):
            _say(f"producing {dataset.count:,} messages to {topic}")
            started = time.monotonic()
            produce(self.bootstrap, topic, dataset.messages())
            if topic == "mix":
                rate = dataset.count / (time.monotonic() - started)
            self.end[topic] = end_offsets(self.bootstrap, topic, PARTITIONS)
        self.results["workload"] = {
            "events": self.data.mix.count,
            "exec_share": 0.02,
            "malicious_share": 0.1,
            "mean_bytes": self.data.mix.size_bytes() // max(self.data.mix.count, 1),
            "produce_eps": round(rate, 1),
            "exec_events": self.data.exec_only.count,
            "latency_events": self.data.latency.count,
            "latency_rate": int(self.plan.latency_rate),
            "latency_low_events": self.data.latency_low.count,
            "latency_low_rate": int(LOW_RATE),
            "partitions": PARTITIONS,
        }

    # -- contenders -----------------------------------------------------------------------------

    def contenders(self) -> None:
        steps: dict[str, Callable[[], dict[str, Any]]] = {
            "a": lambda: self._group("a", [self._bare_argv()], "mix"),
            "b": lambda: self._group("b", [self._service_argv("b", "mix")], "mix"),
            "c": lambda: self._group("c", [self._naive_argv()], "mix"),
            "d": self._quix,
            "e": self._scan,
            "d_offline": self._plain_script,
            "b_full": lambda: self._group(
                "b_full", [self._service_argv("b_full", "mix", self._ruleset_options())], "mix"
            ),
            "e_full": lambda: self._scan(self._ruleset_options()),
            "h": lambda: self._group("h", [self._service_argv("h", "exec")], "exec"),
            "i": self._scaling,
            "f": lambda: self._latency("f", "latency", self.data.latency, self.plan.latency_rate),
            "f_fetch": lambda: self._latency(
                "f_fetch",
                "latency-fetch",
                self.data.latency,
                self.plan.latency_rate,
                FETCH_BATCHING,
            ),
            "f_low": lambda: self._latency("f_low", "latency-low", self.data.latency_low, LOW_RATE),
        }
        for key, step in steps.items():
            if key not in self.plan.only:
                continue
            _say(f"running ({key})")
            try:
                self.results[key] = step()
            except Exception as err:  # one contender failing must not lose the others' figures
                traceback.print_exc()
                self.results[key] = {"error": f"{type(err).__name__}: {err}"[:300]}
            _say(f"({key}): {self.results[key]}")

    def _group(self, key: str, argvs: list[list[str]], topic: str) -> dict[str, Any]:
        result = measure_group(
            key,
            argvs,
            bootstrap=self.bootstrap,
            group=f"bench-{key}",
            topic=topic,
            end=self.end[topic],
            timeout=self.plan.timeout,
        ).as_dict()
        result["alerts"] = count_messages(self.bootstrap, f"alerts-{key}", PARTITIONS)
        return result

    def _scaling(self) -> dict[str, Any]:
        """(i): one process, then two, each from the same backlog with every member assigned."""
        runs = {}
        for count in (1, 2):
            key = f"i{count}"
            runs[key] = measure_scaling(
                key,
                [self._service_argv(key, f"scale-{key}")] * count,
                bootstrap=self.bootstrap,
                group=f"bench-{key}",
                topic=f"scale-{key}",
                partitions=PARTITIONS,
                dataset=self.data.mix,
                timeout=self.plan.timeout,
                broker_pid=self.broker_pid,
            )
            _say(f"({key}): {runs[key]}")
        one, two = runs["i1"]["events_per_s"], runs["i2"]["events_per_s"]
        return {
            "name": "i",
            "processes": 2,
            "events_per_s": two,
            "one_process_events_per_s": one,
            "two_over_one": round(two / one, 2) if one else None,
            "runs": runs,
        }

    def _service_argv(self, key: str, topic: str, extra: Sequence[str] = ()) -> list[str]:
        return [
            *self._base_service_argv(key, topic),
            *extra,
        ]

    def _base_service_argv(self, key: str, topic: str) -> list[str]:
        return [
            procs.python(), "-m", "auditstream.stream", "run",
            "--bootstrap-servers", self.bootstrap,
            "--input-topic", topic,
            "--group-id", f"bench-{key}",
            "--alert-topic", f"alerts-{key}",
            "--dead-letter-topic", f"dead-{key}",
            "--alert-format", "json",
            "--http-port", "0",
            "--commit-interval", "0.25",
            "--log-format", "json",
        ]  # fmt: skip

    def _bare_argv(self) -> list[str]:
        return [
            procs.python(), "-m", "benchmarks.contenders.bare", "--bootstrap", self.bootstrap,
            "--topic", "mix", "--group", "bench-a", "--expect", str(sum(self.end["mix"].values())),
        ]  # fmt: skip

    def _naive_argv(self) -> list[str]:
        return [
            procs.python(), "-m", "benchmarks.contenders.naive", "--bootstrap", self.bootstrap,
            "--topic", "mix", "--group", "bench-c", "--alert-topic", "alerts-c",
        ]  # fmt: skip

    def _quix(self) -> dict[str, Any]:
        try:
            python = quix_python(create=not self.plan.quick)
        except QuixUnavailable as err:
            return {"skipped": str(err)}
        argv = [
            "env", f"PYTHONPATH={QUIX_IMPORT_PATH}",  # exec()s: the pid stays Python's
            str(python), "-m", "benchmarks.contenders.quix_host", "--bootstrap", self.bootstrap,
            "--topic", "mix", "--group", "bench-d", "--alert-topic", "alerts-d",
        ]  # fmt: skip
        result = self._group("d", [argv], "mix")
        result["versions"] = quix_version(python)
        return result

    def _ruleset_options(self) -> list[str]:
        return [f"--rules={path}" for path in self.plan.ruleset]

    def _plain_script(self) -> dict[str, Any]:
        """(d-offline): ``json.loads`` and the two seed rules' patterns per line, no framework."""
        script = [procs.python(), "-m", "benchmarks.contenders.plain_script"]
        elapsed, rss, alerts, cpu = timed_command(
            [*script, str(self.data.mix.values)], OUT / "plain-alerts.jsonl"
        )
        return {
            "messages": self.data.mix.count,
            "total_s": round(elapsed, 3),
            "events_per_s_total": round(self.data.mix.count / elapsed, 1),
            "peak_rss_mb": [round(rss, 1)],
            "alerts": alerts,
            "cpu_s": round(cpu, 2),
            "events_per_cpu_s": round(self.data.mix.count / cpu, 1),
        }

    def _scan(self, options: Sequence[str] = ()) -> dict[str, Any]:
        empty = OUT / "empty.jsonl"
        empty.write_bytes(b"")
        load_before = os.getloadavg()[0]
        idle, _, _, _ = timed_scan(empty, OUT / "scan-empty.out", *options)
        elapsed, rss, alerts, cpu = timed_scan(
            self.data.mix.values, OUT / f"scan-alerts{'-full' if options else ''}.jsonl", *options
        )
        work = max(elapsed - idle, 1e-3)
        return {
            "messages": self.data.mix.count,
            "startup_s": round(idle, 3),
            "work_s": round(work, 3),
            "total_s": round(elapsed, 3),
            "events_per_s": round(self.data.mix.count / work, 1),
            "events_per_s_total": round(self.data.mix.count / elapsed, 1),
            "peak_rss_mb": [round(rss, 1)],
            "alerts": alerts,
            "cpu_s": round(cpu, 2),
            "events_per_cpu_s": round(self.data.mix.count / cpu, 1),
            "loadavg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        }

    def _latency(
        self, key: str, topic: str, dataset: Dataset, rate: float, extra: Sequence[str] = ()
    ) -> dict[str, Any]:
        return measure_latency(
            bootstrap=self.bootstrap,
            dataset=dataset,
            rate=rate,
            service_argv=self._service_argv(key, topic, extra),
            group=f"bench-{key}",
            topic=topic,
            alert_topic=f"alerts-{key}",
            partitions=PARTITIONS,
            broker_pid=self.broker_pid,
            broker_gc_log=self.broker_gc_log,
        ).as_dict()


def timed_scan(path: Path, out: Path, *options: str) -> tuple[float, float, int, float]:
    """(wall seconds, peak RSS MB, alert lines, CPU seconds) of ``auditstream scan path``."""
    scan = [procs.python(), "-m", "auditstream.stream", "scan"]
    return timed_command([*scan, *options, str(path)], out)


def timed_command(argv: Sequence[str], out: Path) -> tuple[float, float, int, float]:
    """(wall seconds, peak RSS MB, lines written, CPU seconds) of ``argv`` with stdout in
    ``out``; raises when it exits non-zero."""
    started = time.monotonic()
    with out.open("wb") as sink:
        child = subprocess.Popen(
            list(argv), stdout=sink, stderr=subprocess.DEVNULL, env=procs.python_env(), cwd=OUT
        )
        _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.monotonic() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(argv[1:3])} exited with {code}")
    with out.open("rb") as lines:
        count = sum(1 for _ in lines)
    return elapsed, usage.ru_maxrss / 1024, count, usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    sys.exit(main())

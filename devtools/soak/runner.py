"""One soak run, start to end, in numbered steps:

1. build the input (traffic and poison) and ask ``auditstream scan`` which alerts it gives;
2. start a 3-node cluster (unless one is given) and, for Avro alerts, a registry; create the
   topics with replication factor 3 and ``min.insync.replicas=2``;
3. start the replicas and wait until each owns partitions;
4. stream the input for ``duration`` seconds while injecting faults one after the other;
5. wait for the last input record to be acknowledged, then for the group to commit to the end
   of every input partition (bounded: a replica stuck on a record is a finding, not a hang);
6. SIGTERM every replica and collect the exit codes;
7. run the invariant checker.

The main thread does all the starting and stopping (replicas, broker and registry JVMs): the
kernel kills those children when the thread that started them exits, so nothing outlives the
run, however it ends. Only the input producer runs on a thread of its own.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from confluent_kafka.admin import AdminClient

from devtools.jvm.kafka import KafkaCluster
from devtools.jvm.process import HarnessError, wait_until
from devtools.soak.checker import SHOWN, CheckResult, check
from devtools.soak.config import SoakConfig, TopicNames
from devtools.soak.faults import Fault, FaultInjector
from devtools.soak.kafka_io import admin_client, committed, create_topics, end_offsets
from devtools.soak.registry import RestartableRegistry
from devtools.soak.replicas import ReplicaSet, SoakAborted
from devtools.soak.result import Machine, SoakResult
from devtools.soak.workload import InputProducer, Workload, build_workload, expected_alert_ids

__all__ = ["run_soak"]

ALERT_PARTITIONS: Final = 3
DEAD_LETTER_PARTITIONS: Final = 1
START_TIMEOUT: Final = 120.0
"""Seconds for the first replicas to own partitions (Python start-up and rule loading on a
loaded 2-core machine)."""
TAIL_WITHOUT_FAULTS: Final = 3.0
"""No fault starts in the run's last seconds: it would only overlap the drain."""
Progress = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_soak(
    config: SoakConfig,
    *,
    cluster: KafkaCluster | None = None,
    progress: Progress = _stderr,
) -> SoakResult:
    """Run the soak on ``cluster`` (a started 3-node cluster, left running with every node up)
    or on a cluster of its own, and return its figures and the checker's verdict."""
    started, began = datetime.now(UTC), time.monotonic()
    machine = Machine.describe()
    workdir = config.workdir or Path(tempfile.mkdtemp(prefix="auditstream-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    workload = build_workload(config)
    expected = expected_alert_ids(workload.good, workdir)
    progress(
        f"input: {len(workload.records)} records over {config.duration:.0f} s "
        f"({workload.exec_requests} exec requests, {len(workload.poison)} poison); "
        f"the scan expects {len(expected)} alerts; logs in {workdir}"
    )
    with contextlib.ExitStack() as stack:
        if cluster is None:
            progress("starting a 3-node Kafka cluster")
            cluster = stack.enter_context(KafkaCluster(nodes=3))
        registry = None
        if config.alert_format == "avro":
            progress("starting a Schema Registry")
            registry = stack.enter_context(RestartableRegistry())
        run = _Run(config, cluster, workload, workdir, registry, progress)
        stack.callback(run.replicas.kill_all)
        outcome = run.execute(frozenset(expected))
    verdict = outcome.verdict
    kept = not verdict.ok or config.keep_logs or config.workdir is not None
    if not kept:
        shutil.rmtree(workdir, ignore_errors=True)
    return SoakResult(
        config=config,
        started=started,
        machine=machine,
        wall_seconds=time.monotonic() - began,
        produce_seconds=outcome.produced,
        drain_seconds=outcome.drained,
        records=len(workload.records),
        events=len(workload.good),
        exec_stages=workload.exec_stages,
        exec_requests=workload.exec_requests,
        malicious_requests=workload.malicious_requests,
        poison=len(workload.poison),
        resent=run.resent,
        faults=tuple(run.faults),
        unplanned_exits=tuple(run.replicas.unplanned),
        stop_codes=outcome.codes,
        check=verdict,
        context=tuple(_context(verdict, expected, workload, run.faults, config.duration)),
        workdir=workdir if kept else None,
    )


def _context(
    verdict: CheckResult,
    expected: Mapping[str, str],
    workload: Workload,
    faults: Sequence[Fault],
    duration: float,
) -> list[str]:
    """For a few lost alerts and missing poison records: when their input was produced and
    which faults came just before, which is where to start looking."""
    missing = [(f"alert {a}", expected[a].encode()) for a in verdict.lost[:SHOWN]]
    missing += [(f"poison {k}", k.encode()) for k in verdict.poison_missing[:SHOWN]]
    notes = []
    for what, key in missing:
        second = workload.input_second(key, duration)
        if second is None:
            continue
        before = [f for f in faults if f.at <= second + 10][-2:]
        recent = "; ".join(f"{f.kind} {f.target} at {f.at:.0f} s" for f in before) or "none"
        notes.append(f"{what}: input at ~{second:.0f} s; last faults up to 10 s after: {recent}")
    return notes


@dataclass(frozen=True, slots=True)
class _Outcome:
    produced: float
    drained: float | None
    codes: dict[str, int]
    verdict: CheckResult


@dataclass
class _Run:
    """The state of one run between its steps."""

    config: SoakConfig
    cluster: KafkaCluster
    workload: Workload
    workdir: Path
    registry: RestartableRegistry | None
    progress: Progress
    names: TopicNames = field(init=False)
    admin: AdminClient = field(init=False)
    replicas: ReplicaSet = field(init=False)
    faults: list[Fault] = field(default_factory=list)
    resent: int = 0
    producer: InputProducer | None = None
    _input_started: float = 0.0

    def __post_init__(self) -> None:
        self.names = TopicNames.for_run(uuid.uuid4().hex[:8])
        self.admin = admin_client(self.cluster.bootstrap)
        logdir = self.workdir / "replicas"
        logdir.mkdir(exist_ok=True)
        self.replicas = ReplicaSet(self._env(), (), logdir, self.elapsed)

    def elapsed(self) -> float:
        """Seconds since the input started (0 before)."""
        return time.monotonic() - self._input_started if self._input_started else 0.0

    def say(self, line: str) -> None:
        self.progress(f"[{self.elapsed():6.1f} s] {line}")

    def _env(self) -> dict[str, str]:
        config, names = self.config, self.names
        env = {
            "BOOTSTRAP_SERVERS": self.cluster.bootstrap,
            "INPUT_TOPICS": names.inputs,
            "ALERT_TOPIC": names.alerts,
            "DEAD_LETTER_TOPIC": names.dead_letters,
            "GROUP_ID": names.group,
            "ALERT_FORMAT": config.alert_format,
            "MAX_MESSAGE_BYTES": str(config.max_message_bytes),
            "COMMIT_INTERVAL": str(config.commit_interval),
            "STARTUP_TIMEOUT": "30",
            "HTTP_PORT": "0",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "info",
            # A killed replica's partitions move after 6 s, not 45 s: more rebalances per run.
            "CONSUMER__SESSION_TIMEOUT_MS": "6000",
            "CONSUMER__HEARTBEAT_INTERVAL_MS": "500",
        }
        if self.registry is not None:
            env["REGISTRY_URL"] = self.registry.url
        if config.delivery != "at-least-once":  # the default: a build without the setting runs
            env["DELIVERY"] = config.delivery
        env.update(dict(config.extra_env))
        return {f"AUDITSTREAM_{name}": value for name, value in env.items()}

    # -- steps ----------------------------------------------------------------------------------

    def execute(self, expected: frozenset[str]) -> _Outcome:
        """Steps 2 to 7 on the started cluster (and registry)."""
        self.create_topics()
        self.start_replicas()
        self.chaos()
        produced = self.finish_input()
        drained = self.drain()
        codes = self.replicas.terminate_all(timeout=25)
        self.say(f"replicas stopped: {codes}")
        verdict = check(
            self.cluster.bootstrap,
            self.names,
            partitions=self.config.partitions,
            alert_partitions=ALERT_PARTITIONS,
            dead_letter_partitions=DEAD_LETTER_PARTITIONS,
            expected=expected,
            poison=self.workload.poison,
            exactly_once=self.config.delivery == "exactly-once",
            registry_url=None if self.registry is None else self.registry.url,
        )
        if not verdict.ok:
            self.keep_broker_logs()
        return _Outcome(produced, drained, codes, verdict)

    def create_topics(self) -> None:
        isr = {"min.insync.replicas": "2"}
        inputs = dict(isr)
        if self.config.huge_record_bytes:  # the huge poison record must be accepted
            inputs["max.message.bytes"] = str(self.config.huge_record_bytes + 1_048_576)
        create_topics(
            self.admin,
            {
                self.names.inputs: (self.config.partitions, inputs),
                self.names.alerts: (ALERT_PARTITIONS, isr),
                self.names.dead_letters: (DEAD_LETTER_PARTITIONS, isr),
            },
        )

    def start_replicas(self) -> None:
        for _ in range(self.config.replicas):
            self.replicas.start_new()
        wait_until(
            self.replicas.all_working,
            timeout=START_TIMEOUT,
            what=f"{self.config.replicas} replicas owning partitions",
            alive=self.tick,
            interval=0.5,
        )
        self._check_settings_taken()
        self.say(f"{self.config.replicas} replicas own partitions; input starts")

    def _check_settings_taken(self) -> None:
        """A setting the service ignores (a build without ``delivery``) would make the run test
        something else than it says: stop here instead."""
        for replica in self.replicas.live():
            if replica.ignored_env:
                raise SoakAborted(
                    f"replica {replica.name} ignored {', '.join(replica.ignored_env)}: this "
                    "build of the service does not know the setting"
                )
            delivery = replica.settings.get("delivery", self.config.delivery)
            if delivery != self.config.delivery:
                raise SoakAborted(f"replica {replica.name} runs {delivery!r} delivery")

    def chaos(self) -> None:
        """Stream the input; inject faults one after the other until ``duration``."""
        self._input_started = time.monotonic()
        self.producer = InputProducer(
            self.cluster.bootstrap,
            self.names.inputs,
            self.workload.records,
            duration=self.config.duration,
        )
        self.producer.start()
        injector = FaultInjector(
            self.config,
            replicas=self.replicas,
            cluster=self.cluster,
            admin=self.admin,
            names=self.names,
            registry=self.registry,
            clock=self.elapsed,
            tick=self.tick,
        )
        next_at = self.config.warmup
        while self.elapsed() < self.config.duration:
            self.tick()
            if self.producer.error is not None:
                raise SoakAborted(f"the input producer failed: {self.producer.error}")
            if self.elapsed() >= next_at and self.elapsed() < self.last_fault_start:
                kind = injector.next_kind()
                self.say(f"{kind} ...")
                fault = injector.inject(kind)
                self.faults.append(fault)
                note = f"  ANOMALY: {fault.anomaly}" if fault.anomaly else ""
                self.say(f"{fault.kind} {fault.target}: {fault.outcome} ({fault.took:.1f} s){note}")
                next_at = self.elapsed() + injector.gap()
            time.sleep(0.2)

    @property
    def last_fault_start(self) -> float:
        return self.config.duration - TAIL_WITHOUT_FAULTS

    def finish_input(self) -> float:
        """Wait for the last input record's acknowledgement; the input's duration."""
        producer = self.producer
        if producer is None:
            raise SoakAborted("the input never started")
        wait_until(
            lambda: not producer.is_alive(),
            timeout=300,
            what="the input producer to finish",
            alive=self.tick,
            interval=0.25,
        )
        self.resent = producer.resent
        if producer.error is not None:
            raise SoakAborted(f"the input producer failed: {producer.error}")
        finished = producer.finished_at or time.monotonic()
        self.say(f"input done: {producer.acked} records acknowledged")
        return finished - self._input_started

    def drain(self) -> float | None:
        """Seconds until the group committed to the end of the input; None on timeout."""
        began = time.monotonic()
        ends = end_offsets(self.cluster.bootstrap, self.names.inputs, self.config.partitions)
        try:
            wait_until(
                lambda: self._committed() == ends,
                timeout=self.config.drain_timeout,
                what="the group to commit to the end of the input",
                alive=self.tick,
                interval=0.5,
            )
        except HarnessError:
            self.say(f"NOT drained after {self.config.drain_timeout:.0f} s: {self._committed()}")
            return None
        took = time.monotonic() - began
        self.say(f"drained in {took:.1f} s")
        return took

    def _committed(self) -> dict[int, int]:
        return committed(
            self.cluster.bootstrap, self.names.group, self.names.inputs, self.config.partitions
        )

    def tick(self) -> None:
        """Supervise the replicas; fail the run at once if a broker died on its own."""
        before = len(self.replicas.unplanned)
        self.replicas.supervise()
        for exit_ in self.replicas.unplanned[before:]:
            self.say(f"UNPLANNED EXIT of {exit_.replica} (code {exit_.code}): {exit_.error}")
        self.cluster.check_alive()

    def keep_broker_logs(self) -> None:
        """The brokers' logs die with the cluster: keep their ends beside the replicas' logs."""
        for index in range(self.cluster.size):
            path = self.workdir / f"broker-{self.cluster.node_id(index)}.log"
            path.write_text(self.cluster.log_tail(index, 400))

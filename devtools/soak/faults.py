"""The faults a soak injects, and the order it injects them in.

Kinds: a replica killed with SIGKILL and restarted, a replica stopped with SIGTERM and restarted,
a replica joining the group and one leaving it, the broker leading an input partition killed with
SIGKILL and restarted, and (with Avro alerts) the Schema Registry restarted.

Every kind comes once, in a seeded order (a join before a leave), then kinds are drawn at random
until the run's time is up. Kinds, order, targets, gaps and down times all come from the seed;
the wall-clock moments also depend on how long each fault takes on the machine (a broker's JVM
restart), since faults run one after the other, each starting a seeded gap after the last ended.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from confluent_kafka.admin import AdminClient

from devtools.jvm.kafka import KafkaCluster
from devtools.jvm.process import HarnessError, wait_until
from devtools.soak.config import SoakConfig, TopicNames
from devtools.soak.kafka_io import fully_in_sync, leaders, under_replicated
from devtools.soak.registry import RestartableRegistry
from devtools.soak.replicas import ReplicaSet

__all__ = ["Fault", "FaultInjector", "FaultKind"]

MAX_REPLICAS: Final = 3
MIN_REPLICAS: Final = 2
TERM_TIMEOUT: Final = 20.0
"""Seconds a SIGTERMed replica gets to exit (its ``shutdown_timeout`` is 8) before SIGKILL."""
IN_SYNC_TIMEOUT: Final = 90.0


class FaultKind(StrEnum):
    KILL = "kill -9 replica"
    TERM = "SIGTERM replica"
    JOIN = "replica joins"
    LEAVE = "replica leaves"
    BROKER = "kill -9 leader broker"
    REGISTRY = "restart registry"


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault, as it happened."""

    at: float
    """Seconds since the input started."""
    kind: FaultKind
    target: str
    took: float
    outcome: str
    anomaly: str = ""
    """What went unexpectedly (a SIGTERMed replica's non-zero exit, a broker that did not come
    back in sync): reported, though not an invariant of its own."""


class FaultInjector:
    """Draws the next fault and injects it, calling ``tick`` (supervision) while it waits."""

    def __init__(
        self,
        config: SoakConfig,
        *,
        replicas: ReplicaSet,
        cluster: KafkaCluster,
        admin: AdminClient,
        names: TopicNames,
        registry: RestartableRegistry | None,
        clock: Callable[[], float],
        tick: Callable[[], None],
    ) -> None:
        self._config = config
        self._rng = random.Random(f"{config.seed}-faults")
        self._replicas = replicas
        self._cluster = cluster
        self._admin = admin
        self._names = names
        self._registry = registry
        self._clock = clock
        self._tick = tick
        first = [FaultKind.KILL, FaultKind.TERM, FaultKind.BROKER, FaultKind.JOIN]
        if registry is not None:
            first.append(FaultKind.REGISTRY)
        self._rng.shuffle(first)
        # The leave comes after the join, anywhere after it.
        at = self._rng.randint(first.index(FaultKind.JOIN) + 1, len(first))
        first.insert(at, FaultKind.LEAVE)
        self._first = first

    def gap(self) -> float:
        return self._rng.uniform(*self._config.fault_gap)

    def next_kind(self) -> FaultKind:
        """The next kind: each once first, then drawn (join or leave as the group's size
        allows, a broker kill less often: each one takes a JVM restart)."""
        if self._first:
            return self._fit_group(self._first.pop(0))
        kinds = [FaultKind.KILL, FaultKind.TERM, FaultKind.BROKER, FaultKind.JOIN]
        weights = [3.0, 3.0, 1.5, 2.0]
        if self._registry is not None:
            kinds.append(FaultKind.REGISTRY)
            weights.append(1.0)
        return self._fit_group(self._rng.choices(kinds, weights)[0])

    def _fit_group(self, kind: FaultKind) -> FaultKind:
        """A join while the group has room, else a leave (and the other way round)."""
        size = len(self._replicas.live()) + self._replicas.restarts_pending
        if kind is FaultKind.JOIN and size >= MAX_REPLICAS:
            return FaultKind.LEAVE
        if kind is FaultKind.LEAVE and size <= MIN_REPLICAS:
            return FaultKind.JOIN
        return kind

    def inject(self, kind: FaultKind) -> Fault:
        started = self._clock()
        match kind:
            case FaultKind.KILL:
                target, outcome, anomaly = self._kill_replica()
            case FaultKind.TERM:
                target, outcome, anomaly = self._term_replica(restart=True)
            case FaultKind.JOIN:
                replica = self._replicas.start_new()
                target, outcome, anomaly = replica.name, "started", ""
            case FaultKind.LEAVE:
                target, outcome, anomaly = self._term_replica(restart=False)
            case FaultKind.BROKER:
                target, outcome, anomaly = self._kill_broker()
            case FaultKind.REGISTRY:
                target, outcome, anomaly = self._restart_registry()
            case _:
                raise TypeError(kind)
        return Fault(started, kind, target, self._clock() - started, outcome, anomaly)

    # -- replicas -------------------------------------------------------------------------------

    def _pick_replica(self) -> str | None:
        live = sorted(r.name for r in self._replicas.live())
        return self._rng.choice(live) if live else None

    def _kill_replica(self) -> tuple[str, str, str]:
        name = self._pick_replica()
        delay = self._rng.uniform(0.5, 3.0)
        if name is None:
            return "-", "no live replica", "no live replica to kill"
        replica = next(r for r in self._replicas.live() if r.name == name)
        self._replicas.kill(replica)
        self._replicas.restart_later(name.split(".")[0], delay)
        return name, f"killed; restart in {delay:.1f} s", ""

    def _term_replica(self, *, restart: bool) -> tuple[str, str, str]:
        name = self._pick_replica()
        if name is None:
            return "-", "no live replica", "no live replica to stop"
        replica = next(r for r in self._replicas.live() if r.name == name)
        code = self._replicas.terminate(replica, TERM_TIMEOUT)
        anomaly = "" if code == 0 else f"{name} exited with {code} after SIGTERM"
        if restart:
            self._replicas.restart_later(name.split(".")[0], 1.0)
            return name, f"exit {code}; restart in 1.0 s", anomaly
        return name, f"exit {code}; not restarted", anomaly

    # -- infrastructure -------------------------------------------------------------------------

    def _kill_broker(self) -> tuple[str, str, str]:
        partition = self._rng.randrange(self._config.partitions)
        down = self._rng.uniform(*self._config.broker_downtime)
        leader = leaders(self._admin, self._names.inputs).get(partition)
        if leader is None:
            return "-", f"input partition {partition} has no leader", "no leader to kill"
        index = self._cluster.index_of(leader)
        self._cluster.stop_node(index, kill=True)
        self._wait(down)
        topics = [self._names.inputs, self._names.alerts, self._names.dead_letters]
        shrunk = under_replicated(self._admin, topics, self._cluster.size)
        self._cluster.start_node(index)
        restarted = self._clock()
        target = f"node {leader} (leader of input partition {partition})"
        try:
            wait_until(
                lambda: fully_in_sync(self._admin, topics, self._cluster.size),
                timeout=IN_SYNC_TIMEOUT,
                what=f"node {leader} back in sync",
                alive=self._tick,
                interval=0.5,
            )
        except HarnessError:
            late = f"node {leader} not back in every ISR {IN_SYNC_TIMEOUT:.0f} s after restart"
            return target, f"down {down:.1f} s ({shrunk} partitions under-replicated)", late
        in_sync = self._clock() - restarted
        outcome = f"down {down:.1f} s ({shrunk} partitions under-replicated); restarted"
        return target, f"{outcome}, all in sync {in_sync:.1f} s later", ""

    def _restart_registry(self) -> tuple[str, str, str]:
        assert self._registry is not None
        down = self._rng.uniform(2.0, 6.0)
        before = self._registry.subjects()
        self._registry.kill()
        self._wait(down)
        self._registry.start_again(alive=self._tick)
        after = self._registry.subjects()
        lost = sorted(set(before) - set(after))
        anomaly = f"subjects lost in the restart: {', '.join(lost)}" if lost else ""
        return "registry", f"down {down:.1f} s; back with {len(after)} subject(s)", anomaly

    def _wait(self, seconds: float) -> None:
        """Sleep, supervising the replicas meanwhile (a crash is restarted as usual)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._tick()
            time.sleep(min(0.25, max(0.0, end - time.monotonic())))

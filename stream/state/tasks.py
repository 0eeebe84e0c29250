"""The stateful half of a replica: one task per owned partition of the repartition topic.

A task is a RocksDB store (a cache of the matching changelog partition) and the engine's view of
it (:class:`~auditstream.detections.stateful.engine.StatefulPartition`). On assignment the store
is restored from the changelog before any candidate of that partition is applied (the consumer
delivers nothing in between: restore runs inside the assignment callback). On a clean release
(a revoke or a shutdown whose outputs were all acknowledged) the store is kept with a checkpoint
naming the changelog's end, so that the next owner on this host restores only the tail; on a lost
partition or a failure it is closed without one, and the next owner rebuilds it whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import structlog

from auditstream.detections.stateful.candidate import Candidate
from auditstream.detections.stateful.engine import Applied, StatefulEngine, StatefulPartition
from auditstream.stream.metrics import Metrics
from auditstream.stream.state.restore import ChangelogReader
from auditstream.stream.state.stores import ChangeloggedStore, RocksStore, wipe

_log = structlog.get_logger("auditstream.state")
SWEEP_EVERY: Final = 5_000
"""Candidates of one partition between two expiry sweeps of its store."""

Change = tuple[bytes, bytes | None]


@dataclass(slots=True)
class _Task:
    store: RocksStore
    logged: ChangeloggedStore
    partition: StatefulPartition
    since_sweep: int = 0


class StateTasks:
    def __init__(
        self,
        engine: StatefulEngine,
        *,
        folder: Path,
        reader: ChangelogReader,
        metrics: Metrics,
    ) -> None:
        self.engine = engine
        self.folder = folder
        self._reader = reader
        self._metrics = metrics
        self._tasks: dict[int, _Task] = {}

    @property
    def partitions(self) -> tuple[int, ...]:
        return tuple(sorted(self._tasks))

    def assign(self, partitions: Iterable[int]) -> None:
        for number in partitions:
            if number in self._tasks:
                continue
            folder = self.folder / f"partition-{number}"
            store = RocksStore(folder)
            start = store.read_checkpoint()
            if start is None:  # no clean close: the local copy cannot be trusted
                store.close()
                wipe(folder)
                store = RocksStore(folder)
            restored = self._reader.restore(number, store, start)
            store.drop_checkpoint()
            logged = ChangeloggedStore(store)
            self._tasks[number] = _Task(store, logged, self.engine.partition(logged))
            self._metrics.state_partitions.set(len(self._tasks))
            self._metrics.state_restore_seconds.observe(restored.seconds)
            _log.info(
                "state_restored", partition=number, records=restored.records,
                seconds=round(restored.seconds, 3), full=restored.full,
            )  # fmt: skip

    def release(self, partitions: Iterable[int], *, clean: bool) -> None:
        for number in partitions:
            task = self._tasks.pop(number, None)
            if task is None:
                continue
            try:
                if clean:  # the changelog's end: everything this store holds is in it
                    task.store.write_checkpoint(self._reader.end(number))
            except Exception as err:  # no checkpoint: the next owner restores it whole
                _log.warning("state_checkpoint_skipped", partition=number, error=str(err))
            finally:
                task.store.close()
        self._metrics.state_partitions.set(len(self._tasks))

    def release_all(self, *, clean: bool) -> None:
        """Release every store, then close the changelog reader: the replica is stopping."""
        try:
            self.release(list(self._tasks), clean=clean)
        finally:
            self._reader.close()

    def owns(self, partition: int) -> bool:
        return partition in self._tasks

    def apply(self, partition: int, candidate: Candidate) -> tuple[Applied, list[Change]]:
        """Apply one candidate; returns what it gave and the writes its changelog owes."""
        task = self._tasks[partition]
        applied = task.partition.apply(candidate)
        if applied.late:
            self._metrics.state_late.labels(candidate.rule_id).inc()
        elif applied.oversized:
            self._metrics.state_oversized.labels(candidate.rule_id).inc()
            _log.warning(
                "state_oversized", rule_id=candidate.rule_id, partition=partition,
                event_id=candidate.event_id,
            )  # fmt: skip
        task.since_sweep += 1
        if task.since_sweep >= SWEEP_EVERY:
            task.since_sweep = 0
            swept = task.partition.sweep()
            for rule_id, count in swept.keys.items():
                self._metrics.state_keys.labels(rule_id, str(partition)).set(count)
            self._metrics.state_bytes.labels(str(partition)).set(task.store.size_bytes())
        return applied, task.logged.take_changes()

    def keys(self) -> dict[str, int]:
        """Keys per rule over every owned partition (a full scan of each store)."""
        counts: dict[str, int] = {}
        for task in self._tasks.values():
            for rule_id, count in task.partition.keys_per_rule().items():
                counts[rule_id] = counts.get(rule_id, 0) + count
        return counts

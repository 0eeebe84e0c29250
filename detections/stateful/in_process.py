"""Stateful rules in one process, for ``scan`` and rule tests: every key meets here.

The same engine and operators as the service, over one in-memory partition: candidates are
applied in input order, so ``scan`` over a file gives the alerts the service gives over the same
events in the same order (late events and the history requirement included).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from auditstream.detections.alert import Alert
from auditstream.detections.stateful.alerting import stateful_alert
from auditstream.detections.stateful.candidate import Candidate
from auditstream.detections.stateful.engine import StatefulEngine, StatefulPartition
from auditstream.detections.stateful.store import MemoryStore, StateStore

SWEEP_EVERY = 10_000
"""Candidates between two expiry sweeps of the in-memory store."""


class CandidateRoute(Protocol):
    """Where a pipeline that runs stateful rules in process hands its candidates: the alerts
    they give come back (``auditstream state warm`` routes them to Kafka and returns none)."""

    def alerts(self, candidates: Iterable[Candidate], detected_at: datetime) -> list[Alert]: ...


class InProcessState:
    def __init__(self, engine: StatefulEngine, store: StateStore | None = None) -> None:
        self.engine = engine
        self.partition: StatefulPartition = engine.partition(store or MemoryStore())
        self._since_sweep = 0
        self.warming = False
        """Build history only: every candidate applied as ``warm`` (no alert)."""

    def alerts(self, candidates: Iterable[Candidate], detected_at: datetime) -> list[Alert]:
        found: list[Alert] = []
        for given in candidates:
            candidate = replace(given, warm=True) if self.warming else given
            applied = self.partition.apply(candidate)
            meta = self.engine.rules[candidate.rule_id].meta if applied.hits else None
            for hit in applied.hits:
                assert meta is not None
                found.append(stateful_alert(meta, hit, detected_at=detected_at))
            self._since_sweep += 1
            if self._since_sweep >= SWEEP_EVERY:
                self._since_sweep = 0
                self.partition.sweep()
        return found

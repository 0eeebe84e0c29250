"""Stateful rules over one partition's store: watermark, lateness, history, expiry.

:class:`StatefulPartition` is what a replica holds per partition of the repartition topic (and
``scan`` holds one of, in memory): it applies candidates in arrival order to their group's state
through the rule's operator. Event time drives everything. The watermark is the highest event time
seen less the allowed lateness; a candidate older than the watermark is *late* and is counted,
not applied (its window may already be gone). State that the watermark has passed is expired by
:meth:`StatefulPartition.sweep`.

New-terms history: a rule whose operator needs history (``history_ms``) alerts only once the
partition's recorded history for it covers that window: from the first candidate it recorded (or
the oldest event of ``auditstream state warm``) to the candidate now. Before that every key is
learnt silently, because an empty history would make every key "new".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

import orjson

from auditstream.detections.stateful.candidate import Candidate
from auditstream.detections.stateful.operator import StatefulHit
from auditstream.detections.stateful.rule import StatefulRule
from auditstream.detections.stateful.store import StateStore

META: Final = b"\x01"
"""Prefix of the partition's own entries (never a rule id's first byte)."""
CLOCK_KEY: Final = META + b"clock"
HISTORY_PREFIX: Final = META + b"history\x00"
NO_TIME: Final = -(2**62)
MAX_STATE_BYTES: Final = 768 * 1024
"""The largest state one group may hold (JSON bytes): it goes to the changelog as one record,
whose producer takes at most ``message.max.bytes`` (1,000,000 by default). A step that would
exceed it is not applied (counted as ``oversized``): the group keeps its state, and the replica
never meets a record it cannot write."""


@dataclass(frozen=True, slots=True)
class Applied:
    hits: tuple[StatefulHit, ...] = ()
    late: bool = False
    unknown_rule: bool = False
    learning: bool = False
    """Applied without alerting: warm history, or history shorter than the rule's window."""
    oversized: bool = False
    """Not applied: the group's state would exceed :data:`MAX_STATE_BYTES`."""


NOTHING: Final = Applied()


@dataclass(slots=True)
class Swept:
    removed: int = 0
    keys: dict[str, int] = field(default_factory=dict)
    """Keys each rule still holds after the sweep."""


class StatefulEngine:
    """The loaded stateful rules; shared by every partition."""

    def __init__(self, rules: Iterable[StatefulRule], *, allowed_lateness_ms: int) -> None:
        self.rules: Mapping[str, StatefulRule] = {rule.meta.rule_id: rule for rule in rules}
        self.allowed_lateness_ms = allowed_lateness_ms

    def partition(self, store: StateStore) -> StatefulPartition:
        return StatefulPartition(self, store)


class StatefulPartition:
    """One partition's state; not thread-safe (one replica loop owns it)."""

    def __init__(self, engine: StatefulEngine, store: StateStore) -> None:
        self.engine = engine
        self.store = store
        clock = store.get(CLOCK_KEY)
        self.max_time_ms = int(orjson.loads(clock)) if clock is not None else NO_TIME
        self._history: dict[str, int] = {}
        self.late = 0
        self.oversized = 0

    @property
    def watermark_ms(self) -> int:
        if self.max_time_ms == NO_TIME:
            return NO_TIME
        return self.max_time_ms - self.engine.allowed_lateness_ms

    def apply(self, candidate: Candidate) -> Applied:
        rule = self.engine.rules.get(candidate.rule_id)
        if rule is None:
            return Applied(unknown_rule=True)  # a rule no longer loaded: its candidates idle
        if candidate.time_ms < self.watermark_ms:
            self.late += 1
            return Applied(late=True)
        self.max_time_ms = max(self.max_time_ms, candidate.time_ms)
        covered = self._history_covers(rule, candidate)  # warm ones are history too
        alerting = covered and not candidate.warm
        key = candidate.store_key
        raw = self.store.get(key)
        state = orjson.loads(raw) if raw is not None else None
        step = rule.operator.step(state, candidate, alerting=alerting)
        after = step.state
        if after is not None and self.watermark_ms != NO_TIME:
            after = rule.operator.expire(after, self.watermark_ms)  # hold only what can count
        if after is None:
            if raw is not None:
                self.store.delete(key)
        else:
            encoded = orjson.dumps(after)
            if len(encoded) > MAX_STATE_BYTES:
                self.oversized += 1
                return Applied(oversized=True)
            if encoded != raw:
                self.store.put(key, encoded)
        return Applied(hits=step.hits, learning=not alerting)

    def _history_covers(self, rule: StatefulRule, candidate: Candidate) -> bool:
        if rule.history_ms <= 0:
            return True
        rule_id = rule.meta.rule_id
        start = self._history.get(rule_id)
        if start is None:
            raw = self.store.get(HISTORY_PREFIX + rule_id.encode())
            start = int(orjson.loads(raw)) if raw is not None else None
        if start is None or candidate.time_ms < start:
            start = candidate.time_ms
            self.store.put(HISTORY_PREFIX + rule_id.encode(), orjson.dumps(start))
        self._history[rule_id] = start
        return candidate.time_ms - start >= rule.history_ms

    def history_from_ms(self, rule_id: str) -> int | None:
        """Where this partition's history for a rule starts (None: nothing recorded)."""
        raw = self.store.get(HISTORY_PREFIX + rule_id.encode())
        return int(orjson.loads(raw)) if raw is not None else None

    def sweep(self) -> Swept:
        """Expire what the watermark has passed and persist the clock; one pass over the store,
        which also counts the keys each rule holds (for the metrics)."""
        swept = Swept()
        watermark = self.watermark_ms
        if watermark == NO_TIME:
            return swept
        for key, raw in self.store.items():
            if key.startswith(META):
                continue
            rule_id = key.split(b"\x00", 1)[0].decode()
            rule = self.engine.rules.get(rule_id)
            if rule is None:
                continue  # kept: the rule may be loaded again; its retention is unknown
            state = orjson.loads(raw)
            kept = rule.operator.expire(state, watermark)
            if kept is None:
                self.store.delete(key)
                swept.removed += 1
                continue
            if kept != state:
                self.store.put(key, orjson.dumps(kept))
            swept.keys[rule_id] = swept.keys.get(rule_id, 0) + 1
        clock = orjson.dumps(self.max_time_ms)
        if self.store.get(CLOCK_KEY) != clock:
            self.store.put(CLOCK_KEY, clock)
        return swept

    def keys_per_rule(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for key, _raw in self.store.items():
            if not key.startswith(META):
                rule_id = key.split(b"\x00", 1)[0].decode()
                counts[rule_id] = counts.get(rule_id, 0) + 1
        return counts

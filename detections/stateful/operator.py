"""The stateful half of a rule: a pure step function over one group's state.

State is a JSON-able dict (it goes to a RocksDB store and a changelog topic as JSON), ``None`` for
a group with none. An operator never reads a clock: time is event time, carried by candidates, and
the runtime's watermark (the highest event time seen, less the allowed lateness).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from auditstream.detections.stateful.candidate import Candidate
from auditstream.detections.values import Value

State = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StatefulHit:
    """A stateful rule's condition became true: the input of one alert."""

    basis: str
    """What makes the alert unique (its id is derived from the rule id and this): the event
    that introduced a new term, the events of a sequence, a STATS row's group and the event that
    made it true. A replay gives the same basis, hence the same alert id."""
    trigger: Candidate
    """The event that made the condition true; the alert describes it."""
    fields: Mapping[str, Value] = field(default_factory=dict)
    """The columns Elastic's alert would carry (an ES|QL result row, the new terms)."""
    events: tuple[str, ...] = ()
    """Every event the alert stands for (``auditID/stage``), in event-time order."""


@dataclass(frozen=True, slots=True)
class Step:
    state: State | None
    """The group's state after the candidate; ``None`` deletes it."""
    hits: tuple[StatefulHit, ...] = ()


class Operator(Protocol):
    """What a stateful rule type does with its candidates; pure, deterministic, replay-safe:
    stepping with a candidate already in the state must give the same hits again (same basis)
    and leave the state as it was."""

    @property
    def retention_ms(self) -> int:
        """How long (event time) a group's state must outlive its newest event."""
        ...

    def step(self, state: State | None, candidate: Candidate, *, alerting: bool) -> Step:
        """Apply one candidate. ``alerting`` false: update the state, return no hits (history
        being built, or a new-terms key space whose history does not cover the window yet)."""
        ...

    def expire(self, state: State, watermark_ms: int) -> State | None:
        """The state without what the watermark has passed (``None``: nothing left)."""
        ...

"""One event that passed a stateful rule's per-event part, keyed for where its group meets.

A candidate carries everything the stateful half needs, because in the service it crosses a
repartition topic to another replica: the group key, the event time, the event's identity (replays
must not count twice, so windows hold identities, not counters), the columns the operator reads,
and a slim copy of the audit event (without ``requestObject``/``responseObject``) for the alert.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from auditstream.detections.values import Scalar, Value

KEY_SEPARATOR: Final = b"\x00"
_HEAVY_KEYS: Final = ("requestObject", "responseObject")

GroupKey = tuple[Scalar | None, ...]


@dataclass(frozen=True, slots=True)
class Candidate:
    rule_id: str
    """The stateful rule (not its selector)."""
    stage: int
    """Which selector the event passed: a sequence's stage, a correlation's referenced rule."""
    key: GroupKey
    """The group key: ``BY`` values, new-terms values, a sequence's join key."""
    time_ms: int
    """Event time (the audit event's ``@timestamp`` as Elastic's integration sets it), ms."""
    event_id: str
    """``auditID/stage``: one identity per audit event stage, the unit of every window."""
    row: Mapping[str, Value] = field(default_factory=dict)
    """The columns the operator reads (an ES|QL row before STATS, a correlation's fields)."""
    audit: Mapping[str, Any] = field(default_factory=dict)
    """The audit event without its request and response objects: what the alert shows."""
    source: Mapping[str, Any] | None = None
    """Where the event was read (an alert's ``source`` record), when known."""
    warm: bool = False
    """History only (``auditstream state warm``): update state, never alert."""

    @property
    def store_key(self) -> bytes:
        """The state store key of this candidate's group: rule id, then the key as JSON."""
        return store_key(self.rule_id, self.key)

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "r": self.rule_id,
                "s": self.stage,
                "k": list(self.key),
                "t": self.time_ms,
                "e": self.event_id,
                "w": {name: _plain(value) for name, value in self.row.items()},
                "a": self.audit,
                "o": self.source,
                "h": self.warm,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Candidate:
        """Raises ValueError (orjson's decode error is one) on bytes no candidate wrote."""
        raw = orjson.loads(data)
        if not isinstance(raw, dict):
            raise ValueError("a candidate is a JSON object")
        try:
            return cls(
                rule_id=str(raw["r"]),
                stage=int(raw["s"]),
                key=tuple(raw["k"]),
                time_ms=int(raw["t"]),
                event_id=str(raw["e"]),
                row={name: _value(v) for name, v in dict(raw["w"]).items()},
                audit=dict(raw["a"]),
                source=raw.get("o"),
                warm=bool(raw.get("h", False)),
            )
        except (KeyError, TypeError) as err:
            raise ValueError(f"not a candidate: {err}") from err


def store_key(rule_id: str, key: GroupKey) -> bytes:
    return rule_id.encode() + KEY_SEPARATOR + orjson.dumps(list(key))


def slim_audit(audit: Mapping[str, Any]) -> dict[str, Any]:
    """The audit object without the parts an alert never shows (and that can be megabytes)."""
    return {name: value for name, value in audit.items() if name not in _HEAVY_KEYS}


def _plain(value: Value) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _value(raw: Any) -> Value:
    return tuple(raw) if isinstance(raw, list) else raw

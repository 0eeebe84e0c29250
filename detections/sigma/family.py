"""The family of Sigma rules: each event's audit object read once per field, rules indexed.

Sigma rules read the audit event itself (raw, or an ECS document's ``kubernetes.audit``), never
the Elastic document, so they cost no mapping. Field values are read once per event and path,
whatever number of rules read them. The index works on case-folded values, as plain Sigma
strings match case-insensitively.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from auditstream.detections.event_view import EventView
from auditstream.detections.rule_hit import RuleHit
from auditstream.detections.ruleset.rule_index import RuleIndex
from auditstream.detections.sigma.fields import audit_path, field_values
from auditstream.detections.sigma.rule import SigmaRule
from auditstream.detections.values import Scalar, Value

if TYPE_CHECKING:  # the compiler imports pySigma; running compiled rules does not need it
    from auditstream.detections.sigma.compiler import FieldReader


class SigmaFamily:
    """Stateless between events. ``shortcuts=False`` evaluates every rule on every event (no
    index): the verdicts are the same, it exists to prove that."""

    def __init__(self, rules: Sequence[SigmaRule], *, shortcuts: bool = True) -> None:
        self.rules = tuple(rules)
        self.shortcuts = shortcuts
        self._index = RuleIndex(
            self.rules, (lambda rule: rule.required_values) if shortcuts else (lambda _: {})
        )

    def fires_on_nothing(self, audit: Mapping[str, Any]) -> bool:
        if not self.shortcuts or self._index.unindexed:
            return False
        return not self._index.candidates(_folded_values(_reader(audit)))

    def hits(self, view: EventView) -> list[RuleHit]:
        read = _reader(view.event.audit)
        candidates = self._index.candidates(_folded_values(read)) if self.shortcuts else self.rules
        return [
            RuleHit(rule=rule.meta, fields=_shown_fields(rule, read))
            for rule in candidates
            if rule.matches(read)
        ]


def _reader(audit: Mapping[str, Any]) -> FieldReader:
    seen: dict[tuple[str, ...], list[object]] = {}

    def read(path: tuple[str, ...]) -> list[object]:
        found = seen.get(path)
        if found is None:
            found = seen[path] = field_values(audit, path)
        return found

    return read


def _folded_values(read: FieldReader) -> Any:
    def values(name: str) -> tuple[Scalar, ...]:
        found = read(audit_path(name))
        return tuple(
            v.lower() if isinstance(v, str) else v
            for v in found
            if isinstance(v, str | int | float | bool)
        )

    return values


def _shown_fields(rule: SigmaRule, read: FieldReader) -> dict[str, Value]:
    """What the alert shows: each field the rule reads, under its Sigma name; objects as JSON
    text (an alert field holds scalars)."""
    shown: dict[str, Value] = {}
    for name in rule.reads:
        values = tuple(_scalar(v) for v in read(audit_path(name)) if v is not None)
        shown[name] = None if not values else values[0] if len(values) == 1 else values
    return shown


def _scalar(value: object) -> Scalar:
    if isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))

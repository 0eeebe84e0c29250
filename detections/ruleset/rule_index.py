"""Evaluate only the rules that can match an event: rules indexed by the values they require.

With the whole Elastic ruleset loaded, nearly every audit event is a candidate for some rule,
but each rule opens on a few exact values (``event.action:(get or list) and
kubernetes.audit.objectRef.resource:"secrets"``). Falco indexes its rules by event type; this
indexes them by one required field each, chosen at load, so that a routine ``get`` of a
ConfigMap evaluates the handful of rules that require ``configmaps`` or nothing at all.

Exactness: a rule is indexed under field ``f`` with values ``S`` only when its compiler proves
that the rule cannot match unless one of the values Elasticsearch indexes under ``f`` equals a
member of ``S`` exactly (a top-level conjunct of exact keyword equality). For an event whose
``f`` values miss ``S`` the rule is false, so skipping it changes no verdict. Rules that
require nothing indexable are evaluated on every event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Generic, TypeVar

from auditstream.detections.values import Scalar

_R = TypeVar("_R")

INDEX_FIELDS: tuple[str, ...] = (
    "kubernetes.audit.objectRef.subresource",
    "kubernetes.audit.objectRef.resource",
    "kubernetes.audit.objectRef.name",
    "kubernetes.audit.verb",
)
"""Preferred index fields, most selective first: a rule goes under the first one it requires.
All are audit-event fields that the Elastic mapping copies unchanged, so the routine check can
read them from the audit object of any input shape without building the document."""

Requirements = Mapping[str, frozenset[str]]
"""Per field, the values of which one must be indexed under it for the rule to match."""


class RuleIndex(Generic[_R]):
    """Rules by (field, required value), plus the rules that require nothing indexable."""

    def __init__(self, rules: Sequence[_R], requirements: Callable[[_R], Requirements]) -> None:
        self.unindexed: tuple[_R, ...] = ()
        by_value: dict[str, dict[str, list[_R]]] = {}
        unindexed: list[_R] = []
        for rule in rules:
            required = requirements(rule)
            field = next((f for f in INDEX_FIELDS if required.get(f)), None)
            if field is None:
                unindexed.append(rule)
                continue
            for value in required[field]:
                by_value.setdefault(field, {}).setdefault(value, []).append(rule)
        self.unindexed = tuple(unindexed)
        self._by_value = {f: {v: tuple(rs) for v, rs in vs.items()} for f, vs in by_value.items()}
        self._order = {id(rule): position for position, rule in enumerate(rules)}

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self._by_value)

    def candidates(self, values: Callable[[str], tuple[Scalar, ...]]) -> list[_R]:
        """The rules that may match a document whose indexed values ``values(field)`` gives, in
        load order (so alerts come out in the same order with or without the index)."""
        found: dict[int, _R] = {id(rule): rule for rule in self.unindexed}
        for field, table in self._by_value.items():
            for value in values(field):
                # A number or boolean is indexed in its keyword form ("true", "42"): rather
                # than reproduce that spelling here, such rare events take every rule of the
                # field (exact, only slower).
                matched = table.get(value, ()) if isinstance(value, str) else _all(table)
                for rule in matched:
                    found[id(rule)] = rule
        if len(found) <= 1:
            return list(found.values())
        return sorted(found.values(), key=lambda rule: self._order[id(rule)])


def _all(table: Mapping[str, tuple[_R, ...]]) -> list[_R]:
    return [rule for rules in table.values() for rule in rules]

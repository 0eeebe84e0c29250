"""Evaluate only the rules that can match an event: rules indexed by the values they require.

With the whole Elastic ruleset loaded, nearly every audit event is a candidate for some rule,
but each rule opens on a few exact values (``event.action:(get or list) and
kubernetes.audit.objectRef.resource:"secrets"``). Falco indexes its rules by event type; this
indexes them by every required value of a few selective fields, so that a routine ``get`` of a
ConfigMap evaluates only the rules that require ``configmaps`` and ``get`` (or nothing).

Exactness: a rule is indexed under field ``f`` with values ``S`` only when its compiler proves
that the rule cannot match unless one of the values indexed under ``f`` equals a member of
``S`` exactly (a top-level conjunct of exact keyword equality). A rule is a candidate when every
one of its indexed requirements is met; for any other event it is false, so skipping it changes
no verdict. Rules that require nothing indexable are evaluated on every event.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Final, Generic, TypeVar

from auditstream.detections.values import Scalar

_R = TypeVar("_R")

INDEX_FIELDS: Final = (
    "kubernetes.audit.objectRef.subresource",
    "kubernetes.audit.objectRef.resource",
    "kubernetes.audit.objectRef.name",
    "kubernetes.audit.objectRef.namespace",
    "kubernetes.audit.verb",
    "event.action",
)
"""The fields rules are indexed by: selective, and read without building the Elastic document
(the ``kubernetes.audit`` ones are copied unchanged by the mapping; ``event.action`` is the
verb for raw input)."""

PRESENCE_PREFIX: Final = "kubernetes.audit."
"""Presence requirements are kept for audit fields only: readable from the audit object."""

Requirements = Mapping[str, frozenset[str]]
"""Per field, the values of which one must be indexed under it for the rule to match."""
Values = Callable[[str], tuple[Scalar, ...]]


class RuleIndex(Generic[_R]):
    """Rules by (field, required value); per rule, how many index fields it requires."""

    def __init__(
        self,
        rules: Sequence[_R],
        requirements: Callable[[_R], Requirements],
        *,
        non_strings_match: bool = True,
        present: Callable[[_R], Collection[str]] = lambda _: (),
    ) -> None:
        """``non_strings_match``: whether a number or boolean value may satisfy a string
        requirement (a keyword field indexes ``true`` as "true"; ES|QL compares it as null).
        ``present``: fields of :data:`PRESENCE_PREFIX` that must hold a value for the rule to
        match (the ``impersonatedUser`` of an impersonation rule)."""
        self.rules = tuple(rules)
        self._widen = non_strings_match
        by_value: dict[str, dict[str, list[int]]] = {}
        needs: list[frozenset[str]] = []
        for position, rule in enumerate(self.rules):
            required = {f: s for f, s in requirements(rule).items() if f in INDEX_FIELDS and s}
            needs.append(frozenset(required))
            for field, values in required.items():
                for value in values:
                    by_value.setdefault(field, {}).setdefault(value, []).append(position)
        self._needs = tuple(needs)
        self._needed_cache: dict[tuple[str, ...], tuple[int, ...]] = {}
        self._present: dict[str, tuple[int, ...]] = {}
        for position, rule in enumerate(self.rules):
            for field in present(rule):
                if field.startswith(PRESENCE_PREFIX):
                    self._present[field] = (*self._present.get(field, ()), position)
        with_presence = {p for positions in self._present.values() for p in positions}
        self.unindexed = tuple(
            rule
            for position, rule in enumerate(self.rules)
            if not needs[position] and position not in with_presence
        )
        self._by_value = {f: {v: tuple(ps) for v, ps in vs.items()} for f, vs in by_value.items()}
        self._all = {
            field: tuple(sorted({p for ps in table.values() for p in ps}))
            for field, table in self._by_value.items()
        }

    @property
    def fields(self) -> tuple[str, ...]:
        """The index fields some rule requires (the only ones :meth:`candidates` reads)."""
        return tuple(self._by_value)

    def single_field(self) -> tuple[str, frozenset[str]] | None:
        """(field, values) when every rule requires one field and nothing else: a candidate
        exists exactly when one of the field's string values is among ``values``."""
        fields = set(self._needs)
        if self.unindexed or self._present or len(fields) != 1:
            return None
        (need,) = fields
        if len(need) != 1:
            return None
        (field,) = need
        return field, frozenset(self._by_value[field])

    def candidates(self, values: Values, *, unknown: Collection[str] = ()) -> list[_R]:
        """The rules that may match a document whose indexed values ``values(field)`` gives, in
        load order. Requirements on ``unknown`` fields (not readable by the caller) count as
        met: that only widens the result."""
        met = [0] * len(self.rules)
        widen = self._widen
        for field, table in self._by_value.items():
            if field in unknown:
                continue
            found = values(field)
            if not found:
                continue
            hit: set[int] = set()
            for value in found:
                if type(value) is str:
                    hit.update(table.get(value, ()))
                elif widen:
                    # A number or boolean is indexed in its keyword form ("true", "42"): rather
                    # than reproduce that spelling here, such rare events take every rule of
                    # the field (exact, only slower).
                    hit.update(self._all[field])
            for position in hit:
                met[position] += 1
        for field, positions in self._present.items():
            if field not in unknown and not values(field):
                for position in positions:
                    met[position] = -1
        needed = self._needed(tuple(unknown))
        return [
            rule for rule, got, need in zip(self.rules, met, needed, strict=True) if got == need
        ]

    def _needed(self, unknown: tuple[str, ...]) -> tuple[int, ...]:
        """Per rule, how many requirements must be met when ``unknown`` fields are not read."""
        found = self._needed_cache.get(unknown)
        if found is None:
            skipped = set(unknown)
            found = tuple(len(need - skipped) for need in self._needs)
            self._needed_cache[unknown] = found
        return found

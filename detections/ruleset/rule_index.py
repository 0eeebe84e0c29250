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

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
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
        present_at: dict[str, list[int]] = {}
        for position, rule in enumerate(self.rules):
            for field in present(rule):
                if field.startswith(PRESENCE_PREFIX):
                    present_at.setdefault(field, []).append(position)
        with_presence = {p for positions in present_at.values() for p in positions}
        self.unindexed = tuple(
            rule
            for position, rule in enumerate(self.rules)
            if not needs[position] and position not in with_presence
        )
        # Bit sets (bit i: rule i), combined per event by candidates(): per field and value the
        # rules that require it, per field every rule that requires the field at all.
        self._masks = {f: {v: _mask(ps) for v, ps in vs.items()} for f, vs in by_value.items()}
        self._requiring = {f: _union(table.values()) for f, table in self._masks.items()}
        self._present_masks = {field: _mask(ps) for field, ps in present_at.items()}
        self._every = (1 << len(self.rules)) - 1

    @property
    def fields(self) -> tuple[str, ...]:
        """The index fields some rule requires (the only ones :meth:`candidates` reads)."""
        return tuple(self._masks)

    def single_field(self) -> tuple[str, frozenset[str]] | None:
        """(field, values) when every rule requires one field and nothing else: a candidate
        exists exactly when one of the field's string values is among ``values``."""
        fields = set(self._needs)
        if self.unindexed or self._present_masks or len(fields) != 1:
            return None
        (need,) = fields
        if len(need) != 1:
            return None
        (field,) = need
        return field, frozenset(self._masks[field])

    def candidates(self, values: Values, *, unknown: Collection[str] = ()) -> list[_R]:
        """The rules that may match a document whose indexed values ``values(field)`` gives, in
        load order. Requirements on ``unknown`` fields (not readable by the caller) count as
        met: that only widens the result.

        Every index field is read (a read that fails fails here, as it would without the
        index); per field, the rules that require it and are not met by one of its values
        leave the candidate set."""
        candidates = self._every
        widen = self._widen
        for field, table in self._masks.items():
            if field in unknown:
                continue
            requiring = self._requiring[field]
            met = 0
            for value in values(field):
                if type(value) is str:
                    met |= table.get(value, 0)
                elif widen:
                    # A number or boolean is indexed in its keyword form ("true", "42"): rather
                    # than reproduce that spelling here, such rare events take every rule of
                    # the field (exact, only slower).
                    met = requiring
            candidates &= ~requiring | met
        for field, required in self._present_masks.items():
            if field not in unknown and not values(field):
                candidates &= ~required
        rules = self.rules
        found: list[_R] = []
        while candidates:
            lowest = candidates & -candidates
            found.append(rules[lowest.bit_length() - 1])
            candidates ^= lowest
        return found


def _mask(positions: Collection[int]) -> int:
    mask = 0
    for position in positions:
        mask |= 1 << position
    return mask


def _union(masks: Iterable[int]) -> int:
    union = 0
    for mask in masks:
        union |= mask
    return union

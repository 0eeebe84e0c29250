"""Which events can a loaded ES|QL rule fire on at all? Decided once at load, asked per event.

Almost every audit event is routine API traffic, and every shipped rule starts with
``WHERE kubernetes.audit.objectRef.subresource == "exec" AND ...``. Evaluating that stage the
long way (a row, a closure chain, three-valued logic) costs more than the rest of a routine
event's handling, so the :class:`auditstream.detections.engine.Detector` asks the gate first.

The gate is exact, not a heuristic. A rule's *requirements* are the leading conjuncts of its
first stage, when that stage is a ``WHERE`` (it runs on the source fields: no EVAL or RENAME
before it can redefine a column): ``<field> == "<literal>"`` in either operand order, or
``<field> IN ("<a>", ...)`` (:func:`opening_requirements`). The stage stops at the first
conjunct that is not true, and such a comparison never raises (non-comparable operands give
null), so for an event that fails one of them nothing after it is evaluated and the rule cannot
fire. Rules are indexed by their requirements on a few selective fields
(:mod:`auditstream.detections.ruleset.rule_index`); the gate admits an event when some rule is a
candidate. The values are read as the compiled rule reads them
(:func:`auditstream.detections.event.fields.compile_field` resolves every ``kubernetes.audit.*``
field but annotations as a path over the event's audit object), so every input shape and
spelling resolves the same way. A rule with no indexed requirement is a candidate for every
event: it keeps the gate from turning events away (:attr:`RuleGate.on` is false, the routine
fast path cannot skip ES|QL), but :meth:`RuleGate.candidates` still names, per event, the rules
that can fire, and the family evaluates only those (the others stop at an indexed conjunct that
fails, before anything that could raise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from auditstream.detections.esql import ast
from auditstream.detections.esql.rule import EsqlRule
from auditstream.detections.event.audit_event import AuditEvent
from auditstream.detections.event.field_path import FieldPath, to_value
from auditstream.detections.event.fields import AUDIT_FIELD_PREFIX
from auditstream.detections.ruleset.rule_index import RuleIndex
from auditstream.detections.values import Scalar, Value

SUBRESOURCE_FIELD: Final = "kubernetes.audit.objectRef.subresource"
_AUDIT_ONLY: Final = ("event.action",)
"""Index fields the gate does not read (ES|QL takes event.action from the Elastic document,
which the gate must not build): requirements on them count as met."""


class RuleGate:
    """Stateless after construction; one instance serves every event and thread."""

    __slots__ = ("_index", "_paths", "_single", "_subset", "on", "subresources")

    def __init__(
        self, index: RuleIndex[EsqlRule] | None, subresources: frozenset[str] | None = None
    ) -> None:
        self._index = index if index is not None and not index.unindexed else None
        self.on = self._index is not None
        """Whether the gate turns anything away (every rule opens on an indexed value)."""
        self._subset = index if index is not None and index.unindexed else None
        """With rules that no requirement indexes: the index that still picks, per event, the
        rules that can fire (the unindexed ones always among them)."""
        self.subresources = subresources
        """When every rule opens with ``<subresource> == "<literal>"``: those literals (what
        ``auditstream rules show`` reports); ``None`` otherwise or when the gate is off."""
        either = self._index or self._subset
        used = either.fields if either is not None else ()
        # Every index field but event.action is a kubernetes.audit field (never an annotation):
        # the compiled rule reads it as a path over the audit object, and so does the gate.
        self._paths = {
            name: FieldPath(name.removeprefix(AUDIT_FIELD_PREFIX))
            for name in used
            if name not in _AUDIT_ONLY
        }
        single = self._index.single_field() if self._index is not None else None
        self._single = single if single is not None and single[0] in self._paths else None

    @classmethod
    def for_rules(cls, rules: Sequence[EsqlRule]) -> RuleGate:
        literals = [opening_subresource(rule) for rule in rules]
        subresources = None if None in literals else frozenset(str(x) for x in literals)
        # ES|QL compares a number with a string literal as null: it never meets a requirement.
        index = RuleIndex(rules, opening_requirements, non_strings_match=False)
        return cls(index, subresources)

    def candidates(self, event: AuditEvent) -> frozenset[str] | None:
        """The ids of the rules that can fire on ``event``: ``None`` for every rule (the gate is
        off, or every rule is indexed and :meth:`admits` decides alone)."""
        index = self._subset
        if index is None:
            return None
        paths = self._paths
        audit = event.audit
        found = index.candidates(
            lambda name: _values(to_value(paths[name].lookup(audit))), unknown=_AUDIT_ONLY
        )
        return frozenset(rule.meta.rule_id for rule in found)

    def admits(self, event: AuditEvent) -> bool:
        """False only when no loaded ES|QL rule can fire on ``event`` (see the module doc).

        Raises what the rules' own read of the fields would raise, so an event that breaks
        evaluation is refused the same way with or without the gate.
        """
        return self.admits_audit(event.audit)

    def admits_audit(self, audit: Mapping[str, Any]) -> bool:
        """:meth:`admits` for an event's audit object (no decoded event needed)."""
        index = self._index
        if index is None:
            return True
        if self._single is not None:  # the usual case: one field, one comparison
            field, allowed = self._single
            value = to_value(self._paths[field].lookup(audit))
            return type(value) is str and value in allowed
        paths = self._paths
        found = index.candidates(
            lambda name: _values(to_value(paths[name].lookup(audit))), unknown=_AUDIT_ONLY
        )
        return bool(found)


def _values(value: Value) -> tuple[Scalar, ...]:
    if value is None:
        return ()
    return value if isinstance(value, tuple) else (value,)


def opening_requirements(rule: EsqlRule) -> dict[str, frozenset[str]]:
    """What the leading conjuncts of a first-stage ``WHERE`` require of the source fields.

    Only the conjuncts before the first one that could raise or read anything but a source
    field count: ``<field> == "<literal>"`` (either order) and ``<field> IN ("<a>", ...)``.
    The stage stops at the first conjunct that is not true, so for an event that fails one of
    them nothing after it is evaluated (no error can surface) and the rule cannot fire. A
    multi-valued field compares as null, so "one of its values is in the set" is necessary.
    """
    stages = rule.query.stages
    if not stages or not isinstance(stages[0][0], ast.Where):
        return {}
    required: dict[str, frozenset[str]] = {}
    for conjunct in _conjuncts(stages[0][0].condition):
        found = _requirement(conjunct)
        if found is None:
            break
        field, values = found
        required[field] = required[field] & values if field in required else values
    return required


def _conjuncts(condition: ast.Expr) -> list[ast.Expr]:
    if isinstance(condition, ast.Logical) and condition.op == "AND":
        return [*_conjuncts(condition.left), *_conjuncts(condition.right)]
    return [condition]


def _requirement(conjunct: ast.Expr) -> tuple[str, frozenset[str]] | None:
    if isinstance(conjunct, ast.Compare) and conjunct.op == "==":
        for field, literal in ((conjunct.left, conjunct.right), (conjunct.right, conjunct.left)):
            if (
                isinstance(field, ast.FieldRef)
                and isinstance(literal, ast.Literal)
                and isinstance(literal.value, str)
            ):
                return field.name, frozenset({literal.value})
        return None
    if (
        isinstance(conjunct, ast.InList)
        and not conjunct.negated
        and isinstance(conjunct.operand, ast.FieldRef)
        and all(isinstance(i, ast.Literal) and isinstance(i.value, str) for i in conjunct.items)
    ):
        values = frozenset(str(i.value) for i in conjunct.items if isinstance(i, ast.Literal))
        return conjunct.operand.name, values
    return None


def opening_subresource(rule: EsqlRule) -> str | None:
    """The literal of a first stage ``WHERE <subresource> == "<literal>" AND ...``, else None."""
    stages = rule.query.stages
    if not stages:
        return None
    command = stages[0][0]
    if not isinstance(command, ast.Where):
        return None
    first = command.condition
    while isinstance(first, ast.Logical) and first.op == "AND":
        first = first.left
    if not isinstance(first, ast.Compare) or first.op != "==":
        return None
    for field, literal in ((first.left, first.right), (first.right, first.left)):
        if (
            isinstance(field, ast.FieldRef)
            and field.name == SUBRESOURCE_FIELD
            and isinstance(literal, ast.Literal)
            and isinstance(literal.value, str)
        ):
            return literal.value
    return None

"""Which events can a loaded ES|QL rule fire on at all? Decided once at load, asked per event.

Almost every audit event is routine API traffic, and every shipped rule starts with
``WHERE kubernetes.audit.objectRef.subresource == "exec" AND ...``. Evaluating that stage the
long way (a row, a closure chain, three-valued logic) costs more than the rest of a routine
event's handling, so the :class:`auditstream.detections.engine.Detector` asks the gate first.

The gate is exact, not a heuristic. A rule *opens* with a literal when its first stage is a
``WHERE`` (it runs on the source fields: no EVAL or RENAME before it can redefine the column)
whose first conjunct is ``<subresource field> == "<literal>"`` in either operand order. The stage
stops at the first conjunct that is not true, and a comparison never raises (non-comparable
operands give null), so for an event whose subresource value is not a string equal to one of
the literals, nothing else of the rule is evaluated and it cannot fire. The value is read as
the compiled rule reads it (:func:`auditstream.detections.event.audit_event.compile_field` resolves
every
``kubernetes.audit.*`` field but annotations as a :class:`FieldPath` over the event's audit
object), so every input shape and spelling resolves the same way. One rule that does not open
this way turns the gate off: every event goes to the rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from auditstream.detections.esql import ast
from auditstream.detections.esql.rule import EsqlRule
from auditstream.detections.event.audit_event import AuditEvent
from auditstream.detections.event.field_path import FieldPath, to_value
from auditstream.detections.event.fields import AUDIT_FIELD_PREFIX

SUBRESOURCE_FIELD: Final = "kubernetes.audit.objectRef.subresource"


class RuleGate:
    """Stateless after construction; one instance serves every event and thread."""

    __slots__ = ("_path", "subresources")

    def __init__(self, subresources: frozenset[str] | None) -> None:
        self.subresources = subresources
        """The subresources some rule can fire on; ``None`` when the gate is off."""
        self._path = FieldPath(SUBRESOURCE_FIELD.removeprefix(AUDIT_FIELD_PREFIX))

    @classmethod
    def for_rules(cls, rules: Sequence[EsqlRule]) -> RuleGate:
        literals: set[str] = set()
        for rule in rules:
            literal = opening_subresource(rule)
            if literal is None:
                return cls(None)
            literals.add(literal)
        return cls(frozenset(literals))

    def admits(self, event: AuditEvent) -> bool:
        """False only when no loaded ES|QL rule can fire on ``event`` (see the module doc).

        Raises what the rules' own read of the field would raise, so an event that breaks
        evaluation is refused the same way with or without the gate.
        """
        return self.admits_audit(event.audit)

    def admits_audit(self, audit: Mapping[str, Any]) -> bool:
        """:meth:`admits` for an event's audit object (no :class:`AuditEvent` needed)."""
        allowed = self.subresources
        if allowed is None:
            return True
        value = to_value(self._path.lookup(audit))
        return isinstance(value, str) and value in allowed


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

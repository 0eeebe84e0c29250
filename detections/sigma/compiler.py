"""A Sigma detection, as pySigma parsed it, compiled to a predicate over the audit event.

pySigma resolves the condition (``1 of sel*``, ``all of them``, parentheses, ``not``) and the
detection (maps are AND, lists are OR, ``|all`` turns a value list into AND) into one tree of
AND, OR, NOT and field=value leaves. This module compiles that tree; the values themselves are
:mod:`auditstream.detections.sigma.values`' business.

Beside the predicate it derives, for the rule index, the values the rule exactly requires of the
index fields (:mod:`auditstream.detections.ruleset.rule_index`): a plain string required by a
top-level conjunct, case-folded, as the family reads the event case-folded too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaRule as PySigmaRule
from sigma.types import SigmaString

from auditstream.detections.errors import DetectionError
from auditstream.detections.ruleset.rule_index import INDEX_FIELDS
from auditstream.detections.sigma.fields import ECS_PREFIX, audit_path
from auditstream.detections.sigma.strings import is_match_all, plain_text
from auditstream.detections.sigma.values import compile_value

FieldReader = Callable[[tuple[str, ...]], list[object]]
"""The values at an audit path of the event being matched (memoised per event)."""
Predicate = Callable[[FieldReader], bool]


@dataclass(frozen=True, slots=True)
class CompiledDetection:
    predicate: Predicate
    fields: tuple[str, ...]
    """The Sigma field names the detection reads, in rule order (what the alert shows)."""
    required_values: Mapping[str, frozenset[str]]


def compile_detection(rule: PySigmaRule) -> CompiledDetection:
    """Compile the rule's condition(s); several ``condition`` entries are alternatives."""
    conditions = rule.detection.parsed_condition
    if not conditions:
        raise DetectionError("the detection has no condition")
    fields: dict[str, None] = {}
    trees = [condition.parse() for condition in conditions]
    predicates = [_compile(tree, fields) for tree in trees]
    predicate = predicates[0] if len(predicates) == 1 else _any_of(predicates)
    required = _requirements(trees[0]) if len(trees) == 1 else {}
    return CompiledDetection(predicate, tuple(fields), required)


def _compile(node: object, fields: dict[str, None]) -> Predicate:
    if isinstance(node, ConditionAND):
        parts = [_compile(arg, fields) for arg in node.args]
        return lambda read: all(part(read) for part in parts)
    if isinstance(node, ConditionOR):
        return _any_of([_compile(arg, fields) for arg in node.args])
    if isinstance(node, ConditionNOT):
        inner = _compile(node.args[0], fields)
        return lambda read: not inner(read)
    if isinstance(node, ConditionFieldEqualsValueExpression):
        fields.setdefault(node.field, None)
        path = audit_path(node.field)
        matches = compile_value(node.value)
        return lambda read: matches(read(path))
    if isinstance(node, ConditionValueExpression):
        raise DetectionError(
            "keyword detections (values without a field name) are not supported: "
            "name the field the value is in"
        )
    raise DetectionError(f"condition element {type(node).__name__} is not supported")


def _any_of(parts: list[Predicate]) -> Predicate:
    return lambda read: any(part(read) for part in parts)


def _requirements(node: object) -> dict[str, frozenset[str]]:
    """Per index field, the folded values one of which the event must hold for a match."""
    if isinstance(node, ConditionFieldEqualsValueExpression):
        name = ECS_PREFIX + ".".join(audit_path(node.field))
        value = node.value
        if name not in INDEX_FIELDS or not isinstance(value, SigmaString):
            return {}
        text = None if is_match_all(value) else plain_text(value)
        if text is None:
            return {}
        return {name: frozenset({text.lower()})}
    if isinstance(node, ConditionOR):
        alternatives = [_requirements(arg) for arg in node.args]
        names = {tuple(a) for a in alternatives}
        if len(names) != 1 or len(next(iter(names))) != 1:
            return {}
        (name,) = next(iter(names))
        return {name: frozenset().union(*(a[name] for a in alternatives))}
    if isinstance(node, ConditionAND):
        merged: dict[str, frozenset[str]] = {}
        for arg in node.args:
            for name, values in _requirements(arg).items():
                merged.setdefault(name, values)
        return merged
    return {}

"""A Sigma correlation rule, as pySigma parsed and resolved it, compiled to a stateful rule.

Each referenced rule's detection is compiled by the Sigma compiler into a selector (a per-event
Sigma rule under the internal id ``<correlation id>#<i>``, evaluated by the Sigma family with
every other rule); its keyer reads the ``group-by`` fields (through the correlation's
``aliases`` for that rule) from the audit event, as every Sigma field is read
(:mod:`auditstream.detections.sigma.fields`). The memory is a
:class:`~auditstream.detections.stateful.correlation.CorrelationOperator`. What cannot be decided
on a stream, or is not in the specification, is refused here, naming the rule and the construct.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
    SigmaRuleReference,
)
from sigma.rule import SigmaRule as PySigmaRule

from auditstream.detections.errors import DetectionError
from auditstream.detections.event_view import EventView
from auditstream.detections.rule_hit import RuleHit
from auditstream.detections.ruleset.meta import RuleMeta
from auditstream.detections.sigma.compiler import compile_detection
from auditstream.detections.sigma.fields import audit_path, field_values
from auditstream.detections.sigma.meta import sigma_meta
from auditstream.detections.sigma.rule import SigmaRule
from auditstream.detections.stateful.candidate import GroupKey
from auditstream.detections.stateful.correlation import (
    VALUES_COLUMN,
    CorrelationKind,
    CorrelationOperator,
)
from auditstream.detections.stateful.rule import (
    KeyedRow,
    Keyer,
    Selector,
    StatefulRule,
    selector_id,
)
from auditstream.detections.values import Scalar, Value

__all__ = ["MAX_KEYS_PER_EVENT", "RULE_TYPE", "compile_correlation"]

RULE_TYPE: Final = "sigma_correlation"
"""The alert's ``rule.type`` for a correlation (a plain Sigma rule's is ``sigma``)."""
MAX_KEYS_PER_EVENT: Final = 256
"""Group keys one event may give (the product of its multi-valued group-by fields), in field
order; a bound on what one attacker-written event can cost, far above any real audit event."""

_KINDS: Final[Mapping[SigmaCorrelationType, CorrelationKind]] = {
    SigmaCorrelationType.EVENT_COUNT: CorrelationKind.EVENT_COUNT,
    SigmaCorrelationType.VALUE_COUNT: CorrelationKind.VALUE_COUNT,
    SigmaCorrelationType.TEMPORAL: CorrelationKind.TEMPORAL,
    SigmaCorrelationType.TEMPORAL_ORDERED: CorrelationKind.TEMPORAL_ORDERED,
}
_UNDECIDABLE: Final = (
    "is decided only when a window closes (a later event in the window can make it false), "
    "and auditstream decides on each event's arrival, with no timer"
)


LogsourceCheck = Callable[[PySigmaRule], str]


def compile_correlation(
    correlation: SigmaCorrelationRule, path: str, check_logsource: LogsourceCheck
) -> StatefulRule:
    """Compile one resolved correlation; raises DetectionError naming what cannot run.

    ``check_logsource`` is the loader's check of a referenced rule's logsource (it returns the
    logsource as shown, or raises), so a correlation accepts exactly the rules the loader does.
    """
    kind = _kind(correlation)
    meta = replace(sigma_meta(correlation), rule_type=RULE_TYPE)
    referenced = _referenced(correlation)
    threshold = _threshold(correlation, kind, len(referenced))
    group_by = tuple(correlation.group_by or ())
    aliases = _aliases(correlation, referenced)
    value_field = _value_field(correlation, kind)
    selectors = []
    for stage, (reference, rule) in enumerate(referenced):
        try:
            shown = check_logsource(rule)
            detection = compile_detection(rule)
        except DetectionError as err:
            raise DetectionError(f"referenced rule {reference!r}: {err}") from err
        selector_meta = _selector_meta(meta, stage, rule)
        paths = tuple(audit_path(aliases.get(name, {}).get(stage, name)) for name in group_by)
        value_path = None
        if value_field is not None:
            value_path = audit_path(aliases.get(value_field, {}).get(stage, value_field))
        selectors.append(
            Selector(
                rule=SigmaRule(selector_meta, detection, path, shown),
                stage=stage,
                keys=_keyer(paths, value_path),
            )
        )
    timespan = correlation.timespan
    operator = CorrelationOperator(
        kind=kind,
        timespan_ms=timespan.seconds * 1000,
        threshold=threshold,
        stages=len(referenced),
        key_names=group_by,
    )
    details: dict[str, Any] = {
        "type": kind.value,
        "timespan": timespan.spec,
        "rules": [reference for reference, _rule in referenced],
        "group_by": list(group_by),
        "condition": correlation.condition.to_dict(),
    }
    return StatefulRule(
        meta=meta,
        path=path,
        language="sigma",
        kind="correlation",
        selectors=tuple(selectors),
        operator=operator,
        key_names=group_by,
        details=details,
    )


def _kind(correlation: SigmaCorrelationRule) -> CorrelationKind:
    kind = _KINDS.get(correlation.type)
    if kind is None:
        name = correlation.type.name.lower() if correlation.type is not None else "none"
        raise DetectionError(
            f"correlation type {name} is not supported (auditstream runs event_count, "
            "value_count, temporal and temporal_ordered)"
        )
    return kind


def _referenced(correlation: SigmaCorrelationRule) -> list[tuple[str, PySigmaRule]]:
    """The referenced rules in the order of ``rules`` (the stage of each)."""
    found: list[tuple[str, PySigmaRule]] = []
    for reference in correlation.referenced_rules:
        rule = getattr(reference, "rule", None)
        if isinstance(rule, SigmaCorrelationRule):
            raise DetectionError(
                f"referenced rule {reference.reference!r} is itself a correlation: chained "
                "correlations are not supported"
            )
        if not isinstance(rule, PySigmaRule):
            raise DetectionError(f"referenced rule {reference.reference!r} is not found")
        if rule.errors:
            reasons = "; ".join(str(error) for error in rule.errors)
            raise DetectionError(f"referenced rule {reference.reference!r} is invalid: {reasons}")
        found.append((reference.reference, rule))
    if not found:
        raise DetectionError("the correlation references no rule")
    return found


def _threshold(correlation: SigmaCorrelationRule, kind: CorrelationKind, rules: int) -> int:
    """The condition as "at least n"; conditions that are not of that form are refused."""
    condition = correlation.condition
    if not isinstance(condition, SigmaCorrelationCondition):
        raise DetectionError(
            "an extended condition (a boolean expression over the rules, a pySigma extension "
            "beyond the specification) is not supported"
        )
    op, count = condition.op, condition.count
    shown = f"condition {op.name.lower()}: {count}"
    if isinstance(count, float) and not count.is_integer():
        raise DetectionError(f"{shown}: a count is a whole number")
    count = int(count)
    temporal = kind in (CorrelationKind.TEMPORAL, CorrelationKind.TEMPORAL_ORDERED)
    if op is SigmaCorrelationConditionOperator.GTE:
        at_least = count
    elif op is SigmaCorrelationConditionOperator.GT:
        at_least = count + 1
    elif op is SigmaCorrelationConditionOperator.EQ and temporal and count == rules:
        at_least = count  # every rule: there can be no more, so "equal" is "at least"
    else:
        raise DetectionError(f"{shown} {_UNDECIDABLE}")
    at_least = max(at_least, 1)  # a group exists once it has an event
    if temporal and at_least > rules:
        raise DetectionError(f"{shown} can never be true: the correlation references {rules}")
    if kind is CorrelationKind.TEMPORAL_ORDERED and at_least != rules:
        raise DetectionError(
            f"{shown}: an ordered correlation of part of its rules has no defined order "
            f"(temporal_ordered needs all {rules})"
        )
    return at_least


def _aliases(
    correlation: SigmaCorrelationRule, referenced: Sequence[tuple[str, PySigmaRule]]
) -> dict[str, dict[int, str]]:
    """Alias name -> stage -> the field that rule's events hold it in."""
    stages = {id(rule): stage for stage, (_ref, rule) in enumerate(referenced)}
    found: dict[str, dict[int, str]] = {}
    for alias in correlation.aliases:
        per_stage: dict[int, str] = {}
        for reference, field in alias.mapping.items():
            stage = _alias_stage(reference, stages, referenced)
            if stage is None:
                raise DetectionError(
                    f"alias {alias.alias!r} names rule {reference.reference!r}, which the "
                    "correlation does not reference"
                )
            per_stage[stage] = field
        found[alias.alias] = per_stage
    return found


def _alias_stage(
    reference: SigmaRuleReference,
    stages: Mapping[int, int],
    referenced: Sequence[tuple[str, PySigmaRule]],
) -> int | None:
    rule = getattr(reference, "rule", None)
    if rule is not None:
        return stages.get(id(rule))
    return next(
        (stage for stage, (text, _rule) in enumerate(referenced) if text == reference.reference),
        None,
    )


def _value_field(correlation: SigmaCorrelationRule, kind: CorrelationKind) -> str | None:
    condition = correlation.condition
    fieldref = condition.fieldref if isinstance(condition, SigmaCorrelationCondition) else None
    if kind is not CorrelationKind.VALUE_COUNT:
        return None
    if isinstance(fieldref, list):
        if len(fieldref) != 1:
            raise DetectionError(
                "value_count over several fields is not supported (the specification's "
                "'linked by an AND' has no verified meaning)"
            )
        (fieldref,) = fieldref
    if not isinstance(fieldref, str) or not fieldref:
        raise DetectionError("value_count needs the condition's field")
    return fieldref


def _selector_meta(meta: RuleMeta, stage: int, rule: PySigmaRule) -> RuleMeta:
    """A selector's metadata: never an alert's, it names the correlation and its rule."""
    return replace(
        meta,
        rule_id=selector_id(meta.rule_id, stage),
        name=f"{meta.name} / {rule.title or rule.name or stage}",
        rule_type="sigma",
    )


# --- the keyer -----------------------------------------------------------------------------------


def _keyer(paths: tuple[tuple[str, ...], ...], value_path: tuple[str, ...] | None) -> Keyer:
    """The group keys of an event: one per combination of its group-by values; none when a
    group-by field is missing or null (the event is in no group)."""

    def keys(view: EventView, _hit: RuleHit) -> list[KeyedRow]:
        audit = view.event.audit
        choices: list[list[Scalar]] = []
        for path in paths:
            values = _distinct(field_values(audit, path))
            if not values:
                return []
            choices.append(values)
        row: dict[str, Value] = {}
        if value_path is not None:
            row[VALUES_COLUMN] = tuple(
                _identity(v) for v in _distinct(field_values(audit, value_path))
            )
        combos = itertools.islice(itertools.product(*choices), MAX_KEYS_PER_EVENT)
        return [(_key(combo), row) for combo in combos]

    return keys


def _key(combo: tuple[Scalar, ...]) -> GroupKey:
    return tuple(combo)


def _distinct(found: list[object]) -> list[Scalar]:
    """The scalar values, in order, without repeats; objects as compact JSON text."""
    seen: dict[str, Scalar] = {}
    for value in found:
        if value is None:
            continue
        scalar = value if isinstance(value, str | int | float | bool) else _json(value)
        seen.setdefault(_identity(scalar), scalar)
    return list(seen.values())


def _identity(value: Scalar) -> str:
    """What tells two values apart: their JSON text (``1`` and ``"1"`` differ, case counts)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))

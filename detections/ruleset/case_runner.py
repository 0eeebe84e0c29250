"""The one runner of the example cases that rule files ship, for every language.

Each case goes through the production :class:`~auditstream.detections.engine.Detector` on the
smallest raw audit event that carries it (:func:`~auditstream.detections.ruleset.cases.case_event`),
so a case tests the rule as it runs, shared stages and shortcuts included.
"""

from __future__ import annotations

from auditstream.detections.elastic.mapping import elastic_source
from auditstream.detections.engine import Detector
from auditstream.detections.event.decode import events_from_json
from auditstream.detections.rule_hit import RuleHit
from auditstream.detections.ruleset.cases import RuleCase, case_event
from auditstream.detections.ruleset.languages import LoadedRule, language_of


def case_hits(
    detector: Detector, rule: LoadedRule, case: RuleCase, *, as_ecs: bool = False
) -> list[RuleHit]:
    """The hits of ``rule`` (only) on the event of ``case``; ``as_ecs``: on the ECS document
    Elastic's integration would index for it instead (a raw event's case only)."""
    (event,) = events_from_json(case_event(case))
    if as_ecs:
        (event,) = events_from_json(elastic_source(event))
    return [hit for hit in detector.detect(event) if hit.rule.rule_id == rule.meta.rule_id]


def check_case(detector: Detector, rule: LoadedRule, case: RuleCase) -> str | None:
    """None when the case passes, else what went wrong. A rule of a shape-independent language
    (Sigma) must also give the same outcome on the event's ECS document."""
    problem = _check(detector, rule, case, as_ecs=False)
    if problem is None and language_of(rule).shape_independent and _is_raw(case):
        problem = _check(detector, rule, case, as_ecs=True)
        return None if problem is None else f"as an ECS document: {problem}"
    return problem


def _is_raw(case: RuleCase) -> bool:
    return case.event is None or "kubernetes" not in case.event


def _check(detector: Detector, rule: LoadedRule, case: RuleCase, *, as_ecs: bool) -> str | None:
    hits = case_hits(detector, rule, case, as_ecs=as_ecs)
    if bool(hits) != case.expect:
        return f"expected {'a hit' if case.expect else 'no hit'}, got {len(hits)}"
    if hits and case.indicator is not None:
        explanation = hits[0].explanation
        named = explanation.indicator if explanation else None
        if named != case.indicator:
            return f"expected indicator {case.indicator!r}, got {named!r}"
    for name, expected in case.fields.items():
        actual = hits[0].fields.get(name)
        if actual != expected:
            return f"field {name}: expected {expected!r}, got {actual!r}"
    return None

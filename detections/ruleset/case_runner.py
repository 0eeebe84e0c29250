"""The one runner of the example cases that rule files ship, for every language.

Each case goes through the production :class:`~auditstream.detections.engine.Detector` on the
smallest raw audit event that carries it (:func:`~auditstream.detections.ruleset.cases.case_event`),
so a case tests the rule as it runs, shared stages and shortcuts included.
"""

from __future__ import annotations

from auditstream.detections.engine import Detector
from auditstream.detections.event.decode import events_from_json
from auditstream.detections.rule_hit import RuleHit
from auditstream.detections.ruleset.cases import RuleCase, case_event
from auditstream.detections.ruleset.languages import LoadedRule


def case_hits(detector: Detector, rule: LoadedRule, case: RuleCase) -> list[RuleHit]:
    """The hits of ``rule`` (only) on the event of ``case``."""
    (event,) = events_from_json(case_event(case))
    return [hit for hit in detector.detect(event) if hit.rule.rule_id == rule.meta.rule_id]


def check_case(detector: Detector, rule: LoadedRule, case: RuleCase) -> str | None:
    """None when the case passes, else what went wrong."""
    hits = case_hits(detector, rule, case)
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

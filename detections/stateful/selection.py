"""The per-event half of the stateful rules, inside the detector: selector hits -> candidates.

Selectors are ordinary per-event rules evaluated by their language's family with every other
rule (so the rule index and the routine shortcut cover them). Their hits never become alerts; the
detector hands them here, and each becomes zero or more candidates, keyed by the rule's keyer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from auditstream.detections.event_view import EventView
from auditstream.detections.rule_hit import RuleHit
from auditstream.detections.stateful.candidate import Candidate, slim_audit
from auditstream.detections.stateful.event_time import event_time_ms
from auditstream.detections.stateful.rule import Selector, StatefulRule, selector_id


class Selection:
    def __init__(self, rules: Iterable[StatefulRule]) -> None:
        self.rules = tuple(rules)
        self._by_selector: dict[str, tuple[StatefulRule, Selector]] = {}
        for rule in self.rules:
            for selector in rule.selectors:
                self._by_selector[selector_id(rule.meta.rule_id, selector.stage)] = (
                    rule,
                    selector,
                )

    @property
    def selector_rules(self) -> list[Any]:
        return [selector.rule for _rule, selector in self._by_selector.values()]

    def is_selector(self, rule_id: str) -> bool:
        return rule_id in self._by_selector

    def split(
        self, view: EventView, hits: Sequence[RuleHit]
    ) -> tuple[list[RuleHit], list[Candidate]]:
        """The hits that are alerts, and the candidates the selector hits make."""
        if not self._by_selector:
            return list(hits), []
        alerts: list[RuleHit] = []
        candidates: list[Candidate] = []
        audit: Mapping[str, Any] | None = None
        time_ms: int | None = None
        for hit in hits:
            found = self._by_selector.get(hit.rule.rule_id)
            if found is None:
                alerts.append(hit)
                continue
            rule, selector = found
            keyed = selector.keys(view, hit)
            if not keyed:
                continue
            if audit is None:
                audit = slim_audit(view.event.audit)
                time_ms = event_time_ms(view.event)
            if time_ms is None:
                continue  # no event time: no window can hold it (counted by the caller)
            event_id = f"{view.event.audit_id}/{view.event.audit.get('stage')}"
            candidates.extend(
                Candidate(
                    rule_id=rule.meta.rule_id,
                    stage=selector.stage,
                    key=key,
                    time_ms=time_ms,
                    event_id=event_id,
                    row=row,
                    audit=audit,
                )
                for key, row in keyed
            )
        return alerts, candidates

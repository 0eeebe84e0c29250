"""The family of every language whose rules query the indexed Elastic document (KQL, EQL).

Such a rule is a predicate over :class:`ElasticDocument` plus the values it exactly requires
(its compiler's contract, see :mod:`auditstream.detections.ruleset.rule_index`). The family
evaluates only the candidate rules of each event, and builds the event's Elastic document only
when some rule is a candidate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from auditstream.detections.elastic.document import ElasticDocument
from auditstream.detections.event_view import EventView
from auditstream.detections.rule_hit import RuleHit
from auditstream.detections.ruleset.document_rule import DocumentRule
from auditstream.detections.ruleset.rule_index import RuleIndex
from auditstream.detections.values import Value


class DocumentFamily:
    """Rules of one document language; stateless between events.

    ``shortcuts=False`` evaluates every rule on every event (no index, no routine check): the
    verdicts are the same, it exists to prove that.
    """

    def __init__(self, rules: Sequence[DocumentRule], *, shortcuts: bool = True) -> None:
        self.rules = tuple(rules)
        self.shortcuts = shortcuts
        self._index = RuleIndex(
            self.rules, (lambda rule: rule.required_values) if shortcuts else (lambda _: {})
        )

    def fires_on_nothing(self, audit: Mapping[str, Any]) -> bool:
        """True when no rule is a candidate for the event of ``audit``: every rule is indexed
        and none under the audit's own values of the index fields."""
        if not self.shortcuts or self._index.unindexed:
            return False
        # Only the audit object is known here: event.action (the verb for raw input, whatever
        # an ECS document says for ECS input) counts as met.
        audit_only = _audit_document(audit).values
        return not self._index.candidates(audit_only, unknown=("event.action",))

    def hits(self, view: EventView) -> list[RuleHit]:
        candidates = self._index.candidates(_audit_values(view))
        if not candidates:
            return []
        document = view.elastic
        return [
            RuleHit(rule=rule.meta, fields=_read_fields(rule, document))
            for rule in candidates
            if rule.matches(document)
        ]


def _audit_values(view: EventView) -> Any:
    """The index fields' values without the Elastic document where the audit holds them as
    indexed (every index field is an audit field the mapping copies unchanged)."""
    if view.event.document is not None:
        return view.elastic.values  # an ECS document: read it as given
    audit = view.event.audit
    return _audit_document(audit, {"action": audit["verb"]}).values


def _audit_document(audit: Mapping[str, Any], event: Mapping[str, Any] | None = None) -> Any:
    """A document holding the audit object as the mapping indexes it, enough for the index
    fields: the integration copies them unchanged but drops empty strings (its final script),
    and copies the verb to ``event.action`` unless it is empty."""
    source: dict[str, Any] = {"kubernetes": {"audit": audit}}
    if event is not None and event.get("action"):
        source["event"] = event
    return _NonEmpty(source)


class _NonEmpty(ElasticDocument):
    __slots__ = ()

    def values(self, field: str) -> tuple[Any, ...]:
        return tuple(value for value in super().values(field) if value != "")


def _read_fields(rule: DocumentRule, document: ElasticDocument) -> dict[str, Value]:
    """What the alert shows: every field the rule read, with the values it saw."""
    fields: dict[str, Value] = {}
    for name in sorted(rule.reads):
        values = document.values(name)
        fields[name] = None if not values else values[0] if len(values) == 1 else values
    return fields

"""A compiled stateful rule: selectors (its per-event part) and an operator (its memory)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from auditstream.detections.event_view import EventView
from auditstream.detections.rule_hit import RuleHit
from auditstream.detections.ruleset.cases import RuleCase
from auditstream.detections.ruleset.meta import RuleMeta
from auditstream.detections.stateful.candidate import GroupKey
from auditstream.detections.stateful.operator import Operator
from auditstream.detections.values import Value

KeyedRow = tuple[GroupKey, Mapping[str, Value]]
Keyer = Callable[[EventView, RuleHit], Sequence[KeyedRow]]
"""The group keys (with the row each carries) of an event that passed a selector: none (a key
field is missing, so the event is in no group), one, or several (a multi-valued key field)."""


@dataclass(frozen=True, slots=True)
class Selector:
    """One per-event rule of a stateful rule: evaluated by its language's family like any other
    rule, under an internal id (``<rule id>#<stage>``) that never names an alert."""

    rule: Any
    """A per-event rule (:data:`~auditstream.detections.ruleset.languages.LoadedRule`)."""
    stage: int
    keys: Keyer


@dataclass(frozen=True, slots=True)
class StatefulRule:
    meta: RuleMeta
    path: str
    language: str
    """The language of its selectors (kuery, esql, eql, sigma)."""
    kind: str
    """new_terms, stats, sequence or correlation."""
    selectors: tuple[Selector, ...]
    operator: Operator
    key_names: tuple[str, ...]
    """What the group key is made of, for ``rules show`` and the docs."""
    history_ms: int = 0
    """A new-terms rule's history window: the rule alerts for a key space only once its recorded
    history covers this much event time (0: no history needed)."""
    cases: tuple[RuleCase, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    """Type-specific facts for ``rules show`` (window, maxspan, thresholds)."""


def selector_id(rule_id: str, stage: int) -> str:
    return f"{rule_id}#{stage}"

"""The family of every language whose rules query the indexed Elastic document (KQL, EQL).

Such a rule is a predicate over :class:`ElasticDocument` plus the values it exactly requires
(its compiler's contract, see :mod:`auditstream.detections.ruleset.rule_index`). The family
evaluates only the candidate rules of each event, and builds the event's Elastic document only
when some rule is a candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Final

from auditstream.detections.elastic.document import ElasticDocument
from auditstream.detections.event.field_path import ecs_key
from auditstream.detections.event_view import EventView
from auditstream.detections.rule_hit import RuleHit
from auditstream.detections.ruleset.document_rule import DocumentRule
from auditstream.detections.ruleset.rule_index import RuleIndex
from auditstream.detections.values import Scalar, Value


class DocumentFamily:
    """Rules of one document language; stateless between events.

    ``shortcuts=False`` evaluates every rule on every event (no index, no routine check): the
    verdicts are the same, it exists to prove that.
    """

    def __init__(self, rules: Sequence[DocumentRule], *, shortcuts: bool = True) -> None:
        self.rules = tuple(rules)
        self.shortcuts = shortcuts
        self._index = RuleIndex(
            self.rules,
            (lambda rule: rule.required_values) if shortcuts else (lambda _: {}),
            present=(lambda rule: rule.required_present) if shortcuts else (lambda _: ()),
        )

    def fires_on_nothing(self, audit: Mapping[str, Any]) -> bool:
        """True when no rule is a candidate for the event of ``audit``: every rule is indexed
        and none under the audit's own values of the index fields."""
        if not self.shortcuts or self._index.unindexed:
            return False
        # Only the audit object is known here, not whether it came raw or in an ECS document:
        # event.action counts as met, and empty strings (dropped from raw events) as values.
        values = _index_values(audit, drop_empty=False, action=())
        return not self._index.candidates(values, unknown=("event.action",))

    def hits(self, view: EventView) -> list[RuleHit]:
        event = view.event
        if event.document is None:  # raw: the mapping drops empty strings, copies the verb
            verb = event.audit.get("verb")
            values = _index_values(event.audit, drop_empty=True, action=(verb,) if verb else ())
        else:  # an ECS document is indexed as given
            action = ElasticDocument(event.document).values("event.action")
            values = _index_values(event.audit, drop_empty=False, action=action)
        candidates = self._index.candidates(values)
        if not candidates:
            return []
        document = view.elastic
        return [
            RuleHit(rule=rule.meta, fields=_read_fields(rule, document))
            for rule in candidates
            if rule.matches(document)
        ]


AUDIT_PREFIX: Final = "kubernetes.audit."
ANNOTATIONS_PREFIX: Final = "kubernetes.audit.annotations."


def _annotation_values(audit: Mapping[str, Any], wanted: str) -> tuple[Scalar, ...]:
    """An annotation's values under the integration's key spelling (every ``.`` of the key an
    ``_``: the pipeline's script renames them), whatever spelling the audit object holds."""
    annotations = audit.get("annotations")
    if not isinstance(annotations, Mapping):
        return ()
    return tuple(
        value
        for key, value in annotations.items()
        if isinstance(value, str) and ecs_key(str(key)) == ecs_key(wanted)
    )


def _index_values(
    audit: Mapping[str, Any], *, drop_empty: bool, action: tuple[Scalar, ...]
) -> Callable[[str], tuple[Scalar, ...]]:
    """The index and presence fields' values as Elasticsearch would index them, read from the
    audit object without building the Elastic document (the mapping copies these audit fields
    unchanged; ``event.action`` is given). Plain nested objects take a fast walk; a list or a
    dotted key on the way takes the general one, so the answer is the same either way."""

    dotted: dict[int, bool] = {}  # per object of this audit: has it "a.b" keys?

    def values(name: str) -> tuple[Scalar, ...]:
        if name == "event.action":
            return action
        if name.startswith(ANNOTATIONS_PREFIX):
            spelled = _annotation_values(audit, name[len(ANNOTATIONS_PREFIX) :])
            return tuple(v for v in spelled if v != "") if drop_empty else spelled
        found = _walk(audit, _segments(name), dotted)
        if found is None:
            found = ElasticDocument({"kubernetes": {"audit": audit}}).values(name)
        if drop_empty and "" in found:
            return tuple(v for v in found if v != "")
        return found

    return values


@lru_cache(maxsize=256)
def _segments(name: str) -> tuple[str, ...]:
    return tuple(name.removeprefix(AUDIT_PREFIX).split("."))


def _walk(
    node: object, segments: tuple[str, ...], dotted: dict[int, bool]
) -> tuple[Scalar, ...] | None:
    """Leaf values at ``segments`` under plain nested dicts; ``None`` when a list or a dotted
    key is in the way (then only the general walk is exact). ``dotted`` remembers, per object,
    whether it has "a.b" keys, so each object's keys are scanned once per event."""
    for segment in segments:
        if type(node) is not dict:
            return None if isinstance(node, list) else ()
        has_dots = dotted.get(id(node))
        if has_dots is None:
            has_dots = dotted[id(node)] = "." in "".join(node)
        if has_dots:  # "a.b" keys: the path may be spelled more than one way
            return None
        node = node.get(segment, _MISSING)
        if node is _MISSING:
            return ()
    if type(node) is str or isinstance(node, int | float | bool):
        return (node,)
    if isinstance(node, list):
        return None
    return ()


_MISSING: Final = object()


def _read_fields(rule: DocumentRule, document: ElasticDocument) -> dict[str, Value]:
    """What the alert shows: every field the rule read, with the values it saw."""
    fields: dict[str, Value] = {}
    for name in sorted(rule.reads):
        values = document.values(name)
        fields[name] = None if not values else values[0] if len(values) == 1 else values
    return fields

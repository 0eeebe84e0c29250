"""Every loaded ES|QL rule over one event, with the work rules share done once.

Rules are arranged in a prefix tree of their commands: rules whose leading commands read the
same (the two Elastic seeds share their first seven stages: the exec filter, URL_DECODE, GROK and
the three REPLACEs) evaluate that prefix once per event and branch only where they differ. The
hits are a function of the values of the fields the rules read, so they are memoised on those:
the stages of one exec request, and one command run in many pods, evaluate once.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from auditstream.detections.esql import ast
from auditstream.detections.esql.gate import RuleGate
from auditstream.detections.esql.rule import EsqlRule
from auditstream.detections.esql.scope import METADATA_FIELDS, WHOLE_DOCUMENT, Row, Stage
from auditstream.detections.event.audit_event import AuditEvent
from auditstream.detections.event.fields import compile_field
from auditstream.detections.event_view import EventView
from auditstream.detections.memo import KeyedMemo
from auditstream.detections.rule_hit import RuleHit


@dataclass(slots=True)
class _Node:
    """One command of one or more rules; ``rules`` are those whose chain ends here."""

    key: ast.Command | ast.From
    stage: Stage | None
    children: list[_Node] = field(default_factory=list)
    rules: list[EsqlRule] = field(default_factory=list)
    under: frozenset[str] = frozenset()
    """The ids of every rule whose chain passes through this node."""


class EsqlFamily:
    """The ES|QL rules of a detector; stateless per event (the memo holds pure results).

    ``gate=False`` sends every event through every rule; the outcome is the same (see
    :mod:`auditstream.detections.esql.gate`), it exists to prove that.
    """

    def __init__(self, rules: Sequence[EsqlRule], *, gate: bool = True) -> None:
        self.rules = tuple(rules)
        self.gate = RuleGate.for_rules(self.rules) if gate else RuleGate(None)
        self._root = _Node(key=ast.From((), ()), stage=None)
        for rule in self.rules:
            node = _child(self._root, rule.query.source, None)
            for command, stage in rule.query.stages:
                node = _child(node, command, stage)
            node.rules.append(rule)
        _mark_under(self._root)
        self.shared_stages = _count_shared(self._root)
        reads = dict.fromkeys(name for rule in self.rules for name in rule.query.reads)
        # A rule that reads the whole document (KQL()) makes hits a function of every field:
        # no key short of the event itself, so such a family does not memoise.
        self._memoise = WHOLE_DOCUMENT not in reads
        self._key_readers = tuple(_key_reader(name) for name in reads if self._memoise)
        self._memo: KeyedMemo[tuple[Hashable, ...], tuple[RuleHit, ...]] = KeyedMemo()

    def fires_on_nothing(self, audit: Mapping[str, Any]) -> bool:
        """True when no rule can fire on the event of this audit object (the gate says so)."""
        gate = self.gate
        return gate.on and not gate.admits_audit(audit)

    def hits(self, view: EventView) -> list[RuleHit]:
        """The rules' hits (ES|QL rules decode the URI themselves: the request is not read)."""
        event = view.event
        if not self.gate.admits(event):
            return []
        key = tuple(read(event) for read in self._key_readers) if self._memoise else None
        if key is not None:
            known = self._memo.get(key)
            if known is not None:
                return list(known)
        allowed = self.gate.candidates(event)
        found: list[RuleHit] = []
        for source in self._root.children:
            if allowed is None or not allowed.isdisjoint(source.under):
                _walk(source, Row(event, {}), found, allowed)
        if key is not None:
            self._memo.put(key, tuple(found))
        return found


def _key_reader(name: str) -> Callable[[AuditEvent], Hashable]:
    """How a read field enters the memo key: its value (metadata: what the value is made of)."""
    if name == "_id":
        return lambda event: (event.audit_id, event.stage)
    if name in METADATA_FIELDS:
        return lambda _: None  # the same for every event
    return compile_field(name)


def _child(parent: _Node, key: ast.Command | ast.From, stage: Stage | None) -> _Node:
    for child in parent.children:
        if child.key == key:
            return child
    node = _Node(key=key, stage=stage)
    parent.children.append(node)
    return node


def _walk(
    node: _Node, row: Row, hits: list[RuleHit], allowed: frozenset[str] | None = None
) -> None:
    """Evaluate ``node`` and below; ``allowed`` (when not ``None``): only the branches that lead
    to one of these rules (the others cannot fire on this event, see the gate)."""
    if node.stage is not None and not node.stage(row):
        return
    for rule in node.rules:
        columns = rule.query.output_columns
        hits.append(RuleHit(rule=rule.meta, fields={name: row.cols[name] for name in columns}))
    children = node.children
    if allowed is not None:
        children = [child for child in children if not allowed.isdisjoint(child.under)]
    for child in children[:-1]:
        _walk(child, Row(row.event, dict(row.cols)), hits, allowed)
    if children:
        _walk(children[-1], row, hits, allowed)


def _mark_under(node: _Node) -> frozenset[str]:
    under = {rule.meta.rule_id for rule in node.rules}
    for child in node.children:
        under |= _mark_under(child)
    node.under = frozenset(under)
    return node.under


def _count_shared(node: _Node) -> int:
    """Stages evaluated once for several rules (shown by ``auditstream rules show``)."""
    shared = 0
    for child in node.children:
        if child.stage is not None and _rule_count(child) > 1:
            shared += 1
        shared += _count_shared(child)
    return shared


def _rule_count(node: _Node) -> int:
    return len(node.rules) + sum(_rule_count(c) for c in node.children)

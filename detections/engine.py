"""Run every loaded rule over one audit event, doing shared work once.

ES|QL rules are arranged in a prefix tree of their commands: rules whose leading commands read
the same (the two Elastic seeds share their first seven stages: the exec filter, URL_DECODE,
GROK and the three REPLACEs) evaluate that prefix once per event and branch only where they
differ. Native rules share one parsed :class:`ExecRequest` and one shell normalisation.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from auditstream.detections.alert import Explanation
from auditstream.detections.errors import MalformedEvent
from auditstream.detections.esql import ast
from auditstream.detections.esql.scope import METADATA_FIELDS, Row, Stage
from auditstream.detections.event.audit_event import AuditEvent, compile_field, subresource_of
from auditstream.detections.exec.request import ExecRequest, may_be_exec_request, parse_exec_request
from auditstream.detections.exec.shell_words import SimpleCommand, normalise
from auditstream.detections.memo import KeyedMemo, memo
from auditstream.detections.native import NativeHit, NativeRule
from auditstream.detections.rule_gate import RuleGate
from auditstream.detections.ruleset.loader import EsqlRule, LoadedRule
from auditstream.detections.ruleset.meta import RuleMeta
from auditstream.detections.values import Value


@dataclass(frozen=True, slots=True)
class RuleHit:
    """A rule fired on an event: what the alert needs beyond the event itself."""

    rule: RuleMeta
    fields: Mapping[str, Value]
    container: str | None = None
    explanation: Explanation | None = None
    elastic_parity: bool | None = None


@memo
def _normalise(argv: tuple[str, ...]) -> tuple[SimpleCommand, ...]:
    """:func:`normalise`, memoised: one command runs in many pods."""
    return normalise(argv)


_NativeFindings = tuple[tuple[NativeRule, NativeHit], ...]
_ExecAnalysis = tuple[ExecRequest, _NativeFindings]


@dataclass(slots=True)
class _Node:
    """One command of one or more rules; ``rules`` are those whose chain ends here."""

    key: ast.Command | ast.From
    stage: Stage | None
    children: list[_Node] = field(default_factory=list)
    rules: list[EsqlRule] = field(default_factory=list)


class Detector:
    """Compiled rules, shared safely across threads: evaluation keeps no state between events.

    ``gate=False`` sends every event through every ES|QL rule; the outcome is the same (see
    :mod:`auditstream.detections.rule_gate`), it exists to prove that.
    """

    def __init__(self, rules: Sequence[LoadedRule], *, gate: bool = True) -> None:
        self.rules = tuple(rules)
        esql = [r for r in rules if isinstance(r, EsqlRule)]
        self.gate = RuleGate.for_rules(esql) if gate else RuleGate(None)
        self._root = _Node(key=ast.From((), ()), stage=None)
        self._native = tuple(r for r in rules if isinstance(r, NativeRule))
        self._loaded_ids = frozenset(r.meta.rule_id for r in rules)
        for rule in rules:
            if isinstance(rule, EsqlRule):
                self._insert(rule)
        self.shared_stages = _count_shared(self._root)
        self._analyse_exec = memo(self._exec_analysis)
        reads = dict.fromkeys(name for rule in esql for name in rule.query.reads)
        self._key_readers = tuple(_key_reader(name) for name in reads)
        self._esql_memo: KeyedMemo[tuple[Hashable, ...], tuple[RuleHit, ...]] = KeyedMemo()

    def _insert(self, rule: EsqlRule) -> None:
        node = _child(self._root, rule.query.source, None)
        for command, stage in rule.query.stages:
            node = _child(node, command, stage)
        node.rules.append(rule)

    def detect(self, event: AuditEvent) -> list[RuleHit]:
        """All hits for one event; raises MalformedEvent('evaluation_error') if a rule breaks."""
        try:
            hits: list[RuleHit] = []
            if self.gate.admits(event):
                hits = self._esql_hits(event)
            if not (hits or self._native):
                return hits
            uri, subresource = event.request_uri or "", event.subresource
            if not may_be_exec_request(uri, subresource):
                return hits  # and keeps routine URIs out of the memo
            analysis = self._analyse_exec(uri, subresource)
            if analysis is None:
                return hits
            request, native = analysis
            hits = [replace(hit, container=request.container) for hit in hits]
            if native:
                hits.extend(self._native_hits(request, native, hits))
            return hits
        except Exception as err:  # a defect in a rule must dead-letter the event, not stop us
            raise MalformedEvent("evaluation_error", f"{type(err).__name__}: {err}") from err

    def fires_on_nothing(self, audit: Mapping[str, Any]) -> bool:
        """True when :meth:`detect` would find nothing for the event with this audit object,
        without building the event: no ES|QL rule opens on its subresource (the gate) and its
        URI cannot be an exec request (what native rules need). False when unsure, including
        when reading the event fails: :meth:`detect` then says why.
        """
        if self.gate.subresources is None:
            return False
        try:
            if self.gate.admits_audit(audit):
                return False
            return not may_be_exec_request(audit["requestURI"], subresource_of(audit))
        except Exception:
            return False

    def _esql_hits(self, event: AuditEvent) -> list[RuleHit]:
        """The ES|QL rules' hits, a function of the values of the fields the rules read: the
        stages of one exec request, and one command run in many pods, evaluate once."""
        key = tuple(read(event) for read in self._key_readers)
        known = self._esql_memo.get(key)
        if known is not None:
            return list(known)
        hits: list[RuleHit] = []
        for source in self._root.children:
            _walk(source, Row(event, {}), hits)
        self._esql_memo.put(key, tuple(hits))
        return hits

    def _exec_analysis(self, request_uri: str, subresource: str | None) -> _ExecAnalysis | None:
        """The exec request of a URI and what every native rule says of it (pure: memoised)."""
        request = parse_exec_request(request_uri, subresource)
        if request is None:
            return None
        if not self._native:
            return request, ()
        commands = _normalise(request.argv)
        found = ((rule, rule.predicate(request, commands)) for rule in self._native)
        return request, tuple((rule, hit) for rule, hit in found if hit is not None)

    def _native_hits(
        self, request: ExecRequest, native: _NativeFindings, esql_hits: Sequence[RuleHit]
    ) -> Iterable[RuleHit]:
        fired = {hit.rule.rule_id for hit in esql_hits}
        for rule, hit in native:
            parity_id = rule.parity_rule_id
            yield RuleHit(
                rule=rule.meta,
                fields={"exec.argv": request.argv or None, "exec.container": request.container},
                container=request.container,
                explanation=Explanation(hit.indicator, hit.simple_command, hit.detail),
                elastic_parity=(parity_id in fired) if parity_id in self._loaded_ids else None,
            )


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


def _walk(node: _Node, row: Row, hits: list[RuleHit]) -> None:
    if node.stage is not None and not node.stage(row):
        return
    for rule in node.rules:
        columns = rule.query.output_columns
        hits.append(RuleHit(rule=rule.meta, fields={name: row.cols[name] for name in columns}))
    children = node.children
    for child in children[:-1]:
        _walk(child, Row(row.event, dict(row.cols)), hits)
    if children:
        _walk(children[-1], row, hits)


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

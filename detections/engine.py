"""Run every loaded rule over one audit event: each language's family, one decoded request.

The event's exec request is decoded once (:func:`exec_request_of`, the one place that decides
whether an event is an exec request) and handed to every family; what a family shares among its
own rules (the ES|QL prefix tree, the native rules' shell normalisation) is its business. The
detector then does what needs every language's answer: the container of the exec request on
every hit, and whether a hardened rule's Elastic twin fired too (``elastic_parity``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from auditstream.detections.errors import MalformedEvent
from auditstream.detections.esql.evaluator import EsqlFamily
from auditstream.detections.esql.gate import RuleGate
from auditstream.detections.event.audit_event import AuditEvent, subresource_of
from auditstream.detections.event_view import EventView
from auditstream.detections.exec.request import (
    ExecRequest,
    exec_request_of,
    may_be_exec_request,
)
from auditstream.detections.rule_hit import RuleHit
from auditstream.detections.ruleset.languages import LoadedRule, RuleFamily, families
from auditstream.detections.stateful.candidate import Candidate
from auditstream.detections.stateful.rule import StatefulRule
from auditstream.detections.stateful.selection import Selection


class Detector:
    """Compiled rules, shared safely across threads: evaluation keeps no state between events.

    ``gate=False`` turns off every family's exact shortcuts (the ES|QL rule gate); the outcome
    is the same, it exists to prove that.
    """

    def __init__(self, rules: Sequence[LoadedRule], *, gate: bool = True) -> None:
        self.rules = tuple(rules)
        self.selection = Selection(r for r in self.rules if isinstance(r, StatefulRule))
        self.families: tuple[RuleFamily, ...] = tuple(families(self.rules, shortcuts=gate))
        self._loaded_ids = frozenset(r.meta.rule_id for r in self.rules)
        self._esql = next((f for f in self.families if isinstance(f, EsqlFamily)), None)
        self._routine_checks = tuple(family.fires_on_nothing for family in self.families)

    @property
    def gate(self) -> RuleGate:
        """The ES|QL rule gate (off when no ES|QL rule is loaded or shortcuts are off)."""
        return self._esql.gate if self._esql is not None else RuleGate(None)

    @property
    def shared_stages(self) -> int:
        """ES|QL stages evaluated once for several rules."""
        return self._esql.shared_stages if self._esql is not None else 0

    @staticmethod
    def exec_request(event: AuditEvent) -> ExecRequest | None:
        """The event's exec request, if it is one (memoised: the stages of one exec share it)."""
        return exec_request_of(event.request_uri, event.subresource)

    def detect(self, event: AuditEvent) -> list[RuleHit]:
        """All hits for one event; raises MalformedEvent('evaluation_error') if a rule breaks."""
        return self.detect_all(event)[0]

    def detect_all(self, event: AuditEvent) -> tuple[list[RuleHit], list[Candidate]]:
        """The per-event rules' hits and the stateful rules' candidates for one event; raises
        MalformedEvent('evaluation_error') if a rule breaks."""
        try:
            request = self.exec_request(event)
            view = EventView(event, request)
            hits = [hit for family in self.families for hit in family.hits(view)]
            if not hits:
                return hits, []
            hits, candidates = self.selection.split(view, hits)
            return (self._complete(hits, request) if hits else hits), candidates
        except Exception as err:  # a defect in a rule must dead-letter the event, not stop us
            raise MalformedEvent("evaluation_error", f"{type(err).__name__}: {err}") from err

    def fires_on_nothing(self, audit: Mapping[str, Any]) -> bool:
        """True when :meth:`detect` would find nothing for the event with this audit object,
        without building the event: it is not an exec request and every family is sure. False
        when unsure, including when reading the event fails: :meth:`detect` then says why.
        """
        try:
            if may_be_exec_request(audit["requestURI"], subresource_of(audit)):
                return False
            for fires_on_nothing in self._routine_checks:  # asked of every message: no all(...)
                if not fires_on_nothing(audit):
                    return False
        except Exception:
            return False
        return True

    def _complete(self, hits: list[RuleHit], request: ExecRequest | None) -> list[RuleHit]:
        """What no single family can say: the request's container, and parity across rules."""
        fired = {hit.rule.rule_id for hit in hits}
        container = request.container if request is not None else None
        return [
            replace(
                hit,
                container=container,
                elastic_parity=(
                    (hit.parity_rule_id in fired)
                    if hit.parity_rule_id and hit.parity_rule_id in self._loaded_ids
                    else hit.elastic_parity
                ),
            )
            for hit in hits
        ]

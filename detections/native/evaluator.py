"""Every loaded native rule over one exec request, sharing one shell normalisation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from auditstream.detections.event.audit_event import AuditEvent
from auditstream.detections.event_view import EventView
from auditstream.detections.exec.request import ExecRequest, exec_request_of
from auditstream.detections.exec.shell_words import SimpleCommand, normalise
from auditstream.detections.memo import KeyedMemo, memo
from auditstream.detections.rule_hit import Explanation, RuleHit

from .rule import NativeRule


@memo
def _normalise(argv: tuple[str, ...]) -> tuple[SimpleCommand, ...]:
    """:func:`normalise`, memoised: one command runs in many pods."""
    return normalise(argv)


def prepare(
    request_uri: str, subresource: str | None
) -> tuple[ExecRequest, tuple[SimpleCommand, ...]] | None:
    """The pair every native predicate reads: the decoded request and its normalised commands
    (``None`` when the event is not an exec request)."""
    request = exec_request_of(request_uri, subresource)
    return None if request is None else (request, _normalise(request.argv))


_Verdicts = tuple[tuple[NativeRule, Explanation], ...]


class NativeFamily:
    """The native rules of a detector; they fire only on exec requests, which the detector
    decodes once per event and hands to every family."""

    def __init__(self, rules: Sequence[NativeRule]) -> None:
        self.rules = tuple(rules)
        self._memo: KeyedMemo[tuple[str, str | None], _Verdicts] = KeyedMemo()

    def fires_on_nothing(self, audit: Mapping[str, Any]) -> bool:  # noqa: ARG002 - RuleFamily
        """Native rules fire only on exec requests, and this is asked only of other events."""
        return True

    def hits(self, view: EventView) -> list[RuleHit]:
        request, event = view.request, view.event
        if request is None:
            return []
        return [
            RuleHit(
                rule=rule.meta,
                fields={"exec.argv": request.argv or None, "exec.container": request.container},
                explanation=explanation,
                parity_rule_id=rule.parity_rule_id,
            )
            for rule, explanation in self._verdicts(event, request)
        ]

    def _verdicts(self, event: AuditEvent, request: ExecRequest) -> _Verdicts:
        """What every rule says of one request: a function of the URI and subresource that the
        request was decoded from, memoised on them."""
        key = (event.request_uri, event.subresource)
        known = self._memo.get(key)
        if known is None:
            commands = _normalise(request.argv)
            found = ((rule, rule.predicate(request, commands)) for rule in self.rules)
            known = tuple((rule, hit) for rule, hit in found if hit is not None)
            self._memo.put(key, known)
        return known

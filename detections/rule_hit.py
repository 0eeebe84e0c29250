"""What a rule firing on an event says, in every rule language: the input of an alert."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from auditstream.detections.ruleset.meta import RuleMeta
from auditstream.detections.values import Value


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a native rule fired: the indicator that matched and the normalised simple command it
    matched in; ``detail`` carries the connection target or URL, the original text and the route
    (kubelet proxy) for the analyst. Native predicates return it as it goes into the alert."""

    indicator: str
    simple_command: str
    detail: str | None = None

    def to_record(self) -> dict[str, Any]:
        return {
            "indicator": self.indicator,
            "simple_command": self.simple_command,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class RuleHit:
    """A rule fired on an event: what the alert needs beyond the event itself.

    ``parity_rule_id`` names the rule of another engine that a hardened rule twins (its
    ``elastic_parity`` is decided by the detector once every language has spoken).
    """

    rule: RuleMeta
    fields: Mapping[str, Value]
    container: str | None = None
    explanation: Explanation | None = None
    elastic_parity: bool | None = None
    parity_rule_id: str | None = None

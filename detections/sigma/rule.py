"""A compiled Sigma rule: the shared rule shape (``meta``, ``path``, ``cases``) around the
compiled detection."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from auditstream.detections.ruleset.cases import RuleCase
from auditstream.detections.ruleset.meta import RuleMeta

if TYPE_CHECKING:  # the compiler imports pySigma; running compiled rules does not need it
    from auditstream.detections.sigma.compiler import CompiledDetection, FieldReader


@dataclass(frozen=True, slots=True)
class SigmaRule:
    meta: RuleMeta
    detection: CompiledDetection
    path: str
    logsource: str
    """As the rule states it (``product: kubernetes, service: audit``), for ``rules show``."""
    cases: tuple[RuleCase, ...] = ()

    @property
    def required_values(self) -> Mapping[str, frozenset[str]]:
        return self.detection.required_values

    @property
    def reads(self) -> tuple[str, ...]:
        return self.detection.fields

    def matches(self, read: FieldReader) -> bool:
        return self.detection.predicate(read)

"""Rule metadata as Elastic's detection-rules TOML states it, validated once at load.

Alerts copy this metadata verbatim so that a SIEM can route and triage them the way it routes the
original Elastic alerts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from auditstream.detections.errors import DetectionError

SEVERITIES = ("low", "medium", "high", "critical")


class RuleMetaError(DetectionError):
    """A required metadata key is missing or has the wrong type."""


@dataclass(frozen=True, slots=True)
class Technique:
    """A MITRE ATT&CK technique (or sub-technique) with its id and name."""

    id: str
    name: str
    reference: str = ""
    subtechniques: tuple[Technique, ...] = ()


@dataclass(frozen=True, slots=True)
class Threat:
    """One ``[[rule.threat]]`` entry: a tactic and the techniques under it."""

    framework: str
    tactic_id: str
    tactic_name: str
    tactic_reference: str
    techniques: tuple[Technique, ...]


@dataclass(frozen=True, slots=True)
class RuleMeta:
    """What an alert says about the rule that raised it."""

    rule_id: str
    name: str
    description: str
    severity: str
    risk_score: int
    tags: tuple[str, ...]
    threat: tuple[Threat, ...]
    references: tuple[str, ...]
    language: str
    version: int = 1
    rule_type: str = ""
    """detection-rules' ``type``: query, eql, esql, new_terms, ... (``native`` for ours)."""
    index: tuple[str, ...] = ()
    """The index patterns the rule reads (ES|QL rules name them in ``FROM``)."""
    lookback: str | None = None
    """``from``: how far back each scheduled run looks (``now-6m``); kept for the SIEM."""
    interval: str | None = None
    """How often Elastic schedules it (``5m``); the stream runs it on every event."""
    status: str | None = None
    """How mature the rule says it is (Sigma ``status``: stable, test, experimental, ...)."""
    false_positives: tuple[str, ...] = ()
    """What the rule's author says can trigger it harmlessly, for the analyst."""

    def to_record(self) -> dict[str, Any]:
        """The ``rule`` record of an alert (``schemas/alert.avsc``): the metadata verbatim, so a
        SIEM routes and triages it as it routes the original rule's alerts."""
        return {
            "id": self.rule_id,
            "name": self.name,
            "severity": self.severity,
            "risk_score": self.risk_score,
            "tags": list(self.tags),
            "threat": [_threat_record(t) for t in self.threat],
            "references": list(self.references),
            "language": self.language,
            "version": self.version,
            "type": self.rule_type,
            "index": list(self.index),
            "from": self.lookback,
            "interval": self.interval,
            "status": self.status,
            "false_positives": list(self.false_positives),
        }

    @classmethod
    def from_rule_table(cls, rule: Mapping[str, Any]) -> RuleMeta:
        """Build from the ``[rule]`` table of a detection-rules TOML file."""
        severity = _text(rule, "severity").lower()
        if severity not in SEVERITIES:
            raise RuleMetaError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
        risk = rule.get("risk_score")
        if not isinstance(risk, int) or isinstance(risk, bool) or not 0 <= risk <= 100:
            raise RuleMetaError("risk_score must be an integer from 0 to 100")
        version = rule.get("version", 1)
        if not isinstance(version, int) or isinstance(version, bool):
            raise RuleMetaError("version must be an integer")
        return cls(
            rule_id=_text(rule, "rule_id"),
            name=_text(rule, "name"),
            description=str(rule.get("description", "")).strip(),
            severity=severity,
            risk_score=risk,
            tags=_texts(rule, "tags"),
            threat=tuple(_threat(t) for t in _tables(rule, "threat")),
            references=_texts(rule, "references"),
            language=_text(rule, "language").lower(),
            version=version,
            rule_type=_optional_text(rule, "type") or "",
            index=_texts(rule, "index"),
            lookback=_optional_text(rule, "from"),
            interval=_optional_text(rule, "interval"),
            false_positives=_texts(rule, "false_positives"),
        )


def _text(table: Mapping[str, Any], key: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RuleMetaError(f"[rule] {key} is missing or not a string")
    return value.strip()


def _optional_text(table: Mapping[str, Any], key: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RuleMetaError(f"[rule] {key} must be a string")
    return value.strip() or None


def _texts(table: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RuleMetaError(f"[rule] {key} must be a list of strings")
    return tuple(value)


def _tables(table: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = table.get(key, [])
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise RuleMetaError(f"{key} must be a table or an array of tables")
    return value


def _technique(table: Mapping[str, Any]) -> Technique:
    return Technique(
        id=_text(table, "id"),
        name=_text(table, "name"),
        reference=str(table.get("reference", "")),
        subtechniques=tuple(_technique(s) for s in _tables(table, "subtechnique")),
    )


def _threat(table: Mapping[str, Any]) -> Threat:
    tactic = table.get("tactic")
    if not isinstance(tactic, Mapping):
        raise RuleMetaError("[[rule.threat]] needs a [rule.threat.tactic] table")
    return Threat(
        framework=str(table.get("framework", "MITRE ATT&CK")),
        tactic_id=_text(tactic, "id"),
        tactic_name=_text(tactic, "name"),
        tactic_reference=str(tactic.get("reference", "")),
        techniques=tuple(_technique(t) for t in _tables(table, "technique")),
    )


def _threat_record(threat: Threat) -> dict[str, Any]:
    return {
        "framework": threat.framework,
        "tactic": {
            "id": threat.tactic_id,
            "name": threat.tactic_name,
            "reference": threat.tactic_reference,
        },
        "techniques": [
            {
                **_technique_record(t),
                "subtechniques": [_technique_record(s) for s in t.subtechniques],
            }
            for t in threat.techniques
        ],
    }


def _technique_record(technique: Technique) -> dict[str, Any]:
    return {"id": technique.id, "name": technique.name, "reference": technique.reference}

"""A Sigma rule's metadata as an alert states it (the same record as every other language's).

Levels map to Elastic's severities and risk scores the way pySigma's Elasticsearch backend
writes a Sigma rule as a Kibana detection rule (its ``siem_rule`` output): ``informational``
is severity low with risk 0, then low 21, medium 47, high 73, critical 99; no level is low 21.

``attack.*`` tags fill the ATT&CK block: a tactic tag (``attack.execution``) is a tactic, a
technique tag (``attack.t1609``, ``attack.t1552.007``) a technique or sub-technique. Sigma does
not say which technique belongs to which tactic, so each tactic lists every technique of the
rule; technique names are left empty (pySigma would download them at run time, which a
detector must not do).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from sigma.rule import SigmaRuleBase

from auditstream.detections.errors import DetectionError
from auditstream.detections.ruleset.meta import RuleMeta, Technique, Threat

LEVELS: Final[Mapping[str, tuple[str, int]]] = MappingProxyType(
    {
        "informational": ("low", 0),
        "low": ("low", 21),
        "medium": ("medium", 47),
        "high": ("high", 73),
        "critical": ("critical", 99),
    }
)
"""Sigma level -> (severity, risk score)."""

TACTICS: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(
    {
        "reconnaissance": ("TA0043", "Reconnaissance"),
        "resource-development": ("TA0042", "Resource Development"),
        "initial-access": ("TA0001", "Initial Access"),
        "execution": ("TA0002", "Execution"),
        "persistence": ("TA0003", "Persistence"),
        "privilege-escalation": ("TA0004", "Privilege Escalation"),
        "defense-evasion": ("TA0005", "Defense Evasion"),
        "credential-access": ("TA0006", "Credential Access"),
        "discovery": ("TA0007", "Discovery"),
        "lateral-movement": ("TA0008", "Lateral Movement"),
        "collection": ("TA0009", "Collection"),
        "command-and-control": ("TA0011", "Command and Control"),
        "exfiltration": ("TA0010", "Exfiltration"),
        "impact": ("TA0040", "Impact"),
    }
)
"""ATT&CK Enterprise tactics by Sigma tag name. A tactic tag not listed here (``stealth``)
keeps its name with an empty id rather than a guessed one."""

_TECHNIQUE: Final = re.compile(r"t\d{4}(\.\d{3})?")


def sigma_meta(rule: SigmaRuleBase) -> RuleMeta:
    """The alert metadata of a pySigma rule (or correlation); raises DetectionError when it has
    no id or title (an alert names its rule, and one alert per (rule, auditID) needs a stable
    id)."""
    if rule.id is None:
        raise DetectionError("the rule has no id (every alert names its rule by id)")
    if not rule.title:
        raise DetectionError("the rule has no title")
    level = rule.level.name.lower() if rule.level is not None else None
    severity, risk = LEVELS.get(level or "low", LEVELS["low"])
    tags = tuple(str(tag) for tag in rule.tags)
    return RuleMeta(
        rule_id=str(rule.id),
        name=rule.title,
        description=(rule.description or "").strip(),
        severity=severity,
        risk_score=risk,
        tags=tags,
        threat=_threat(tags),
        references=tuple(str(r) for r in rule.references),
        language="sigma",
        rule_type="sigma",
        status=rule.status.name.lower() if rule.status is not None else None,
        false_positives=tuple(str(f) for f in rule.falsepositives),
    )


def _threat(tags: tuple[str, ...]) -> tuple[Threat, ...]:
    names = [t.removeprefix("attack.") for t in tags if t.lower().startswith("attack.")]
    ids = [n.upper() for n in names if _TECHNIQUE.fullmatch(n.lower())]
    tactics = [n.lower() for n in names if not _TECHNIQUE.fullmatch(n.lower())]
    techniques = _techniques(ids)
    threats = []
    for tactic in tactics:
        tactic_id, tactic_name = TACTICS.get(tactic, ("", tactic.replace("-", " ").title()))
        threats.append(
            Threat(
                framework="MITRE ATT&CK",
                tactic_id=tactic_id,
                tactic_name=tactic_name,
                tactic_reference=_reference("tactics", tactic_id),
                techniques=techniques,
            )
        )
    return tuple(threats)


def _techniques(ids: list[str]) -> tuple[Technique, ...]:
    """Techniques with their sub-techniques nested, in tag order."""
    parents: dict[str, list[str]] = {}
    for technique_id in ids:
        parent = technique_id.split(".")[0]
        subs = parents.setdefault(parent, [])
        if "." in technique_id and technique_id not in subs:
            subs.append(technique_id)
    return tuple(
        Technique(
            id=parent,
            name="",
            reference=_reference("techniques", parent),
            subtechniques=tuple(
                Technique(id=s, name="", reference=_reference("techniques", s)) for s in subs
            ),
        )
        for parent, subs in parents.items()
    )


def _reference(kind: str, attack_id: str) -> str:
    if not attack_id:
        return ""
    return f"https://attack.mitre.org/{kind}/{attack_id.replace('.', '/')}/"

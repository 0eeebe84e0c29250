"""An alert as an OCSF Detection Finding (class 2004; ``alert_format = "ocsf"``).

OCSF 1.1.0: the release that introduced Detection Finding and the one Amazon Security Lake's
custom sources are documented against (a source writes one event class; docs/siem.md). The
finding is created once per alert (activity Create); its ``uid`` is the alert id, so a lake
deduplicates on ``finding_info.uid`` as a topic consumer does on the key.

Where each part of the alert goes:

* the rule: ``finding_info.analytic`` (type Rule), title and description, ATT&CK in
  ``finding_info.attacks`` (one entry per technique, or per sub-technique);
* the Kubernetes user: ``actor.user`` (the ``host`` profile's attribute, named in
  ``metadata.profiles``) and again in the evidence;
* the pod: ``resources`` (kind, name, namespace; the container and cluster in ``data``);
* the evidence: the exec command (``process.cmd_line`` with the argv the API server decoded), the
  API call (verb, auditID), the client address, and the request URI as logged in ``data``;
* what OCSF has no attribute for (the rule's language, the columns it computed, the
  explanation, where the event was read): ``unmapped.auditstream``.

Times are epoch milliseconds (``timestamp_t``).
"""

from __future__ import annotations

from typing import Any, Final

from auditstream.detections.alert import Alert, UserRef
from auditstream.detections.elastic.mapping import is_inet_address
from auditstream.detections.ruleset.meta import RuleMeta, Technique
from auditstream.stream.sinks.alert_facts import (
    PRODUCT,
    SEVERITY_RANK,
    command_line,
    epoch_millis,
    exec_argv,
    product_version,
    without_empty,
)

OCSF_VERSION: Final = "1.1.0"
OCSF_CONTENT_TYPE: Final = "application/vnd.auditstream.alert.ocsf+json"
CLASS_UID: Final = 2004
CATEGORY_UID: Final = 2
ACTIVITY_CREATE: Final = 1
SEVERITIES: Final = {1: (2, "Low"), 2: (3, "Medium"), 3: (4, "High"), 4: (5, "Critical")}
"""Our severity rank -> OCSF ``severity_id`` and its caption."""
STATUS_NEW: Final = (1, "New")
ANALYTIC_RULE: Final = (1, "Rule")


def ocsf_finding(alert: Alert) -> dict[str, Any]:
    """The Detection Finding of ``alert``, as a JSON-ready dict."""
    rule = alert.rule
    severity_id, severity = SEVERITIES[SEVERITY_RANK.get(rule.severity, 2)]
    created = epoch_millis(alert.detected_at)
    seen = epoch_millis(alert.event.timestamp)
    finding = {
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "type_uid": CLASS_UID * 100 + ACTIVITY_CREATE,
        "type_name": "Detection Finding: Create",
        "severity_id": severity_id,
        "severity": severity,
        "status_id": STATUS_NEW[0],
        "status": STATUS_NEW[1],
        "risk_score": rule.risk_score,
        "time": created,
        "start_time": seen,
        "end_time": seen,
        "message": rule.name,
        "metadata": _metadata(alert),
        "finding_info": _finding_info(alert, created, seen),
        "actor": {"user": _user(alert.event.user)},
        "resources": [_resource(alert)],
        "evidences": [_evidence(alert)],
        "unmapped": {PRODUCT: _unmapped(alert)},
    }
    return without_empty(finding)


def _metadata(alert: Alert) -> dict[str, Any]:
    return {
        "version": OCSF_VERSION,
        "product": {"name": PRODUCT, "vendor_name": PRODUCT, "version": product_version()},
        "uid": alert.alert_id,
        "correlation_uid": alert.event.audit_id,
        "original_time": alert.event.timestamp,
        "profiles": ["host"],
        "labels": list(alert.rule.tags),
    }


def _finding_info(alert: Alert, created: int | None, seen: int | None) -> dict[str, Any]:
    rule = alert.rule
    return {
        "uid": alert.alert_id,
        "title": rule.name,
        "desc": rule.description,
        "types": [f"Kubernetes {alert.event.object_ref.subresource or 'API'} request"],
        "created_time": created,
        "first_seen_time": seen,
        "last_seen_time": seen,
        "src_url": rule.references[0] if rule.references else None,
        "data_sources": ["Kubernetes audit log"],
        "analytic": _analytic(rule),
        "attacks": _attacks(rule),
    }


def _analytic(rule: RuleMeta) -> dict[str, Any]:
    return {
        "uid": rule.rule_id,
        "name": rule.name,
        "desc": rule.description,
        "type_id": ANALYTIC_RULE[0],
        "type": ANALYTIC_RULE[1],
        "category": rule.language,
        "version": str(rule.version),
    }


def _attacks(rule: RuleMeta) -> list[dict[str, Any]]:
    """One ATT&CK entry per (tactic, technique, sub-technique) the rule names."""
    attacks: list[dict[str, Any]] = []
    for threat in rule.threat:
        tactic = _item(threat.tactic_id, threat.tactic_name, threat.tactic_reference)
        if not threat.techniques:
            attacks.append({"tactic": tactic})
        for technique in threat.techniques:
            attacks.extend(_technique_attacks(tactic, technique))
    return attacks


def _technique_attacks(tactic: dict[str, str], technique: Technique) -> list[dict[str, Any]]:
    base = {"tactic": tactic, "technique": _item(technique.id, technique.name, technique.reference)}
    if not technique.subtechniques:
        return [base]
    return [
        {**base, "sub_technique": _item(sub.id, sub.name, sub.reference)}
        for sub in technique.subtechniques
    ]


def _item(uid: str, name: str, reference: str) -> dict[str, str]:
    return {"uid": uid, "name": name, "src_url": reference}


def _user(user: UserRef | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"name": user.username, "groups": [{"name": group} for group in user.groups]}


def _resource(alert: Alert) -> dict[str, Any]:
    ref = alert.event.object_ref
    envelope = alert.source.envelope
    return {
        "type": ref.resource,
        "name": ref.name,
        "namespace": ref.namespace,
        "data": {
            "container": ref.container,
            "subresource": ref.subresource,
            "cluster": envelope.cluster if envelope else None,
            "cloud": envelope.provider if envelope else None,
        },
    }


def _evidence(alert: Alert) -> dict[str, Any]:
    event = alert.event
    argv = exec_argv(alert)
    ips = [ip for ip in event.source_ips if is_inet_address(ip)]
    return {
        "actor": {"user": _user(event.user)},
        "api": {
            "operation": event.verb or "unknown",
            "request": {"uid": event.audit_id},
            "service": {"name": "kube-apiserver"},
        },
        "process": {
            "name": argv[0].rsplit("/", 1)[-1] if argv else None,
            "cmd_line": command_line(argv),
        },
        "src_endpoint": {"ip": ips[0]} if ips else None,
        "data": {
            "request_uri": event.request_uri,
            "argv": list(argv),
            "user_agent": event.user_agent,
            "source_ips": list(event.source_ips),
            "impersonated_user": _user(event.impersonated_user),
            "decision": event.decision,
            "response_code": event.response_code,
        },
    }


def _unmapped(alert: Alert) -> dict[str, Any]:
    record = alert.to_record()
    rule = alert.rule
    return {
        "rule": {
            "severity": rule.severity,
            "language": rule.language,
            "type": rule.rule_type,
            "status": rule.status,
            "tags": list(rule.tags),
            "references": list(rule.references),
            "false_positives": list(rule.false_positives),
        },
        "fields": record["fields"],
        "explanation": record["explanation"],
        "elastic_parity": alert.elastic_parity,
        "source": record["source"],
    }

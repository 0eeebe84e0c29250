"""An alert as an Elastic Common Schema document (``alert_format = "ecs"``).

The document is what Elastic Agent's Kafka input indexes into a ``logs-*`` data stream once the
record value is decoded as JSON (docs/siem.md), and what Elastic Security then treats as an
external alert:

* ``event.kind: alert``, not ``signal``: ECS reserves ``signal`` for the alert documents that
  Kibana's own rules write and forbids ingest pipelines to set it; ``alert`` is the value for
  detections made outside the Elastic Stack. The prebuilt "External Alerts" rule (detection-rules
  ``rules/promotions/external_alerts.toml``) promotes exactly ``event.kind:alert`` documents of
  ``logs-*`` into Security alerts, naming each after ``message`` (here the rule's name), taking
  ``event.risk_score`` as the risk score and mapping ``event.severity`` 21, 47, 73, 99 to low,
  medium, high, critical; the values below follow that mapping.
* ``kubernetes.audit.*`` carries the audit event's fields under the names Elastic's
  ``kubernetes.audit_logs`` integration maps (:mod:`auditstream.detections.elastic.fields`), so
  a query written for that data stream reads them here too.
* What ECS has no field for (the rule's language and status, the columns the rule computed, the
  explanation, where the event was read) is under ``auditstream.*``, ECS's advice for custom
  fields. ``auditstream.fields`` holds names with dots and capitals (``Esql.executed_command``):
  map it ``flattened`` (docs/siem.md gives the component template) so that no two rules' columns
  can clash in the mapping.

Empty values are left out, as the integration's pipeline leaves them out.
"""

from __future__ import annotations

from typing import Any, Final

from auditstream.detections.alert import Alert, EventRef
from auditstream.detections.elastic.mapping import is_inet_address
from auditstream.detections.ruleset.meta import RuleMeta
from auditstream.stream.sinks.alert_facts import (
    PRODUCT,
    command_line,
    exec_argv,
    without_empty,
)

ECS_VERSION: Final = "8.11.0"
"""The ECS release the document is validated against (tests/unit/test_ecs_alert.py)."""
ECS_CONTENT_TYPE: Final = "application/vnd.auditstream.alert.ecs+json"
DATASET: Final = "auditstream.alerts"
"""``event.dataset``: name the Kafka integration's dataset the same (docs/siem.md)."""
SEVERITY_SCORE: Final = {"low": 21, "medium": 47, "high": 73, "critical": 99}
"""Elastic's severity scale, as the External Alerts rule reads ``event.severity``."""
_RULESETS: Final = {"kuery": "elastic", "eql": "elastic", "esql": "elastic", "sigma": "sigma"}
_CLOUDS: Final = {"aks": "azure", "eks": "aws", "gke": "gcp"}
"""The envelope's provider as the integration's ``cloud.provider`` spells it."""
_OUTCOMES: Final = {"allow": "success", "forbid": "failure"}
"""The decision annotation as the integration's pipeline turns it into ``event.outcome``."""


def ecs_document(alert: Alert) -> dict[str, Any]:
    """The ECS document of ``alert`` (nested objects, as Elasticsearch stores ``_source``)."""
    event = alert.event
    argv = exec_argv(alert)
    ips = [ip for ip in event.source_ips if is_inet_address(ip)]
    users = [u for u in (event.user.username, _effective_name(event)) if u]
    document = {
        "@timestamp": alert.detected_at,
        "message": alert.rule.name,
        "tags": list(alert.rule.tags),
        "ecs": {"version": ECS_VERSION},
        "event": _event(alert),
        "rule": _rule(alert.rule),
        "threat": _threat(alert.rule),
        "observer": {"vendor": PRODUCT, "product": PRODUCT},
        "user": {"name": event.user.username, "effective": {"name": _effective_name(event)}},
        "source": {"ip": ips[0] if ips else None},
        "user_agent": {"original": event.user_agent},
        "related": {"user": users, "ip": ips},
        "orchestrator": _orchestrator(alert),
        "cloud": {"provider": _cloud_provider(alert)},
        "container": {"name": event.object_ref.container},
        "process": {
            "name": argv[0].rsplit("/", 1)[-1] if argv else None,
            "args": list(argv),
            "args_count": len(argv) or None,
            "command_line": command_line(argv),
        },
        "kubernetes": {"audit": _audit(event)},
        PRODUCT: _custom(alert),
    }
    return without_empty(document)


def _effective_name(event: EventRef) -> str | None:
    return event.impersonated_user.username if event.impersonated_user else None


def _event(alert: Alert) -> dict[str, Any]:
    return {
        "kind": "alert",
        "category": ["intrusion_detection"],
        "type": ["info"],
        "module": PRODUCT,
        "dataset": DATASET,
        "provider": "kubernetes",
        "id": alert.alert_id,
        "severity": SEVERITY_SCORE.get(alert.rule.severity),
        "risk_score": float(alert.rule.risk_score),
        "created": alert.detected_at,
        "start": alert.event.timestamp,
        "action": alert.event.verb,
        "outcome": _OUTCOMES.get(alert.event.decision or ""),
    }


def _rule(rule: RuleMeta) -> dict[str, Any]:
    return {
        "id": rule.rule_id,
        "uuid": rule.rule_id,
        "name": rule.name,
        "description": rule.description,
        "reference": rule.references[0] if rule.references else None,
        "ruleset": _RULESETS.get(rule.language, PRODUCT),
        "version": str(rule.version),
        "category": rule.rule_type,
    }


def _threat(rule: RuleMeta) -> dict[str, Any]:
    """ECS keeps tactics and techniques as parallel arrays, one entry per ATT&CK item."""
    tactics: dict[str, list[str]] = {"id": [], "name": [], "reference": []}
    techniques: dict[str, list[str]] = {"id": [], "name": [], "reference": []}
    subtechniques: dict[str, list[str]] = {"id": [], "name": [], "reference": []}
    for threat in rule.threat:
        _append(tactics, threat.tactic_id, threat.tactic_name, threat.tactic_reference)
        for technique in threat.techniques:
            _append(techniques, technique.id, technique.name, technique.reference)
            for sub in technique.subtechniques:
                _append(subtechniques, sub.id, sub.name, sub.reference)
    return {
        "framework": rule.threat[0].framework if rule.threat else None,
        "tactic": tactics,
        "technique": {**techniques, "subtechnique": subtechniques},
    }


def _append(into: dict[str, list[str]], uid: str, name: str, reference: str) -> None:
    into["id"].append(uid)
    into["name"].append(name)
    into["reference"].append(reference)


def _orchestrator(alert: Alert) -> dict[str, Any]:
    ref = alert.event.object_ref
    envelope = alert.source.envelope
    return {
        "type": "kubernetes",
        "namespace": ref.namespace,
        "resource": {"type": ref.resource, "name": ref.name},
        "cluster": {"name": envelope.cluster if envelope else None},
    }


def _cloud_provider(alert: Alert) -> str | None:
    envelope = alert.source.envelope
    return _CLOUDS.get(envelope.provider) if envelope else None


def _audit(event: EventRef) -> dict[str, Any]:
    """The fields the integration declares, named as it names them."""
    ref = event.object_ref
    impersonated = event.impersonated_user
    return {
        "auditID": event.audit_id,
        "stage": event.stage,
        "verb": event.verb,
        "requestURI": event.request_uri,
        "user": {"username": event.user.username, "groups": list(event.user.groups)},
        "impersonatedUser": {
            "username": impersonated.username if impersonated else None,
            "groups": list(impersonated.groups) if impersonated else [],
        },
        "sourceIPs": list(event.source_ips),
        "userAgent": event.user_agent,
        "objectRef": {
            "resource": ref.resource,
            "namespace": ref.namespace,
            "name": ref.name,
            "subresource": ref.subresource,
        },
        "responseStatus": {"code": event.response_code},
        "annotations": {"authorization_k8s_io/decision": event.decision},
    }


def _custom(alert: Alert) -> dict[str, Any]:
    """Everything of the alert record that ECS has no field for."""
    rule = alert.rule
    record = alert.to_record()
    return {
        "alert_id": alert.alert_id,
        "rule": {
            "severity": rule.severity,
            "risk_score": rule.risk_score,
            "language": rule.language,
            "type": rule.rule_type,
            "status": rule.status,
            "references": list(rule.references),
            "false_positives": list(rule.false_positives),
            "index": list(rule.index),
            "from": rule.lookback,
            "interval": rule.interval,
        },
        "fields": record["fields"],
        "explanation": record["explanation"],
        "elastic_parity": alert.elastic_parity,
        "source": record["source"],
    }

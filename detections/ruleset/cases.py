"""Example cases that ship inside rule files, for every kind of rule.

A rule file's top-level ``[[cases]]`` tables each give one event and the outcome the rule
must give on it. An exec request is said by its URI alone::

    [[cases]]
    note = "why the case exists"                         # optional
    uri = "/api/v1/namespaces/default/pods/web/exec?..."  # requestURI as logged
    subresource = "exec"                                   # exec, attach or proxy (default exec)
    expect = true                                          # must the rule fire? (required)
    indicator = "shell_stdio_to_socket"                    # native rules: the indicator named
    [cases.fields]                                         # ES|QL rules: columns, exactly
    "Esql.executed_command" = "..."

Any other event is given whole, as a raw audit event or an Elastic document (one of ``uri`` or
``event`` is required)::

    [[cases]]
    expect = false
    note = "a list of secrets by a controller"
    event = { auditID = "...", stage = "ResponseComplete", verb = "list", ... }

``auditstream rules test`` runs each case through the same
:class:`~auditstream.detections.engine.Detector` as production: on the given event, or on the
smallest raw audit event that carries the request.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from auditstream.detections.ruleset.meta import RuleMetaError


@dataclass(frozen=True, slots=True)
class RuleCase:
    """One example event (``event``, or the exec request ``uri``/``subresource``) and the
    expected outcome."""

    uri: str
    subresource: str | None
    expect: bool
    indicator: str | None = None
    note: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict)
    event: Mapping[str, Any] | None = None


def parse_cases(document: Mapping[str, Any]) -> tuple[RuleCase, ...]:
    """The ``[[cases]]`` of a parsed rule file; raises RuleMetaError naming the bad case."""
    tables = document.get("cases", [])
    if not isinstance(tables, list):
        raise RuleMetaError("[[cases]] must be an array of tables")
    return tuple(_case(table, number) for number, table in enumerate(tables, start=1))


def parse_case_file(document: Mapping[str, Any]) -> dict[str, tuple[RuleCase, ...]]:
    """A cases file's ``[[cases]]``, by the id of the rule each names (``rule = "<id>"``): the
    cases of rules whose files are not ours to edit (SigmaHQ's, Elastic's). Raises
    RuleMetaError naming the bad case."""
    tables = document.get("cases", [])
    if not isinstance(tables, list) or not tables:
        raise RuleMetaError("a cases file needs [[cases]] tables")
    by_rule: dict[str, list[RuleCase]] = {}
    for number, table in enumerate(tables, start=1):
        rule = table.get("rule") if isinstance(table, Mapping) else None
        if not isinstance(rule, str) or not rule:
            raise RuleMetaError(f"[[cases]] #{number} needs rule (the id of the rule it tests)")
        by_rule.setdefault(rule, []).append(_case(table, number))
    return {rule: tuple(cases) for rule, cases in by_rule.items()}


def _case(table: Any, number: int) -> RuleCase:
    where = f"[[cases]] #{number}"
    if not isinstance(table, Mapping):
        raise RuleMetaError(f"{where} is not a table")
    uri, expect = table.get("uri"), table.get("expect")
    subresource = table.get("subresource", "exec")
    indicator, note = table.get("indicator"), table.get("note", "")
    fields, event = table.get("fields", {}), table.get("event")
    if event is not None and not isinstance(event, Mapping):
        raise RuleMetaError(f"{where}: event must be a table (an audit event or a document)")
    if event is not None and uri is None:
        uri = ""
    if not isinstance(uri, str) or not isinstance(expect, bool):
        raise RuleMetaError(f"{where} needs uri (string) or event (table), and expect (boolean)")
    if not isinstance(subresource, str) or not isinstance(note, str):
        raise RuleMetaError(f"{where}: subresource and note must be strings")
    if indicator is not None and not isinstance(indicator, str):
        raise RuleMetaError(f"{where}: indicator must be a string")
    if not isinstance(fields, Mapping):
        raise RuleMetaError(f"{where}: fields must be a table")
    return RuleCase(uri, subresource or None, expect, indicator, note, dict(fields), _plain(event))


def _plain(event: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """TOML tables as the plain JSON objects a decoder receives (TOML dates become text)."""
    if event is None:
        return None
    plain: dict[str, Any] = json.loads(json.dumps(event, default=str))
    return plain


def case_event(case: RuleCase) -> dict[str, Any]:
    """The case's event, or the smallest raw audit event that carries its request (stable
    auditID per case)."""
    if case.event is not None:
        return dict(case.event)
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

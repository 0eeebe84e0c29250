"""Native rules as data: a TOML file (metadata, predicate name, example cases) bound to code.

A native rule file is an Elastic detection-rules style TOML whose ``[rule]`` has
``type = "native"``, ``language = "python"``, ``predicate`` (a key of
:data:`~detections.native.registry.PREDICATES`) and ``parity_rule_id`` (the Elastic rule of the
same intent). Its top-level ``[[cases]]`` are example exec requests with the expected outcome,
run by the rule test suite. Everything is validated once at load; an unknown predicate or a
malformed case is a :class:`~detections.errors.RuleLoadError` naming the file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detections.errors import RuleLoadError
from detections.exec_request import ExecRequest, parse_exec_request
from detections.rule_meta import RuleMeta, RuleMetaError
from detections.shell_words import SimpleCommand, normalise

from .registry import PREDICATES
from .types import NativeHit, NativePredicate


@dataclass(frozen=True, slots=True)
class NativeCase:
    """One example: the audit ``requestURI`` and ``objectRef.subresource``, and the outcome."""

    uri: str
    subresource: str | None
    expect: bool
    indicator: str | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class NativeRule:
    """A loaded native rule: metadata for alerts, the bound predicate and its cases."""

    meta: RuleMeta
    predicate_name: str
    predicate: NativePredicate
    parity_rule_id: str
    cases: tuple[NativeCase, ...]
    path: str


def prepare(
    request_uri: str, subresource: str | None
) -> tuple[ExecRequest, tuple[SimpleCommand, ...]] | None:
    """Decode and normalise once per event; every native rule reads the same pair."""
    request = parse_exec_request(request_uri, subresource)
    if request is None:
        return None
    return request, normalise(request.argv)


def run_case(rule: NativeRule, case: NativeCase) -> NativeHit | None:
    """Evaluate ``rule`` on one of its cases (``None``: not an exec request or no alert)."""
    prepared = prepare(case.uri, case.subresource)
    return None if prepared is None else rule.predicate(*prepared)


def load_native_rule(path: Path) -> NativeRule:
    """Load and validate one native rule file."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
        rule = document.get("rule")
        if not isinstance(rule, Mapping):
            raise RuleMetaError("missing [rule] table")
        return _build(rule, document.get("cases", []), str(path))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RuleMetaError) as err:
        raise RuleLoadError(str(path), str(err)) from err


def _build(rule: Mapping[str, Any], cases: Any, path: str) -> NativeRule:
    if rule.get("type") != "native" or rule.get("language") != "python":
        raise RuleMetaError('a native rule needs type = "native" and language = "python"')
    name = rule.get("predicate")
    if not isinstance(name, str) or name not in PREDICATES:
        raise RuleMetaError(f"predicate {name!r} is not one of {', '.join(sorted(PREDICATES))}")
    parity = rule.get("parity_rule_id", "")
    if not isinstance(parity, str):
        raise RuleMetaError("parity_rule_id must be a string")
    if not isinstance(cases, list):
        raise RuleMetaError("[[cases]] must be an array of tables")
    return NativeRule(
        meta=RuleMeta.from_rule_table(rule),
        predicate_name=name,
        predicate=PREDICATES[name],
        parity_rule_id=parity,
        cases=tuple(_case(c, i) for i, c in enumerate(cases, start=1)),
        path=path,
    )


def _case(table: Any, number: int) -> NativeCase:
    where = f"[[cases]] #{number}"
    if not isinstance(table, Mapping):
        raise RuleMetaError(f"{where} is not a table")
    uri, expect = table.get("uri"), table.get("expect")
    subresource = table.get("subresource", "exec")
    indicator, note = table.get("indicator"), table.get("note", "")
    if not isinstance(uri, str) or not isinstance(expect, bool):
        raise RuleMetaError(f"{where} needs uri (string) and expect (boolean)")
    if not isinstance(subresource, str) or not isinstance(note, str):
        raise RuleMetaError(f"{where}: subresource and note must be strings")
    if indicator is not None and not isinstance(indicator, str):
        raise RuleMetaError(f"{where}: indicator must be a string")
    return NativeCase(uri, subresource or None, expect, indicator, note)
